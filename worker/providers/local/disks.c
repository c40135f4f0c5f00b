/* disks.c - the replica disks of a local destination and their snapshots:
 * sparse raw files in DST/<instance>/ (layout in local.h).
 *
 * DEPLOY_TRANSFER_DISKS makes one file per source disk at its virtual size
 * (a hole: it costs nothing until written), grows the ones whose source
 * grew, re-creates the ones that shrank and removes those whose disk left
 * the source. Whenever a replica is (re-)created its hash map goes, so the
 * next sync sends every block: a map always describes what the replica
 * holds. File names come from the disk ids (checked to be plain names),
 * never from paths in the task info, so no task removes a file outside the
 * instance's directory. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/tenantname.h"

/* The instance's directory on the destination, checked; malloc'ed. */
static ek_err_t *instance_dir(ek_task_ctx_t *ctx, const ek_task_input_t *in, bool create,
                              char **out)
{
    const char *dst;
    ek_err_t *err;
    if ((err = ek_local_task_dirs(ctx, in, NULL, &dst)) ||
        (err = ek_local_name_check(in->instance, "instance name")))
        return err;
    char *dir = ek_local_instance_dir(dst, in->instance);
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err = ek_err_errno(errno, "could not create \"%s\"", dir);
        free(dir);
        return err;
    }
    *out = dir;
    return NULL;
}

static const char *const map_suffixes[] = {".hashmap", ".hashmap.new", ".hashmap.inprogress",
                                           ".hashmap.sync"};

/* Drops the hash map of a replica (with a pending one and the marker of an
 * unfinished sync). */
static ek_err_t *drop_hash_map(const char *dir, const char *id)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(map_suffixes); i++) {
        _cleanup_free_ char *p = ek_local_replica_path(dir, id, map_suffixes[i]);
        ek_err_t *err = ek_local_unlink(p);
        if (err)
            return err;
    }
    return NULL;
}

/* A sparse file of `size` bytes at path; truncated first when it exists. */
static ek_err_t *create_sparse(const char *path, uint64_t size, bool truncate_first)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate_first ? O_TRUNC : 0), 0600);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", path);
    ek_err_t *err = NULL;
    if (ftruncate(fd, (off_t)size) != 0)
        err = ek_err_errno(errno, "could not size \"%s\" to %llu bytes", path,
                           (unsigned long long)size);
    else if (fsync(fd) != 0)
        err = ek_err_errno(errno, "could not sync \"%s\"", path);
    close(fd);
    return err;
}

static json_object *volume_new(const char *dir, const char *id, uint64_t size)
{
    json_object *v = json_object_new_object();
    char *path = ek_local_replica_path(dir, id, ".img");
    char *map = ek_local_replica_path(dir, id, ".hashmap");
    json_object_object_add(v, "disk_id", json_object_new_string(id));
    json_object_object_add(v, "path", json_object_new_string(path));
    json_object_object_add(v, "volume_dev", json_object_new_string(path));
    json_object_object_add(v, "format", json_object_new_string("raw"));
    json_object_object_add(v, "size_bytes", json_object_new_int64((int64_t)size));
    json_object_object_add(v, "hash_map", json_object_new_string(map));
    free(path);
    free(map);
    return v;
}

/* Makes (or adapts) the replica of one source disk. */
static ek_err_t *deploy_one(ek_task_ctx_t *ctx, const char *dir, const char *id, uint64_t size,
                            bool known)
{
    _cleanup_free_ char *path = ek_local_replica_path(dir, id, ".img");
    char a[32], b[32];
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return ek_err_errno(errno, "could not stat \"%s\"", path);
    if (exists && !S_ISREG(st.st_mode))
        return ek_err_new(EK_E_CONFLICT, "\"%s\" is not a regular file: move it away", path);
    ek_err_t *err = NULL;
    if (known && exists && (uint64_t)st.st_size == size)
        return NULL; /* the replica of the last execution, as it was */
    if (known && exists && (uint64_t)st.st_size < size) {
        if ((err = create_sparse(path, size, false)))
            return err;
        ek_task_event(ctx, "INFO", "disk '%s' grew from %s to %s: its replica grew too", id,
                      ek_human_size((uint64_t)st.st_size, a), ek_human_size(size, b));
        return drop_hash_map(dir, id); /* a map is for one size */
    }
    if (known && exists)
        ek_task_event(ctx, "WARNING",
                      "disk '%s' shrank from %s to %s: its replica is re-created and the next "
                      "sync copies it whole",
                      id, ek_human_size((uint64_t)st.st_size, a), ek_human_size(size, b));
    else if (known)
        ek_task_event(ctx, "WARNING",
                      "the replica of disk '%s' was missing: it is re-created and the next sync "
                      "copies it whole",
                      id);
    if ((err = drop_hash_map(dir, id)) || (err = create_sparse(path, size, true)))
        return err;
    if (!known)
        ek_task_event(ctx, "INFO", "disk '%s': replica \"%s\" created (%s, sparse)", id, path,
                      ek_human_size(size, a));
    return NULL;
}

