/* redact.h - keeps passwords, tokens and private keys out of logs and API output.
 *
 * Three layers, all applied by the logger to every line it writes:
 *  - field names: a value whose key names a secret ("password", "token",
 *    "private_key", "encryption_key", ...) is replaced by "***";
 *  - registered secrets: any string handed to ek_redact_register() (a password
 *    read from the configuration, a token just issued) is masked wherever it
 *    appears, for good or (tokens) until it expires;
 *  - patterns: the password in URL user-info (amqp://u:PASS@h), PEM private
 *    key blocks, and `secret=value` / `"secret": "value"` pairs in free text. */
#ifndef EK_REDACT_H
#define EK_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <json-c/json.h>

#define EK_REDACTED "***"

bool ek_redact_is_secret_key(const char *name);
/* Remembers a secret so that it is masked from now on (strings shorter than
 * 4 bytes are ignored: masking them would garble every line). Thread-safe. */
void ek_redact_register(const char *secret);
/* Like ek_redact_register, until the wall-clock time until (an API token's
 * expiry): then the secret is dropped. At most EK_REDACT_MAX_EXPIRING such
 * secrets are kept; when full, the one closest to its end goes first. */
#define EK_REDACT_MAX_EXPIRING 4096
void ek_redact_register_until(const char *secret, time_t until);
/* How many secrets are registered now (expired ones dropped first). */
size_t ek_redact_registered_count(void);
/* Forgets all registered secrets (tests). */
void ek_redact_reset(void);
/* Returns a newly allocated copy of text with every secret masked. */
char *ek_redact_text(const char *text);
/* Returns a newly allocated copy of a URL with the user-info password masked. */
char *ek_redact_url(const char *url);
/* Returns a deep copy of obj (new reference) with the values of secret keys
 * masked at any depth. */
json_object *ek_redact_json(json_object *obj);

#endif
