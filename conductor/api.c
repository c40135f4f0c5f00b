/* api.c - HTTP server of the conductor: request bodies, authentication, the
 * route table, JSON responses. Handlers live in r_*.c. */
#include "conductor/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/secret.h"
#include "common/strbuf.h"
#include "conductor/routes.h"

struct ek_api {
    ek_app_t *app;
    struct MHD_Daemon *daemon;
    char address[64];
    size_t max_body;
};

/* What a request accumulates while its body arrives. */
struct request {
    ek_strbuf_t body;
    bool too_large;
};

enum route_auth {
    AUTH_NONE,    /* public */
    AUTH_USER,    /* any valid token */
    AUTH_PROJECT, /* a token, and /v1/{project_id}/ in the path */
    AUTH_ADMIN,   /* an admin's token */
};

struct route {
    const char *method;
    const char *pattern; /* segments; "*" captures one (the first after /v1/ is the project) */
    enum route_auth auth;
    ek_route_fn fn;
};

#define P(method, pattern, fn) {method, "/v1/*/" pattern, AUTH_PROJECT, fn}

static const struct route routes[] = {
    {"GET", "/healthz", AUTH_NONE, NULL},
    {"GET", "/metrics", AUTH_NONE, r_metrics},
    {"POST", "/v1/auth/tokens", AUTH_NONE, r_tokens_create},
    {"GET", "/v1/users", AUTH_ADMIN, r_users_list},
    {"POST", "/v1/users", AUTH_ADMIN, r_users_create},
    {"DELETE", "/v1/users/*", AUTH_ADMIN, r_users_delete},
    {"PUT", "/v1/users/*", AUTH_ADMIN, r_users_update},
    {"GET", "/v1/projects", AUTH_ADMIN, r_projects_list},
    {"POST", "/v1/projects", AUTH_ADMIN, r_projects_create},

    P("GET", "providers", r_providers_list),
    P("GET", "providers/*/schemas/*", r_provider_schema),
    P("GET", "regions", r_regions_list),
    P("GET", "regions/detail", r_regions_list),
    P("POST", "regions", r_regions_create),
    P("GET", "regions/*", r_regions_show),
    P("PUT", "regions/*", r_regions_update),
    P("DELETE", "regions/*", r_regions_delete),
    P("GET", "services", r_services_list),
    P("GET", "services/detail", r_services_list),
    P("POST", "services", r_services_create),
    P("GET", "services/*", r_services_show),
    P("PUT", "services/*", r_services_update),
    P("DELETE", "services/*", r_services_delete),

    P("GET", "endpoints", r_endpoints_list),
    P("GET", "endpoints/detail", r_endpoints_list),
    P("POST", "endpoints", r_endpoints_create),
    P("GET", "endpoints/*", r_endpoints_show),
    P("PUT", "endpoints/*", r_endpoints_update),
    P("DELETE", "endpoints/*", r_endpoints_delete),
    P("POST", "endpoints/*/actions", r_endpoints_action),
    P("GET", "endpoints/*/instances", r_endpoints_instances),
    P("GET", "endpoints/*/instances/*", r_endpoints_instance),
    P("GET", "endpoints/*/networks", r_endpoints_networks),
    P("GET", "endpoints/*/storage", r_endpoints_storage),
    P("GET", "endpoints/*/destination-options", r_endpoints_dest_options),
    P("GET", "endpoints/*/source-options", r_endpoints_source_options),

    P("GET", "transfers", r_transfers_list),
    P("GET", "transfers/detail", r_transfers_list),
    P("POST", "transfers", r_transfers_create),
    P("GET", "transfers/*", r_transfers_show),
    P("PUT", "transfers/*", r_transfers_update),
    P("DELETE", "transfers/*", r_transfers_delete),
    P("POST", "transfers/*/actions", r_transfers_action),
    P("GET", "transfers/*/executions", r_executions_list),
    P("GET", "transfers/*/executions/detail", r_executions_list),
    P("POST", "transfers/*/executions", r_executions_create),
    P("GET", "transfers/*/executions/*", r_executions_show),
    P("DELETE", "transfers/*/executions/*", r_executions_delete),
    P("POST", "transfers/*/executions/*/actions", r_executions_action),
    P("GET", "transfers/*/schedules", r_schedules_list),
    P("POST", "transfers/*/schedules", r_schedules_create),
    P("GET", "transfers/*/schedules/*", r_schedules_show),
    P("PUT", "transfers/*/schedules/*", r_schedules_update),
    P("DELETE", "transfers/*/schedules/*", r_schedules_delete),

    P("GET", "deployments", r_deployments_list),
    P("GET", "deployments/detail", r_deployments_list),
    P("POST", "deployments", r_deployments_create),
    P("GET", "deployments/*", r_deployments_show),
    P("DELETE", "deployments/*", r_deployments_delete),
    P("POST", "deployments/*/actions", r_deployments_action),

    P("GET", "minion_pools", r_pools_list),
    P("GET", "minion_pools/detail", r_pools_list),
    P("POST", "minion_pools", r_pools_create),
    P("GET", "minion_pools/*", r_pools_show),
    P("PUT", "minion_pools/*", r_pools_update),
    P("DELETE", "minion_pools/*", r_pools_delete),
    P("GET", "diagnostics", r_diagnostics),
};

