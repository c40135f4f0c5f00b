/* imageio.c - ekman-writer frames served by imageio HTTP requests (imageio.h).
 *
 * One bridge per engine connection: a thread reading frames from its end of
 * a socket pair and answering each after its HTTP request completed, in
 * order. The engine keeps several requests in flight per connection; here
 * they wait in the socket buffer, and the engine's own parallelism is its
 * number of connections (the daemon allows 8 writers per ticket). */
#include "worker/transfer/imageio.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>
#include "common/compiler.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "proto/dataplane.h"

/* ---- the connection info ---------------------------------------------------------------- */

void ek_imageio_target_clear(ek_imageio_target_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->disks[i].path);
        ek_free_secret(t->disks[i].url);
        ek_free_secret(t->disks[i].proxy_url);
    }
    free(t->disks);
    free(t->ca_pem);
    memset(t, 0, sizeof(*t));
}

static ek_err_t *check_url(const char *what, size_t i, const char *key, const char *url)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        return ek_err_new(EK_E_INVALID, "%s.disks[%zu].%s is not an http(s) URL", what, i, key);
    return NULL;
}

ek_err_t *ek_imageio_target_parse(json_object *info, const char *what, ek_imageio_target_t *t)
{
    json_object *disks;
    const char *ca;
    bool insecure;
    int64_t timeout_ms;
    ek_err_t *err;
    memset(t, 0, sizeof(*t));
    if ((err = ek_json_req_array(info, what, "disks", &disks)) ||
        (err = ek_json_opt_string(info, what, "ca_pem", "", &ca)) ||
        (err = ek_json_opt_bool(info, what, "insecure", false, &insecure)) ||
        (err = ek_json_opt_int(info, what, "timeout_ms", 30000, &timeout_ms)))
        return err;
    size_t n = json_object_array_length(disks);
    if (!n)
        return ek_err_new(EK_E_INVALID, "%s.disks is empty: no image transfer to write to", what);
    t->disks = ek_xcalloc(n, sizeof(*t->disks));
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *path, *url, *proxy;
        int64_t size;
        if ((err = ek_json_req_string(d, "disks[]", "path", &path)) ||
            (err = ek_json_req_string(d, "disks[]", "ticket_url", &url)) ||
            (err = ek_json_opt_string(d, "disks[]", "proxy_ticket_url", "", &proxy)) ||
            (err = ek_json_opt_int(d, "disks[]", "size", -1, &size)))
            break;
        if (strncmp(path, "imageio:", 8) != 0 || !path[8])
            err = ek_err_new(EK_E_INVALID, "%s.disks[%zu].path '%s' is not imageio:<transfer id>",
                             what, i, path);
        else if (size <= 0)
            err = ek_err_new(EK_E_INVALID,
                             "%s.disks[%zu].size: the disk's size in bytes is "
                             "missing",
                             what, i);
        else if (!(err = check_url(what, i, "ticket_url", url)) && *proxy)
            err = check_url(what, i, "proxy_ticket_url", proxy);
        if (err)
            break;
        t->disks[i] = (ek_imageio_disk_t){ek_xstrdup(path), ek_xstrdup(url),
                                          *proxy ? ek_xstrdup(proxy) : NULL, (uint64_t)size};
        t->n = i + 1;
    }
    if (err) {
        ek_imageio_target_clear(t);
        return err;
    }
    t->ca_pem = *ca ? ek_xstrdup(ca) : NULL;
    t->insecure = insecure;
    t->timeout_ms = timeout_ms > 0 ? (int)timeout_ms : 30000;
    return NULL;
}

/* ---- one bridge ------------------------------------------------------------------------- */

