/* disks.c - the replica disks of an oVirt destination and their
 * pre-deployment copies.
 *
 * DEPLOY_TRANSFER_DISKS makes one empty disk per source disk (raw, thin on
 * file storage, in the storage domain that storage_mappings or
 * default_storage_domain names), grows the ones whose source grew,
 * re-creates the ones that shrank or vanished and deletes those whose disk
 * left the source. volumes_info[i]: disk_id (the source's), ovirt_disk_id,
 * path ("serial:..." for the writer), size_bytes, storage_domain(_id).
 *
 * CREATE_TRANSFER_DISK_SNAPSHOTS copies every replica disk (the engine's
 * disk copy action): with clone_disks the copies become the deployed VM's
 * disks and the replicas stay the transfer's; without, the deployed VM takes
 * the replicas and the copies are what RESTORE_TRANSFER_DISK_SNAPSHOTS puts
 * back (the rollback) or DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS drops. */
#include "worker/providers/ovirt/ovirt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/uuid.h"

static char *human(uint64_t b, char buf[32])
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t i = 0;
    while (v >= 1024 && i + 1 < EK_ARRAY_SIZE(u)) {
        v /= 1024;
        i++;
    }
    snprintf(buf, 32, i ? "%.1f %s" : "%.0f %s", v, u[i]);
    return buf;
}

static ek_err_t *open_dest(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_ovirt_t **c)
{
    return ek_ovirt_open(in->destination, ctx, c);
}

static ek_err_t *wait_disk_ok(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *id, const char *what)
{
    _cleanup_free_ char *path = ek_xasprintf("/disks/%s", id);
    return ek_ovirt_wait(c, ctx, path, "status", "ok", "illegal", ek_ovirt_timeout("DISK", 900),
                         what);
}

/* Creates an empty raw disk of `size` bytes in domain sd; *id malloc'ed. */
static ek_err_t *disk_create(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *sd, const char *name,
                             uint64_t size, char **id)
{
    const char *sd_name = ek_ovirt_str(sd, "name");
    int64_t avail;
    char a[32], b[32];
    if (ek_ovirt_int(sd, "available", &avail) && (uint64_t)avail < size)
        return ek_err_new(EK_E_CONFLICT,
                          "storage domain '%s' is full: %s free, disk '%s' needs %s; free space "
                          "there or map the disk to another domain (storage_mappings)",
                          sd_name, human((uint64_t)avail, a), name, human(size, b));
    const char *st = ek_ovirt_ref(sd, "storage", "type");
    bool block = st && (strcmp(st, "iscsi") == 0 || strcmp(st, "fcp") == 0);
    json_object *body = json_object_new_object(), *sds = json_object_new_object();
    json_object *arr = json_object_new_array(), *ref = json_object_new_object();
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    json_object_object_add(body, "name", json_object_new_string(name));
    json_object_object_add(body, "provisioned_size", json_object_new_string(sz));
    json_object_object_add(body, "format", json_object_new_string("raw"));
    /* raw on block storage cannot be thin */
    json_object_object_add(body, "sparse", json_object_new_string(block ? "false" : "true"));
    json_object_object_add(ref, "id", json_object_new_string(ek_ovirt_str(sd, "id")));
    json_object_array_add(arr, ref);
    json_object_object_add(sds, "storage_domain", arr);
    json_object_object_add(body, "storage_domains", sds);
    _cleanup_free_ char *what = ek_xasprintf("creating disk '%s' (%s) in storage domain '%s'", name,
                                             human(size, a), sd_name);
    json_object *o;
    ek_err_t *err = ek_ovirt_call(c, "POST", "/disks", body, what, &o);
    json_object_put(body);
    if (err)
        return err;
    const char *did = ek_ovirt_str(o, "id");
    if (!did) {
        json_object_put(o);
        return ek_err_new(EK_E_PROTOCOL, "%s: the answer has no disk id", what);
    }
    *id = ek_xstrdup(did);
    json_object_put(o);
    if ((err = wait_disk_ok(c, ctx, *id, what))) {
        ek_ovirt_set_cancellable(c, false);
        ek_err_t *e2 = ek_ovirt_disk_remove(c, ctx, *id, name);
        ek_ovirt_set_cancellable(c, true);
        ek_err_free(e2);
        free(*id);
        *id = NULL;
    }
    return err;
}