/* ---- responses -------------------------------------------------------------- */

void ek_resp_json(ek_resp_t *resp, unsigned status, json_object *body)
{
    json_object_put(resp->body);
    resp->status = status;
    resp->body = body;
}

void ek_resp_wrap(ek_resp_t *resp, unsigned status, const char *key, json_object *obj)
{
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, key, obj);
    ek_resp_json(resp, status, doc);
}

void ek_resp_fail(ek_resp_t *resp, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_int((int)status));
    json_object_object_add(err, "message", json_object_new_string(msg));
    ek_resp_wrap(resp, status, "error", err);
    free(msg);
}

void ek_resp_error(ek_resp_t *resp, ek_err_t *err)
{
    unsigned status;
    switch (err->code) {
    case EK_E_INVALID: status = MHD_HTTP_BAD_REQUEST; break;
    case EK_E_AUTH: status = MHD_HTTP_UNAUTHORIZED; break;
    case EK_E_FORBIDDEN: status = MHD_HTTP_FORBIDDEN; break;
    case EK_E_NOTFOUND: status = MHD_HTTP_NOT_FOUND; break;
    case EK_E_CONFLICT: status = MHD_HTTP_CONFLICT; break;
    case EK_E_TIMEOUT: status = MHD_HTTP_GATEWAY_TIMEOUT; break;
    case EK_E_UNAVAILABLE: status = MHD_HTTP_SERVICE_UNAVAILABLE; break;
    default: status = MHD_HTTP_INTERNAL_SERVER_ERROR; break;
    }
    if (status == MHD_HTTP_INTERNAL_SERVER_ERROR) {
        /* the details are for the operator, not the client */
        char ref[EK_UUID_STRLEN + 1];
        ek_uuid_generate(ref);
        ek_log_kv(EK_LOG_ERROR, "internal error", "error", err->message, "ref", ref, NULL);
        ek_resp_fail(resp, status, "internal error (reference %s in the conductor's log)", ref);
    } else {
        ek_resp_fail(resp, status, "%s", err->message);
    }
    ek_err_free(err);
}

ek_err_t *ek_err_not_found(const char *what, const char *id)
{
    return ek_err_new(EK_E_NOTFOUND, "%s %s not found", what, id);
}