typedef struct bridge {
    const ek_imageio_target_t *t;
    int fd; /* our end of the socket pair */
    pthread_t thread;
    volatile bool stop; /* the engine let go: abort what curl is doing */
    CURL *curl;
    const ek_imageio_disk_t *disk; /* after OPEN */
    const char *url;               /* the ticket URL in use (the daemon's or the proxy's) */
    const char *ticket;            /* its last component, cut out of the server's messages */
    uint8_t *body;                 /* frame body */
    size_t body_cap;
    uint8_t *plain; /* decompressed data */
    size_t plain_cap;
    ZSTD_DCtx *dctx;
    ek_strbuf_t resp; /* the answer's body (first 4 KiB) */
    char errbuf[CURL_ERROR_SIZE];
    /* PUT body */
    const uint8_t *up;
    size_t up_len, up_off;
    /* HASH: blocks of the GET answer */
    uint8_t *blk;
    uint32_t bs, fill, nblk, count;
    uint64_t hash_left;
    uint8_t *hashes;
} bridge_t;

static ssize_t write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* 1: read, 0: the engine closed its end before the first byte, -1: error. */
static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return done ? -1 : 0;
        done += (size_t)n;
    }
    return 1;
}

static int reply_simple(bridge_t *b, uint8_t type, uint64_t id)
{
    uint8_t out[EK_DP_HEADER_SIZE];
    size_t n = ek_dp_simple_encode(out, type, id);
    return write_full(b->fd, out, n) < 0 ? -1 : 0;
}

static int reply_error(bridge_t *b, uint64_t id, uint32_t code, const char *fmt, ...)
    EK_PRINTF(4, 5);
