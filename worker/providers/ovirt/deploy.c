/* deploy.c - deploying a replica on oVirt.
 *
 * DEPLOY_INSTANCE_RESOURCES creates the VM, down: from the blank template
 * (default_migr_blank_template) in default_cluster, with the source's CPUs
 * and memory, default_os_release, default_optimized_for (default_vm_pool
 * is refused by validation: the engine puts no existing VM in a pool),
 * its disks (the copies CREATE_TRANSFER_DISK_SNAPSHOTS made with
 * clone_disks, else the replicas) and its NICs on the vNIC profiles of
 * network_map. The OS-morphing worker borrows the disks
 * (DEPLOY/DELETE_OS_MORPHING_RESOURCES detach them from the VM and give them
 * back). FINALIZE_INSTANCE_DEPLOYMENT sets default_delete_protected and
 * starts the VM unless default_leave_migrated_vms_off.
 * CLEANUP_FAILED_INSTANCE_DEPLOYMENT deletes the VM, keeping the replicas
 * (the rollback restores them) and deleting the copies.
 *
 * OS_MORPHING runs ekman-morph on that worker VM over SSH
 * (providers/common/morph.h); a morphed guest's disks and NICs are virtio. */
#include "worker/providers/ovirt/ovirt.h"
#include "worker/providers/common/morph.h"

#include <stdio.h>
#include <string.h>
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

static json_object *ref_id(const char *id)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", json_object_new_string(id));
    return r;
}

static json_object *str_int(int64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", (long long)v);
    return json_object_new_string(b);
}

/* oVirt disk interface for a source bus. */
static const char *disk_iface(const char *bus)
{
    if (!bus || strcmp(bus, "virtio") == 0)
        return "virtio";
    if (strcmp(bus, "sata") == 0 || strcmp(bus, "ide") == 0)
        return "sata";
    return "virtio_scsi";
}

static const char *nic_iface(const char *model)
{
    if (model && (strcmp(model, "e1000") == 0 || strcmp(model, "rtl8139") == 0))
        return model;
    return "virtio";
}

/* The VM body from export_info and the options. */
static json_object *vm_body(ek_task_ctx_t *ctx, const ek_task_input_t *in, json_object *export_info,
                            const char *name, const char *cluster_id, const char *tpl_id)
{
    const ek_endpoint_t *ep = in->destination;
    int64_t cpus = 1, mem_mb = 1024;
    ek_ovirt_int(export_info, "num_cpu", &cpus);
    ek_ovirt_int(export_info, "memory_mb", &mem_mb);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "name", json_object_new_string(name));
    json_object_object_add(b, "description", json_object_new_string("Migrated by Ekman"));
    json_object_object_add(b, "cluster", ref_id(cluster_id));
    json_object_object_add(b, "template", ref_id(tpl_id));
    json_object_object_add(b, "memory", str_int(mem_mb * 1048576));
    json_object *mp = json_object_new_object();
    json_object_object_add(mp, "guaranteed", str_int(mem_mb * 1048576));
    json_object_object_add(mp, "max", str_int(mem_mb * 1048576));
    json_object_object_add(b, "memory_policy", mp);
    json_object *topo = json_object_new_object(), *cpu = json_object_new_object();
    int64_t sockets, cores;
    ek_ovirt_cpu_topology(cpus, &sockets, &cores);
    json_object_object_add(topo, "sockets", str_int(sockets));
    json_object_object_add(topo, "cores", str_int(cores));
    json_object_object_add(topo, "threads", json_object_new_string("1"));
    json_object_object_add(cpu, "topology", topo);
    json_object_object_add(b, "cpu", cpu);
    json_object *os = json_object_new_object(), *boot = json_object_new_object();
    json_object *devs = json_object_new_object(), *dl = json_object_new_array();
    json_object_array_add(dl, json_object_new_string("hd"));
    json_object_object_add(devs, "device", dl);
    json_object_object_add(boot, "devices", devs);
    json_object_object_add(os, "type",
                           json_object_new_string(ek_ovirt_opt_str(ctx, ep, "default_os_release")));
    json_object_object_add(os, "boot", boot);
    json_object_object_add(b, "os", os);
    json_object_object_add(
        b, "type", json_object_new_string(ek_ovirt_opt_str(ctx, ep, "default_optimized_for")));
    json_object_object_add(b, "delete_protected", json_object_new_string("false"));
    const char *fw = ek_ovirt_str(export_info, "firmware");
    if (fw && strcmp(fw, "efi") == 0) {
        json_object *bios = json_object_new_object();
        json_object_object_add(bios, "type", json_object_new_string("q35_ovmf"));
        json_object_object_add(b, "bios", bios);
    }
    return b;
}

