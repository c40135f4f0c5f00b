/* replicate.c - REPLICATE_DISKS of the local source: the readers of its
 * disks for the generic driver (providers/common/replicate.h), which sends
 * them through the transfer engine to whatever ekman-writer
 * target_resources_connection_info names (https, ssh or a local exec).
 *
 *   raw images:   the raw file reader, with its hash map for incrementals
 *   qcow2 images: qemu-nbd -> the NBD reader, hash map kept by tracked.c
 *
 * The image is opened beneath the operator's [local] allowed_roots and
 * probed as a tenant's image (no backing or data file), and both readers
 * read that descriptor (/dev/fd/N, qemu with the format forced and
 * "backing": null), never the path again.
 *
 * The hash map of a disk is volumes_info[i].hash_map (the destination puts
 * it beside the replica and drops it whenever the replica is re-created).
 * A first execution (params.incremental false) starts a fresh map, and one
 * after a sync that did not finish does too (prepare_hash_map), so a map is
 * always the image of what the replica holds.
 *
 * A map can be on another machine than the replica (the oVirt destination
 * keeps it on the worker): each completed sync stamps it with the id of its
 * task, in "<map>.sync" and in volumes_info[i].hash_map_sync (the task
 * state, which the destination carries to the next execution). A map with
 * another stamp than the state names (left by an older sync on this worker,
 * while a later one ran elsewhere) is dropped, never trusted; a re-run of
 * the task keeps only a map its own earlier attempt marked or stamped. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/uuid.h"
#include "worker/providers/common/replicate.h"
#include "worker/providers/common/tenant_image.h"

/* Decides what the hash map of a disk is worth before the reader opens it
 * (a sync marks itself as under way with "<map>.inprogress" just before it
 * writes, and removes the mark once the engine committed the new map):
 *   - a first execution (not incremental) starts a fresh map;
 *   - a sync of an earlier execution that did not finish may have written
 *     blocks the map does not describe: the map is dropped, every block is
 *     sent (a block written then reverted on the source would otherwise be
 *     taken for unchanged);
 *   - a re-run of this very task (its saved state names the disk) keeps the
 *     map: the earlier attempt dropped it already if it had to, and the
 *     engine resumes from what the writer acknowledged. */
ek_err_t *ek_local_hash_map_prepare(ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                                    const char *hash_map)
{
    _cleanup_free_ char *pending = ek_xasprintf("%s.new", hash_map);
    _cleanup_free_ char *marker = ek_xasprintf("%s.inprogress", hash_map);
    _cleanup_free_ char *sync = ek_xasprintf("%s.sync", hash_map);
    _cleanup_free_ char *have = NULL, *owner = NULL;
    const char *want = NULL;
    ek_err_t *err = ek_json_opt_string(d->volume, "volumes_info[]", "hash_map_sync", NULL, &want);
    if (err)
        return err;
    size_t len = 0;
    ek_err_free(ek_file_read(sync, 128, &have, &len));
    bool unfinished = access(marker, F_OK) == 0;
    if (unfinished)
        ek_err_free(ek_file_read(marker, 128, &owner, &len));
    /* an earlier attempt of this very task, on this worker, marked the map
     * or completed the disk's sync */
    bool ours =
        d->retried && d->task_id &&
        ((owner && strcmp(owner, d->task_id) == 0) || (have && strcmp(have, d->task_id) == 0));
    bool current = want && have && strcmp(have, want) == 0;
    if (ours || (!d->retried && d->incremental && !unfinished && current))
        return NULL;
    if (d->incremental && access(hash_map, F_OK) == 0)
        ek_task_event(ctx, "WARNING",
                      !current ? "disk '%s': the block hashes kept here are not those of the "
                                 "replica's last sync (it ran on another worker): every block "
                                 "is sent again"
                               : "disk '%s': the last sync did not finish, so its block hashes "
                                 "do not describe the replica: every block is sent again",
                      d->id);
    if ((err = ek_local_unlink(hash_map)) || (err = ek_local_unlink(pending)) ||
        (err = ek_local_unlink(sync)))
        return err;
    return NULL;
}

/* A completed sync: the map's token is the id of the task that made it,
 * and the state learns it. */
ek_err_t *ek_local_hash_map_seal(const ek_repl_disk_t *d, const char *hash_map)
{
    char token[128];
    if (d->task_id && *d->task_id && strlen(d->task_id) < sizeof(token))
        snprintf(token, sizeof(token), "%s", d->task_id);
    else
        ek_uuid_generate(token);
    _cleanup_free_ char *sync = ek_xasprintf("%s.sync", hash_map);
    _cleanup_free_ char *tmp = ek_xasprintf("%s.sync.tmp", hash_map);
    ek_err_t *err = ek_file_write(tmp, token, strlen(token), 0600);
    if (!err && rename(tmp, sync) != 0)
        err = ek_err_errno(errno, "could not rename \"%s\"", tmp);
    if (err)
        return err;
    json_object_object_add(d->volume, "hash_map_sync", json_object_new_string(token));
    return NULL;
}