/* Grows a replica disk with PUT /disks/{id}, which extends a disk only
 * from oVirt 4.4 (ovirt-engine BackendDiskResource.update: 4.1-4.3.1 drop
 * the new size without a word, 4.3.2-4.3.x answer 409; before 4.4 only a
 * disk attached to a VM can grow, and a replica between executions is not).
 * *grown false: the engine cannot (the caller re-creates the replica). The
 * size is read back: a PUT that answered 200 but changed nothing is an
 * error, not a replica too small. */
static ek_err_t *disk_resize(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *id, const char *name,
                             uint64_t size, bool *grown)
{
    bool can;
    const char *version;
    ek_err_t *err = ek_ovirt_engine_at_least(c, 4, 4, 0, &can, &version);
    *grown = false;
    if (err || !can)
        return err;
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "provisioned_size", json_object_new_string(sz));
    _cleanup_free_ char *path = ek_xasprintf("/disks/%s", id);
    _cleanup_free_ char *what = ek_xasprintf("growing disk '%s' (%s) to %s bytes", name, id, sz);
    err = ek_ovirt_call(c, "PUT", path, b, what, NULL);
    json_object_put(b);
    if (!err)
        err = wait_disk_ok(c, ctx, id, what);
    _cleanup_json_ json_object *d = NULL;
    int64_t ps = 0;
    if (!err && !(err = ek_ovirt_call(c, "GET", path, NULL, what, &d)) &&
        (!ek_ovirt_int(d, "provisioned_size", &ps) || (uint64_t)ps < size))
        err = ek_err_new(EK_E_CONFLICT,
                         "%s: the engine (%s) answered but the disk holds %lld bytes: it did not "
                         "grow",
                         what, version, (long long)ps);
    *grown = !err;
    return err;
}

/* Where the source keeps the block hashes of what this replica holds (for
 * incrementals): in the worker's state (it outlives the task process, whose
 * [worker] tmp_dir is its own and goes with it), named after the disk and
 * its size, so a re-created or grown replica starts with no map (every
 * block is sent). Transfers made before keep the path their volumes_info
 * recorded. */
static char *hash_map_path(ek_task_ctx_t *ctx, const char *disk_id, uint64_t size)
{
    const char *state = ek_config_get_string(ek_task_config(ctx), "DEFAULT", "state_dir");
    _cleanup_free_ char *dir = ek_xasprintf("%s/hashmaps", state);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        ek_log_kv(EK_LOG_WARNING, "cannot create the directory of block hash maps", "dir", dir,
                  "error", strerror(errno), NULL);
    return ek_xasprintf("%s/ekman-ovirt-%s-%llu.hashmap", dir, disk_id, (unsigned long long)size);
}

static json_object *volume_new(ek_task_ctx_t *ctx, const char *src_id, const char *disk_id,
                               uint64_t size, json_object *sd, const char *name)
{
    json_object *v = json_object_new_object();
    char *path = ek_ovirt_disk_serial_path(disk_id);
    char *map = hash_map_path(ctx, disk_id, size);
    json_object_object_add(v, "hash_map", json_object_new_string(map));
    free(map);
    json_object_object_add(v, "disk_id", json_object_new_string(src_id));
    json_object_object_add(v, "ovirt_disk_id", json_object_new_string(disk_id));
    json_object_object_add(v, "ovirt_disk_name", json_object_new_string(name));
    json_object_object_add(v, "path", json_object_new_string(path));
    json_object_object_add(v, "format", json_object_new_string("raw"));
    json_object_object_add(v, "size_bytes", json_object_new_int64((int64_t)size));
    json_object_object_add(v, "storage_domain", json_object_new_string(ek_ovirt_str(sd, "name")));
    json_object_object_add(v, "storage_domain_id", json_object_new_string(ek_ovirt_str(sd, "id")));
    free(path);
    return v;
}

