/* api.c - HTTP server of the conductor: request bodies, authentication, the
 * route table, JSON responses. Handlers live in r_*.c. */
#include "conductor/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/backoff.h"
#include "common/db.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/secret.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "conductor/hashpool.h"
#include "conductor/input.h"
#include "conductor/paging.h"
#include "conductor/routes.h"

#define SEG_MAX (EK_UUID_STRLEN * 4)

struct ek_api {
    ek_app_t *app;
    struct MHD_Daemon *daemon;
    bool https;
    char address[72];
    size_t max_body;
    char metrics_digest[65]; /* SHA-256 of [api] metrics_token, "" when unset */
    /* CORS: [api] cors_allowed_origins (empty: off), cors_allow_headers */
    const ek_strlist_t *cors_origins, *cors_headers;
    char *cors_headers_joined;
    int cors_max_age;
};

enum phase {
    PHASE_BODY,     /* admitted: the body arrives */
    PHASE_DEFERRED, /* a handler's work runs on the hash pool */
    PHASE_DONE,     /* a response was queued */
};

/* What a request accumulates from its headers to its response. */
struct request {
    enum phase phase;
    const struct route *route;
    char segs[5][SEG_MAX];
    int nsegs;
    char source[64];
    /* CORS: a preflight answered with the path's methods; no CORS headers */
    bool preflight, no_cors;
    char preflight_methods[64];
    /* the caller, authenticated before the body was read */
    char user_id[EK_UUID_STRLEN + 1];
    char project_id[EK_UUID_STRLEN + 1];
    bool is_admin, scoped;
    /* the body */
    ek_strbuf_t body;
    size_t limit;
    bool too_large;
    /* deferred work: the pool thread and the API thread meet under lock */
    pthread_mutex_t lock;
    bool lock_ready, suspended, done;
    struct MHD_Connection *conn;
    ek_defer_t defer;
};

enum route_auth {
    AUTH_NONE,     /* public */
    AUTH_USER,     /* any valid token (also an unscoped one) */
    AUTH_PROJECT,  /* a scoped token, and /v1/{project_id}/ in the path */
    AUTH_ADMIN,    /* an admin's token */
    AUTH_OPERATOR, /* an admin's token or [api] metrics_token */
};

struct route {
    const char *method;
    const char *pattern; /* segments; "*" captures one (the first after /v1/ is the project) */
    enum route_auth auth;
    ek_route_fn fn;
    /* a list: the handler answers {"<list_key>": [...]}, which the query's
     * sort_key, sort_dir, marker and limit then sort and cut (paging.h) */
    const char *list_key;
};

#define P(method, pattern, fn)                                                                     \
    {                                                                                              \
        method, "/v1/*/" pattern, AUTH_PROJECT, fn, NULL                                           \
    }
#define PL(pattern, fn, key)                                                                       \
    {                                                                                              \
        "GET", "/v1/*/" pattern, AUTH_PROJECT, fn, key                                             \
    }

