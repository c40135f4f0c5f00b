/* main.c - ekman-writer: the agent in the disk-copy worker VM that writes the
 * chunks it receives at their offsets on the attached disks. It needs no
 * configuration file: everything comes from flags. Two transports:
 *   --listen ADDR:PORT --cert --key --ca   HTTPS with mutual TLS 1.3; each
 *        connection upgrades POST /v1/stream to the frame stream (http.c)
 *   --stdio   one session on stdin/stdout (run by the worker over SSH)
 * Only disks under an --allow-path prefix can be opened. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
             "  --listen ADDR:PORT  serve HTTPS (mutual TLS 1.3) on this address\n"
             "  --cert FILE         server certificate (PEM), with --listen\n"
             "  --key FILE          its private key (PEM)\n"
             "  --ca FILE           the CA that signs accepted client certificates\n"
             "  --stdio             serve one session on stdin/stdout (over SSH)\n"
             "  --allow-path P      only disks under P may be opened (repeatable; required)\n"
             "  --once              exit when the first transfer's connections are all closed\n"
             "  --threads N         threads that decompress, verify and write (default: CPUs)\n"
             "  --max-memory MIB    bound on frame buffers in flight (default 128)\n"
             "  --timeout SEC       idle limit of a connection (default 600)\n"
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

typedef struct conn {
    pthread_t thread;
    int fd;
    ek_stream_t *stream; /* set once the handshake is done */
    volatile bool done;
    struct conn *next;
} conn_t;

static struct {
    ek_writer_t *writer;
    SSL_CTX *ctx;
    pthread_mutex_t lock;
    conn_t *conns;
    int sessions_active, sessions_done;
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    ek_stream_t *s = NULL;
    char *peer = NULL;
    ek_err_t *err = ek_tls_accept(srv.ctx, c->fd, 10000, &s, &peer);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "connection refused", "error", err->message, NULL);
        ek_err_free(err);
        c->done = true;
        return NULL;
    }
    pthread_mutex_lock(&srv.lock);
    c->stream = s;
    pthread_mutex_unlock(&srv.lock);
    bool upgraded = false;
    err = ek_http_serve(s, &upgraded);
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
    pthread_mutex_lock(&srv.lock);
    c->stream = NULL;
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
        for (conn_t *c = srv.conns; c; c = c->next)
            if (c->stream)
                ek_stream_shutdown(c->stream);
    conn_t **pp = &srv.conns;
    while (*pp) {
        conn_t *c = *pp;
        if (c->done || all) {
            *pp = c->next;
            pthread_mutex_unlock(&srv.lock);
            pthread_join(c->thread, NULL);
            free(c);
            pthread_mutex_lock(&srv.lock);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&srv.lock);
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
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
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
    while (!ek_stop_requested()) {
        struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN},
                                {.fd = ek_stop_fd(), .events = POLLIN}};
        int r = poll(pfd, 2, 200);
        reap(false);
        pthread_mutex_lock(&srv.lock);
        bool finished = once && srv.sessions_done > 0 && srv.sessions_active == 0;
        pthread_mutex_unlock(&srv.lock);
        if (finished) {
            ek_info("the transfer's connections are closed: exiting (--once)");
            break;
        }
        if (r <= 0 || !(pfd[0].revents & POLLIN))
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        conn_t *c = ek_xcalloc(1, sizeof(*c));
        c->fd = fd;
        pthread_mutex_lock(&srv.lock);
        c->next = srv.conns;
        srv.conns = c;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            srv.conns = c->next;
            close(fd);
            free(c);
        }
        pthread_mutex_unlock(&srv.lock);
    }
    close(lfd);
    reap(true);
    return 0;
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
        {NULL, 0, NULL, 0},
    };
    const char *listen_addr = NULL, *cert = NULL, *key = NULL, *ca = NULL, *port_file = NULL;
    bool stdio = false, once = false;
    ek_writer_opts_t opts = {.cache_limit = (uint64_t)EK_WRITER_CACHE_LIMIT_MIB << 20};
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
        case 'p':
            opts.allow = ek_xrealloc(opts.allow, (opts.n_allow + 1) * sizeof(char *));
            opts.allow[opts.n_allow++] = ek_writer_allow_canonical(optarg);
            break;
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
