/* storage.h - the guest's disks on the worker: resolving the options' disk
 * names, partitions (partx -a when the nodes are missing), LVM (only the VGs
 * whose PVs are on these disks, by UUID, behind a device filter; never
 * renamed), the filesystems blkid finds, the guest root by libguestfs-style
 * role rules, and mounting the root with its fstab mounts and the /dev /proc
 * /sys /run binds. Everything mounted or activated goes through the journal.
 *
 * Ownership: ek_morph_storage_scan() returns an object the caller frees with
 * ek_morph_storage_free() (which unmounts nothing: the journal does). */
#ifndef EK_MORPH_STORAGE_H
#define EK_MORPH_STORAGE_H

#include <stdbool.h>
#include "common/error.h"
#include "worker/morph/journal.h"
#include "worker/morph/options.h"
#include "worker/morph/report.h"
#include "worker/morph/util.h"

typedef struct ek_morph_fs {
    char *dev;                            /* /dev/vdb2, /dev/mapper/vg-root */
    char *lvpath;                         /* /dev/<vg>/<lv> for an LV, else NULL */
    char *mapper;                         /* /dev/mapper/<vg>-<lv> for an LV, else NULL */
    char *type, *uuid, *label, *partuuid; /* from blkid ("" when none) */
    int disk;                             /* index in the options' disks, -1 for LVs */
    int partno;                           /* partition number, 0 for a whole disk or an LV */
} ek_morph_fs_t;

typedef struct ek_morph_storage {
    ek_strv_t disks; /* resolved device paths, in the options' order */
    ek_morph_fs_t *fs;
    size_t n_fs;
    char *lvm_filter; /* devices/filter accepting only the PVs of the disks */
} ek_morph_storage_t;

typedef struct ek_morph_root {
    int fs;       /* index into storage->fs */
    char *subvol; /* btrfs subvolume below the top level, or NULL (default) */
    bool windows;
} ek_morph_root_t;

EK_ERR_CHECK ek_morph_storage_scan(const ek_morph_opts_t *o, ek_morph_journal_t *j,
                                   ek_morph_report_t *r, ek_morph_storage_t **out);
void ek_morph_storage_free(ek_morph_storage_t *st);
EK_DEFINE_CLEANUP(ek_morph_storage_t, ek_morph_storage_free)

/* Probes each filesystem (mounted read-only at probe_dir, then unmounted) and
 * picks the one OS root: zero or two are errors. */
EK_ERR_CHECK ek_morph_storage_find_root(ek_morph_storage_t *st, ek_morph_journal_t *j,
                                        const char *probe_dir, ek_morph_report_t *r,
                                        ek_morph_root_t *out);

/* Mounts the Linux root read-write at dir, then its fstab mounts, then the
 * binds. */
EK_ERR_CHECK ek_morph_storage_mount_linux(ek_morph_storage_t *st, const ek_morph_root_t *root,
                                          ek_morph_journal_t *j, const char *dir,
                                          ek_morph_report_t *r);

/* The UUID of what the guest called dev (/dev/sdb1 = partition 1 of the
 * second disk), or NULL: an ek_morph_dev_resolver_fn over storage. */
const char *ek_morph_storage_resolve(void *storage, const char *dev);

#endif
