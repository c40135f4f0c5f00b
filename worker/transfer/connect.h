/* connect.h - the ways the transfer engine reaches an ekman-writer. Each is
 * a function that opens one more connection (the engine opens several) and
 * returns it as an ek_stream_t on which frames can flow:
 *   https  TCP + TLS 1.3 with client certificate + HTTP/1.1 upgrade of
 *          POST /v1/stream (the writer listens with --listen)
 *   ssh    an SSH session (libssh2) that runs `ekman-writer --stdio`
 *   exec   the worker's own ekman-writer speaking the frames on stdin/stdout
 *          (local copies): `ekman-writer --stdio --allow-path DIR`, run with
 *          execv (never a shell; the argv is built by the worker, see target.c) */
#ifndef EK_TRANSFER_CONNECT_H
#define EK_TRANSFER_CONNECT_H

#include <openssl/ssl.h>
#include "common/error.h"
#include "common/net.h"
#include "worker/transfer/stream.h"

typedef ek_err_t *(*ek_connect_fn)(void *target, ek_stream_t **out);

typedef struct ek_https_target {
    const char *host, *port;
    SSL_CTX *ctx;            /* ek_tls_client_ctx_new() */
    const char *server_name; /* checked against the writer's certificate; NULL: chain only */
    int timeout_ms;
} ek_https_target_t;
EK_ERR_CHECK ek_https_connect(void *target, ek_stream_t **out);

typedef struct ek_ssh_target {
    const char *host, *port, *user;
    const char *key_file;    /* private key (ed25519 or ecdsa) */
    const char *known_hosts; /* OpenSSH known_hosts with the host's key: required */
    const char *command;     /* run on the host, e.g. "ekman-writer --stdio --allow-path /dev" */
    int timeout_ms;
} ek_ssh_target_t;
EK_ERR_CHECK ek_ssh_connect(void *target, ek_stream_t **out);

typedef struct ek_exec_target {
    char **argv; /* argv[0] is an absolute path; run with execv, no shell */
} ek_exec_target_t;
EK_ERR_CHECK ek_exec_connect(void *target, ek_stream_t **out);

#endif
