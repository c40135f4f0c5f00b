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

/* AES-128-GCM first: the fastest on CPUs with AES instructions, and as safe
 * here. Without them (older or emulated CPUs: a worker VM under QEMU's TCG
 * decrypts AES-GCM at ~17 MB/s and ChaCha20-Poly1305 at ~160 MB/s,
 * docs/benchmarks.md) the writer puts ChaCha20-Poly1305 first and its order
 * decides, as BoringSSL's servers do. */
#define CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define CIPHERSUITES_NO_AES                                                                        \
    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

static int aes_hint = -1; /* -1: ask the CPU */

void ek_tls_set_aes_hint(int has_aes)
{
    aes_hint = has_aes;
}

bool ek_tls_cpu_has_aes(void)
{
    if (aes_hint >= 0)
        return aes_hint != 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
    return true; /* no portable probe: keep the default order */
#endif
}

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
    /* The kernel seals the records where it can (the "tls" module); else
     * OpenSSL does (see the stream below). */
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
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
    if (!err && !ek_tls_cpu_has_aes()) {
        char eb[256];
        if (SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES_NO_AES) != 1)
            err = ek_err_new(EK_E_INTERNAL, "TLS: cannot set cipher suites: %s",
                             ssl_errstr(eb, sizeof(eb)));
    }
    if (err) {
        SSL_CTX_free(ctx);
        return err;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
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

/* OpenSSL seals and opens every record (SSL_write_ex / SSL_read_ex). The SSL
 * object is used under a mutex, never while waiting: the socket is
 * non-blocking and waits happen outside the lock, so one thread reads
 * acknowledgements while others write frames.
 *
 * Without kernel TLS, OpenSSL's records pass through two buffers of ours
 * (a BIO of our own, plain bytes in and out): its 16 KiB records cross the
 * kernel in ~1 MiB system calls, not one each, which alone halves the CPU
 * the TCP stack costs on loopback. (Not OpenSSL's read-ahead: each SSL_read
 * moves what it buffered to the front, a quadratic copy.) With kernel TLS
 * (SSL_OP_ENABLE_KTLS, when the kernel has the "tls" module and OpenSSL
 * turned it on for this connection) the socket BIO stays and the kernel
 * seals the records. */
typedef struct tls_stream {
    ek_stream_t base;
    int fd;
    SSL *ssl;
    pthread_mutex_t lock; /* the SSL object and the buffers below */
    volatile bool shut;
    bool ktls;             /* kernel TLS for sending (the socket BIO stays) */
    int rd_end;            /* reading ended: 1 the peer's close_notify, -1 failed (error set) */
    uint64_t since_update; /* bytes sealed with the current key */
    uint8_t *rbuf, *wbuf;  /* NULL with kernel TLS */
    size_t rpos, rlen, wpos, wlen, wcap;
} tls_stream_t;

#define TLS_RBUF   (1u << 20)
#define TLS_WCHUNK ((size_t)1 << 20) /* plaintext per SSL_write_ex */

/* Bytes sealed with one key before a KeyUpdate: RFC 8446 §5.5 allows
 * AES-GCM 2^24.5 full records per key; 2^24 records of 16 KiB keep a margin.
 * Tests lower it. */
static uint64_t bytes_per_key = (1ull << 24) * 16384;

void ek_tls_set_records_per_key(uint64_t n)
{
    bytes_per_key = (n ? n : 1ull << 24) * 16384;
}

static int bio_read(BIO *b, char *out, int len)
{
    tls_stream_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->rpos == t->rlen) {
        t->rpos = t->rlen = 0;
        ssize_t n = recv(t->fd, t->rbuf, TLS_RBUF, MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                BIO_set_retry_read(b);
            return -1;
        }
        t->rlen = (size_t)n;
    }
    size_t k = EK_MIN((size_t)len, t->rlen - t->rpos);
    memcpy(out, t->rbuf + t->rpos, k);
    t->rpos += k;
    return (int)k;
}

