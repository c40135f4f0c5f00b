/* replicate.c - REPLICATE_DISKS of the local source: each disk of
 * export_info goes through the transfer engine to the ekman-writer that
 * target_resources_connection_info names, one disk after the other (the
 * engine already runs several connections per disk).
 *
 *   raw images:   the raw file reader, with its hash map for incrementals
 *   qcow2 images: qemu-nbd -> the NBD reader, hash map kept by tracked.c
 *
 * The hash map of a disk is volumes_info[i].hash_map (the destination puts
 * it beside the replica and drops it whenever the replica is re-created).
 * A first execution (params.incremental false) starts a fresh map, and one
 * after a sync that did not finish does too (prepare_hash_map), so a map is
 * always the image of what the replica holds. Progress is one step per
 * disk; the engine's resume state of every disk is saved as
 * {"disks": {"vda": {...}}} and a re-run resumes from it. What each sync
 * sent is told in an event and kept in volumes_info[i].last_sync. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/transfer/connect.h"
#include "worker/transfer/engine.h"

typedef struct repl {
    ek_task_ctx_t *ctx;
    pthread_mutex_t lock; /* the engine's threads report through it */
    json_object *state;   /* {"disks": {...}} as saved last */
    json_object *disks;   /* borrowed from state */
} repl_t;

typedef struct disk_run {
    repl_t *r;
    const char *id;
    int step;
    uint64_t size;
} disk_run_t;

static ek_err_t *save_cb(void *opaque, const char *json)
{
    disk_run_t *d = opaque;
    json_object *o;
    ek_err_t *err = ek_json_parse(json, strlen(json), &o);
    if (err)
        return err;
    pthread_mutex_lock(&d->r->lock);
    json_object_object_add(d->r->disks, d->id, o);
    ek_task_save_state(d->r->ctx, d->r->state);
    pthread_mutex_unlock(&d->r->lock);
    return NULL;
}

static void progress_cb(void *opaque, const ek_xfer_stats_t *st)
{
    disk_run_t *d = opaque;
    uint64_t done = st->data_bytes + st->zero_bytes + st->unchanged_bytes + st->resumed_bytes;
    pthread_mutex_lock(&d->r->lock);
    ek_task_step_update(d->r->ctx, d->step, EK_MIN(done, d->size));
    pthread_mutex_unlock(&d->r->lock);
}

/* The saved state of a disk as resume text, if it still fits the disk. */
static char *resume_text(repl_t *r, const char *id, uint64_t size, const char *target)
{
    json_object *s, *v;
    if (!json_object_object_get_ex(r->disks, id, &s) || !json_object_is_type(s, json_type_object))
        return NULL;
    bool fits = json_object_object_get_ex(s, "size", &v) &&
                (uint64_t)json_object_get_int64(v) == size &&
                json_object_object_get_ex(s, "target", &v) &&
                strcmp(json_object_get_string(v), target) == 0;
    if (!fits) {
        ek_task_event(r->ctx, "WARNING",
                      "disk '%s': the saved transfer state is for another size or target: "
                      "starting over",
                      id);
        return NULL;
    }
    return ek_json_dump(s, false);
}

static json_object *stats_json(const ek_xfer_stats_t *st, bool incremental, bool tracked)
{
    json_object *o = json_object_new_object();
#define I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
    I("size_bytes", st->size);
    I("data_bytes", st->data_bytes);
    I("payload_bytes", st->payload_bytes);
    I("zero_bytes", st->zero_bytes);
    I("unchanged_bytes", st->unchanged_bytes);
    I("resumed_bytes", st->resumed_bytes);
    I("resent_bytes", st->resent_bytes);
    I("read_bytes", st->read_bytes);
    I("wire_bytes", st->wire_out);
#undef I
    json_object_object_add(o, "seconds", json_object_new_double(st->seconds));
    json_object_object_add(o, "incremental", json_object_new_boolean(incremental));
    json_object_object_add(o, "change_tracking", json_object_new_boolean(tracked));
    return o;
}

typedef struct disk_job {
    const char *id, *path, *format, *target, *hash_map;
    uint64_t size;
    json_object *vol; /* the result's volumes_info entry (borrowed) */
    int step;
} disk_job_t;

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
static ek_err_t *prepare_hash_map(repl_t *r, const disk_job_t *j, bool incremental, bool retried)
{
    _cleanup_free_ char *pending = ek_xasprintf("%s.new", j->hash_map);
    _cleanup_free_ char *marker = ek_xasprintf("%s.inprogress", j->hash_map);
    bool unfinished = access(marker, F_OK) == 0;
    if (!retried && (!incremental || unfinished)) {
        if (incremental && access(j->hash_map, F_OK) == 0)
            ek_task_event(r->ctx, "WARNING",
                          "disk '%s': the last sync did not finish, so its block hashes do not "
                          "describe the replica: every block is sent again",
                          j->id);
        ek_err_t *err = ek_local_unlink(j->hash_map);
        if (err || (err = ek_local_unlink(pending)))
            return err;
    }
    return NULL;
}

