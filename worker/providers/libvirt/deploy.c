/* deploy.c - the libvirt destination's tasks other than the replica
 * volumes (volumes.c): validations, the transfer's worker VM as target
 * resource, and the deployment: the deployed VM's disks (clones or the
 * replicas themselves), the OS-morphing worker VM, the final domain defined
 * from generated XML (domain_xml.c) and started, and the cleanup of a
 * failed deployment.
 *
 * OS morphing: DEPLOY_OS_MORPHING_RESOURCES boots the OS-morphing worker VM
 * with the deployed volumes attached and hands over its SSH connection info
 * and the options the engine applies (set_dhcp, retain_user_credentials,
 * windows_virtio_iso_url, the NICs); OS_MORPHING runs ekman-morph on it
 * (providers/common/morph.h). A guest that was morphed gets virtio disks and
 * NICs in its final domain; one deployed with skip_os_morphing keeps the
 * buses and NIC models it had. */
#include "worker/providers/libvirt/libvirt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/uuid.h"
#include "worker/providers/common/minion.h"
#include "worker/providers/common/morph.h"
#include "worker/providers/common/taskutil.h"

/* ---- connection and helpers --------------------------------------------------------- */

ek_err_t *ek_lv_task_connect_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         ek_lv_conn_t **c, ek_lv_opts_t *o)
{
    const ek_config_t *cfg = ctx ? ek_task_config(ctx) : NULL;
    if (!in->destination)
        return ek_err_new(EK_E_INVALID, "the task has no destination endpoint");
    ek_err_t *err = ek_lv_opts_load(cfg, in->destination->environment, o);
    if (err)
        return err;
    /* The key is the endpoint's, or the operator's for the endpoints the
     * operator allows (conn.c): an environment names no key file. */
    err = ek_lv_connect(in->destination, cfg, c);
    if (err) {
        ek_lv_opts_release(o);
        return ek_err_prefix(err, "destination endpoint");
    }
    return NULL;
}

const char *ek_lv_domain_type(virConnectPtr c, const ek_lv_opts_t *o, const char *arch)
{
    if (strcmp(o->domain_type, "auto") != 0)
        return o->domain_type;
    char *caps = virConnectGetDomainCapabilities(c, NULL, arch ? arch : "x86_64", NULL, "kvm", 0);
    free(caps);
    return caps ? "kvm" : "qemu";
}

static const char *str_of(json_object *o, const char *key, const char *def)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return def;
}

static int64_t int_of(json_object *o, const char *key, int64_t def)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return def;
}

/* A TPM needs swtpm on the host: domain capabilities list the emulator
 * backend only when it is installed. */
static ek_err_t *check_tpm(ek_lv_conn_t *c, const ek_lv_opts_t *o, const char *dtype)
{
    if (!o->add_tpm)
        return NULL;
    char *caps = virConnectGetDomainCapabilities(ek_lv_virconn(c), NULL, "x86_64", NULL, dtype, 0);
    bool ok = caps && strstr(caps, "<value>emulator</value>");
    free(caps);
    if (!ok)
        return ek_err_new(EK_E_CONFLICT,
                          "add_tpm_device is on but libvirt on %s offers no emulated TPM: "
                          "install swtpm and swtpm-tools on the host, or set add_tpm_device = "
                          "false",
                          ek_lv_describe(c));
    return NULL;
}

static ek_err_t *check_network_map(virConnectPtr c, json_object *export_info, json_object *map)
{
    json_object *nics;
    if (!json_object_object_get_ex(export_info, "nics", &nics) ||
        !json_object_is_type(nics, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(nics); i++) {
        json_object *nic = json_object_array_get_idx(nics, i);
        const char *src = str_of(nic, "network_name", NULL);
        bool bridge;
        const char *dst = ek_network_map_lookup(map, src, &bridge);
        if (!dst)
            return ek_err_new(EK_E_INVALID,
                              "network '%s' (NIC %s) is not in the transfer's network_map: map "
                              "it to a libvirt network (or \"bridge:NAME\")",
                              src ? src : "(none)", str_of(nic, "mac", "without MAC"));
        if (bridge)
            continue;
        virNetworkPtr n = virNetworkLookupByName(c, dst);
        if (!n)
            return ek_err_new(EK_E_NOTFOUND,
                              "network_map sends '%s' to libvirt network '%s', which does not "
                              "exist on the destination",
                              src, dst);
        virNetworkFree(n);
    }
    return NULL;
}

static ek_err_t *check_pools(virConnectPtr c, const ek_lv_opts_t *o, const ek_task_input_t *in,
                             json_object *disks)
{
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *pool_name;
        virStoragePoolPtr p;
        ek_err_t *err = ek_lv_disk_pool(o, in->destination->storage_mappings, d, &pool_name);
        if (err)
            return err;
        _cleanup_free_ char *what = ek_xasprintf("the pool of disk '%s'", str_of(d, "id", "?"));
        if ((err = ek_lv_pool_get(c, pool_name, what, &p)))
            return err;
        virStoragePoolFree(p);
    }
    return NULL;
}

