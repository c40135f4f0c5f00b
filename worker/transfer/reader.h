/* reader.h - where the transfer engine gets a disk's bytes: a table of
 * functions per kind of source (raw file, NBD export), the shape of
 * libvirt's drivers. The engine never knows which one it holds.
 *
 * A source says which ranges hold data, which read as zeros, and which did
 * not change since the last sync, without reading them (extents); gives
 * bytes (pread); and may refine data ranges into changed and unchanged ones
 * after they were read (changes: a source without change tracking compares
 * hashes with the map of the previous sync). Slots marked optional may be
 * NULL. All functions but open/close may run in several threads at once. */
#ifndef EK_TRANSFER_READER_H
#define EK_TRANSFER_READER_H

#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

typedef enum ek_extent_kind {
    EK_EXTENT_DATA = 0,  /* allocated (and, for incrementals, changed) */
    EK_EXTENT_ZERO,      /* reads as zeros: sent as a zero range, never read */
    EK_EXTENT_UNCHANGED, /* same as at the last sync: not sent */
} ek_extent_kind_t;

typedef struct ek_extent {
    uint64_t offset, length;
    ek_extent_kind_t kind;
} ek_extent_t;

typedef struct ek_extents {
    ek_extent_t *v;
    size_t n, alloc;
} ek_extents_t;

/* Appends, merging with the last extent when contiguous and of the same kind. */
void ek_extents_push(ek_extents_t *e, uint64_t offset, uint64_t length, ek_extent_kind_t kind);
void ek_extents_release(ek_extents_t *e);

typedef struct ek_reader_params {
    /* Raw file: the hash map of the previous sync (read if it exists) and
     * where the new one goes until commit renames it over the old one. NULL:
     * no change tracking, every allocated range is data. */
    const char *hash_map;
    /* NBD: the dirty-bitmap context ("qemu:dirty-bitmap:backup-vda") whose
     * clean ranges are unchanged; NULL for a full copy. */
    const char *dirty_bitmap;
} ek_reader_params_t;

typedef struct ek_reader_ops {
    const char *name;
    /* Opens the source; *size gets its virtual size. */
    ek_err_t *(*open)(const char *source, const ek_reader_params_t *params, void **handle,
                      uint64_t *size);
    /* Appends extents that cover [offset, offset+length) exactly, in order. */
    ek_err_t *(*extents)(void *h, uint64_t offset, uint64_t length, ek_extents_t *out);
    /* Reads len bytes at offset (the range is inside the disk). */
    ek_err_t *(*pread)(void *h, void *buf, size_t len, uint64_t offset);
    /* Optional: buf holds the bytes of a DATA range [offset, offset+len) the
     * engine just read; appends DATA (changed) and UNCHANGED extents covering
     * it, and remembers the new content for the next sync. The engine calls
     * it with ranges aligned to 64 KiB (or ending at the end of the disk). */
    ek_err_t *(*changes)(void *h, const void *buf, uint64_t offset, uint64_t len,
                         ek_extents_t *out);
    /* Optional: XXH3-64 hashes (ek_dp_checksum) of the blocks of [offset,
     * offset+len), when the source can hash cheaper than reading through
     * pread (e.g. skipping holes). NULL: the engine reads and hashes. */
    ek_err_t *(*block_hashes)(void *h, uint64_t offset, uint64_t len, uint32_t block_size,
                              uint64_t *out);
    /* Optional: the transfer is complete and verified: keep what changes()
     * remembered as the base of the next incremental. */
    ek_err_t *(*commit)(void *h);
    void (*close)(void *h);
} ek_reader_ops_t;

/* Raw image file or block device; SEEK_DATA/SEEK_HOLE for allocation and an
 * optional hash map (64 KiB blocks) for incrementals. */
extern const ek_reader_ops_t ek_reader_file;
/* An NBD export through libnbd ("nbd://host:port/export",
 * "nbd+unix:///export?socket=PATH"): base:allocation for zeros and holes, a
 * qemu:dirty-bitmap context for what changed. */
extern const ek_reader_ops_t ek_reader_nbd;

/* Block size of the raw reader's hash map. */
#define EK_HASHMAP_BLOCK (64u * 1024)

#endif
