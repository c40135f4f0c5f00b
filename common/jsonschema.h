/* jsonschema.h - validation of JSON documents against a small subset of JSON
 * Schema: type (object, array, string, integer, number, boolean, null, or a
 * list of them), properties, required, additionalProperties (false or a schema),
 * items, enum, minimum, maximum, minLength, maxLength, minItems. It is what the
 * API needs to answer a bad connection_info or environment with a 400 that names
 * the field ("connection_info.port must be an integer"). */
#ifndef EK_JSONSCHEMA_H
#define EK_JSONSCHEMA_H

#include <json-c/json.h>
#include "common/error.h"

/* Validates doc against schema; path prefixes field names in the message. */
EK_ERR_CHECK ek_jsonschema_validate(json_object *schema, json_object *doc, const char *path);

#endif
