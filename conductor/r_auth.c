/* r_auth.c - POST /v1/auth/tokens, and user and project administration. */
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/secret.h"
#include "conductor/accounts.h"
#include "conductor/routes.h"

void r_tokens_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *auth;
    const char *user, *password;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "auth", &auth)) ||
        (err = ek_json_req_string(auth, "auth", "username", &user)) ||
        (err = ek_json_req_string(auth, "auth", "password", &password)))
        EK_RESP_RETURN_ERR(resp, err);
    json_object *doc;
    char *token;
    if ((err = ek_token_issue(req->db, user, password, req->app->token_lifetime, &doc, &token)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_redact_register(token);
    ek_free_secret(token);
    ek_resp_wrap(resp, 201, "token", doc);
}

void r_users_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(
        req->db, &list,
        "SELECT coalesce(jsonb_agg(jsonb_build_object('id', u.id, 'name', u.name, 'role', u.role, "
        "'project_id', u.project_id, 'project_name', p.name, 'enabled', u.enabled, "
        "'created_at', u.created_at) ORDER BY u.name), '[]') "
        "FROM users u JOIN projects p ON p.id = u.project_id",
        0, NULL);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "users", list);
}

void r_users_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *u;
    const char *name, *password, *project, *role;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "user", &u)) ||
        (err = ek_json_req_string(u, "user", "name", &name)) ||
        (err = ek_json_req_string(u, "user", "password", &password)) ||
        (err = ek_json_req_string(u, "user", "project", &project)) ||
        (err = ek_json_opt_string(u, "user", "role", "member", &role)))
        EK_RESP_RETURN_ERR(resp, err);
    char id[EK_UUID_STRLEN + 1];
    if ((err = ek_db_exec(req->db, "BEGIN")) ||
        (err = ek_user_create(req->db, name, password, project, role, id)) ||
        (err = ek_db_exec(req->db, "COMMIT")))
        EK_RESP_RETURN_ERR(resp, err);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "name", json_object_new_string(name));
    json_object_object_add(out, "role", json_object_new_string(role));
    ek_resp_wrap(resp, 201, "user", out);
}

void r_users_delete(ek_req_t *req, ek_resp_t *resp)
{
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    if (strcmp(req->arg[0], req->user_id) == 0)
        { ek_resp_fail(resp, 409, "you cannot delete your own account"); return; }
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res, "DELETE FROM users WHERE id = $1", 1,
                                (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool gone = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!gone)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    ek_resp_json(resp, 204, NULL);
}

/* {"user": {"password", "role", "enabled"}}, each optional: a password reset,
 * a role change, an account disabled (its tokens stop working at once). */
void r_users_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *u, *has;
    const char *password = NULL, *role = NULL;
    bool enabled = true;
    ek_err_t *err;
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    if ((err = ek_req_body_object(req, "user", &u)) ||
        (err = ek_json_opt_string(u, "user", "password", NULL, &password)) ||
        (err = ek_json_opt_string(u, "user", "role", NULL, &role)) ||
        (err = ek_json_opt_bool(u, "user", "enabled", true, &enabled)))
        EK_RESP_RETURN_ERR(resp, err);
    bool has_enabled = json_object_object_get_ex(u, "enabled", &has);
    if (password && strlen(password) < 8)
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "the password must have at least 8 characters"));
    if (role && strcmp(role, "admin") && strcmp(role, "member"))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "role must be admin or member, not '%s'", role));
    bool demote = (has_enabled && !enabled) || (role && strcmp(role, "admin"));
    if (strcmp(req->arg[0], req->user_id) == 0 && demote) {
        ek_resp_fail(resp, 409, "you cannot disable or demote your own account");
        return;
    }
    char *hash = password ? ek_password_hash(password) : NULL;
    PGresult *res;
    err = ek_db_query(req->db, &res,
                      "UPDATE users SET password_hash = coalesce($2, password_hash), "
                      "role = coalesce($3, role), enabled = coalesce($4::bool, enabled) "
                      "WHERE id = $1",
                      4,
                      (const char *[]){req->arg[0], hash, role,
                                       has_enabled ? (enabled ? "true" : "false") : NULL});
    free(hash);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    /* a new password, role or a disabled account ends the sessions it had */
    if (password || role || (has_enabled && !enabled))
        ek_err_free(ek_db_query(req->db, NULL, "DELETE FROM tokens WHERE user_id = $1", 1,
                                (const char *[]){req->arg[0]}));
    json_object *out;
    if ((err = ek_db_query_json(req->db, &out,
                                "SELECT jsonb_build_object('id', u.id, 'name', u.name, 'role', "
                                "u.role, 'project_id', u.project_id, 'project_name', p.name, "
                                "'enabled', u.enabled, 'created_at', u.created_at) FROM users u "
                                "JOIN projects p ON p.id = u.project_id WHERE u.id = $1",
                                1, (const char *[]){req->arg[0]})))
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "user", out);
}

void r_projects_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(
        req->db, &list,
        "SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'name', name, 'created_at', "
        "created_at) ORDER BY name), '[]') FROM projects",
        0, NULL);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "projects", list);
}

void r_projects_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *p;
    const char *name;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "project", &p)) ||
        (err = ek_json_req_string(p, "project", "name", &name)))
        EK_RESP_RETURN_ERR(resp, err);
    char id[EK_UUID_STRLEN + 1];
    PGresult *res;
    ek_uuid_generate(id);
    err = ek_db_query(req->db, &res, "INSERT INTO projects (id, name) VALUES ($1, $2)", 2,
                      (const char *[]){id, name});
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        { ek_resp_fail(resp, 409, "a project named '%s' already exists", name); return; }
    }
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    PQclear(res);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "name", json_object_new_string(name));
    ek_resp_wrap(resp, 201, "project", out);
}
