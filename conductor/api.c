/* api.c - HTTP server of the conductor: JSON in, JSON out, one route table. */
#include "conductor/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"

struct ek_api {
    struct MHD_Daemon *daemon;
    char address[64];
    size_t max_body;
};

/* What a request accumulates while its body arrives. */
struct request {
    ek_strbuf_t body;
    bool too_large;
};

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_object *doc)
{
    char *text = ek_json_dump(doc, false);
    json_object_put(doc);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *fmt, ...) EK_PRINTF(3, 4);
static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_int((int)status));
    json_object_object_add(err, "message", json_object_new_string(msg));
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "error", err);
    free(msg);
    return send_json(conn, status, doc);
}

static enum MHD_Result route(ek_api_t *api, struct MHD_Connection *conn, const char *method,
                             const char *url, struct request *req)
{
    if (strcmp(url, "/healthz") == 0) {
        if (strcmp(method, "GET") != 0)
            return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
                              method, url);
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "status", json_object_new_string("ok"));
        json_object_object_add(doc, "version", json_object_new_string(EKMAN_VERSION));
        return send_json(conn, MHD_HTTP_OK, doc);
    }
    return send_error(conn, MHD_HTTP_NOT_FOUND, "no route for %s %s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
    ek_api_t *api = cls;
    struct request *req = *state;
    if (!req) {
        req = ek_xcalloc(1, sizeof(*req));
        ek_strbuf_init(&req->body, 0);
        *state = req;
        return MHD_YES;
    }
    if (*data_size) {
        if (req->body.len + *data_size > api->max_body)
            req->too_large = true;
        else
            ek_strbuf_add(&req->body, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    if (req->too_large)
        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                          "request body is larger than the limit of %zu bytes", api->max_body);
    enum MHD_Result r = route(api, conn, method, url, req);
    ek_log_kv(EK_LOG_DEBUG, "request", "method", method, "url", url, NULL);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code)
{
    struct request *req = *state;
    if (req) {
        ek_strbuf_release(&req->body);
        free(req);
        *state = NULL;
    }
}

ek_err_t *ek_api_start(const ek_config_t *cfg, ek_api_t **out)
{
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
    api->max_body = (size_t)ek_config_get_int(cfg, "api", "max_body_size");
    unsigned threads = (unsigned)ek_config_get_int(cfg, "api", "threads");
    api->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, on_request, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
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
