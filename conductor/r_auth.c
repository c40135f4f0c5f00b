/* r_auth.c - POST /v1/auth/tokens, and user and project administration. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/db.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/secret.h"
#include "conductor/accounts.h"
#include "conductor/login.h"
#include "conductor/routes.h"

/* ---- POST /v1/auth/tokens ---------------------------------------------------
 * The password check is conductor/login.c's, shared with POST /v3/auth/tokens. */

static void v1_login_ok(ek_req_t *req, ek_resp_t *resp, ek_account_t *acc, void *ctx)
{
    (void)ctx;
    ek_app_t *app = req->app;
    json_object *doc;
    char *token;
    ek_err_t *err = ek_token_issue(req->db, acc, app->token_lifetime, &doc, &token);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    /* masked in the log while it is valid, then forgotten */
    ek_redact_register_until(token, time(NULL) + app->token_lifetime + 60);
    ek_free_secret(token);
    ek_resp_wrap(resp, 201, "token", doc);
}

void r_tokens_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *auth;
    const char *user, *password;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "auth", &auth)) ||
        (err = ek_json_req_string(auth, "auth", "username", &user)) ||
        (err = ek_json_req_string(auth, "auth", "password", &password)))
        EK_RESP_RETURN_ERR(resp, err);
    if (strlen(user) > EK_LOGIN_MAX_USERNAME || strlen(password) > EK_LOGIN_MAX_PASSWORD)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "auth.username may have at most %d bytes and "
                                            "auth.password at most %d",
                                            EK_LOGIN_MAX_USERNAME, EK_LOGIN_MAX_PASSWORD));
    ek_login_begin(req, resp,
                   &(ek_login_spec_t){.user = user, .password = password, .ok = v1_login_ok});
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

/* ---- users: a new password is hashed on the hash pool too ---------------------- */

struct user_change {
    char *id, *name, *project, *role; /* id: the user updated (update only) */
    char *password, *hash;            /* hash: made by hash_work */
    bool has_enabled, enabled;
};

static void user_change_release(void *arg)
{
    struct user_change *u = arg;
    free(u->id);
    free(u->name);
    free(u->project);
    free(u->role);
    ek_free_secret(u->password);
    free(u->hash);
    free(u);
}

static void hash_work(void *arg)
{
    struct user_change *u = arg;
    u->hash = ek_password_hash(u->password);
}

struct user_create_tx {
    const struct user_change *u;
    char id[EK_UUID_STRLEN + 1];
};

static ek_err_t *user_create_tx(PGconn *db, void *arg)
{
    struct user_create_tx *t = arg;
    return ek_user_create_hashed(db, t->u->name, t->u->hash, t->u->project, t->u->role, t->id);
}

static void user_create_finish(ek_req_t *req, ek_resp_t *resp, void *arg)
{
    struct user_change *u = arg;
    struct user_create_tx t = {.u = u};
    ek_err_t *err = ek_db_tx(req->db, 0, user_create_tx, &t);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    const char *id = t.id;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "name", json_object_new_string(u->name));
    json_object_object_add(out, "role", json_object_new_string(u->role));
    ek_resp_wrap(resp, 201, "user", out);
}

void r_users_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *j;
    const char *name, *password, *project, *role;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "user", &j)) ||
        (err = ek_json_req_string(j, "user", "name", &name)) ||
        (err = ek_json_req_string(j, "user", "password", &password)) ||
        (err = ek_json_req_string(j, "user", "project", &project)) ||
        (err = ek_json_opt_string(j, "user", "role", "member", &role)) ||
        (err = ek_user_check(name, password, role)))
        EK_RESP_RETURN_ERR(resp, err);
    struct user_change *u = ek_xcalloc(1, sizeof(*u));
    u->name = ek_xstrdup(name);
    u->project = ek_xstrdup(project);
    u->role = ek_xstrdup(role);
    u->password = ek_xstrdup(password);
    ek_resp_defer(resp, &(ek_defer_t){.work = hash_work,
                                      .finish = user_create_finish,
                                      .release = user_change_release,
                                      .arg = u});
}

