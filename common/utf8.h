/* utf8.h - checks that text from outside (API bodies, paths, query strings)
 * is well-formed UTF-8 without NUL bytes, before anything stores or forwards it.
 * PostgreSQL refuses invalid UTF-8 and C strings stop at a NUL, so both must be
 * refused at the edge with a message that names the field. */
#ifndef EK_UTF8_H
#define EK_UTF8_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

/* True if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) and holds no NUL byte. */
bool ek_utf8_is_valid(const char *s, size_t len);

/* Checks one text value; what names it in the error ("query parameter status"):
 * EK_E_INVALID "\"<what>\": contains invalid UTF-8" (or "a NUL character"). */
EK_ERR_CHECK ek_utf8_check_text(const char *what, const char *s, size_t len);

/* Checks every member name and string value of doc at any depth; the error
 * names the field by its path ("endpoint.name", "transfer.instances[3]").
 * raw/raw_len, when given, is the text doc was parsed from: a \u0000 escape in
 * a member name (which json-c cuts silently) is found there. */
EK_ERR_CHECK ek_utf8_check_json(json_object *doc, const char *raw, size_t raw_len);

#endif
