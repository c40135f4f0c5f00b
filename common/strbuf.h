/* strbuf.h - the one growable string buffer used everywhere (after git's strbuf).
 *
 * `buf` is always NUL-terminated, also when empty; `len` excludes the NUL.
 * Initialise with EK_STRBUF_INIT; release with ek_strbuf_release(), or take the
 * string with ek_strbuf_detach() (the caller then owns it). */
#ifndef EK_STRBUF_H
#define EK_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/compiler.h"

typedef struct ek_strbuf {
    char *buf;
    size_t len;
    size_t alloc;
} ek_strbuf_t;

extern char ek_strbuf_empty[];
#define EK_STRBUF_INIT                                                                             \
    {                                                                                              \
        ek_strbuf_empty, 0, 0                                                                      \
    }

void ek_strbuf_init(ek_strbuf_t *sb, size_t hint);
void ek_strbuf_release(ek_strbuf_t *sb);
char *ek_strbuf_detach(ek_strbuf_t *sb);
void ek_strbuf_grow(ek_strbuf_t *sb, size_t extra);
void ek_strbuf_reset(ek_strbuf_t *sb);
void ek_strbuf_setlen(ek_strbuf_t *sb, size_t len);
void ek_strbuf_add(ek_strbuf_t *sb, const void *data, size_t len);
void ek_strbuf_adds(ek_strbuf_t *sb, const char *s);
void ek_strbuf_addch(ek_strbuf_t *sb, char c);
void ek_strbuf_addf(ek_strbuf_t *sb, const char *fmt, ...) EK_PRINTF(2, 3);
void ek_strbuf_vaddf(ek_strbuf_t *sb, const char *fmt, va_list ap) EK_PRINTF(2, 0);
/* Appends s with JSON string escaping, without the surrounding quotes. */
void ek_strbuf_add_json_escaped(ek_strbuf_t *sb, const char *s);
void ek_strbuf_trim(ek_strbuf_t *sb);
bool ek_strbuf_starts_with(const ek_strbuf_t *sb, const char *prefix);

static inline void ek_strbuf_releasep(ek_strbuf_t *sb)
{
    ek_strbuf_release(sb);
}
#define _cleanup_strbuf_ _cleanup_(ek_strbuf_releasep)

/* bytes as "512 B", "1.5 KiB" ... "3072.0 PiB" (binary units, one decimal)
 * into buf, which it returns: the one byte formatter of the tree. */
const char *ek_human_size(uint64_t bytes, char buf[32]);

#endif