/* Removes every file of one replica. */
static ek_err_t *remove_replica(const char *dir, const char *id)
{
    static const char *const suffixes[] = {".img", ".img.part", ".snap.img", ".snap.img.part"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(suffixes); i++) {
        _cleanup_free_ char *p = ek_local_replica_path(dir, id, suffixes[i]);
        ek_err_t *err = ek_local_unlink(p);
        if (err)
            return err;
    }
    return drop_hash_map(dir, id);
}

/* The disk_id of a volumes_info entry when it is a plain name, else NULL. */
static const char *volume_id(json_object *v)
{
    json_object *id;
    if (!json_object_object_get_ex(v, "disk_id", &id) || !json_object_is_type(id, json_type_string))
        return NULL;
    ek_err_t *bad = ek_tenant_name_check(json_object_get_string(id), "disk id");
    if (bad) {
        ek_err_free(bad);
        return NULL;
    }
    return json_object_get_string(id);
}

ek_err_t *ek_local_task_deploy_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result)
{
    json_object *export_info, *disks, *prev = NULL, *v;
    _cleanup_free_ char *dir = NULL;
    ek_err_t *err;
    if ((err = ek_local_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = instance_dir(ctx, in, true, &dir)))
        return err;
    if (in->task_info && json_object_object_get_ex(in->task_info, "volumes_info", &v) &&
        json_object_is_type(v, json_type_array))
        prev = v;
    json_object *vols = json_object_new_array();
    size_t n = json_object_array_length(disks);
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *id;
        int64_t size;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &id)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)) ||
            (err = ek_tenant_name_check(id, "disk id")))
            break;
        if (size <= 0) {
            err = ek_err_new(EK_E_INVALID, "disk '%s' has no size in export_info", id);
            break;
        }
        bool known = prev && ek_local_volume_find(prev, id);
        if ((err = deploy_one(ctx, dir, id, (uint64_t)size, known)))
            break;
        json_object *vol = volume_new(dir, id, (uint64_t)size);
        /* The token of the map of the last sync (replicate.c): a map that
         * deploy_one dropped lost its token file with it, and does not count. */
        json_object *pv = known ? ek_local_volume_find(prev, id) : NULL, *tok;
        if (pv && json_object_object_get_ex(pv, "hash_map_sync", &tok))
            json_object_object_add(vol, "hash_map_sync", json_object_get(tok));
        json_object_array_add(vols, vol);
    }
    /* Disks that left the source. */
    for (size_t i = 0; prev && !err && i < json_object_array_length(prev); i++) {
        const char *id = volume_id(json_object_array_get_idx(prev, i));
        if (!id || ek_local_volume_find(vols, id))
            continue;
        if (!(err = remove_replica(dir, id)))
            ek_task_event(ctx, "INFO",
                          "disk '%s' is no longer on the source: its replica was removed", id);
    }
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}

