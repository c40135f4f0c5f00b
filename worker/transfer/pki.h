/* pki.h - the per-transfer certificates of the HTTPS data plane.
 *
 * ek_pki_generate() makes a fresh CA and signs one server certificate (for
 * ekman-writer) and one client certificate (for the worker's engine), all
 * ECDSA P-256, and writes them as PEM files into a directory:
 *   ca.pem                       the CA certificate (both sides)
 *   server.pem, server.key       handed to the writer VM at boot
 *   client.pem, client.key       kept by the worker
 * The CA's private key is never written: once the two certificates are
 * signed nobody can mint another one, so a transfer's CA trusts exactly its
 * two ends. Keys are written 0600. */
#ifndef EK_TRANSFER_PKI_H
#define EK_TRANSFER_PKI_H

#include "common/error.h"

#define EK_PKI_SERVER_NAME "ekman-writer"

/* dir must exist. extra_names (NULL-terminated, may be NULL) are added to the
 * server certificate's subjectAltName besides "ekman-writer": IP addresses
 * become IP entries, anything else DNS entries. */
EK_ERR_CHECK ek_pki_generate(const char *dir, const char *const *extra_names, int valid_days);

#endif
