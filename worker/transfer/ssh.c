/* ssh.c - the SSH transport: one libssh2 session per connection whose exec
 * channel runs `ekman-writer --stdio` on the host, as an ek_stream_t.
 *
 * The session is opened by the common SSH client (common/ssh.h): the host
 * key must be in the given known_hosts file; the user logs in with a key.
 * libssh2 sessions are not thread-safe, so every call on one is made
 * under the stream's mutex in non-blocking mode, and waits happen outside
 * it; the writer's stderr is drained into our log so that it never blocks. */
#include "worker/transfer/connect.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libssh2.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/ssh.h"

typedef struct ssh_stream {
    ek_stream_t base;
    int fd;
    LIBSSH2_SESSION *session;
    LIBSSH2_CHANNEL *channel;
    pthread_mutex_t lock;
    volatile bool shut;
    /* Two threads use a session (the reader, and one writer at a time). The
     * other's call may take from the socket what one waits for (channel data,
     * a window adjust): then it wakes the waiter through evfd. */
    bool read_waiting, write_waiting;
    int evfd;
    char errline[256];
    size_t errlen;
} ssh_stream_t;

/* Forwards what the remote writer prints on stderr, line by line (lock held). */
static void drain_stderr(ssh_stream_t *t)
{
    char buf[1024];
    ssize_t n;
    while ((n = libssh2_channel_read_stderr(t->channel, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || t->errlen == sizeof(t->errline) - 1) {
                t->errline[t->errlen] = 0;
                if (t->errlen)
                    ek_log_kv(EK_LOG_INFO, "remote writer", "line", t->errline, NULL);
                t->errlen = 0;
            } else {
                t->errline[t->errlen++] = buf[i];
            }
        }
    }
}

/* After a libssh2 call (lock held): wake the other thread if what it waits
 * for arrived meanwhile. */
static void ssh_moved(ssh_stream_t *t)
{
    if ((t->read_waiting &&
         (libssh2_poll_channel_read(t->channel, 0) || libssh2_channel_eof(t->channel))) ||
        (t->write_waiting && libssh2_channel_window_write(t->channel) > 0))
        eventfd_write(t->evfd, 1);
}

/* Waits for the socket in the direction libssh2 needs, or for the other
 * thread to say that our data or window arrived. */
static int ssh_wait(ssh_stream_t *t, bool reading, uint64_t deadline_ns)
{
    pthread_mutex_lock(&t->lock);
    if (reading ? libssh2_poll_channel_read(t->channel, 0) || libssh2_channel_eof(t->channel)
                : libssh2_channel_window_write(t->channel) > 0) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    int dir = libssh2_session_block_directions(t->session);
    if (reading)
        t->read_waiting = true;
    else
        t->write_waiting = true;
    pthread_mutex_unlock(&t->lock);
    short ev = (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND ? POLLOUT : 0) |
               (dir & LIBSSH2_SESSION_BLOCK_INBOUND ? POLLIN : 0);
    int rc = 0;
    for (;;) {
        if (t->shut) {
            ek_stream_set_error(&t->base, "shut down");
            rc = -1;
            break;
        }
        struct pollfd pfd[2] = {{.fd = t->fd, .events = ev ? ev : POLLIN},
                                {.fd = t->evfd, .events = POLLIN}};
        int r = poll(pfd, 2, 200);
        if (r > 0) {
            eventfd_t v;
            if (pfd[1].revents & POLLIN)
                eventfd_read(t->evfd, &v);
            break;
        }
        if (r < 0 && errno != EINTR) {
            ek_stream_set_error(&t->base, "%s", strerror(errno));
            rc = -1;
            break;
        }
        if (ek_stream_now_ns() >= deadline_ns) {
            ek_stream_set_error(&t->base, "timed out");
            t->base.error_code = EK_E_TIMEOUT; /* the stream stays usable: callers may wait again */
            rc = -1;
            break;
        }
    }
    pthread_mutex_lock(&t->lock);
    if (reading)
        t->read_waiting = false;
    else
        t->write_waiting = false;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static ssize_t ssh_read(ek_stream_t *s, void *buf, size_t len)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    uint64_t deadline = ek_stream_now_ns() + (uint64_t)s->timeout_ms * 1000000u;
    for (;;) {
        if (t->shut) {
            ek_stream_set_error(s, "shut down");
            return -1;
        }
        pthread_mutex_lock(&t->lock);
        ssize_t n = libssh2_channel_read(t->channel, buf, len);
        drain_stderr(t);
        bool eof = n == 0 && libssh2_channel_eof(t->channel);
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            ek_stream_set_error(s, "%s", ek_ssh_errmsg(t->session));
        ssh_moved(t);
        pthread_mutex_unlock(&t->lock);
        if (n > 0 || eof)
            return n;
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            return -1;
        if (ssh_wait(t, true, deadline) != 0)
            return -1;
    }
}

