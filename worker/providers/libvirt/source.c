/* source.c - the libvirt provider as a source: what a domain is (its XML
 * read by the common reader, worker/providers/common/domxml.c, disk sizes,
 * pools and volumes from libvirt), the export_info the destinations read
 * (the local provider's keys, plus its UUID as id, its state and the disks'
 * pools and volumes), and the source tasks other than the copy itself
 * (srcread.c). */
#include "worker/providers/libvirt/libvirt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/process.h"
#include "worker/providers/common/taskutil.h"

#define SHUTDOWN_TIMEOUT_S 300

/* ---- the domain ------------------------------------------------------------------- */

void ek_lv_domain_free(ek_lv_domain_t *d)
{
    ek_domxml_free(d);
}

ek_err_t *ek_lv_domain_parse(const char *xml, ek_lv_domain_t **out)
{
    ek_domxml_opts_t o = {.volumes = true, .reader = "Ekman's libvirt source"};
    ek_err_t *err = ek_domxml_parse(xml, strlen(xml), &o, out);
    for (size_t i = 0; !err && i < (*out)->n_disks; i++)
        if (!(*out)->disks[i].format)
            (*out)->disks[i].format = ek_xstrdup("raw");
    return err;
}

/* Size from libvirt (works for shut-off domains too: libvirtd probes the
 * image), and the pool and volume the disk is in, when it is in one. */
static ek_err_t *disk_details(virConnectPtr conn, virDomainPtr dom, ek_lv_disk_t *k,
                              const char *dom_name)
{
    if (!k->path) {
        virStoragePoolPtr p = virStoragePoolLookupByName(conn, k->pool);
        virStorageVolPtr v = p ? virStorageVolLookupByName(p, k->volume) : NULL;
        char *path = v ? virStorageVolGetPath(v) : NULL;
        if (v)
            virStorageVolFree(v);
        if (p)
            virStoragePoolFree(p);
        if (!path)
            return ek_lv_err(EK_E_NOTFOUND, "disk '%s' of domain '%s': volume '%s' of pool '%s'",
                             k->id, dom_name, k->volume, k->pool);
        k->path = ek_xstrdup(path);
        free(path);
    } else {
        virStorageVolPtr v = virStorageVolLookupByPath(conn, k->path);
        if (v) {
            virStoragePoolPtr p = virStoragePoolLookupByVolume(v);
            const char *vn = virStorageVolGetName(v);
            const char *pn = p ? virStoragePoolGetName(p) : NULL;
            k->volume = vn ? ek_xstrdup(vn) : NULL;
            k->pool = pn ? ek_xstrdup(pn) : NULL;
            if (p)
                virStoragePoolFree(p);
            virStorageVolFree(v);
        }
        virResetLastError();
    }
    virDomainBlockInfo bi;
    if (virDomainGetBlockInfo(dom, k->id, &bi, 0) == 0) {
        k->size = bi.capacity;
        return NULL;
    }
    /* A <disk type='volume'> of a shut-off domain: QEMU's driver resolves
     * the volume only when the domain starts ("missing storage backend for
     * 'volume' storage"); the pool knows its size. */
    ek_err_t *err = ek_lv_err(EK_E_IO, "disk '%s' of domain '%s' (\"%s\"): cannot get its size",
                              k->id, dom_name, k->path);
    virStoragePoolPtr p = k->pool ? virStoragePoolLookupByName(conn, k->pool) : NULL;
    virStorageVolPtr v = p && k->volume ? virStorageVolLookupByName(p, k->volume) : NULL;
    virStorageVolInfo vi;
    if (v && virStorageVolGetInfo(v, &vi) == 0) {
        k->size = vi.capacity;
        ek_err_free(err);
        err = NULL;
    }
    if (v)
        virStorageVolFree(v);
    if (p)
        virStoragePoolFree(p);
    virResetLastError();
    return err;
}

static virDomainPtr lookup(virConnectPtr conn, const char *name)
{
    virDomainPtr dom = virDomainLookupByName(conn, name);
    if (!dom && strlen(name) == 36)
        dom = virDomainLookupByUUIDString(conn, name);
    return dom;
}