/* Marks (or, done, unmarks) a sync of the disk as writing its replica; the
 * mark holds the task's id (a re-run of the task on this worker knows it). */
ek_err_t *ek_local_hash_map_mark(const char *hash_map, const char *task_id, bool writing)
{
    if (!hash_map)
        return NULL;
    _cleanup_free_ char *marker = ek_xasprintf("%s.inprogress", hash_map);
    if (!writing)
        return ek_local_unlink(marker);
    const char *id = task_id ? task_id : "";
    return ek_file_write(marker, id, strlen(id), 0600);
}

/* What a disk's reader holds besides the reader. */
typedef struct local_disk {
    ek_local_nbd_t *nbd;
    ek_local_tracked_t *reader;
    const char *hash_map;
} local_disk_t;

/* What open_disk needs to know of the task: the source endpoint's name. */
typedef struct local_src {
    const char *endpoint;
} local_src_t;

static ek_err_t *open_disk(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                           ek_repl_reader_t *rd)
{
    const local_src_t *ls = opaque;
    const ek_config_t *cfg = ek_task_config(ctx);
    const char *path, *format, *hash_map;
    ek_err_t *err;
    if ((err = ek_json_req_string(d->disk, "export_info.disks[]", "path", &path)) ||
        (err = ek_json_opt_string(d->disk, "export_info.disks[]", "format", "raw", &format)) ||
        (err = ek_json_opt_string(d->volume, "volumes_info[]", "hash_map", NULL, &hash_map)))
        return err;
    if (!hash_map && d->incremental)
        ek_task_event(ctx, "WARNING",
                      "disk '%s': the destination keeps no block hashes: every block is sent",
                      d->id);
    if (hash_map && (err = ek_local_hash_map_prepare(ctx, d, hash_map)))
        return err;
    /* The path comes from the task info: opened beneath the operator's
     * roots and probed again, as the first time (GET_INSTANCE_INFO). */
    ek_local_scope_t sc = {cfg, ls->endpoint};
    int fd;
    uint64_t vsize;
    if ((err = ek_local_image_open(&sc, path, format, &fd, &format, &vsize)))
        return ek_err_prefix(err, "disk '%s'", d->id);
    bool qcow2 = strcmp(format, "qcow2") == 0;
    local_disk_t *ld = ek_xcalloc(1, sizeof(*ld));
    ld->hash_map = hash_map;
    const ek_reader_ops_t *inner = &ek_reader_file;
    char fd_path[32];
    snprintf(fd_path, sizeof(fd_path), "/dev/fd/%d", fd);
    const char *source = fd_path; /* the file we opened, not the path again */
    if (qcow2) {
        const char *tmp = cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : "/tmp";
        _cleanup_free_ char *spec =
            ek_tenant_image_spec(fd, 0, (uint64_t)lseek(fd, 0, SEEK_END), NULL);
        err = ek_local_nbd_start(spec, "qcow2", tmp, &ld->nbd);
        if (err) {
            close(fd);
            free(ld);
            return err;
        }
        inner = &ek_reader_nbd;
        source = ek_local_nbd_uri(ld->nbd);
    }
    ek_reader_params_t rp = {.hash_map = qcow2 ? NULL : hash_map};
    void *ih = NULL;
    err = inner->open(source, &rp, &ih, &rd->size);
    close(fd); /* the reader (or qemu-nbd) holds its own */
    if (err || (err = ek_local_tracked_open(inner, ih, rd->size, qcow2 ? hash_map : NULL, ctx,
                                            &ld->reader))) {
        if (ih && !ld->reader)
            inner->close(ih);
        ek_local_nbd_stop(ld->nbd);
        free(ld);
        return err;
    }
    /* from here on the replica is being written: its map no longer describes it */
    if ((err = ek_local_hash_map_mark(hash_map, d->task_id, true))) {
        ek_local_tracked_close(ld->reader);
        ek_local_nbd_stop(ld->nbd);
        free(ld);
        return err;
    }
    rd->ops = &ek_local_tracked_ops;
    rd->handle = ld->reader;
    rd->tracked = hash_map != NULL;
    rd->priv = ld;
    return NULL;
}

static ek_err_t *close_disk(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                            ek_repl_reader_t *rd, bool ok)
{
    (void)opaque;
    (void)ctx;
    local_disk_t *ld = rd->priv;
    ek_local_tracked_close(ld->reader);
    ek_local_nbd_stop(ld->nbd);
    /* committed: the map describes the replica again */
    ek_err_t *err = NULL;
    if (ok && ld->hash_map && !(err = ek_local_hash_map_seal(d, ld->hash_map)))
        err = ek_local_hash_map_mark(ld->hash_map, NULL, false);
    free(ld);
    return err;
}

ek_err_t *ek_local_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result)
{
    ek_err_t *err = ek_local_task_dirs(ctx, in, NULL, NULL);
    if (err)
        return err;
    local_src_t ls = {in->origin && in->origin->name ? in->origin->name : "?"};
    ek_repl_source_t src = {.opaque = &ls, .open = open_disk, .close = close_disk};
    return ek_replicate_disks(ctx, in, &src, result);
}
