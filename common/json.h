/* json.h - helpers over json-c for reading documents strictly.
 *
 * The field readers name the offending field in their error, with the
 * caller's path in front ("transfer.instances must be an array, got string"),
 * so that a malformed request can be answered with a 400 that says what to fix.
 * Strings returned by the readers are borrowed from the json object. */
#ifndef EK_JSON_H
#define EK_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "common/compiler.h"
#include "common/error.h"

/* Parses exactly one JSON document; trailing garbage is an error. */
EK_ERR_CHECK ek_json_parse(const char *text, size_t len, json_object **out);
const char *ek_json_type_name(json_object *obj);
/* Serialises (compact or pretty); the caller frees the result. */
char *ek_json_dump(json_object *obj, bool pretty);

EK_ERR_CHECK ek_json_req_object(json_object *obj, const char *path, const char *key,
                                json_object **out);
EK_ERR_CHECK ek_json_opt_object(json_object *obj, const char *path, const char *key,
                                json_object **out);
EK_ERR_CHECK ek_json_req_string(json_object *obj, const char *path, const char *key,
                                const char **out);
EK_ERR_CHECK ek_json_opt_string(json_object *obj, const char *path, const char *key,
                                const char *def, const char **out);
EK_ERR_CHECK ek_json_opt_bool(json_object *obj, const char *path, const char *key, bool def,
                              bool *out);
EK_ERR_CHECK ek_json_opt_int(json_object *obj, const char *path, const char *key, int64_t def,
                             int64_t *out);
EK_ERR_CHECK ek_json_req_array(json_object *obj, const char *path, const char *key,
                               json_object **out);
EK_ERR_CHECK ek_json_opt_array(json_object *obj, const char *path, const char *key,
                               json_object **out);

static inline void ek_json_putp(json_object **p)
{
    if (*p)
        json_object_put(*p);
}
#define _cleanup_json_ _cleanup_(ek_json_putp)

#endif