ek_err_t *ek_lv_domain_load(ek_lv_conn_t *c, const char *name, ek_lv_domain_t **out)
{
    *out = NULL;
    virConnectPtr conn = ek_lv_virconn(c);
    virDomainPtr dom = lookup(conn, name);
    if (!dom)
        return ek_err_new(EK_E_NOTFOUND,
                          "no domain named '%s' on %s (virsh list --all shows "
                          "the domains)",
                          name, ek_lv_describe(c));
    ek_err_t *err = NULL;
    int state = 0, reason = 0;
    char *xml = NULL;
    if (virDomainGetState(dom, &state, &reason, 0) < 0)
        err = ek_lv_err(EK_E_IO, "domain '%s': cannot read its state", name);
    else if (!(xml = virDomainGetXMLDesc(dom, 0)))
        err = ek_lv_err(EK_E_IO, "domain '%s': cannot read its XML", name);
    ek_lv_domain_t *d = NULL;
    if (!err)
        err = ek_lv_domain_parse(xml, &d);
    free(xml);
    for (size_t i = 0; !err && i < d->n_disks; i++)
        err = disk_details(conn, dom, &d->disks[i], d->name);
    virDomainFree(dom);
    if (err) {
        ek_lv_domain_free(d);
        return err;
    }
    d->state = state;
    d->running = state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED ||
                 state == VIR_DOMAIN_BLOCKED || state == VIR_DOMAIN_PMSUSPENDED;
    *out = d;
    return NULL;
}

static const char *state_name(int s)
{
    switch (s) {
    case VIR_DOMAIN_RUNNING:
        return "running";
    case VIR_DOMAIN_BLOCKED:
        return "blocked";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutting down";
    case VIR_DOMAIN_SHUTOFF:
        return "shut off";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "suspended";
    default:
        return "unknown";
    }
}

json_object *ek_lv_domain_export_info(const ek_lv_domain_t *d)
{
    ek_domxml_export_opts_t o = {.id_is_uuid = true, .state_name = state_name(d->state)};
    return ek_domxml_export_info(d, &o);
}

/* ---- tasks ------------------------------------------------------------------------- */

ek_err_t *ek_lv_task_connect_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    ek_lv_conn_t **out)
{
    if (!in->origin)
        return ek_err_new(EK_E_INVALID, "the task has no source endpoint");
    return ek_lv_connect(in->origin, ctx ? ek_task_config(ctx) : NULL, out);
}

ek_err_t *ek_lv_source_env(json_object *env, bool *cbt)
{
    *cbt = true;
    if (!env || !json_object_is_type(env, json_type_object))
        return NULL;
    json_object_object_foreach(env, key, val)
    {
        if (strcmp(key, "changed_block_tracking") != 0)
            return ek_err_new(EK_E_INVALID,
                              "source_environment.%s: the libvirt source takes only "
                              "\"changed_block_tracking\" (true or false); remove '%s'",
                              key, key);
        if (!json_object_is_type(val, json_type_boolean))
            return ek_err_new(EK_E_INVALID,
                              "source_environment.changed_block_tracking must be true or false");
        *cbt = json_object_get_boolean(val);
    }
    return NULL;
}

static ek_err_t *environment_check(json_object *env)
{
    bool cbt;
    return ek_lv_source_env(env, &cbt);
}

/* Can the host's libvirt run pull-mode backups (domain capabilities)? */
static bool backup_supported(virConnectPtr conn)
{
    char *caps = virConnectGetDomainCapabilities(conn, NULL, NULL, NULL, NULL, 0);
    bool ok = caps && strstr(caps, "<backup supported='yes'/>");
    free(caps);
    virResetLastError();
    return ok;
}

