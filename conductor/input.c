/* input.c - edge checks of request bodies: encoding, NULs, field lengths. */
#include "conductor/input.h"

#include <string.h>
#include <strings.h>
#include "common/strbuf.h"
#include "common/utf8.h"

static size_t limit_of(const char *key)
{
    if (strcmp(key, "name") == 0)
        return EK_INPUT_MAX_NAME;
    if (strcmp(key, "notes") == 0 || strcmp(key, "description") == 0)
        return EK_INPUT_MAX_TEXT;
    return 0;
}

/* Runs after the UTF-8 walk, so every member name is printable. */
static ek_err_t *check_lengths(json_object *o, ek_strbuf_t *path)
{
    if (json_object_is_type(o, json_type_array)) {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
            size_t mark = path->len;
            ek_strbuf_addf(path, "[%zu]", i);
            ek_err_t *err = check_lengths(json_object_array_get_idx(o, i), path);
            ek_strbuf_setlen(path, mark);
            if (err)
                return err;
        }
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object))
        return NULL;
    json_object_object_foreach(o, key, val)
    {
        size_t mark = path->len;
        if (path->len)
            ek_strbuf_addch(path, '.');
        ek_strbuf_adds(path, key);
        size_t max = limit_of(key);
        ek_err_t *err = NULL;
        if (max && json_object_is_type(val, json_type_string) &&
            (size_t)json_object_get_string_len(val) > max)
            err = ek_err_new(EK_E_INVALID, "\"%s\": is longer than %zu bytes; shorten it",
                             path->buf, max);
        else
            err = check_lengths(val, path);
        ek_strbuf_setlen(path, mark);
        if (err)
            return err;
    }
    return NULL;
}

ek_err_t *ek_input_check_body(json_object *doc, const char *raw, size_t len)
{
    ek_err_t *err = ek_utf8_check_json(doc, raw, len);
    if (err)
        return err;
    ek_strbuf_t path = EK_STRBUF_INIT;
    err = check_lengths(doc, &path);
    ek_strbuf_release(&path);
    return err;
}

bool ek_input_content_type_ok(const char *value)
{
    if (!value)
        return true;
    while (*value == ' ' || *value == '\t')
        value++;
    static const char json[] = "application/json";
    if (strncasecmp(value, json, strlen(json)) != 0)
        return false;
    const char *rest = value + strlen(json);
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return *rest == '\0' || *rest == ';';
}