/* Makes or adapts the replica of one source disk; *vol the volumes_info entry. */
static ek_err_t *deploy_one(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                            json_object *disk, json_object *prev, json_object **vol)
{
    const char *id = ek_ovirt_str(disk, "id"), *sd_name;
    int64_t size = 0;
    ek_err_t *err;
    if (!id || !ek_ovirt_int(disk, "size_bytes", &size) || size <= 0)
        return ek_err_new(EK_E_INVALID, "export_info: disk '%s' has no id or size", id ? id : "?");
    if ((err = ek_ovirt_disk_domain_name(ctx, in->destination, disk, &sd_name)))
        return err;
    _cleanup_json_ json_object *sd = NULL;
    if ((err = ek_ovirt_storage_domain(c, sd_name, "storage_mappings/default_storage_domain", &sd)))
        return ek_err_prefix(err, "disk '%s'", id);
    /* a disk alias holds letters, digits, '.', '_', '-' only (source disk
     * ids may be paths or "scsi0:1"): the same rule as VM names */
    _cleanup_free_ char *raw = ek_xasprintf("%s-%s", in->instance, id);
    _cleanup_free_ char *dname = ek_ovirt_vm_name(NULL, raw, NULL);
    const char *known = prev ? ek_ovirt_str(prev, "ovirt_disk_id") : NULL;
    char a[32], b[32];
    if (known) {
        _cleanup_free_ char *path = ek_xasprintf("/disks/%s", known);
        _cleanup_free_ char *what = ek_xasprintf("reading disk '%s' (%s)", dname, known);
        _cleanup_json_ json_object *d = NULL;
        int64_t ps = 0;
        if ((err = ek_ovirt_get_opt(c, path, what, &d)))
            return err;
        if (d && ek_ovirt_int(d, "provisioned_size", &ps) && ps == size) {
            *vol = volume_new(ctx, id, known, (uint64_t)size, sd, dname);
            /* the replica of the last execution, as it was: its map still
             * describes it (RESTORE_TRANSFER_DISK_SNAPSHOTS keeps it too) */
            const char *map = ek_ovirt_str(prev, "hash_map");
            const char *tok = ek_ovirt_str(prev, "hash_map_sync");
            if (map)
                json_object_object_add(*vol, "hash_map", json_object_new_string(map));
            if (tok) /* which sync the map must be of (local/replicate.c) */
                json_object_object_add(*vol, "hash_map_sync", json_object_new_string(tok));
            return NULL;
        }
        bool grown = false;
        if (d && ps < size && (err = disk_resize(c, ctx, known, dname, (uint64_t)size, &grown)))
            return err;
        if (grown) {
            ek_task_event(ctx, "INFO", "disk '%s' grew from %s to %s: its replica grew too", id,
                          human((uint64_t)ps, a), human((uint64_t)size, b));
            *vol = volume_new(ctx, id, known, (uint64_t)size, sd, dname);
            json_object_object_add(*vol, "resized", json_object_new_boolean(true));
            return NULL;
        }
        if (d && ps < size) {
            const char *version = NULL;
            bool ignored;
            ek_err_free(ek_ovirt_engine_at_least(c, 4, 4, 0, &ignored, &version));
            ek_task_event(ctx, "WARNING",
                          "disk '%s' grew from %s to %s, and this engine (oVirt %s) cannot grow "
                          "a disk that is attached to no VM (PUT /disks extends disks from "
                          "oVirt 4.4): its replica is re-created and the next sync copies it "
                          "whole",
                          id, human((uint64_t)ps, a), human((uint64_t)size, b),
                          version ? version : "before 4.4");
            if ((err = ek_ovirt_disk_remove(c, ctx, known, dname)))
                return err;
        } else if (d) {
            ek_task_event(ctx, "WARNING",
                          "disk '%s' shrank from %s to %s: its replica is re-created and the "
                          "next sync copies it whole",
                          id, human((uint64_t)ps, a), human((uint64_t)size, b));
            if ((err = ek_ovirt_disk_remove(c, ctx, known, dname)))
                return err;
        } else {
            ek_task_event(ctx, "WARNING",
                          "the replica of disk '%s' (oVirt disk %s) is gone: it is re-created "
                          "and the next sync copies it whole",
                          id, known);
        }
    }
    char *new_id = NULL;
    if ((err = disk_create(c, ctx, sd, dname, (uint64_t)size, &new_id)))
        return err;
    ek_task_event(ctx, "INFO", "disk '%s': replica '%s' (%s) created in storage domain '%s' (%s)",
                  id, dname, new_id, sd_name, human((uint64_t)size, a));
    *vol = volume_new(ctx, id, new_id, (uint64_t)size, sd, dname);
    free(new_id);
    return NULL;
}

