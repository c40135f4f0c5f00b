/* net.h - the one TCP connect of the project: the data plane's HTTPS
 * connections to ekman-writer and every SSH session (common/ssh.c) open
 * their sockets here. */
#ifndef EK_COMMON_NET_H
#define EK_COMMON_NET_H

#include "common/error.h"

/* A connected, blocking TCP socket (close-on-exec) to host:port, trying
 * each address getaddrinfo gives (IPv4 and IPv6) within timeout_ms each.
 * Errors say "cannot resolve host name 'H': ..." or "cannot open a TCP
 * connection to H port P: ..." (EK_E_UNAVAILABLE); callers add what to
 * check. */
EK_ERR_CHECK ek_tcp_connect(const char *host, const char *port, int timeout_ms, int *fd);

#endif