static ssize_t ssh_write(ek_stream_t *s, const void *buf, size_t len)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    uint64_t deadline = ek_stream_now_ns() + (uint64_t)s->timeout_ms * 1000000u;
    for (;;) {
        if (t->shut) {
            ek_stream_set_error(s, "shut down");
            return -1;
        }
        pthread_mutex_lock(&t->lock);
        ssize_t n = libssh2_channel_write(t->channel, buf, len);
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            ek_stream_set_error(s, "%s", ek_ssh_errmsg(t->session));
        ssh_moved(t);
        pthread_mutex_unlock(&t->lock);
        if (n > 0)
            return n;
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            return -1;
        uint64_t t0 = ek_stream_now_ns();
        if (ssh_wait(t, false, deadline) != 0)
            return -1;
        __atomic_add_fetch(&s->write_wait_ns, ek_stream_now_ns() - t0, __ATOMIC_RELAXED);
    }
}

static void ssh_shutdown(ek_stream_t *s)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    t->shut = true;
    shutdown(t->fd, SHUT_RDWR);
}

static void ssh_finish(ek_stream_t *s)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&t->lock);
        int rc = libssh2_channel_send_eof(t->channel);
        ssh_moved(t);
        pthread_mutex_unlock(&t->lock);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            break;
        usleep(5000);
    }
}

static void ssh_wire_bytes(ek_stream_t *s, uint64_t *out, uint64_t *in)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    if (!ek_stream_tcp_bytes(t->fd, out, in)) {
        *out = s->bytes_out;
        *in = s->bytes_in;
    }
}

static void ssh_free_session(ssh_stream_t *t, bool polite)
{
    if (t->session) {
        libssh2_session_set_blocking(t->session, 1);
        libssh2_session_set_timeout(t->session, 2000);
        if (t->channel) {
            if (polite) {
                libssh2_channel_send_eof(t->channel);
                libssh2_channel_close(t->channel);
            }
            libssh2_channel_free(t->channel);
        }
        if (polite)
            libssh2_session_disconnect(t->session, "transfer done");
        libssh2_session_free(t->session);
    }
    if (t->fd >= 0)
        close(t->fd);
    if (t->evfd >= 0)
        close(t->evfd);
    pthread_mutex_destroy(&t->lock);
}

static void ssh_destroy(ek_stream_t *s)
{
    ssh_stream_t *t = (ssh_stream_t *)s;
    ssh_free_session(t, !t->shut);
    free(t);
}

static const ek_stream_ops_t ssh_ops = {
    .name = "ssh",
    .read = ssh_read,
    .write = ssh_write,
    .shutdown = ssh_shutdown,
    .finish = ssh_finish,
    .wire_bytes = ssh_wire_bytes,
    .destroy = ssh_destroy,
};

ek_err_t *ek_ssh_connect(void *target, ek_stream_t **out)
{
    const ek_ssh_target_t *tg = target;
    ek_ssh_peer_t peer = {.host = tg->host,
                          .port = atoi(tg->port),
                          .user = tg->user,
                          .key_file = tg->key_file,
                          .known_hosts = tg->known_hosts,
                          .known_hosts_name = "the writer's known_hosts",
                          .key_name = "the writer's SSH key",
                          .timeout_ms = tg->timeout_ms,
                          .bulk = true};
    int fd;
    LIBSSH2_SESSION *session;
    ek_err_t *err = ek_ssh_open(&peer, &fd, &session);
    if (err)
        return ek_err_prefix(err, "ssh");
    ssh_stream_t *t = ek_xcalloc(1, sizeof(*t));
    ek_stream_init(&t->base, &ssh_ops);
    ek_stream_set_timeout(&t->base, tg->timeout_ms);
    pthread_mutex_init(&t->lock, NULL);
    t->fd = fd;
    t->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->session = session;
    t->channel = libssh2_channel_open_ex(t->session, "session", sizeof("session") - 1,
                                         8 * 1024 * 1024, LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
    if (!t->channel || libssh2_channel_exec(t->channel, tg->command) != 0) {
        err = ek_err_new(EK_E_UNAVAILABLE, "ssh: cannot run \"%s\" on %s: %s", tg->command,
                         tg->host, ek_ssh_errmsg(t->session));
        goto fail;
    }
    libssh2_session_set_blocking(t->session, 0);
    *out = &t->base;
    return NULL;
fail:
    ssh_free_session(t, false);
    pthread_mutex_destroy(&t->base.wlock);
    pthread_mutex_destroy(&t->base.elock);
    free(t);
    return err;
}
