/* main.c - ekman-writer: the agent in the disk-copy worker VM that writes the
 * chunks it receives at their offsets on the attached disks. It needs no
 * configuration file: everything comes from flags. Two transports:
 *   --listen ADDR:PORT --cert --key --ca   HTTPS with mutual TLS 1.3; each
 *        connection upgrades POST /v1/stream to the frame stream (http.c)
 *   --stdio   one session on stdin/stdout (run by the worker over SSH)
 * Only disks under an --allow-path prefix can be opened.
 *
 * Until a client has authenticated (TLS handshake with a certificate of the
 * transfer's CA, then its request head) it gets little: an accepted
 * connection that has sent nothing waits in a bounded list, without a thread
 * (--max-pending; when full the oldest goes); one that talks gets a thread
 * only within --max-connections, of which at most half may be handshaking;
 * and whatever has not authenticated within --handshake-timeout of its
 * accept is closed. Refusals are logged a few per period, then counted. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "worker/transfer/tls.h"
#include "worker/writer/writer.h"

static const ek_program_info_t info = {
    .name = "ekman-writer",
    .config_optional = true,
    .summary = "Ekman's disk writer agent for the temporary disk-copy VM.",
    .usage = "Writer options:\n"
             "  --listen ADDR:PORT  serve HTTPS (mutual TLS 1.3) on this address only (give\n"
             "                      the VM's own address; 0.0.0.0 means every interface)\n"
             "  --cert FILE         server certificate (PEM), with --listen\n"
             "  --key FILE          its private key (PEM)\n"
             "  --ca FILE           the CA that signs accepted client certificates\n"
             "  --stdio             serve one session on stdin/stdout (over SSH)\n"
             "  --allow-path P      only disks under P may be opened (repeatable; required)\n"
             "  --once              exit when the first transfer's connections are all closed\n"
             "  --threads N         threads that decompress, verify and write (default: CPUs)\n"
             "  --max-memory MIB    bound on frame buffers in flight (default 128)\n"
             "  --timeout SEC       idle limit of a connection (default 600)\n"
             "  --max-connections N connections served at once, handshakes included (default 64;\n"
             "                      at most half of them handshaking)\n"
             "  --max-pending N     accepted connections that have sent nothing yet; beyond,\n"
             "                      the oldest is closed (default 256)\n"
             "  --handshake-timeout SEC  time from accept to an authenticated request; a\n"
             "                      connection that takes longer is closed (default 10)\n"
             "  --direct            write data with O_DIRECT, past the page cache (default:\n"
             "                      through it, write-back started as chunks land)\n"
             "  --cache-limit MIB   page cache a disk's writes may hold: older written ranges\n"
             "                      are waited for and dropped (default 64; 0: no limit)\n"
             "  --no-direct         never use O_DIRECT, not even to read blocks back\n"
             "  --verify-readback   answer block hashes by reading the disk back, always\n"
             "                      (default: from the record of the verified chunks this\n"
             "                      process wrote; what it did not write is read back)\n"
             "  --port-file FILE    write the port listened on (useful with port 0)\n"
             "  --by-id-dir DIR     where disks asked for as \"serial:S\" are linked\n"
             "                      (default /dev/disk/by-id; /sys/block is searched too)\n",
};

/* Defaults of the limits on connections that have not authenticated. */
#define MAX_CONNECTIONS   64    /* threads: handshakes and sessions */
#define MAX_PENDING       256   /* accepted, nothing received yet: no thread */
#define HANDSHAKE_TIMEOUT 10    /* seconds from accept to an authenticated request */
#define REFUSAL_LOG_EVERY 10000 /* ms: at most a few lines of refusals per period */
#define REFUSAL_LOG_LINES 5

typedef struct conn {
    pthread_t thread;
    int fd;              /* our copy of the socket while the handshake runs, else -1 */
    int64_t deadline_ms; /* the handshake and the request head must be done by then */
    ek_stream_t *stream; /* set once the handshake is done */
    bool authenticated;
    volatile bool done;
    struct conn *next;
} conn_t;

/* A connection accepted but silent so far: it holds a descriptor, no thread. */
typedef struct pending {
    int fd;
    int64_t deadline_ms;
} pending_t;