/* Marks (or, done, unmarks) a sync of the disk as writing its replica. */
static ek_err_t *mark_sync(const disk_job_t *j, bool writing)
{
    if (!j->hash_map)
        return NULL;
    _cleanup_free_ char *marker = ek_xasprintf("%s.inprogress", j->hash_map);
    if (!writing)
        return ek_local_unlink(marker);
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", marker);
    close(fd);
    return NULL;
}

static ek_err_t *replicate_one(repl_t *r, disk_job_t *j, const char *command, bool incremental)
{
    ek_task_ctx_t *ctx = r->ctx;
    const ek_config_t *cfg = ek_task_config(ctx);
    ek_err_t *err = NULL;
    bool retried = json_object_object_get_ex(r->disks, j->id, NULL);
    if (j->hash_map && (err = prepare_hash_map(r, j, incremental, retried)))
        return err;
    const ek_reader_ops_t *inner = &ek_reader_file;
    ek_local_nbd_t *nbd = NULL;
    bool qcow2 = strcmp(j->format, "qcow2") == 0;
    const char *source = j->path;
    if (qcow2) {
        const char *tmp = cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : "/tmp";
        if ((err = ek_local_nbd_start(j->path, "qcow2", tmp, &nbd)))
            return ek_err_prefix(err, "disk '%s'", j->id);
        inner = &ek_reader_nbd;
        source = ek_local_nbd_uri(nbd);
    }
    ek_reader_params_t rp = {.hash_map = qcow2 ? NULL : j->hash_map};
    void *ih = NULL;
    uint64_t size = 0;
    ek_local_tracked_t *reader = NULL;
    if ((err = inner->open(source, &rp, &ih, &size))) {
        ek_local_nbd_stop(nbd);
        return ek_err_prefix(err, "disk '%s'", j->id);
    }
    if ((err = ek_local_tracked_open(inner, ih, size, qcow2 ? j->hash_map : NULL, ctx, &reader))) {
        inner->close(ih);
        ek_local_nbd_stop(nbd);
        return ek_err_prefix(err, "disk '%s'", j->id);
    }
    if (size != j->size) {
        ek_local_tracked_close(reader);
        ek_local_nbd_stop(nbd);
        return ek_err_new(EK_E_CONFLICT,
                          "disk '%s': \"%s\" holds %llu bytes, %llu when the instance info was "
                          "read: execute the transfer again",
                          j->id, j->path, (unsigned long long)size, (unsigned long long)j->size);
    }
    disk_run_t run = {r, j->id, j->step, size};
    _cleanup_free_ char *resume = resume_text(r, j->id, size, j->target);
    ek_exec_target_t target = {.command = command};
    ek_xfer_params_t p = {
        .disk_name = j->id,
        .target_path = j->target,
        .open_flags = 0, /* DEPLOY_TRANSFER_DISKS made it, at its size */
        .connect = ek_exec_connect,
        .connect_target = &target,
        .connections = cfg ? (unsigned)ek_config_get_int(cfg, "worker", "transfer_connections") : 0,
        .level = cfg ? (int)ek_config_get_int(cfg, "worker", "compression_level") : 0,
        .bandwidth = cfg ? (uint64_t)ek_config_get_int(cfg, "worker", "bandwidth_limit") << 20 : 0,
        .verify = EK_VERIFY_SENT,
        .resume = resume,
        .save_state = save_cb,
        .state_opaque = &run,
        .progress = progress_cb,
        .progress_opaque = &run,
    };
    ek_xfer_stats_t st;
    memset(&st, 0, sizeof(st));
    if (!(err = mark_sync(j, true)))
        err = ek_xfer_run(&ek_local_tracked_ops, reader, size, &p, &st);
    ek_local_tracked_close(reader);
    ek_local_nbd_stop(nbd);
    /* committed: the map describes the replica again */
    if (err || (err = mark_sync(j, false)))
        return err;
    pthread_mutex_lock(&r->lock);
    ek_task_step_update(ctx, j->step, size);
    pthread_mutex_unlock(&r->lock);
    char sent[32], zero[32], unchanged[32], resumed[32], wire[32];
    ek_task_event(ctx, "INFO",
                  "disk '%s': sent %s of data (%llu bytes) and %s as zero ranges; skipped %s "
                  "unchanged (%llu bytes) and %s sent before; %s on the wire in %.1f s",
                  j->id, ek_local_human_size(st.data_bytes, sent),
                  (unsigned long long)st.data_bytes, ek_local_human_size(st.zero_bytes, zero),
                  ek_local_human_size(st.unchanged_bytes, unchanged),
                  (unsigned long long)st.unchanged_bytes,
                  ek_local_human_size(st.resumed_bytes, resumed),
                  ek_local_human_size(st.wire_out, wire), st.seconds);
    json_object_object_add(
        j->vol, "last_sync",
        stats_json(&st, (incremental || retried) && j->hash_map, j->hash_map != NULL));
    return NULL;
}

