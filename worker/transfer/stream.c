/* stream.c - the common part of ek_stream_t and the file-descriptor stream
 * (sockets, pipes, stdin/stdout of `ekman-writer --stdio`). */
#include "worker/transfer/stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* the kernel's tcp_info: glibc's lacks the byte counters */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/mem.h"

#define DEFAULT_TIMEOUT_MS (120 * 1000)

void ek_stream_init(ek_stream_t *s, const ek_stream_ops_t *ops)
{
    s->ops = ops;
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->elock, NULL);
    s->timeout_ms = DEFAULT_TIMEOUT_MS;
    s->error[0] = 0;
}

void ek_stream_set_error(ek_stream_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->elock);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    pthread_mutex_unlock(&s->elock);
    va_end(ap);
}

void ek_stream_set_timeout(ek_stream_t *s, int timeout_ms)
{
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
}

static ek_err_t *stream_err(ek_stream_t *s, const char *what)
{
    char msg[sizeof(s->error)];
    pthread_mutex_lock(&s->elock);
    snprintf(msg, sizeof(msg), "%s", s->error[0] ? s->error : "unknown error");
    pthread_mutex_unlock(&s->elock);
    return ek_err_new(s->error_code ? (ek_errcode_t)s->error_code : EK_E_IO, "%s stream: %s: %s",
                      s->ops->name, what, msg);
}

ek_err_t *ek_stream_read_full(ek_stream_t *s, void *buf, size_t len, bool *eof)
{
    size_t done = 0;
    if (eof)
        *eof = false;
    while (done < len) {
        ssize_t n = s->ops->read(s, (char *)buf + done, len - done);
        if (n < 0)
            return stream_err(s, "read failed");
        if (n == 0) {
            if (done == 0 && eof) {
                *eof = true;
                return NULL;
            }
            return ek_err_new(EK_E_PROTOCOL, "%s stream: ended after %zu of %zu bytes",
                              s->ops->name, done, len);
        }
        done += (size_t)n;
    }
    __atomic_add_fetch(&s->bytes_in, len, __ATOMIC_RELAXED);
    return NULL;
}

ek_err_t *ek_stream_writev(ek_stream_t *s, const struct iovec *iov, int iovcnt)
{
    ek_err_t *err = NULL;
    size_t total = 0;
    pthread_mutex_lock(&s->wlock);
    if (s->ops->writev) {
        if (s->ops->writev(s, iov, iovcnt) != 0)
            err = stream_err(s, "write failed");
        for (int i = 0; i < iovcnt; i++)
            total += iov[i].iov_len;
        iovcnt = 0;
    }
    for (int i = 0; i < iovcnt && !err; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left) {
            ssize_t n = s->ops->write(s, p, left);
            if (n <= 0) {
                err = stream_err(s, "write failed");
                break;
            }
            p += n;
            left -= (size_t)n;
        }
        total += iov[i].iov_len;
    }
    pthread_mutex_unlock(&s->wlock);
    if (!err)
        __atomic_add_fetch(&s->bytes_out, total, __ATOMIC_RELAXED);
    return err;
}

ek_err_t *ek_stream_write_all(ek_stream_t *s, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return ek_stream_writev(s, &iov, 1);
}

void ek_stream_shutdown(ek_stream_t *s)
{
    if (s)
        s->ops->shutdown(s);
}

void ek_stream_finish(ek_stream_t *s)
{
    if (s && s->ops->finish) {
        pthread_mutex_lock(&s->wlock); /* never inside another writer's frame */
        s->ops->finish(s);
        pthread_mutex_unlock(&s->wlock);
    }
}

void ek_stream_wire_bytes(ek_stream_t *s, uint64_t *out, uint64_t *in)
{
    if (s->ops->wire_bytes) {
        s->ops->wire_bytes(s, out, in);
    } else {
        *out = __atomic_load_n(&s->bytes_out, __ATOMIC_RELAXED);
        *in = __atomic_load_n(&s->bytes_in, __ATOMIC_RELAXED);
    }
}

void ek_stream_free(ek_stream_t *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->elock);
    s->ops->destroy(s); /* frees the whole object */
}

uint64_t ek_stream_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ek_stream_poll_fd(int fd, short events, int timeout_ms, const volatile bool *shut)
{
    int waited = 0;
    for (;;) {
        if (shut && *shut) {
            errno = ECONNABORTED;
            return -1;
        }
        int slice = timeout_ms - waited < 100 ? timeout_ms - waited : 100;
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, slice);
        if (r > 0)
            return 0; /* ready, or an error/hangup the next call will report */
        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0)
            waited += slice;
        if (waited >= timeout_ms) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

