/* hive.c - hivex wrapped for the Windows morphing code (hive.h). */
#include "worker/morph/windows/hive.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/strbuf.h"

ek_err_t *ek_win_hive_open(const char *path, const char *name, bool write, ek_win_hive_t **out)
{
    hive_h *h = hivex_open(path, write ? HIVEX_OPEN_WRITE : 0);
    if (!h)
        return ek_err_errno(errno, "could not open the Windows %s hive \"%s\"", name, path);
    ek_win_hive_t *hv = ek_xcalloc(1, sizeof(*hv));
    hv->h = h;
    hv->path = ek_xstrdup(path);
    hv->name = ek_xstrdup(name);
    *out = hv;
    return NULL;
}

void ek_win_hive_free(ek_win_hive_t *hv)
{
    if (!hv)
        return;
    if (hv->staged) {
        unlink(hv->staged);
        free(hv->staged);
    }
    hivex_close(hv->h); /* discards what was not committed */
    free(hv->path);
    free(hv->name);
    free(hv);
}

hive_node_h ek_win_hive_lookup(ek_win_hive_t *hv, hive_node_h from, const char *path)
{
    hive_node_h node = from ? from : hivex_root(hv->h);
    _cleanup_free_ char *copy = ek_xstrdup(path);
    char *save = NULL;
    for (char *part = strtok_r(copy, "\\", &save); part && node; part = strtok_r(NULL, "\\", &save))
        node = hivex_node_get_child(hv->h, node, part);
    return node;
}

ek_err_t *ek_win_hive_mkpath(ek_win_hive_t *hv, hive_node_h from, const char *path,
                             hive_node_h *out, bool *created)
{
    hive_node_h node = from ? from : hivex_root(hv->h);
    _cleanup_free_ char *copy = ek_xstrdup(path);
    char *save = NULL;
    bool made = false;
    for (char *part = strtok_r(copy, "\\", &save); part; part = strtok_r(NULL, "\\", &save)) {
        errno = 0;
        hive_node_h child = hivex_node_get_child(hv->h, node, part);
        if (!child && errno)
            return ek_err_errno(errno, "%s hive: could not read key %s", hv->name, path);
        made = !child;
        if (!child)
            child = hivex_node_add_child(hv->h, node, part);
        if (!child)
            return ek_err_errno(errno, "%s hive: could not create key %s (at \"%s\")", hv->name,
                                path, part);
        node = child;
    }
    *out = node;
    if (created)
        *created = made;
    return NULL;
}

ek_err_t *ek_win_hive_get_string(ek_win_hive_t *hv, hive_node_h node, const char *name, char **out)
{
    *out = NULL;
    hive_value_h v = node ? hivex_node_get_value(hv->h, node, name) : 0;
    if (!v)
        return NULL;
    char *s = hivex_value_string(hv->h, v);
    if (!s)
        return ek_err_errno(errno, "%s hive: value %s is not a readable string", hv->name, name);
    *out = s;
    return NULL;
}

bool ek_win_hive_get_dword(ek_win_hive_t *hv, hive_node_h node, const char *name, uint32_t *out)
{
    hive_value_h v = node ? hivex_node_get_value(hv->h, node, name) : 0;
    hive_type t;
    size_t len;
    if (!v || hivex_value_type(hv->h, v, &t, &len) < 0 || t != hive_t_REG_DWORD || len != 4)
        return false;
    *out = (uint32_t)hivex_value_dword(hv->h, v);
    return true;
}

ek_err_t *ek_win_hive_set_raw(ek_win_hive_t *hv, hive_node_h node, const char *name, hive_type t,
                              const void *data, size_t len)
{
    hive_set_value v = {.key = (char *)name, .t = t, .len = len, .value = (char *)data};
    if (hivex_node_set_value(hv->h, node, &v, 0) < 0)
        return ek_err_errno(errno, "%s hive: could not set value %s", hv->name, name);
    return NULL;
}

ek_err_t *ek_win_utf16le(const char *s, char **out, size_t *len)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        int n;
        if (*p < 0x80) {
            c = *p;
            n = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            c = *p & 0x1f;
            n = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            c = *p & 0x0f;
            n = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            c = *p & 0x07;
            n = 3;
        } else {
            goto bad;
        }
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                goto bad;
            c = (c << 6) | (*p & 0x3f);
        }
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            goto bad;
        if (c >= 0x10000) {
            c -= 0x10000;
            uint16_t hi = (uint16_t)(0xd800 | (c >> 10)), lo = (uint16_t)(0xdc00 | (c & 0x3ff));
            char u[4] = {(char)(hi & 0xff), (char)(hi >> 8), (char)(lo & 0xff), (char)(lo >> 8)};
            ek_strbuf_add(&sb, u, 4);
        } else {
            char u[2] = {(char)(c & 0xff), (char)(c >> 8)};
            ek_strbuf_add(&sb, u, 2);
        }
    }
    ek_strbuf_add(&sb, "\0\0", 2);
    *len = sb.len;
    *out = ek_strbuf_detach(&sb);
    return NULL;
bad:
    ek_strbuf_release(&sb);
    return ek_err_new(EK_E_INVALID, "\"%s\" is not valid UTF-8", s);
}

ek_err_t *ek_win_hive_set_string(ek_win_hive_t *hv, hive_node_h node, const char *name, hive_type t,
                                 const char *value)
{
    _cleanup_free_ char *u = NULL;
    size_t len;
    ek_err_t *err = ek_win_utf16le(value, &u, &len);
    if (err)
        return ek_err_prefix(err, "%s hive: value %s", hv->name, name);
    return ek_win_hive_set_raw(hv, node, name, t, u, len);
}

ek_err_t *ek_win_hive_set_dword(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                uint32_t value)
{
    unsigned char le[4] = {value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff,
                           (value >> 24) & 0xff};
    return ek_win_hive_set_raw(hv, node, name, hive_t_REG_DWORD, le, sizeof(le));
}

ek_err_t *ek_win_hive_set_multi(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                const char *const *values)
{
    _cleanup_strbuf_ ek_strbuf_t sb = EK_STRBUF_INIT;
    for (size_t i = 0; values[i]; i++) {
        _cleanup_free_ char *u = NULL;
        size_t len;
        ek_err_t *err = ek_win_utf16le(values[i], &u, &len);
        if (err)
            return ek_err_prefix(err, "%s hive: value %s", hv->name, name);
        ek_strbuf_add(&sb, u, len);
    }
    ek_strbuf_add(&sb, "\0\0", 2); /* the list ends with an empty string */
    return ek_win_hive_set_raw(hv, node, name, hive_t_REG_MULTI_SZ, sb.buf, sb.len);
}

ek_err_t *ek_win_hive_stage(ek_win_hive_t *hv)
{
    char *staged = ek_xasprintf("%s.ekman-new", hv->path);
    if (hivex_commit(hv->h, staged, 0) < 0) {
        ek_err_t *err =
            ek_err_errno(errno, "could not save the edited %s hive to \"%s\"", hv->name, staged);
        unlink(staged);
        free(staged);
        return err;
    }
    free(hv->staged);
    hv->staged = staged;
    return NULL;
}

ek_err_t *ek_win_hive_install(ek_win_hive_t *hv)
{
    if (!hv->staged)
        return ek_err_new(EK_E_INTERNAL, "%s hive: nothing staged to install", hv->name);
    if (rename(hv->staged, hv->path) < 0)
        return ek_err_errno(errno, "could not replace the %s hive \"%s\"", hv->name, hv->path);
    free(hv->staged);
    hv->staged = NULL;
    return NULL;
}
