/* path.h - paths on a mounted NTFS volume, where Windows matches names
 * case-insensitively but ntfs-3g (and the tests' plain directories) do not:
 * "Windows/System32/config/SYSTEM" may be "WINDOWS/system32/CONFIG/system" on
 * disk. Internal to worker/morph/windows. */
#ifndef EK_MORPH_WINDOWS_PATH_H
#define EK_MORPH_WINDOWS_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

/* The path of rel ('/'-separated) below base as it is spelled on disk; *out
 * is malloc'ed. EK_E_NOTFOUND when an element is missing. */
EK_ERR_CHECK ek_win_path_find(const char *base, const char *rel, char **out);
/* Whether rel exists below base (case-insensitively). */
bool ek_win_path_exists(const char *base, const char *rel);
/* What the morphing created on the volume, so that a failure can take it
 * back (newest first). Files that existed before are not listed. */
typedef struct ek_win_undo {
    char **paths;
    size_t n, alloc;
} ek_win_undo_t;
#define EK_WIN_UNDO_INIT                                                                           \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }
void ek_win_undo_add(ek_win_undo_t *u, const char *path);
/* Removes the listed files and directories, newest first, and empties u. */
void ek_win_undo_run(ek_win_undo_t *u);
/* Forgets the list (the changes stay). */
void ek_win_undo_release(ek_win_undo_t *u);

/* Like find, creating the missing directories (with rel's spelling, listed
 * in undo when it is not NULL); every element must be a directory. *out is
 * malloc'ed. */
EK_ERR_CHECK ek_win_path_mkdirs(const char *base, const char *rel, ek_win_undo_t *undo, char **out);
/* Copies the file src to dst (replaced when it exists; listed in undo when
 * it is new). */
EK_ERR_CHECK ek_win_file_copy(const char *src, const char *dst, ek_win_undo_t *undo);
/* Writes text to dst with CRLF line ends, as cmd.exe wants (listed in undo
 * when new). */
EK_ERR_CHECK ek_win_file_write_crlf(const char *dst, const char *text, ek_win_undo_t *undo);

#endif
