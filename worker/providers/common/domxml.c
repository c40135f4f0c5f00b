/* domxml.c - libvirt domain XML into ek_domxml_t and export_info (see
 * domxml.h). */
#include "worker/providers/common/domxml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"
#include "common/tenantname.h"
#include "worker/providers/common/xpath.h"

/* ---- values ------------------------------------------------------------------------- */

/* libvirt's memory units (docs: formatdomain, "Memory Allocation"). */
static bool memory_bytes(const char *value, const char *unit, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"b", 1},           {"bytes", 1},        {"KB", 1000},     {"k", 1024},
        {"KiB", 1024},      {"MB", 1000000},     {"M", 1 << 20},   {"MiB", 1 << 20},
        {"GB", 1000000000}, {"G", 1 << 30},      {"GiB", 1 << 30}, {"TB", 1000000000000ull},
        {"T", 1ull << 40},  {"TiB", 1ull << 40},
    };
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-')
        return false;
    uint64_t mult = 0;
    if (!unit)
        mult = 1024;
    for (size_t i = 0; i < EK_ARRAY_SIZE(units) && !mult; i++)
        if (strcmp(unit, units[i].name) == 0 ||
            (strlen(unit) == 1 && strcasecmp(unit, units[i].name) == 0))
            mult = units[i].mult;
    if (!mult || v > UINT64_MAX / mult)
        return false;
    *out = v * mult;
    return true;
}

static char *resolve_path(const char *base_dir, const char *p)
{
    if (p[0] == '/' || !base_dir)
        return ek_xstrdup(p);
    return ek_xasprintf("%s/%s", base_dir, p);
}

/* Windows guests are told apart by the libosinfo id virt-install and
 * virt-manager write; everything else is taken for Linux. */
static char *guess_os_type(xmlXPathContextPtr xp, xmlNodePtr root)
{
    _cleanup_free_ char *id = ek_xp_string(xp, root,
                                           "metadata/*[local-name()='libosinfo']/"
                                           "*[local-name()='os']/@id");
    return ek_xstrdup(id && strstr(id, "microsoft.com/win") ? "windows" : "linux");
}

static char *guess_firmware(xmlXPathContextPtr xp, xmlNodePtr root)
{
    _cleanup_free_ char *fw = ek_xp_string(xp, root, "os/@firmware");
    _cleanup_free_ char *loader_type = ek_xp_string(xp, root, "os/loader/@type");
    _cleanup_free_ char *loader = ek_xp_string(xp, root, "os/loader");
    bool efi =
        (fw && strcmp(fw, "efi") == 0) || (loader_type && strcmp(loader_type, "pflash") == 0) ||
        (loader &&
         (strcasestr(loader, "ovmf") || strcasestr(loader, "edk2") || strcasestr(loader, "efi")));
    return ek_xstrdup(efi ? "efi" : "bios");
}

/* ---- parsing ------------------------------------------------------------------------- */

void ek_domxml_free(ek_domxml_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_disks; i++) {
        ek_domxml_disk_t *k = &d->disks[i];
        free(k->id);
        free(k->path);
        free(k->pool);
        free(k->volume);
        free(k->format);
        free(k->bus);
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
    free(d->xml_path);
    free(d->arch);
    free(d->machine);
    free(d->firmware);
    free(d->os_type);
    free(d);
}