static const struct route routes[] = {
    {"GET", "/healthz", AUTH_NONE, NULL, NULL},
    {"GET", "/metrics", AUTH_OPERATOR, r_metrics, NULL},
    {"POST", "/v1/auth/tokens", AUTH_NONE, r_tokens_create, NULL},
    {"GET", "/v1/users", AUTH_ADMIN, r_users_list, "users"},
    {"POST", "/v1/users", AUTH_ADMIN, r_users_create, NULL},
    {"DELETE", "/v1/users/*", AUTH_ADMIN, r_users_delete, NULL},
    {"PUT", "/v1/users/*", AUTH_ADMIN, r_users_update, NULL},
    {"GET", "/v1/projects", AUTH_ADMIN, r_projects_list, "projects"},
    {"POST", "/v1/projects", AUTH_ADMIN, r_projects_create, NULL},

    /* the Keystone v3 identity facade (r_keystone.c) */
    {"GET", "/v3", AUTH_NONE, r_ks_version, NULL},
    {"POST", "/v3/auth/tokens", AUTH_NONE, r_ks_tokens_create, NULL},
    {"GET", "/v3/auth/tokens", AUTH_USER, r_ks_tokens_show, NULL},
    {"HEAD", "/v3/auth/tokens", AUTH_USER, r_ks_tokens_show, NULL},
    {"DELETE", "/v3/auth/tokens", AUTH_USER, r_ks_tokens_delete, NULL},
    {"GET", "/v3/auth/catalog", AUTH_USER, r_ks_catalog, NULL},
    {"GET", "/v3/auth/projects", AUTH_USER, r_ks_projects, NULL},
    {"GET", "/v3/users/*", AUTH_USER, r_ks_user_show, NULL},
    {"GET", "/v3/users/*/projects", AUTH_USER, r_ks_user_projects, NULL},
    {"GET", "/v3/role_assignments", AUTH_USER, r_ks_role_assignments, NULL},

    P("GET", "providers", r_providers_list),
    P("GET", "providers/*/schemas/*", r_provider_schema),
    PL("regions", r_regions_list, "regions"),
    PL("regions/detail", r_regions_list, "regions"),
    P("POST", "regions", r_regions_create),
    P("GET", "regions/*", r_regions_show),
    P("PUT", "regions/*", r_regions_update),
    P("DELETE", "regions/*", r_regions_delete),
    PL("services", r_services_list, "services"),
    PL("services/detail", r_services_list, "services"),
    P("POST", "services", r_services_create),
    P("GET", "services/*", r_services_show),
    P("PUT", "services/*", r_services_update),
    P("DELETE", "services/*", r_services_delete),

    PL("endpoints", r_endpoints_list, "endpoints"),
    PL("endpoints/detail", r_endpoints_list, "endpoints"),
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

    PL("transfers", r_transfers_list, "transfers"),
    PL("transfers/detail", r_transfers_list, "transfers"),
    P("POST", "transfers", r_transfers_create),
    P("GET", "transfers/*", r_transfers_show),
    P("PUT", "transfers/*", r_transfers_update),
    P("DELETE", "transfers/*", r_transfers_delete),
    P("POST", "transfers/*/actions", r_transfers_action),
    PL("transfers/*/executions", r_executions_list, "executions"),
    PL("transfers/*/executions/detail", r_executions_list, "executions"),
    P("POST", "transfers/*/executions", r_executions_create),
    P("GET", "transfers/*/executions/*", r_executions_show),
    P("DELETE", "transfers/*/executions/*", r_executions_delete),
    P("POST", "transfers/*/executions/*/actions", r_executions_action),
    PL("transfers/*/schedules", r_schedules_list, "schedules"),
    P("POST", "transfers/*/schedules", r_schedules_create),
    P("GET", "transfers/*/schedules/*", r_schedules_show),
    P("PUT", "transfers/*/schedules/*", r_schedules_update),
    P("DELETE", "transfers/*/schedules/*", r_schedules_delete),

    PL("deployments", r_deployments_list, "deployments"),
    PL("deployments/detail", r_deployments_list, "deployments"),
    P("POST", "deployments", r_deployments_create),
    P("GET", "deployments/*", r_deployments_show),
    P("DELETE", "deployments/*", r_deployments_delete),
    P("POST", "deployments/*/actions", r_deployments_action),

    PL("minion_pools", r_pools_list, "minion_pools"),
    PL("minion_pools/detail", r_pools_list, "minion_pools"),
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

/* Coriolis's fault name of a status (its API's webob faults). */
static const char *fault_name(unsigned status)
{
    switch (status) {
    case 400:
        return "badRequest";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "itemNotFound";
    case 405:
        return "badMethod";
    case 409:
        return "conflictingRequest";
    case 413:
        return "overLimit";
    case 415:
        return "badMediaType";
    case 501:
        return "notImplemented";
    case 503:
        return "serviceUnavailable";
    default:
        return "computeFault";
    }
}

/* {"error": {"fault", "code", "message"}}: Coriolis's error body (under /v3,
 * Keystone's, see keystone_error_title). */
void ek_resp_fail(ek_resp_t *resp, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    json_object *err = json_object_new_object();
    json_object_object_add(err, "fault", json_object_new_string(fault_name(status)));
    json_object_object_add(err, "code", json_object_new_int((int)status));
    json_object_object_add(err, "message", json_object_new_string(msg));
    ek_resp_wrap(resp, status, "error", err);
    free(msg);
}

void ek_resp_defer(ek_resp_t *resp, const ek_defer_t *defer)
{
    resp->defer = *defer;
}

void ek_resp_error(ek_resp_t *resp, ek_err_t *err)
{
    unsigned status;
    switch (err->code) {
    case EK_E_INVALID:
        status = MHD_HTTP_BAD_REQUEST;
        break;
    case EK_E_AUTH:
        status = MHD_HTTP_UNAUTHORIZED;
        break;
    case EK_E_FORBIDDEN:
        status = MHD_HTTP_FORBIDDEN;
        break;
    case EK_E_NOTFOUND:
        status = MHD_HTTP_NOT_FOUND;
        break;
    case EK_E_CONFLICT:
        status = MHD_HTTP_CONFLICT;
        break;
    case EK_E_TIMEOUT:
        status = MHD_HTTP_GATEWAY_TIMEOUT;
        break;
    case EK_E_UNAVAILABLE:
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        break;
    default:
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        break;
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

const char *ek_req_header(const ek_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
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

/* Matches url against pattern; fills segs with the captured segments. */
static bool match(const char *pattern, const char *url, char segs[][SEG_MAX], int *nsegs)
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
            if (*nsegs == 5 || ulen >= SEG_MAX)
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

static const char *request_token(struct MHD_Connection *conn)
{
    const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Token");
    const char *authz =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!token && authz && strncasecmp(authz, "Bearer ", 7) == 0)
        token = authz + 7;
    return token && *token ? token : NULL;
}

/* Looks the token up; fills rq's identity. Takes a database connection only
 * for the one query. */
static ek_err_t *authenticate(ek_api_t *api, struct request *rq, const char *token)
{
    if (!token)
        return ek_err_new(EK_E_AUTH, "authentication required: send a token from POST "
                                     "/v1/auth/tokens in X-Auth-Token or Authorization: Bearer");
    if (strlen(token) > 512 || !ek_utf8_is_valid(token, strlen(token)))
        return ek_err_new(EK_E_AUTH, "the token is invalid or has expired: get a new one from "
                                     "POST /v1/auth/tokens");
    char digest[65];
    ek_token_digest(token, digest);
    PGconn *db;
    ek_err_t *err = ek_dbpool_get(api->app->db, &db);
    if (err)
        return err;
    PGresult *res;
    err = ek_db_query(db, &res,
                      "SELECT t.user_id, t.project_id, t.is_admin, t.scoped FROM tokens t "
                      "JOIN users u ON u.id = t.user_id "
                      "WHERE t.token_hash = $1 AND t.expires_at > now() AND u.enabled",
                      1, (const char *[]){digest});
    ek_dbpool_put(api->app->db, db);
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_AUTH, "the token is invalid or has expired: get a new one from "
                                     "POST /v1/auth/tokens");
    }
    snprintf(rq->user_id, sizeof(rq->user_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(rq->project_id, sizeof(rq->project_id), "%s", PQgetvalue(res, 0, 1));
    rq->is_admin = PQgetvalue(res, 0, 2)[0] == 't';
    rq->scoped = PQgetvalue(res, 0, 3)[0] == 't';
    PQclear(res);
    return NULL;
}

static bool is_metrics_token(const ek_api_t *api, const char *token)
{
    if (!api->metrics_digest[0] || !token)
        return false;
    char digest[65];
    ek_token_digest(token, digest);
    return CRYPTO_memcmp(digest, api->metrics_digest, sizeof(digest)) == 0;
}

struct query_check {
    ek_err_t *err;
};

static enum MHD_Result check_query_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    (void)kind;
    struct query_check *qc = cls;
    char what[96];
    if (!ek_utf8_is_valid(key, strlen(key))) {
        qc->err = ek_err_new(EK_E_INVALID, "a query parameter name contains invalid UTF-8 or a "
                                           "NUL character; send UTF-8 text");
        return MHD_NO;
    }
    snprintf(what, sizeof(what), "query parameter %s", key);
    if (value && (qc->err = ek_utf8_check_text(what, value, strlen(value))))
        return MHD_NO;
    return MHD_YES;
}

/* ---- CORS (as oslo.middleware's cors) --------------------------------------------- */

/* Headers a page may always send (CORS's safelisted request headers). */
static const char *const cors_simple_headers[] = {"Accept", "Accept-Language", "Content-Language",
                                                  "Content-Type"};

static bool cors_origin_allowed(const ek_api_t *api, const char *origin)
{
    if (!origin || !*origin)
        return false;
    for (size_t i = 0; i < api->cors_origins->n; i++)
        if (strcmp(api->cors_origins->items[i], "*") == 0 ||
            strcmp(api->cors_origins->items[i], origin) == 0)
            return true;
    return false;
}

static bool cors_header_allowed(const ek_api_t *api, const char *name, size_t len)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(cors_simple_headers); i++)
        if (strlen(cors_simple_headers[i]) == len &&
            !strncasecmp(cors_simple_headers[i], name, len))
            return true;
    for (size_t i = 0; i < api->cors_headers->n; i++)
        if (strlen(api->cors_headers->items[i]) == len &&
            !strncasecmp(api->cors_headers->items[i], name, len))
            return true;
    return false;
}

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * from an allowed origin, for a method the path has, asking only for allowed
 * headers: true, with the path's methods in rq. It needs no token. */