ek_err_t *ek_lv_check_worker_image(virConnectPtr c, const ek_lv_opts_t *o, const char *os_type)
{
    _cleanup_free_ char *pool_name = NULL, *vol = NULL;
    virStoragePoolPtr p;
    virStorageVolPtr v = NULL;
    ek_err_t *err = ek_lv_opts_image(c, o, os_type, &pool_name, &vol);
    if (err ||
        (err = ek_lv_pool_get(c, pool_name, "the pool of the worker image, migr_image_map", &p)))
        return err;
    /* the seed: worker images live in a directory pool (each worker VM gets
     * a copy-on-write overlay next to its image, which needs files) */
    char *xml = virStoragePoolGetXMLDesc(p, 0);
    const char *t = xml ? strstr(xml, "<pool type=") : NULL;
    if (t && strncmp(t + 11, "'dir'", 5) != 0 && strncmp(t + 11, "\"dir\"", 5) != 0) {
        char type[32] = "";
        sscanf(t + 12, "%31[a-z0-9_-]", type);
        err = ek_err_new(EK_E_INVALID,
                         "the worker image's pool '%s' (migr_image_map, %s) is a '%s' pool; "
                         "worker images must be in a directory ('dir') pool: define one "
                         "(virsh pool-define-as NAME dir --target DIR), upload the image there "
                         "and name it in migr_image_map",
                         pool_name, os_type, type);
    }
    free(xml);
    if (err) {
        virStoragePoolFree(p);
        return err;
    }
    if (!(err = ek_lv_vol_find(p, vol, &v)) && !v)
        err = ek_err_new(EK_E_NOTFOUND,
                         "worker image '%s' (migr_image_map, %s) is not in storage pool '%s': "
                         "upload the image (deploy/worker-image/build.sh, virsh vol-upload) or "
                         "fix migr_image_map",
                         vol, os_type, pool_name);
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return err;
}

static ek_err_t *check_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in, bool minion)
{
    json_object *export_info, *disks;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    virConnectPtr vc = ek_lv_virconn(c);
    const char *os_type = str_of(export_info, "os_type", "linux");
    if (!(err = check_pools(vc, &o, in, disks)) &&
        !(err = check_network_map(vc, export_info, in->destination->network_map)) && minion &&
        !(err = ek_lv_check_worker_image(vc, &o, os_type)) && !o.worker_network[0])
        err = ek_err_new(EK_E_INVALID, "migr_worker_network is empty: name the libvirt network "
                                       "worker VMs attach to (virsh net-list)");
    if (!err && minion) {
        virNetworkPtr n = virNetworkLookupByName(vc, o.worker_network);
        if (!n)
            err = ek_err_new(EK_E_NOTFOUND,
                             "the libvirt network '%s' (migr_worker_network) does not exist on "
                             "the destination",
                             o.worker_network);
        else
            virNetworkFree(n);
    }
    if (!err) {
        _cleanup_free_ char *w = ek_lv_opts_warning(&o);
        if (w)
            ek_task_event(ctx, "WARNING", "%s", w);
    }
    if (!err)
        ek_task_event(ctx, "INFO", "destination %s: pools, networks%s checked for '%s'",
                      ek_lv_describe(c), minion ? " and worker image" : "", in->instance);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                 json_object *result)
{
    (void)result;
    return check_destination(ctx, in, true);
}

ek_err_t *ek_lv_task_update_destination_transfer(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                 json_object *result)
{
    (void)result;
    return check_destination(ctx, in, true);
}

/* ---- the transfer's worker VM -------------------------------------------------------- */

