/* http_parse.c - the parser of the writer's HTTP/1.1 request heads: strict
 * (request line, token names, no folded lines, bounded size and count) and
 * dependency-free, so that the fuzz target builds it alone. */
#include "worker/writer/writer.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 64

/* Case-insensitive search for a comma-separated token in a header value. */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return true;
    }
    return false;
}

int ek_http_request_parse(const char *buf, size_t len, ek_http_request_t *req)
{
    memset(req, 0, sizeof(*req));
    /* The head ends at the first empty line. */
    size_t head = 0;
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            head = i + 4;
            break;
        }
    }
    if (!head)
        return len >= EK_HTTP_MAX_HEAD ? -431 : 0;
    if (head > EK_HTTP_MAX_HEAD)
        return -431;
    req->head_len = head;

    /* Request line: METHOD SP TARGET SP HTTP/1.1 CRLF */
    const char *p = buf, *eol = memchr(p, '\r', head);
    if (!eol || eol[1] != '\n')
        return -400;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof(req->method))
        return -400;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1 || (size_t)(sp2 - sp1 - 1) >= sizeof(req->path))
        return -400;
    if ((size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return -400;
    for (const char *c = p; c < sp1; c++)
        if (!isupper((unsigned char)*c))
            return -400;
    /* Visible ASCII only, checked on the bytes (a NUL must not end the check). */
    for (const char *c = sp1 + 1; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return -400;
    memcpy(req->method, p, (size_t)(sp1 - p));
    memcpy(req->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));

    /* Header fields: NAME ":" OWS VALUE OWS CRLF */
    int n_headers = 0;
    p = eol + 2;
    const char *end = buf + head - 2; /* the final CRLF */
    while (p < end) {
        eol = memchr(p, '\r', (size_t)(end - p) + 1);
        if (!eol || eol[1] != '\n')
            return -400;
        if (++n_headers > MAX_HEADERS)
            return -431;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return -400;
        for (const char *c = p; c < colon; c++)
            if (!isgraph((unsigned char)*c))
                return -400; /* also rejects obsolete line folding */
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t nl = (size_t)(colon - p), vl = (size_t)(eol - v);
        for (size_t i = 0; i < vl; i++)
            if ((unsigned char)v[i] < ' ' && v[i] != '\t')
                return -400;
        if (nl == 7 && strncasecmp(p, "Upgrade", 7) == 0)
            req->upgrade = req->upgrade || has_token(v, vl, EK_WRITER_UPGRADE);
        else if (nl == 10 && strncasecmp(p, "Connection", 10) == 0)
            req->conn_upgrade = req->conn_upgrade || has_token(v, vl, "upgrade");
        else if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            for (size_t i = 0; i < vl; i++)
                if (!isdigit((unsigned char)v[i]) && v[i] != ' ')
                    return -400;
            for (size_t i = 0; i < vl; i++)
                if (v[i] != '0' && v[i] != ' ')
                    req->has_body = true;
        } else if (nl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
            req->has_body = true;
        p = eol + 2;
    }
    return 1;
}