static bool cors_preflight(ek_api_t *api, struct request *rq, struct MHD_Connection *conn,
                           const char *url)
{
    if (!cors_origin_allowed(api, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")))
        return false;
    const char *want =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
    const char *hdrs =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    if (!want || !*want)
        return false;
    for (const char *h = hdrs ? hdrs : ""; *h;) {
        h += strspn(h, " \t,");
        size_t n = strcspn(h, ",");
        size_t len = n;
        while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
            len--;
        if (len && !cors_header_allowed(api, h, len))
            return false;
        h += n;
    }
    bool ok = false;
    ek_strbuf_t methods;
    ek_strbuf_init(&methods, 0);
    for (size_t i = 0; i < EK_ARRAY_SIZE(routes); i++) {
        if (!match(routes[i].pattern, url, rq->segs, &rq->nsegs))
            continue;
        ok = ok || strcmp(routes[i].method, want) == 0;
        char item[16];
        snprintf(item, sizeof(item), "%s%s", methods.len ? ", " : "", routes[i].method);
        if (!strstr(methods.len ? methods.buf : "", routes[i].method))
            ek_strbuf_add(&methods, item, strlen(item));
    }
    if (ok)
        snprintf(rq->preflight_methods, sizeof(rq->preflight_methods), "%s", methods.buf);
    ek_strbuf_release(&methods);
    rq->nsegs = 0;
    return ok;
}

/* The CORS headers of a response to an allowed origin (none when CORS is off). */
static void cors_headers(const ek_api_t *api, const struct request *rq, struct MHD_Connection *conn,
                         struct MHD_Response *r)
{
    if (!api->cors_origins->n)
        return;
    MHD_add_response_header(r, "Vary", "Origin");
    if (rq->no_cors && !rq->preflight)
        return;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!cors_origin_allowed(api, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    if (rq->preflight) {
        char age[16];
        snprintf(age, sizeof(age), "%d", api->cors_max_age);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", rq->preflight_methods);
        MHD_add_response_header(r, "Access-Control-Allow-Headers", api->cors_headers_joined);
        MHD_add_response_header(r, "Access-Control-Max-Age", age);
    } else {
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Subject-Token, Retry-After");
    }
}

/* What is decided from the request line and headers alone, before any body
 * is read: the route, the encoding of the path and query, the Content-Type,
 * the caller and the body limit. false with an error response in early. */
static bool admit(ek_api_t *api, struct request *rq, struct MHD_Connection *conn, const char *url,
                  const char *method, ek_resp_t *early)
{
    ek_err_t *err;
    if ((err = ek_utf8_check_text("path", url, strlen(url)))) {
        ek_resp_error(early, err);
        return false;
    }
    struct query_check qc = {NULL};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_query_value, &qc);
    if (qc.err) {
        ek_resp_error(early, qc.err);
        return false;
    }
    if (strcmp(method, "OPTIONS") == 0) {
        /* a CORS preflight is answered here, without a token; any other
         * OPTIONS gets no CORS headers (and a 405 or 404 below) */
        rq->no_cors = true;
        if (api->cors_origins->n && cors_preflight(api, rq, conn, url)) {
            rq->preflight = true;
            ek_resp_json(early, MHD_HTTP_NO_CONTENT, NULL);
            return false;
        }
    }
    bool path_known = false;
    for (size_t i = 0; i < EK_ARRAY_SIZE(routes) && !rq->route; i++) {
        if (!match(routes[i].pattern, url, rq->segs, &rq->nsegs))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            rq->route = &routes[i];
    }
    if (!rq->route) {
        if (path_known)
            ek_resp_fail(early, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s", method,
                         url);
        else
            ek_resp_fail(early, MHD_HTTP_NOT_FOUND, "no route for %s %s", method, url);
        return false;
    }
    const char *ctype =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "DELETE") &&
        !ek_input_content_type_ok(ctype)) {
        ek_resp_fail(early, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                     "the body must be JSON: send Content-Type: application/json");
        return false;
    }
    const struct route *r = rq->route;
    const char *token = request_token(conn);
    rq->limit = EK_API_ANON_MAX_BODY;
    if (r->auth == AUTH_OPERATOR && is_metrics_token(api, token)) {
        rq->limit = api->max_body;
    } else if (r->auth != AUTH_NONE) {
        if ((err = authenticate(api, rq, token))) {
            ek_resp_error(early, err);
            return false;
        }
        if ((r->auth == AUTH_ADMIN || r->auth == AUTH_OPERATOR) && !rq->is_admin) {
            ek_resp_fail(early, MHD_HTTP_FORBIDDEN, "only an admin may do that");
            return false;
        }
        if (r->auth == AUTH_PROJECT && !rq->scoped) {
            ek_resp_fail(early, MHD_HTTP_FORBIDDEN,
                         "the token is unscoped: get one scoped to project %s (POST "
                         "/v3/auth/tokens with auth.scope.project, or POST /v1/auth/tokens)",
                         rq->segs[0]);
            return false;
        }
        if (r->auth == AUTH_PROJECT && (!ek_uuid_is_valid(rq->segs[0]) ||
                                        (!rq->is_admin && strcmp(rq->segs[0], rq->project_id)))) {
            /* another project's id answers 404, as if it did not exist */
            ek_resp_fail(early, MHD_HTTP_NOT_FOUND, "project %s not found", rq->segs[0]);
            return false;
        }
        rq->limit = api->max_body;
    }
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen && strtoull(clen, NULL, 10) > rq->limit) {
        ek_resp_fail(early, MHD_HTTP_CONTENT_TOO_LARGE,
                     "request body is larger than the limit of %zu bytes%s", rq->limit,
                     rq->limit == api->max_body ? " ([api] max_body_size)"
                                                : " for a request without a token");
        return false;
    }
    return true;
}