/* The disk the deployed VM gets for a source disk. */
static ek_err_t *deploy_disk_id(json_object *vols, const char *src_id, bool clone, const char **out)
{
    json_object *v = ek_ovirt_volume_find(vols, src_id);
    if (!v)
        return ek_err_new(EK_E_CONFLICT, "disk '%s' has no replica in volumes_info", src_id);
    *out = ek_ovirt_str(v, clone ? "clone_disk_id" : "ovirt_disk_id");
    if (!*out)
        return ek_err_new(EK_E_CONFLICT,
                          "disk '%s' has no %s: CREATE_TRANSFER_DISK_SNAPSHOTS must run first",
                          src_id, clone ? "deployment copy" : "replica");
    return NULL;
}

/* Attaches the disks (the first of boot_order, else the first, bootable). */
static ek_err_t *attach_disks(ek_ovirt_t *c, const ek_task_input_t *in, json_object *export_info,
                              const char *vm_id, const char *name, bool clone, json_object *out)
{
    json_object *disks, *vols, *bo;
    ek_err_t *err;
    if ((err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_ovirt_info_get(in, "volumes_info", json_type_array, &vols)))
        return err;
    const char *boot = NULL;
    if (json_object_object_get_ex(export_info, "boot_order", &bo) &&
        json_object_is_type(bo, json_type_array) && json_object_array_length(bo) > 0)
        boot = json_object_get_string(json_object_array_get_idx(bo, 0));
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *id = ek_ovirt_str(d, "id"), *did;
        if (!id || (err = deploy_disk_id(vols, id, clone, &did)))
            return err ? err : ek_err_new(EK_E_INVALID, "export_info.disks[%zu] has no id", i);
        bool bootable = boot ? strcmp(boot, id) == 0 : i == 0;
        /* a morphed guest has the virtio drivers */
        const char *iface = disk_iface(in->skip_os_morphing ? ek_ovirt_str(d, "bus") : "virtio");
        if ((err = ek_ovirt_vm_attach(c, vm_id, name, did, iface, bootable)))
            return err;
        json_object *x = json_object_new_object();
        json_object_object_add(x, "disk_id", json_object_new_string(id));
        json_object_object_add(x, "ovirt_disk_id", json_object_new_string(did));
        json_object_object_add(x, "interface", json_object_new_string(iface));
        json_object_object_add(x, "bootable", json_object_new_boolean(bootable));
        json_object_array_add(out, x);
    }
    return NULL;
}

