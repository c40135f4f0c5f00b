/* tls.h - TLS 1.3 with mutual authentication for the data plane (OpenSSL).
 *
 * Each transfer has its own CA (see pki.h): the writer accepts only clients
 * whose certificate that CA signed, and the engine accepts only a writer
 * whose certificate it signed, so a certificate of another transfer opens
 * nothing. Both ends refuse anything older than TLS 1.3. The streams these
 * functions return are ek_stream_t (stream.h) and own the socket. */
#ifndef EK_TRANSFER_TLS_H
#define EK_TRANSFER_TLS_H

#include <openssl/ssl.h>
#include "common/error.h"
#include "worker/transfer/stream.h"

/* The writer's context: its certificate and key, and the CA that signs the
 * clients it accepts (a client without such a certificate is refused). The
 * server's order of cipher suites decides: AES-GCM first on a CPU with AES
 * instructions, ChaCha20-Poly1305 first on one without (ek_tls_cpu_has_aes). */
EK_ERR_CHECK ek_tls_server_ctx_new(const char *cert, const char *key, const char *ca,
                                   SSL_CTX **out);
/* The engine's context: its client certificate and key, and the CA that
 * must have signed the writer's certificate. cert and key NULL: a client
 * without a certificate, which a writer refuses (for tests). Both contexts
 * ask for kernel TLS (SSL_OP_ENABLE_KTLS); OpenSSL uses it where the kernel
 * has it, and seals the records itself otherwise. */
EK_ERR_CHECK ek_tls_client_ctx_new(const char *cert, const char *key, const char *ca,
                                   SSL_CTX **out);

/* Runs the server side of the handshake on a connected socket (which the
 * stream then owns; on error it is closed). *peer gets the client's
 * certificate subject (caller frees) when peer is not NULL. */
EK_ERR_CHECK ek_tls_accept(SSL_CTX *ctx, int fd, int timeout_ms, ek_stream_t **out, char **peer);
/* Client side; when server_name is not NULL the writer's certificate must
 * carry it (DNS or IP subjectAltName). */
EK_ERR_CHECK ek_tls_connect(SSL_CTX *ctx, int fd, const char *server_name, int timeout_ms,
                            ek_stream_t **out);

/* Full (16 KiB) records sealed with one key before a KeyUpdate (0: the
 * default, 2^24): counted in bytes handed to OpenSSL, which sends the
 * KeyUpdate. For tests, which need key updates within a few records. */
void ek_tls_set_records_per_key(uint64_t n);

/* Whether this CPU has AES and carry-less multiply instructions (AES-GCM
 * fast); ek_tls_set_aes_hint(0 or 1) overrides the answer (tests), -1 asks
 * the CPU again. Read when a server context is made. */
bool ek_tls_cpu_has_aes(void);
void ek_tls_set_aes_hint(int has_aes);

/* The negotiated cipher suite of a TLS stream (for logs), or "". */
const char *ek_tls_cipher(ek_stream_t *s);
/* True when the kernel seals this TLS stream's records (kernel TLS). */
bool ek_tls_is_ktls(ek_stream_t *s);

#endif
