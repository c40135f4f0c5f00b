/* box.h - sealing a secret for one holder of a key pair (OpenSSL): X25519
 * key agreement with a fresh ephemeral key, HKDF-SHA256, AES-256-GCM
 * (common/secret.c's sealing). Used so that the conductor hands an
 * endpoint's connection info, and other secrets of a task, to the one
 * worker that runs the task: another worker's key does not open it, and a
 * worker never holds the key that opens every tenant's secrets.
 *
 * Sealed form: "b1:" KID ":" base64(ephemeral public key, 32 bytes) ":"
 * then secret.c's "v1:..." form. KID names the recipient's key: the first 16
 * hex digits of SHA-256 of its raw public key. The associated data (aad)
 * binds the value to where it belongs (an endpoint id, a task id).
 *
 * A key ring holds a current key pair and the ones it replaced, so that
 * values sealed just before a rotation still open: ek_box_ring_load() reads
 * FILE (the current key, PEM) and FILE.prev (the previous one, if any). */
#ifndef EK_BOX_H
#define EK_BOX_H

#include <stdbool.h>
#include <json-c/json.h>
#include "common/error.h"
#include "common/secret.h"

#define EK_BOX_KID_LEN 16
/* Associated data of secrets workers return in task info and saved task
 * state, sealed for the conductors' key pair. */
#define EK_BOX_TASK_INFO_AAD "ekman-task-info"

typedef struct ek_box_ring ek_box_ring_t;

/* Reads the key pair in path (and path.prev); with create, a missing path
 * gets a new key pair (file mode 0600; the directory must exist). */
EK_ERR_CHECK ek_box_ring_load(const char *path, bool create, ek_box_ring_t **out);
/* The key pair derived from a 32-byte secret (HKDF with label): every
 * holder of that secret has the same pair (the conductors, from the
 * encryption key). */
EK_ERR_CHECK ek_box_ring_derive(const unsigned char secret[EK_SECRET_KEY_LEN], const char *label,
                                ek_box_ring_t **out);
void ek_box_ring_free(ek_box_ring_t *ring);
/* The current public key (base64 of 32 raw bytes) and its id. Owned by the ring. */
const char *ek_box_ring_public(const ek_box_ring_t *ring);
const char *ek_box_ring_kid(const ek_box_ring_t *ring);

/* Makes a new current key in path: the old one moves to path.prev (the one
 * before is dropped). Prints nothing; the caller says what happened. */
EK_ERR_CHECK ek_box_rotate(const char *path, char kid_out[EK_BOX_KID_LEN + 1]);

/* Seals plaintext for the holder of public_b64 (caller frees). */
EK_ERR_CHECK ek_box_seal(const char *public_b64, const char *aad, const char *plaintext,
                         char **out);
/* Opens a value sealed for a key of the ring (caller frees with ek_free_secret). */
EK_ERR_CHECK ek_box_open(const ek_box_ring_t *ring, const char *aad, const char *sealed,
                         char **plaintext);
/* True if text looks like a sealed box ("b1:"). */
bool ek_box_is_sealed(const char *text);

/* Secrets inside JSON documents (task info): a string under a key that names
 * a secret (ek_redact_is_secret_key: "private_key", "key_pem", "password"...)
 * becomes {"$box": "b1:..."} sealed for public_b64, at any depth. Values
 * already sealed stay as they are. */
EK_ERR_CHECK ek_box_json_seal(json_object *obj, const char *public_b64, const char *aad);
/* Every {"$box": ...} in obj, at any depth, becomes its plaintext string
 * again (opened with the ring). */
EK_ERR_CHECK ek_box_json_open(json_object *obj, const ek_box_ring_t *ring, const char *aad);

#endif
