/* strbuf.c - growable NUL-terminated string buffer. */
#include "common/strbuf.h"

#include <stdio.h>
#include <string.h>
#include "common/mem.h"

char ek_strbuf_empty[1];

void ek_strbuf_init(ek_strbuf_t *sb, size_t hint)
{
    sb->buf = ek_strbuf_empty;
    sb->len = 0;
    sb->alloc = 0;
    if (hint)
        ek_strbuf_grow(sb, hint);
}

void ek_strbuf_release(ek_strbuf_t *sb)
{
    if (sb->alloc)
        free(sb->buf);
    ek_strbuf_init(sb, 0);
}

char *ek_strbuf_detach(ek_strbuf_t *sb)
{
    char *s = sb->alloc ? sb->buf : ek_xstrdup("");
    ek_strbuf_init(sb, 0);
    return s;
}

void ek_strbuf_grow(ek_strbuf_t *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need <= sb->alloc)
        return;
    size_t n = sb->alloc ? sb->alloc : 64;
    while (n < need)
        n = n < ((size_t)1 << 30) ? n * 2 : n + ((size_t)1 << 30);
    if (sb->alloc) {
        sb->buf = ek_xrealloc(sb->buf, n);
    } else {
        sb->buf = ek_xmalloc(n);
        sb->buf[0] = '\0';
    }
    sb->alloc = n;
}

void ek_strbuf_reset(ek_strbuf_t *sb)
{
    ek_strbuf_setlen(sb, 0);
}

void ek_strbuf_setlen(ek_strbuf_t *sb, size_t len)
{
    if (!sb->alloc)
        return; /* empty buffer: len is 0 already */
    sb->len = len < sb->len ? len : sb->len;
    sb->buf[sb->len] = '\0';
}

void ek_strbuf_add(ek_strbuf_t *sb, const void *data, size_t len)
{
    if (!len)
        return;
    ek_strbuf_grow(sb, len);
    memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void ek_strbuf_adds(ek_strbuf_t *sb, const char *s)
{
    ek_strbuf_add(sb, s, strlen(s));
}

void ek_strbuf_addch(ek_strbuf_t *sb, char c)
{
    ek_strbuf_grow(sb, 1);
    sb->buf[sb->len++] = c;
    sb->buf[sb->len] = '\0';
}

void ek_strbuf_vaddf(ek_strbuf_t *sb, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n <= 0)
        return;
    ek_strbuf_grow(sb, (size_t)n);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void ek_strbuf_addf(ek_strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ek_strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

void ek_strbuf_add_json_escaped(ek_strbuf_t *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            ek_strbuf_adds(sb, "\\\"");
            break;
        case '\\':
            ek_strbuf_adds(sb, "\\\\");
            break;
        case '\n':
            ek_strbuf_adds(sb, "\\n");
            break;
        case '\r':
            ek_strbuf_adds(sb, "\\r");
            break;
        case '\t':
            ek_strbuf_adds(sb, "\\t");
            break;
        default:
            if (*p < 0x20)
                ek_strbuf_addf(sb, "\\u%04x", *p);
            else
                ek_strbuf_addch(sb, (char)*p);
        }
    }
}

void ek_strbuf_trim(ek_strbuf_t *sb)
{
    size_t start = 0;
    while (start < sb->len && (sb->buf[start] == ' ' || sb->buf[start] == '\t' ||
                               sb->buf[start] == '\n' || sb->buf[start] == '\r'))
        start++;
    size_t end = sb->len;
    while (end > start && (sb->buf[end - 1] == ' ' || sb->buf[end - 1] == '\t' ||
                           sb->buf[end - 1] == '\n' || sb->buf[end - 1] == '\r'))
        end--;
    if (!sb->alloc)
        return;
    memmove(sb->buf, sb->buf + start, end - start);
    sb->len = end - start;
    sb->buf[sb->len] = '\0';
}

bool ek_strbuf_starts_with(const ek_strbuf_t *sb, const char *prefix)
{
    size_t n = strlen(prefix);
    return sb->len >= n && memcmp(sb->buf, prefix, n) == 0;
}

const char *ek_human_size(uint64_t bytes, char buf[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}
