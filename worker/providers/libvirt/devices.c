/* devices.c - the "devices" of an instance as Coriolis's instance info
 * names them (disks, cdroms, floppies, controllers, nics, serial_ports),
 * read from the domain XML libvirtd returns, with the disk sizes the source
 * side already learned and, for a running domain, the addresses of its
 * interfaces (DHCP leases of libvirt networks). What `endpoint instance
 * show` answers beside the export_info keys. */
#include "worker/providers/libvirt/libvirt.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdlib.h>
#include <string.h>
#include "common/mem.h"
#include "worker/providers/common/xpath.h"

static void add_str(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

static void add_int_str(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_int(atoi(value)) : NULL);
}

static bool has(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xmlXPathObjectPtr set = ek_xp_nodes(xp, node, expr);
    bool found = ek_xp_count(set) > 0;
    xmlXPathFreeObject(set);
    return found;
}

/* The controller a drive address points at: "<type>.<index>" as in the
 * controllers list; NULL when the device sits on PCI (virtio). */
static char *controller_of(xmlXPathContextPtr xp, xmlNodePtr node, const char *bus)
{
    _cleanup_free_ char *atype = ek_xp_string(xp, node, "address/@type");
    if (!atype || strcmp(atype, "drive") != 0 || !bus)
        return NULL;
    _cleanup_free_ char *ctl = ek_xp_string(xp, node, "address/@controller");
    return ek_xasprintf("%s.%s", strcmp(bus, "fdc") == 0 ? "fdc" : bus, ctl ? ctl : "0");
}

static const ek_lv_disk_t *known_disk(const ek_lv_domain_t *d, const char *id)
{
    for (size_t i = 0; id && i < d->n_disks; i++)
        if (strcmp(d->disks[i].id, id) == 0)
            return &d->disks[i];
    return NULL;
}

static void read_drives(xmlXPathContextPtr xp, xmlNodePtr root, const ek_lv_domain_t *d,
                        json_object *devices)
{
    json_object *disks = json_object_new_array(), *cdroms = json_object_new_array(),
                *floppies = json_object_new_array();
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/disk");
    for (size_t i = 0; i < ek_xp_count(set); i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *device = ek_xp_string(xp, node, "@device");
        _cleanup_free_ char *id = ek_xp_string(xp, node, "target/@dev");
        _cleanup_free_ char *bus = ek_xp_string(xp, node, "target/@bus");
        _cleanup_free_ char *unit = ek_xp_string(xp, node, "address[@type='drive']/@unit");
        _cleanup_free_ char *ctl = controller_of(xp, node, bus);
        json_object *x = json_object_new_object();
        add_str(x, "id", id);
        add_str(x, "bus", bus);
        add_str(x, "controller_id", ctl);
        add_int_str(x, "unit_number", unit);
        const ek_lv_disk_t *k = known_disk(d, id);
        if (!device || strcmp(device, "disk") == 0) {
            add_str(x, "path", k ? k->path : NULL);
            add_str(x, "format", k && k->format ? k->format : "raw");
            json_object_object_add(x, "size_bytes",
                                   json_object_new_int64(k ? (int64_t)k->size : 0));
            json_object_object_add(x, "shareable",
                                   json_object_new_boolean(has(xp, node, "shareable")));
            if (k && k->pool) {
                add_str(x, "storage_backend_identifier", k->pool);
                add_str(x, "volume", k->volume);
            }
            json_object_array_add(disks, x);
        } else {
            _cleanup_free_ char *src = ek_xp_string(xp, node, "source/@file");
            add_str(x, "path", src);
            json_object_array_add(strcmp(device, "floppy") == 0 ? floppies : cdroms, x);
        }
    }
    xmlXPathFreeObject(set);
    json_object_object_add(devices, "disks", disks);
    json_object_object_add(devices, "cdroms", cdroms);
    json_object_object_add(devices, "floppies", floppies);
}

static void read_controllers(xmlXPathContextPtr xp, xmlNodePtr root, json_object *devices)
{
    json_object *list = json_object_new_array();
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/controller");
    for (size_t i = 0; i < ek_xp_count(set); i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *type = ek_xp_string(xp, node, "@type");
        _cleanup_free_ char *index = ek_xp_string(xp, node, "@index");
        _cleanup_free_ char *model = ek_xp_string(xp, node, "@model");
        json_object *x = json_object_new_object();
        char *id = ek_xasprintf("%s.%s", type ? type : "unknown", index ? index : "0");
        add_str(x, "id", id);
        free(id);
        add_str(x, "type", type);
        add_int_str(x, "bus_number", index ? index : "0");
        add_str(x, "model", model);
        json_object_array_add(list, x);
    }
    xmlXPathFreeObject(set);
    json_object_object_add(devices, "controllers", list);
}

