/* tar.c - the members of an OVA (a tar) with the offset and size of their
 * data, read from the 512-byte headers without unpacking anything:
 * ustar/POSIX headers (prefix + name), GNU long names ('L'), pax extended
 * headers ('x': path, size), octal and base-256 sizes. Only regular files
 * are kept. A name that is absolute or holds a ".." component is refused:
 * an OVA naming such a file is not trusted at all. */
#include "worker/providers/ova/ova.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define BLOCK       512
#define MAX_MEMBERS 100000
#define MAX_META    (1u << 20) /* long names and pax headers */

static ek_err_t *read_at(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
    ssize_t n = ek_pread_full(fd, buf, len, off);
    if (n < 0)
        return ek_err_errno(errno, "cannot read \"%s\"", what);
    if ((size_t)n < len)
        return ek_err_new(EK_E_INVALID,
                          "\"%s\" is not a complete tar archive (it ends inside "
                          "a member at byte %llu)",
                          what, (unsigned long long)(off + (uint64_t)n));
    return NULL;
}

/* A numeric field: octal (NUL/space terminated) or base-256 (GNU). */
static bool parse_num(const unsigned char *f, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) { /* base-256, big-endian, positive only */
        if (f[0] & 0x40)
            return false;
        v = f[0] & 0x3f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 55)
                return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return true;
    }
    size_t i = 0;
    while (i < len && f[i] == ' ')
        i++;
    bool any = false;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
        any = true;
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return false;
    *out = v;
    return any;
}

static bool checksum_ok(const unsigned char *h)
{
    uint64_t want;
    if (!parse_num(h + 148, 8, &want))
        return false;
    uint64_t sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum == want;
}

static bool all_zero(const unsigned char *h)
{
    for (int i = 0; i < BLOCK; i++)
        if (h[i])
            return false;
    return true;
}

/* The name with "./" prefixes and trailing slashes removed, checked. */
static ek_err_t *name_clean(const char *raw, const char *what, char **out)
{
    const char *s = raw;
    while (s[0] == '.' && s[1] == '/')
        s += 2;
    if (s[0] == '/')
        return ek_err_new(EK_E_INVALID,
                          "\"%s\" holds a member with an absolute name (\"%s\"): "
                          "refused",
                          what, raw);
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return ek_err_new(EK_E_INVALID,
                              "\"%s\" holds a member named \"%s\", which points "
                              "outside the archive (\"..\"): refused",
                              what, raw);
        p += n;
        while (*p == '/')
            p++;
    }
    char *c = ek_xstrdup(s);
    size_t n = strlen(c);
    while (n > 0 && c[n - 1] == '/')
        c[--n] = '\0';
    *out = c;
    return NULL;
}

/* Applies the "path" and "size" records of a pax header. */
static ek_err_t *pax_parse(const char *buf, size_t len, const char *what, char **path,
                           uint64_t *size, bool *has_size)
{
    size_t pos = 0;
    while (pos < len && buf[pos]) {
        char *end;
        unsigned long rec = strtoul(buf + pos, &end, 10);
        if (end == buf + pos || *end != ' ' || rec == 0 || rec > len - pos ||
            buf[pos + rec - 1] != '\n')
            return ek_err_new(EK_E_INVALID, "\"%s\": a pax header is malformed", what);
        const char *kv = end + 1, *rec_end = buf + pos + rec - 1;
        const char *eq = memchr(kv, '=', (size_t)(rec_end - kv));
        if (!eq)
            return ek_err_new(EK_E_INVALID, "\"%s\": a pax record has no '='", what);
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(rec_end - eq - 1);
        if (klen == 4 && memcmp(kv, "path", 4) == 0) {
            free(*path);
            *path = ek_xstrndup(eq + 1, vlen);
        } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
            _cleanup_free_ char *v = ek_xstrndup(eq + 1, vlen);
            char *e;
            errno = 0;
            unsigned long long s = strtoull(v, &e, 10);
            if (errno || e == v || *e)
                return ek_err_new(EK_E_INVALID, "\"%s\": a pax size is not a number", what);
            *size = s;
            *has_size = true;
        }
        pos += rec;
    }
    return NULL;
}