static ek_err_t *add_nics(ek_ovirt_t *c, const ek_task_input_t *in, json_object *export_info,
                          json_object *cluster, const char *vm_id, const char *name,
                          json_object *out)
{
    json_object *nics;
    if (!json_object_object_get_ex(export_info, "nics", &nics) ||
        !json_object_is_type(nics, json_type_array))
        return NULL;
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(nics) && !err; i++) {
        json_object *n = json_object_array_get_idx(nics, i), *mapped = NULL, *prof;
        const char *net = ek_ovirt_str(n, "network_name"), *mac = ek_ovirt_str(n, "mac");
        if (net && in->destination->network_map)
            json_object_object_get_ex(in->destination->network_map, net, &mapped);
        if ((err = ek_ovirt_vnic_profile(c, cluster, mapped, net ? net : "(none)", &prof)))
            break;
        char nic_name[32];
        snprintf(nic_name, sizeof(nic_name), "nic%zu", i + 1);
        json_object *b = json_object_new_object();
        json_object_object_add(b, "name", json_object_new_string(nic_name));
        json_object_object_add(b, "interface",
                               json_object_new_string(nic_iface(
                                   in->skip_os_morphing ? ek_ovirt_str(n, "model") : NULL)));
        json_object_object_add(b, "vnic_profile", ref_id(ek_ovirt_str(prof, "id")));
        if (mac) {
            json_object *m = json_object_new_object();
            json_object_object_add(m, "address", json_object_new_string(mac));
            json_object_object_add(b, "mac", m);
        }
        _cleanup_free_ char *path = ek_xasprintf("/vms/%s/nics", vm_id);
        _cleanup_free_ char *what =
            ek_xasprintf("adding NIC %s (network '%s' -> vNIC profile '%s') "
                         "to VM '%s'",
                         nic_name, net ? net : "-", ek_ovirt_str(prof, "name"), name);
        err = ek_ovirt_call(c, "POST", path, b, what, NULL);
        json_object_put(b);
        if (err && mac && err->code == EK_E_CONFLICT && strstr(err->message, "MAC address")) {
            err = ek_err_prefix(err,
                                "the source's MAC %s is kept (the guest's network configuration "
                                "may name it), and another VM on the engine has it: the MAC pool "
                                "of cluster '%s' allows no duplicates; remove or change that "
                                "VM's NIC, then deploy again",
                                mac, ek_ovirt_str(cluster, "name"));
        }
        if (!err) {
            json_object *x = json_object_new_object();
            json_object_object_add(x, "name", json_object_new_string(nic_name));
            json_object_object_add(x, "network", json_object_new_string(net ? net : ""));
            json_object_object_add(x, "vnic_profile_id",
                                   json_object_new_string(ek_ovirt_str(prof, "id")));
            json_object_array_add(out, x);
        }
        json_object_put(prof);
    }
    return err;
}

/* Cluster and template of the VM to deploy. */
typedef struct targets {
    json_object *cluster, *tpl;
} targets_t;

static void targets_release(targets_t *t)
{
    json_object_put(t->cluster);
    json_object_put(t->tpl);
}

static ek_err_t *targets_get(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                             targets_t *t)
{
    const ek_endpoint_t *ep = in->destination;
    memset(t, 0, sizeof(*t));
    ek_err_t *err;
    if ((err =
             ek_ovirt_cluster(c, ek_ovirt_main_cluster(ctx, ep), "default_cluster", &t->cluster)) ||
        (err = ek_ovirt_template(c, ek_ovirt_opt_str(ctx, ep, "default_migr_blank_template"),
                                 "default_migr_blank_template", &t->tpl)))
        targets_release(t);
    return err;
}

/* An existing VM called name is an error (names identify instances). */
static ek_err_t *no_vm_named(ek_ovirt_t *c, const char *name)
{
    json_object *vm;
    ek_err_t *err = ek_ovirt_find(c, "vms", "vm", name, &vm);
    if (err || !vm)
        return err;
    err = ek_err_new(EK_E_CONFLICT,
                     "a VM called '%s' (%s) already exists on oVirt endpoint '%s': remove or "
                     "rename it to deploy this instance",
                     name, ek_ovirt_str(vm, "id"), ek_ovirt_name(c));
    json_object_put(vm);
    return err;
}

