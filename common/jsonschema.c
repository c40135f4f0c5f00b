/* jsonschema.c - a strict validator for the JSON Schema subset Ekman uses. */
#include "common/jsonschema.h"

#include <math.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"

static bool type_matches(const char *type, json_object *doc)
{
    json_type t = json_object_get_type(doc);
    if (strcmp(type, "object") == 0)
        return t == json_type_object;
    if (strcmp(type, "array") == 0)
        return t == json_type_array;
    if (strcmp(type, "string") == 0)
        return t == json_type_string;
    if (strcmp(type, "integer") == 0)
        return t == json_type_int || (t == json_type_double && floor(json_object_get_double(doc)) ==
                                                                   json_object_get_double(doc));
    if (strcmp(type, "number") == 0)
        return t == json_type_int || t == json_type_double;
    if (strcmp(type, "boolean") == 0)
        return t == json_type_boolean;
    if (strcmp(type, "null") == 0)
        return t == json_type_null;
    return false;
}

static const char *article(const char *type)
{
    return strchr("aeiou", type[0]) ? "an" : "a";
}

static ek_err_t *fail(const char *path, const char *fmt, ...) EK_PRINTF(2, 3);
static ek_err_t *fail(const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    ek_err_t *err = ek_err_new(EK_E_INVALID, "%s %s", path && *path ? path : "document", msg);
    free(msg);
    return err;
}

static ek_err_t *check_type(json_object *schema, json_object *doc, const char *path)
{
    json_object *type;
    if (!json_object_object_get_ex(schema, "type", &type))
        return NULL;
    if (json_object_is_type(type, json_type_string)) {
        const char *t = json_object_get_string(type);
        if (!type_matches(t, doc))
            return fail(path, "must be %s %s, not %s", article(t), t, ek_json_type_name(doc));
        return NULL;
    }
    ek_strbuf_t names = EK_STRBUF_INIT;
    size_t n = json_object_array_length(type);
    for (size_t i = 0; i < n; i++) {
        const char *t = json_object_get_string(json_object_array_get_idx(type, i));
        if (type_matches(t, doc)) {
            ek_strbuf_release(&names);
            return NULL;
        }
        ek_strbuf_addf(&names, "%s%s", i ? (i + 1 == n ? " or " : ", ") : "", t);
    }
    ek_err_t *err = fail(path, "must be %s, not %s", names.buf, ek_json_type_name(doc));
    ek_strbuf_release(&names);
    return err;
}

static char *child_path(const char *path, const char *key)
{
    return path && *path ? ek_xasprintf("%s.%s", path, key) : ek_xstrdup(key);
}

ek_err_t *ek_jsonschema_validate(json_object *schema, json_object *doc, const char *path)
{
    json_object *v;
    ek_err_t *err;
    if (!schema)
        return NULL;
    if (!doc)
        doc = NULL; /* json-c represents null as NULL */
    if ((err = check_type(schema, doc, path)))
        return err;

    if (json_object_object_get_ex(schema, "enum", &v)) {
        bool found = false;
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n && !found; i++)
            found = json_object_equal(json_object_array_get_idx(v, i), doc);
        if (!found) {
            char *allowed = ek_json_dump(v, false);
            err = fail(path, "must be one of %s", allowed);
            free(allowed);
            return err;
        }
    }
    switch (json_object_get_type(doc)) {
    case json_type_string: {
        size_t len = strlen(json_object_get_string(doc));
        if (json_object_object_get_ex(schema, "minLength", &v) &&
            len < (size_t)json_object_get_int64(v))
            return len == 0 ? fail(path, "must not be empty")
                            : fail(path, "must be at least %lld characters long",
                                   (long long)json_object_get_int64(v));
        if (json_object_object_get_ex(schema, "maxLength", &v) &&
            len > (size_t)json_object_get_int64(v))
            return fail(path, "must be at most %lld characters long",
                        (long long)json_object_get_int64(v));
        break;
    }
    case json_type_int:
    case json_type_double: {
        double d = json_object_get_double(doc);
        if (json_object_object_get_ex(schema, "minimum", &v) && d < json_object_get_double(v))
            return fail(path, "must be at least %g", json_object_get_double(v));
        if (json_object_object_get_ex(schema, "maximum", &v) && d > json_object_get_double(v))
            return fail(path, "must be at most %g", json_object_get_double(v));
        break;
    }
    case json_type_array: {
        if (json_object_object_get_ex(schema, "minItems", &v) &&
            json_object_array_length(doc) < (size_t)json_object_get_int64(v))
            return fail(path, "must have at least %lld item(s)",
                        (long long)json_object_get_int64(v));
        json_object *items;
        if (json_object_object_get_ex(schema, "items", &items)) {
            size_t n = json_object_array_length(doc);
            for (size_t i = 0; i < n; i++) {
                char *p = ek_xasprintf("%s[%zu]", path && *path ? path : "document", i);
                err = ek_jsonschema_validate(items, json_object_array_get_idx(doc, i), p);
                free(p);
                if (err)
                    return err;
            }
        }
        break;
    }
    case json_type_object: {
        json_object *props = NULL, *req, *addl = NULL;
        json_object_object_get_ex(schema, "properties", &props);
        json_object_object_get_ex(schema, "additionalProperties", &addl);
        if (json_object_object_get_ex(schema, "required", &req)) {
            size_t n = json_object_array_length(req);
            for (size_t i = 0; i < n; i++) {
                const char *k = json_object_get_string(json_object_array_get_idx(req, i));
                json_object *val;
                if (!json_object_object_get_ex(doc, k, &val)) {
                    char *p = child_path(path, k);
                    err = ek_err_new(EK_E_INVALID, "%s is required", p);
                    free(p);
                    return err;
                }
            }
        }
        json_object_object_foreach(doc, key, val)
        {
            json_object *sub = NULL;
            if (props && json_object_object_get_ex(props, key, &sub)) {
                /* declared */
            } else if (addl && json_object_is_type(addl, json_type_boolean) &&
                       !json_object_get_boolean(addl)) {
                char *p = child_path(path, key);
                err = ek_err_new(EK_E_INVALID, "%s is not a known field", p);
                free(p);
                return err;
            } else if (addl && json_object_is_type(addl, json_type_object)) {
                sub = addl;
            }
            if (sub) {
                char *p = child_path(path, key);
                err = ek_jsonschema_validate(sub, val, p);
                free(p);
                if (err)
                    return err;
            }
        }
        break;
    }
    default:
        break;
    }
    return NULL;
}
