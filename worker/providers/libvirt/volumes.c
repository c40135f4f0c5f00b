/* volumes.c - the replica volumes of a libvirt destination and their
 * snapshots or clones.
 *
 * A replica is a sparse raw volume "ekman-<instance>-<disk>.img" in the
 * pool storage_mappings or default_storage_pool gives the disk (options.c).
 * DEPLOY_TRANSFER_DISKS creates the missing ones, grows the ones whose
 * source grew (virStorageVolResize), re-creates the ones that shrank and
 * deletes those whose disk left the source. volumes_info[i]:
 *   disk_id, pool, volume, volume_path (the file on the host), format,
 *   size_bytes, serial (what the worker VM sees), path ("serial:S": the
 *   writer's name for it) and, once synced, last_sync (replicate.h).
 * An entry without last_sync is a replica that holds nothing of an earlier
 * sync (new, re-created or grown): the source must read that disk whole.
 *
 * CREATE_TRANSFER_DISK_SNAPSHOTS copies each replica (virStorageVolCreateXMLFrom,
 * reflink where the file system shares extents) to "<replica>.clone.img"
 * (clone_disks: the deployed VM's disk) or "<replica>.snap.img" (the
 * replica's state, for a rollback). Only volumes named "ekman-..." are ever
 * deleted by name. */
#include "worker/providers/libvirt/libvirt.h"

#include <stdio.h>
#include <string.h>
#include <libvirt/virterror.h>
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/taskutil.h"

ek_err_t *ek_lv_pool_get(virConnectPtr c, const char *name, const char *what,
                         virStoragePoolPtr *out)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c, name);
    if (!p) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_STORAGE_POOL)
            return ek_err_new(EK_E_NOTFOUND,
                              "storage pool '%s' (%s) does not exist on the libvirt host: "
                              "create it or name another pool",
                              name, what);
        return ek_lv_err(EK_E_UNAVAILABLE, "could not look up storage pool '%s' (%s)", name, what);
    }
    if (virStoragePoolIsActive(p) != 1 && virStoragePoolCreate(p, 0) < 0) {
        ek_err_t *err = ek_lv_err(EK_E_CONFLICT,
                                  "storage pool '%s' (%s) is not active and "
                                  "could not be started",
                                  name, what);
        virStoragePoolFree(p);
        return err;
    }
    virStoragePoolRefresh(p, 0); /* volumes made outside libvirt; a failure is harmless */
    *out = p;
    return NULL;
}

ek_err_t *ek_lv_vol_find(virStoragePoolPtr pool, const char *name, virStorageVolPtr *out)
{
    *out = virStorageVolLookupByName(pool, name);
    if (*out)
        return NULL;
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_NO_STORAGE_VOL)
        return NULL;
    return ek_lv_err(EK_E_UNAVAILABLE, "could not look up volume '%s' of pool '%s'", name,
                     virStoragePoolGetName(pool));
}

ek_err_t *ek_lv_vol_delete(virConnectPtr c, const char *pool_name, const char *name)
{
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, pool_name);
    if (!pool)
        return NULL; /* the pool went: so did its volumes, as far as we can tell */
    virStoragePoolRefresh(pool, 0);
    virStorageVolPtr v;
    ek_err_t *err = ek_lv_vol_find(pool, name, &v);
    if (!err && v) {
        if (virStorageVolDelete(v, 0) < 0)
            err = ek_lv_err(EK_E_IO, "could not delete volume '%s' of pool '%s'", name, pool_name);
        virStorageVolFree(v);
    }
    virStoragePoolFree(pool);
    return err;
}

/* A sparse raw volume of `size` bytes. */
static ek_err_t *vol_create(virStoragePoolPtr pool, const char *name, uint64_t size)
{
    _cleanup_free_ char *qn = ek_lv_safe_name(name);
    _cleanup_free_ char *xml =
        ek_xasprintf("<volume><name>%s</name><capacity unit='bytes'>%llu</capacity>"
                     "<allocation unit='bytes'>0</allocation><target><format type='raw'/>"
                     "<permissions><mode>0600</mode></permissions></target></volume>",
                     qn, (unsigned long long)size);
    virStorageVolPtr v = virStorageVolCreateXML(pool, xml, 0);
    if (!v)
        return ek_lv_err(EK_E_IO, "could not create volume '%s' in pool '%s'", name,
                         virStoragePoolGetName(pool));
    virStorageVolFree(v);
    return NULL;
}

