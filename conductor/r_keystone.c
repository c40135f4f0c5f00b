/* r_keystone.c - the Keystone v3 identity facade under /v3, so that the
 * Coriolis client and coriolis-web (which speak only Keystone) log in to
 * Ekman with Ekman's own accounts (docs/coriolis-compatibility.md). The
 * password check is conductor/login.c's, the same as POST /v1/auth/tokens';
 * the tokens are Ekman's, valid on /v1/{project_id}/ as X-Auth-Token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/config.h"
#include "common/db.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "conductor/accounts.h"
#include "conductor/keystone.h"
#include "conductor/login.h"
#include "conductor/routes.h"

/* ---- where the catalog points -------------------------------------------------- */

struct site {
    char base[512];
    ek_ks_site_t ks;
};

/* A Host header that may go into a URL as it is. */
static bool host_ok(const char *h)
{
    if (!h || !*h || strlen(h) > 255)
        return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr(".-:[]_", *c)))
            return false;
    return true;
}

/* [api] public_url, else the scheme and the host the client asked for (its
 * Host header), else the address the API listens on. */
static void site_of(const ek_req_t *req, struct site *s)
{
    const char *pub = ek_config_get_string(req->app->cfg, "api", "public_url");
    const char *host = ek_req_header(req, "Host");
    if (*pub)
        snprintf(s->base, sizeof(s->base), "%s", pub);
    else if (host_ok(host))
        snprintf(s->base, sizeof(s->base), "%s://%s", req->app->api_https ? "https" : "http", host);
    else
        snprintf(s->base, sizeof(s->base), "%s", req->app->api_url);
    size_t n = strlen(s->base);
    while (n && s->base[n - 1] == '/')
        s->base[--n] = '\0';
    s->ks.base_url = s->base;
    s->ks.region = ek_config_get_string(req->app->cfg, "api", "public_region");
}

/* ---- GET /v3 -------------------------------------------------------------------- */

void r_ks_version(ek_req_t *req, ek_resp_t *resp)
{
    struct site s;
    site_of(req, &s);
    ek_resp_json(resp, 200, ek_ks_version_doc(&s.ks));
}

/* ---- POST /v3/auth/tokens -------------------------------------------------------- */

/* Answers 201 with a new token of acc, scoped to project (NULL: unscoped),
 * ending at expires_at (NULL: after [api] token_lifetime). */
static void issue(ek_req_t *req, ek_resp_t *resp, ek_account_t *acc, const char *project,
                  bool by_id, const char *expires_at)
{
    ek_err_t *err;
    if (project) {
        bool found;
        char id[EK_UUID_STRLEN + 1];
        char *name;
        if ((err = ek_project_find(req->db, by_id ? project : NULL, by_id ? NULL : project, &found,
                                   id, &name)))
            EK_RESP_RETURN_ERR(resp, err);
        bool admin = strcmp(acc->role, "admin") == 0;
        if (!found && admin)
            EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_AUTH,
                                                "there is no project %s %s: check OS_PROJECT_NAME "
                                                "or OS_PROJECT_ID",
                                                by_id ? "with id" : "named", project));
        if (!found || (!admin && strcmp(id, acc->project_id))) {
            free(name);
            EK_RESP_RETURN_ERR(resp,
                               ek_err_new(EK_E_AUTH,
                                          "user %s has no access to project %s: a member "
                                          "reaches the project of its account only, \"%s\" "
                                          "(id %s)",
                                          acc->name, project, acc->project_name, acc->project_id));
        }
        snprintf(acc->project_id, sizeof(acc->project_id), "%s", id);
        free(acc->project_name);
        acc->project_name = name;
    }
    char *token;
    ek_token_info_t info;
    int lifetime = req->app->token_lifetime;
    if ((err = ek_token_grant(req->db, acc, project != NULL, expires_at, lifetime, &token, &info)))
        EK_RESP_RETURN_ERR(resp, err);
    /* masked in the log while it is valid, then forgotten */
    ek_redact_register_until(token, time(NULL) + lifetime + 60);
    struct site s;
    site_of(req, &s);
    ek_resp_json(resp, 201, ek_ks_token_doc(&info, &s.ks));
    ek_token_info_release(&info);
    resp->subject_token = token;
}

struct v3_scope {
    char *project;
    bool by_id;
};

static void v3_scope_free(void *arg)
{
    struct v3_scope *sc = arg;
    free(sc->project);
    free(sc);
}

