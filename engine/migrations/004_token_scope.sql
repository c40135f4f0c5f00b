-- 004_token_scope.sql - a token is scoped to its project (the default, and
-- every token of POST /v1/auth/tokens), or unscoped: a Keystone v3 login
-- without a scope (POST /v3/auth/tokens), which may list the user's projects
-- and be exchanged for a scoped token but reaches no /v1/{project_id}/ route.
ALTER TABLE tokens ADD COLUMN scoped boolean NOT NULL DEFAULT true;