static char *replica_name(const char *instance, const char *disk_id)
{
    _cleanup_free_ char *i = ek_lv_safe_name(instance);
    _cleanup_free_ char *d = ek_lv_safe_name(disk_id);
    return ek_xasprintf("ekman-%s-%s.img", i, d);
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* The volumes_info entry of a replica (without last_sync). */
static json_object *entry_new(virStoragePoolPtr pool, const char *id, const char *name,
                              uint64_t size)
{
    char serial[21];
    const char *pn = virStoragePoolGetName(pool);
    ek_lv_volume_serial(pn, name, serial);
    json_object *v = json_object_new_object();
    json_object_object_add(v, "disk_id", json_object_new_string(id));
    json_object_object_add(v, "pool", json_object_new_string(pn));
    json_object_object_add(v, "volume", json_object_new_string(name));
    virStorageVolPtr vol = virStorageVolLookupByName(pool, name);
    char *path = vol ? virStorageVolGetPath(vol) : NULL;
    if (path)
        json_object_object_add(v, "volume_path", json_object_new_string(path));
    free(path);
    if (vol)
        virStorageVolFree(vol);
    json_object_object_add(v, "format", json_object_new_string("raw"));
    json_object_object_add(v, "size_bytes", json_object_new_int64((int64_t)size));
    json_object_object_add(v, "serial", json_object_new_string(serial));
    _cleanup_free_ char *p = ek_xasprintf("serial:%s", serial);
    json_object_object_add(v, "path", json_object_new_string(p));
    return v;
}

typedef struct deploy_run {
    ek_task_ctx_t *ctx;
    virConnectPtr c;
    json_object *created; /* ["pool/volume"] made by this task (rollback, state) */
} deploy_run_t;

static void note_created(deploy_run_t *r, const char *pool, const char *name)
{
    _cleanup_free_ char *s = ek_xasprintf("%s/%s", pool, name);
    json_object_array_add(r->created, json_object_new_string(s));
    json_object *st = json_object_new_object();
    json_object_object_add(st, "created", json_object_get(r->created));
    ek_task_save_state(r->ctx, st);
    json_object_put(st);
}

/* True when an earlier attempt of this task created pool/name. */
static bool created_before(const ek_task_input_t *in, const char *pool, const char *name)
{
    json_object *a;
    if (!in->state || !json_object_object_get_ex(in->state, "created", &a) ||
        !json_object_is_type(a, json_type_array))
        return false;
    _cleanup_free_ char *s = ek_xasprintf("%s/%s", pool, name);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        const char *x = json_object_get_string(json_object_array_get_idx(a, i));
        if (x && strcmp(x, s) == 0)
            return true;
    }
    return false;
}

