/* util.h - small helpers the engine's parts share: string lists and reading
 * files below a guest root ("root" + "/etc/fstab"). */
#ifndef EK_MORPH_UTIL_H
#define EK_MORPH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

/* A growable list of owned strings; v is NULL-terminated (or NULL when empty). */
typedef struct ek_strv {
    char **v;
    size_t n, alloc;
} ek_strv_t;

void ek_strv_add(ek_strv_t *l, const char *s); /* copies s */
void ek_strv_take(ek_strv_t *l, char *s);      /* takes s */
bool ek_strv_has(const ek_strv_t *l, const char *s);
void ek_strv_sort_versions(ek_strv_t *l); /* strverscmp order */
void ek_strv_clear(ek_strv_t *l);
static inline void ek_strv_clearp(ek_strv_t *l)
{
    ek_strv_clear(l);
}
#define _cleanup_strv_ _cleanup_(ek_strv_clearp)

/* root + "/" + rel (rel may start with "/"); malloc'ed. */
char *ek_morph_path(const char *root, const char *rel);
/* Whether root/rel exists (lstat: a dangling symlink counts) / is a directory
 * (following symlinks). */
bool ek_morph_exists(const char *root, const char *rel);
bool ek_morph_is_dir(const char *root, const char *rel);
/* Reads root/rel (at most 4 MiB); *out NULL when it does not exist. */
EK_ERR_CHECK ek_morph_read(const char *root, const char *rel, char **out);
/* Writes root/rel (mode), creating missing parent directories (0755). */
EK_ERR_CHECK ek_morph_write(const char *root, const char *rel, const char *text, unsigned mode);
/* Value of KEY=VALUE in shell-style text (quotes removed), or NULL; malloc'ed. */
char *ek_morph_shvar(const char *text, const char *key);

#endif
