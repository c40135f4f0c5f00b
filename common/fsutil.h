/* fsutil.h - small file-system helpers for private temporary material
 * (keys, certificates, config drives) that must not outlive a task. */
#ifndef EK_COMMON_FSUTIL_H
#define EK_COMMON_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
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
/* pread(2) until len bytes are read, the file ends, or an error: the bytes
 * read (fewer than len at the end of the file), or -1 with errno. */
ssize_t ek_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Opens rel (relative) beneath the directory dirfd with open(2) flags (mode
 * with O_CREAT): one openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so
 * no "..", absolute or magic link leads out and nothing can be swapped
 * between a check and the open (add O_NOFOLLOW to refuse a link as the last
 * component). Where openat2 is missing (Linux < 5.6) or a seccomp filter
 * refuses it, one openat(O_NOFOLLOW) per component: every link is refused.
 * O_CLOEXEC only when flags has it (a descriptor may be meant for a child).
 * Returns the descriptor, or -1 with errno (EXDEV or ELOOP: the path leads
 * out). */
int ek_openat_beneath(int dirfd, const char *rel, int flags, mode_t mode);

#endif
