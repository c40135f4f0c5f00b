/* replicate.c - the generic REPLICATE_DISKS driver (see replicate.h). */
#include "worker/providers/common/replicate.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/taskutil.h"
#include "worker/transfer/target.h"

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

typedef struct disk_job {
    ek_repl_disk_t d;
    const char *target, *format;
    int step;
} disk_job_t;

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
    /* "complete": an earlier attempt of this task (the state is the task's
     * own) copied the whole disk, and then its result was lost (its worker
     * died before it reported). For the engine a complete state begins a new
     * sync; here it means every block was acknowledged: nothing is sent
     * again but what the verification (a re-run checks every block against
     * the replica) finds different. */
    if (json_object_object_get_ex(s, "complete", &v) && json_object_get_boolean(v)) {
        json_object *all = NULL;
        if (json_object_deep_copy(s, &all, NULL) != 0)
            return NULL;
        json_object *range = json_object_new_array();
        json_object_array_add(range, json_object_new_int64(0));
        json_object_array_add(range, json_object_new_int64((int64_t)size));
        json_object *acked = json_object_new_array();
        json_object_array_add(acked, range);
        json_object_object_add(all, "acked", acked);
        json_object_object_add(all, "complete", json_object_new_boolean(false));
        char *text = ek_json_dump(all, false);
        json_object_put(all);
        ek_task_event(r->ctx, "INFO",
                      "disk '%s': an earlier attempt of this task copied the whole disk: "
                      "only what differs from the replica is sent again",
                      id);
        return text;
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

static void report(ek_task_ctx_t *ctx, const disk_job_t *j, const ek_xfer_stats_t *st,
                   ek_writer_target_t *t)
{
    char sent[32], zero[32], unchanged[32], resumed[32], wire[32];
    ek_task_event(
        ctx, "INFO",
        "disk '%s': sent %s of data (%llu bytes) and %s as zero ranges to %s; skipped "
        "%s unchanged (%llu bytes) and %s sent before; %s on the wire in %.1f s",
        j->d.id, ek_human_size(st->data_bytes, sent), (unsigned long long)st->data_bytes,
        ek_human_size(st->zero_bytes, zero), ek_writer_target_describe(t),
        ek_human_size(st->unchanged_bytes, unchanged), (unsigned long long)st->unchanged_bytes,
        ek_human_size(st->resumed_bytes, resumed), ek_human_size(st->wire_out, wire), st->seconds);
}

static ek_err_t *replicate_one(repl_t *r, disk_job_t *j, ek_writer_target_t *t,
                               const ek_repl_source_t *src)
{
    ek_task_ctx_t *ctx = r->ctx;
    const ek_config_t *cfg = ek_task_config(ctx);
    ek_repl_reader_t rd = {.verify = EK_VERIFY_SENT};
    ek_err_t *err = src->open(src->opaque, ctx, &j->d, &rd);
    if (err)
        return ek_err_prefix(err, "disk '%s'", j->d.id);
    if (rd.size != j->d.size) {
        ek_err_free(src->close(src->opaque, ctx, &j->d, &rd, false));
        return ek_err_new(EK_E_CONFLICT,
                          "disk '%s' holds %llu bytes, %llu when the instance info was read: "
                          "execute the transfer again",
                          j->d.id, (unsigned long long)rd.size, (unsigned long long)j->d.size);
    }
    disk_run_t run = {r, j->d.id, j->step, rd.size};
    _cleanup_free_ char *resume = resume_text(r, j->d.id, rd.size, j->target);
    ek_xfer_params_t p = {
        .disk_name = j->d.id,
        .target_path = j->target,
        .open_flags = 0, /* DEPLOY_TRANSFER_DISKS made it, at its size */
        .connect = ek_writer_target_connect_fn(t),
        .connect_target = ek_writer_target_connect_arg(t),
        .connections = cfg ? (unsigned)ek_config_get_int(cfg, "worker", "transfer_connections") : 0,
        .level = cfg ? (int)ek_config_get_int(cfg, "worker", "compression_level") : 0,
        .bandwidth = cfg ? (uint64_t)ek_config_get_int(cfg, "worker", "bandwidth_limit") << 20 : 0,
        /* a re-run after a crash sends again at most this much of the disk */
        .state_every_bytes =
            (uint64_t)(cfg ? ek_config_get_int(cfg, "worker", "transfer_save_every_mb") : 64) << 20,
        .state_every_ms = 5000,
        .verify = rd.verify,
        .resume = resume,
        .save_state = save_cb,
        .state_opaque = &run,
        .progress = progress_cb,
        .progress_opaque = &run,
    };
    ek_xfer_stats_t st;
    memset(&st, 0, sizeof(st));
    err = ek_xfer_run(rd.ops, rd.handle, rd.size, &p, &st);
    ek_err_t *cerr = src->close(src->opaque, ctx, &j->d, &rd, err == NULL);
    if (err) {
        ek_err_free(cerr);
        return ek_err_prefix(err, "disk '%s' to %s", j->d.id, ek_writer_target_describe(t));
    }
    if (cerr)
        return cerr;
    pthread_mutex_lock(&r->lock);
    ek_task_step_update(ctx, j->step, rd.size);
    pthread_mutex_unlock(&r->lock);
    report(ctx, j, &st, t);
    json_object_object_add(
        j->d.volume, "last_sync",
        stats_json(&st, (j->d.incremental || j->d.retried) && rd.tracked, rd.tracked));
    return NULL;
}

/* One job per disk of export_info, matched with its volume. */
static ek_err_t *make_jobs(const ek_task_input_t *in, json_object *disks, json_object *vols,
                           bool incremental, json_object *saved, disk_job_t *jobs, size_t n)
{
    ek_err_t *err = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        disk_job_t *j = &jobs[i];
        int64_t size, vsize;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &j->d.id)) ||
            (err = ek_json_opt_string(d, "export_info.disks[]", "format", "raw", &j->format)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)))
            break;
        j->d.disk = d;
        j->d.size = (uint64_t)size;
        j->d.incremental = incremental;
        j->d.retried = saved && json_object_object_get_ex(saved, j->d.id, NULL);
        j->d.task_id = in->task_id;
        j->d.volume = ek_volumes_find(vols, j->d.id);
        if (!j->d.volume)
            return ek_err_new(EK_E_CONFLICT,
                              "disk '%s' has no target volume in volumes_info: "
                              "DEPLOY_TRANSFER_DISKS must run first",
                              j->d.id);
        if ((err = ek_json_req_string(j->d.volume, "volumes_info[]", "path", &j->target)) ||
            (err = ek_json_opt_int(j->d.volume, "volumes_info[]", "size_bytes", 0, &vsize)))
            break;
        if ((uint64_t)vsize < j->d.size)
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s': the target volume holds %lld bytes, the source %lld: "
                             "DEPLOY_TRANSFER_DISKS must grow it first",
                             j->d.id, (long long)vsize, (long long)size);
    }
    return err;
}