ek_err_t *ek_lv_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result)
{
    json_object *export_info, *vols, *copy = NULL;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_lv_minion_t *m;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_task_info_get(in, "volumes_info", json_type_array, &vols)))
        return err;
    if (json_object_deep_copy(vols, &copy, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    if ((err = ek_lv_task_connect_destination(ctx, in, &c, &o))) {
        json_object_put(copy);
        return err;
    }
    ek_lv_minion_req_t req = {.purpose = "disk copy",
                              .os_type = str_of(export_info, "os_type", "linux"),
                              .kind = o.data_transfer_mechanism,
                              .volumes = copy};
    if (!(err = ek_lv_minion_create(ctx, in, c, &o, &req, &m))) {
        json_object_object_add(result, "volumes_info", copy);
        copy = NULL;
        json_object_object_add(result, "target_resources", ek_lv_minion_resources(m));
        json_object_object_add(result, "target_resources_connection_info",
                               ek_lv_minion_connection_info(m));
        ek_task_event(ctx, "INFO", "the replicas of '%s' are written by ekman-writer on %s (%s)",
                      in->instance, ek_lv_minion_address(m), o.data_transfer_mechanism);
        ek_lv_minion_free(m);
    }
    json_object_put(copy);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

/* Deletes dir/file as libvirtd does (it runs as root): through the storage
 * pool whose directory is dir, or a transient one made for the purpose.
 * virtlogd writes console logs as root into a root-owned directory
 * (/var/log/libvirt/qemu on Debian), where the SSH account cannot unlink. */
static ek_err_t *pool_unlink(virConnectPtr conn, const char *dir, const char *file, const char *tag)
{
    virStoragePoolPtr pool = virStoragePoolLookupByTargetPath(conn, dir);
    bool own = false;
    if (pool && virStoragePoolIsActive(pool) != 1) {
        virStoragePoolFree(pool);
        pool = NULL;
    }
    if (!pool) {
        virResetLastError();
        _cleanup_free_ char *xml = ek_xasprintf(
            "<pool type='dir'><name>ekman-rm-%s</name><target><path>%s</path></target></pool>", tag,
            dir);
        if (!(pool = virStoragePoolCreateXML(conn, xml, 0)))
            return ek_lv_err(EK_E_IO, "no storage pool could be made on \"%s\"", dir);
        own = true;
    } else {
        /* one of ours that a killed task left goes this time */
        const char *name = virStoragePoolGetName(pool);
        own = name && strncmp(name, "ekman-rm-", 9) == 0;
        if (virStoragePoolRefresh(pool, 0) < 0) {
            ek_err_t *err =
                ek_lv_err(EK_E_IO, "the storage pool of \"%s\" could not be refreshed", dir);
            if (own)
                virStoragePoolDestroy(pool);
            virStoragePoolFree(pool);
            return err;
        }
    }
    ek_err_t *err = NULL;
    virStorageVolPtr v = virStorageVolLookupByName(pool, file);
    if (v) {
        if (virStorageVolDelete(v, 0) < 0)
            err = ek_lv_err(EK_E_IO, "libvirt could not delete it");
        virStorageVolFree(v);
    }
    virResetLastError();
    if (own)
        virStoragePoolDestroy(pool); /* a transient dir pool: the directory stays */
    virStoragePoolFree(pool);
    return err;
}

/* A removed worker VM's console log (enable_vm_console_log) goes with it:
 * one file per worker VM would pile up in vm_console_log_dir. The path is
 * ours ("<vm_console_log_dir>/ekman-minion-*-serial.log", the directory
 * checked plain by the options); anything else is left alone. The SSH
 * account removes it when it may, else libvirt does. A failure is a
 * warning: the VM itself is gone. */
static void remove_console_log(ek_task_ctx_t *ctx, ek_lv_conn_t *c, json_object *res)
{
    const char *log = str_of(res, "console_log", NULL);
    const char *base = log ? strrchr(log, '/') : NULL;
    size_t n = log ? strlen(log) : 0;
    if (!log || log[0] != '/' || !base || strncmp(base + 1, "ekman-minion-", 13) != 0 || n < 11 ||
        strcmp(log + n - 11, "-serial.log") != 0 || strchr(log, '\'') || strstr(log, "/../"))
        return;
    _cleanup_free_ char *cmd = ek_xasprintf("rm -f -- '%s'", log);
    char *out = NULL, *errout = NULL;
    int status = 0;
    ek_err_t *err = ek_lv_ssh_run(c, cmd, &out, &errout, &status);
    if (!err && status != 0) {
        /* not the account's to remove: libvirt's storage API removes it */
        _cleanup_free_ char *dir = ek_xstrndup(log, (size_t)(base - log));
        _cleanup_free_ char *tag = ek_xstrndup(base + 1, n - (size_t)(base + 1 - log) - 11);
        ek_err_t *perr = pool_unlink(ek_lv_virconn(c), base == log ? "/" : dir, base + 1, tag);
        if (perr) {
            err = ek_err_new(EK_E_IO, "%s; %s", errout && *errout ? errout : "rm failed",
                             perr->message);
            ek_err_free(perr);
        }
    }
    if (err)
        ek_task_event(ctx, "WARNING", "the worker VM's console log %s was not removed: %s", log,
                      err->message);
    ek_err_free(err);
    free(out);
    free(errout);
}

/* Removes the worker VM a resources document names; returns empty ones. */
static ek_err_t *remove_minion(ek_task_ctx_t *ctx, const ek_task_input_t *in, const char *key,
                               json_object *result, const char *res_key, const char *conn_key)
{
    json_object *res = NULL;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if (in->task_info)
        json_object_object_get_ex(in->task_info, key, &res);
    if (!res || !json_object_is_type(res, json_type_object) ||
        !json_object_object_get_ex(res, "minion", NULL)) {
        ek_task_event(ctx, "INFO", "no worker VM to remove");
    } else {
        if ((err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
            return err;
        err = ek_lv_minion_remove(ctx, ek_lv_virconn(c), res);
        if (!err)
            remove_console_log(ctx, c, res);
        ek_lv_opts_release(&o);
        ek_lv_disconnect(c);
        if (err)
            return err;
    }
    json_object_object_add(result, res_key, json_object_new_object());
    json_object_object_add(result, conn_key, json_object_new_object());
    return NULL;
}

ek_err_t *ek_lv_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result)
{
    return remove_minion(ctx, in, "target_resources", result, "target_resources",
                         "target_resources_connection_info");
}

/* ---- deployment ---------------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    return s && *s && strlen(s) <= 200 && !strpbrk(s, "/\n\r\t'\"<>&");
}

static ek_err_t *no_domain(virConnectPtr c, const char *name)
{
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d)
        return NULL;
    virDomainFree(d);
    return ek_err_new(EK_E_CONFLICT,
                      "a domain named '%s' already exists on the destination: remove or rename "
                      "it to deploy this instance",
                      name);
}

/* The deployed domain's name: the instance's, unless the destination is
 * the source's own host and that name is the source domain itself (same
 * UUID): then "<instance>-migrated" (libvirt has one domain per name). */
static ek_err_t *deployed_name(ek_task_ctx_t *ctx, virConnectPtr c, const ek_task_input_t *in,
                               json_object *export_info, char **out)
{
    virDomainPtr d = virDomainLookupByName(c, in->instance);
    if (!d) {
        *out = ek_xstrdup(in->instance);
        return NULL;
    }
    char uuid[VIR_UUID_STRING_BUFLEN] = "";
    virDomainGetUUIDString(d, uuid);
    virDomainFree(d);
    const char *src_id = str_of(export_info, "id", "");
    if (strcmp(uuid, src_id) != 0)
        return no_domain(c, in->instance);
    char *name = ek_xasprintf("%s-migrated", in->instance);
    ek_err_t *err = no_domain(c, name);
    if (err) {
        free(name);
        return err;
    }
    if (ctx)
        ek_task_event(ctx, "WARNING",
                      "the destination host is the source's and '%s' is the source domain "
                      "itself: the deployed domain is named '%s'",
                      in->instance, name);
    *out = name;
    return NULL;
}

ek_err_t *ek_lv_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    json_object *export_info, *disks, *vols = NULL;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    (void)result;
    if (!name_ok(in->instance))
        return ek_err_new(EK_E_INVALID, "'%s' cannot be a libvirt domain name", in->instance);
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    virConnectPtr vc = ek_lv_virconn(c);
    if (in->task_info)
        json_object_object_get_ex(in->task_info, "volumes_info", &vols);
    _cleanup_free_ char *dom_name = NULL;
    if (!(err = deployed_name(ctx, vc, in, export_info, &dom_name)) &&
        !(err = check_network_map(vc, export_info, in->destination->network_map)) &&
        !(err = check_tpm(c, &o, ek_lv_domain_type(vc, &o, str_of(export_info, "arch", NULL)))) &&
        !in->skip_os_morphing)
        err = ek_lv_check_worker_image(vc, &o, str_of(export_info, "os_type", "linux"));
    for (size_t i = 0; !err && i < json_object_array_length(disks); i++) {
        const char *id = str_of(json_object_array_get_idx(disks, i), "id", "?");
        json_object *v = vols ? ek_volumes_find(vols, id) : NULL;
        if (!v || !json_object_object_get_ex(v, "last_sync", NULL))
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s' of '%s' has no synced replica on the destination: "
                             "execute the transfer (it must complete once) before deploying",
                             id, in->instance);
    }
    if (!err)
        ek_task_event(ctx, "INFO", "'%s' will be deployed as domain '%s' on %s", in->instance,
                      dom_name, ek_lv_describe(c));
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result)
{
    json_object *export_info, *disks, *vols;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    char *dom_name = NULL;
    ek_err_t *err;
    if (!name_ok(in->instance))
        return ek_err_new(EK_E_INVALID, "'%s' cannot be a libvirt domain name", in->instance);
    if ((err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_task_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    err = deployed_name(ctx, ek_lv_virconn(c), in, export_info, &dom_name);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    if (err)
        return err;
    bool clone = in->clone_disks;
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *id = str_of(d, "id", NULL);
        json_object *v = id ? ek_volumes_find(vols, id) : NULL;
        const char *vol = str_of(v, clone ? "snapshot_volume" : "volume", NULL);
        if (!v || !vol) {
            err = ek_err_new(EK_E_CONFLICT, "disk '%s' has no %s in volumes_info%s", id ? id : "?",
                             clone ? "clone" : "replica volume",
                             clone ? ": CREATE_TRANSFER_DISK_SNAPSHOTS must run first" : "");
            break;
        }
        char serial[21];
        ek_lv_volume_serial(str_of(v, "pool", ""), vol, serial);
        json_object *x = json_object_new_object();
        json_object_object_add(x, "disk_id", json_object_new_string(id));
        json_object_object_add(x, "pool", json_object_new_string(str_of(v, "pool", "")));
        json_object_object_add(x, "volume", json_object_new_string(vol));
        json_object_object_add(x, "format", json_object_new_string(str_of(v, "format", "raw")));
        json_object_object_add(x, "serial", json_object_new_string(serial));
        json_object_object_add(x, "bus", json_object_new_string(str_of(d, "bus", "virtio")));
        json_object_object_add(x, "clone", json_object_new_boolean(clone));
        if (int_of(d, "boot_order", 0) > 0)
            json_object_object_add(x, "boot_order",
                                   json_object_new_int((int)int_of(d, "boot_order", 0)));
        json_object_array_add(out, x);
    }
    if (err) {
        json_object_put(out);
        free(dom_name);
        return err;
    }
    json_object *info = json_object_new_object();
    json_object_object_add(info, "instance_name", json_object_new_string(in->instance));
    json_object_object_add(info, "domain_name", json_object_new_string(dom_name));
    free(dom_name);
    json_object_object_add(info, "clone_disks", json_object_new_boolean(clone));
    json_object_object_add(info, "disks", out);
    json_object_object_add(result, "instance_deployment_info", info);
    return NULL;
}

ek_err_t *ek_lv_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    json_object *info, *export_info, *disks, *vols = json_object_new_array();
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_lv_minion_t *m;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "instance_deployment_info", json_type_object, &info)) ||
        (err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(info, "instance_deployment_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o))) {
        json_object_put(vols);
        return err;
    }
    for (size_t i = 0; i < json_object_array_length(disks); i++)
        json_object_array_add(vols, json_object_get(json_object_array_get_idx(disks, i)));
    const char *os_type = str_of(export_info, "os_type", "linux");
    ek_lv_minion_req_t req = {
        .purpose = "OS morphing", .os_type = os_type, .kind = "ssh", .volumes = vols};
    if (!(err = ek_lv_minion_create(ctx, in, c, &o, &req, &m))) {
        json_object *res = ek_lv_minion_resources(m);
        json_object *mi = json_object_new_object();
        json_object_object_add(mi, "os_type", json_object_new_string(os_type));
        json_object *att = NULL;
        json_object_object_get_ex(res, "attached", &att);
        json_object_object_add(mi, "disks", json_object_get(att));
        json_object_object_add(mi, "set_dhcp", json_object_new_boolean(o.set_dhcp));
        json_object_object_add(mi, "retain_user_credentials",
                               json_object_new_boolean(o.retain_user_credentials));
        json_object_object_add(mi, "use_config_drive", json_object_new_boolean(o.use_config_drive));
        if (strcmp(os_type, "windows") == 0) {
            json_object_object_add(mi, "windows_virtio_iso_url",
                                   json_object_new_string(o.windows_virtio_iso_url));
            json_object_object_add(mi, "windows_virtio_iso_sha256",
                                   json_object_new_string(o.windows_virtio_iso_sha256));
        }
        json_object *nics;
        if (json_object_object_get_ex(export_info, "nics", &nics))
            json_object_object_add(mi, "nics", json_object_get(nics));
        json_object_object_add(result, "os_morphing_resources", res);
        json_object_object_add(result, "osmorphing_info", mi);
        json_object_object_add(result, "osmorphing_connection_info",
                               ek_lv_minion_connection_info(m));
        ek_lv_minion_free(m);
    }
    json_object_put(vols);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in, json_object *result)
{
    json_object *info, *conn, *disks;
    ek_err_t *err;
    (void)result;
    if ((err = ek_task_info_get(in, "osmorphing_info", json_type_object, &info)) ||
        (err = ek_task_info_get(in, "osmorphing_connection_info", json_type_object, &conn)) ||
        (err = ek_json_req_array(info, "osmorphing_info", "disks", &disks)))
        return err;
    /* the worker VM sees each replica volume by the serial it was attached with */
    json_object *paths = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        const char *serial = str_of(json_object_array_get_idx(disks, i), "serial", NULL);
        if (serial && *serial) {
            _cleanup_free_ char *path = ek_xasprintf("serial:%s", serial);
            json_object_array_add(paths, json_object_new_string(path));
        }
    }
    ek_morph_params_t p = {.section = "libvirt_migration_provider",
                           .info = info,
                           .connection = conn,
                           .disk_paths = paths};
    err = ek_morph_remote_run(ctx, in, &p, NULL);
    json_object_put(paths);
    return err;
}

