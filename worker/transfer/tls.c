/* tls.c - OpenSSL contexts (TLS 1.3 only, client certificates required) and
 * the TLS stream: a non-blocking socket whose SSL object is used under a
 * mutex, so that one thread can read acknowledgements while others write
 * frames (OpenSSL forbids concurrent calls on one SSL, not serialised ones). */
#include "worker/transfer/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "common/mem.h"
#include "worker/transfer/tlsrec.h"

/* AES-128-GCM first: the fastest on CPUs with AES-NI, and as safe here. */
#define CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static void keylog_cb(const SSL *ssl, const char *line);

static const char *ssl_errstr(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e)
        return "no details from OpenSSL";
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static ek_err_t *ctx_common(SSL_CTX *ctx, const char *cert, const char *key, const char *ca,
                            const char *role)
{
    char eb[256];
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES) != 1)
        return ek_err_new(EK_E_INTERNAL, "TLS: cannot set cipher suites: %s",
                          ssl_errstr(eb, sizeof(eb)));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Hands the traffic secrets to the record layer below, nowhere else. */
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    if (!cert) /* a client without a certificate (the writer refuses it) */
        goto ca;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return ek_err_new(EK_E_INVALID, "TLS: cannot load the %s certificate \"%s\": %s", role,
                          cert, ssl_errstr(eb, sizeof(eb)));
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return ek_err_new(EK_E_INVALID, "TLS: cannot load the %s key \"%s\": %s", role, key,
                          ssl_errstr(eb, sizeof(eb)));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ek_err_new(EK_E_INVALID, "TLS: the %s key \"%s\" does not match \"%s\"", role, key,
                          cert);
ca:
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        return ek_err_new(EK_E_INVALID, "TLS: cannot load the CA \"%s\": %s", ca,
                          ssl_errstr(eb, sizeof(eb)));
    return NULL;
}

