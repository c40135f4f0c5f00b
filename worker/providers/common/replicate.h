/* replicate.h - REPLICATE_DISKS for any source provider: each disk of
 * export_info goes through the transfer engine (worker/transfer/engine.h)
 * to the ekman-writer that target_resources_connection_info names (any kind
 * of worker/transfer/target.h), one disk after the other (the engine runs
 * several connections per disk). The driver does what every source shares:
 * it matches export_info.disks[] with volumes_info[] (by "disk_id", or "id"),
 * checks sizes, makes one progress step per disk, saves and resumes the
 * engine's per-disk state ({"disks": {ID: state}} in the task state), tells
 * what each sync moved (an event, and volumes_info[i].last_sync), and puts
 * volumes_info in the result. The provider only opens readers.
 *
 * volumes_info[i] keys the driver reads: "disk_id", "path" (the writer-side
 * path: "serial:S", device or file), "size_bytes". Anything else is the
 * destination's and is passed through. */
#ifndef EK_PROVIDERS_REPLICATE_H
#define EK_PROVIDERS_REPLICATE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "worker/provider.h"
#include "worker/transfer/engine.h"
#include "worker/transfer/reader.h"

typedef struct ek_repl_disk {
    const char *id;      /* export_info.disks[i].id */
    json_object *disk;   /* export_info.disks[i] (borrowed) */
    json_object *volume; /* the result's volumes_info entry (borrowed; the provider may add keys) */
    uint64_t size;       /* export_info.disks[i].size_bytes */
    bool incremental;    /* params.incremental (default true) */
    bool retried;        /* an earlier attempt of this task saved state for this disk */
    const char *task_id; /* the REPLICATE_DISKS task's id */
} ek_repl_disk_t;

/* What the provider's open gives back for one disk. */
typedef struct ek_repl_reader {
    const ek_reader_ops_t *ops;
    void *handle;
    uint64_t size;      /* what the reader holds: must equal the disk's size */
    bool tracked;       /* the reader knows what changed since the last sync */
    ek_verify_t verify; /* EK_VERIFY_SENT unless the provider wants more */
    void *priv;         /* the provider's, for close */
} ek_repl_reader_t;

typedef struct ek_repl_source {
    void *opaque;
    /* Optional: before the first disk (e.g. start a backup job). */
    ek_err_t *(*begin)(void *opaque, ek_task_ctx_t *ctx, const ek_task_input_t *in);
    /* Opens the reader of one disk. */
    ek_err_t *(*open)(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                      ek_repl_reader_t *r);
    /* Closes it; ok tells whether the disk's sync completed (commit change
     * tracking then, drop it else). Returns an error only for a failed
     * commit. */
    ek_err_t *(*close)(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                       ek_repl_reader_t *r, bool ok);
    /* Optional: after the last disk, or after a failure (ok false). */
    ek_err_t *(*end)(void *opaque, ek_task_ctx_t *ctx, bool ok);
} ek_repl_source_t;

EK_ERR_CHECK ek_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                const ek_repl_source_t *src, json_object *result);

#endif
