/* hashmap.h - the block-hash map of a disk: what the last sync read, one
 * XXH3-64 per EK_HASHMAP_BLOCK (64 KiB) block, so that an incremental sync
 * of a source without change tracking of its own (a raw file, an NBD export
 * of a qcow2 image) sends only the blocks whose content changed.
 *
 * File: "EKHMAP01", u64 disk size, u32 block size, u32 0, then one
 * little-endian u64 per block; 0 is "unknown" (always sent). The map of
 * this sync is written to "<map>.new" and renamed over the old one only by
 * commit, once the transfer is verified: a failed sync never loses the base.
 * The one home of the format (the raw-file reader and the local provider's
 * tracked reader both use it). */
#ifndef EK_TRANSFER_HASHMAP_H
#define EK_TRANSFER_HASHMAP_H

#include <stdint.h>
#include "common/error.h"
#include "worker/transfer/reader.h"

typedef struct ek_hashmap ek_hashmap_t;

/* Opens the map file path for a disk of size bytes: the previous map when it
 * is for this disk (else a warning, and every block is sent), and a new one
 * at "<path>.new". */
EK_ERR_CHECK ek_hashmap_open(const char *path, uint64_t size, ek_hashmap_t **out);
/* Appends to out what the source's extents raw (DATA, ZERO) mean for this
 * sync: a zero extent's whole blocks are UNCHANGED where they were zeros at
 * the last sync and ZERO elsewhere; everything else (data, blocks only partly
 * zero) is DATA, for ek_hashmap_changes once read. */
EK_ERR_CHECK ek_hashmap_extents(ek_hashmap_t *m, const ek_extents_t *raw, ek_extents_t *out);
/* Appends to out which blocks of the data just read (buf, len bytes at
 * offset, block-aligned) are UNCHANGED since the last sync and which DATA,
 * and records their hashes in the new map. */
EK_ERR_CHECK ek_hashmap_changes(ek_hashmap_t *m, const void *buf, uint64_t offset, uint64_t len,
                                ek_extents_t *out);
/* After a verified transfer: the new map replaces the old one (fsync, rename). */
EK_ERR_CHECK ek_hashmap_commit(ek_hashmap_t *m);
/* Closes it; a new map not committed is removed. NULL is a no-op. */
void ek_hashmap_close(ek_hashmap_t *m);

#endif
