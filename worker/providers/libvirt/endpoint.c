/* endpoint.c - the libvirt endpoint calls: validate-connection (each step
 * of the connection is checked and named by conn.c) and the listings:
 * instances (domains), networks and storage pools of the host. */
#include "worker/providers/libvirt/libvirt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"

/* A query argument that may come as a string (from the URL) or a number. */
static const char *arg_string(json_object *args, const char *key)
{
    json_object *v;
    if (!args || !json_object_object_get_ex(args, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static ek_err_t *connect_ep(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, ek_lv_conn_t **c)
{
    return ek_lv_connect(ep, ctx ? ek_task_config(ctx) : NULL, c);
}

EK_LV_ENDPOINT_FN(validate_connection)
{
    ek_lv_conn_t *c;
    (void)args;
    ek_err_t *err = connect_ep(ctx, ep, &c);
    if (err)
        return err;
    virConnectPtr conn = ek_lv_virconn(c);
    json_object *o = json_object_new_object();
    unsigned long lv = ek_lv_lib_version(c), hv = 0;
    char *hostname = virConnectGetHostname(conn);
    const char *type = virConnectGetType(conn);
    if (virConnectGetVersion(conn, &hv) < 0)
        hv = 0;
    json_object_object_add(o, "host", json_object_new_string(ek_lv_host(c)));
    if (hostname)
        json_object_object_add(o, "hostname", json_object_new_string(hostname));
    if (type)
        json_object_object_add(o, "hypervisor", json_object_new_string(type));
    char buf[64];
    snprintf(buf, sizeof(buf), "%lu.%lu.%lu", lv / 1000000, lv / 1000 % 1000, lv % 1000);
    json_object_object_add(o, "libvirt_version", json_object_new_string(buf));
    snprintf(buf, sizeof(buf), "%lu.%lu.%lu", hv / 1000000, hv / 1000 % 1000, hv % 1000);
    json_object_object_add(o, "hypervisor_version", json_object_new_string(buf));
    free(hostname);
    ek_lv_disconnect(c);
    *out = o;
    return NULL;
}

static int cmp_dom(const void *a, const void *b)
{
    return strcmp(virDomainGetName(*(virDomainPtr const *)a),
                  virDomainGetName(*(virDomainPtr const *)b));
}

/* Coriolis's names of the firmware: "BIOS" or "EFI". */
static const char *firmware_type(const ek_lv_domain_t *d)
{
    return d->firmware && strcmp(d->firmware, "efi") == 0 ? "EFI" : "BIOS";
}

/* One domain of the listing: what virsh dominfo shows, and its disk count. */
static json_object *domain_summary(virDomainPtr dom)
{
    json_object *x = json_object_new_object();
    char uuid[VIR_UUID_STRING_BUFLEN];
    virDomainInfo info;
    json_object_object_add(x, "name", json_object_new_string(virDomainGetName(dom)));
    if (virDomainGetUUIDString(dom, uuid) == 0)
        json_object_object_add(x, "id", json_object_new_string(uuid));
    if (virDomainGetInfo(dom, &info) == 0) {
        static const char *const states[] = {"unknown",       "running",  "blocked", "paused",
                                             "shutting down", "shut off", "crashed", "suspended"};
        json_object_object_add(
            x, "state", json_object_new_string(info.state < 8 ? states[info.state] : "unknown"));
        json_object_object_add(x, "num_cpu", json_object_new_int(info.nrVirtCpu));
        json_object_object_add(x, "memory_mb",
                               json_object_new_int64((int64_t)(info.maxMem / 1024)));
    }
    char *xml = virDomainGetXMLDesc(dom, 0);
    ek_lv_domain_t *d = NULL;
    ek_err_t *err = xml ? ek_lv_domain_parse(xml, &d) : NULL;
    if (d) {
        json_object_object_add(x, "num_disks", json_object_new_int((int)d->n_disks));
        json_object_object_add(x, "firmware", json_object_new_string(d->firmware));
        json_object_object_add(x, "firmware_type", json_object_new_string(firmware_type(d)));
        json_object_object_add(x, "os_type", json_object_new_string(d->os_type));
    } else if (err) {
        json_object_object_add(x, "error", json_object_new_string(err->message));
    }
    ek_err_free(err);
    ek_lv_domain_free(d);
    free(xml);
    virResetLastError();
    return x;
}

EK_LV_ENDPOINT_FN(list_instances)
{
    const char *pattern = arg_string(args, "name"), *marker = arg_string(args, "marker");
    const char *limit_s = arg_string(args, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
    ek_lv_conn_t *c;
    ek_err_t *err = connect_ep(ctx, ep, &c);
    if (err)
        return err;
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(ek_lv_virconn(c), &doms, 0);
    if (n < 0) {
        err = ek_lv_err(EK_E_IO, "cannot list the domains of %s", ek_lv_describe(c));
        ek_lv_disconnect(c);
        return err;
    }
    if (n > 1)
        qsort(doms, (size_t)n, sizeof(*doms), cmp_dom);
    json_object *list = json_object_new_array();
    bool past_marker = !marker || !*marker;
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);
        if (!past_marker)
            past_marker = strcmp(name, marker) == 0;
        else if ((!pattern || !*pattern || strcasestr(name, pattern)) &&
                 (limit <= 0 || json_object_array_length(list) < (size_t)limit))
            json_object_array_add(list, domain_summary(doms[i]));
        virDomainFree(doms[i]);
    }
    free(doms);
    ek_lv_disconnect(c);
    *out = list;
    return NULL;
}

EK_LV_ENDPOINT_FN(get_instance)
{
    const char *name = arg_string(args, "name");
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the instance name is missing");
    ek_lv_conn_t *c;
    ek_lv_domain_t *d;
    ek_err_t *err = connect_ep(ctx, ep, &c);
    if (err)
        return err;
    if ((err = ek_lv_domain_load(c, name, &d))) {
        ek_lv_disconnect(c);
        return err;
    }
    /* the export_info keys, and Coriolis's devices and firmware_type */
    json_object *info = ek_lv_domain_export_info(d), *devices = NULL;
    virDomainPtr dom = virDomainLookupByName(ek_lv_virconn(c), d->name);
    char *xml = dom ? virDomainGetXMLDesc(dom, 0) : NULL;
    if (!xml)
        err = ek_lv_err(EK_E_IO, "domain '%s': cannot read its XML", d->name);
    else
        err = ek_lv_domain_devices(xml, dom, d, &devices);
    if (!err) {
        json_object_object_add(info, "firmware_type", json_object_new_string(firmware_type(d)));
        json_object_object_add(info, "devices", devices);
        *out = info;
    } else {
        json_object_put(info);
    }
    free(xml);
    if (dom)
        virDomainFree(dom);
    ek_lv_domain_free(d);
    ek_lv_disconnect(c);
    return err;
}

EK_LV_ENDPOINT_FN(list_networks)
{
    ek_lv_conn_t *c;
    (void)args;
    ek_err_t *err = connect_ep(ctx, ep, &c);
    if (err)
        return err;
    virNetworkPtr *nets = NULL;
    int n = virConnectListAllNetworks(ek_lv_virconn(c), &nets, 0);
    if (n < 0) {
        err = ek_lv_err(EK_E_IO, "cannot list the networks of %s", ek_lv_describe(c));
        ek_lv_disconnect(c);
        return err;
    }
    json_object *list = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *x = json_object_new_object();
        char uuid[VIR_UUID_STRING_BUFLEN];
        const char *name = virNetworkGetName(nets[i]);
        char *bridge = virNetworkGetBridgeName(nets[i]);
        json_object_object_add(
            x, "id",
            json_object_new_string(virNetworkGetUUIDString(nets[i], uuid) == 0 ? uuid : name));
        json_object_object_add(x, "name", json_object_new_string(name));
        json_object_object_add(x, "type", json_object_new_string("network"));
        json_object_object_add(x, "active",
                               json_object_new_boolean(virNetworkIsActive(nets[i]) == 1));
        if (bridge)
            json_object_object_add(x, "bridge", json_object_new_string(bridge));
        free(bridge);
        json_object_array_add(list, x);
        virNetworkFree(nets[i]);
    }
    free(nets);
    virResetLastError();
    ek_lv_disconnect(c);
    *out = list;
    return NULL;
}

static const char *pool_type(virStoragePoolPtr p)
{
    static char type[32];
    char *xml = virStoragePoolGetXMLDesc(p, 0);
    const char *t = xml ? strstr(xml, "<pool type='") : NULL;
    snprintf(type, sizeof(type), "unknown");
    if (t) {
        t += strlen("<pool type='");
        size_t n = strcspn(t, "'");
        if (n < sizeof(type))
            snprintf(type, sizeof(type), "%.*s", (int)n, t);
    }
    free(xml);
    return type;
}

EK_LV_ENDPOINT_FN(list_storage)
{
    ek_lv_conn_t *c;
    (void)args;
    ek_err_t *err = connect_ep(ctx, ep, &c);
    if (err)
        return err;
    virStoragePoolPtr *pools = NULL;
    int n = virConnectListAllStoragePools(ek_lv_virconn(c), &pools, 0);
    if (n < 0) {
        err = ek_lv_err(EK_E_IO, "cannot list the storage pools of %s", ek_lv_describe(c));
        ek_lv_disconnect(c);
        return err;
    }
    json_object *backends = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *x = json_object_new_object();
        const char *name = virStoragePoolGetName(pools[i]);
        virStoragePoolInfo info;
        json_object_object_add(x, "id", json_object_new_string(name));
        json_object_object_add(x, "name", json_object_new_string(name));
        json_object_object_add(x, "type", json_object_new_string(pool_type(pools[i])));
        if (virStoragePoolGetInfo(pools[i], &info) == 0) {
            json_object_object_add(x, "active",
                                   json_object_new_boolean(info.state == VIR_STORAGE_POOL_RUNNING));
            json_object_object_add(x, "total_bytes", json_object_new_int64((int64_t)info.capacity));
            json_object_object_add(x, "free_bytes", json_object_new_int64((int64_t)info.available));
        }
        json_object_array_add(backends, x);
        virStoragePoolFree(pools[i]);
    }
    free(pools);
    virResetLastError();
    json_object *o = json_object_new_object();
    json_object_object_add(o, "storage_backends", backends);
    const ek_config_t *cfg = ctx ? ek_task_config(ctx) : NULL;
    const char *def =
        cfg ? ek_config_get_string(cfg, "libvirt_migration_provider", "default_storage_pool")
            : NULL;
    if (def && *def)
        json_object_object_add(o, "config_default", json_object_new_string(def));
    ek_lv_disconnect(c);
    *out = o;
    return NULL;
}