ek_err_t *ek_ovirt_task_deploy_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result)
{
    json_object *export_info, *disks, *prev = NULL, *v;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = open_dest(ctx, in, &c)))
        return err;
    if (in->task_info && json_object_object_get_ex(in->task_info, "volumes_info", &v) &&
        json_object_is_type(v, json_type_array))
        prev = v;
    json_object *vols = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i), *vol = NULL;
        const char *id = ek_ovirt_str(d, "id");
        err = deploy_one(c, ctx, in, d, id ? ek_ovirt_volume_find(prev, id) : NULL, &vol);
        if (!err)
            json_object_array_add(vols, vol);
    }
    /* disks that left the source */
    for (size_t i = 0; prev && !err && i < json_object_array_length(prev); i++) {
        json_object *p = json_object_array_get_idx(prev, i);
        const char *id = ek_ovirt_str(p, "disk_id"), *did = ek_ovirt_str(p, "ovirt_disk_id");
        if (!id || !did || ek_ovirt_volume_find(vols, id))
            continue;
        if (!(err = ek_ovirt_disk_remove(c, ctx, did, id)))
            ek_task_event(ctx, "INFO",
                          "disk '%s' is no longer on the source: its replica (%s) was deleted", id,
                          did);
    }
    ek_ovirt_close(c);
    if (err) {
        /* disks made by this run stay in the result of the next attempt via
         * the engine: name them so that the user can find them */
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}

ek_err_t *ek_ovirt_task_delete_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result)
{
    json_object *vols;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = open_dest(ctx, in, &c)))
        return err;
    size_t n = json_object_array_length(vols), removed = 0;
    static const char *const keys[] = {"ovirt_disk_id", "clone_disk_id", "backup_disk_id"};
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        for (size_t k = 0; k < EK_ARRAY_SIZE(keys) && !err; k++) {
            const char *did = ek_ovirt_str(v, keys[k]);
            if (did && !(err = ek_ovirt_disk_remove(c, ctx, did, keys[k])))
                removed++;
        }
        const char *map = ek_ovirt_str(v, "hash_map");
        if (!err && map && strstr(map, "/ekman-ovirt-")) { /* this worker's copy, if any */
            unlink(map);
            _cleanup_free_ char *pending = ek_xasprintf("%s.new", map);
            unlink(pending);
            _cleanup_free_ char *sync = ek_xasprintf("%s.sync", map);
            _cleanup_free_ char *marker = ek_xasprintf("%s.inprogress", map);
            unlink(sync);
            unlink(marker);
        }
    }
    ek_ovirt_close(c);
    if (err)
        return err;
    ek_task_event(ctx, "INFO", "deleted %zu disk(s) of '%s'", removed, in->instance);
    json_object_object_add(result, "volumes_info", json_object_new_array());
    return NULL;
}

/* ---- pre-deployment copies ------------------------------------------------------------ */

/* Seconds a storage-side copy of `bytes` may take: 15 minutes plus 16 MiB/s
 * (slow NFS); EKMAN_OVIRT_TIMEOUT_COPY overrides it. */
static int copy_timeout(int64_t bytes)
{
    int64_t s = 900 + (bytes > 0 ? bytes / (16 * 1048576) : 0);
    return ek_ovirt_timeout("COPY", s > INT32_MAX ? INT32_MAX : (int)s);
}

/* Removes a copy whose wait ended: a copy still running is locked and its
 * delete answers 409, so it waits for the copy to end (bounded by
 * timeout_s) and deletes it then; no copy is left behind. */
static ek_err_t *copy_remove(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *id, const char *name,
                             int timeout_s)
{
    ek_ovirt_set_cancellable(c, false);
    ek_err_t *err = ek_ovirt_disk_remove(c, ctx, id, name);
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        _cleanup_free_ char *path = ek_xasprintf("/disks/%s", id);
        _cleanup_free_ char *what =
            ek_xasprintf("waiting for the copy '%s' (%s) to end before deleting it", name, id);
        err = ek_ovirt_wait(c, ctx, path, "status", "ok,illegal,gone", "", timeout_s, what);
        if (!err)
            err = ek_ovirt_disk_remove(c, ctx, id, name);
    }
    ek_ovirt_set_cancellable(c, true);
    return err;
}

/* Copies disk `id` into domain sd_id as a new disk called name; *out its id.
 * The engine answers the copy action with 202 and the action as given (no
 * new disk id): the new disk is found by its name, unique to this copy. */