/* Makes or adapts the replica of one disk; *entry is its volumes_info entry. */
static ek_err_t *deploy_one(deploy_run_t *r, const ek_task_input_t *in, virStoragePoolPtr pool,
                            const char *id, uint64_t size, json_object *prev, json_object **entry)
{
    const char *pn = virStoragePoolGetName(pool);
    _cleanup_free_ char *name = replica_name(in->instance, id);
    virStorageVolPtr v;
    virStorageVolInfo info;
    char a[32], b[32];
    ek_err_t *err = ek_lv_vol_find(pool, name, &v);
    if (err)
        return err;
    bool known = prev && str_of(prev, "pool") && strcmp(str_of(prev, "pool"), pn) == 0 &&
                 str_of(prev, "volume") && strcmp(str_of(prev, "volume"), name) == 0;
    if (v && virStorageVolGetInfo(v, &info) < 0)
        err = ek_lv_err(EK_E_IO, "could not read volume '%s' of pool '%s'", name, pn);
    if (!err && v && !known && !created_before(in, pn, name))
        err = ek_err_new(EK_E_CONFLICT,
                         "volume '%s' already exists in pool '%s' and is not this transfer's: "
                         "another transfer of '%s' uses it, or one left it behind; delete it "
                         "(virsh vol-delete --pool %s %s) or map the disk to another pool",
                         name, pn, in->instance, pn, name);
    if (err || (v && known && info.capacity == size)) {
        if (v)
            virStorageVolFree(v);
        if (!err && json_object_deep_copy(prev, entry, NULL) != 0)
            err = ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
        return err; /* the replica of the last execution, as it was */
    }
    if (v && known && info.capacity < size) {
        int rc = virStorageVolResize(v, size, 0);
        virStorageVolFree(v);
        if (rc < 0)
            return ek_lv_err(EK_E_IO,
                             "disk '%s': could not grow volume '%s' of pool '%s' to "
                             "%llu bytes",
                             id, name, pn, (unsigned long long)size);
        ek_task_event(r->ctx, "INFO",
                      "disk '%s' grew from %s to %s: volume '%s' grew too (the next sync reads "
                      "the disk whole)",
                      id, ek_human_size(info.capacity, a), ek_human_size(size, b), name);
        *entry = entry_new(pool, id, name, size);
        return NULL;
    }
    if (v) {
        if (known)
            ek_task_event(r->ctx, "WARNING",
                          "disk '%s' shrank from %s to %s: volume '%s' is re-created and the "
                          "next sync copies it whole",
                          id, ek_human_size(info.capacity, a), ek_human_size(size, b), name);
        int rc = virStorageVolDelete(v, 0);
        virStorageVolFree(v);
        if (rc < 0)
            return ek_lv_err(EK_E_IO, "could not delete volume '%s' of pool '%s'", name, pn);
    } else if (known) {
        ek_task_event(r->ctx, "WARNING",
                      "volume '%s' of disk '%s' was missing from pool '%s': it is re-created "
                      "and the next sync copies the disk whole",
                      name, id, pn);
    }
    if ((err = vol_create(pool, name, size)))
        return ek_err_prefix(err, "disk '%s'", id);
    note_created(r, pn, name);
    if (!known)
        ek_task_event(r->ctx, "INFO", "disk '%s': volume '%s' created in pool '%s' (%s, sparse)",
                      id, name, pn, ek_human_size(size, a));
    *entry = entry_new(pool, id, name, size);
    return NULL;
}

/* Removes the volume of a volumes_info entry (only Ekman's). */
static ek_err_t *entry_delete(virConnectPtr c, json_object *v, const char *suffix_key)
{
    const char *pool = str_of(v, "pool"), *name = str_of(v, suffix_key);
    if (!pool || !name || strncmp(name, "ekman-", 6) != 0 || strchr(name, '/'))
        return NULL;
    return ek_lv_vol_delete(c, pool, name);
}

static void rollback(deploy_run_t *r)
{
    for (size_t i = 0; i < json_object_array_length(r->created); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(r->created, i));
        const char *slash = strchr(s, '/');
        _cleanup_free_ char *pool = ek_xstrndup(s, (size_t)(slash - s));
        ek_err_t *e = ek_lv_vol_delete(r->c, pool, slash + 1);
        ek_err_free(e);
    }
}

static ek_err_t *deploy_all(deploy_run_t *r, const ek_task_input_t *in, const ek_lv_opts_t *o,
                            json_object *disks, json_object *prev, json_object *vols)
{
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i), *entry = NULL;
        const char *id, *pool_name;
        int64_t size;
        virStoragePoolPtr pool;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &id)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)) ||
            (err = ek_lv_disk_pool(o, in->destination->storage_mappings, d, &pool_name)))
            break;
        if (size <= 0) {
            err = ek_err_new(EK_E_INVALID, "disk '%s' has no size in export_info", id);
            break;
        }
        _cleanup_free_ char *what = ek_xasprintf("the pool of disk '%s'", id);
        if ((err = ek_lv_pool_get(r->c, pool_name, what, &pool)))
            break;
        err = deploy_one(r, in, pool, id, (uint64_t)size, prev ? ek_volumes_find(prev, id) : NULL,
                         &entry);
        virStoragePoolFree(pool);
        if (!err)
            json_object_array_add(vols, entry);
        if (!err && ek_task_cancelled(r->ctx))
            err = ek_err_new(EK_E_CANCELED, "cancelled while creating the replica volumes");
    }
    return err;
}