ek_err_t *ek_lv_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    return remove_minion(ctx, in, "os_morphing_resources", result, "os_morphing_resources",
                         "osmorphing_connection_info");
}

/* ---- the final domain ------------------------------------------------------------------ */

static char *config_drive_name(const char *instance)
{
    _cleanup_free_ char *s = ek_lv_safe_name(instance);
    return ek_xasprintf("ekman-%s-config.iso", s);
}

/* use_config_drive: a NoCloud drive (label cidata) with the instance's
 * meta-data, for cloud-init in the migrated guest; its user-data is empty
 * so that existing users and keys stay as they are. */
static ek_err_t *make_vm_config_drive(ek_lv_conn_t *c, const char *pool_name, const char *instance,
                                      char **path)
{
    _cleanup_free_ char *dir = NULL, *name = config_drive_name(instance);
    ek_err_t *err = ek_private_dir(ek_lv_tmp_dir(c), "cfgdrive-", &dir);
    if (err)
        return err;
    char uuid[37];
    ek_uuid_generate(uuid);
    _cleanup_free_ char *md =
        ek_xasprintf("instance-id: iid-%s-%s\nlocal-hostname: %s\n", instance, uuid, instance);
    _cleanup_free_ char *mdp = ek_xasprintf("%s/files/meta-data", dir);
    _cleanup_free_ char *udp = ek_xasprintf("%s/files/user-data", dir);
    _cleanup_free_ char *files = ek_xasprintf("%s/files", dir);
    _cleanup_free_ char *iso = ek_xasprintf("%s/config.iso", dir);
    const char *argv[] = {"genisoimage", "-quiet",  "-output", iso,   "-volid",
                          "cidata",      "-joliet", "-rock",   files, NULL};
    if (mkdir(files, 0700) != 0)
        err = ek_err_errno(errno, "could not create \"%s\"", files);
    if (!err && !(err = ek_file_write(mdp, md, strlen(md), 0600)) &&
        !(err = ek_file_write(udp, "#cloud-config\n{}\n", 17, 0600)))
        err = ek_run(argv, NULL);
    virStoragePoolPtr pool = NULL;
    if (!err && !(err = ek_lv_pool_get(ek_lv_virconn(c), pool_name, "config drive", &pool)) &&
        !(err = ek_lv_vol_delete(ek_lv_virconn(c), pool_name, name)))
        err = ek_lv_upload_file(pool, name, iso);
    if (!err) {
        virStorageVolPtr v = virStorageVolLookupByName(pool, name);
        *path = v ? virStorageVolGetPath(v) : NULL;
        if (v)
            virStorageVolFree(v);
        if (!*path)
            err = ek_lv_err(EK_E_IO, "config drive volume '%s' has no path", name);
    }
    if (pool)
        virStoragePoolFree(pool);
    ek_rmtree(dir);
    return err ? ek_err_prefix(err, "config drive (use_config_drive)") : NULL;
}