const char *ek_req_query(const ek_req_t *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

ek_err_t *ek_req_body_object(const ek_req_t *req, const char *key, json_object **out)
{
    *out = NULL;
    if (!req->body)
        return ek_err_new(EK_E_INVALID, "the request needs a JSON body {\"%s\": {...}}", key);
    if (!json_object_is_type(req->body, json_type_object))
        return ek_err_new(EK_E_INVALID, "the request body must be a JSON object, not %s",
                          ek_json_type_name(req->body));
    return ek_json_req_object(req->body, NULL, key, out);
}

const char *ek_req_scope(const ek_req_t *req)
{
    return req->is_admin ? NULL : req->project_id;
}

/* ---- routing and authentication --------------------------------------------- */

/* Matches url against pattern; fills args with the captured segments. */
static bool match(const char *pattern, const char *url, char segs[][EK_UUID_STRLEN * 4],
                  int *nsegs)
{
    *nsegs = 0;
    const char *p = pattern, *u = url;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return false;
        p++;
        u++;
        size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");
        if (ulen == 0)
            return false;
        if (plen == 1 && *p == '*') {
            if (*nsegs == 5 || ulen >= EK_UUID_STRLEN * 4)
                return false;
            memcpy(segs[*nsegs], u, ulen);
            segs[(*nsegs)++][ulen] = '\0';
        } else if (plen != ulen || strncmp(p, u, plen) != 0) {
            return false;
        }
        p += plen;
        u += ulen;
    }
    return !*p && (!*u || (u[0] == '/' && !u[1]));
}

static ek_err_t *authenticate(ek_req_t *req)
{
    const char *token = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Auth-Token");
    const char *authz =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!token && authz && strncasecmp(authz, "Bearer ", 7) == 0)
        token = authz + 7;
    if (!token || !*token)
        return ek_err_new(EK_E_AUTH, "authentication required: send a token from POST "
                                     "/v1/auth/tokens in X-Auth-Token or Authorization: Bearer");
    char digest[65];
    ek_token_digest(token, digest);
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT t.user_id, t.project_id, t.is_admin FROM tokens t "
                                "JOIN users u ON u.id = t.user_id "
                                "WHERE t.token_hash = $1 AND t.expires_at > now() AND u.enabled",
                                1, (const char *[]){digest});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_AUTH, "the token is invalid or has expired: get a new one from "
                                     "POST /v1/auth/tokens");
    }
    snprintf(req->user_id, sizeof(req->user_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(req->project_id, sizeof(req->project_id), "%s", PQgetvalue(res, 0, 1));
    req->is_admin = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    return NULL;
}

static void handle(ek_api_t *api, ek_req_t *req, ek_resp_t *resp, const char *body, size_t len)
{
    char segs[5][EK_UUID_STRLEN * 4];
    int nsegs = 0;
    const struct route *found = NULL;
    bool path_known = false;
    for (size_t i = 0; i < EK_ARRAY_SIZE(routes) && !found; i++) {
        if (!match(routes[i].pattern, req->url, segs, &nsegs))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, req->method) == 0)
            found = &routes[i];
    }
    if (!found) {
        if (path_known)
            ek_resp_fail(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
                         req->method, req->url);
        else
            ek_resp_fail(resp, MHD_HTTP_NOT_FOUND, "no route for %s %s", req->method, req->url);
        return;
    }
    if (!found->fn) { /* healthz */
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "status", json_object_new_string("ok"));
        json_object_object_add(doc, "version", json_object_new_string(EKMAN_VERSION));
        ek_resp_json(resp, MHD_HTTP_OK, doc);
        return;
    }
    if (len) {
        ek_err_t *err = ek_json_parse(body, len, &req->body);
        if (err) {
            ek_resp_error(resp, err);
            return;
        }
    }
    int first = 0;
    ek_err_t *err = ek_dbpool_get(req->app->db, &req->db);
    if (err) {
        ek_resp_error(resp, err);
        return;
    }
    if (found->auth != AUTH_NONE && (err = authenticate(req))) {
        ek_resp_error(resp, err);
        return;
    }
    if (found->auth == AUTH_ADMIN && !req->is_admin) {
        ek_resp_fail(resp, MHD_HTTP_FORBIDDEN, "only an admin may do that");
        return;
    }
    if (found->auth == AUTH_PROJECT) {
        /* another project's id answers 404, as if it did not exist */
        if (!ek_uuid_is_valid(segs[0]) || (!req->is_admin && strcmp(segs[0], req->project_id))) {
            ek_resp_fail(resp, MHD_HTTP_NOT_FOUND, "project %s not found", segs[0]);
            return;
        }
        memcpy(req->project_id, segs[0], EK_UUID_STRLEN + 1); /* validated as a UUID */
        first = 1;
    }
    for (int i = first; i < nsegs; i++)
        req->arg[req->nargs++] = segs[i];
    found->fn(req, resp);
}

