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

/* Lifetime of a transfer's certificates: they serve one transfer, whose
 * connections handshake again when they are reopened, so they must outlast
 * it, and nothing else. A caller that knows a transfer will run longer
 * passes more, up to EK_PKI_MAX_VALID_HOURS. */
#define EK_PKI_VALID_HOURS     24
#define EK_PKI_MAX_VALID_HOURS (7 * 24)
/* notBefore is set this many seconds back, for a VM whose clock lags. */
#define EK_PKI_CLOCK_SKEW 3600

/* dir must exist. extra_names (NULL-terminated, may be NULL) are added to the
 * server certificate's subjectAltName besides "ekman-writer": IP addresses
 * become IP entries, DNS names DNS entries (built with OpenSSL's
 * GENERAL_NAME API); anything else (",", ":", spaces...) is refused with
 * EK_E_INVALID. valid_hours: the certificates' lifetime (<= 0:
 * EK_PKI_VALID_HOURS; more than EK_PKI_MAX_VALID_HOURS is refused). */
EK_ERR_CHECK ek_pki_generate(const char *dir, const char *const *extra_names, int valid_hours);

#endif
