/* source.c - the libvirt provider as a source: what a domain is (its XML
 * read with libxml2, disk sizes from libvirt), the export_info the
 * destinations read (the same keys as the local provider's), and the source
 * tasks other than the copy itself (srcread.c).
 *
 * Only what a migration needs is read: name, vCPUs, memory, firmware, the
 * guest OS family when libosinfo metadata names it, the disks (device
 * "disk" of type file, block or volume; CD-ROMs and floppies are not
 * migrated) and the network interfaces. */
#include "worker/providers/libvirt/libvirt.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/tenantname.h"
#include "worker/providers/common/taskutil.h"

#define SHUTDOWN_TIMEOUT_S 300

/* ---- XML --------------------------------------------------------------------------- */

static char *xp_string(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xp->node = node;
    _cleanup_free_ char *full = ek_xasprintf("normalize-space(%s)", expr);
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST full, xp);
    char *s = NULL;
    if (o && o->type == XPATH_STRING && o->stringval && *o->stringval)
        s = ek_xstrdup((const char *)o->stringval);
    xmlXPathFreeObject(o);
    return s;
}

static xmlXPathObjectPtr xp_nodes(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xp->node = node;
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, xp);
    if (o && o->type != XPATH_NODESET) {
        xmlXPathFreeObject(o);
        return NULL;
    }
    return o;
}

static size_t xp_count(xmlXPathObjectPtr o)
{
    return o && o->nodesetval ? (size_t)o->nodesetval->nodeNr : 0;
}

static uint64_t memory_mib(const char *value, const char *unit)
{
    unsigned long long v = strtoull(value, NULL, 10);
    static const struct {
        const char *u;
        double mib;
    } units[] = {{"b", 1.0 / 1048576},
                 {"bytes", 1.0 / 1048576},
                 {"KB", 1000.0 / 1048576},
                 {"k", 1.0 / 1024},
                 {"KiB", 1.0 / 1024},
                 {"MB", 1e6 / 1048576},
                 {"M", 1},
                 {"MiB", 1},
                 {"GB", 1e9 / 1048576},
                 {"G", 1024},
                 {"GiB", 1024},
                 {"T", 1048576},
                 {"TiB", 1048576}};
    double f = 1.0 / 1024; /* KiB when no unit */
    for (size_t i = 0; unit && i < EK_ARRAY_SIZE(units); i++)
        if (strcmp(unit, units[i].u) == 0)
            f = units[i].mib;
    double m = (double)v * f;
    return (uint64_t)(m + 0.999);
}

void ek_lv_domain_free(ek_lv_domain_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_disks; i++) {
        ek_lv_disk_t *k = &d->disks[i];
        free(k->id);
        free(k->path);
        free(k->format);
        free(k->bus);
        free(k->pool);
        free(k->volume);
    }
    for (size_t i = 0; i < d->n_nics; i++) {
        free(d->nics[i].mac);
        free(d->nics[i].network);
        free(d->nics[i].kind);
        free(d->nics[i].model);
    }
    free(d->disks);
    free(d->nics);
    free(d->name);
    free(d->uuid);
    free(d->arch);
    free(d->firmware);
    free(d->os_type);
    free(d->machine);
    free(d);
}

static ek_err_t *parse_disk(xmlXPathContextPtr xp, xmlNodePtr node, ek_lv_domain_t *d)
{
    _cleanup_free_ char *device = xp_string(xp, node, "@device");
    _cleanup_free_ char *type = xp_string(xp, node, "@type");
    if (device && strcmp(device, "disk") != 0)
        return NULL; /* cdrom, floppy, lun: not migrated */
    char *id = xp_string(xp, node, "target/@dev");
    if (!id)
        return ek_err_new(EK_E_INVALID, "domain '%s' has a disk without <target dev=...>", d->name);
    ek_lv_disk_t *k = &d->disks[d->n_disks++];
    k->id = id;
    /* The target names the disk's files on the worker, its bitmaps and its
     * NBD export: a name, never a path. */
    ek_err_t *bad = ek_tenant_name_check(id, "disk target dev");
    if (bad)
        return ek_err_prefix(bad, "domain '%s'", d->name);
    if (!type || strcmp(type, "file") == 0) {
        k->path = xp_string(xp, node, "source/@file");
    } else if (strcmp(type, "block") == 0) {
        k->path = xp_string(xp, node, "source/@dev");
    } else if (strcmp(type, "volume") == 0) {
        k->pool = xp_string(xp, node, "source/@pool");
        k->volume = xp_string(xp, node, "source/@volume");
    } else {
        return ek_err_new(EK_E_INVALID,
                          "disk '%s' of domain '%s' is of type '%s': Ekman reads disks of type "
                          "file, block and volume",
                          id, d->name, type);
    }
    if (!k->path && !k->volume)
        return ek_err_new(EK_E_INVALID, "disk '%s' of domain '%s' has no source (empty drive?)", id,
                          d->name);
    k->format = xp_string(xp, node, "driver/@type");
    if (!k->format)
        k->format = ek_xstrdup("raw");
    k->bus = xp_string(xp, node, "target/@bus");
    if (!k->bus)
        k->bus = ek_xstrdup(strncmp(id, "vd", 2) == 0   ? "virtio"
                            : strncmp(id, "hd", 2) == 0 ? "ide"
                                                        : "sata");
    _cleanup_free_ char *boot = xp_string(xp, node, "boot/@order");
    k->boot_order = boot ? atoi(boot) : 0;
    return NULL;
}