ek_err_t *ek_tls_server_ctx_new(const char *cert, const char *key, const char *ca, SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ek_err_new(EK_E_INTERNAL, "TLS: cannot create a server context");
    ek_err_t *err = ctx_common(ctx, cert, key, ca, "server");
    if (err) {
        SSL_CTX_free(ctx);
        return err;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_num_tickets(ctx, 0); /* no resumption: every connection authenticates */
    /* Offer only our CA's name in the certificate request. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
    *out = ctx;
    return NULL;
}

ek_err_t *ek_tls_client_ctx_new(const char *cert, const char *key, const char *ca, SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return ek_err_new(EK_E_INTERNAL, "TLS: cannot create a client context");
    ek_err_t *err = ctx_common(ctx, cert, key, ca, "client");
    if (err) {
        SSL_CTX_free(ctx);
        return err;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return NULL;
}

/* ---- the stream ---- */

/* After the handshake the records are sealed and opened by tlsrec.c with the
 * traffic secrets of this connection, which OpenSSL hands over through its
 * key-log callback (the only way OpenSSL 3.0 gives them out; they go nowhere
 * else). OpenSSL's SSL object is then kept for the peer's certificate and the
 * cipher name only: it never writes a record again (its BIO is a null BIO),
 * so no nonce is ever used twice. Reading and writing have separate state,
 * so one thread reads while another writes, without a lock between them. */
typedef struct tls_stream {
    ek_stream_t base;
    int fd;
    SSL *ssl;
    volatile bool shut;
    bool rd_eof;   /* the peer's close_notify came */
    bool rd_bad;   /* reading failed: the record stream cannot be resumed */
    bool wr_done;  /* ours went */
    int ku_wanted; /* the peer asked for our KeyUpdate (atomic) */
    /* traffic secrets from the key log during the handshake: [0] client, [1] server */
    uint8_t secret[2][EVP_MAX_MD_SIZE];
    size_t secret_len[2];
    ek_tlsrec_t rd, wr;
    uint8_t *rbuf;          /* ciphertext received: [rstart, rend) */
    size_t rstart, rend;
    uint8_t *plain;         /* a record's content the caller had no room for */
    size_t ppos, plen;
    uint8_t *wbuf;          /* sealed records waiting for send() */
    size_t wlen;
} tls_stream_t;

/* ~1 MiB per system call: 16 KiB records one by one would cost a send() or
 * recv() each (that alone doubled the TCP stack's CPU on loopback). */
#define TLS_RBUF   ((1u << 20) + EK_TLSREC_MAX_SEALED)
#define TLS_WBATCH (1u << 20)
#define TLS_WBUF   (TLS_WBATCH + EK_TLSREC_MAX_SEALED)

/* Records per key before a KeyUpdate: §5.5 allows AES-GCM 2^24.5 full-size
 * records per key; the margin costs nothing. Tests lower it. */
static uint64_t records_per_key = 1ull << 24;

void ek_tls_set_records_per_key(uint64_t n)
{
    records_per_key = n ? n : 1ull << 24;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    tls_stream_t *t = SSL_get_app_data(ssl);
    int side;
    if (!t)
        return;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
        side = 0;
    else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
        side = 1;
    else
        return;
    /* "<label> <client random, hex> <secret, hex>" */
    const char *hex = strchr(line + 24, ' ');
    if (!hex)
        return;
    hex++;
    size_t n = 0, hl = strlen(hex);
    if (hl % 2 || hl / 2 > sizeof(t->secret[side]))
        return;
    for (; n < hl / 2; n++) {
        unsigned v;
        if (sscanf(hex + 2 * n, "%2x", &v) != 1)
            return;
        t->secret[side][n] = (uint8_t)v;
    }
    t->secret_len[side] = n;
}

static int tls_wait(tls_stream_t *t, short ev)
{
    if (ek_stream_poll_fd(t->fd, ev, t->base.timeout_ms, &t->shut) != 0) {
        ek_stream_set_error(&t->base, "%s", t->shut ? "shut down" : strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- writing (under the stream's write lock) ---- */

/* Sends the sealed records. After a partial send the socket buffer is full:
 * sending again at once would move one record per system call as the peer
 * drains it, so it waits for POLLOUT, which comes when a good part is free. */
static int send_batch(tls_stream_t *t)
{
    size_t pos = 0;
    while (pos < t->wlen) {
        if (t->shut) {
            ek_stream_set_error(&t->base, "shut down");
            return -1;
        }
        ssize_t n = send(t->fd, t->wbuf + pos, t->wlen - pos, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            pos += (size_t)n;
        if (pos == t->wlen)
            break;
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
            uint64_t t0 = ek_stream_now_ns();
            if (tls_wait(t, POLLOUT) != 0)
                return -1;
            __atomic_add_fetch(&t->base.write_wait_ns, ek_stream_now_ns() - t0, __ATOMIC_RELAXED);
            continue;
        }
        ek_stream_set_error(&t->base, "%s", n < 0 ? strerror(errno) : "sent nothing");
        return -1;
    }
    t->wlen = 0;
    return 0;
}

static int seal_one(tls_stream_t *t, uint8_t type, const void *p, size_t n)
{
    if (t->wlen + EK_TLSREC_MAX_SEALED > TLS_WBUF && send_batch(t) != 0)
        return -1;
    long rec = ek_tlsrec_seal(&t->wr, type, p, n, t->wbuf + t->wlen);
    if (rec < 0) {
        ek_stream_set_error(&t->base, "cannot encrypt a TLS record");
        return -1;
    }
    t->wlen += (size_t)rec;
    return 0;
}

/* Seals len bytes of content into records, and moves to a new key first
 * when this one has sealed enough or the peer asked for it (§4.6.3). */
static int seal(tls_stream_t *t, uint8_t type, const uint8_t *p, size_t len)
{
    while (len) {
        if (t->wr.seq >= records_per_key || __atomic_exchange_n(&t->ku_wanted, 0, __ATOMIC_ACQ_REL)) {
            static const uint8_t key_update[] = {24, 0, 0, 1, 0}; /* update_not_requested */
            if (seal_one(t, EK_TLSREC_HANDSHAKE, key_update, sizeof(key_update)) != 0)
                return -1;
            if (ek_tlsrec_update(&t->wr) != 0) {
                ek_stream_set_error(&t->base, "cannot derive the next TLS traffic key");
                return -1;
            }
        }
        size_t n = EK_MIN(len, (size_t)EK_TLSREC_MAX_PLAIN);
        if (seal_one(t, type, p, n) != 0)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

/* Each element gets records of its own (a frame's header, then its payload
 * in whole records), so that the reader decrypts a payload straight into
 * its buffer; all of them leave in as few send() calls as fit. */
static int tls_writev(ek_stream_t *s, const struct iovec *iov, int iovcnt)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (t->shut || t->wr_done) {
        ek_stream_set_error(s, "%s", t->shut ? "shut down" : "already closed");
        return -1;
    }
    for (int i = 0; i < iovcnt; i++)
        if (seal(t, EK_TLSREC_APPDATA, iov[i].iov_base, iov[i].iov_len) != 0)
            return -1;
    return send_batch(t);
}

static ssize_t tls_write(ek_stream_t *s, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return tls_writev(s, &iov, 1) == 0 ? (ssize_t)len : -1;
}

static void send_close_notify(tls_stream_t *t)
{
    static const uint8_t close_notify[] = {1, 0}; /* warning, close_notify */
    if (!t->wr_done && seal_one(t, EK_TLSREC_ALERT, close_notify, sizeof(close_notify)) == 0)
        t->wr_done = true;
}

/* ---- reading (one reader at a time) ---- */

/* Makes [rstart, rstart + need) hold received bytes: 1, 0 at the end of the
 * stream, -1 on error. */
static int fill(tls_stream_t *t, size_t need)
{
    if (t->rstart == t->rend)
        t->rstart = t->rend = 0; /* all used: the next recv() gets the whole buffer */
    while (t->rend - t->rstart < need) {
        if (t->rstart + need > TLS_RBUF) {
            memmove(t->rbuf, t->rbuf + t->rstart, t->rend - t->rstart);
            t->rend -= t->rstart;
            t->rstart = 0;
        }
        if (t->shut) {
            ek_stream_set_error(&t->base, "shut down");
            return -1;
        }
        ssize_t n = recv(t->fd, t->rbuf + t->rend, TLS_RBUF - t->rend, MSG_DONTWAIT);
        if (n > 0) {
            t->rend += (size_t)n;
        } else if (n == 0) {
            return 0;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (tls_wait(t, POLLIN) != 0)
                return -1;
        } else {
            ek_stream_set_error(&t->base, "%s", strerror(errno));
            return -1;
        }
    }
    return 1;
}

static bool is_cert_alert(int desc)
{
    return desc == SSL_AD_BAD_CERTIFICATE || desc == SSL_AD_UNSUPPORTED_CERTIFICATE ||
           desc == SSL_AD_CERTIFICATE_REVOKED || desc == SSL_AD_CERTIFICATE_EXPIRED ||
           desc == SSL_AD_CERTIFICATE_UNKNOWN || desc == SSL_AD_UNKNOWN_CA ||
           desc == SSL_AD_ACCESS_DENIED || desc == SSL_AD_CERTIFICATE_REQUIRED;
}

/* An alert record: 0 for close_notify (the end), 1 to read on, -1. */
static int on_alert(tls_stream_t *t, const uint8_t *p, size_t n)
{
    if (n != 2) {
        ek_stream_set_error(&t->base, "malformed TLS alert");
        return -1;
    }
    if (p[1] == SSL_AD_CLOSE_NOTIFY) {
        t->rd_eof = true;
        return 0;
    }
    if (p[1] == SSL_AD_USER_CANCELLED) /* a close_notify follows (§6.1) */
        return 1;
    if (is_cert_alert(p[1])) {
        t->base.error_code = EK_E_AUTH;
        ek_stream_set_error(&t->base, "the peer refused our certificate (TLS alert: %s)",
                            SSL_alert_desc_string_long(p[1]));
    } else {
        ek_stream_set_error(&t->base, "the peer ended the connection (TLS alert: %s)",
                            SSL_alert_desc_string_long(p[1]));
    }
    return -1;
}

/* Post-handshake messages (§4.6): KeyUpdate is followed, tickets ignored. */
static int on_handshake(tls_stream_t *t, const uint8_t *p, size_t n)
{
    while (n) {
        if (n < 4 || 4 + ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) > n) {
            ek_stream_set_error(&t->base, "a TLS handshake message split across records");
            return -1;
        }
        size_t ml = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (p[0] == 24) { /* KeyUpdate */
            if (ml != 1 || p[4] > 1 || ek_tlsrec_update(&t->rd) != 0) {
                ek_stream_set_error(&t->base, "bad TLS KeyUpdate");
                return -1;
            }
            if (p[4] == 1)
                __atomic_store_n(&t->ku_wanted, 1, __ATOMIC_RELEASE);
        } else if (p[0] != 4) { /* NewSessionTicket: we never resume */
            ek_stream_set_error(&t->base, "unexpected TLS handshake message %u after the handshake",
                                p[0]);
            return -1;
        }
        p += 4 + ml;
        n -= 4 + ml;
    }
    return 1;
}

static ssize_t tls_read_records(tls_stream_t *t, void *buf, size_t len)
{
    ek_stream_t *s = &t->base;
    if (t->ppos < t->plen) {
        size_t k = EK_MIN(len, t->plen - t->ppos);
        memcpy(buf, t->plain + t->ppos, k);
        t->ppos += k;
        return (ssize_t)k;
    }
    while (!t->rd_eof) {
        int rc = fill(t, EK_TLSREC_HEADER);
        if (rc <= 0) {
            if (rc == 0)
                ek_stream_set_error(s, "%s", t->rend > t->rstart
                                                 ? "connection closed inside a TLS record"
                                                 : "connection closed");
            return -1;
        }
        const uint8_t *rec = t->rbuf + t->rstart;
        long body = ek_tlsrec_header(rec);
        if (body < 0) {
            ek_stream_set_error(s, "not a TLS 1.3 record (type %u, version %02x%02x, length %u)",
                                rec[0], rec[1], rec[2], (unsigned)rec[3] << 8 | rec[4]);
            return -1;
        }
        if ((rc = fill(t, EK_TLSREC_HEADER + (size_t)body)) <= 0) {
            if (rc == 0)
                ek_stream_set_error(s, "connection closed inside a TLS record");
            return -1;
        }
        rec = t->rbuf + t->rstart;
        /* Content that fits goes straight to the caller. */
        size_t room = (size_t)body - EK_TLSREC_TAG - 1;
        uint8_t *out = len >= room ? buf : t->plain;
        uint8_t type;
        size_t n;
        if (ek_tlsrec_open(&t->rd, rec, (size_t)body, out, &type, &n) != 0) {
            ek_stream_set_error(s, "a TLS record failed its integrity check (altered or "
                                   "corrupted on the way)");
            return -1;
        }
        t->rstart += EK_TLSREC_HEADER + (size_t)body;
        if (type == EK_TLSREC_APPDATA) {
            if (n == 0)
                continue;
            if (out == buf)
                return (ssize_t)n;
            t->ppos = EK_MIN(len, n);
            t->plen = n;
            memcpy(buf, t->plain, t->ppos);
            return (ssize_t)t->ppos;
        }
        rc = type == EK_TLSREC_ALERT       ? on_alert(t, out, n)
             : type == EK_TLSREC_HANDSHAKE ? on_handshake(t, out, n)
                                           : (ek_stream_set_error(s, "unexpected TLS record "
                                                                     "type %u", type),
                                              -1);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static ssize_t tls_read(ek_stream_t *s, void *buf, size_t len)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (t->rd_bad)
        return -1; /* the error set then stays */
    ssize_t n = tls_read_records(t, buf, len);
    if (n < 0)
        t->rd_bad = true;
    return n;
}

static void tls_shutdown(ek_stream_t *s)
{
    tls_stream_t *t = (tls_stream_t *)s;
    t->shut = true;
    shutdown(t->fd, SHUT_RDWR);
}

static void tls_finish(ek_stream_t *s)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (t->shut)
        return;
    send_close_notify(t); /* the peer's reply ends our reads */
    send_batch(t);
}

static void tls_wire_bytes(ek_stream_t *s, uint64_t *out, uint64_t *in)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (!ek_stream_tcp_bytes(t->fd, out, in)) {
        *out = s->bytes_out;
        *in = s->bytes_in;
    }
}

static void tls_free(tls_stream_t *t)
{
    SSL_free(t->ssl);
    close(t->fd);
    ek_tlsrec_free(&t->rd);
    ek_tlsrec_free(&t->wr);
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    free(t->rbuf);
    free(t->plain);
    free(t->wbuf);
    free(t);
}

static void tls_destroy(ek_stream_t *s)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (!t->shut && t->wr.ctx && !t->wr_done) {
        /* one try at close_notify; the socket is non-blocking */
        t->wlen = 0;
        send_close_notify(t);
        if (t->wlen)
            (void)!send(t->fd, t->wbuf, t->wlen, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    tls_free(t);
}

static const ek_stream_ops_t tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .finish = tls_finish,
    .wire_bytes = tls_wire_bytes,
    .destroy = tls_destroy,
};

const char *ek_tls_cipher(ek_stream_t *s)
{
    if (!s || s->ops != &tls_ops)
        return "";
    return SSL_get_cipher_name(((tls_stream_t *)s)->ssl);
}

/* Moves the established connection to our record layer (see above). */
static const char *take_over(tls_stream_t *t, bool server)
{
    if (SSL_version(t->ssl) != TLS1_3_VERSION)
        return "not TLS 1.3";
    /* Nothing may have been protected with the application keys yet: our
     * sequence numbers start at 0. A server sending session tickets would
     * have used some (ek_tls_server_ctx_new turns them off). */
    if (server && SSL_get_num_tickets(t->ssl) != 0)
        return "session tickets are on";
    if (SSL_has_pending(t->ssl))
        return "OpenSSL holds records received after the handshake";
    if (!t->secret_len[0] || !t->secret_len[1])
        return "no traffic secrets from the handshake";
    uint16_t suite = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(t->ssl));
    int mine = server ? 1 : 0;
    if (ek_tlsrec_init(&t->wr, suite, true, t->secret[mine], t->secret_len[mine]) != 0 ||
        ek_tlsrec_init(&t->rd, suite, false, t->secret[!mine], t->secret_len[!mine]) != 0)
        return "cannot set up the record keys";
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    /* OpenSSL must never protect a record with these keys again. */
    SSL_set_quiet_shutdown(t->ssl, 1);
    BIO *null = BIO_new(BIO_s_null());
    if (!null)
        return "out of memory";
    SSL_set_bio(t->ssl, null, null);
    t->rbuf = ek_xmalloc(TLS_RBUF);
    t->plain = ek_xmalloc(EK_TLSREC_MAX_BODY);
    t->wbuf = ek_xmalloc(TLS_WBUF);
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ek_err_t *handshake(SSL_CTX *ctx, int fd, bool server, const char *server_name,
                           int timeout_ms, ek_stream_t **out)
{
    char eb[256];
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        return ek_err_errno(errno, "TLS: cannot make the socket non-blocking");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tls_stream_t *t = ek_xcalloc(1, sizeof(*t));
    ek_stream_init(&t->base, &tls_ops);
    t->fd = fd;
    t->ssl = SSL_new(ctx);
    ek_err_t *err = NULL;
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 || SSL_set_app_data(t->ssl, t) != 1) {
        err = ek_err_new(EK_E_INTERNAL, "TLS: cannot set up the connection: %s",
                         ssl_errstr(eb, sizeof(eb)));
        goto fail;
    }
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (server_name && *server_name) {
            SSL_set_tlsext_host_name(t->ssl, server_name);
            if (SSL_set1_host(t->ssl, server_name) != 1) {
                err = ek_err_new(EK_E_INVALID, "TLS: bad server name '%s'", server_name);
                goto fail;
            }
        }
    }
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int rc = SSL_do_handshake(t->ssl);
        if (rc == 1)
            break;
        int code = SSL_get_error(t->ssl, rc);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
            int64_t left = deadline - now_ms();
            if (left <= 0 || ek_stream_poll_fd(fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                               (int)left, NULL) != 0) {
                err = ek_err_new(EK_E_TIMEOUT, "TLS handshake timed out");
                goto fail;
            }
            continue;
        }
        long vr = SSL_get_verify_result(t->ssl);
        if (vr != X509_V_OK)
            err = ek_err_new(EK_E_AUTH, "TLS handshake failed: peer certificate: %s",
                             X509_verify_cert_error_string(vr));
        else if (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            err = ek_err_new(EK_E_AUTH, "TLS handshake failed: connection closed by the peer "
                                        "(wrong or missing certificate?)");
        else
            err = ek_err_new(EK_E_AUTH, "TLS handshake failed: %s", ssl_errstr(eb, sizeof(eb)));
        goto fail;
    }
    const char *why = take_over(t, server);
    if (why) {
        err = ek_err_new(EK_E_INTERNAL, "TLS: cannot take over the connection: %s", why);
        goto fail;
    }
    *out = &t->base;
    return NULL;
fail:
    pthread_mutex_destroy(&t->base.wlock);
    pthread_mutex_destroy(&t->base.elock);
    tls_free(t);
    return err;
}

ek_err_t *ek_tls_accept(SSL_CTX *ctx, int fd, int timeout_ms, ek_stream_t **out, char **peer)
{
    ek_err_t *err = handshake(ctx, fd, true, NULL, timeout_ms, out);
    if (err || !peer)
        return err;
    *peer = NULL;
    X509 *cert = SSL_get1_peer_certificate(((tls_stream_t *)*out)->ssl);
    if (cert) {
        char name[256];
        X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
        *peer = ek_xstrdup(name);
        X509_free(cert);
    }
    return NULL;
}

ek_err_t *ek_tls_connect(SSL_CTX *ctx, int fd, const char *server_name, int timeout_ms,
                         ek_stream_t **out)
{
    return handshake(ctx, fd, false, server_name, timeout_ms, out);
}