typedef struct final_vm {
    ek_lv_vm_disk_t *disks;
    char **paths, **devs;
    size_t n;
    ek_lv_vm_nic_t *nics;
    size_t n_nics;
    char *console_log, *cfg_drive;
} final_vm_t;

static void final_release(final_vm_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->paths[i]);
        free(f->devs[i]);
    }
    free(f->paths);
    free(f->devs);
    free(f->disks);
    free(f->nics);
    free(f->console_log);
    free(f->cfg_drive);
}

/* A morphed guest has the virtio drivers: its disks go on virtio-blk as
 * vda, vdb... in their order; otherwise each keeps its bus and name. */
static ek_err_t *final_disks(virConnectPtr c, json_object *disks, bool virtio, final_vm_t *f)
{
    f->n = json_object_array_length(disks);
    f->disks = ek_xcalloc(f->n + 1, sizeof(*f->disks));
    f->paths = ek_xcalloc(f->n + 1, sizeof(char *));
    f->devs = ek_xcalloc(f->n + 1, sizeof(char *));
    for (size_t i = 0; i < f->n; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *pool_name = str_of(d, "pool", NULL), *vol = str_of(d, "volume", NULL);
        virStoragePoolPtr pool;
        ek_err_t *err;
        if (!pool_name || !vol)
            return ek_err_new(EK_E_INVALID, "instance_deployment_info.disks[%zu] has no volume", i);
        if ((err = ek_lv_pool_get(c, pool_name, "deployed disk", &pool)))
            return err;
        virStorageVolPtr v = virStorageVolLookupByName(pool, vol);
        f->paths[i] = v ? virStorageVolGetPath(v) : NULL;
        if (v)
            virStorageVolFree(v);
        virStoragePoolFree(pool);
        if (!f->paths[i])
            return ek_err_new(EK_E_NOTFOUND, "volume '%s' of disk '%s' is missing from pool '%s'",
                              vol, str_of(d, "disk_id", "?"), pool_name);
        f->devs[i] = virtio && i < 26 ? ek_xasprintf("vd%c", (char)('a' + i))
                                      : ek_xstrdup(str_of(d, "disk_id", "vda"));
        f->disks[i] = (ek_lv_vm_disk_t){.dev = f->devs[i],
                                        .bus = virtio ? "virtio" : str_of(d, "bus", "virtio"),
                                        .path = f->paths[i],
                                        .format = str_of(d, "format", "raw"),
                                        .boot_order = (int)int_of(d, "boot_order", 0)};
    }
    return NULL;
}