ek_err_t *ek_ova_tar_read(int fd, const char *what, ek_ova_tar_t *out)
{
    memset(out, 0, sizeof(*out));
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0)
        return ek_err_errno(errno, "cannot read \"%s\"", what);
    uint64_t total = (uint64_t)end;
    size_t alloc = 0;
    uint64_t off = 0;
    char *long_name = NULL, *pax_path = NULL;
    uint64_t pax_size = 0;
    bool pax_has_size = false;
    ek_err_t *err = NULL;
    unsigned char h[BLOCK];
    for (;;) {
        if (off + BLOCK > total) {
            if (off == 0)
                err = ek_err_new(EK_E_INVALID, "\"%s\" is empty or not a tar archive", what);
            break; /* archives without the end blocks are common enough */
        }
        if ((err = read_at(fd, h, BLOCK, off, what)))
            break;
        if (all_zero(h))
            break;
        if (!checksum_ok(h)) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\" is not a tar archive (bad header checksum at byte %llu): an "
                             "OVA must be an uncompressed tar",
                             what, (unsigned long long)off);
            break;
        }
        uint64_t size;
        if (!parse_num(h + 124, 12, &size)) {
            err = ek_err_new(EK_E_INVALID, "\"%s\": bad size field at byte %llu", what,
                             (unsigned long long)off);
            break;
        }
        char type = (char)h[156];
        if (pax_has_size && type != 'x' && type != 'L')
            size = pax_size;
        uint64_t data = off + BLOCK;
        if (size > total || data + size > total) {
            err = ek_err_new(EK_E_INVALID, "\"%s\" is truncated: a member runs past its end", what);
            break;
        }
        uint64_t next = data + ((size + BLOCK - 1) / BLOCK) * BLOCK;
        if (type == 'L' || type == 'x') {
            if (size > MAX_META) {
                err = ek_err_new(EK_E_INVALID, "\"%s\": a %s header is too large", what,
                                 type == 'L' ? "long-name" : "pax");
                break;
            }
            char *buf = ek_xmalloc(size + 1);
            if ((err = read_at(fd, buf, size, data, what))) {
                free(buf);
                break;
            }
            buf[size] = '\0';
            if (type == 'L') {
                free(long_name);
                long_name = buf;
            } else {
                err = pax_parse(buf, size, what, &pax_path, &pax_size, &pax_has_size);
                free(buf);
                if (err)
                    break;
            }
            off = next;
            continue;
        }
        if (type == '0' || type == '\0' || type == '7') {
            char raw[256 + 2];
            if (long_name || pax_path) {
                /* taken below */
            } else if (memcmp(h + 257, "ustar", 5) == 0 && h[345]) {
                snprintf(raw, sizeof(raw), "%.155s/%.100s", (const char *)h + 345, (const char *)h);
            } else {
                snprintf(raw, sizeof(raw), "%.100s", (const char *)h);
            }
            const char *name = pax_path ? pax_path : long_name ? long_name : raw;
            char *clean;
            if ((err = name_clean(name, what, &clean)))
                break;
            if (out->n == MAX_MEMBERS) {
                free(clean);
                err = ek_err_new(EK_E_INVALID, "\"%s\" holds too many files", what);
                break;
            }
            if (out->n == alloc) {
                alloc = alloc ? alloc * 2 : 8;
                out->v = ek_xrealloc(out->v, alloc * sizeof(*out->v));
            }
            out->v[out->n++] = (ek_ova_member_t){clean, data, size};
        } else if (long_name || pax_path) {
            /* a directory or link with a long name: checked all the same */
            char *clean;
            if ((err = name_clean(pax_path ? pax_path : long_name, what, &clean)))
                break;
            free(clean);
        } else {
            char raw[101];
            snprintf(raw, sizeof(raw), "%.100s", (const char *)h);
            char *clean;
            if ((err = name_clean(raw, what, &clean)))
                break;
            free(clean);
        }
        free(long_name);
        free(pax_path);
        long_name = pax_path = NULL;
        pax_has_size = false;
        off = next;
    }
    free(long_name);
    free(pax_path);
    if (err) {
        ek_ova_tar_release(out);
        return err;
    }
    return NULL;
}

const ek_ova_member_t *ek_ova_tar_find(const ek_ova_tar_t *t, const char *name)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0)
            return &t->v[i];
    return NULL;
}

void ek_ova_tar_release(ek_ova_tar_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    memset(t, 0, sizeof(*t));
}
