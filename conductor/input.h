/* input.h - the conductor's rules for what a request may carry, checked once
 * at the edge (conductor/api.c) before a handler or PostgreSQL sees it:
 *  - every string in a JSON body, path segment and query value is UTF-8
 *    without NUL characters (common/utf8.h);
 *  - members called "name" have at most EK_INPUT_MAX_NAME bytes, "notes" and
 *    "description" at most EK_INPUT_MAX_TEXT, at any depth;
 *  - a body is JSON: a Content-Type other than application/json is refused.
 * Each refusal is EK_E_INVALID naming the field, except the Content-Type one
 * (the caller answers 415). */
#ifndef EK_CONDUCTOR_INPUT_H
#define EK_CONDUCTOR_INPUT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

#define EK_INPUT_MAX_NAME 255
#define EK_INPUT_MAX_TEXT 4096

/* doc was parsed from raw[0..len). */
EK_ERR_CHECK ek_input_check_body(json_object *doc, const char *raw, size_t len);
/* True if a Content-Type header value (NULL: absent) may carry a JSON body:
 * absent, or application/json with optional parameters. */
bool ek_input_content_type_ok(const char *value);

#endif