static ek_err_t *disk_copy(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *id, const char *sd_id,
                           const char *name, char **out)
{
    int64_t bytes = 0;
    {
        _cleanup_free_ char *dpath = ek_xasprintf("/disks/%s", id);
        json_object *src = NULL;
        ek_err_t *e = ek_ovirt_get_opt(c, dpath, "reading the disk to copy", &src);
        if (e)
            return e;
        if (src && !ek_ovirt_int(src, "actual_size", &bytes))
            ek_ovirt_int(src, "provisioned_size", &bytes);
        json_object_put(src);
    }
    int timeout_s = copy_timeout(bytes);
    json_object *b = json_object_new_object(), *sd = json_object_new_object();
    json_object *d = json_object_new_object();
    json_object_object_add(sd, "id", json_object_new_string(sd_id));
    json_object_object_add(d, "name", json_object_new_string(name));
    json_object_object_add(b, "storage_domain", sd);
    json_object_object_add(b, "disk", d);
    _cleanup_free_ char *path = ek_xasprintf("/disks/%s/copy", id);
    _cleanup_free_ char *what = ek_xasprintf("copying disk %s to '%s'", id, name);
    json_object *o = NULL;
    ek_err_t *err = ek_ovirt_call(c, "POST", path, b, what, &o);
    json_object_put(b);
    if (err)
        return err;
    /* the action may name the new disk; else it is found by its unique name */
    const char *nid = ek_ovirt_ref(o, "disk", "id");
    if (nid && strcmp(nid, id) != 0) {
        *out = ek_xstrdup(nid);
    } else {
        json_object *found = NULL;
        for (int i = 0; i < 30 && !found && !err; i++) {
            if ((err = ek_ovirt_find(c, "disks", "disk", name, &found)) || found)
                break;
            usleep(ek_ovirt_poll_ms() * 1000);
        }
        if (!err && !found)
            err = ek_err_new(EK_E_NOTFOUND, "%s: the engine shows no disk called '%s'", what, name);
        if (found)
            *out = ek_xstrdup(ek_ovirt_str(found, "id"));
        json_object_put(found);
    }
    json_object_put(o);
    if (err)
        return err;
    _cleanup_free_ char *path2 = ek_xasprintf("/disks/%s", *out);
    if ((err = ek_ovirt_wait(c, ctx, path2, "status", "ok", "illegal", timeout_s, what))) {
        ek_err_t *rm = copy_remove(c, ctx, *out, name, timeout_s);
        if (rm) {
            ek_task_event(ctx, "WARNING",
                          "the unfinished copy '%s' (oVirt disk %s) could not be deleted: %s; "
                          "delete it in the engine",
                          name, *out, rm->message);
            ek_err_free(rm);
        }
        free(*out);
        *out = NULL;
    }
    return err;
}