static ek_err_t *run_all(repl_t *r, disk_job_t *jobs, size_t n, ek_writer_target_t *t,
                         const ek_task_input_t *in, const ek_repl_source_t *src)
{
    ek_task_ctx_t *ctx = r->ctx;
    char sz[32];
    for (size_t i = 0; i < n; i++)
        jobs[i].step =
            ek_task_step(ctx, jobs[i].d.size, "Replicating disk %s (%s, %s)", jobs[i].d.id,
                         ek_human_size(jobs[i].d.size, sz), jobs[i].format);
    ek_err_t *err = src->begin ? src->begin(src->opaque, ctx, in) : NULL;
    for (size_t i = 0; i < n && !err; i++) {
        if (ek_task_cancelled(ctx))
            err = ek_err_new(EK_E_CANCELED, "cancelled");
        else
            err = replicate_one(r, &jobs[i], t, src);
    }
    if (src->end) {
        ek_err_t *eerr = src->end(src->opaque, ctx, err == NULL);
        if (err)
            ek_err_free(eerr);
        else
            err = eerr;
    }
    return err;
}

ek_err_t *ek_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                             const ek_repl_source_t *src, json_object *result)
{
    json_object *export_info, *vols_in, *disks, *tci;
    bool incremental = true;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_task_info_get(in, "volumes_info", json_type_array, &vols_in)) ||
        (err = ek_task_info_get(in, "target_resources_connection_info", json_type_object, &tci)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)))
        return err;
    if (in->params && json_object_is_type(in->params, json_type_object) &&
        (err = ek_json_opt_bool(in->params, "params", "incremental", true, &incremental)))
        return err;

    repl_t r = {.ctx = ctx, .state = json_object_new_object()};
    json_object *saved = NULL;
    if (in->state && json_object_object_get_ex(in->state, "disks", &saved) &&
        json_object_is_type(saved, json_type_object))
        json_object_deep_copy(saved, &r.disks, NULL);
    if (!r.disks)
        r.disks = json_object_new_object();
    json_object_object_add(r.state, "disks", r.disks);

    /* volumes_info of the result: a copy, with last_sync filled in */
    json_object *vols = NULL;
    if (json_object_deep_copy(vols_in, &vols, NULL) != 0) {
        json_object_put(r.state);
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    }
    size_t n = json_object_array_length(disks);
    disk_job_t *jobs = ek_xcalloc(n ? n : 1, sizeof(*jobs));
    const ek_config_t *cfg = ek_task_config(ctx);
    ek_writer_target_t *t = NULL;
    if (!(err = make_jobs(in, disks, vols, incremental, r.disks, jobs, n)) &&
        !(err = ek_writer_target_open(
              tci, cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : "/tmp", &t))) {
        pthread_mutex_init(&r.lock, NULL);
        err = run_all(&r, jobs, n, t, in, src);
        pthread_mutex_destroy(&r.lock);
    }
    ek_writer_target_free(t);
    json_object_put(r.state);
    free(jobs);
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}
