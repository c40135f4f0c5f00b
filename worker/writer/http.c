/* http.c - the HTTP/1.1 face of ekman-writer. A client opens the frame
 * stream with
 *   POST /v1/stream HTTP/1.1 / Upgrade: ekman-writer/1 / Connection: Upgrade
 * and gets "101 Switching Protocols"; GET /v1/health answers 200 so that the
 * worker can wait for the VM; anything else gets a proper HTTP error and the
 * connection is closed. Keeping real HTTP in front lets proxies and load
 * balancers see what this is. */
#include "worker/writer/writer.h"

#include <stdio.h>
#include <string.h>
#include "common/log.h"

static ek_err_t *respond(ek_stream_t *s, int status, const char *reason, const char *extra,
                         const char *body)
{
    char buf[1024];
    bool own_conn = extra && strstr(extra, "Connection:");
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nServer: ekman-writer/" EKMAN_VERSION "\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n%s",
                     status, reason, *body == '{' ? "application/json" : "text/plain", strlen(body),
                     own_conn ? "" : "Connection: close\r\n", extra ? extra : "", body);
    return ek_stream_write_all(s, buf, (size_t)n);
}

ek_err_t *ek_http_serve(ek_stream_t *s, bool *upgraded)
{
    char buf[EK_HTTP_MAX_HEAD + 1];
    size_t len = 0;
    ek_http_request_t req;
    int rc = 0;
    *upgraded = false;
    /* Byte by byte: the frames may follow the head at once, and must stay in
     * the stream. A head is read once per connection. */
    while (rc == 0) {
        bool eof;
        ek_err_t *err = ek_stream_read_full(s, buf + len, 1, &eof);
        if (err)
            return err;
        if (eof)
            return len ? ek_err_new(EK_E_PROTOCOL, "connection closed inside the HTTP request")
                       : NULL;
        len++;
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            rc = ek_http_request_parse(buf, len, &req);
        else if (len >= EK_HTTP_MAX_HEAD)
            rc = -431;
    }
    if (rc == -431)
        return respond(s, 431, "Request Header Fields Too Large", NULL, "request head too large\n");
    if (rc < 0)
        return respond(s, 400, "Bad Request", NULL, "malformed HTTP request\n");
    ek_log_kv(EK_LOG_DEBUG, "http request", "method", req.method, "path", req.path, NULL);

    if (strcmp(req.path, "/v1/health") == 0) {
        if (strcmp(req.method, "GET") != 0 && strcmp(req.method, "HEAD") != 0)
            return respond(s, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                           "use GET /v1/health\n");
        return respond(s, 200, "OK", NULL,
                       "{\"status\":\"ok\",\"version\":\"" EKMAN_VERSION "\",\"protocol\":1}\n");
    }
    if (strcmp(req.path, "/v1/stream") != 0)
        return respond(s, 404, "Not Found", NULL, "no such resource\n");
    if (strcmp(req.method, "POST") != 0)
        return respond(s, 405, "Method Not Allowed", "Allow: POST\r\n",
                       "use POST /v1/stream with Upgrade: " EK_WRITER_UPGRADE "\n");
    if (!req.upgrade || !req.conn_upgrade)
        return respond(s, 426, "Upgrade Required",
                       "Upgrade: " EK_WRITER_UPGRADE "\r\nConnection: Upgrade, close\r\n",
                       "this resource needs Upgrade: " EK_WRITER_UPGRADE "\n");
    if (req.has_body)
        return respond(s, 400, "Bad Request", NULL, "the upgrade request takes no body\n");
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: " EK_WRITER_UPGRADE "\r\nConnection: Upgrade\r\n\r\n";
    ek_err_t *err = ek_stream_write_all(s, ok, sizeof(ok) - 1);
    if (!err)
        *upgraded = true;
    return err;
}