bool ek_stream_tcp_bytes(int fd, uint64_t *out, uint64_t *in)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return false;
    *out = ti.tcpi_bytes_acked;
    *in = ti.tcpi_bytes_received;
    return true;
}

/* ---- file-descriptor stream ---- */

typedef struct fd_stream {
    ek_stream_t base;
    int rfd, wfd;
    bool own, is_socket, wclosed;
    volatile bool shut;
    pid_t child; /* reaped by destroy, when not 0 */
    void (*on_destroy)(void *);
    void *on_destroy_arg;
} fd_stream_t;

static ssize_t fd_read(ek_stream_t *s, void *buf, size_t len)
{
    fd_stream_t *f = (fd_stream_t *)s;
    for (;;) {
        if (ek_stream_poll_fd(f->rfd, POLLIN, s->timeout_ms, &f->shut) != 0) {
            ek_stream_set_error(s, "%s", f->shut ? "shut down" : strerror(errno));
            return -1;
        }
        ssize_t n = read(f->rfd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR || errno == EAGAIN)
            continue;
        ek_stream_set_error(s, "%s", strerror(errno));
        return -1;
    }
}

static ssize_t fd_write(ek_stream_t *s, const void *buf, size_t len)
{
    fd_stream_t *f = (fd_stream_t *)s;
    for (;;) {
        uint64_t t0 = ek_stream_now_ns();
        if (ek_stream_poll_fd(f->wfd, POLLOUT, s->timeout_ms, &f->shut) != 0) {
            ek_stream_set_error(s, "%s", f->shut ? "shut down" : strerror(errno));
            return -1;
        }
        __atomic_add_fetch(&s->write_wait_ns, ek_stream_now_ns() - t0, __ATOMIC_RELAXED);
        ssize_t n = f->is_socket ? send(f->wfd, buf, len, MSG_NOSIGNAL) : write(f->wfd, buf, len);
        if (n > 0)
            return n;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        ek_stream_set_error(s, "%s", n < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
}

static void fd_shutdown(ek_stream_t *s)
{
    fd_stream_t *f = (fd_stream_t *)s;
    f->shut = true;
    if (f->is_socket)
        shutdown(f->rfd, SHUT_RDWR);
}

static void fd_finish(ek_stream_t *s)
{
    fd_stream_t *f = (fd_stream_t *)s;
    if (f->is_socket)
        shutdown(f->wfd, SHUT_WR);
    else if (f->own && f->wfd != f->rfd && !f->wclosed) {
        close(f->wfd);
        f->wclosed = true;
    }
}

static void fd_destroy(ek_stream_t *s)
{
    fd_stream_t *f = (fd_stream_t *)s;
    if (f->own) {
        close(f->rfd);
        if (f->wfd != f->rfd && !f->wclosed)
            close(f->wfd);
    }
    if (f->child > 0) {
        /* It sees the end of its input and exits; give it 5 s. */
        int status;
        pid_t r = 0;
        for (int i = 0; i < 500 && (r = waitpid(f->child, &status, WNOHANG)) == 0; i++)
            usleep(10000);
        if (r == 0) {
            kill(f->child, SIGKILL);
            waitpid(f->child, &status, 0);
        }
    }
    if (f->on_destroy)
        f->on_destroy(f->on_destroy_arg);
    free(f);
}

static const ek_stream_ops_t fd_ops = {
    .name = "fd",
    .read = fd_read,
    .write = fd_write,
    .shutdown = fd_shutdown,
    .finish = fd_finish,
    .wire_bytes = NULL, /* payload bytes are what crosses a pipe */
    .destroy = fd_destroy,
};

ek_stream_t *ek_stream_fd_new(int rfd, int wfd, bool own)
{
    fd_stream_t *f = ek_xcalloc(1, sizeof(*f));
    ek_stream_init(&f->base, &fd_ops);
    f->rfd = rfd;
    f->wfd = wfd;
    f->own = own;
    int type;
    socklen_t tl = sizeof(type);
    f->is_socket = getsockopt(wfd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    return &f->base;
}

void ek_stream_fd_set_child(ek_stream_t *s, pid_t pid)
{
    if (s->ops == &fd_ops)
        ((fd_stream_t *)s)->child = pid;
}

void ek_stream_fd_set_on_destroy(ek_stream_t *s, void (*fn)(void *), void *arg)
{
    if (s->ops == &fd_ops) {
        ((fd_stream_t *)s)->on_destroy = fn;
        ((fd_stream_t *)s)->on_destroy_arg = arg;
    }
}
