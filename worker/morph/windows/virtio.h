/* virtio.h - choosing the files of a virtio-win tree (the mounted ISO) that
 * fit one Windows installation, the way virt-v2v matches them
 * (shared/research/osmorphing.md section 3): a file fits when its path has a
 * directory named for the guest's version (w10, 2k19...) and one named for
 * its architecture (amd64; x86 or i386), which covers both the per-driver
 * tree <Driver>/<osdir>/<arch>/ and the flat <arch>/<osdir>/ tree, matched
 * case-insensitively; sriov/ directories, vioprot.* and *.pdb are left out.
 * Also finds the qemu-guest-agent and cloudbase-init installers. Internal to
 * worker/morph/windows. */
#ifndef EK_MORPH_WINDOWS_VIRTIO_H
#define EK_MORPH_WINDOWS_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "worker/morph/windows/windows.h"

typedef struct ek_win_virtio_file {
    char *src;  /* path in the tree */
    char *name; /* lower-case file name, the name it gets in the guest */
} ek_win_virtio_file_t;

typedef struct ek_win_virtio {
    ek_win_virtio_file_t *files; /* sorted by path; one per name (the first found) */
    size_t n;
    char *qemu_ga_msi;   /* the guest agent's MSI for the arch, or NULL */
    char *cloudbase_msi; /* cloudbase-init's MSI for the arch, or NULL */
} ek_win_virtio_t;

/* The virtio-win directory name for an osinfo id ("win2k19" -> "2k19"), or
 * NULL when virtio-win has no drivers for it. */
const char *ek_win_virtio_osdir(const char *osinfo);

/* Matches the tree at dir against info; *out owned by the caller. An empty
 * match is not an error here (the caller decides what it needs). A dir that
 * cannot be read is. */
EK_ERR_CHECK ek_win_virtio_match(const char *dir, const ek_win_info_t *info, ek_win_virtio_t **out);
void ek_win_virtio_free(ek_win_virtio_t *v);
EK_DEFINE_CLEANUP(ek_win_virtio_t, ek_win_virtio_free)

/* The matched file named name (lower case, "viostor.sys"), or NULL. */
const ek_win_virtio_file_t *ek_win_virtio_get(const ek_win_virtio_t *v, const char *name);

#endif
