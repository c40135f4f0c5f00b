/* provider.c - the `libvirt` provider's table (worker/provider.h): the
 * endpoint calls (endpoint.c), the source tasks (source.c, srcread.c) and
 * the destination tasks (volumes.c, deploy.c), and the values the
 * destination options may take on a host. Capabilities: proto/providers.c. */
#include "worker/providers/libvirt/libvirt.h"

#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"
#include "proto/providers.h"

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (; *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static void add_option(json_object *list, const char *name, json_object *values,
                       const char *current)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "values", values);
    json_object_object_add(o, "config_default",
                           current && *current ? json_object_new_string(current) : NULL);
    json_object_array_add(list, o);
}

static json_object *pool_names(virConnectPtr c)
{
    json_object *a = json_object_new_array();
    virStoragePoolPtr *pools = NULL;
    int n = virConnectListAllStoragePools(c, &pools, 0);
    for (int i = 0; i < n; i++) {
        json_object_array_add(a, json_object_new_string(virStoragePoolGetName(pools[i])));
        virStoragePoolFree(pools[i]);
    }
    free(pools);
    return a;
}

static json_object *network_names(virConnectPtr c)
{
    json_object *a = json_object_new_array();
    virNetworkPtr *nets = NULL;
    int n = virConnectListAllNetworks(c, &nets, 0);
    for (int i = 0; i < n; i++) {
        json_object_array_add(a, json_object_new_string(virNetworkGetName(nets[i])));
        virNetworkFree(nets[i]);
    }
    free(nets);
    return a;
}

/* The values the destination options may take on this host. */
static ek_err_t *ep_destination_options(ek_task_ctx_t *ctx, const ek_endpoint_t *ep,
                                        json_object *args, json_object **out)
{
    static const char *const mechs[] = {"https", "ssh", NULL};
    static const char *const srcs[] = {"agent", "lease", "arp", NULL};
    static const char *const modes[] = {"", "host-passthrough", "host-model", "maximum", NULL};
    static const char *const dtypes[] = {"auto", "kvm", "qemu", NULL};
    const ek_config_t *cfg = ctx ? ek_task_config(ctx) : NULL;
    ek_lv_conn_t *c;
    ek_lv_opts_t o;
    (void)args;
    ek_err_t *err = ek_lv_opts_load(cfg, ep->environment, &o);
    if (err)
        return err;
    if ((err = ek_lv_connect(ep, cfg, &c))) {
        ek_lv_opts_release(&o);
        return err;
    }
    virConnectPtr vc = ek_lv_virconn(c);
    json_object *list = json_object_new_array();
    add_option(list, "default_storage_pool", pool_names(vc), o.default_storage_pool);
    add_option(list, "migr_worker_network", network_names(vc), o.worker_network);
    add_option(list, "data_transfer_mechanism", strings(mechs), o.data_transfer_mechanism);
    add_option(list, "migr_worker_iface_addr_src", strings(srcs), o.iface_addr_src);
    add_option(list, "cpu_mode", strings(modes), o.cpu_mode);
    add_option(list, "domain_type", strings(dtypes), o.domain_type);
    ek_lv_disconnect(c);
    ek_lv_opts_release(&o);
    *out = list;
    return NULL;
}

/* The source side has no environment options. */
static ek_err_t *ep_source_options(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                   json_object **out)
{
    (void)ctx;
    (void)ep;
    (void)args;
    *out = json_object_new_array();
    return NULL;
}

static const ek_task_impl_t libvirt_tasks[] = {
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", ek_lv_task_validate_source_inputs},
    {"GET_INSTANCE_INFO", ek_lv_task_get_instance_info},
    {"VALIDATE_TRANSFER_DESTINATION_INPUTS", ek_lv_task_validate_destination_inputs},
    {"DEPLOY_TRANSFER_DISKS", ek_lv_task_deploy_transfer_disks},
    {"DELETE_TRANSFER_DISKS", ek_lv_task_delete_transfer_disks},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", ek_lv_task_deploy_source_resources},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", ek_lv_task_delete_source_resources},
    {"DEPLOY_TRANSFER_TARGET_RESOURCES", ek_lv_task_deploy_target_resources},
    {"DELETE_TRANSFER_TARGET_RESOURCES", ek_lv_task_delete_target_resources},
    {"SHUTDOWN_INSTANCE", ek_lv_task_shutdown_instance},
    {"REPLICATE_DISKS", ek_lv_task_replicate_disks},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", ek_lv_task_delete_source_disk_snapshots},
    {"CREATE_TRANSFER_DISK_SNAPSHOTS", ek_lv_task_create_disk_snapshots},
    {"DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", ek_lv_task_delete_target_disk_snapshots},
    {"RESTORE_TRANSFER_DISK_SNAPSHOTS", ek_lv_task_restore_disk_snapshots},
    {"VALIDATE_DEPLOYMENT_INPUTS", ek_lv_task_validate_deployment_inputs},
    {"DEPLOY_INSTANCE_RESOURCES", ek_lv_task_deploy_instance_resources},
    {"DEPLOY_OS_MORPHING_RESOURCES", ek_lv_task_deploy_os_morphing_resources},
    {"OS_MORPHING", ek_lv_task_os_morphing},
    {"DELETE_OS_MORPHING_RESOURCES", ek_lv_task_delete_os_morphing_resources},
    {"FINALIZE_INSTANCE_DEPLOYMENT", ek_lv_task_finalize_deployment},
    {"CLEANUP_FAILED_INSTANCE_DEPLOYMENT", ek_lv_task_cleanup_failed_deployment},
    {"UPDATE_SOURCE_TRANSFER", ek_lv_task_update_source_transfer},
    {"UPDATE_DESTINATION_TRANSFER", ek_lv_task_update_destination_transfer},
    {NULL, NULL},
};

const ek_provider_t ek_provider_libvirt = {
    .name = "libvirt",
    .capabilities = EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |
                    EK_CAP_ENDPOINT_STORAGE | EK_CAP_TRANSFER_EXPORT | EK_CAP_TRANSFER_IMPORT |
                    EK_CAP_OS_MORPHING | EK_CAP_VALIDATE_TRANSFER_EXPORT |
                    EK_CAP_VALIDATE_TRANSFER_IMPORT | EK_CAP_SOURCE_ENDPOINT_OPTIONS |
                    EK_CAP_DESTINATION_ENDPOINT_OPTIONS,
    .validate_connection = ek_lv_validate_connection, /* DNS, TCP, host key, login, libvirt */
    .list_instances = ek_lv_list_instances,           /* domains; name, marker, limit */
    .get_instance = ek_lv_get_instance,               /* args.name */
    .list_networks = ek_lv_list_networks,             /* libvirt networks */
    .list_storage = ek_lv_list_storage,               /* storage pools */
    .source_options = ep_source_options,              /* none */
    .destination_options = ep_destination_options,    /* pools, networks, choices */
    .tasks = libvirt_tasks,
    .diagnose_copy_error = ek_lv_diagnose_copy_error, /* a full destination pool */
};
