/* api.h - the conductor's HTTP server (libmicrohttpd) and what route handlers
 * share: the request (method, path arguments, parsed JSON body, the caller's
 * identity, a database connection) and the response (status + JSON body).
 *
 * Errors map to HTTP statuses by code: invalid 400, unauthorized 401,
 * forbidden 403, not found 404, conflict 409, timeout 504, unavailable 503,
 * anything else 500 (whose details go to the log, not to the client). The body
 * is Coriolis's {"error": {"fault", "code", "message"}} (Keystone's, with a
 * title instead of the fault, under /v3).
 *
 * A list route's {"<key>": [...]} is sorted and cut by the query's sort_key,
 * sort_dir, marker and limit after its handler ran (conductor/paging.h). With
 * [api] cors_allowed_origins set, CORS preflights are answered without a token
 * and answers to an allowed Origin carry the CORS headers (oslo.middleware's
 * cors).
 *
 * Before a handler runs, the edge has: matched the route, refused a
 * Content-Type other than JSON (415), authenticated the caller before reading
 * the body (unauthenticated bodies are limited to EK_API_ANON_MAX_BODY), read
 * at most [api] max_body_size, and checked every path segment, query value and
 * JSON string as UTF-8 without NUL and names/notes lengths (conductor/input.h). */
#ifndef EK_CONDUCTOR_API_H
#define EK_CONDUCTOR_API_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "common/error.h"
#include "common/uuid.h"
#include "conductor/app.h"

typedef struct ek_api ek_api_t;

/* The body limit of a request without a token (a login). */
#define EK_API_ANON_MAX_BODY 16384
/* Logins waiting for or in password hashing, in all and per client address. */
#define EK_API_LOGIN_QUEUE      32
#define EK_API_LOGIN_PER_SOURCE 1

typedef struct ek_req {
    ek_app_t *app;
    void *conn; /* struct MHD_Connection */
    const char *method;
    const char *url;
    const char *arg[4]; /* path arguments after the project id, in order */
    int nargs;
    json_object *body; /* NULL without a body */
    /* the caller */
    char user_id[EK_UUID_STRLEN + 1];
    char project_id[EK_UUID_STRLEN + 1]; /* the URL's project (the token's when absent) */
    bool is_admin;
    bool scoped; /* false: an unscoped Keystone v3 token (no project route) */
    PGconn *db;
    char source[64]; /* the client's address */
} ek_req_t;

typedef struct ek_resp ek_resp_t;

/* Slow work a handler hands off the request thread (password hashing): work
 * runs on the hash pool (conductor/hashpool.h) while the connection waits
 * without holding an API thread; then finish runs on an API thread with a
 * database connection and sets the response. release frees arg in every case,
 * also when the pool is full (the client gets 503 and refused is called) or
 * the client went away. */
typedef struct ek_defer {
    void (*work)(void *arg);
    void (*finish)(ek_req_t *req, ek_resp_t *resp, void *arg);
    void (*release)(void *arg);
    /* optional: told when the pool refused the work (before release) */
    void (*refused)(ek_req_t *req, void *arg);
    void *arg;
} ek_defer_t;

struct ek_resp {
    unsigned status;
    json_object *body;
    char *text;           /* instead of body: plain text (metrics) */
    unsigned retry_after; /* seconds; sent as Retry-After (429, 503) when set */
    char *subject_token;  /* sent as X-Subject-Token (Keystone v3); a secret, freed */
    ek_defer_t defer;     /* set instead of a status to continue off the thread */
};

typedef void (*ek_route_fn)(ek_req_t *req, ek_resp_t *resp);

/* Starts serving on [api] listen_address:port. */
EK_ERR_CHECK ek_api_start(ek_app_t *app, ek_api_t **out);
const char *ek_api_address(const ek_api_t *api);
void ek_api_stop(ek_api_t *api);

/* Sets the response; takes ownership of body. */
void ek_resp_json(ek_resp_t *resp, unsigned status, json_object *body);
/* {"<key>": obj} with status */
void ek_resp_wrap(ek_resp_t *resp, unsigned status, const char *key, json_object *obj);
/* Consumes err and sets an error response. */
void ek_resp_error(ek_resp_t *resp, ek_err_t *err);
void ek_resp_fail(ek_resp_t *resp, unsigned status, const char *fmt, ...) EK_PRINTF(3, 4);
/* Sets an error response and returns from the (void) handler. */
#define EK_RESP_RETURN_ERR(resp, e)                                                                \
    do {                                                                                           \
        ek_resp_error((resp), (e));                                                                \
        return;                                                                                    \
    } while (0)

/* Continues the request with slow work off the API thread (see ek_defer_t). */
void ek_resp_defer(ek_resp_t *resp, const ek_defer_t *defer);

/* A request header, or NULL. */
const char *ek_req_header(const ek_req_t *req, const char *name);
/* A query-string argument, or NULL (checked as UTF-8 without NUL at the edge). */
const char *ek_req_query(const ek_req_t *req, const char *key);
/* The request body's object under key ({"transfer": {...}}), or a 400. */
EK_ERR_CHECK ek_req_body_object(const ek_req_t *req, const char *key, json_object **out);
/* The project filter for queries: NULL for an admin (sees every project). */
const char *ek_req_scope(const ek_req_t *req);
/* Wraps a 404 for an object that does not exist or is not the caller's. */
ek_err_t *ek_err_not_found(const char *what, const char *id);

#endif