static enum MHD_Result page_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    ek_page_param(cls, key, value);
    return MHD_YES;
}

/* A list route's answer sorted and cut by the query (paging.h). */
static void page_list(const ek_page_t *page, const char *key, ek_resp_t *resp)
{
    json_object *list, *out;
    if (resp->status != MHD_HTTP_OK || !resp->body ||
        !json_object_object_get_ex(resp->body, key, &list) ||
        !json_object_is_type(list, json_type_array))
        return;
    ek_err_t *err = ek_page_apply(page, list, &out);
    if (err)
        ek_resp_error(resp, err);
    else
        json_object_object_add(resp->body, key, out);
}

/* Runs the route's handler on a complete request. */
static void handle(struct request *rq, ek_req_t *req, ek_resp_t *resp)
{
    const struct route *found = rq->route;
    if (!found->fn) { /* healthz */
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "status", json_object_new_string("ok"));
        json_object_object_add(doc, "version", json_object_new_string(EKMAN_VERSION));
        ek_resp_json(resp, MHD_HTTP_OK, doc);
        return;
    }
    ek_err_t *err;
    ek_page_t page;
    ek_page_init(&page);
    if (found->list_key) { /* the paging parameters are checked before any query */
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, page_param, &page);
        if ((err = ek_page_finish(&page))) {
            ek_resp_error(resp, err);
            return;
        }
    }
    if (rq->body.len) {
        if ((err = ek_json_parse(rq->body.buf, rq->body.len, &req->body)) ||
            (err = ek_input_check_body(req->body, rq->body.buf, rq->body.len))) {
            ek_resp_error(resp, err);
            return;
        }
    }
    if ((err = ek_dbpool_get(req->app->db, &req->db))) {
        ek_resp_error(resp, err);
        return;
    }
    int first = 0;
    if (found->auth == AUTH_PROJECT) {
        memcpy(req->project_id, rq->segs[0], EK_UUID_STRLEN + 1); /* validated as a UUID */
        first = 1;
    }
    for (int i = first; i < rq->nsegs; i++)
        req->arg[req->nargs++] = rq->segs[i];
    found->fn(req, resp);
    if (found->list_key && !resp->defer.work)
        page_list(&page, found->list_key, resp);
}