ek_err_t *ek_ovirt_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                   json_object *result)
{
    json_object *export_info, *disks, *vols;
    ek_ovirt_t *c;
    targets_t t;
    ek_err_t *err;
    (void)result;
    if ((err = ek_ovirt_env_check(in->destination)) ||
        (err = ek_ovirt_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_ovirt_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)))
        return err;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        const char *id = ek_ovirt_str(json_object_array_get_idx(disks, i), "id");
        json_object *v = id ? ek_ovirt_volume_find(vols, id) : NULL;
        if (!v || !ek_ovirt_str(v, "ovirt_disk_id"))
            return ek_err_new(EK_E_CONFLICT,
                              "disk '%s' of '%s' has no replica on oVirt: execute the transfer "
                              "(it must complete once) before deploying",
                              id ? id : "?", in->instance);
    }
    if ((err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    _cleanup_free_ char *name = ek_ovirt_vm_name(NULL, in->instance, NULL);
    if (!(err = no_vm_named(c, name)) && !(err = targets_get(c, ctx, in, &t))) {
        json_object *nics, *prof;
        if (json_object_object_get_ex(export_info, "nics", &nics))
            for (size_t i = 0; i < json_object_array_length(nics) && !err; i++) {
                json_object *mapped = NULL;
                const char *net = ek_ovirt_str(json_object_array_get_idx(nics, i), "network_name");
                if (net && in->destination->network_map)
                    json_object_object_get_ex(in->destination->network_map, net, &mapped);
                if (!(err =
                          ek_ovirt_vnic_profile(c, t.cluster, mapped, net ? net : "(none)", &prof)))
                    json_object_put(prof);
            }
        targets_release(&t);
    }
    ek_ovirt_close(c);
    const char *os = ek_ovirt_str(export_info, "os_type");
    if (!err && os && strcmp(os, "windows") == 0 && !in->skip_os_morphing)
        err = ek_ovirt_virtio_zip_check(
            ctx, ek_ovirt_opt_str(ctx, in->destination, "windows_virtio_zip_url"),
            ek_ovirt_opt_str(ctx, in->destination, "windows_virtio_zip_sha256"),
            ek_config_get_string(ek_task_config(ctx), "worker", "tmp_dir"));
    if (!err)
        ek_task_event(ctx, "INFO", "'%s' will be deployed as VM '%s'", in->instance, name);
    return err;
}

/* Creates the VM, its disks and NICs; info collects what was made. */
static ek_err_t *build_vm(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                          json_object *export_info, bool clone, json_object *info)
{
    targets_t t;
    ek_err_t *err = targets_get(c, ctx, in, &t);
    if (err)
        return err;
    _cleanup_free_ char *name = ek_ovirt_vm_name(NULL, in->instance, NULL);
    json_object *body = vm_body(ctx, in, export_info, name, ek_ovirt_str(t.cluster, "id"),
                                ek_ovirt_str(t.tpl, "id"));
    json_object *vm = NULL;
    err = ek_ovirt_vm_create(c, ctx, body, NULL, &vm);
    json_object_put(body);
    const char *vm_id = vm ? ek_ovirt_str(vm, "id") : NULL;
    if (vm_id) {
        json_object_object_add(info, "vm_id", json_object_new_string(vm_id));
        ek_task_save_state(ctx, info);
    }
    json_object_object_add(info, "vm_name", json_object_new_string(name));
    json_object_object_add(info, "cluster_id",
                           json_object_new_string(ek_ovirt_str(t.cluster, "id")));
    json_object *disks = json_object_new_array(), *nics = json_object_new_array();
    json_object_object_add(info, "disks", disks);
    json_object_object_add(info, "nics", nics);
    if (!err)
        err = attach_disks(c, in, export_info, vm_id, name, clone, disks);
    if (!err)
        err = add_nics(c, in, export_info, t.cluster, vm_id, name, nics);
    json_object_put(vm);
    targets_release(&t);
    return err;
}

/* Every disk attached to VM vm_id (the VM comes from a blank template:
 * none is its own), added to ids. A VM already gone has none. */
static ek_err_t *attached_disks(ek_ovirt_t *c, const char *vm_id, json_object *ids)
{
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s/diskattachments", vm_id);
    json_object *o;
    ek_err_t *err = ek_ovirt_get_opt(c, path, "listing the VM's disks", &o);
    json_object *a = err ? NULL : ek_ovirt_list(o, "disk_attachment");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *att = json_object_array_get_idx(a, i);
        const char *d = ek_ovirt_ref(att, "disk", "id");
        if (!d)
            d = ek_ovirt_str(att, "id"); /* the attachment id is the disk id */
        if (d)
            json_object_array_add(ids, json_object_new_string(d));
    }
    json_object_put(o);
    return err;
}

/* Removes the VM of info, keeping every disk attached to it (a killed
 * attempt may have attached some it did not record) except the copies made
 * for it with clone_disks, which go too. */