static void parse_nics(xmlXPathContextPtr xp, xmlNodePtr root, ek_lv_domain_t *d)
{
    xmlXPathObjectPtr set = xp_nodes(xp, root, "devices/interface");
    size_t n = xp_count(set);
    d->nics = ek_xcalloc(n ? n : 1, sizeof(*d->nics));
    for (size_t i = 0; i < n; i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        ek_lv_nic_t *k = &d->nics[d->n_nics++];
        k->kind = xp_string(xp, node, "@type");
        if (!k->kind)
            k->kind = ek_xstrdup("network");
        k->mac = xp_string(xp, node, "mac/@address");
        k->model = xp_string(xp, node, "model/@type");
        k->network = xp_string(xp, node, "source/@network");
        if (!k->network)
            k->network = xp_string(xp, node, "source/@bridge");
        if (!k->network)
            k->network = xp_string(xp, node, "source/@dev");
    }
    xmlXPathFreeObject(set);
}

static void parse_general(xmlXPathContextPtr xp, xmlNodePtr root, ek_lv_domain_t *d)
{
    d->name = xp_string(xp, root, "name");
    d->uuid = xp_string(xp, root, "uuid");
    _cleanup_free_ char *vcpu = xp_string(xp, root, "vcpu");
    _cleanup_free_ char *mem = xp_string(xp, root, "memory");
    _cleanup_free_ char *unit = xp_string(xp, root, "memory/@unit");
    d->vcpus = vcpu ? atoi(vcpu) : 1;
    if (d->vcpus < 1)
        d->vcpus = 1;
    d->memory_mb = mem ? memory_mib(mem, unit) : 0;
    d->arch = xp_string(xp, root, "os/type/@arch");
    if (!d->arch)
        d->arch = ek_xstrdup("x86_64");
    d->machine = xp_string(xp, root, "os/type/@machine");
    _cleanup_free_ char *fw = xp_string(xp, root, "os/@firmware");
    _cleanup_free_ char *ltype = xp_string(xp, root, "os/loader/@type");
    _cleanup_free_ char *loader = xp_string(xp, root, "os/loader");
    bool efi = (fw && strcmp(fw, "efi") == 0) || (ltype && strcmp(ltype, "pflash") == 0) ||
               (loader && (strcasestr(loader, "ovmf") || strcasestr(loader, "edk2") ||
                           strcasestr(loader, "efi")));
    d->firmware = ek_xstrdup(efi ? "efi" : "bios");
    _cleanup_free_ char *os = xp_string(xp, root,
                                        "metadata/*[local-name()='libosinfo']/"
                                        "*[local-name()='os']/@id");
    d->os_type = ek_xstrdup(os && strstr(os, "microsoft.com/win") ? "windows" : "linux");
}

