/* fsutil.h - small file-system helpers for private temporary material
 * (keys, certificates, config drives) that must not outlive a task. */
#ifndef EK_COMMON_FSUTIL_H
#define EK_COMMON_FSUTIL_H

#include <stddef.h>
#include "common/error.h"

/* A new directory BASE/PREFIX.XXXXXX, mode 0700; *out is malloc'ed. */
EK_ERR_CHECK ek_private_dir(const char *base, const char *prefix, char **out);
/* Writes len bytes to path (created or truncated) with the given mode. */
EK_ERR_CHECK ek_file_write(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole (small) file; *out is NUL-terminated, *len without it. */
EK_ERR_CHECK ek_file_read(const char *path, size_t max, char **out, size_t *len);
/* Removes path and, when it is a directory, everything under it. Missing is
 * fine. Returns 0 or an errno value. */
int ek_rmtree(const char *path);

#endif