static ek_err_t *parse_disk(xmlXPathContextPtr xp, xmlNodePtr node, size_t i,
                            const ek_domxml_opts_t *o, ek_domxml_t *d)
{
    _cleanup_free_ char *device = ek_xp_string(xp, node, "@device");
    _cleanup_free_ char *type = ek_xp_string(xp, node, "@type");
    if (device && strcmp(device, "disk") != 0)
        return NULL; /* cdrom, floppy, lun: not migrated */
    ek_domxml_disk_t *k = &d->disks[d->n_disks];
    k->id = ek_xp_string(xp, node, "target/@dev");
    if (!k->id)
        return ek_err_new(EK_E_INVALID, "disk #%zu has no <target dev=...>", i + 1);
    d->n_disks++; /* from here on, released with the domain */
    for (size_t j = 0; j + 1 < d->n_disks; j++)
        if (strcmp(d->disks[j].id, k->id) == 0)
            return ek_err_new(EK_E_INVALID, "two disks have target dev '%s'", k->id);
    /* the target names the disk's files on the worker, its bitmaps and its
     * NBD export: a name, never a path */
    ek_err_t *err = ek_tenant_name_check(k->id, "disk target dev");
    if (err)
        return err;
    _cleanup_free_ char *src = NULL;
    if (!type || strcmp(type, "file") == 0) {
        src = ek_xp_string(xp, node, "source/@file");
    } else if (strcmp(type, "block") == 0) {
        src = ek_xp_string(xp, node, "source/@dev");
    } else if (strcmp(type, "volume") == 0 && o->volumes) {
        k->pool = ek_xp_string(xp, node, "source/@pool");
        k->volume = ek_xp_string(xp, node, "source/@volume");
        if (!k->pool || !k->volume)
            return ek_err_new(EK_E_INVALID, "disk '%s' names no pool and volume", k->id);
    } else {
        return ek_err_new(EK_E_INVALID, "disk '%s' is of type '%s': %s reads %s disks", k->id, type,
                          o->reader ? o->reader : "Ekman",
                          o->volumes ? "file, block and volume" : "file and block");
    }
    if (src)
        k->path = resolve_path(o->base_dir, src);
    else if (!k->volume)
        return ek_err_new(EK_E_INVALID, "disk '%s' has no source image (an empty drive?)", k->id);
    k->format = ek_xp_string(xp, node, "driver/@type");
    k->bus = ek_xp_string(xp, node, "target/@bus");
    if (!k->bus)
        k->bus = ek_xstrdup(strncmp(k->id, "vd", 2) == 0   ? "virtio"
                            : strncmp(k->id, "hd", 2) == 0 ? "ide"
                                                           : "sata");
    _cleanup_free_ char *boot = ek_xp_string(xp, node, "boot/@order");
    k->boot_order = boot ? atoi(boot) : 0;
    return NULL;
}

static ek_err_t *parse_disks(xmlXPathContextPtr xp, xmlNodePtr root, const ek_domxml_opts_t *o,
                             ek_domxml_t *d)
{
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/disk");
    size_t n = ek_xp_count(set);
    d->disks = ek_xcalloc(n ? n : 1, sizeof(*d->disks));
    ek_err_t *err = NULL;
    for (size_t i = 0; i < n && !err; i++)
        err = parse_disk(xp, set->nodesetval->nodeTab[i], i, o, d);
    xmlXPathFreeObject(set);
    return err;
}

static void parse_nics(xmlXPathContextPtr xp, xmlNodePtr root, ek_domxml_t *d)
{
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/interface");
    size_t n = ek_xp_count(set);
    d->nics = ek_xcalloc(n ? n : 1, sizeof(*d->nics));
    for (size_t i = 0; i < n; i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        ek_domxml_nic_t *k = &d->nics[d->n_nics++];
        k->kind = ek_xp_string(xp, node, "@type");
        if (!k->kind)
            k->kind = ek_xstrdup("network");
        k->mac = ek_xp_string(xp, node, "mac/@address");
        k->model = ek_xp_string(xp, node, "model/@type");
        k->network = ek_xp_string(xp, node, "source/@network");
        if (!k->network)
            k->network = ek_xp_string(xp, node, "source/@bridge");
        if (!k->network)
            k->network = ek_xp_string(xp, node, "source/@dev");
    }
    xmlXPathFreeObject(set);
}

static ek_err_t *parse_general(xmlXPathContextPtr xp, xmlNodePtr root, ek_domxml_t *d)
{
    d->name = ek_xp_string(xp, root, "name");
    if (!d->name)
        return ek_err_new(EK_E_INVALID, "the domain has no <name>");
    d->uuid = ek_xp_string(xp, root, "uuid");
    _cleanup_free_ char *vcpu = ek_xp_string(xp, root, "vcpu");
    _cleanup_free_ char *mem = ek_xp_string(xp, root, "memory");
    _cleanup_free_ char *mem_unit = ek_xp_string(xp, root, "memory/@unit");
    uint64_t mem_bytes = 0;
    if (!mem || !memory_bytes(mem, mem_unit, &mem_bytes))
        return ek_err_new(EK_E_INVALID, "domain '%s': <memory> is missing or not a size", d->name);
    d->memory_mb = (mem_bytes + (1 << 20) - 1) >> 20;
    d->vcpus = vcpu ? atoi(vcpu) : 1;
    if (d->vcpus < 1 || d->vcpus > 4096)
        return ek_err_new(EK_E_INVALID, "domain '%s': <vcpu> '%s' is not a CPU count", d->name,
                          vcpu);
    d->arch = ek_xp_string(xp, root, "os/type/@arch");
    if (!d->arch)
        d->arch = ek_xstrdup("x86_64");
    d->machine = ek_xp_string(xp, root, "os/type/@machine");
    d->firmware = guess_firmware(xp, root);
    d->os_type = guess_os_type(xp, root);
    return NULL;
}

