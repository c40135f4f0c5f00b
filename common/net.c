/* net.c - TCP connections (net.h). */
#include "common/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Waits for a non-blocking connect: 0, or the errno it ended with. */
static int connect_wait(int fd, int timeout_ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int r;
    do
        r = poll(&pf, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return ETIMEDOUT;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        return errno;
    return soerr;
}

ek_err_t *ek_tcp_connect(const char *host, const char *port, int timeout_ms, int *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return ek_err_new(EK_E_UNAVAILABLE, "cannot resolve host name '%s': %s", host,
                          rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    int err = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0
              : errno == EINPROGRESS                      ? connect_wait(fd, timeout_ms)
                                                          : errno;
        if (err == 0) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            freeaddrinfo(res);
            *out = fd;
            return NULL;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ek_err_new(EK_E_UNAVAILABLE, "cannot open a TCP connection to %s port %s: %s", host,
                      port, strerror(err ? err : EHOSTUNREACH));
}