static struct {
    ek_writer_t *writer;
    SSL_CTX *ctx;
    pthread_mutex_t lock;
    conn_t *conns;
    int sessions_active, sessions_done;
    int n_conns, n_handshaking; /* threads; of them, not authenticated yet */
    int max_conns, max_handshakes, max_pending, handshake_ms;
    pending_t *pending;
    int n_pending;
    /* refusals, logged a few per period and then counted */
    int64_t refusal_period;
    int refusal_lines;
    unsigned long refusals_quiet, timeouts, evicted;
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Logs a refused connection unless a flood of them would fill the log; what
 * was kept quiet is counted for log_summary(). */
static void log_refusal(const char *why)
{
    pthread_mutex_lock(&srv.lock);
    int64_t now = now_ms();
    if (now - srv.refusal_period >= REFUSAL_LOG_EVERY) {
        srv.refusal_period = now;
        srv.refusal_lines = 0;
    }
    bool quiet = srv.refusal_lines >= REFUSAL_LOG_LINES;
    if (quiet)
        srv.refusals_quiet++;
    else
        srv.refusal_lines++;
    pthread_mutex_unlock(&srv.lock);
    if (!quiet)
        ek_log_kv(EK_LOG_WARNING, "connection refused", "error", why, NULL);
}

/* Once a period: how many unauthenticated connections were dropped quietly. */
static void log_summary(bool force)
{
    static int64_t last;
    int64_t now = now_ms();
    if (!force && now - last < REFUSAL_LOG_EVERY)
        return;
    pthread_mutex_lock(&srv.lock);
    unsigned long q = srv.refusals_quiet, t = srv.timeouts, e = srv.evicted;
    srv.refusals_quiet = srv.timeouts = srv.evicted = 0;
    pthread_mutex_unlock(&srv.lock);
    if (!q && !t && !e)
        return;
    last = now;
    char qs[24], ts[24], es[24];
    snprintf(qs, sizeof(qs), "%lu", q);
    snprintf(ts, sizeof(ts), "%lu", t);
    snprintf(es, sizeof(es), "%lu", e);
    ek_log_kv(EK_LOG_WARNING, "unauthenticated connections closed", "handshake_failed", qs,
              "handshake_timeout", ts, "evicted_pending", es, NULL);
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    ek_stream_t *s = NULL;
    char *peer = NULL;
    int left = (int)(c->deadline_ms - now_ms());
    int tls_fd = dup(c->fd); /* the stream's; c->fd stays ours to shut down from outside */
    ek_err_t *err = tls_fd < 0 ? ek_err_errno(errno, "cannot take the connection")
                               : ek_tls_accept(srv.ctx, tls_fd, left > 0 ? left : 1, &s, &peer);
    pthread_mutex_lock(&srv.lock);
    close(c->fd);
    c->fd = -1;
    c->stream = s;
    pthread_mutex_unlock(&srv.lock);
    if (err) {
        log_refusal(err->message);
        ek_err_free(err);
        goto done;
    }
    /* The peer is authenticated; its request head still has the deadline. */
    left = (int)(c->deadline_ms - now_ms());
    ek_stream_set_timeout(s, left > 0 ? left : 1);
    bool upgraded = false;
    err = ek_http_serve(s, &upgraded);
    pthread_mutex_lock(&srv.lock);
    c->authenticated = true;
    srv.n_handshaking--;
    pthread_mutex_unlock(&srv.lock);
    if (!err && upgraded) {
        pthread_mutex_lock(&srv.lock);
        srv.sessions_active++;
        pthread_mutex_unlock(&srv.lock);
        ek_log_kv(EK_LOG_INFO, "session started", "peer", peer, "cipher", ek_tls_cipher(s), NULL);
        err = ek_writer_session_run(srv.writer, s, peer);
        pthread_mutex_lock(&srv.lock);
        srv.sessions_active--;
        srv.sessions_done++;
        pthread_mutex_unlock(&srv.lock);
    }
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "connection ended with an error", "peer", peer, "error",
                  err->message, NULL);
        ek_err_free(err);
    }
done:
    pthread_mutex_lock(&srv.lock);
    c->stream = NULL;
    if (!c->authenticated)
        srv.n_handshaking--;
    pthread_mutex_unlock(&srv.lock);
    ek_stream_free(s);
    free(peer);
    c->done = true;
    return NULL;
}