static ek_err_t *final_nics(json_object *export_info, json_object *map, bool virtio, final_vm_t *f)
{
    json_object *nics;
    if (!json_object_object_get_ex(export_info, "nics", &nics) ||
        !json_object_is_type(nics, json_type_array))
        return NULL;
    f->n_nics = json_object_array_length(nics);
    f->nics = ek_xcalloc(f->n_nics + 1, sizeof(*f->nics));
    for (size_t i = 0; i < f->n_nics; i++) {
        json_object *nic = json_object_array_get_idx(nics, i);
        const char *src = str_of(nic, "network_name", NULL);
        bool bridge;
        const char *dst = ek_network_map_lookup(map, src, &bridge);
        if (!dst)
            return ek_err_new(EK_E_INVALID,
                              "network '%s' is not in the network_map: map it to a libvirt "
                              "network",
                              src ? src : "(none)");
        f->nics[i] = (ek_lv_vm_nic_t){.mac = str_of(nic, "mac", NULL),
                                      .network = dst,
                                      .bridge = bridge,
                                      .model = virtio ? "virtio" : str_of(nic, "model", NULL)};
    }
    return NULL;
}

/* The next free target of a cdrom on bus ("sdX" on sata, "hdX" on ide). */
static char *cdrom_dev(const final_vm_t *f, bool sata)
{
    for (char l = sata ? 'a' : 'c'; l <= 'z'; l++) {
        char dev[8];
        snprintf(dev, sizeof(dev), "%s%c", sata ? "sd" : "hd", l);
        bool used = false;
        for (size_t i = 0; i < f->n; i++)
            used = used || strcmp(f->devs[i], dev) == 0;
        if (!used)
            return ek_xstrdup(dev);
    }
    return ek_xstrdup("sdz");
}