ek_err_t *ek_lv_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result)
{
    ek_lv_conn_t *c = NULL;
    ek_lv_domain_t *d = NULL;
    (void)result;
    ek_err_t *err = environment_check(in->origin ? in->origin->environment : NULL);
    if (err || (err = ek_lv_task_connect_source(ctx, in, &c)) ||
        (err = ek_lv_domain_load(c, in->instance, &d)))
        goto out;
    if (d->n_disks == 0) {
        err = ek_err_new(EK_E_INVALID, "domain '%s' has no disk to transfer", d->name);
        goto out;
    }
    for (size_t i = 0; i < d->n_disks && !err; i++)
        if (!d->running && !d->disks[i].pool)
            err = ek_err_new(EK_E_INVALID,
                             "disk '%s' of the shut-off domain '%s' (\"%s\") is in no libvirt "
                             "storage pool, so it cannot be read through libvirt: define a pool "
                             "for its directory (virsh pool-define-as NAME dir --target DIR)",
                             d->disks[i].id, d->name, d->disks[i].path);
    if (!err && d->running && !backup_supported(ek_lv_virconn(c)))
        err = ek_err_new(EK_E_INVALID,
                         "domain '%s' is running and libvirt on %s cannot run backup jobs "
                         "(needs libvirt >= 7.2 with QEMU >= 6.0) to read it consistently: shut "
                         "the domain down (shutdown_instances) or upgrade the host",
                         d->name, ek_lv_describe(c));
    if (!err)
        ek_task_event(ctx, "INFO", "domain '%s' on %s: %s, %zu disk(s), %zu NIC(s)", d->name,
                      ek_lv_describe(c), state_name(d->state), d->n_disks, d->n_nics);
out:
    ek_lv_domain_free(d);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                       json_object *result)
{
    ek_lv_conn_t *c = NULL;
    ek_lv_domain_t *d = NULL;
    ek_err_t *err = ek_lv_task_connect_source(ctx, in, &c);
    if (err || (err = ek_lv_domain_load(c, in->instance, &d))) {
        ek_lv_disconnect(c);
        return err;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < d->n_disks; i++)
        total += d->disks[i].size;
    char sz[32];
    ek_task_event(ctx, "INFO",
                  "domain '%s': %s, %d vCPU(s), %llu MiB, %s firmware, %zu disk(s) of %s in all",
                  d->name, state_name(d->state), d->vcpus, (unsigned long long)d->memory_mb,
                  d->firmware, d->n_disks, ek_human_size(total, sz));
    json_object_object_add(result, "export_info", ek_lv_domain_export_info(d));
    ek_lv_domain_free(d);
    ek_lv_disconnect(c);
    return NULL;
}

/* ACPI shutdown, waited for; a guest that ignores it is powered off after
 * SHUTDOWN_TIMEOUT_S, with a warning (the transfer needs it stopped). */
static ek_err_t *shutdown_domain(ek_task_ctx_t *ctx, virDomainPtr dom, const char *name)
{
    if (virDomainShutdown(dom) < 0)
        ek_task_event(ctx, "WARNING", "domain '%s': ACPI shutdown refused (%s)", name,
                      virGetLastErrorMessage());
    for (int waited = 0; waited < SHUTDOWN_TIMEOUT_S * 1000; waited += 500) {
        int state, reason;
        if (virDomainGetState(dom, &state, &reason, 0) < 0)
            return ek_lv_err(EK_E_IO, "domain '%s': cannot read its state", name);
        if (state == VIR_DOMAIN_SHUTOFF)
            return NULL;
        if (ek_task_cancelled(ctx))
            return ek_err_new(EK_E_CANCELED, "cancelled while domain '%s' was shutting down", name);
        ek_sleep_ms(500);
    }
    ek_task_event(ctx, "WARNING", "domain '%s' did not shut down within %d s: powering it off",
                  name, SHUTDOWN_TIMEOUT_S);
    if (virDomainDestroy(dom) < 0)
        return ek_lv_err(EK_E_IO, "domain '%s': cannot power it off", name);
    return NULL;
}