ek_err_t *ek_local_task_delete_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result)
{
    json_object *vols;
    _cleanup_free_ char *dir = NULL;
    ek_err_t *err;
    if ((err = ek_local_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = instance_dir(ctx, in, false, &dir)))
        return err;
    size_t n = json_object_array_length(vols), removed = 0;
    for (size_t i = 0; i < n && !err; i++) {
        const char *id = volume_id(json_object_array_get_idx(vols, i));
        if (!id) {
            ek_task_event(ctx, "WARNING", "volumes_info[%zu] has no usable disk_id: skipped", i);
            continue;
        }
        if (!(err = remove_replica(dir, id)))
            removed++;
    }
    if (err)
        return err;
    if (rmdir(dir) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
        ek_task_event(ctx, "WARNING", "could not remove \"%s\": %s", dir, strerror(errno));
    ek_task_event(ctx, "INFO", "removed the replicas of %zu disk(s) of '%s'", removed,
                  in->instance);
    json_object_object_add(result, "volumes_info", json_object_new_array());
    return NULL;
}

/* ---- snapshots ------------------------------------------------------------------------- */

typedef struct copy_progress {
    ek_task_ctx_t *ctx;
    int step;
} copy_progress_t;

static void copy_progress(void *opaque, uint64_t done, uint64_t total)
{
    copy_progress_t *p = opaque;
    (void)total;
    ek_task_step_update(p->ctx, p->step, done);
}

/* volumes_info of the task, copied for the result. */
static ek_err_t *volumes_copy(const ek_task_input_t *in, json_object **out)
{
    json_object *vols;
    ek_err_t *err = ek_local_info_get(in, "volumes_info", json_type_array, &vols);
    if (err)
        return err;
    *out = NULL;
    if (json_object_deep_copy(vols, out, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    return NULL;
}

ek_err_t *ek_local_task_create_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result)
{
    json_object *vols;
    _cleanup_free_ char *dir = NULL;
    bool clone = in->clone_disks;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = instance_dir(ctx, in, false, &dir)) ||
        (in->params && json_object_is_type(in->params, json_type_object) &&
         (err = ek_json_opt_bool(in->params, "params", "clone_disks", clone, &clone)))) {
        json_object_put(vols);
        return err;
    }
    size_t n = json_object_array_length(vols);
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = volume_id(v);
        if (!id) {
            err = ek_err_new(EK_E_INVALID, "volumes_info[%zu] has no usable disk_id", i);
            break;
        }
        _cleanup_free_ char *src = ek_local_replica_path(dir, id, ".img");
        _cleanup_free_ char *snap = ek_local_replica_path(dir, id, ".snap.img");
        struct stat st;
        if (stat(src, &st) != 0) {
            err = ek_err_errno(errno, "disk '%s': no replica to snapshot at \"%s\"", id, src);
            break;
        }
        copy_progress_t p = {ctx, ek_task_step(ctx, (uint64_t)st.st_size, "%s disk %s",
                                               clone ? "Cloning" : "Snapshotting", id)};
        bool cloned;
        if ((err = ek_local_file_copy(src, snap, copy_progress, &p, &cloned))) {
            err = ek_err_prefix(err, "disk '%s'", id);
            break;
        }
        ek_task_step_update(ctx, p.step, (uint64_t)st.st_size);
        ek_task_event(ctx, "INFO", "disk '%s': %s \"%s\" (%s)", id, clone ? "clone" : "snapshot",
                      snap, cloned ? "shared extents" : "sparse copy");
        json_object_object_add(v, "snapshot_path", json_object_new_string(snap));
        json_object_object_add(v, "snapshot_kind",
                               json_object_new_string(clone ? "clone" : "snapshot"));
    }
    if (err) {
        /* a half-made set of snapshots is of no use to anyone */
        for (size_t i = 0; i < n; i++) {
            const char *id = volume_id(json_object_array_get_idx(vols, i));
            if (id) {
                _cleanup_free_ char *snap = ek_local_replica_path(dir, id, ".snap.img");
                unlink(snap);
            }
        }
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}

ek_err_t *ek_local_task_delete_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result)
{
    json_object *vols;
    _cleanup_free_ char *dir = NULL;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = instance_dir(ctx, in, false, &dir))) {
        json_object_put(vols);
        return err;
    }
    size_t n = json_object_array_length(vols);
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = volume_id(v);
        if (!id)
            continue;
        if (!json_object_object_get_ex(v, "snapshot_path", NULL))
            continue;
        _cleanup_free_ char *snap = ek_local_replica_path(dir, id, ".snap.img");
        if ((err = ek_local_unlink(snap)))
            break;
        json_object_object_del(v, "snapshot_path");
        json_object_object_del(v, "snapshot_kind");
    }
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}

ek_err_t *ek_local_task_restore_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result)
{
    json_object *vols;
    _cleanup_free_ char *dir = NULL;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = instance_dir(ctx, in, false, &dir))) {
        json_object_put(vols);
        return err;
    }
    size_t n = json_object_array_length(vols);
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = volume_id(v);
        if (!id)
            continue;
        if (!json_object_object_get_ex(v, "snapshot_path", NULL))
            continue;
        _cleanup_free_ char *snap = ek_local_replica_path(dir, id, ".snap.img");
        _cleanup_free_ char *path = ek_local_replica_path(dir, id, ".img");
        /* The snapshot holds what the last sync left: renamed over the
         * replica, it brings the replica back to that state, and its hash
         * map stays true. */
        int rc = rename(snap, path), e = errno;
        if (rc == 0) {
            ek_task_event(ctx, "INFO", "disk '%s': replica restored from its snapshot", id);
        } else if (e == ENOENT && access(path, F_OK) == 0) {
            ek_task_event(ctx, "WARNING",
                          "disk '%s': no snapshot to restore; the replica is kept as it is", id);
        } else {
            err =
                ek_err_errno(e, "disk '%s': could not restore \"%s\" from \"%s\"", id, path, snap);
            break;
        }
        json_object_object_del(v, "snapshot_path");
        json_object_object_del(v, "snapshot_kind");
    }
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}