/* ---- libmicrohttpd glue --------------------------------------------------------- */

static enum MHD_Result send_resp(const ek_api_t *api, const struct request *rq,
                                 struct MHD_Connection *conn, ek_resp_t *resp)
{
    const char *type = "application/json";
    char *text;
    if (resp->text) {
        text = resp->text;
        resp->text = NULL;
        type = "text/plain; version=0.0.4";
    } else if (!resp->body) {
        text = ek_xstrdup(resp->status == MHD_HTTP_NO_CONTENT ? "" : "{}");
    } else {
        text = ek_json_dump(resp->body, false);
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (resp->retry_after) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%u", resp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    if (resp->subject_token)
        MHD_add_response_header(r, "X-Subject-Token", resp->subject_token);
    cors_headers(api, rq, conn, r);
    enum MHD_Result rc = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Under /v3 an error is Keystone's {"error": {"code", "title", "message"}}
 * (no Coriolis "fault"). */
static void keystone_error_title(const char *url, ek_resp_t *resp)
{
    json_object *err, *title;
    if (strncmp(url, "/v3", 3) || (url[3] && url[3] != '/') || resp->status < 400 || !resp->body ||
        !json_object_object_get_ex(resp->body, "error", &err) ||
        !json_object_is_type(err, json_type_object) ||
        json_object_object_get_ex(err, "title", &title))
        return;
    const char *phrase = MHD_get_reason_phrase_for(resp->status);
    json_object_object_del(err, "fault");
    json_object_object_add(err, "title",
                           json_object_new_string(phrase && *phrase ? phrase : "Error"));
}

/* Counts, logs and queues a response; frees what it holds. */
static enum MHD_Result respond(ek_api_t *api, struct request *rq, struct MHD_Connection *conn,
                               const char *method, const char *url, ek_resp_t *resp)
{
    rq->phase = PHASE_DONE;
    if (!resp->status)
        ek_resp_fail(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "the handler set no response");
    unsigned cls_idx = resp->status / 100;
    if (cls_idx >= 1 && cls_idx <= 5)
        atomic_fetch_add(&api->app->http_requests[cls_idx], 1);
    keystone_error_title(url, resp);
    char status[8];
    snprintf(status, sizeof(status), "%u", resp->status);
    ek_log_kv(resp->status >= 500 ? EK_LOG_WARNING : EK_LOG_DEBUG, "request", "method", method,
              "url", url, "status", status, NULL);
    enum MHD_Result r = send_resp(api, rq, conn, resp);
    json_object_put(resp->body);
    free(resp->text);
    ek_free_secret(resp->subject_token);
    return r;
}

static void request_fill(ek_api_t *api, struct request *rq, ek_req_t *req,
                         struct MHD_Connection *conn, const char *method, const char *url)
{
    *req = (ek_req_t){.app = api->app, .conn = conn, .method = method, .url = url};
    memcpy(req->user_id, rq->user_id, sizeof(req->user_id));
    memcpy(req->project_id, rq->project_id, sizeof(req->project_id));
    req->is_admin = rq->is_admin;
    req->scoped = rq->scoped;
    memcpy(req->source, rq->source, sizeof(req->source));
}

static void request_release(ek_api_t *api, ek_req_t *req)
{
    if (req->db)
        ek_dbpool_put(api->app->db, req->db);
    req->db = NULL;
    json_object_put(req->body);
    req->body = NULL;
}

/* On a hash pool thread: the handler's slow work, then wake the connection. */
static void deferred_run(void *arg)
{
    struct request *rq = arg;
    rq->defer.work(rq->defer.arg);
    pthread_mutex_lock(&rq->lock);
    rq->done = true;
    if (rq->suspended)
        MHD_resume_connection(rq->conn); /* rq is not touched after the unlock */
    pthread_mutex_unlock(&rq->lock);
}

static void defer_release(struct request *rq)
{
    if (rq->defer.release && rq->defer.arg)
        rq->defer.release(rq->defer.arg);
    memset(&rq->defer, 0, sizeof(rq->defer));
}

/* The deferred work is done: the handler's second half on this thread. */
static enum MHD_Result deferred_finish(ek_api_t *api, struct request *rq,
                                       struct MHD_Connection *conn, const char *method,
                                       const char *url)
{
    ek_req_t req;
    ek_resp_t resp = {0};
    request_fill(api, rq, &req, conn, method, url);
    ek_err_t *err = ek_dbpool_get(api->app->db, &req.db);
    if (err)
        ek_resp_error(&resp, err);
    else
        rq->defer.finish(&req, &resp, rq->defer.arg);
    defer_release(rq);
    request_release(api, &req);
    return respond(api, rq, conn, method, url, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
    (void)version;
    ek_api_t *api = cls;
    struct request *rq = *state;
    if (!rq) {
        rq = ek_xcalloc(1, sizeof(*rq));
        ek_strbuf_init(&rq->body, 0);
        *state = rq;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, rq->source,
                      sizeof(rq->source));
        ek_resp_t early = {0};
        if (!admit(api, rq, conn, url, method, &early))
            return respond(api, rq, conn, method, url, &early);
        return MHD_YES;
    }
    if (rq->phase == PHASE_DEFERRED) {
        *data_size = 0;
        return deferred_finish(api, rq, conn, method, url);
    }
    if (rq->phase != PHASE_BODY) {
        *data_size = 0;
        return MHD_YES;
    }
    if (*data_size) {
        if (rq->too_large || rq->body.len + *data_size > rq->limit)
            rq->too_large = true; /* the rest is read and dropped */
        else
            ek_strbuf_add(&rq->body, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    ek_resp_t resp = {0};
    if (rq->too_large) {
        ek_resp_fail(&resp, MHD_HTTP_CONTENT_TOO_LARGE,
                     "request body is larger than the limit of %zu bytes%s", rq->limit,
                     rq->limit == api->max_body ? " ([api] max_body_size)"
                                                : " for a request without a token");
        return respond(api, rq, conn, method, url, &resp);
    }
    ek_req_t req;
    request_fill(api, rq, &req, conn, method, url);
    handle(rq, &req, &resp);
    request_release(api, &req);
    ek_strbuf_release(&rq->body);
    if (!resp.defer.work)
        return respond(api, rq, conn, method, url, &resp);

    /* the handler continues on the hash pool: this thread serves others */
    json_object_put(resp.body);
    free(resp.text);
    ek_free_secret(resp.subject_token);
    rq->defer = resp.defer;
    rq->conn = conn;
    pthread_mutex_init(&rq->lock, NULL);
    rq->lock_ready = true;
    rq->phase = PHASE_DEFERRED;
    ek_err_t *err = ek_hashpool_submit(api->app->hashpool, rq->source, deferred_run, rq);
    if (err) {
        if (rq->defer.refused) {
            ek_req_t req2;
            request_fill(api, rq, &req2, conn, method, url);
            rq->defer.refused(&req2, rq->defer.arg);
        }
        defer_release(rq);
        ek_resp_t busy = {0};
        ek_resp_error(&busy, err);
        busy.retry_after = 1;
        return respond(api, rq, conn, method, url, &busy);
    }
    pthread_mutex_lock(&rq->lock);
    bool done = rq->done;
    if (!done) {
        MHD_suspend_connection(conn);
        rq->suspended = true;
    }
    pthread_mutex_unlock(&rq->lock);
    if (done) /* the pool was faster than us */
        return deferred_finish(api, rq, conn, method, url);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    struct request *rq = *state;
    if (!rq)
        return;
    if (rq->lock_ready) {
        /* the pool thread may still be leaving deferred_run */
        pthread_mutex_lock(&rq->lock);
        pthread_mutex_unlock(&rq->lock);
        pthread_mutex_destroy(&rq->lock);
    }
    defer_release(rq);
    ek_strbuf_release(&rq->body);
    free(rq);
    *state = NULL;
}

/* libmicrohttpd's own messages (a client that went away, a malformed request)
 * go to the log in its format, at most LOG_BURST lines a minute: a client must
 * not be able to grow the log at will. */
#define LOG_BURST 20

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t window;
    static unsigned lines, dropped;
    time_t now = time(NULL);
    unsigned report = 0;
    pthread_mutex_lock(&lock);
    if (now - window >= 60) {
        report = dropped;
        window = now;
        lines = dropped = 0;
    }
    bool write_it = lines < LOG_BURST;
    if (write_it)
        lines++;
    else
        dropped++;
    pthread_mutex_unlock(&lock);
    if (report) {
        char n[16];
        snprintf(n, sizeof(n), "%u", report);
        ek_log_kv(EK_LOG_WARNING, "HTTP server messages suppressed in the last minute", "count", n,
                  NULL);
    }
    if (!write_it)
        return;
    char *msg = ek_xvasprintf(fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ek_log_kv(EK_LOG_WARNING, "HTTP server", "detail", msg, NULL);
    free(msg);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes the path and query values in place. A %00 becomes the
 * invalid UTF-8 pair C0 80 instead of a NUL that would silently cut the
 * string: the UTF-8 check at the edge then refuses it. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            unsigned char c = (unsigned char)(hi * 16 + lo);
            if (c == 0) {
                *w++ = (char)0xc0;
                *w++ = (char)0x80;
            } else {
                *w++ = (char)c;
            }
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* [api] tls_cert_file and tls_key_file read (both, or neither: plain HTTP). */
static ek_err_t *tls_material(const ek_config_t *cfg, char **cert, char **key)
{
    const char *cf = ek_config_get_string(cfg, "api", "tls_cert_file");
    const char *kf = ek_config_get_string(cfg, "api", "tls_key_file");
    size_t len;
    *cert = *key = NULL;
    if (!*cf && !*kf)
        return NULL;
    if (!*cf || !*kf)
        return ek_err_new(EK_E_INVALID, "[api] tls_cert_file and tls_key_file go together: set "
                                        "both for HTTPS, or neither for plain HTTP");
    ek_err_t *err = ek_file_read(cf, 1 << 20, cert, &len);
    if (err)
        return ek_err_prefix(err, "[api] tls_cert_file");
    if (!strstr(*cert, "-----BEGIN CERTIFICATE-----")) {
        free(*cert);
        *cert = NULL;
        return ek_err_new(EK_E_INVALID, "[api] tls_cert_file \"%s\" holds no PEM certificate", cf);
    }
    if ((err = ek_file_read(kf, 1 << 20, key, &len))) {
        free(*cert);
        *cert = NULL;
        return ek_err_prefix(err, "[api] tls_key_file");
    }
    if (!strstr(*key, "PRIVATE KEY-----")) {
        free(*cert);
        ek_free_secret(*key);
        *cert = *key = NULL;
        return ek_err_new(EK_E_INVALID, "[api] tls_key_file \"%s\" holds no PEM private key", kf);
    }
    return NULL;
}

/* [api] cors_allowed_origins are origins (scheme://host[:port], no path) or
 * "*"; cors_allow_headers header names. Joins the headers for preflights. */
static ek_err_t *check_cors_config(ek_api_t *api)
{
    for (size_t i = 0; i < api->cors_origins->n; i++) {
        const char *o = api->cors_origins->items[i];
        const char *host = !strncmp(o, "http://", 7)    ? o + 7
                           : !strncmp(o, "https://", 8) ? o + 8
                                                        : NULL;
        if (strcmp(o, "*") && (!host || !*host || strpbrk(host, "/?# \t")))
            return ek_err_new(EK_E_INVALID,
                              "[api] cors_allowed_origins: '%s' is not an origin: write "
                              "scheme://host[:port] without a path (e.g. "
                              "https://ui.example.com:8443), or * for any",
                              o);
    }
    ek_strbuf_t joined;
    ek_strbuf_init(&joined, 0);
    for (size_t i = 0; i < api->cors_headers->n; i++) {
        const char *h = api->cors_headers->items[i];
        for (const char *c = h; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) {
                ek_strbuf_release(&joined);
                return ek_err_new(EK_E_INVALID,
                                  "[api] cors_allow_headers: '%s' is not a header name (letters, "
                                  "digits, - and _)",
                                  h);
            }
        if (joined.len)
            ek_strbuf_add(&joined, ", ", 2);
        ek_strbuf_add(&joined, h, strlen(h));
    }
    for (size_t i = 0; i < EK_ARRAY_SIZE(cors_simple_headers); i++) {
        if (joined.len)
            ek_strbuf_add(&joined, ", ", 2);
        ek_strbuf_add(&joined, cors_simple_headers[i], strlen(cors_simple_headers[i]));
    }
    api->cors_headers_joined = ek_xstrdup(joined.buf);
    ek_strbuf_release(&joined);
    return NULL;
}

static void ek_api_free_logins(ek_app_t *app)
{
    ek_hashpool_free(app->hashpool);
    ek_backoff_free(app->login_by_user);
    ek_backoff_free(app->login_by_addr);
    app->hashpool = NULL;
    app->login_by_user = app->login_by_addr = NULL;
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
    const char *pub = ek_config_get_string(cfg, "api", "public_url");
    if (*pub && strncmp(pub, "http://", 7) && strncmp(pub, "https://", 8))
        return ek_err_new(EK_E_INVALID,
                          "[api] public_url '%s' is not an http:// or https:// URL (e.g. "
                          "https://migrate.example.com:7667), or leave it empty",
                          pub);
    ek_api_t *api = ek_xcalloc(1, sizeof(*api));
    api->app = app;
    api->max_body = (size_t)ek_config_get_int(cfg, "api", "max_body_size");
    api->cors_origins = ek_config_get_list(cfg, "api", "cors_allowed_origins");
    api->cors_headers = ek_config_get_list(cfg, "api", "cors_allow_headers");
    api->cors_max_age = (int)ek_config_get_int(cfg, "api", "cors_max_age");
    ek_err_t *err = check_cors_config(api);
    if (err) {
        free(api);
        return err;
    }
    const char *metrics_token = ek_config_get_string(cfg, "api", "metrics_token");
    if (*metrics_token)
        ek_token_digest(metrics_token, api->metrics_digest);
    unsigned threads = (unsigned)ek_config_get_int(cfg, "api", "threads");
    unsigned login_threads = (unsigned)ek_config_get_int(cfg, "api", "login_threads");
    app->hashpool = ek_hashpool_new(login_threads, EK_API_LOGIN_QUEUE, EK_API_LOGIN_PER_SOURCE);
    app->login_by_user = ek_backoff_new(
        &(ek_backoff_policy_t){.free_failures = 5, .max_wait = 60, .forget_after = 900}, 4096);
    app->login_by_addr = ek_backoff_new(
        &(ek_backoff_policy_t){.free_failures = 10, .max_wait = 300, .forget_after = 900}, 4096);
    (void)ek_password_dummy_hash(); /* made now, not during the first login */
    /* HTTPS when [api] tls_cert_file is set (libmicrohttpd's TLS: GnuTLS) */
    char *cert = NULL, *key = NULL;
    err = tls_material(cfg, &cert, &key);
    if (err) {
        ek_api_free_logins(app);
        free(api->cors_headers_joined);
        free(api);
        return err;
    }
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    api->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME | (cert ? MHD_USE_TLS : 0),
        (uint16_t)port, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, api, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, api,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_ARRAY, cert ? tls : &tls[3], MHD_OPTION_END);
    ek_free_secret(key); /* libmicrohttpd keeps its own copy */
    free(cert);
    if (!api->daemon) {
        int e = errno;
        ek_api_free_logins(app);
        free(api->cors_headers_joined);
        free(api);
        return ek_err_new(EK_E_UNAVAILABLE,
                          "could not listen on %s:%d: %s (is another conductor running? set [api] "
                          "port; with HTTPS, are [api] tls_cert_file and tls_key_file a "
                          "matching PEM certificate and key?)",
                          host, port, strerror(e ? e : EADDRINUSE));
    }
    api->https = cert != NULL;
    snprintf(api->address, sizeof(api->address), "%s://%s:%d", api->https ? "https" : "http", host,
             port);
    app->api_https = api->https;
    snprintf(app->api_url, sizeof(app->api_url), "%s", api->address);
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
    /* logins still hashing resume their connections before the server stops */
    ek_hashpool_drain(api->app->hashpool);
    MHD_stop_daemon(api->daemon);
    ek_api_free_logins(api->app);
    free(api->cors_headers_joined);
    free(api);
}
