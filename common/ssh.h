/* ssh.h - the one SSH client session setup (libssh2) of Ekman: the data
 * plane's SSH transport (worker/transfer/ssh.c) and the libvirt provider's
 * connection to a host (worker/providers/libvirt/conn.c) both open their
 * sessions here. Each step - name resolution, TCP, handshake, host key,
 * login - fails with its own error, written for the person who must fix it.
 *
 * The host key is checked against a known_hosts file; when that file does
 * not exist and a SHA256 fingerprint is given instead, the key the host
 * offers must have that fingerprint, and is then written to the file (for
 * tools, such as libvirt's transport, that read known_hosts). Login is by
 * private key file only. */
#ifndef EK_COMMON_SSH_H
#define EK_COMMON_SSH_H

#include <libssh2.h>
#include <stdbool.h>
#include "common/error.h"

typedef struct ek_ssh_peer {
    const char *host;
    int port;
    const char *user;
    const char *key_file;    /* the private key (unencrypted; ed25519 or ECDSA) */
    const char *known_hosts; /* a known_hosts file */
    const char *fingerprint; /* "SHA256:..." when known_hosts does not exist yet, or NULL */
    /* how errors name the known hosts and the key to the user, e.g.
     * "connection_info.known_hosts", "connection_info.private_key" */
    const char *known_hosts_name, *key_name, *fingerprint_name;
    int timeout_ms; /* each blocking step */
    bool bulk;      /* prefer the fastest ciphers and MACs (aes-ctr, hmac-sha1) */
} ek_ssh_peer_t;

/* An authenticated session, blocking with the peer's timeout; *fd is its
 * socket. */
EK_ERR_CHECK ek_ssh_open(const ek_ssh_peer_t *p, int *fd, LIBSSH2_SESSION **out);
/* Disconnects (blocking, with a short timeout), frees, closes fd. */
void ek_ssh_close(LIBSSH2_SESSION *s, int fd, const char *why);
/* The session's last error message, never NULL. */
const char *ek_ssh_errmsg(LIBSSH2_SESSION *s);

#endif
