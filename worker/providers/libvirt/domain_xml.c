/* domain_xml.c - the domain XML the libvirt destination generates: the
 * deployed VM (the source's vCPUs, memory, firmware, machine family, disks
 * in the source's order, NICs with the source MACs on the mapped networks,
 * and the seed's options: cpu_mode, cpu_migratable, cpu_features,
 * add_tpm_device, enable_vm_console_log + vm_console_log_dir,
 * enable_vm_vnc_console + vnc_listen_address) and the temporary worker VMs
 * (i440fx machine, so that virtio disks hot-plug without PCIe root ports;
 * qemu-ga channel; virtio RNG so that sshd has entropy at once).
 * libxml2 builds the tree, so every name and path is escaped. */
#include "worker/providers/libvirt/libvirt.h"

#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include "common/mem.h"

static xmlNodePtr child(xmlNodePtr parent, const char *name, const char *text)
{
    return xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST text);
}

static void prop(xmlNodePtr node, const char *name, const char *value)
{
    xmlNewProp(node, BAD_CAST name, BAD_CAST value);
}

static char *dump(xmlDocPtr doc)
{
    xmlChar *text = NULL;
    int len = 0;
    xmlDocDumpFormatMemoryEnc(doc, &text, &len, "UTF-8", 1);
    char *out = text ? ek_xstrndup((const char *)text, (size_t)len) : NULL;
    xmlFree(text);
    return out;
}

char *ek_lv_safe_name(const char *s)
{
    char *out = ek_xstrdup(s && *s ? s : "_");
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    if (out[0] == '.')
        out[0] = '_'; /* no hidden files, no "." or ".." */
    return out;
}