/* Joins finished connection threads; with all, shuts down and joins every one. */
static void reap(bool all)
{
    pthread_mutex_lock(&srv.lock);
    if (all)
        for (conn_t *c = srv.conns; c; c = c->next) {
            if (c->stream)
                ek_stream_shutdown(c->stream);
            else if (c->fd >= 0)
                shutdown(c->fd, SHUT_RDWR); /* ends its handshake at once */
        }
    conn_t **pp = &srv.conns;
    while (*pp) {
        conn_t *c = *pp;
        if (c->done || all) {
            *pp = c->next;
            pthread_mutex_unlock(&srv.lock);
            pthread_join(c->thread, NULL);
            free(c);
            pthread_mutex_lock(&srv.lock);
            srv.n_conns--;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&srv.lock);
}

/* A thread for a connection whose client has started talking; false when
 * none could be made (the connection is closed). */
static bool conn_start(int fd, int64_t deadline_ms)
{
    conn_t *c = ek_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->deadline_ms = deadline_ms;
    pthread_mutex_lock(&srv.lock);
    c->next = srv.conns;
    srv.conns = c;
    srv.n_conns++;
    srv.n_handshaking++;
    bool ok = pthread_create(&c->thread, NULL, conn_main, c) == 0;
    if (!ok) {
        srv.conns = c->next;
        srv.n_conns--;
        srv.n_handshaking--;
        close(fd);
        free(c);
    }
    pthread_mutex_unlock(&srv.lock);
    return ok;
}

/* Whether a thread may start for one more unauthenticated connection: the
 * connection limit, and handshakes at most max_handshakes of it, so that a
 * flood of slow handshakes leaves room for sessions. */
static bool slot_free(void)
{
    pthread_mutex_lock(&srv.lock);
    bool ok = srv.n_conns < srv.max_conns && srv.n_handshaking < srv.max_handshakes;
    pthread_mutex_unlock(&srv.lock);
    return ok;
}

static void pending_drop(int i)
{
    close(srv.pending[i].fd);
    memmove(&srv.pending[i], &srv.pending[i + 1],
            (size_t)(srv.n_pending - i - 1) * sizeof(srv.pending[0]));
    srv.n_pending--;
}

/* Accepts what the backlog holds. A full pending list makes room by closing
 * its oldest entry: a silent connection is more likely a squatter than the
 * one that just arrived, and the limit then costs a flood its oldest
 * connections rather than refusing every new client. */
static bool accept_blocked; /* out of descriptors, nothing to close: wait a moment */

static void accept_all(int lfd)
{
    for (int n = 0; n < 64; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && srv.n_pending > 0) {
                pending_drop(0);
                pthread_mutex_lock(&srv.lock);
                srv.evicted++;
                pthread_mutex_unlock(&srv.lock);
                continue;
            }
            accept_blocked = errno == EMFILE || errno == ENFILE;
            return;
        }
        if (srv.n_pending == srv.max_pending) {
            pending_drop(0);
            pthread_mutex_lock(&srv.lock);
            srv.evicted++;
            pthread_mutex_unlock(&srv.lock);
        }
        srv.pending[srv.n_pending++] = (pending_t){fd, now_ms() + srv.handshake_ms};
    }
}

/* --stdio: SIGTERM ends the session (reads block on stdin otherwise). */
static void *stdio_watch(void *arg)
{
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_stream_shutdown(arg);
    return NULL;
}

static ek_err_t *listen_on(const char *addr, int *out_fd, int *out_port)
{
    _cleanup_free_ char *host = NULL;
    const char *port = strrchr(addr, ':');
    if (!port || port == addr || !port[1])
        return ek_err_new(EK_E_INVALID, "--listen '%s': use ADDR:PORT, e.g. 0.0.0.0:5566", addr);
    if (addr[0] == '[' && port[-1] == ']')
        host = ek_xstrndup(addr + 1, (size_t)(port - addr - 2));
    else
        host = ek_xstrndup(addr, (size_t)(port - addr));
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res;
    int rc = getaddrinfo(*host ? host : NULL, port + 1, &hints, &res);
    if (rc)
        return ek_err_new(EK_E_INVALID, "--listen '%s': %s", addr, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return ek_err_errno(e, "cannot listen on %s", addr);
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ps[16];
    getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, ps, sizeof(ps), NI_NUMERICSERV);
    *out_fd = fd;
    *out_port = atoi(ps);
    return NULL;
}