static ek_err_t *volumes_copy(const ek_task_input_t *in, json_object **out)
{
    json_object *vols;
    ek_err_t *err = ek_ovirt_info_get(in, "volumes_info", json_type_array, &vols);
    if (err)
        return err;
    *out = NULL;
    if (json_object_deep_copy(vols, out, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    return NULL;
}

/* Deletes the copies named by key in vols (a failed or finished set). */
static ek_err_t *drop_copies(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *vols, const char *key)
{
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *did = ek_ovirt_str(v, key);
        if (did && !(err = ek_ovirt_disk_remove(c, ctx, did, key)))
            json_object_object_del(v, key);
    }
    return err;
}

ek_err_t *ek_ovirt_task_create_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result)
{
    json_object *vols;
    ek_ovirt_t *c;
    bool clone = in->clone_disks;
    ek_err_t *err;
    if (in->params && json_object_is_type(in->params, json_type_object) &&
        (err = ek_json_opt_bool(in->params, "params", "clone_disks", clone, &clone)))
        return err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = open_dest(ctx, in, &c))) {
        json_object_put(vols);
        return err;
    }
    const char *key = clone ? "clone_disk_id" : "backup_disk_id";
    char tag[9];
    char *u = ek_uuid_new();
    snprintf(tag, sizeof(tag), "%s", u);
    free(u);
    size_t n = json_object_array_length(vols);
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = ek_ovirt_str(v, "disk_id"), *did = ek_ovirt_str(v, "ovirt_disk_id");
        const char *sd = ek_ovirt_str(v, "storage_domain_id");
        if (!id || !did || !sd) {
            err = ek_err_new(EK_E_INVALID, "volumes_info[%zu] names no oVirt disk", i);
            break;
        }
        _cleanup_free_ char *raw =
            ek_xasprintf("%s-%s-%s-%s", in->instance, id, clone ? "deploy" : "rollback", tag);
        _cleanup_free_ char *name = ek_ovirt_vm_name(NULL, raw, NULL);
        int step = ek_task_step(ctx, 1, "%s disk %s", clone ? "Cloning" : "Snapshotting", id);
        char *copy = NULL;
        if ((err = disk_copy(c, ctx, did, sd, name, &copy)))
            break;
        ek_task_step_update(ctx, step, 1);
        ek_task_event(ctx, "INFO", "disk '%s': %s '%s' (%s)", id,
                      clone ? "copy for the deployed VM" : "rollback copy", name, copy);
        json_object_object_add(v, key, json_object_new_string(copy));
        free(copy);
    }
    if (err) {
        ek_ovirt_set_cancellable(c, false);
        ek_err_t *e2 = drop_copies(c, ctx, vols, key); /* a half-made set is of no use */
        if (e2)
            ek_task_event(ctx, "WARNING", "%s", e2->message);
        ek_err_free(e2);
        json_object_put(vols);
    } else {
        json_object_object_add(result, "volumes_info", vols);
    }
    ek_ovirt_close(c);
    return err;
}

/* Ids of the disks the deployed VM holds (from instance_deployment_info). */
static bool deployed_holds(const ek_task_input_t *in, const char *disk_id)
{
    json_object *info, *disks;
    if (!in->task_info ||
        !json_object_object_get_ex(in->task_info, "instance_deployment_info", &info) ||
        !json_object_object_get_ex(info, "disks", &disks) ||
        !json_object_is_type(disks, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        const char *d = ek_ovirt_str(json_object_array_get_idx(disks, i), "ovirt_disk_id");
        if (d && strcmp(d, disk_id) == 0)
            return true;
    }
    return false;
}

ek_err_t *ek_ovirt_task_delete_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result)
{
    json_object *vols;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = open_dest(ctx, in, &c))) {
        json_object_put(vols);
        return err;
    }
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *clone = ek_ovirt_str(v, "clone_disk_id");
        /* a copy the deployed VM uses is the VM's now; CLEANUP handles failures */
        if (clone && !deployed_holds(in, clone))
            err = ek_ovirt_disk_remove(c, ctx, clone, "deployment copy");
        const char *backup = ek_ovirt_str(v, "backup_disk_id");
        if (!err && backup)
            err = ek_ovirt_disk_remove(c, ctx, backup, "rollback copy");
        json_object_object_del(v, "clone_disk_id");
        json_object_object_del(v, "backup_disk_id");
    }
    ek_ovirt_close(c);
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}

ek_err_t *ek_ovirt_task_restore_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result)
{
    json_object *vols;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = open_dest(ctx, in, &c))) {
        json_object_put(vols);
        return err;
    }
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = ek_ovirt_str(v, "disk_id"), *backup = ek_ovirt_str(v, "backup_disk_id");
        const char *did = ek_ovirt_str(v, "ovirt_disk_id");
        if (!backup || !did) {
            ek_task_event(ctx, "WARNING", "disk '%s': no rollback copy; the replica is kept", id);
            continue;
        }
        /* the replica the failed deployment used goes; its copy takes its place */
        if ((err = ek_ovirt_disk_remove(c, ctx, did, "replica used by the failed deployment")))
            break;
        char *path = ek_ovirt_disk_serial_path(backup);
        json_object_object_add(v, "ovirt_disk_id", json_object_new_string(backup));
        json_object_object_add(v, "path", json_object_new_string(path));
        json_object_object_del(v, "backup_disk_id");
        free(path);
        ek_task_event(ctx, "INFO", "disk '%s': replica restored from its rollback copy (%s)", id,
                      json_object_get_string(json_object_object_get(v, "ovirt_disk_id")));
    }
    ek_ovirt_close(c);
    if (err) {
        json_object_put(vols);
        return err;
    }
    json_object_object_add(result, "volumes_info", vols);
    return NULL;
}
