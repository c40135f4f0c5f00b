/* stream.h - a byte stream between the transfer engine and ekman-writer: a
 * socket or pipe pair, a TLS connection or an SSH channel behind one table of
 * functions (ek_stream_ops_t), so that neither end knows which it holds.
 *
 * Threading: one thread may read while others write. Writers go through
 * ek_stream_writev(), which holds the stream's write lock for a whole frame,
 * so frames of concurrent writers never interleave. ek_stream_shutdown() may
 * be called from any thread and makes blocked reads and writes fail soon.
 * Every wait is bounded by the stream's timeout. */
#ifndef EK_TRANSFER_STREAM_H
#define EK_TRANSFER_STREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "common/error.h"

typedef struct ek_stream ek_stream_t;

typedef struct ek_stream_ops {
    const char *name; /* "fd", "tls", "ssh" */
    /* Reads up to len bytes: > 0 bytes read, 0 at the end of the stream,
     * -1 on error or timeout (with ek_stream_set_error() called). */
    ssize_t (*read)(ek_stream_t *s, void *buf, size_t len);
    /* Writes up to len bytes (at least 1 unless it fails): bytes or -1. */
    ssize_t (*write)(ek_stream_t *s, const void *buf, size_t len);
    /* Optional: writes all of iov (0, or -1 on error); else write() is
     * called for each element. */
    int (*writev)(ek_stream_t *s, const struct iovec *iov, int iovcnt);
    /* Unblocks and fails current and later reads and writes. Thread-safe. */
    void (*shutdown)(ek_stream_t *s);
    /* Optional: no more writes; the peer reads the end of the stream (TLS
     * close_notify, SSH EOF, socket half-close). Reads go on. Thread-safe. */
    void (*finish)(ek_stream_t *s);
    /* Bytes sent and received on the network, protocol overhead included
     * (optional: NULL counts the payload bytes). */
    void (*wire_bytes)(ek_stream_t *s, uint64_t *out, uint64_t *in);
    /* Closes and frees the implementation (not the ek_stream_t part). */
    void (*destroy)(ek_stream_t *s);
} ek_stream_ops_t;

/* Implementations embed this as their first member. */
struct ek_stream {
    const ek_stream_ops_t *ops;
    pthread_mutex_t wlock;
    pthread_mutex_t elock;
    int timeout_ms;               /* every wait; default 120 s */
    uint64_t bytes_out, bytes_in; /* payload bytes through this interface */
    uint64_t write_wait_ns;       /* time writes waited for the peer or the network */
    char error[256];              /* last error, for the message of the failure */
    int error_code;               /* its ek_errcode_t (0: EK_E_IO) */
};

/* Sets up the common part (called by implementations). */
void ek_stream_init(ek_stream_t *s, const ek_stream_ops_t *ops);
void ek_stream_set_error(ek_stream_t *s, const char *fmt, ...) EK_PRINTF(2, 3);
void ek_stream_set_timeout(ek_stream_t *s, int timeout_ms);

/* Reads exactly len bytes. *eof (may be NULL) is set when the stream ended
 * cleanly before the first byte; ending inside the bytes is an error. */
EK_ERR_CHECK ek_stream_read_full(ek_stream_t *s, void *buf, size_t len, bool *eof);
/* Writes all of iov as one unit with respect to other writers. */
EK_ERR_CHECK ek_stream_writev(ek_stream_t *s, const struct iovec *iov, int iovcnt);
EK_ERR_CHECK ek_stream_write_all(ek_stream_t *s, const void *buf, size_t len);
void ek_stream_shutdown(ek_stream_t *s);
void ek_stream_finish(ek_stream_t *s);
void ek_stream_wire_bytes(ek_stream_t *s, uint64_t *out, uint64_t *in);
/* Closes and frees; NULL is fine. */
void ek_stream_free(ek_stream_t *s);

/* A stream over file descriptors: a socket (rfd == wfd) or a pipe pair.
 * With own, they are closed by ek_stream_free(). */
ek_stream_t *ek_stream_fd_new(int rfd, int wfd, bool own);
/* Makes ek_stream_free() of an fd stream wait for (and if need be kill) the
 * child process at the other end. */
void ek_stream_fd_set_child(ek_stream_t *s, pid_t pid);
/* Makes ek_stream_free() of an fd stream call fn(arg) once its descriptors
 * are closed (the end of a socket pair served by a thread: join it there). */
void ek_stream_fd_set_on_destroy(ek_stream_t *s, void (*fn)(void *), void *arg);

/* Monotonic clock in nanoseconds (for wait accounting). */
uint64_t ek_stream_now_ns(void);

/* Waits until fd is ready for events (POLLIN/POLLOUT) within timeout_ms;
 * also returns when shut is set by another thread (polled every 100 ms). */
int ek_stream_poll_fd(int fd, short events, int timeout_ms, const volatile bool *shut);

/* TCP bytes sent (acknowledged by the peer) and received on a socket, from
 * TCP_INFO; false when fd is not a TCP socket. */
bool ek_stream_tcp_bytes(int fd, uint64_t *out, uint64_t *in);

#endif