static int bio_write(BIO *b, const char *in, int len)
{
    tls_stream_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->wlen + (size_t)len > t->wcap) {
        t->wcap = EK_MAX(t->wcap * 2, t->wlen + (size_t)len);
        t->wbuf = ek_xrealloc(t->wbuf, t->wcap);
    }
    memcpy(t->wbuf + t->wlen, in, (size_t)len);
    t->wlen += (size_t)len;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    tls_stream_t *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* tls_flush() sends, outside OpenSSL */
    case BIO_CTRL_PENDING:
        return (long)(t->rlen - t->rpos);
    case BIO_CTRL_WPENDING:
        return (long)(t->wlen - t->wpos);
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ekman-buffered");
    if (!bio_method)
        return;
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
}

/* After the handshake: kernel TLS if OpenSSL turned it on for sending, else
 * our buffers. OpenSSL has read exactly the handshake's records from the
 * socket (no read-ahead), so nothing of the peer's is lost in the switch. */
static const char *tls_setup_io(tls_stream_t *t)
{
    if (SSL_version(t->ssl) != TLS1_3_VERSION)
        return "not TLS 1.3";
    if (BIO_get_ktls_send(SSL_get_wbio(t->ssl))) {
        t->ktls = true;
        SSL_set_mode(t->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        return NULL;
    }
    if (SSL_has_pending(t->ssl))
        return "OpenSSL holds records received after the handshake";
    pthread_once(&bio_once, bio_method_init);
    BIO *r = bio_method ? BIO_new(bio_method) : NULL, *w = bio_method ? BIO_new(bio_method) : NULL;
    if (!r || !w) {
        BIO_free(r);
        BIO_free(w);
        return "out of memory";
    }
    BIO_set_data(r, t);
    BIO_set_data(w, t);
    BIO_set_init(r, 1);
    BIO_set_init(w, 1);
    t->rbuf = ek_xmalloc(TLS_RBUF);
    t->wcap = TLS_WCHUNK + TLS_WCHUNK / 8;
    t->wbuf = ek_xmalloc(t->wcap);
    SSL_set_bio(t->ssl, r, w);
    /* bio_write never refuses bytes, so SSL_write_ex takes a whole chunk:
     * with partial writes it would return after each 16 KiB record. */
    SSL_clear_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
    return NULL;
}

/* True for the alerts a peer sends when it refuses our certificate. */
static bool is_cert_alert(unsigned long e)
{
    int r = ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET;
    return ERR_GET_LIB(e) == ERR_LIB_SSL &&
           (r == SSL_AD_BAD_CERTIFICATE || r == SSL_AD_UNSUPPORTED_CERTIFICATE ||
            r == SSL_AD_CERTIFICATE_REVOKED || r == SSL_AD_CERTIFICATE_EXPIRED ||
            r == SSL_AD_CERTIFICATE_UNKNOWN || r == SSL_AD_UNKNOWN_CA ||
            r == SSL_AD_ACCESS_DENIED || r == SSL_AD_CERTIFICATE_REQUIRED);
}

static void tls_note_error(tls_stream_t *t, int code, int saved_errno)
{
    char eb[256];
    unsigned long e = ERR_peek_error();
    if (code == SSL_ERROR_SYSCALL && e == 0) {
        ek_stream_set_error(&t->base, "%s",
                            saved_errno ? strerror(saved_errno)
                                        : (t->rpos == t->rlen ? "connection closed"
                                                              : "connection closed inside a "
                                                                "TLS record"));
        return;
    }
    if (is_cert_alert(e)) {
        t->base.error_code = EK_E_AUTH;
        ek_stream_set_error(&t->base, "the peer refused our certificate (%s)",
                            ssl_errstr(eb, sizeof(eb)));
        return;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        (ERR_GET_REASON(e) == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC ||
         ERR_GET_REASON(e) == SSL_R_DECRYPTION_FAILED)) {
        ek_stream_set_error(&t->base,
                            "a TLS record failed its integrity check (altered or "
                            "corrupted on the way): %s",
                            ssl_errstr(eb, sizeof(eb)));
        return;
    }
    ek_stream_set_error(&t->base, "%s", ssl_errstr(eb, sizeof(eb)));
}

/* One SSL call under the lock: its result, and the SSL error code. */
#define SSL_CALL(t, expr, ok, code)                                                                \
    do {                                                                                           \
        pthread_mutex_lock(&(t)->lock);                                                            \
        ERR_clear_error();                                                                         \
        errno = 0;                                                                                 \
        int rc_ = (expr);                                                                          \
        int e_ = errno;                                                                            \
        (ok) = rc_ > 0;                                                                            \
        (code) = rc_ > 0 ? SSL_ERROR_NONE : SSL_get_error((t)->ssl, rc_);                          \
        if ((code) == SSL_ERROR_SSL || (code) == SSL_ERROR_SYSCALL)                                \
            tls_note_error(t, code, e_);                                                           \
        pthread_mutex_unlock(&(t)->lock);                                                          \
    } while (0)

static int tls_wait(tls_stream_t *t, int code)
{
    short ev = code == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    uint64_t t0 = ev == POLLOUT ? ek_stream_now_ns() : 0;
    if (ek_stream_poll_fd(t->fd, ev, t->base.timeout_ms, &t->shut) != 0) {
        ek_stream_set_error(&t->base, "%s", t->shut ? "shut down" : strerror(errno));
        return -1;
    }
    if (ev == POLLOUT)
        __atomic_add_fetch(&t->base.write_wait_ns, ek_stream_now_ns() - t0, __ATOMIC_RELAXED);
    return 0;
}

/* Reads what the peer sent: at least one byte (waiting for it), then what
 * more is already here, up to len. */
static ssize_t tls_read(ek_stream_t *s, void *buf, size_t len)
{
    tls_stream_t *t = (tls_stream_t *)s;
    size_t got = 0;
    for (;;) {
        if (t->rd_end) /* kept from an earlier call: OpenSSL's error queue is gone */
            return got ? (ssize_t)got : t->rd_end > 0 ? 0 : -1;
        if (t->shut) {
            ek_stream_set_error(s, "shut down");
            return -1;
        }
        size_t n = 0;
        int ok, code;
        SSL_CALL(t, SSL_read_ex(t->ssl, (uint8_t *)buf + got, len - got, &n), ok, code);
        if (ok) {
            got += n;
            if (got == len)
                return (ssize_t)got;
            continue; /* more records may be buffered already */
        }
        if (code == SSL_ERROR_ZERO_RETURN) {
            t->rd_end = 1;
            continue;
        }
        if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) {
            t->rd_end = -1; /* the error is set; a record failed or the connection broke */
            continue;
        }
        if (got)
            return (ssize_t)got;
        if (tls_wait(t, code) != 0)
            return -1;
    }
}