void ek_lv_volume_serial(const char *pool, const char *volume, char out[21])
{
    /* FNV-1a over "pool/volume": stable across tasks, so a re-attached
     * volume keeps its name in the guest. "ek" + 16 hex digits. */
    uint64_t h = 1469598103934665603ULL;
    const char *parts[] = {pool ? pool : "", "/", volume ? volume : ""};
    for (size_t i = 0; i < 3; i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
    snprintf(out, 21, "ek%016llx", (unsigned long long)h);
}

const char *ek_lv_machine_family(const char *machine)
{
    if (!machine || !*machine)
        return NULL;
    if (strstr(machine, "q35"))
        return "q35";
    if (strncmp(machine, "pc", 2) == 0)
        return "pc";
    return NULL;
}

static void add_cpu(xmlNodePtr root, const ek_lv_vm_t *vm, char **note)
{
    const char *mode = vm->cpu_mode && *vm->cpu_mode ? vm->cpu_mode : NULL;
    bool tcg = strcmp(vm->domain_type, "qemu") == 0;
    if (mode && tcg && strcmp(mode, "host-passthrough") == 0) {
        mode = "maximum";
        *note = ek_xstrdup("cpu_mode host-passthrough needs KVM; this TCG ('qemu') domain uses "
                           "mode 'maximum', its emulated counterpart");
    }
    size_t nf = vm->cpu_features ? vm->cpu_features->n : 0;
    if (!mode)
        return; /* libvirt's default CPU (options refuse features without a mode) */
    xmlNodePtr cpu = child(root, "cpu", NULL);
    if (mode) {
        prop(cpu, "mode", mode);
        if (strcmp(mode, "host-passthrough") == 0 || strcmp(mode, "maximum") == 0) {
            prop(cpu, "check", "none");
            prop(cpu, "migratable", vm->cpu_migratable ? "on" : "off");
        }
    }
    char num[16];
    xmlNodePtr topo = child(cpu, "topology", NULL);
    prop(topo, "sockets", "1");
    prop(topo, "dies", "1");
    snprintf(num, sizeof(num), "%d", vm->vcpus);
    prop(topo, "cores", num);
    prop(topo, "threads", "1");
    for (size_t i = 0; i < nf; i++) {
        xmlNodePtr f = child(cpu, "feature", NULL);
        prop(f, "policy", "require");
        prop(f, "name", vm->cpu_features->items[i]);
    }
}

/* The bus of a disk on this machine: q35 has no IDE. */
static const char *disk_bus(const ek_lv_vm_t *vm, const ek_lv_vm_disk_t *d)
{
    const char *bus = d->bus && *d->bus ? d->bus : "virtio";
    if (strcmp(bus, "ide") == 0 && vm->machine && strcmp(vm->machine, "q35") == 0)
        return "sata";
    return bus;
}

static void add_disk(xmlNodePtr devices, const ek_lv_vm_t *vm, const ek_lv_vm_disk_t *d)
{
    char num[16];
    xmlNodePtr x = child(devices, "disk", NULL);
    prop(x, "type", "file");
    prop(x, "device", d->cdrom ? "cdrom" : "disk");
    xmlNodePtr drv = child(x, "driver", NULL);
    prop(drv, "name", "qemu");
    prop(drv, "type", d->format && *d->format ? d->format : "raw");
    if (!d->cdrom)
        prop(drv, "discard", "unmap");
    /* a worker VM's writer gets a failed write as an error it reports (a full
     * destination, a broken volume); QEMU's default would pause the VM and
     * leave the copy waiting. A deployed VM keeps the default: it pauses. */
    if (vm->minion && !d->cdrom) {
        prop(drv, "error_policy", "report");
        prop(drv, "rerror_policy", "report");
    }
    prop(child(x, "source", NULL), "file", d->path);
    xmlNodePtr tgt = child(x, "target", NULL);
    prop(tgt, "dev", d->dev);
    prop(tgt, "bus", disk_bus(vm, d));
    if (d->serial && *d->serial)
        child(x, "serial", d->serial);
    if (d->cdrom)
        child(x, "readonly", NULL);
    if (d->boot_order > 0) {
        snprintf(num, sizeof(num), "%d", d->boot_order);
        prop(child(x, "boot", NULL), "order", num);
    }
}

static void add_nic(xmlNodePtr devices, const ek_lv_vm_nic_t *n)
{
    xmlNodePtr x = child(devices, "interface", NULL);
    prop(x, "type", n->bridge ? "bridge" : "network");
    if (n->mac && *n->mac)
        prop(child(x, "mac", NULL), "address", n->mac);
    prop(child(x, "source", NULL), n->bridge ? "bridge" : "network", n->network);
    prop(child(x, "model", NULL), "type", n->model && *n->model ? n->model : "virtio");
}

static void add_devices(xmlNodePtr root, const ek_lv_vm_t *vm)
{
    xmlNodePtr devices = child(root, "devices", NULL);
    bool scsi = false;
    for (size_t i = 0; i < vm->n_disks; i++) {
        add_disk(devices, vm, &vm->disks[i]);
        scsi = scsi || strcmp(disk_bus(vm, &vm->disks[i]), "scsi") == 0;
    }
    if (scsi) {
        xmlNodePtr ctl = child(devices, "controller", NULL);
        prop(ctl, "type", "scsi");
        prop(ctl, "model", "virtio-scsi");
    }
    for (size_t i = 0; i < vm->n_nics; i++)
        add_nic(devices, &vm->nics[i]);
    xmlNodePtr serial = child(devices, "serial", NULL);
    prop(serial, "type", "pty");
    if (vm->console_log) {
        xmlNodePtr log = child(serial, "log", NULL);
        prop(log, "file", vm->console_log);
        prop(log, "append", "on");
    }
    prop(child(serial, "target", NULL), "port", "0");
    xmlNodePtr console = child(devices, "console", NULL);
    prop(console, "type", "pty");
    xmlNodePtr ct = child(console, "target", NULL);
    prop(ct, "type", "serial");
    prop(ct, "port", "0");
    /* every domain gets the qemu-guest-agent channel: OS morphing installs
     * the agent, and libvirt reads addresses and shuts down through it */
    xmlNodePtr ch = child(devices, "channel", NULL);
    prop(ch, "type", "unix");
    xmlNodePtr t = child(ch, "target", NULL);
    prop(t, "type", "virtio");
    prop(t, "name", "org.qemu.guest_agent.0");
    if (vm->minion) {
        xmlNodePtr rng = child(devices, "rng", NULL);
        prop(rng, "model", "virtio");
        prop(child(rng, "backend", "/dev/urandom"), "model", "random");
    }
    if (vm->vnc) {
        xmlNodePtr g = child(devices, "graphics", NULL);
        prop(g, "type", "vnc");
        prop(g, "port", "-1");
        prop(g, "autoport", "yes");
        prop(g, "listen", vm->vnc_listen ? vm->vnc_listen : "127.0.0.1");
        /* no console without a password, wherever it listens */
        if (vm->vnc_password && *vm->vnc_password)
            prop(g, "passwd", vm->vnc_password);
        xmlNodePtr l = child(g, "listen", NULL);
        prop(l, "type", "address");
        prop(l, "address", vm->vnc_listen ? vm->vnc_listen : "127.0.0.1");
        prop(child(child(devices, "video", NULL), "model", NULL), "type", "vga");
    }
    if (vm->tpm) {
        xmlNodePtr tpm = child(devices, "tpm", NULL);
        prop(tpm, "model", vm->efi ? "tpm-crb" : "tpm-tis");
        xmlNodePtr be = child(tpm, "backend", NULL);
        prop(be, "type", "emulator");
        prop(be, "version", "2.0");
        prop(be, "persistent_state", "yes");
    }
    prop(child(devices, "memballoon", NULL), "model", "virtio");
}

ek_err_t *ek_lv_vm_xml(const ek_lv_vm_t *vm, char **out, char **note)
{
    *out = NULL;
    *note = NULL;
    if (!vm->name || !*vm->name)
        return ek_err_new(EK_E_INVALID, "the domain has no name");
    if (vm->vcpus < 1 || vm->memory_mb < 1)
        return ek_err_new(EK_E_INVALID, "domain '%s': no CPU count or memory size", vm->name);
    char num[32];
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = xmlNewNode(NULL, BAD_CAST "domain");
    xmlDocSetRootElement(doc, root);
    prop(root, "type", vm->domain_type);
    child(root, "name", vm->name);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)vm->memory_mb);
    prop(child(root, "memory", num), "unit", "MiB");
    snprintf(num, sizeof(num), "%d", vm->vcpus);
    prop(child(root, "vcpu", num), "placement", "static");

    xmlNodePtr os = child(root, "os", NULL);
    if (vm->efi)
        prop(os, "firmware", "efi");
    xmlNodePtr type = child(os, "type", "hvm");
    prop(type, "arch", vm->arch && *vm->arch ? vm->arch : "x86_64");
    if (vm->machine && *vm->machine)
        prop(type, "machine", vm->machine);
    bool per_disk_boot = false;
    for (size_t i = 0; i < vm->n_disks; i++)
        per_disk_boot = per_disk_boot || vm->disks[i].boot_order > 0;
    if (!per_disk_boot) /* libvirt takes one or the other */
        prop(child(os, "boot", NULL), "dev", "hd");
    xmlNodePtr features = child(root, "features", NULL);
    child(features, "acpi", NULL);
    child(features, "apic", NULL);
    if (vm->cpu_options)
        add_cpu(root, vm, note);
    prop(child(root, "clock", NULL), "offset", vm->windows ? "localtime" : "utc");
    child(root, "on_poweroff", "destroy");
    child(root, "on_reboot", "restart");
    child(root, "on_crash", "destroy");
    add_devices(root, vm);
    char *text = dump(doc);
    xmlFreeDoc(doc);
    if (!text) {
        free(*note);
        *note = NULL;
        return ek_err_new(EK_E_INTERNAL, "libxml2 could not write the XML of '%s'", vm->name);
    }
    *out = text;
    return NULL;
}

char *ek_lv_disk_attach_xml(const ek_lv_vm_disk_t *d)
{
    /* disks are attached to worker VMs only */
    ek_lv_vm_t vm = {.domain_type = "qemu", .machine = "pc", .minion = true};
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = xmlNewNode(NULL, BAD_CAST "devices");
    xmlDocSetRootElement(doc, root);
    add_disk(root, &vm, d);
    xmlNodePtr disk = root->children;
    xmlUnlinkNode(disk);
    xmlDocSetRootElement(doc, disk);
    xmlFreeNode(root);
    char *text = dump(doc);
    xmlFreeDoc(doc);
    return text;
}