static ek_err_t *remove_vm(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *info)
{
    const char *vm_id = ek_ovirt_str(info, "vm_id"), *name = ek_ovirt_str(info, "vm_name");
    bool clone = ek_ovirt_bool(info, "clone_disks", true);
    json_object *disks = NULL, *ids = json_object_new_array(), *keep = json_object_new_array();
    json_object_object_get_ex(info, "disks", &disks);
    for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
        const char *d = ek_ovirt_str(json_object_array_get_idx(disks, i), "ovirt_disk_id");
        if (d) {
            json_object_array_add(ids, json_object_new_string(d));
            json_object_array_add(keep, json_object_new_string(d));
        }
    }
    ek_err_t *err = vm_id ? attached_disks(c, vm_id, keep) : NULL;
    if (!err && vm_id)
        err = ek_ovirt_vm_remove(c, ctx, vm_id, name ? name : vm_id, keep);
    json_object_put(keep);
    for (size_t i = 0; clone && !err && i < json_object_array_length(ids); i++)
        err = ek_ovirt_disk_remove(
            c, ctx, json_object_get_string(json_object_array_get_idx(ids, i)), "deployment copy");
    json_object_put(ids);
    return err;
}

ek_err_t *ek_ovirt_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    json_object *export_info;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    if (in->state && ek_ovirt_str(in->state, "vm_id")) {
        /* an earlier attempt of this task was killed: its VM goes first */
        ek_err_t *e2 = remove_vm(c, ctx, in->state);
        if (e2)
            ek_task_event(ctx, "WARNING", "the VM of an earlier attempt: %s", e2->message);
        ek_err_free(e2);
    }
    bool clone = in->clone_disks;
    json_object *info = json_object_new_object();
    json_object_object_add(info, "instance_name", json_object_new_string(in->instance));
    json_object_object_add(info, "clone_disks", json_object_new_boolean(clone));
    _cleanup_free_ char *name = ek_ovirt_vm_name(NULL, in->instance, NULL);
    if (!(err = no_vm_named(c, name)))
        err = build_vm(c, ctx, in, export_info, clone, info);
    if (err) {
        json_object_object_add(info, "clone_disks",
                               json_object_new_boolean(false)); /* keep disks */
        ek_ovirt_set_cancellable(c, false);
        ek_err_t *e2 = remove_vm(c, ctx, info);
        if (e2) {
            ek_task_event(ctx, "ERROR", "could not remove the half-made VM '%s': %s", name,
                          e2->message);
            ek_err_free(e2);
        }
        json_object_put(info);
    } else {
        ek_task_event(ctx, "INFO", "VM '%s' (%s) created with %zu disk(s) (%s), down", name,
                      ek_ovirt_str(info, "vm_id"),
                      json_object_array_length(json_object_object_get(info, "disks")),
                      clone ? "copies; the replicas stay the transfer's" : "the replicas");
        json_object_object_add(result, "instance_deployment_info", info);
    }
    ek_ovirt_close(c);
    return err;
}

/* ---- OS morphing ------------------------------------------------------------------------ */

static json_object *disk_ids_of(json_object *info)
{
    json_object *disks = NULL, *ids = json_object_new_array();
    json_object_object_get_ex(info, "disks", &disks);
    for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
        const char *d = ek_ovirt_str(json_object_array_get_idx(disks, i), "ovirt_disk_id");
        if (d)
            json_object_array_add(ids, json_object_new_string(d));
    }
    return ids;
}