static ek_err_t *define_final(ek_task_ctx_t *ctx, ek_lv_conn_t *c, const ek_lv_opts_t *o,
                              json_object *export_info, const char *name, final_vm_t *f,
                              virDomainPtr *out)
{
    virConnectPtr vc = ek_lv_virconn(c);
    const char *machine = ek_lv_machine_family(
        str_of(export_info, "machine_type", str_of(export_info, "machine", NULL)));
    const char *dtype = ek_lv_domain_type(vc, o, str_of(export_info, "arch", NULL));
    ek_err_t *err = check_tpm(c, o, dtype);
    if (err)
        return err;
    if (o->console_log)
        f->console_log = ek_xasprintf("%s/%s-serial.log", o->console_log_dir, name);
    /* a random console password per VM (VNC takes at most 8 characters) */
    char vnc_pw[9] = "";
    if (o->vnc) {
        static const char set[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        unsigned char rnd[8];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return ek_err_new(EK_E_INTERNAL, "the random number generator failed");
        for (size_t i = 0; i < sizeof(rnd); i++)
            vnc_pw[i] = set[rnd[i] % (sizeof(set) - 1)];
        OPENSSL_cleanse(rnd, sizeof(rnd));
    }
    size_t n = f->n;
    if (f->cfg_drive) {
        bool sata = machine && strcmp(machine, "q35") == 0;
        f->devs[n] = cdrom_dev(f, sata);
        f->disks[n] = (ek_lv_vm_disk_t){.dev = f->devs[n],
                                        .bus = sata ? "sata" : "ide",
                                        .path = f->cfg_drive,
                                        .format = "raw",
                                        .cdrom = true};
        n++;
    }
    ek_lv_vm_t vm = {
        .name = name,
        .domain_type = dtype,
        .arch = str_of(export_info, "arch", NULL),
        .machine = machine,
        .efi = strcmp(str_of(export_info, "firmware", "bios"), "efi") == 0,
        .windows = strcmp(str_of(export_info, "os_type", "linux"), "windows") == 0,
        .vcpus = (int)int_of(export_info, "num_cpu", 1),
        .memory_mb = (uint64_t)int_of(export_info, "memory_mb", 0),
        .disks = f->disks,
        .n_disks = n,
        .nics = f->nics,
        .n_nics = f->n_nics,
        .cpu_options = true,
        .tpm = o->add_tpm,
        .console_log = f->console_log,
        .vnc = o->vnc,
        .vnc_listen = o->vnc_listen_address,
        .vnc_password = vnc_pw,
        .cpu_mode = o->cpu_mode,
        .cpu_migratable = o->cpu_migratable,
        .cpu_features = &o->cpu_features,
    };
    char *xml, *note;
    err = ek_lv_vm_xml(&vm, &xml, &note);
    OPENSSL_cleanse(vnc_pw, sizeof(vnc_pw));
    if (err)
        return err;
    if (note) {
        ek_task_event(ctx, "WARNING", "%s", note);
        free(note);
    }
    *out = virDomainDefineXMLFlags(vc, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    ek_free_secret(xml); /* it holds the console password */
    if (*out && o->vnc)
        ek_task_event(ctx, "INFO",
                      "VNC console on %s with a random password (virsh dumpxml --security-info "
                      "%s shows it)",
                      o->vnc_listen_address, name);
    if (!*out)
        return ek_lv_err(EK_E_IO, "could not define domain '%s'", name);
    return NULL;
}

ek_err_t *ek_lv_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result)
{
    json_object *info, *export_info, *disks;
    const char *name;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    if ((err = ek_task_info_get(in, "instance_deployment_info", json_type_object, &info)) ||
        (err = ek_task_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_string(info, "instance_deployment_info", "domain_name", &name)) ||
        (err = ek_json_req_array(info, "instance_deployment_info", "disks", &disks)) ||
        (err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    virConnectPtr vc = ek_lv_virconn(c);
    final_vm_t f = {0};
    virDomainPtr d = NULL;
    bool morphed = !in->skip_os_morphing;
    if (!(err = no_domain(vc, name)) && !(err = final_disks(vc, disks, morphed, &f)) &&
        !(err = final_nics(export_info, in->destination->network_map, morphed, &f)) &&
        !(o.use_config_drive && f.n > 0 &&
          (err = make_vm_config_drive(c, str_of(json_object_array_get_idx(disks, 0), "pool", ""),
                                      name, &f.cfg_drive))) &&
        !(err = define_final(ctx, c, &o, export_info, name, &f, &d)) && virDomainCreate(d) < 0) {
        err = ek_lv_err(EK_E_IO, "domain '%s' was defined but did not start", name);
        if (o.cpu_features.n && strstr(err->message, "support"))
            err = ek_err_prefix(err, "the CPU features that cpu_features requires may be more "
                                     "than this host (or TCG emulation) offers: set cpu_features "
                                     "in the destination environment");
    }
    if (!err) {
        json_object *tr = json_object_new_object();
        json_object_object_add(tr, "instance_name", json_object_new_string(name));
        json_object_object_add(tr, "domain_name", json_object_new_string(name));
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(d, uuid) == 0)
            json_object_object_add(tr, "domain_uuid", json_object_new_string(uuid));
        json_object_object_add(tr, "host", json_object_new_string(ek_lv_describe(c)));
        json_object_object_add(tr, "disks", json_object_get(disks));
        if (f.console_log)
            json_object_object_add(tr, "console_log", json_object_new_string(f.console_log));
        json_object_object_add(result, "transfer_result", tr);
        ek_task_event(ctx, "INFO", "'%s' deployed and started as domain '%s' on %s", in->instance,
                      name, ek_lv_describe(c));
    }
    if (d)
        virDomainFree(d);
    final_release(&f);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}

ek_err_t *ek_lv_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result)
{
    json_object *info, *disks;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    ek_err_t *err;
    (void)result;
    if (!in->task_info ||
        !json_object_object_get_ex(in->task_info, "instance_deployment_info", &info) ||
        !json_object_is_type(info, json_type_object)) {
        ek_task_event(ctx, "INFO", "no deployed resources to clean up");
        return NULL;
    }
    const char *name = str_of(info, "domain_name", NULL);
    _cleanup_free_ char *renamed = ek_xasprintf("%s-migrated", in->instance);
    if (!name || (strcmp(name, in->instance) != 0 && strcmp(name, renamed) != 0))
        return ek_err_new(EK_E_INVALID, "instance_deployment_info is not for '%s'", in->instance);
    if ((err = ek_lv_task_connect_destination(ctx, in, &c, &o)))
        return err;
    virConnectPtr vc = ek_lv_virconn(c);
    virDomainPtr d = virDomainLookupByName(vc, name);
    if (d) { /* DEPLOY_INSTANCE_RESOURCES checked that none existed: this one is ours */
        if (virDomainIsActive(d) == 1)
            virDomainDestroy(d);
        if (virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_TPM |
                                          VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) < 0 &&
            virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM) < 0 && virDomainUndefine(d) < 0)
            err = ek_lv_err(EK_E_IO, "could not undefine domain '%s'", name);
        virDomainFree(d);
    }
    /* Clones are the deployment's own; replicas stay the transfer's. */
    if (!err && json_object_object_get_ex(info, "disks", &disks))
        for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
            json_object *x = json_object_array_get_idx(disks, i), *cl;
            const char *vol = str_of(x, "volume", "");
            if (json_object_object_get_ex(x, "clone", &cl) && json_object_get_boolean(cl) &&
                strncmp(vol, "ekman-", 6) == 0)
                err = ek_lv_vol_delete(vc, str_of(x, "pool", ""), vol);
            if (!err && i == 0) {
                _cleanup_free_ char *cd = config_drive_name(name);
                err = ek_lv_vol_delete(vc, str_of(x, "pool", ""), cd);
            }
        }
    if (!err)
        ek_task_event(ctx, "INFO", "the failed deployment of '%s' was cleaned up", in->instance);
    ek_lv_opts_release(&o);
    ek_lv_disconnect(c);
    return err;
}
