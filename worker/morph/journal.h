/* journal.h - a record, in a file of the state directory, of every mount,
 * LVM activation and partition-table read the engine made, so that all of it
 * is undone in reverse: after success, after a failure, on cancel, and at the
 * start of the next run when this one was killed.
 *
 * An entry is written (and fsync'ed) before the action it records, so a kill
 * between the two leaves an entry whose undo finds nothing to do, never an
 * action without an entry. Undoing tolerates "not mounted" and "no such VG".
 *
 * The actions go through a mounter, a table of functions: the real one
 * (ek_morph_mounter_real) calls mount(2)/umount2(2), lvm and partx; the unit
 * tests give one that records calls and fails on demand.
 *
 * Ownership: ek_morph_journal_open() returns a journal the caller ends with
 * ek_morph_journal_close() (after ek_morph_journal_unwind()). */
#ifndef EK_MORPH_JOURNAL_H
#define EK_MORPH_JOURNAL_H

#include <stdbool.h>
#include "common/error.h"
#include "worker/morph/report.h"

typedef struct ek_morph_mounter {
    /* 0 or -errno */
    int (*mount)(void *ud, const char *src, const char *target, const char *fstype,
                 unsigned long flags, const char *data);
    /* 0, or -errno; -EINVAL/-ENOENT mean "was not mounted" */
    int (*umount)(void *ud, const char *target);
    /* lvm vgchange -ay/-an of the VG with this UUID, devices restricted by
     * filter (an lvm.conf devices/filter value) */
    ek_err_t *(*vg_activate)(void *ud, const char *vg_uuid, const char *filter);
    ek_err_t *(*vg_deactivate)(void *ud, const char *vg_uuid, const char *filter);
    /* a loop device over [offset, offset+size) of dev (an LV read straight
     * from its PV when the kernel has no device-mapper); *loop gets its
     * path (malloc'ed). loop_del detaches every loop device over dev at
     * offset. */
    ek_err_t *(*loop_add)(void *ud, const char *dev, unsigned long long offset,
                          unsigned long long size, char **loop);
    ek_err_t *(*loop_del)(void *ud, const char *dev, unsigned long long offset);
    /* partx -a / partx -d */
    ek_err_t *(*parts_add)(void *ud, const char *disk);
    ek_err_t *(*parts_del)(void *ud, const char *disk);
    void *ud;
} ek_morph_mounter_t;

extern const ek_morph_mounter_t ek_morph_mounter_real;

typedef struct ek_morph_journal ek_morph_journal_t;

/* Opens (creates) the journal file at path. If it already holds entries (a
 * previous run was killed), they are undone first, reported through r; an
 * undo that fails is an error (the state is unknown: nothing is started). */
EK_ERR_CHECK ek_morph_journal_open(const char *path, const ek_morph_mounter_t *m,
                                   ek_morph_report_t *r, ek_morph_journal_t **out);

/* The actions, each recorded first. fstype NULL for binds (MS_BIND). */
EK_ERR_CHECK ek_morph_journal_mount(ek_morph_journal_t *j, const char *src, const char *target,
                                    const char *fstype, unsigned long flags, const char *data);
EK_ERR_CHECK ek_morph_journal_vg_activate(ek_morph_journal_t *j, const char *vg_uuid,
                                          const char *filter);
EK_ERR_CHECK ek_morph_journal_parts_add(ek_morph_journal_t *j, const char *disk);
EK_ERR_CHECK ek_morph_journal_loop_add(ek_morph_journal_t *j, const char *dev,
                                       unsigned long long offset, unsigned long long size,
                                       char **loop);
/* Records that `path` was replaced and its old content saved at `backup`:
 * the undo moves backup back over path ("-" as backup: path did not exist,
 * the undo removes it). The caller does the replacing. */
EK_ERR_CHECK ek_morph_journal_file(ek_morph_journal_t *j, const char *path, const char *backup);

/* Undoes the entries after the first `keep` ones, newest first, and drops
 * them. (An umount of a mount made in a probe is unwind(j, n_before).) */
EK_ERR_CHECK ek_morph_journal_unwind_to(ek_morph_journal_t *j, size_t keep);
/* Undoes all entries, newest first. Every undo is tried; the ones that failed
 * stay in the file and the error names them. On success the file is removed. */
EK_ERR_CHECK ek_morph_journal_unwind(ek_morph_journal_t *j);
size_t ek_morph_journal_count(const ek_morph_journal_t *j);
void ek_morph_journal_close(ek_morph_journal_t *j);

#endif