ek_err_t *ek_ovirt_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result)
{
    json_object *info, *export_info;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "instance_deployment_info", json_type_object, &info)) ||
        (err = ek_ovirt_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    const char *os = ek_ovirt_str(export_info, "os_type");
    const char *vm_id = ek_ovirt_str(info, "vm_id"), *name = ek_ovirt_str(info, "vm_name");
    json_object *ids = disk_ids_of(info), *res = NULL, *conn = NULL;
    char *ip = NULL;
    /* the disks go to the worker: the VM lends them (it is down) */
    for (size_t i = 0; i < json_object_array_length(ids) && !err; i++) {
        const char *d = json_object_get_string(json_object_array_get_idx(ids, i));
        _cleanup_free_ char *path =
            ek_xasprintf("/vms/%s/diskattachments/%s?detach_only=true", vm_id, d);
        _cleanup_free_ char *what = ek_xasprintf("detaching disk %s from VM '%s'", d, name);
        err = ek_ovirt_call(c, "DELETE", path, NULL, what, NULL);
    }
    if (!err)
        err = ek_ovirt_minion_deploy(c, ctx, in, "morph", os ? os : "linux", ids, &res, &conn, &ip);
    if (!err) {
        json_object *morph = json_object_new_object(), *copy = NULL;
        json_object_object_add(morph, "os_type", json_object_new_string(os ? os : "linux"));
        json_object_object_add(morph, "worker_ip", json_object_new_string(ip));
        json_object *disks = json_object_object_get(info, "disks");
        if (json_object_deep_copy(disks, &copy, NULL) != 0)
            copy = json_object_new_array();
        json_object_object_add(morph, "disks", copy);
        json_object_object_add(result, "os_morphing_resources", res);
        json_object_object_add(result, "osmorphing_info", morph);
        json_object_object_add(result, "osmorphing_connection_info", conn);
    }
    free(ip);
    json_object_put(ids);
    ek_ovirt_close(c);
    return err;
}

ek_err_t *ek_ovirt_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result)
{
    json_object *info, *conn, *disks;
    ek_err_t *err;
    (void)result;
    if ((err = ek_ovirt_info_get(in, "osmorphing_info", json_type_object, &info)) ||
        (err = ek_ovirt_info_get(in, "osmorphing_connection_info", json_type_object, &conn)) ||
        (err = ek_json_req_array(info, "osmorphing_info", "disks", &disks)))
        return err;
    /* oVirt gives a disk its id as serial; virtio-blk keeps 20 characters */
    json_object *paths = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        const char *did = ek_ovirt_str(json_object_array_get_idx(disks, i), "ovirt_disk_id");
        if (did && *did) {
            _cleanup_free_ char *path = ek_xasprintf("serial:%.20s", did);
            json_object_array_add(paths, json_object_new_string(path));
        }
    }
    ek_morph_params_t p = {.section = "ovirt_migration_provider",
                           .info = info,
                           .connection = conn,
                           .disk_paths = paths};
    err = ek_morph_remote_run(ctx, in, &p, NULL);
    json_object_put(paths);
    return err;
}

/* Gives the disks back to the deployed VM (as DEPLOY_INSTANCE_RESOURCES
 * attached them). */
static ek_err_t *reattach(ek_ovirt_t *c, json_object *info)
{
    const char *vm_id = ek_ovirt_str(info, "vm_id"), *name = ek_ovirt_str(info, "vm_name");
    json_object *disks = json_object_object_get(info, "disks");
    ek_err_t *err = NULL;
    for (size_t i = 0; vm_id && disks && i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *did = ek_ovirt_str(d, "ovirt_disk_id");
        _cleanup_free_ char *path = ek_xasprintf("/vms/%s/diskattachments/%s", vm_id, did);
        json_object *att;
        if ((err = ek_ovirt_get_opt(c, path, "reading a disk attachment", &att)) || att) {
            json_object_put(att);
            continue; /* already there */
        }
        err = ek_ovirt_vm_attach(c, vm_id, name, did, ek_ovirt_str(d, "interface"),
                                 ek_ovirt_bool(d, "bootable", false));
    }
    return err;
}