static void v3_password_ok(ek_req_t *req, ek_resp_t *resp, ek_account_t *acc, void *ctx)
{
    struct v3_scope *sc = ctx;
    issue(req, resp, acc, sc->project, sc->by_id, NULL);
}

/* A token exchanged for another (re-scoped): no password, the same end. */
static void rescope(ek_req_t *req, ek_resp_t *resp, const ek_ks_auth_t *a)
{
    ek_token_info_t info;
    ek_err_t *err = ek_token_lookup(req->db, a->token, &info);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_AUTH, "the token of auth.identity.token.id is "
                                                       "invalid or has expired: log in with "
                                                       "a password again"));
    }
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_account_t *acc;
    err = ek_account_find_id(req->db, info.user_id, &acc);
    char expires[sizeof(info.expires_at)];
    memcpy(expires, info.expires_at, sizeof(expires));
    ek_token_info_release(&info);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    if (!acc)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_AUTH, "the token's user no longer exists"));
    issue(req, resp, acc, a->project, a->project_by_id, expires);
    ek_account_free(acc);
}

void r_ks_tokens_create(ek_req_t *req, ek_resp_t *resp)
{
    ek_ks_auth_t a;
    ek_err_t *err = ek_ks_auth_parse(req->body, &a);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    if (a.method == EK_KS_TOKEN) {
        rescope(req, resp, &a);
        return;
    }
    struct v3_scope *sc = ek_xcalloc(1, sizeof(*sc));
    sc->project = a.project ? ek_xstrdup(a.project) : NULL;
    sc->by_id = a.project_by_id;
    ek_login_begin(req, resp,
                   &(ek_login_spec_t){.user = a.user,
                                      .by_id = a.user_by_id,
                                      .password = a.password,
                                      .ok = v3_password_ok,
                                      .ctx = sc,
                                      .ctx_free = v3_scope_free});
}

/* ---- GET / HEAD / DELETE /v3/auth/tokens ------------------------------------------ */

/* The X-Subject-Token of the request, looked up; false with the answer set. */
static bool subject(ek_req_t *req, ek_resp_t *resp, const char **token, ek_token_info_t *info)
{
    *token = ek_req_header(req, "X-Subject-Token");
    if (!*token || !**token) {
        ek_resp_error(resp, ek_err_new(EK_E_INVALID, "send the token to check or revoke in the "
                                                     "X-Subject-Token header"));
        return false;
    }
    ek_err_t *err = ek_token_lookup(req->db, *token, info);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        ek_resp_error(resp, ek_err_new(EK_E_NOTFOUND, "the token in X-Subject-Token is invalid or "
                                                      "has expired"));
        return false;
    }
    if (err) {
        ek_resp_error(resp, err);
        return false;
    }
    if (strcmp(info->user_id, req->user_id) && !req->is_admin) {
        ek_token_info_release(info);
        ek_resp_error(resp,
                      ek_err_new(EK_E_FORBIDDEN, "X-Subject-Token is another user's token: you may "
                                                 "check or revoke your own tokens only"));
        return false;
    }
    return true;
}

void r_ks_tokens_show(ek_req_t *req, ek_resp_t *resp)
{
    const char *token;
    ek_token_info_t info;
    if (!subject(req, resp, &token, &info))
        return;
    struct site s;
    site_of(req, &s);
    ek_resp_json(resp, 200, ek_ks_token_doc(&info, &s.ks));
    ek_token_info_release(&info);
    resp->subject_token = ek_xstrdup(token);
}

void r_ks_tokens_delete(ek_req_t *req, ek_resp_t *resp)
{
    const char *token;
    ek_token_info_t info;
    if (!subject(req, resp, &token, &info))
        return;
    ek_token_info_release(&info);
    bool found;
    ek_err_t *err = ek_token_revoke(req->db, token, &found);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND, "the token in X-Subject-Token is "
                                                           "invalid or has expired"));
    ek_resp_json(resp, 204, NULL);
}

void r_ks_catalog(ek_req_t *req, ek_resp_t *resp)
{
    struct site s;
    site_of(req, &s);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "catalog",
                           req->scoped ? ek_ks_catalog(req->project_id, &s.ks)
                                       : json_object_new_array());
    json_object_object_add(doc, "links", ek_ks_links(&s.ks, "/v3/auth/catalog"));
    ek_resp_json(resp, 200, doc);
}