/* The command of target_resources_connection_info ({"kind": "exec"}). */
static ek_err_t *writer_command(const ek_task_input_t *in, const char **command)
{
    json_object *tci;
    const char *kind;
    ek_err_t *err =
        ek_local_info_get(in, "target_resources_connection_info", json_type_object, &tci);
    if (err)
        return err;
    if ((err = ek_json_opt_string(tci, "target_resources_connection_info", "kind", "", &kind)))
        return err;
    if (!*kind)
        return ek_err_new(EK_E_CONFLICT,
                          "instance '%s': target_resources_connection_info names no "
                          "writer (DEPLOY_TRANSFER_TARGET_RESOURCES must run first)",
                          in->instance);
    if (strcmp(kind, "exec") != 0)
        return ek_err_new(EK_E_INVALID,
                          "the local provider writes through a local ekman-writer (connection "
                          "kind 'exec'); the destination offers '%s'",
                          kind);
    return ek_json_req_string(tci, "target_resources_connection_info", "command", command);
}

EK_LOCAL_TASK(replicate_disks)
{
    json_object *export_info, *vols_in, *disks;
    const char *command;
    bool incremental = true;
    ek_err_t *err;
    if ((err = ek_local_task_dirs(in, NULL, NULL)) ||
        (err = ek_local_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_local_info_get(in, "volumes_info", json_type_array, &vols_in)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = writer_command(in, &command)))
        return err;
    if (in->params && json_object_is_type(in->params, json_type_object) &&
        (err = ek_json_opt_bool(in->params, "params", "incremental", true, &incremental)))
        return err;

    /* volumes_info of the result: a copy, with last_sync filled in */
    json_object *vols = NULL;
    if (json_object_deep_copy(vols_in, &vols, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    size_t n = json_object_array_length(disks);
    disk_job_t *jobs = ek_xcalloc(n ? n : 1, sizeof(*jobs));
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        disk_job_t *j = &jobs[i];
        int64_t size, vsize;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &j->id)) ||
            (err = ek_json_req_string(d, "export_info.disks[]", "path", &j->path)) ||
            (err = ek_json_opt_string(d, "export_info.disks[]", "format", "raw", &j->format)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)))
            break;
        j->size = (uint64_t)size;
        j->vol = ek_local_volume_find(vols, j->id);
        if (!j->vol) {
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s' has no target volume in volumes_info: "
                             "DEPLOY_TRANSFER_DISKS must run first",
                             j->id);
            break;
        }
        if ((err = ek_json_req_string(j->vol, "volumes_info[]", "path", &j->target)) ||
            (err = ek_json_opt_string(j->vol, "volumes_info[]", "hash_map", NULL, &j->hash_map)) ||
            (err = ek_json_opt_int(j->vol, "volumes_info[]", "size_bytes", 0, &vsize)))
            break;
        if ((uint64_t)vsize < j->size)
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s': the target volume holds %lld bytes, the source %lld: "
                             "DEPLOY_TRANSFER_DISKS must grow it first",
                             j->id, (long long)vsize, (long long)size);
    }
    if (err) {
        free(jobs);
        json_object_put(vols);
        return err;
    }

    repl_t r = {.ctx = ctx, .state = json_object_new_object()};
    pthread_mutex_init(&r.lock, NULL);
    json_object *saved = NULL;
    if (in->state && json_object_object_get_ex(in->state, "disks", &saved) &&
        json_object_is_type(saved, json_type_object))
        json_object_deep_copy(saved, &r.disks, NULL);
    if (!r.disks)
        r.disks = json_object_new_object();
    json_object_object_add(r.state, "disks", r.disks);

    char sz[32];
    for (size_t i = 0; i < n; i++)
        jobs[i].step = ek_task_step(ctx, jobs[i].size, "Replicating disk %s (%s, %s)", jobs[i].id,
                                    ek_local_human_size(jobs[i].size, sz), jobs[i].format);
    for (size_t i = 0; i < n && !err; i++) {
        if (ek_task_cancelled(ctx)) {
            err = ek_err_new(EK_E_CANCELED, "cancelled");
            break;
        }
        if (!jobs[i].hash_map && incremental)
            ek_task_event(ctx, "WARNING",
                          "disk '%s': the destination keeps no block hashes: every block is "
                          "sent",
                          jobs[i].id);
        err = replicate_one(&r, &jobs[i], command, incremental);
    }
    pthread_mutex_destroy(&r.lock);
    json_object_put(r.state);
    free(jobs);
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}