ek_err_t *ek_lv_task_deploy_transfer_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result)
{
    json_object *export_info, *disks, *prev = NULL, *v;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    if (in->task_info && json_object_object_get_ex(in->task_info, "volumes_info", &v) &&
        json_object_is_type(v, json_type_array))
        prev = v;
    deploy_run_t r = {ctx, ek_lv_virconn(c), json_object_new_array()};
    json_object *vols = json_object_new_array();
    err = deploy_all(&r, in, &o, disks, prev, vols);
    /* Disks that left the source, or whose volume moved to another pool. */
    for (size_t i = 0; prev && !err && i < json_object_array_length(prev); i++) {
        json_object *p = json_object_array_get_idx(prev, i), *now;
        const char *id = str_of(p, "disk_id");
        now = id ? ek_volumes_find(vols, id) : NULL;
        if (now && strcmp(str_of(now, "pool"), str_of(p, "pool") ? str_of(p, "pool") : "") == 0)
            continue;
        if (!(err = entry_delete(r.c, p, "volume")))
            ek_task_event(ctx, "INFO", "volume '%s' of pool '%s' (disk '%s') was deleted: %s",
                          str_of(p, "volume"), str_of(p, "pool"), id ? id : "?",
                          now ? "the disk is mapped to another pool now"
                              : "the disk is no longer on the source");
    }
    if (err) {
        rollback(&r);
        json_object_put(vols);
    } else {
        json_object_object_add(result, "volumes_info", vols);
    }
    json_object_put(r.created);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_delete_transfer_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result)
{
    json_object *vols;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    size_t removed = 0;
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        if (!(err = entry_delete(ek_lv_virconn(c), v, "volume")) &&
            !(err = entry_delete(ek_lv_virconn(c), v, "snapshot_volume")))
            removed++;
    }
    if (!err) {
        ek_task_event(ctx, "INFO", "deleted the replica volumes of %zu disk(s) of '%s'", removed,
                      in->instance);
        json_object_object_add(result, "volumes_info", json_object_new_array());
    }
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

/* ---- snapshots and clones ----------------------------------------------------------- */

/* A full copy of pool/volume named `name` in the same pool. */
static ek_err_t *vol_copy(ek_task_ctx_t *ctx, virConnectPtr c, const char *pool_name,
                          const char *volume, const char *name)
{
    virStoragePoolPtr pool;
    virStorageVolPtr src = NULL, copy = NULL;
    ek_err_t *err = ek_lv_pool_get(c, pool_name, "replica pool", &pool);
    if (err)
        return err;
    if (!(err = ek_lv_vol_find(pool, volume, &src)) && !src)
        err = ek_err_new(EK_E_NOTFOUND,
                         "volume '%s' is missing from pool '%s': execute the transfer again",
                         volume, pool_name);
    if (!err && !(err = ek_lv_vol_find(pool, name, &copy)) && copy) {
        ek_task_event(ctx, "WARNING", "replacing volume '%s', left by an earlier deployment", name);
        if (virStorageVolDelete(copy, 0) < 0)
            err = ek_lv_err(EK_E_IO, "could not delete volume '%s'", name);
        virStorageVolFree(copy);
        copy = NULL;
    }
    if (!err) {
        _cleanup_free_ char *xml =
            ek_xasprintf("<volume><name>%s</name><capacity unit='bytes'>0</capacity>"
                         "<target><format type='raw'/></target></volume>",
                         name);
        copy = virStorageVolCreateXMLFrom(pool, xml, src, VIR_STORAGE_VOL_CREATE_REFLINK);
        if (!copy) /* no shared extents on this file system: a plain copy */
            copy = virStorageVolCreateXMLFrom(pool, xml, src, 0);
        if (!copy)
            err = ek_lv_err(EK_E_IO, "could not copy volume '%s' to '%s' in pool '%s'", volume,
                            name, pool_name);
    }
    if (copy)
        virStorageVolFree(copy);
    if (src)
        virStorageVolFree(src);
    virStoragePoolFree(pool);
    return err;
}