static int serve_https(const char *addr, const char *port_file, bool once)
{
    int lfd = -1, port = 0;
    ek_err_t *err = listen_on(addr, &lfd, &port);
    if (err) {
        ek_log_err(err, "cannot start");
        ek_err_free(err);
        return 1;
    }
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
            ek_error("could not write the port file \"%s\": %s", port_file, strerror(errno));
            close(lfd);
            return 1;
        }
    }
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    ek_log_kv(EK_LOG_INFO, "writer listening", "address", addr, "port", ps, NULL);
    srv.pending = ek_xcalloc((size_t)srv.max_pending, sizeof(*srv.pending));
    struct pollfd *pfd = ek_xcalloc((size_t)srv.max_pending + 2, sizeof(*pfd));
    while (!ek_stop_requested()) {
        /* Silent connections are watched here, without a thread; one gets a
         * thread (and its handshake) once it sends something and a slot is
         * free. A readable one that must wait for a slot is left out of the
         * poll, which would otherwise return at once. */
        bool room = slot_free();
        int64_t now = now_ms(), next = now + 200;
        pfd[0] = (struct pollfd){.fd = accept_blocked ? -1 : lfd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = ek_stop_fd(), .events = POLLIN};
        for (int i = 0; i < srv.n_pending; i++) {
            pfd[2 + i] = (struct pollfd){.fd = room ? srv.pending[i].fd : -1, .events = POLLIN};
            if (srv.pending[i].deadline_ms < next)
                next = srv.pending[i].deadline_ms;
        }
        int r = poll(pfd, (nfds_t)srv.n_pending + 2, next > now ? (int)(next - now) : 0);
        reap(false);
        log_summary(false);
        pthread_mutex_lock(&srv.lock);
        bool finished = once && srv.sessions_done > 0 && srv.sessions_active == 0;
        pthread_mutex_unlock(&srv.lock);
        if (finished) {
            ek_info("the transfer's connections are closed: exiting (--once)");
            break;
        }
        now = now_ms();
        /* pfd[2 + i] follows pending[i] until the first removal; walk backwards */
        for (int i = srv.n_pending - 1; i >= 0; i--) {
            short ev = r > 0 ? pfd[2 + i].revents : 0;
            if (srv.pending[i].deadline_ms <= now) {
                pending_drop(i);
                pthread_mutex_lock(&srv.lock);
                srv.timeouts++;
                pthread_mutex_unlock(&srv.lock);
            } else if (ev && slot_free()) {
                int fd = srv.pending[i].fd;
                int64_t deadline = srv.pending[i].deadline_ms;
                memmove(&srv.pending[i], &srv.pending[i + 1],
                        (size_t)(srv.n_pending - i - 1) * sizeof(srv.pending[0]));
                srv.n_pending--;
                conn_start(fd, deadline);
            }
        }
        accept_blocked = false;
        if (r > 0 && (pfd[0].revents & POLLIN))
            accept_all(lfd);
    }
    close(lfd);
    while (srv.n_pending > 0)
        pending_drop(srv.n_pending - 1);
    free(pfd);
    free(srv.pending);
    srv.pending = NULL;
    reap(true);
    log_summary(true);
    return 0;
}