static int reply_error(bridge_t *b, uint64_t id, uint32_t code, const char *fmt, ...)
{
    char msg[EK_DP_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uint8_t out[EK_DP_HEADER_SIZE + EK_DP_ERROR_FIXED + EK_DP_MAX_MESSAGE];
    size_t n = ek_dp_error_encode(out, id, code, msg);
    return write_full(b->fd, out, n) < 0 ? -1 : 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    bridge_t *b = arg;
    size_t n = size * nmemb;
    if (b->resp.len < 4096)
        ek_strbuf_add(&b->resp, data, EK_MIN(n, 4096 - b->resp.len));
    return n;
}

static size_t on_upload(char *buf, size_t size, size_t nmemb, void *arg)
{
    bridge_t *b = arg;
    size_t n = EK_MIN(size * nmemb, b->up_len - b->up_off);
    memcpy(buf, b->up + b->up_off, n);
    b->up_off += n;
    return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return ((bridge_t *)arg)->stop ? 1 : 0;
}

/* The server's message for an error, one line, the ticket cut out. */
static void server_text(bridge_t *b, char *out, size_t outlen)
{
    size_t o = 0;
    const char *s = b->resp.buf;
    size_t tl = b->ticket ? strlen(b->ticket) : 0;
    for (size_t i = 0; i < b->resp.len && o + 1 < outlen; i++) {
        if (tl && b->resp.len - i >= tl && memcmp(s + i, b->ticket, tl) == 0) {
            int w = snprintf(out + o, outlen - o, "<ticket>");
            o += w > 0 ? EK_MIN((size_t)w, outlen - o - 1) : 0;
            i += tl - 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* One request on the ticket URL (query appended). Returns the HTTP status,
 * or 0 when no answer came (msg says why). */
static long request(bridge_t *b, const char *url, const char *method, const char *query,
                    struct curl_slist *headers, const void *body, size_t len,
                    curl_write_callback on_data, char *msg, size_t msglen)
{
    /* a server that stops answering: nothing moved for this long. Zeroing
     * and flushing answer only when the storage is done, which on a slow
     * domain takes minutes: they get ten times as long. */
    long stall_s = EK_MAX(b->t->timeout_ms / 1000, 5);
    if (strcmp(method, "PATCH") == 0)
        stall_s = EK_MAX(stall_s * 10, 300);
    CURL *c = b->curl;
    curl_easy_reset(c);
    _cleanup_free_ char *full = ek_xasprintf("%s%s", url, query ? query : "");
    ek_strbuf_reset(&b->resp);
    b->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, b->errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)b->t->timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, b);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (b->t->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (b->t->ca_pem) {
        struct curl_blob ca = {(void *)b->t->ca_pem, strlen(b->t->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data ? on_data : on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (strcmp(method, "PUT") == 0) {
        b->up = body;
        b->up_len = len;
        b->up_off = 0;
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, b);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        return status;
    }
    /* curl's messages name the host, never the path */
    snprintf(msg, msglen, "%s",
             b->stop        ? "the transfer stopped"
             : b->errbuf[0] ? b->errbuf
                            : curl_easy_strerror(rc));
    return 0;
}

/* An HTTP status that is not success, as a message. */
static void status_text(bridge_t *b, long status, const char *what, char *msg, size_t msglen)
{
    char text[512];
    server_text(b, text, sizeof(text));
    const char *hint = status == 403 || status == 404
                           ? " (the ticket is gone: the image transfer was paused for inactivity, "
                             "cancelled or finalized)"
                           : "";
    snprintf(msg, msglen, "imageio answered %ld to %s%s%s%s", status, what, *text ? ": " : "", text,
             hint);
}

static int do_open(bridge_t *b, const ek_dp_frame_t *f)
{
    uint64_t id = f->h.id;
    if (b->disk)
        return reply_error(b, id, EK_DP_E_ALREADY_OPEN, "a disk is open on this connection");
    const ek_imageio_disk_t *d = NULL;
    for (size_t i = 0; i < b->t->n && !d; i++)
        if (strlen(b->t->disks[i].path) == f->u.open.path_len &&
            memcmp(b->t->disks[i].path, f->u.open.path, f->u.open.path_len) == 0)
            d = &b->t->disks[i];
    if (!d)
        return reply_error(b, id, EK_DP_E_NOT_FOUND,
                           "\"%.*s\" is none of the image transfers of this target",
                           (int)f->u.open.path_len, f->u.open.path);
    if (f->u.open.size > d->size)
        return reply_error(b, id, EK_DP_E_SIZE,
                           "%s: the disk holds %" PRIu64 " bytes, %" PRIu64 " were asked for",
                           d->path, d->size, f->u.open.size);
    /* the host's daemon first, the engine's proxy when the host cannot be
     * reached from here (as ovirt-imageio's own client does: client/_api.py) */
    const char *urls[2] = {d->url, d->proxy_url};
    char msg[768] = "";
    long status = 0;
    for (int i = 0; i < 2 && !status && urls[i]; i++) {
        const char *slash = strrchr(urls[i], '/');
        b->ticket = slash && slash[1] ? slash + 1 : NULL;
        status = request(b, urls[i], "OPTIONS", NULL, NULL, NULL, 0, NULL, msg, sizeof(msg));
        if (status)
            b->url = urls[i];
    }
    if (!status)
        return reply_error(b, id, EK_DP_E_IO, "%s: imageio cannot be reached: %s", d->path, msg);
    if (status / 100 != 2) {
        status_text(b, status, "OPTIONS", msg, sizeof(msg));
        return reply_error(b, id, status == 403 ? EK_DP_E_FORBIDDEN : EK_DP_E_IO, "%s: %s", d->path,
                           msg);
    }
    /* {"features": ["extents", "zero", "flush", ...], "max_writers": N} */
    json_object *o = json_tokener_parse(b->resp.buf), *feats = NULL;
    bool zero = false, flush = false;
    if (o && json_object_object_get_ex(o, "features", &feats) &&
        json_object_is_type(feats, json_type_array))
        for (size_t i = 0; i < json_object_array_length(feats); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(feats, i));
            zero |= s && strcmp(s, "zero") == 0;
            flush |= s && strcmp(s, "flush") == 0;
        }
    json_object_put(o);
    if (!zero || !flush)
        return reply_error(b, id, EK_DP_E_IO,
                           "%s: this imageio server does not offer %s (an ovirt-imageio older "
                           "than 1.5, oVirt 4.2): it cannot take sparse writes",
                           d->path, !zero ? "\"zero\"" : "\"flush\"");
    b->disk = d;
    uint8_t out[EK_DP_HEADER_SIZE + EK_DP_OPEN_OK_SIZE];
    /* zero_from = size: the disk is never assumed to read as zeros (a
     * preallocated volume on block storage holds what was there before), so
     * zero ranges are sent, each one PATCH */
    size_t n = ek_dp_open_ok_encode(out, id, d->size, EK_DP_MAX_DATA, 0, d->size);
    return write_full(b->fd, out, n) < 0 ? -1 : 0;
}

static int do_write(bridge_t *b, const ek_dp_frame_t *f)
{
    uint64_t id = f->h.id, off = f->u.write.offset, len = f->u.write.length;
    char msg[768];
    if (!b->disk)
        return reply_error(b, id, EK_DP_E_NOT_OPEN, "WRITE before OPEN");
    if (off > b->disk->size || len > b->disk->size - off)
        return reply_error(b, id, EK_DP_E_RANGE, "%" PRIu64 "+%" PRIu64 " is beyond the disk", off,
                           len);
    long status;
    if (f->u.write.zero) {
        char json[160];
        int n = snprintf(json, sizeof(json),
                         "{\"op\": \"zero\", \"offset\": %" PRIu64 ", \"size\": %" PRIu64
                         ", \"flush\": false}",
                         off, len);
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        status = request(b, b->url, "PATCH", NULL, h, json, (size_t)n, NULL, msg, sizeof(msg));
        curl_slist_free_all(h);
        if (status && status / 100 != 2)
            status_text(b, status, "PATCH zero", msg, sizeof(msg));
        if (status / 100 != 2)
            return reply_error(b, id, EK_DP_E_IO,
                               "%s: zeroing %" PRIu64 " bytes at offset %" PRIu64 ": %s",
                               b->disk->path, len, off, msg);
        return reply_simple(b, EK_DP_WRITE_OK, id);
    }
    const uint8_t *data = f->u.write.payload;
    if (f->u.write.compression == EK_DP_WRITE_COMP_ZSTD) {
        if (b->plain_cap < len) {
            free(b->plain);
            b->plain = ek_xmalloc(len);
            b->plain_cap = len;
        }
        if (!b->dctx)
            b->dctx = ZSTD_createDCtx();
        size_t r = ZSTD_decompressDCtx(b->dctx, b->plain, len, data, f->u.write.payload_len);
        if (ZSTD_isError(r) || r != len)
            return reply_error(
                b, id, EK_DP_E_DECOMPRESS,
                "chunk at offset %" PRIu64 " does not decompress to %" PRIu64 " bytes", off, len);
        data = b->plain;
    } else if (f->u.write.payload_len != len) {
        return reply_error(b, id, EK_DP_E_MALFORMED, "payload of %u bytes for %" PRIu64,
                           f->u.write.payload_len, len);
    }
    if (ek_dp_checksum(data, len) != f->u.write.checksum)
        return reply_error(b, id, EK_DP_E_CHECKSUM,
                           "chunk of %" PRIu64 " bytes at offset %" PRIu64
                           " fails its checksum: not written",
                           len, off);
    char range[96];
    snprintf(range, sizeof(range), "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/*", off,
             off + len - 1);
    struct curl_slist *h = curl_slist_append(NULL, range);
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    /* flush=n: imageio flushes after each PUT unless told not to; the
     * engine's FLUSH says when */
    status = request(b, b->url, "PUT", "?flush=n", h, data, len, NULL, msg, sizeof(msg));
    curl_slist_free_all(h);
    if (status && status / 100 != 2)
        status_text(b, status, "PUT", msg, sizeof(msg));
    if (status / 100 != 2)
        return reply_error(b, id, EK_DP_E_IO,
                           "%s: writing %" PRIu64 " bytes at offset %" PRIu64 ": %s", b->disk->path,
                           len, off, msg);
    return reply_simple(b, EK_DP_WRITE_OK, id);
}

static int do_flush(bridge_t *b, uint64_t id)
{
    char msg[768];
    if (!b->disk)
        return reply_error(b, id, EK_DP_E_NOT_OPEN, "FLUSH before OPEN");
    static const char json[] = "{\"op\": \"flush\"}";
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status =
        request(b, b->url, "PATCH", NULL, h, json, sizeof(json) - 1, NULL, msg, sizeof(msg));
    curl_slist_free_all(h);
    if (status && status / 100 != 2)
        status_text(b, status, "PATCH flush", msg, sizeof(msg));
    if (status / 100 != 2)
        return reply_error(b, id, EK_DP_E_IO, "%s: flush: %s", b->disk->path, msg);
    return reply_simple(b, EK_DP_FLUSH_OK, id);
}

static void hash_block(bridge_t *b)
{
    if (b->nblk < b->count)
        ek_dp_hash_put(b->hashes + (size_t)b->nblk * EK_DP_HASH_SIZE,
                       ek_dp_checksum(b->blk, b->fill));
    b->nblk++;
    b->fill = 0;
}

static size_t on_hash_data(char *data, size_t size, size_t nmemb, void *arg)
{
    bridge_t *b = arg;
    size_t n = size * nmemb, used = 0;
    while (used < n && b->hash_left) {
        size_t take = EK_MIN(n - used, (size_t)(b->bs - b->fill));
        take = (size_t)EK_MIN((uint64_t)take, b->hash_left);
        memcpy(b->blk + b->fill, data + used, take);
        b->fill += (uint32_t)take;
        b->hash_left -= take;
        used += take;
        if (b->fill == b->bs || !b->hash_left)
            hash_block(b);
    }
    return n; /* bytes beyond the range: the server's error text, ignored */
}

static int do_hash(bridge_t *b, const ek_dp_frame_t *f)
{
    uint64_t id = f->h.id, off = f->u.hash.offset, len = f->u.hash.length;
    uint32_t bs = f->u.hash.block_size;
    char msg[768];
    if (!b->disk)
        return reply_error(b, id, EK_DP_E_NOT_OPEN, "HASH before OPEN");
    if (f->u.hash.algorithm != EK_DP_HASH_XXH3_64)
        return reply_error(b, id, EK_DP_E_MALFORMED, "unknown hash algorithm %u",
                           f->u.hash.algorithm);
    if (!len || off > b->disk->size || len > b->disk->size - off)
        return reply_error(b, id, EK_DP_E_RANGE, "%" PRIu64 "+%" PRIu64 " is beyond the disk", off,
                           len);
    uint32_t count = (uint32_t)ek_dp_block_count(len, bs);
    size_t hl = EK_DP_HEADER_SIZE + EK_DP_HASHES_FIXED;
    uint8_t *out = ek_xmalloc(hl + (size_t)count * EK_DP_HASH_SIZE);
    ek_dp_hashes_encode(out, id, off, bs, count);
    b->blk = ek_xmalloc(bs);
    b->bs = bs;
    b->fill = 0;
    b->nblk = 0;
    b->count = count;
    b->hash_left = len;
    b->hashes = out + hl;
    char range[80];
    snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
    struct curl_slist *h = curl_slist_append(NULL, range);
    long status = request(b, b->url, "GET", NULL, h, NULL, 0, on_hash_data, msg, sizeof(msg));
    curl_slist_free_all(h);
    free(b->blk);
    b->blk = NULL;
    int rc;
    if (status / 100 == 2 && b->nblk == count) {
        rc = write_full(b->fd, out, hl + (size_t)count * EK_DP_HASH_SIZE) < 0 ? -1 : 0;
    } else {
        if (status / 100 == 2)
            snprintf(msg, sizeof(msg), "the answer held %u of %u blocks", b->nblk, count);
        else if (status)
            snprintf(msg, sizeof(msg), "imageio answered %ld to GET", status);
        rc = reply_error(b, id, EK_DP_E_IO, "%s: reading %" PRIu64 " bytes back to hash them: %s",
                         b->disk->path, len, msg);
    }
    free(out);
    return rc;
}

/* Serves frames until the engine closes its end or the socket fails. */
static void *bridge_main(void *arg)
{
    bridge_t *b = arg;
    for (;;) {
        uint8_t hb[EK_DP_HEADER_SIZE];
        ek_dp_header_t h;
        int r = read_full(b->fd, hb, sizeof(hb));
        if (r <= 0)
            break;
        ek_dp_errcode_t code = ek_dp_header_decode(hb, &h);
        if (code != EK_DP_OK) {
            reply_error(b, h.id, code, "bad frame header");
            break; /* the stream cannot be trusted past it */
        }
        if (b->body_cap < h.length + 1u) {
            free(b->body);
            b->body_cap = h.length + 1u;
            b->body = ek_xmalloc(b->body_cap);
        }
        if (h.length && read_full(b->fd, b->body, h.length) <= 0)
            break;
        ek_dp_frame_t f;
        const char *why = NULL;
        if ((code = ek_dp_frame_decode(&h, b->body, &f, &why)) != EK_DP_OK) {
            if (reply_error(b, h.id, code, "%s", why ? why : "malformed frame") < 0)
                break;
            continue;
        }
        switch (h.type) {
        case EK_DP_OPEN:
            r = do_open(b, &f);
            break;
        case EK_DP_WRITE:
            r = do_write(b, &f);
            break;
        case EK_DP_FLUSH:
            r = do_flush(b, h.id);
            break;
        case EK_DP_HASH:
            r = do_hash(b, &f);
            break;
        case EK_DP_CLOSE:
            r = b->disk ? reply_simple(b, EK_DP_CLOSE_OK, h.id)
                        : reply_error(b, h.id, EK_DP_E_NOT_OPEN, "CLOSE before OPEN");
            b->disk = NULL;
            break;
        default:
            r = reply_error(b, h.id, EK_DP_E_TYPE, "%s is not a request", ek_dp_type_name(h.type));
            break;
        }
        if (r < 0)
            break;
    }
    /* the engine reads the end of the stream: a broken connection it re-opens */
    shutdown(b->fd, SHUT_RDWR);
    return NULL;
}

static void bridge_free(void *arg)
{
    bridge_t *b = arg;
    b->stop = true;
    shutdown(b->fd, SHUT_RDWR);
    pthread_join(b->thread, NULL);
    close(b->fd);
    curl_easy_cleanup(b->curl);
    ZSTD_freeDCtx(b->dctx);
    ek_strbuf_release(&b->resp);
    free(b->body);
    free(b->plain);
    free(b);
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

ek_err_t *ek_imageio_connect(void *target, ek_stream_t **out)
{
    const ek_imageio_target_t *t = target;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return ek_err_errno(errno, "socketpair");
    bridge_t *b = ek_xcalloc(1, sizeof(*b));
    b->t = t;
    b->fd = sv[1];
    b->resp = (ek_strbuf_t)EK_STRBUF_INIT;
    b->curl = curl_easy_init();
    if (!b->curl || pthread_create(&b->thread, NULL, bridge_main, b) != 0) {
        if (b->curl)
            curl_easy_cleanup(b->curl);
        close(sv[0]);
        close(sv[1]);
        free(b);
        return ek_err_new(EK_E_INTERNAL, "cannot start an imageio connection");
    }
    ek_stream_t *s = ek_stream_fd_new(sv[0], sv[0], true);
    /* a reply waits for its request and the ones queued before it, a flush
     * for the storage (the stall limits of request() bound each) */
    ek_stream_set_timeout(s, 15 * 60 * 1000);
    ek_stream_fd_set_on_destroy(s, bridge_free, b);
    *out = s;
    return NULL;
}
