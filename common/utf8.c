/* utf8.c - UTF-8 and NUL checks of text from outside. */
#include "common/utf8.h"

#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

bool ek_utf8_is_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* continuation byte, 0xc0/0xc1, 0xf5-0xff */
        }
        if (len - i <= n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

ek_err_t *ek_utf8_check_text(const char *what, const char *s, size_t len)
{
    if (memchr(s, '\0', len))
        return ek_err_new(EK_E_INVALID, "\"%s\": contains a NUL character; remove it", what);
    if (!ek_utf8_is_valid(s, len))
        return ek_err_new(EK_E_INVALID, "\"%s\": contains invalid UTF-8; send UTF-8 text", what);
    return NULL;
}

/* The path of a member or element, printable even when the name is not. */
static void path_push(ek_strbuf_t *path, const char *key, size_t idx, bool is_index)
{
    if (is_index) {
        ek_strbuf_addf(path, "[%zu]", idx);
        return;
    }
    if (path->len)
        ek_strbuf_addch(path, '.');
    if (ek_utf8_is_valid(key, strlen(key)))
        ek_strbuf_adds(path, key);
    else
        ek_strbuf_adds(path, "(a member name)");
}

static ek_err_t *walk(json_object *o, ek_strbuf_t *path)
{
    switch (json_object_get_type(o)) {
    case json_type_string: {
        const char *what = path->len ? path->buf : "(the body)";
        return ek_utf8_check_text(what, json_object_get_string(o),
                                  (size_t)json_object_get_string_len(o));
    }
    case json_type_array: {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
            size_t mark = path->len;
            path_push(path, NULL, i, true);
            ek_err_t *err = walk(json_object_array_get_idx(o, i), path);
            ek_strbuf_setlen(path, mark);
            if (err)
                return err;
        }
        return NULL;
    }
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            size_t mark = path->len;
            path_push(path, key, 0, false);
            ek_err_t *err = NULL;
            if (!ek_utf8_is_valid(key, strlen(key)))
                err = ek_err_new(EK_E_INVALID,
                                 "\"%s\": a member name contains invalid UTF-8; send UTF-8 text",
                                 path->buf);
            else
                err = walk(val, path);
            ek_strbuf_setlen(path, mark);
            if (err)
                return err;
        }
        return NULL;
    }
    default:
        return NULL;
    }
}

/* True if raw holds the escape \u0000 (a backslash that is itself escaped,
 * as in "\\u0000", does not start an escape). */
static bool has_nul_escape(const char *raw, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (raw[i] != '\\')
            continue;
        if (raw[i + 1] == 'u' && strncmp(raw + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character, whatever it is */
    }
    return false;
}

ek_err_t *ek_utf8_check_json(json_object *doc, const char *raw, size_t raw_len)
{
    ek_strbuf_t path = EK_STRBUF_INIT;
    ek_err_t *err = walk(doc, &path);
    ek_strbuf_release(&path);
    if (err)
        return err;
    if (raw && (memchr(raw, '\0', raw_len) || has_nul_escape(raw, raw_len)))
        return ek_err_new(EK_E_INVALID,
                          "the request body contains a NUL character (\\u0000) in a member "
                          "name; remove it");
    return NULL;
}