void r_users_delete(ek_req_t *req, ek_resp_t *resp)
{
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    if (strcmp(req->arg[0], req->user_id) == 0) {
        ek_resp_fail(resp, 409, "you cannot delete your own account");
        return;
    }
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

static void user_update_finish(ek_req_t *req, ek_resp_t *resp, void *arg)
{
    struct user_change *u = arg;
    PGresult *res;
    ek_err_t *err = ek_db_query(
        req->db, &res,
        "UPDATE users SET password_hash = coalesce($2, password_hash), "
        "role = coalesce($3, role), enabled = coalesce($4::bool, enabled) WHERE id = $1",
        4,
        (const char *[]){u->id, u->hash, u->role,
                         u->has_enabled ? (u->enabled ? "true" : "false") : NULL});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", u->id));
    /* a new password, role or a disabled account ends the sessions it had */
    if (u->hash || u->role || (u->has_enabled && !u->enabled))
        ek_err_free(ek_db_query(req->db, NULL, "DELETE FROM tokens WHERE user_id = $1", 1,
                                (const char *[]){u->id}));
    json_object *out;
    if ((err = ek_db_query_json(req->db, &out,
                                "SELECT jsonb_build_object('id', u.id, 'name', u.name, 'role', "
                                "u.role, 'project_id', u.project_id, 'project_name', p.name, "
                                "'enabled', u.enabled, 'created_at', u.created_at) FROM users u "
                                "JOIN projects p ON p.id = u.project_id WHERE u.id = $1",
                                1, (const char *[]){u->id})))
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "user", out);
}

/* {"user": {"password", "role", "enabled"}}, each optional: a password reset,
 * a role change, an account disabled (its tokens stop working at once). */
void r_users_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *j, *has;
    const char *password = NULL, *role = NULL;
    bool enabled = true;
    ek_err_t *err;
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("user", req->arg[0]));
    if ((err = ek_req_body_object(req, "user", &j)) ||
        (err = ek_json_opt_string(j, "user", "password", NULL, &password)) ||
        (err = ek_json_opt_string(j, "user", "role", NULL, &role)) ||
        (err = ek_json_opt_bool(j, "user", "enabled", true, &enabled)))
        EK_RESP_RETURN_ERR(resp, err);
    bool has_enabled = json_object_object_get_ex(j, "enabled", &has);
    if (password && (strlen(password) < 8 || strlen(password) > 1024))
        EK_RESP_RETURN_ERR(resp,
                           ek_err_new(EK_E_INVALID, "the password must have 8 to 1024 characters"));
    if (role && strcmp(role, "admin") && strcmp(role, "member"))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "role must be admin or member, not '%s'", role));
    bool demote = (has_enabled && !enabled) || (role && strcmp(role, "admin"));
    if (strcmp(req->arg[0], req->user_id) == 0 && demote) {
        ek_resp_fail(resp, 409, "you cannot disable or demote your own account");
        return;
    }
    struct user_change *u = ek_xcalloc(1, sizeof(*u));
    u->id = ek_xstrdup(req->arg[0]);
    u->role = role ? ek_xstrdup(role) : NULL;
    u->has_enabled = has_enabled;
    u->enabled = enabled;
    if (!password) { /* nothing slow to do */
        user_update_finish(req, resp, u);
        user_change_release(u);
        return;
    }
    u->password = ek_xstrdup(password);
    ek_resp_defer(resp, &(ek_defer_t){.work = hash_work,
                                      .finish = user_update_finish,
                                      .release = user_change_release,
                                      .arg = u});
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
        {
            ek_resp_fail(resp, 409, "a project named '%s' already exists", name);
            return;
        }
    }
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    PQclear(res);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "name", json_object_new_string(name));
    ek_resp_wrap(resp, 201, "project", out);
}