ek_err_t *ek_lv_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                       json_object *result)
{
    ek_lv_conn_t *c = NULL;
    (void)result;
    ek_err_t *err = ek_lv_task_connect_source(ctx, in, &c);
    if (err)
        return err;
    virDomainPtr dom = lookup(ek_lv_virconn(c), in->instance);
    int state = 0, reason;
    if (!dom)
        err = ek_err_new(EK_E_NOTFOUND, "no domain named '%s' on %s", in->instance,
                         ek_lv_describe(c));
    else if (virDomainGetState(dom, &state, &reason, 0) < 0)
        err = ek_lv_err(EK_E_IO, "domain '%s': cannot read its state", in->instance);
    else if (state == VIR_DOMAIN_SHUTOFF)
        ek_task_event(ctx, "INFO", "domain '%s' is already shut off", in->instance);
    else if (!(err = shutdown_domain(ctx, dom, in->instance)))
        ek_task_event(ctx, "INFO", "domain '%s' is shut off", in->instance);
    if (dom)
        virDomainFree(dom);
    ek_lv_disconnect(c);
    return err;
}

/* Nothing runs on the source host for a transfer: the worker reads over
 * SSH. This checks the host is reachable and says how it will be read. */
ek_err_t *ek_lv_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result)
{
    ek_lv_conn_t *c = NULL;
    ek_lv_domain_t *d = NULL;
    ek_err_t *err = ek_lv_task_connect_source(ctx, in, &c);
    if (err || (err = ek_lv_domain_load(c, in->instance, &d))) {
        ek_lv_disconnect(c);
        return err;
    }
    ek_task_event(ctx, "INFO",
                  d->running ? "domain '%s' is running: its disks are read through a libvirt "
                               "backup job (pull mode), over SSH"
                             : "domain '%s' is shut off: its volumes are read through libvirt "
                               "(volume download)",
                  d->name);
    json_object *res = json_object_new_object();
    json_object_object_add(res, "kind", json_object_new_string("libvirt"));
    json_object_object_add(res, "host", json_object_new_string(ek_lv_host(c)));
    json_object *conn = json_object_new_object();
    json_object_object_add(conn, "kind", json_object_new_string("libvirt"));
    json_object_object_add(result, "source_resources", res);
    json_object_object_add(result, "source_resources_connection_info", conn);
    ek_lv_domain_free(d);
    ek_lv_disconnect(c);
    return NULL;
}

/* After a failed execution: what a replication left on the host (a backup
 * job, its files, a checkpoint of an unfinished sync) goes; the checkpoint
 * of the last completed sync stays for the next incremental. */
static ek_err_t *cleanup_leftovers(ek_task_ctx_t *ctx, const ek_task_input_t *in, bool all)
{
    ek_lv_conn_t *c = NULL;
    ek_err_t *err = ek_lv_task_connect_source(ctx, in, &c);
    if (err)
        return err;
    virDomainPtr dom = lookup(ek_lv_virconn(c), in->instance);
    if (!dom) {
        ek_task_event(ctx, "INFO", "domain '%s' is gone: nothing to clean up", in->instance);
        ek_lv_disconnect(c);
        return NULL;
    }
    _cleanup_free_ char *tag = ek_lv_checkpoint_tag(in);
    err = ek_lv_backup_cleanup(c, dom, tag, all, ctx);
    virDomainFree(dom);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result)
{
    json_object_object_add(result, "source_resources", json_object_new_object());
    json_object_object_add(result, "source_resources_connection_info", json_object_new_object());
    return cleanup_leftovers(ctx, in, false);
}

/* The transfer's replicas are going: the checkpoints that described them
 * go too, so that a later transfer starts with a full copy. */
ek_err_t *ek_lv_task_delete_source_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    (void)result;
    return cleanup_leftovers(ctx, in, true);
}

ek_err_t *ek_lv_task_update_source_transfer(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result)
{
    ek_lv_conn_t *c = NULL;
    (void)result;
    ek_err_t *err = environment_check(in->origin ? in->origin->environment : NULL);
    if (!err && !(err = ek_lv_task_connect_source(ctx, in, &c)))
        ek_lv_disconnect(c);
    return err;
}