ek_err_t *ek_ovirt_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result)
{
    json_object *res = NULL, *info = NULL;
    ek_ovirt_t *c;
    ek_err_t *err;
    if (in->task_info) {
        json_object_object_get_ex(in->task_info, "os_morphing_resources", &res);
        json_object_object_get_ex(in->task_info, "instance_deployment_info", &info);
    }
    if ((err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    if (res)
        err = ek_ovirt_minion_delete(c, ctx, res);
    if (!err && info)
        err = reattach(c, info);
    ek_ovirt_close(c);
    if (err)
        return err;
    json_object_object_add(result, "os_morphing_resources", json_object_new_object());
    json_object_object_add(result, "osmorphing_connection_info", json_object_new_object());
    return NULL;
}

/* ---- finishing ---------------------------------------------------------------------------- */

static json_object *transfer_result(json_object *vm, json_object *info, bool started)
{
    json_object *tr = json_object_new_object(), *v;
    int64_t n;
    json_object_object_add(tr, "vm_id", json_object_new_string(ek_ovirt_str(vm, "id")));
    json_object_object_add(tr, "vm_name", json_object_new_string(ek_ovirt_str(vm, "name")));
    json_object_object_add(tr, "status",
                           json_object_new_string(ek_ovirt_str(vm, "status")
                                                      ? ek_ovirt_str(vm, "status")
                                                      : "unknown"));
    if (ek_ovirt_int(vm, "memory", &n))
        json_object_object_add(tr, "memory_mb", json_object_new_int64(n / 1048576));
    json_object *cpu = json_object_object_get(vm, "cpu");
    if (cpu && ek_ovirt_int(json_object_object_get(cpu, "topology"), "sockets", &n))
        json_object_object_add(tr, "num_cpu", json_object_new_int64(n));
    const char *os = ek_ovirt_ref(vm, "os", "type");
    if (os)
        json_object_object_add(tr, "os_type", json_object_new_string(os));
    json_object_object_add(tr, "started", json_object_new_boolean(started));
    json_object_object_add(tr, "delete_protected",
                           json_object_new_boolean(ek_ovirt_bool(vm, "delete_protected", false)));
    if (json_object_object_get_ex(info, "disks", &v))
        json_object_object_add(tr, "disks", json_object_get(v));
    if (json_object_object_get_ex(info, "nics", &v))
        json_object_object_add(tr, "nics", json_object_get(v));
    return tr;
}

ek_err_t *ek_ovirt_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result)
{
    json_object *info, *vm = NULL;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "instance_deployment_info", json_type_object, &info)) ||
        (err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    const char *vm_id = ek_ovirt_str(info, "vm_id"), *name = ek_ovirt_str(info, "vm_name");
    bool protect = ek_ovirt_opt_bool(ctx, in->destination, "default_delete_protected");
    bool off = ek_ovirt_opt_bool(ctx, in->destination, "default_leave_migrated_vms_off");
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s", vm_id ? vm_id : "-");
    if (!vm_id)
        err = ek_err_new(EK_E_INVALID, "instance_deployment_info has no vm_id");
    if (!err && !off)
        err = ek_ovirt_vm_start(c, ctx, vm_id, name, NULL, true);
    if (!err && protect) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "delete_protected", json_object_new_string("true"));
        _cleanup_free_ char *what = ek_xasprintf("protecting VM '%s' from deletion", name);
        err = ek_ovirt_call(c, "PUT", path, b, what, NULL);
        json_object_put(b);
    }
    if (!err)
        err = ek_ovirt_call(c, "GET", path, NULL, "reading the deployed VM", &vm);
    ek_ovirt_close(c);
    if (err)
        return err;
    json_object_object_add(result, "transfer_result", transfer_result(vm, info, !off));
    ek_task_event(ctx, "INFO", "'%s' deployed as VM '%s' (%s)%s", in->instance, name, vm_id,
                  off ? ", left off (default_leave_migrated_vms_off)" : ", running");
    json_object_put(vm);
    return NULL;
}

ek_err_t *ek_ovirt_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    json_object *info = NULL;
    ek_ovirt_t *c;
    ek_err_t *err;
    (void)result;
    if (in->task_info)
        json_object_object_get_ex(in->task_info, "instance_deployment_info", &info);
    if (!info || !ek_ovirt_str(info, "vm_id")) {
        ek_task_event(ctx, "INFO", "no deployed VM to clean up");
        return NULL;
    }
    if ((err = ek_ovirt_open(in->destination, ctx, &c)))
        return err;
    json_object *res = NULL;
    if (json_object_object_get_ex(in->task_info, "os_morphing_resources", &res))
        err = ek_ovirt_minion_delete(c, ctx, res); /* a worker left by a failed morphing */
    if (!err)
        err = remove_vm(c, ctx, info);
    ek_ovirt_close(c);
    if (!err)
        ek_task_event(ctx, "INFO", "VM '%s' of the failed deployment was deleted%s",
                      ek_ovirt_str(info, "vm_name"),
                      ek_ovirt_bool(info, "clone_disks", true) ? " with its disk copies"
                                                               : "; its disks are kept");
    return err;
}