/* Sends what OpenSSL put in wbuf (the caller holds the stream's write
 * lock). After a partial send the socket buffer is full: sending again at
 * once would move one record per system call as the peer drains it, so it
 * waits for POLLOUT, which the kernel gives when a good part is free. */
static int tls_flush(tls_stream_t *t)
{
    if (t->ktls)
        return 0;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        if (t->wpos == t->wlen) {
            t->wpos = t->wlen = 0;
            pthread_mutex_unlock(&t->lock);
            return 0;
        }
        size_t want = t->wlen - t->wpos;
        ssize_t n = send(t->fd, t->wbuf + t->wpos, want, MSG_DONTWAIT | MSG_NOSIGNAL);
        int e = errno;
        if (n > 0)
            t->wpos += (size_t)n;
        pthread_mutex_unlock(&t->lock);
        if (n == (ssize_t)want)
            continue;
        if (t->shut) {
            ek_stream_set_error(&t->base, "shut down");
            return -1;
        }
        if (n > 0 || (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR))) {
            if (tls_wait(t, SSL_ERROR_WANT_WRITE) != 0)
                return -1;
            continue;
        }
        ek_stream_set_error(&t->base, "%s", n < 0 ? strerror(e) : "sent nothing");
        return -1;
    }
}

/* Seals len bytes (OpenSSL), in chunks that each go out before the next is
 * sealed, so the buffer stays ~1 MiB. A new key first when this one has
 * sealed enough (OpenSSL sends the KeyUpdate before the next record). */
