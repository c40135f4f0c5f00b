/* domain_xml.c - the libvirt domain XML of a deployed VM, written by
 * FINALIZE_INSTANCE_DEPLOYMENT beside its disks: a plain <domain
 * type='qemu'> with the source's vCPUs, memory, firmware and architecture,
 * its disks in the source's order (same target names and buses) pointing at
 * the deployed raw files, and its NICs with the source MACs on the
 * networks the transfer's network_map names. libxml2 builds the tree, so
 * every name and path is escaped. */
#include "worker/providers/local/local.h"

#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/taskutil.h"

static const char *str_of(json_object *o, const char *key, const char *def)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return def;
}

static int64_t int_of(json_object *o, const char *key, int64_t def)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return def;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name, const char *text)
{
    return xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST text);
}

static void prop(xmlNodePtr node, const char *name, const char *value)
{
    xmlNewProp(node, BAD_CAST name, BAD_CAST value);
}

ek_err_t *ek_local_domain_xml_build(json_object *export_info, const ek_local_deployed_disk_t *disks,
                                    size_t n_disks, json_object *network_map, char **out)
{
    const char *name = str_of(export_info, "instance_name", str_of(export_info, "name", NULL));
    if (!name)
        return ek_err_new(EK_E_INVALID, "export_info has no instance name");
    int64_t cpus = int_of(export_info, "num_cpu", 1), mem = int_of(export_info, "memory_mb", 0);
    if (cpus < 1 || mem < 1)
        return ek_err_new(EK_E_INVALID, "export_info of '%s' has no CPU count or memory size",
                          name);
    bool efi = strcmp(str_of(export_info, "firmware", "bios"), "efi") == 0;
    bool windows = strcmp(str_of(export_info, "os_type", "linux"), "windows") == 0;
    char num[32];

    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = xmlNewNode(NULL, BAD_CAST "domain");
    xmlDocSetRootElement(doc, root);
    prop(root, "type", "qemu");
    child(root, "name", name);
    snprintf(num, sizeof(num), "%lld", (long long)mem);
    prop(child(root, "memory", num), "unit", "MiB");
    snprintf(num, sizeof(num), "%lld", (long long)cpus);
    prop(child(root, "vcpu", num), "placement", "static");

    xmlNodePtr os = child(root, "os", NULL);
    if (efi)
        prop(os, "firmware", "efi");
    prop(child(os, "type", "hvm"), "arch", str_of(export_info, "arch", "x86_64"));
    bool per_disk_boot = false;
    for (size_t i = 0; i < n_disks; i++)
        per_disk_boot = per_disk_boot || disks[i].boot_order > 0;
    if (!per_disk_boot) /* libvirt takes one or the other */
        prop(child(os, "boot", NULL), "dev", "hd");
    xmlNodePtr features = child(root, "features", NULL);
    child(features, "acpi", NULL);
    child(features, "apic", NULL);
    prop(child(root, "clock", NULL), "offset", windows ? "localtime" : "utc");
    child(root, "on_poweroff", "destroy");
    child(root, "on_reboot", "restart");
    child(root, "on_crash", "destroy");

    xmlNodePtr devices = child(root, "devices", NULL);
    for (size_t i = 0; i < n_disks; i++) {
        xmlNodePtr d = child(devices, "disk", NULL);
        prop(d, "type", "file");
        prop(d, "device", "disk");
        xmlNodePtr drv = child(d, "driver", NULL);
        prop(drv, "name", "qemu");
        prop(drv, "type", "raw");
        prop(child(d, "source", NULL), "file", disks[i].path);
        xmlNodePtr tgt = child(d, "target", NULL);
        prop(tgt, "dev", disks[i].id);
        prop(tgt, "bus", disks[i].bus ? disks[i].bus : "virtio");
        if (disks[i].boot_order > 0) {
            snprintf(num, sizeof(num), "%d", disks[i].boot_order);
            prop(child(d, "boot", NULL), "order", num);
        }
    }
    json_object *nics;
    ek_err_t *err = NULL;
    if (json_object_object_get_ex(export_info, "nics", &nics) &&
        json_object_is_type(nics, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(nics) && !err; i++) {
            json_object *nic = json_object_array_get_idx(nics, i);
            const char *src = str_of(nic, "network_name", NULL), *mac = str_of(nic, "mac", NULL);
            bool bridge;
            const char *dst = ek_network_map_lookup(network_map, src, &bridge);
            if (!dst) {
                err = ek_err_new(EK_E_INVALID,
                                 "network '%s' of '%s' is not in the network_map: map it to a "
                                 "destination network",
                                 src ? src : "(none)", name);
                break;
            }
            xmlNodePtr x = child(devices, "interface", NULL);
            prop(x, "type", bridge ? "bridge" : "network");
            if (mac)
                prop(child(x, "mac", NULL), "address", mac);
            prop(child(x, "source", NULL), bridge ? "bridge" : "network", dst);
            prop(child(x, "model", NULL), "type", str_of(nic, "model", "virtio"));
        }
    }
    prop(child(devices, "serial", NULL), "type", "pty");
    xmlNodePtr console = child(devices, "console", NULL);
    prop(console, "type", "pty");
    xmlNodePtr ctarget = child(console, "target", NULL);
    prop(ctarget, "type", "serial");
    prop(ctarget, "port", "0");

    if (!err) {
        xmlChar *text = NULL;
        int len = 0;
        xmlDocDumpFormatMemoryEnc(doc, &text, &len, "UTF-8", 1);
        if (!text)
            err = ek_err_new(EK_E_INTERNAL, "libxml2 could not write the domain XML");
        else
            *out = ek_xstrndup((const char *)text, (size_t)len);
        xmlFree(text);
    }
    xmlFreeDoc(doc);
    return err;
}