/* A positive count from a flag, or -1 (with the message printed). */
static long flag_count(const char *flag, const char *arg, long max)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 1 || v > max) {
        fprintf(stderr, "%s: %s wants a number from 1 to %ld, not '%s'\n", info.name, flag, max,
                arg);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"stdio", no_argument, NULL, 's'},
        {"allow-path", required_argument, NULL, 'p'},
        {"once", no_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'},
        {"max-memory", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 'T'},
        {"port-file", required_argument, NULL, 'P'},
        {"no-direct", no_argument, NULL, 'D'},
        {"direct", no_argument, NULL, 'I'},
        {"verify-readback", no_argument, NULL, 'R'},
        {"by-id-dir", required_argument, NULL, 'B'},
        {"cache-limit", required_argument, NULL, 'C'},
        {"max-connections", required_argument, NULL, 'N'},
        {"max-pending", required_argument, NULL, 'Q'},
        {"handshake-timeout", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_addr = NULL, *cert = NULL, *key = NULL, *ca = NULL, *port_file = NULL;
    bool stdio = false, once = false;
    ek_writer_opts_t opts = {.cache_limit = (uint64_t)EK_WRITER_CACHE_LIMIT_MIB << 20};
    srv.max_conns = MAX_CONNECTIONS;
    srv.max_pending = MAX_PENDING;
    srv.handshake_ms = HANDSHAKE_TIMEOUT * 1000;
    code = 2;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_addr = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 's':
            stdio = true;
            break;
        case 'o':
            once = true;
            break;
        case 'P':
            port_file = optarg;
            break;
        case 'D':
            opts.no_direct = true;
            break;
        case 'I':
            opts.direct = true;
            break;
        case 'R':
            opts.verify_readback = true;
            break;
        case 'B':
            opts.by_id_dir = optarg;
            break;
        case 'C': {
            char *end;
            errno = 0;
            unsigned long long mib = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || mib > (1ull << 30)) {
                fprintf(stderr, "%s: --cache-limit wants MiB (0 to %llu), not '%s'\n", info.name,
                        1ull << 30, optarg);
                goto out;
            }
            opts.cache_limit = (uint64_t)mib << 20;
            break;
        }
        case 'p': {
            /* Disk paths are matched as the client writes them: keep the
             * prefix as given too when links make its canonical form differ. */
            char *canon = ek_writer_allow_canonical(optarg);
            size_t n = strlen(optarg);
            while (n > 1 && optarg[n - 1] == '/')
                n--;
            bool both = optarg[0] == '/' && (strlen(canon) != n || strncmp(canon, optarg, n));
            opts.allow = ek_xrealloc(opts.allow, (opts.n_allow + 2) * sizeof(char *));
            opts.allow[opts.n_allow++] = canon;
            if (both)
                opts.allow[opts.n_allow++] = ek_xstrndup(optarg, n);
            break;
        }
        case 'N':
            if ((srv.max_conns = (int)flag_count("--max-connections", optarg, 4096)) < 0)
                goto out;
            break;
        case 'Q':
            if ((srv.max_pending = (int)flag_count("--max-pending", optarg, 65536)) < 0)
                goto out;
            break;
        case 'H': {
            long sec = flag_count("--handshake-timeout", optarg, 3600);
            if (sec < 0)
                goto out;
            srv.handshake_ms = (int)sec * 1000;
            break;
        }
        case 't':
            opts.threads = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            opts.max_memory = (size_t)strtoul(optarg, NULL, 10) << 20;
            break;
        case 'T':
            opts.timeout_ms = (int)strtol(optarg, NULL, 10) * 1000;
            break;
        default:
            fprintf(stderr, "%s: unknown or incomplete option '%s' (see --help)\n", info.name,
                    argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", info.name, argv[optind]);
        goto out;
    }
    if (stdio == (listen_addr != NULL)) {
        fprintf(stderr, "%s: give either --listen ADDR:PORT or --stdio (see --help)\n", info.name);
        goto out;
    }
    if (!opts.n_allow) {
        fprintf(stderr, "%s: --allow-path is required: name the disks this writer may open\n",
                info.name);
        goto out;
    }
    if (listen_addr && (!cert || !key || !ca)) {
        fprintf(stderr, "%s: --listen needs --cert, --key and --ca\n", info.name);
        goto out;
    }
    srv.max_handshakes = srv.max_conns / 2 > 0 ? srv.max_conns / 2 : 1;
    ek_signals_install();
    code = 1;
    if (listen_addr) {
        ek_err_t *err = ek_tls_server_ctx_new(cert, key, ca, &srv.ctx);
        if (err) {
            ek_log_err(err, "cannot start");
            ek_err_free(err);
            goto out;
        }
    }
    srv.writer = ek_writer_new(&opts);
    if (stdio) {
        ek_stream_t *s = ek_stream_fd_new(STDIN_FILENO, STDOUT_FILENO, false);
        pthread_t watch;
        bool watching = pthread_create(&watch, NULL, stdio_watch, s) == 0;
        ek_err_t *err = ek_writer_session_run(srv.writer, s, "stdio");
        if (watching) {
            ek_stop_request(); /* ends the watcher */
            pthread_join(watch, NULL);
        }
        ek_stream_free(s);
        code = 0;
        if (err) {
            ek_log_err(err, "session failed");
            ek_err_free(err);
            code = 1;
        }
    } else {
        code = serve_https(listen_addr, port_file, once);
    }
    ek_writer_free(srv.writer);
    SSL_CTX_free(srv.ctx);
    ek_info("writer stopped");
out:
    for (size_t i = 0; i < opts.n_allow; i++)
        free(opts.allow[i]);
    free(opts.allow);
    ek_config_free(cfg);
    ek_log_shutdown();
    return code;
}