/* ---- projects, users, role assignments -------------------------------------------- */

/* The projects user_id may scope to: all for an admin, else its own. */
static void projects_of(ek_req_t *req, ek_resp_t *resp, const char *user_id, const char *path)
{
    PGresult *res;
    ek_err_t *err =
        ek_db_query(req->db, &res,
                    "SELECT p.id, p.name FROM projects p, users u WHERE u.id = $1 AND u.enabled "
                    "AND (u.role = 'admin' OR p.id = u.project_id) ORDER BY p.name",
                    1, (const char *[]){user_id});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    struct site s;
    site_of(req, &s);
    json_object *list = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_object_array_add(list,
                              ek_ks_project(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), &s.ks));
    PQclear(res);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "projects", list);
    json_object_object_add(doc, "links", ek_ks_links(&s.ks, path));
    ek_resp_json(resp, 200, doc);
}

void r_ks_projects(ek_req_t *req, ek_resp_t *resp)
{
    projects_of(req, resp, req->user_id, "/v3/auth/projects");
}

/* The user of the path, when the caller may see it (itself, or as an admin). */
static bool user_arg(ek_req_t *req, ek_resp_t *resp)
{
    if (!ek_uuid_is_valid(req->arg[0])) {
        ek_resp_error(resp, ek_err_new(EK_E_NOTFOUND, "user %s not found", req->arg[0]));
        return false;
    }
    if (strcmp(req->arg[0], req->user_id) && !req->is_admin) {
        ek_resp_error(resp, ek_err_new(EK_E_FORBIDDEN, "only an admin may look at other users"));
        return false;
    }
    return true;
}

void r_ks_user_projects(ek_req_t *req, ek_resp_t *resp)
{
    if (!user_arg(req, resp))
        return;
    char path[128];
    snprintf(path, sizeof(path), "/v3/users/%s/projects", req->arg[0]);
    projects_of(req, resp, req->arg[0], path);
}

void r_ks_user_show(ek_req_t *req, ek_resp_t *resp)
{
    if (!user_arg(req, resp))
        return;
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT id, name, project_id FROM users WHERE id = $1 AND enabled",
                                1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    if (PQntuples(res) != 1) {
        PQclear(res);
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND, "user %s not found", req->arg[0]));
    }
    struct site s;
    site_of(req, &s);
    json_object *u =
        ek_ks_user(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), &s.ks);
    PQclear(res);
    ek_resp_wrap(resp, 200, "user", u);
}

/* ?user.id=&scope.project.id=&include_names: each user holds one role ("admin"
 * or "member") on the project of its account; a member sees its own. */
void r_ks_role_assignments(ek_req_t *req, ek_resp_t *resp)
{
    const char *user = ek_req_query(req, "user.id");
    const char *project = ek_req_query(req, "scope.project.id");
    const char *names = ek_req_query(req, "include_names");
    bool with_names = names && strcmp(names, "0") && strcasecmp(names, "false");
    if (!req->is_admin) {
        if (user && strcmp(user, req->user_id))
            EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_FORBIDDEN,
                                                "only an admin may list other users' role "
                                                "assignments: filter on user.id=%s",
                                                req->user_id));
        user = req->user_id;
    }
    struct site s;
    site_of(req, &s);
    json_object *list = json_object_new_array();
    if ((!user || ek_uuid_is_valid(user)) && (!project || ek_uuid_is_valid(project))) {
        PGresult *res;
        ek_err_t *err =
            ek_db_query(req->db, &res,
                        "SELECT u.id, u.name, u.project_id, p.name, u.role = 'admin' FROM users u "
                        "JOIN projects p ON p.id = u.project_id WHERE u.enabled "
                        "AND ($1::uuid IS NULL OR u.id = $1::uuid) "
                        "AND ($2::uuid IS NULL OR u.project_id = $2::uuid) ORDER BY u.name",
                        2, (const char *[]){user, project});
        if (err) {
            json_object_put(list);
            EK_RESP_RETURN_ERR(resp, err);
        }
        for (int i = 0; i < PQntuples(res); i++)
            json_object_array_add(
                list, ek_ks_role_assignment(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                            PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                                            PQgetvalue(res, i, 4)[0] == 't', with_names, &s.ks));
        PQclear(res);
    }
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "role_assignments", list);
    json_object_object_add(doc, "links", ek_ks_links(&s.ks, "/v3/role_assignments"));
    ek_resp_json(resp, 200, doc);
}