ek_err_t *ek_domxml_parse(const char *text, size_t len, const ek_domxml_opts_t *o,
                          ek_domxml_t **out)
{
    *out = NULL;
    if (len > EK_DOMXML_MAX_BYTES)
        return ek_err_new(EK_E_INVALID, "the domain XML is larger than %u bytes",
                          EK_DOMXML_MAX_BYTES);
    xmlParserCtxtPtr pc = xmlNewParserCtxt();
    if (!pc)
        return ek_err_new(EK_E_INTERNAL, "libxml2: cannot create a parser");
    /* no network, no entity substitution, no DTD loading */
    xmlDocPtr doc = xmlCtxtReadMemory(pc, text, (int)len, "domain.xml", NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        xmlErrorPtr e = xmlCtxtGetLastError(pc);
        ek_err_t *err =
            ek_err_new(EK_E_INVALID, "malformed domain XML at line %d: %s", e ? e->line : 0,
                       e && e->message ? e->message : "unknown error\n");
        /* libxml2's messages end with a newline */
        size_t n = strlen(err->message);
        if (n && err->message[n - 1] == '\n')
            err->message[n - 1] = 0;
        xmlFreeParserCtxt(pc);
        return err;
    }
    xmlFreeParserCtxt(pc);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!root || xmlStrcmp(root->name, BAD_CAST "domain") != 0) {
        ek_err_t *err = ek_err_new(EK_E_INVALID, "not a libvirt domain: the root element is <%s>",
                                   root ? (const char *)root->name : "");
        xmlFreeDoc(doc);
        return err;
    }
    xmlXPathContextPtr xp = xmlXPathNewContext(doc);
    ek_domxml_t *d = ek_xcalloc(1, sizeof(*d));
    ek_err_t *err = parse_general(xp, root, d);
    if (!err && (err = parse_disks(xp, root, o, d)))
        err = ek_err_prefix(err, "domain '%s'", d->name);
    if (!err)
        parse_nics(xp, root, d);
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    if (err) {
        ek_domxml_free(d);
        return err;
    }
    *out = d;
    return NULL;
}

/* ---- export_info ---------------------------------------------------------------------- */

static void add_str(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

json_object *ek_domxml_export_info(const ek_domxml_t *d, const ek_domxml_export_opts_t *opts)
{
    json_object *o = json_object_new_object();
    add_str(o, "id", opts && opts->id_is_uuid && d->uuid ? d->uuid : d->name);
    add_str(o, "name", d->name);
    add_str(o, "instance_name", d->name);
    json_object_object_add(o, "num_cpu", json_object_new_int(d->vcpus));
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)d->memory_mb));
    add_str(o, "firmware", d->firmware);
    add_str(o, "os_type", d->os_type);
    add_str(o, "arch", d->arch);
    if (opts && opts->state_name)
        add_str(o, "state", opts->state_name);
    if (d->machine)
        add_str(o, "machine_type", d->machine);
    if (d->xml_path)
        add_str(o, "xml_path", d->xml_path);
    json_object *disks = json_object_new_array();
    for (size_t i = 0; i < d->n_disks; i++) {
        const ek_domxml_disk_t *k = &d->disks[i];
        json_object *x = json_object_new_object();
        add_str(x, "id", k->id);
        add_str(x, "path", k->path);
        add_str(x, "format", k->format ? k->format : "raw");
        json_object_object_add(x, "size_bytes", json_object_new_int64((int64_t)k->size));
        add_str(x, "bus", k->bus);
        json_object_object_add(x, "shareable", json_object_new_boolean(false));
        if (k->boot_order > 0)
            json_object_object_add(x, "boot_order", json_object_new_int(k->boot_order));
        if (k->pool)
            add_str(x, "storage_pool", k->pool);
        if (k->volume)
            add_str(x, "volume", k->volume);
        json_object_array_add(disks, x);
    }
    /* boot_order: the disks that have one, lowest order first */
    json_object *boot = json_object_new_array();
    for (int last = 0;;) {
        const ek_domxml_disk_t *next = NULL;
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
        const ek_domxml_nic_t *k = &d->nics[i];
        json_object *x = json_object_new_object();
        add_str(x, "mac", k->mac);
        add_str(x, "network_name", k->network);
        add_str(x, "type", k->kind);
        add_str(x, "model", k->model);
        json_object_array_add(nics, x);
    }
    json_object_object_add(o, "nics", nics);
    return o;
}
