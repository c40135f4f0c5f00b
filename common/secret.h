/* secret.h - secrets at rest and in transit inside Ekman (OpenSSL):
 *  - sealing: AES-256-GCM with a random 96-bit nonce and caller-chosen
 *    associated data (e.g. the endpoint id, so that a sealed value cannot be
 *    moved to another row), as "v1:" + base64(nonce | ciphertext | tag);
 *  - passwords: scrypt (N=2^17, r=8, p=1: OWASP guidance) with a 16-byte salt,
 *    stored as "scrypt$N$r$p$salt$hash" so older parameters still verify;
 *  - API tokens: 32 random bytes, base64url; only their SHA-256 is stored. */
#ifndef EK_SECRET_H
#define EK_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include "common/config.h"
#include "common/error.h"

#define EK_SECRET_KEY_LEN 32

/* Reads [DEFAULT] encryption_key, else the file named by encryption_key_file. */
EK_ERR_CHECK ek_secret_key_load(const ek_config_t *cfg, unsigned char key[EK_SECRET_KEY_LEN]);
char *ek_secret_seal(const unsigned char key[EK_SECRET_KEY_LEN], const char *aad,
                     const char *plaintext);
EK_ERR_CHECK ek_secret_open(const unsigned char key[EK_SECRET_KEY_LEN], const char *aad,
                            const char *sealed, char **plaintext);

/* The stored form of a new password at the current parameters (about 0.4 s of
 * one core and 128 MiB: call it off request threads). Caller frees. */
char *ek_password_hash(const char *password);
/* The same with chosen parameters (N = 2^log2_n): tests of older hashes. */
char *ek_password_hash_params(const char *password, unsigned log2_n, unsigned r, unsigned p);
/* True if password matches a stored hash of any supported parameters. */
bool ek_password_verify(const char *password, const char *hash);
/* A valid hash at the current parameters that no password is known to match:
 * an unknown user is checked against it, at the cost of a real check, so that
 * timing does not tell which users exist. Made on first use; never freed. */
const char *ek_password_dummy_hash(void);

/* A new random token (base64url, 43 characters). */
char *ek_token_new(void);
/* SHA-256 of the token, as 64 lowercase hex digits (what the database keeps). */
void ek_token_digest(const char *token, char out[65]);

#endif