static ek_err_t *volumes_copy(const ek_task_input_t *in, json_object **out)
{
    json_object *vols;
    ek_err_t *err = ek_task_info_get(in, "volumes_info", json_type_array, &vols);
    if (err)
        return err;
    *out = NULL;
    if (json_object_deep_copy(vols, out, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    return NULL;
}

static ek_err_t *snapshot_all(ek_task_ctx_t *ctx, virConnectPtr c, json_object *vols, bool clone)
{
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = str_of(v, "disk_id"), *pool = str_of(v, "pool"),
                   *vol = str_of(v, "volume");
        if (!id || !pool || !vol || strncmp(vol, "ekman-", 6) != 0) {
            err = ek_err_new(EK_E_INVALID, "volumes_info[%zu] names no replica volume", i);
            break;
        }
        size_t base = strlen(vol) > 4 && strcmp(vol + strlen(vol) - 4, ".img") == 0
                          ? strlen(vol) - 4
                          : strlen(vol);
        _cleanup_free_ char *name =
            ek_xasprintf("%.*s.%s.img", (int)base, vol, clone ? "clone" : "snap");
        int step = ek_task_step(ctx, 1, "%s disk %s", clone ? "Cloning" : "Snapshotting", id);
        if ((err = vol_copy(ctx, c, pool, vol, name))) {
            err = ek_err_prefix(err, "disk '%s'", id);
            break;
        }
        ek_task_step_update(ctx, step, 1);
        ek_task_event(ctx, "INFO", "disk '%s': %s '%s' in pool '%s'", id,
                      clone ? "clone" : "snapshot", name, pool);
        json_object_object_add(v, "snapshot_volume", json_object_new_string(name));
        json_object_object_add(v, "snapshot_kind",
                               json_object_new_string(clone ? "clone" : "snapshot"));
    }
    return err;
}

ek_err_t *ek_lv_task_create_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result)
{
    json_object *vols;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    bool clone = in->clone_disks;
    ek_err_t *err;
    if (in->params && json_object_is_type(in->params, json_type_object) &&
        (err = ek_json_opt_bool(in->params, "params", "clone_disks", clone, &clone)))
        return err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = ek_lv_task_connect_destination(ctx, in, &c, &o))) {
        json_object_put(vols);
        return err;
    }
    if ((err = snapshot_all(ctx, ek_lv_virconn(c), vols, clone))) {
        /* a half-made set is of no use to anyone */
        for (size_t i = 0; i < json_object_array_length(vols); i++)
            ek_err_free(entry_delete(ek_lv_virconn(c), json_object_array_get_idx(vols, i),
                                     "snapshot_volume"));
        json_object_put(vols);
    } else {
        json_object_object_add(result, "volumes_info", vols);
    }
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

/* True when v's clone is a disk of the deployed domain (a deployment that
 * succeeded keeps its disks). */
static bool clone_in_use(virConnectPtr c, const ek_task_input_t *in, json_object *v)
{
    json_object *info;
    const char *kind = str_of(v, "snapshot_kind"), *snap = str_of(v, "snapshot_volume");
    if (!kind || strcmp(kind, "clone") != 0 || !snap || !in->task_info ||
        !json_object_object_get_ex(in->task_info, "instance_deployment_info", &info))
        return false;
    const char *dom_name = str_of(info, "domain_name");
    virDomainPtr d = dom_name ? virDomainLookupByName(c, dom_name) : NULL;
    if (!d)
        return false;
    char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    virDomainFree(d);
    _cleanup_free_ char *needle = ek_xasprintf("/%s'", snap);
    bool used = xml && strstr(xml, needle);
    free(xml);
    return used;
}

/* DELETE (drop) or RESTORE (rename over the replica: the copy is the
 * replica's state when the deployment began) the snapshots. */