ek_err_t *ek_lv_domain_parse(const char *xml, ek_lv_domain_t **out)
{
    *out = NULL;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return ek_err_new(EK_E_PROTOCOL, "libvirt returned a domain XML that does not parse");
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!root || xmlStrcmp(root->name, BAD_CAST "domain") != 0) {
        xmlFreeDoc(doc);
        return ek_err_new(EK_E_PROTOCOL, "libvirt returned an XML document that is no domain");
    }
    xmlXPathContextPtr xp = xmlXPathNewContext(doc);
    ek_lv_domain_t *d = ek_xcalloc(1, sizeof(*d));
    parse_general(xp, root, d);
    ek_err_t *err = d->name ? NULL : ek_err_new(EK_E_PROTOCOL, "the domain XML has no <name>");
    xmlXPathObjectPtr set = xp_nodes(xp, root, "devices/disk");
    size_t n = xp_count(set);
    d->disks = ek_xcalloc(n ? n : 1, sizeof(*d->disks));
    for (size_t i = 0; i < n && !err; i++)
        err = parse_disk(xp, set->nodesetval->nodeTab[i], d);
    xmlXPathFreeObject(set);
    if (!err)
        parse_nics(xp, root, d);
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    if (err) {
        ek_lv_domain_free(d);
        return err;
    }
    *out = d;
    return NULL;
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
    if (virDomainGetBlockInfo(dom, k->id, &bi, 0) < 0)
        return ek_lv_err(EK_E_IO, "disk '%s' of domain '%s' (\"%s\"): cannot get its size", k->id,
                         dom_name, k->path);
    k->size = bi.capacity;
    return NULL;
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
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(d->uuid ? d->uuid : d->name));
    json_object_object_add(o, "name", json_object_new_string(d->name));
    json_object_object_add(o, "instance_name", json_object_new_string(d->name));
    json_object_object_add(o, "num_cpu", json_object_new_int(d->vcpus));
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)d->memory_mb));
    json_object_object_add(o, "firmware", json_object_new_string(d->firmware));
    json_object_object_add(o, "os_type", json_object_new_string(d->os_type));
    json_object_object_add(o, "arch", json_object_new_string(d->arch));
    json_object_object_add(o, "state", json_object_new_string(state_name(d->state)));
    if (d->machine)
        json_object_object_add(o, "machine_type", json_object_new_string(d->machine));
    json_object *disks = json_object_new_array();
    for (size_t i = 0; i < d->n_disks; i++) {
        const ek_lv_disk_t *k = &d->disks[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(k->id));
        json_object_object_add(x, "path", json_object_new_string(k->path));
        json_object_object_add(x, "format", json_object_new_string(k->format));
        json_object_object_add(x, "size_bytes", json_object_new_int64((int64_t)k->size));
        json_object_object_add(x, "bus", json_object_new_string(k->bus));
        json_object_object_add(x, "shareable", json_object_new_boolean(false));
        if (k->boot_order > 0)
            json_object_object_add(x, "boot_order", json_object_new_int(k->boot_order));
        if (k->pool)
            json_object_object_add(x, "storage_pool", json_object_new_string(k->pool));
        if (k->volume)
            json_object_object_add(x, "volume", json_object_new_string(k->volume));
        json_object_array_add(disks, x);
    }
    json_object *boot = json_object_new_array();
    for (int last = 0;;) {
        const ek_lv_disk_t *next = NULL;
        for (size_t i = 0; i < d->n_disks; i++)
            if (d->disks[i].boot_order > last &&
                (!next || d->disks[i].boot_order < next->boot_order))
                next = &d->disks[i];
        if (!next)
            break;
        json_object_array_add(boot, json_object_new_string(next->id));
        last = next->boot_order;
    }
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "boot_order", boot);
    json_object *nics = json_object_new_array();
    for (size_t i = 0; i < d->n_nics; i++) {
        const ek_lv_nic_t *k = &d->nics[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "mac", k->mac ? json_object_new_string(k->mac) : NULL);
        json_object_object_add(x, "network_name",
                               k->network ? json_object_new_string(k->network) : NULL);
        json_object_object_add(x, "type", json_object_new_string(k->kind));
        json_object_object_add(x, "model", k->model ? json_object_new_string(k->model) : NULL);
        json_object_array_add(nics, x);
    }
    json_object_object_add(o, "nics", nics);
    return o;
}

/* ---- tasks ------------------------------------------------------------------------- */

ek_err_t *ek_lv_task_connect_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    ek_lv_conn_t **out)
{
    if (!in->origin)
        return ek_err_new(EK_E_INVALID, "the task has no source endpoint");
    return ek_lv_connect(in->origin, ctx ? ek_task_config(ctx) : NULL, out);
}

/* The source environment takes no options. */
static ek_err_t *environment_check(json_object *env)
{
    if (!env || !json_object_is_type(env, json_type_object))
        return NULL;
    json_object_object_foreach(env, key, val)
    {
        (void)val;
        return ek_err_new(EK_E_INVALID,
                          "the libvirt source takes no source environment options; remove '%s'",
                          key);
    }
    return NULL;
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
