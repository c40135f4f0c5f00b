/* json.c - strict JSON parsing and field readers with field-naming errors. */
#include "common/json.h"

#include <string.h>
#include "common/mem.h"

ek_err_t *ek_json_parse(const char *text, size_t len, json_object **out)
{
    *out = NULL;
    if (len > (size_t)INT32_MAX)
        return ek_err_new(EK_E_INVALID, "JSON document too large");
    json_tokener *tok = json_tokener_new();
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue || (!obj && jerr == json_tokener_success))
        return ek_err_new(EK_E_INVALID, "malformed JSON: the document is incomplete");
    if (jerr != json_tokener_success) {
        json_object_put(obj);
        return ek_err_new(EK_E_INVALID, "malformed JSON at offset %zu: %s", used,
                          json_tokener_error_desc(jerr));
    }
    for (size_t i = used; i < len; i++) {
        if (!strchr(" \t\r\n", text[i])) {
            json_object_put(obj);
            return ek_err_new(EK_E_INVALID, "malformed JSON: unexpected data at offset %zu", i);
        }
    }
    *out = obj;
    return NULL;
}

const char *ek_json_type_name(json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
        return "number";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "unknown";
}

char *ek_json_dump(json_object *obj, bool pretty)
{
    int flags =
        JSON_C_TO_STRING_NOSLASHESCAPE |
        (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
    return ek_xstrdup(json_object_to_json_string_ext(obj, flags));
}

/* An EK_E_INVALID error about the field "path.key" (or "key"). */
static ek_err_t *field_err(const char *path, const char *key, const char *what)
{
    return ek_err_new(EK_E_INVALID, "%s%s%s %s", path && *path ? path : "",
                      path && *path ? "." : "", key, what);
}

/* Looks key up; missing and null both count as absent. */
static json_object *lookup(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

static ek_err_t *get_typed(json_object *obj, const char *path, const char *key, bool required,
                           json_type type, const char *type_name, json_object **out)
{
    json_object *v = lookup(obj, key);
    *out = NULL;
    if (!v)
        return required ? field_err(path, key, "is required") : NULL;
    if (!json_object_is_type(v, type)) {
        char *what = ek_xasprintf("must be %s, not %s", type_name, ek_json_type_name(v));
        ek_err_t *err = field_err(path, key, what);
        free(what);
        return err;
    }
    *out = v;
    return NULL;
}

ek_err_t *ek_json_req_object(json_object *obj, const char *path, const char *key, json_object **out)
{
    return get_typed(obj, path, key, true, json_type_object, "an object", out);
}

ek_err_t *ek_json_opt_object(json_object *obj, const char *path, const char *key, json_object **out)
{
    return get_typed(obj, path, key, false, json_type_object, "an object", out);
}

ek_err_t *ek_json_req_array(json_object *obj, const char *path, const char *key, json_object **out)
{
    return get_typed(obj, path, key, true, json_type_array, "an array", out);
}

ek_err_t *ek_json_opt_array(json_object *obj, const char *path, const char *key, json_object **out)
{
    return get_typed(obj, path, key, false, json_type_array, "an array", out);
}

ek_err_t *ek_json_req_string(json_object *obj, const char *path, const char *key, const char **out)
{
    json_object *v;
    ek_err_t *err = get_typed(obj, path, key, true, json_type_string, "a string", &v);
    if (err)
        return err;
    *out = json_object_get_string(v);
    if (!**out)
        return field_err(path, key, "must not be empty");
    return NULL;
}

ek_err_t *ek_json_opt_string(json_object *obj, const char *path, const char *key, const char *def,
                             const char **out)
{
    json_object *v;
    ek_err_t *err = get_typed(obj, path, key, false, json_type_string, "a string", &v);
    if (err)
        return err;
    *out = v ? json_object_get_string(v) : def;
    return NULL;
}

ek_err_t *ek_json_opt_bool(json_object *obj, const char *path, const char *key, bool def, bool *out)
{
    json_object *v;
    ek_err_t *err = get_typed(obj, path, key, false, json_type_boolean, "a boolean", &v);
    if (err)
        return err;
    *out = v ? json_object_get_boolean(v) : def;
    return NULL;
}

ek_err_t *ek_json_opt_int(json_object *obj, const char *path, const char *key, int64_t def,
                          int64_t *out)
{
    json_object *v;
    ek_err_t *err = get_typed(obj, path, key, false, json_type_int, "an integer", &v);
    if (err)
        return err;
    *out = v ? json_object_get_int64(v) : def;
    return NULL;
}
