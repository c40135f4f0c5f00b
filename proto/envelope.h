/* envelope.h - the versioned JSON envelope of every AMQP message.
 *
 *   {"type": "task.dispatch", "version": "1.0", "id": "<uuid>",
 *    "correlation_id": "<uuid or null>", "sent_at": "<RFC 3339>",
 *    "context": {"project_id": ..., "user_id": ...}, "body": {...}}
 *
 * A receiver accepts a message whose major version it knows (any minor: new
 * minor versions only add optional fields) and rejects an unknown type or a
 * newer major version as a whole, so a message is never half-applied.
 * Layout and per-type schemas: proto/README.md. */
#ifndef EK_PROTO_ENVELOPE_H
#define EK_PROTO_ENVELOPE_H

#include <json-c/json.h>
#include "common/error.h"

#define EK_PROTO_MAJOR 1
#define EK_PROTO_MINOR 0

typedef struct ek_envelope {
    char *type;
    int major, minor;
    char *id;
    char *correlation_id; /* NULL when the message answers nothing */
    char *project_id;     /* request context; NULL for system messages */
    char *user_id;
    json_object *body; /* owned */
} ek_envelope_t;

/* A new envelope of the given type with a fresh id; takes ownership of body. */
ek_envelope_t *ek_envelope_new(const char *type, json_object *body);
void ek_envelope_free(ek_envelope_t *env);
/* Serialises to compact JSON; the caller frees it. */
char *ek_envelope_encode(const ek_envelope_t *env);
/* Parses and checks the envelope; known_types is a NULL-terminated list, or
 * NULL to accept any type. */
EK_ERR_CHECK ek_envelope_decode(const char *data, size_t len, const char *const *known_types,
                                ek_envelope_t **out);

EK_DEFINE_CLEANUP(ek_envelope_t, ek_envelope_free)

#endif