/* The addresses of a running domain's interfaces, by MAC: {"52:54:..":
 * ["192.168.122.5", ...]}. Empty when libvirt knows none (no lease, or
 * an interface that is not on a libvirt network). */
static json_object *interface_addresses(virDomainPtr dom)
{
    json_object *by_mac = json_object_new_object();
    virDomainInterfacePtr *ifaces = NULL;
    int n =
        dom ? virDomainInterfaceAddresses(dom, &ifaces, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
            : -1;
    for (int i = 0; i < n; i++) {
        if (ifaces[i]->hwaddr) {
            json_object *list = json_object_new_array();
            for (unsigned j = 0; j < ifaces[i]->naddrs; j++)
                if (ifaces[i]->addrs[j].addr)
                    json_object_array_add(list, json_object_new_string(ifaces[i]->addrs[j].addr));
            json_object_object_add(by_mac, ifaces[i]->hwaddr, list);
        }
        virDomainInterfaceFree(ifaces[i]);
    }
    free(ifaces);
    virResetLastError();
    return by_mac;
}

static void read_nics(xmlXPathContextPtr xp, xmlNodePtr root, virDomainPtr dom, bool running,
                      json_object *devices)
{
    json_object *list = json_object_new_array();
    json_object *addrs = running ? interface_addresses(dom) : json_object_new_object();
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/interface");
    for (size_t i = 0; i < ek_xp_count(set); i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *type = ek_xp_string(xp, node, "@type");
        _cleanup_free_ char *mac = ek_xp_string(xp, node, "mac/@address");
        _cleanup_free_ char *model = ek_xp_string(xp, node, "model/@type");
        _cleanup_free_ char *target = ek_xp_string(xp, node, "target/@dev");
        _cleanup_free_ char *net = ek_xp_string(xp, node, "source/@network");
        if (!net)
            net = ek_xp_string(xp, node, "source/@bridge");
        if (!net)
            net = ek_xp_string(xp, node, "source/@dev");
        json_object *x = json_object_new_object();
        char *id = mac ? ek_xstrdup(mac) : ek_xasprintf("nic%zu", i);
        add_str(x, "id", id);
        free(id);
        add_str(x, "name", target);
        add_str(x, "mac_address", mac);
        add_str(x, "network_name", net);
        add_str(x, "network_type", type ? type : "network");
        add_str(x, "model", model);
        json_object *ips = NULL;
        if (mac)
            json_object_object_get_ex(addrs, mac, &ips);
        json_object_object_add(x, "ip_addresses",
                               ips ? json_object_get(ips) : json_object_new_array());
        json_object_array_add(list, x);
    }
    xmlXPathFreeObject(set);
    json_object_put(addrs);
    json_object_object_add(devices, "nics", list);
}

static void read_serial_ports(xmlXPathContextPtr xp, xmlNodePtr root, json_object *devices)
{
    json_object *list = json_object_new_array();
    xmlXPathObjectPtr set = ek_xp_nodes(xp, root, "devices/serial");
    for (size_t i = 0; i < ek_xp_count(set); i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *type = ek_xp_string(xp, node, "@type");
        _cleanup_free_ char *port = ek_xp_string(xp, node, "target/@port");
        _cleanup_free_ char *ttype = ek_xp_string(xp, node, "target/@type");
        json_object *x = json_object_new_object();
        char *id = ek_xasprintf("serial%s", port ? port : "0");
        add_str(x, "id", id);
        free(id);
        add_str(x, "type", type);
        add_str(x, "target_type", ttype);
        add_int_str(x, "port", port);
        json_object_array_add(list, x);
    }
    xmlXPathFreeObject(set);
    json_object_object_add(devices, "serial_ports", list);
}

ek_err_t *ek_lv_domain_devices(const char *xml, virDomainPtr dom, const ek_lv_domain_t *d,
                               json_object **out)
{
    *out = NULL;
    size_t len = strlen(xml);
    if (len > EK_DOMXML_MAX_BYTES)
        return ek_err_new(EK_E_INVALID, "the domain XML is larger than %u bytes",
                          EK_DOMXML_MAX_BYTES);
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!root || xmlStrcmp(root->name, BAD_CAST "domain") != 0) {
        xmlFreeDoc(doc);
        return ek_err_new(EK_E_INVALID, "domain '%s': its XML is not a libvirt domain", d->name);
    }
    xmlXPathContextPtr xp = xmlXPathNewContext(doc);
    json_object *devices = json_object_new_object();
    read_drives(xp, root, d, devices);
    read_controllers(xp, root, devices);
    read_nics(xp, root, dom, d->running, devices);
    read_serial_ports(xp, root, devices);
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    *out = devices;
    return NULL;
}
