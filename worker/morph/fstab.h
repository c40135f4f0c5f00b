/* fstab.h - reading the guest's /etc/fstab, and rewriting device names that
 * change when the disk bus changes (/dev/sdX, /dev/hdX, /dev/xvdX: under
 * VMware the first disk is sda, under virtio-blk vda) into UUID= in fstab and
 * in root=/resume= of /etc/default/grub. Pure text functions.
 *
 * The guest's names are mapped through a resolver: "/dev/sda2" -> the UUID of
 * the filesystem on partition 2 of the first attached disk (storage.c), or a
 * table in the tests. */
#ifndef EK_MORPH_FSTAB_H
#define EK_MORPH_FSTAB_H

#include <stdbool.h>
#include "worker/morph/util.h"

typedef struct ek_morph_fstab_entry {
    char *spec, *file, *vfstype, *opts;
} ek_morph_fstab_entry_t;

typedef struct ek_morph_fstab {
    ek_morph_fstab_entry_t *e;
    size_t n;
} ek_morph_fstab_t;

/* Parses fstab text (comments and malformed lines skipped; \040 decoded). */
void ek_morph_fstab_parse(const char *text, ek_morph_fstab_t *out);
void ek_morph_fstab_clear(ek_morph_fstab_t *f);

/* Returns the UUID for a guest device name, or NULL (unknown). */
typedef const char *(*ek_morph_dev_resolver_fn)(void *ud, const char *dev);

/* Whether dev is a bus-dependent name: /dev/sd*, /dev/hd*, /dev/xvd*. */
bool ek_morph_dev_is_unstable(const char *dev);

/* fstab text with each unstable spec replaced by UUID=<uuid> (the old line
 * kept as a comment above it). Each change is added to changes ("/etc/fstab:
 * /dev/sda2 -> UUID=..."), each name that could not be resolved to
 * unresolved. Returns the new text (malloc'ed; equal to text when nothing
 * changed). */
char *ek_morph_fstab_rewrite(const char *text, ek_morph_dev_resolver_fn fn, void *ud,
                             ek_strv_t *changes, ek_strv_t *unresolved);

/* /etc/default/grub text with root=/dev/sdX and resume=/dev/sdX inside the
 * GRUB_CMDLINE_LINUX* values replaced by UUID=<uuid>. Same conventions. */
char *ek_morph_grub_default_rewrite(const char *text, ek_morph_dev_resolver_fn fn, void *ud,
                                    ek_strv_t *changes, ek_strv_t *unresolved);

#endif