static ek_err_t *snapshots_end(ek_task_ctx_t *ctx, const ek_task_input_t *in, json_object *result,
                               bool restore)
{
    json_object *vols;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if ((err = volumes_copy(in, &vols)))
        return err;
    if ((err = ek_lv_task_connect_destination(ctx, in, &c, &o))) {
        json_object_put(vols);
        return err;
    }
    virConnectPtr vc = ek_lv_virconn(c);
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *snap = str_of(v, "snapshot_volume");
        if (!snap)
            continue;
        if (restore &&
            strcmp(str_of(v, "snapshot_kind") ? str_of(v, "snapshot_kind") : "", "snapshot") == 0) {
            /* The replica may be the deployed VM's disk, which the cleanup
             * already removed: copy the snapshot back under its name. */
            const char *pool = str_of(v, "pool"), *vol = str_of(v, "volume");
            if (pool && vol && !(err = ek_lv_vol_delete(vc, pool, vol)) &&
                !(err = vol_copy(ctx, vc, pool, snap, vol)))
                ek_task_event(ctx, "INFO", "disk '%s': replica restored from its snapshot",
                              str_of(v, "disk_id"));
        }
        if (!err && !restore && clone_in_use(vc, in, v)) {
            ek_task_event(ctx, "INFO", "disk '%s': clone '%s' is the deployed VM's disk: kept",
                          str_of(v, "disk_id"), snap);
            json_object_object_del(v, "snapshot_volume");
            json_object_object_del(v, "snapshot_kind");
            continue;
        }
        if (!err && !(err = entry_delete(vc, v, "snapshot_volume"))) {
            json_object_object_del(v, "snapshot_volume");
            json_object_object_del(v, "snapshot_kind");
        }
    }
    if (err)
        json_object_put(vols);
    else
        json_object_object_add(result, "volumes_info", vols);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_delete_target_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    return snapshots_end(ctx, in, result, false);
}

ek_err_t *ek_lv_task_restore_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result)
{
    return snapshots_end(ctx, in, result, true);
}

/* A destination pool with less than this free is full: a copy into it fails
 * (a worker VM sees the host's ENOSPC as an I/O error of its disk). */
#define POOL_FULL_BYTES (UINT64_C(64) << 20)

ek_err_t *ek_lv_diagnose_copy_error(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_err_t *err)
{
    json_object *vols = NULL;
    ek_err_t *e = ek_task_info_get(in, "volumes_info", json_type_array, &vols);
    if (e) {
        ek_err_free(e);
        return err;
    }
    ek_lv_conn_t *c = NULL;
    ek_lv_opts_t o;
    if ((e = ek_lv_task_connect_destination(ctx, in, &c, &o))) {
        ek_err_free(e); /* the copy's error says more than this one */
        return err;
    }
    virConnectPtr vc = ek_lv_virconn(c);
    for (size_t i = 0; i < json_object_array_length(vols); i++) {
        const char *pn = str_of(json_object_array_get_idx(vols, i), "pool");
        bool seen = false;
        for (size_t k = 0; k < i && pn && !seen; k++) {
            const char *prev = str_of(json_object_array_get_idx(vols, k), "pool");
            seen = prev && strcmp(prev, pn) == 0;
        }
        virStoragePoolPtr pool = pn && !seen ? virStoragePoolLookupByName(vc, pn) : NULL;
        virStoragePoolInfo pi;
        if (pool && virStoragePoolRefresh(pool, 0) == 0 && virStoragePoolGetInfo(pool, &pi) == 0 &&
            pi.available < POOL_FULL_BYTES) {
            char free_s[32], cap_s[32];
            ek_err_t *full = ek_err_new(
                EK_E_IO,
                "the destination storage pool '%s' is full (%s free of %s): free space in it, or "
                "set default_storage_pool (or storage_mappings) to another pool, then execute "
                "the transfer again; the copy's error: %s",
                pn, ek_human_size(pi.available, free_s), ek_human_size(pi.capacity, cap_s),
                err->message);
            ek_err_free(err);
            err = full;
            virStoragePoolFree(pool);
            break;
        }
        if (pool)
            virStoragePoolFree(pool);
    }
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}