/* ---- libmicrohttpd glue --------------------------------------------------------- */

static enum MHD_Result send_resp(struct MHD_Connection *conn, ek_resp_t *resp)
{
    const char *type = "application/json";
    char *text;
    if (resp->text) {
        text = resp->text;
        type = "text/plain; version=0.0.4";
    } else if (!resp->body) {
        text = ek_xstrdup(resp->status == MHD_HTTP_NO_CONTENT ? "" : "{}");
    } else {
        text = ek_json_dump(resp->body, false);
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
    ek_api_t *api = cls;
    struct request *rq = *state;
    if (!rq) {
        rq = ek_xcalloc(1, sizeof(*rq));
        ek_strbuf_init(&rq->body, 0);
        *state = rq;
        return MHD_YES;
    }
    if (*data_size) {
        if (rq->body.len + *data_size > api->max_body)
            rq->too_large = true;
        else
            ek_strbuf_add(&rq->body, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    ek_resp_t resp = {0};
    ek_req_t req = {.app = api->app, .conn = conn, .method = method, .url = url};
    if (rq->too_large)
        ek_resp_fail(&resp, MHD_HTTP_CONTENT_TOO_LARGE,
                     "request body is larger than the limit of %zu bytes ([api] max_body_size)",
                     api->max_body);
    else
        handle(api, &req, &resp, rq->body.buf, rq->body.len);
    if (req.db)
        ek_dbpool_put(api->app->db, req.db);
    json_object_put(req.body);
    if (!resp.status)
        ek_resp_fail(&resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "the handler set no response");
    unsigned cls_idx = resp.status / 100;
    if (cls_idx >= 1 && cls_idx <= 5)
        atomic_fetch_add(&api->app->http_requests[cls_idx], 1);
    char status[8];
    snprintf(status, sizeof(status), "%u", resp.status);
    ek_log_kv(resp.status >= 500 ? EK_LOG_WARNING : EK_LOG_DEBUG, "request", "method", method,
              "url", url, "status", status, NULL);
    enum MHD_Result r = send_resp(conn, &resp);
    json_object_put(resp.body);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    struct request *rq = *state;
    if (rq) {
        ek_strbuf_release(&rq->body);
        free(rq);
        *state = NULL;
    }
}

ek_err_t *ek_api_start(ek_app_t *app, ek_api_t **out)
{
    const ek_config_t *cfg = app->cfg;
    const char *host = ek_config_get_string(cfg, "api", "listen_address");
    int port = (int)ek_config_get_int(cfg, "api", "port");
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return ek_err_new(EK_E_INVALID,
                          "[api] listen_address '%s' is not an IPv4 address (e.g. 127.0.0.1 or "
                          "0.0.0.0)",
                          host);
    ek_api_t *api = ek_xcalloc(1, sizeof(*api));
    api->app = app;
    api->max_body = (size_t)ek_config_get_int(cfg, "api", "max_body_size");
    unsigned threads = (unsigned)ek_config_get_int(cfg, "api", "threads");
    api->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, on_request, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_END);
    if (!api->daemon) {
        int e = errno;
        free(api);
        return ek_err_new(EK_E_UNAVAILABLE,
                          "could not listen on %s:%d: %s (is another conductor running? set [api] "
                          "port)",
                          host, port, strerror(e ? e : EADDRINUSE));
    }
    snprintf(api->address, sizeof(api->address), "%s:%d", host, port);
    *out = api;
    return NULL;
}

const char *ek_api_address(const ek_api_t *api)
{
    return api->address;
}

void ek_api_stop(ek_api_t *api)
{
    if (!api)
        return;
    MHD_stop_daemon(api->daemon);
    free(api);
}