static int tls_seal(tls_stream_t *t, const uint8_t *p, size_t len)
{
    while (len) {
        size_t chunk = EK_MIN(len, TLS_WCHUNK);
        int ok, code;
        if (t->since_update >= bytes_per_key) {
            SSL_CALL(t, SSL_key_update(t->ssl, SSL_KEY_UPDATE_NOT_REQUESTED), ok, code);
            if (!ok) {
                ek_stream_set_error(&t->base, "cannot move to the next TLS traffic key");
                return -1;
            }
            t->since_update = 0;
        }
        size_t n = 0;
        for (;;) {
            if (t->shut) {
                ek_stream_set_error(&t->base, "shut down");
                return -1;
            }
            SSL_CALL(t, SSL_write_ex(t->ssl, p, chunk, &n), ok, code);
            if (ok)
                break;
            /* kernel TLS: the socket is full; the same call again after the wait */
            if ((code != SSL_ERROR_WANT_WRITE && code != SSL_ERROR_WANT_READ) ||
                tls_wait(t, code) != 0)
                return -1;
        }
        t->since_update += n;
        p += n;
        len -= n;
        if (t->wlen - t->wpos >= TLS_WCHUNK && tls_flush(t) != 0)
            return -1;
    }
    return 0;
}

/* Each element is sealed in turn (a frame's header, then its payload) and
 * all of them leave in as few send() calls as fit. */
static int tls_writev(ek_stream_t *s, const struct iovec *iov, int iovcnt)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (t->shut) {
        ek_stream_set_error(s, "shut down");
        return -1;
    }
    for (int i = 0; i < iovcnt; i++)
        if (tls_seal(t, iov[i].iov_base, iov[i].iov_len) != 0)
            return -1;
    return tls_flush(t);
}

static ssize_t tls_write(ek_stream_t *s, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return tls_writev(s, &iov, 1) == 0 ? (ssize_t)len : -1;
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
    pthread_mutex_lock(&t->lock);
    SSL_shutdown(t->ssl); /* close_notify; the peer's reply ends our reads */
    pthread_mutex_unlock(&t->lock);
    tls_flush(t);
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
    pthread_mutex_destroy(&t->lock);
    free(t->rbuf);
    free(t->wbuf);
    free(t);
}

static void tls_destroy(ek_stream_t *s)
{
    tls_stream_t *t = (tls_stream_t *)s;
    if (!t->shut) {
        pthread_mutex_lock(&t->lock);
        SSL_shutdown(t->ssl); /* one try at close_notify; the socket is non-blocking */
        if (t->wbuf && t->wlen > t->wpos)
            (void)!send(t->fd, t->wbuf + t->wpos, t->wlen - t->wpos, MSG_DONTWAIT | MSG_NOSIGNAL);
        pthread_mutex_unlock(&t->lock);
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

bool ek_tls_is_ktls(ek_stream_t *s)
{
    return s && s->ops == &tls_ops && ((tls_stream_t *)s)->ktls;
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
    pthread_mutex_init(&t->lock, NULL);
    t->fd = fd;
    t->ssl = SSL_new(ctx);
    ek_err_t *err = NULL;
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
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
    const char *why = tls_setup_io(t);
    if (why) {
        err = ek_err_new(EK_E_INTERNAL, "TLS: cannot set up the connection: %s", why);
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
