/* ovf.c - an OVF descriptor (DMTF DSP0243 1.x as VMware writes it) read
 * with libxml2 and XPath into an ek_ova_vm_t:
 *
 *   name        VirtualSystem/Name (else the file name)
 *   vCPUs       Item ResourceType 3, VirtualQuantity
 *   memory      Item ResourceType 4, VirtualQuantity x AllocationUnits
 *   firmware    VirtualHardwareSection/vmw:Config[@vmw:key='firmware'] (bios|efi;
 *               absent: bios; anything else is refused)
 *   controllers Items 5 (IDE), 6 (SCSI: lsilogic, lsilogicsas, VirtualSCSI,
 *               buslogic), 20 (SATA), any with an NVMe ResourceSubType
 *   disks       Items 17: Parent -> controller InstanceID, HostResource
 *               ovf:/disk/ID -> DiskSection/Disk (capacity, fileRef) ->
 *               References/File (href, compression)
 *   NICs        Items 10: Connection, ResourceSubType, Address (absent: a
 *               stable locally administered MAC from the name and index)
 *   guest OS    OperatingSystemSection/@vmw:osType, its Description, @ovf:id
 */
#include "worker/providers/ova/ova.h"

#include <ctype.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"
#include "worker/providers/common/xpath.h"

#define NS_OVF "http://schemas.dmtf.org/ovf/envelope/1"
#define NS_RASD                                                                                    \
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
#define NS_VSSD "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
#define NS_VMW  "http://www.vmware.com/schema/ovf"

void ek_ova_vm_free(ek_ova_vm_t *vm)
{
    if (!vm)
        return;
    for (size_t i = 0; i < vm->n_disks; i++) {
        ek_ova_disk_t *d = &vm->disks[i];
        free(d->id);
        free(d->ovf_disk_id);
        free(d->href);
        free(d->bus);
        free(d->controller);
        free(d->compression);
    }
    for (size_t i = 0; i < vm->n_nics; i++) {
        free(vm->nics[i].mac);
        free(vm->nics[i].network);
        free(vm->nics[i].model);
    }
    free(vm->disks);
    free(vm->nics);
    free(vm->name);
    free(vm->firmware);
    free(vm->os_type);
    free(vm->vmw_ostype);
    free(vm);
}

/* Bytes per unit of a DMTF programmatic unit ("byte * 2^20", "MegaBytes",
 * "byte * 1024"); 0 when not understood. */
static uint64_t unit_bytes(const char *u)
{
    static const struct {
        const char *name;
        uint64_t bytes;
    } named[] = {{"byte", 1},
                 {"bytes", 1},
                 {"kilobytes", 1ull << 10},
                 {"kb", 1ull << 10},
                 {"megabytes", 1ull << 20},
                 {"mb", 1ull << 20},
                 {"gigabytes", 1ull << 30},
                 {"gb", 1ull << 30},
                 {"terabytes", 1ull << 40},
                 {"tb", 1ull << 40}};
    _cleanup_free_ char *copy = ek_xstrdup(u);
    uint64_t v = 0;
    char *save = NULL;
    bool first = true;
    for (char *tok = strtok_r(copy, "*", &save); tok; tok = strtok_r(NULL, "*", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && isspace((unsigned char)tok[n - 1]))
            tok[--n] = '\0';
        if (first) {
            first = false;
            for (size_t i = 0; i < EK_ARRAY_SIZE(named) && !v; i++)
                if (strcasecmp(tok, named[i].name) == 0)
                    v = named[i].bytes;
            if (!v)
                return 0;
            continue;
        }
        char *end;
        errno = 0;
        unsigned long long base = strtoull(tok, &end, 10);
        if (errno || end == tok)
            return 0;
        uint64_t mul = base;
        if (*end == '^') {
            char *e2;
            unsigned long long exp = strtoull(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2 || exp > 63)
                return 0;
            mul = 1;
            for (unsigned long long i = 0; i < exp; i++) {
                if (mul > UINT64_MAX / base)
                    return 0;
                mul *= base;
            }
        } else if (*end) {
            return 0;
        }
        if (mul == 0 || v > UINT64_MAX / mul)
            return 0;
        v *= mul;
    }
    return v;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

typedef struct controller {
    char *instance_id;
    const char *bus, *kind;
} controller_t;

/* The controller an Item describes, or NULL kind when it is none. */
static void controller_kind(int rtype, const char *subtype, const char **bus, const char **kind)
{
    *bus = *kind = NULL;
    if (subtype && strcasestr(subtype, "nvme")) {
        *bus = "sata";
        *kind = "nvme";
    } else if (rtype == 5) {
        *bus = *kind = "ide";
    } else if (rtype == 20) {
        *bus = *kind = "sata";
    } else if (rtype == 6) {
        *bus = "scsi";
        if (!subtype || strcasecmp(subtype, "lsilogic") == 0)
            *kind = "lsilogic";
        else if (strcasecmp(subtype, "lsilogicsas") == 0)
            *kind = "lsilogicsas";
        else if (strcasecmp(subtype, "VirtualSCSI") == 0 || strcasecmp(subtype, "pvscsi") == 0)
            *kind = "pvscsi";
        else if (strcasecmp(subtype, "buslogic") == 0)
            *kind = "buslogic";
        else
            *kind = "scsi";
    }
}

/* A locally administered unicast MAC that depends only on the instance
 * name and the NIC's index. */
static char *stable_mac(const char *name, size_t index)
{
    _cleanup_free_ char *seed = ek_xasprintf("ekman-ova-nic:%s:%zu", name, index);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(seed, strlen(seed), h, &len, EVP_sha256(), NULL) != 1 || len < 6)
        memset(h, 0x5a, 6);
    h[0] = (unsigned char)((h[0] & 0xfc) | 0x02);
    return ek_xasprintf("%02x:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
}

static char *mac_normalize(const char *s)
{
    unsigned int b[6];
    char sep[5];
    if (sscanf(s, "%2x%c%2x%c%2x%c%2x%c%2x%c%2x", &b[0], &sep[0], &b[1], &sep[1], &b[2], &sep[2],
               &b[3], &sep[3], &b[4], &sep[4], &b[5]) == 11) {
        for (int i = 0; i < 5; i++)
            if (sep[i] != ':' && sep[i] != '-')
                return NULL;
    } else if (strlen(s) == 12 && strspn(s, "0123456789abcdefABCDEF") == 12) {
        for (int i = 0; i < 6; i++)
            sscanf(s + 2 * i, "%2x", &b[i]);
    } else {
        return NULL;
    }
    return ek_xasprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static const char *os_family(const char *vmw_ostype, const char *desc, int ovf_id)
{
    static const char *const linuxes[] = {"linux", "rhel",   "centos",  "debian",  "ubuntu",
                                          "sles",  "suse",   "oracle",  "fedora",  "alma",
                                          "rocky", "photon", "coreos",  "asianux", "mandr",
                                          "turbo", "amazon", "flatcar", "vmkernel"};
    const char *s[] = {vmw_ostype, desc};
    for (size_t k = 0; k < 2; k++) {
        if (!s[k])
            continue;
        if (strncasecmp(s[k], "win", 3) == 0 || strcasestr(s[k], "windows"))
            return "windows";
        for (size_t i = 0; i < EK_ARRAY_SIZE(linuxes); i++)
            if (strcasestr(s[k], linuxes[i]))
                return "linux";
    }
    /* CIM_OperatingSystem: 36 LINUX, 79-83 and 93-110 Linux distributions,
     * 58, 63, 67-77, 103, 105, 112-116 Windows (DSP0243 annex / CIM schema). */
    if (ovf_id == 36 || (ovf_id >= 79 && ovf_id <= 83) || (ovf_id >= 93 && ovf_id <= 102) ||
        ovf_id == 104 || (ovf_id >= 106 && ovf_id <= 110))
        return "linux";
    if (ovf_id == 58 || ovf_id == 63 || (ovf_id >= 67 && ovf_id <= 77) || ovf_id == 103 ||
        ovf_id == 105 || (ovf_id >= 112 && ovf_id <= 116))
        return "windows";
    return "other";
}

static ek_err_t *parse_vm(xmlXPathContextPtr xp, xmlNodePtr vs, const char *fallback,
                          const char *what, ek_ova_vm_t *vm)
{
    vm->name = ek_xp_string(xp, vs, "ovf:Name");
    if (!vm->name)
        vm->name = ek_xstrdup(fallback);
    vm->ovf_os_id = -1;
    xmlXPathObjectPtr os = ek_xp_nodes(xp, vs, "ovf:OperatingSystemSection");
    if (ek_xp_count(os) > 0) {
        xmlNodePtr n = os->nodesetval->nodeTab[0];
        _cleanup_free_ char *id = ek_xp_string(xp, n, "@ovf:id");
        _cleanup_free_ char *desc = ek_xp_string(xp, n, "ovf:Description");
        uint64_t v;
        if (id && parse_u64(id, &v) && v < 100000)
            vm->ovf_os_id = (int)v;
        vm->vmw_ostype = ek_xp_string(xp, n, "@vmw:osType");
        vm->os_type = ek_xstrdup(os_family(vm->vmw_ostype, desc, vm->ovf_os_id));
    } else {
        vm->os_type = ek_xstrdup("other");
    }
    xmlXPathFreeObject(os);

    xmlXPathObjectPtr hw = ek_xp_nodes(xp, vs, "ovf:VirtualHardwareSection");
    if (ek_xp_count(hw) != 1) {
        size_t n = ek_xp_count(hw);
        xmlXPathFreeObject(hw);
        return ek_err_new(EK_E_INVALID,
                          "\"%s\": the virtual system has %zu "
                          "VirtualHardwareSection elements (one expected)",
                          what, n);
    }
    xmlNodePtr hwn = hw->nodesetval->nodeTab[0];
    xmlXPathFreeObject(hw);
    vm->firmware = ek_xp_string(xp, hwn, "vmw:Config[@vmw:key='firmware']/@vmw:value");
    if (!vm->firmware)
        vm->firmware = ek_xstrdup("bios");
    for (char *c = vm->firmware; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (strcmp(vm->firmware, "bios") != 0 && strcmp(vm->firmware, "efi") != 0)
        return ek_err_new(EK_E_INVALID,
                          "\"%s\": firmware \"%s\" (vmw:Config key=\"firmware\") is neither bios "
                          "nor efi: fix the descriptor",
                          what, vm->firmware);

    xmlXPathObjectPtr items = ek_xp_nodes(xp, hwn, "ovf:Item");
    size_t n_items = ek_xp_count(items);
    controller_t *ctrls = ek_xcalloc(n_items + 1, sizeof(*ctrls));
    size_t n_ctrls = 0;
    ek_err_t *err = NULL;
    vm->vcpus = 0;
    /* pass 1: CPU, memory, controllers */
    for (size_t i = 0; i < n_items && !err; i++) {
        xmlNodePtr it = items->nodesetval->nodeTab[i];
        _cleanup_free_ char *rt = ek_xp_string(xp, it, "rasd:ResourceType");
        _cleanup_free_ char *sub = ek_xp_string(xp, it, "rasd:ResourceSubType");
        uint64_t rtype = 0;
        if (!parse_u64(rt, &rtype))
            continue;
        if (rtype == 3) {
            _cleanup_free_ char *q = ek_xp_string(xp, it, "rasd:VirtualQuantity");
            uint64_t v;
            if (!parse_u64(q, &v) || v == 0 || v > 4096)
                err = ek_err_new(EK_E_INVALID,
                                 "\"%s\": the CPU item's VirtualQuantity \"%s\" is "
                                 "not a number of vCPUs",
                                 what, q ? q : "");
            else
                vm->vcpus = (int)v;
        } else if (rtype == 4) {
            _cleanup_free_ char *q = ek_xp_string(xp, it, "rasd:VirtualQuantity");
            _cleanup_free_ char *u = ek_xp_string(xp, it, "rasd:AllocationUnits");
            uint64_t v, ub = u ? unit_bytes(u) : (1ull << 20);
            if (!parse_u64(q, &v) || v == 0)
                err = ek_err_new(EK_E_INVALID,
                                 "\"%s\": the memory item's VirtualQuantity \"%s\" "
                                 "is not a size",
                                 what, q ? q : "");
            else if (ub == 0)
                err =
                    ek_err_new(EK_E_INVALID,
                               "\"%s\": memory AllocationUnits \"%s\" are not understood", what, u);
            else if (v > UINT64_MAX / ub)
                err = ek_err_new(EK_E_INVALID, "\"%s\": the memory size overflows", what);
            else
                vm->memory_mb = (v * ub + (1ull << 20) - 1) >> 20;
        } else {
            const char *bus, *kind;
            controller_kind((int)rtype, sub, &bus, &kind);
            char *iid = ek_xp_string(xp, it, "rasd:InstanceID");
            if (kind && iid)
                ctrls[n_ctrls++] = (controller_t){iid, bus, kind};
            else
                free(iid);
        }
    }
    if (!err && vm->vcpus == 0)
        err = ek_err_new(EK_E_INVALID, "\"%s\": no CPU item (ResourceType 3)", what);
    if (!err && vm->memory_mb == 0)
        err = ek_err_new(EK_E_INVALID, "\"%s\": no memory item (ResourceType 4)", what);

    /* pass 2: disks and NICs, in document order */
    vm->disks = ek_xcalloc(n_items + 1, sizeof(*vm->disks));
    vm->nics = ek_xcalloc(n_items + 1, sizeof(*vm->nics));
    int sd = 0, hd = 0;
    for (size_t i = 0; i < n_items && !err; i++) {
        xmlNodePtr it = items->nodesetval->nodeTab[i];
        _cleanup_free_ char *rt = ek_xp_string(xp, it, "rasd:ResourceType");
        uint64_t rtype = 0;
        if (!parse_u64(rt, &rtype) || (rtype != 17 && rtype != 10))
            continue;
        _cleanup_free_ char *label = ek_xp_string(xp, it, "rasd:ElementName");
        if (rtype == 10) {
            ek_ova_nic_t *nic = &vm->nics[vm->n_nics];
            _cleanup_free_ char *addr = ek_xp_string(xp, it, "rasd:Address");
            _cleanup_free_ char *sub = ek_xp_string(xp, it, "rasd:ResourceSubType");
            if (addr && !(nic->mac = mac_normalize(addr))) {
                err = ek_err_new(EK_E_INVALID, "\"%s\": NIC \"%s\" has an invalid MAC \"%s\"", what,
                                 label ? label : "?", addr);
                break;
            }
            if (!nic->mac) {
                nic->mac = stable_mac(vm->name, vm->n_nics);
                nic->mac_generated = true;
            }
            nic->network = ek_xp_string(xp, it, "rasd:Connection");
            nic->model = ek_xstrdup(sub ? sub : "e1000");
            for (char *c = nic->model; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            vm->n_nics++;
            continue;
        }
        _cleanup_free_ char *host = ek_xp_string(xp, it, "rasd:HostResource");
        _cleanup_free_ char *parent = ek_xp_string(xp, it, "rasd:Parent");
        const char *ref = NULL;
        if (host && strncmp(host, "ovf:/disk/", 10) == 0)
            ref = host + 10;
        else if (host && strncmp(host, "/disk/", 6) == 0)
            ref = host + 6;
        if (!ref || !*ref) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\": disk \"%s\" has no HostResource of the form ovf:/disk/ID",
                             what, label ? label : "?");
            break;
        }
        const controller_t *c = NULL;
        for (size_t k = 0; parent && k < n_ctrls; k++)
            if (strcmp(ctrls[k].instance_id, parent) == 0)
                c = &ctrls[k];
        if (!c) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\": disk \"%s\" is on controller \"%s\", which is not an IDE, "
                             "SCSI, SATA or NVMe controller of the descriptor",
                             what, label ? label : ref, parent ? parent : "(no rasd:Parent)");
            break;
        }
        ek_ova_disk_t *d = &vm->disks[vm->n_disks];
        d->ovf_disk_id = ek_xstrdup(ref);
        d->bus = ek_xstrdup(c->bus);
        d->controller = ek_xstrdup(c->kind);
        bool ide = strcmp(c->bus, "ide") == 0;
        int idx = ide ? hd++ : sd++;
        if (idx >= 26) {
            err = ek_err_new(EK_E_INVALID, "\"%s\": more than 26 disks on one kind of bus", what);
            vm->n_disks++;
            break;
        }
        d->id = ek_xasprintf("%s%c", ide ? "hd" : "sd", 'a' + idx);
        vm->n_disks++;
        /* DiskSection/Disk -> References/File */
        _cleanup_free_ char *q =
            ek_xasprintf("/ovf:Envelope/ovf:DiskSection/ovf:Disk[@ovf:diskId='%s']", ref);
        if (strchr(ref, '\'')) {
            err = ek_err_new(EK_E_INVALID, "\"%s\": disk id \"%s\" is not valid", what, ref);
            break;
        }
        xmlXPathObjectPtr dn = ek_xp_nodes(xp, vs, q);
        if (ek_xp_count(dn) != 1) {
            xmlXPathFreeObject(dn);
            err = ek_err_new(EK_E_INVALID, "\"%s\": disk \"%s\" is not in the DiskSection", what,
                             ref);
            break;
        }
        xmlNodePtr dnode = dn->nodesetval->nodeTab[0];
        xmlXPathFreeObject(dn);
        _cleanup_free_ char *cap = ek_xp_string(xp, dnode, "@ovf:capacity");
        _cleanup_free_ char *units = ek_xp_string(xp, dnode, "@ovf:capacityAllocationUnits");
        _cleanup_free_ char *file_ref = ek_xp_string(xp, dnode, "@ovf:fileRef");
        uint64_t v, ub = units ? unit_bytes(units) : 1;
        if (!parse_u64(cap, &v) || ub == 0 || (v && v > UINT64_MAX / ub)) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\": disk \"%s\" has no capacity I understand "
                             "(\"%s\" \"%s\")",
                             what, ref, cap ? cap : "", units ? units : "byte");
            break;
        }
        d->capacity = v * ub;
        if (!file_ref) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\": disk \"%s\" has no file (an empty disk): add an image or "
                             "remove the disk from the descriptor",
                             what, ref);
            break;
        }
        _cleanup_free_ char *fq =
            ek_xasprintf("/ovf:Envelope/ovf:References/ovf:File[@ovf:id='%s']", file_ref);
        xmlXPathObjectPtr fn = strchr(file_ref, '\'') ? NULL : ek_xp_nodes(xp, vs, fq);
        if (ek_xp_count(fn) != 1) {
            xmlXPathFreeObject(fn);
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\": file \"%s\" of disk \"%s\" is not in the "
                             "References section",
                             what, file_ref, ref);
            break;
        }
        xmlNodePtr fnode = fn->nodesetval->nodeTab[0];
        xmlXPathFreeObject(fn);
        d->href = ek_xp_string(xp, fnode, "@ovf:href");
        d->compression = ek_xp_string(xp, fnode, "@ovf:compression");
        if (d->compression && strcasecmp(d->compression, "identity") == 0) {
            free(d->compression);
            d->compression = NULL;
        }
        if (!d->href) {
            err = ek_err_new(EK_E_INVALID, "\"%s\": file \"%s\" has no href", what, file_ref);
            break;
        }
    }
    xmlXPathFreeObject(items);
    for (size_t k = 0; k < n_ctrls; k++)
        free(ctrls[k].instance_id);
    free(ctrls);
    if (!err && vm->n_disks == 0)
        err = ek_err_new(EK_E_INVALID, "\"%s\": the virtual system has no disk (ResourceType 17)",
                         what);
    return err;
}

ek_err_t *ek_ova_ovf_parse(const char *text, size_t len, const char *fallback_name,
                           const char *what, ek_ova_vm_t **out)
{
    *out = NULL;
    if (len > INT32_MAX)
        return ek_err_new(EK_E_INVALID, "\"%s\" is too large", what);
    xmlDocPtr doc = xmlReadMemory(text, (int)len, what, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *xe = xmlGetLastError();
        return ek_err_new(EK_E_INVALID, "\"%s\" is not valid XML%s%s", what, xe ? ": " : "",
                          xe && xe->message ? xe->message : "");
    }
    xmlXPathContextPtr xp = xmlXPathNewContext(doc);
    xmlXPathRegisterNs(xp, BAD_CAST "ovf", BAD_CAST NS_OVF);
    xmlXPathRegisterNs(xp, BAD_CAST "rasd", BAD_CAST NS_RASD);
    xmlXPathRegisterNs(xp, BAD_CAST "vssd", BAD_CAST NS_VSSD);
    xmlXPathRegisterNs(xp, BAD_CAST "vmw", BAD_CAST NS_VMW);
    ek_err_t *err = NULL;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlXPathObjectPtr vs = ek_xp_nodes(xp, root, "/ovf:Envelope/ovf:VirtualSystem");
    xmlXPathObjectPtr coll = ek_xp_nodes(xp, root, "/ovf:Envelope/ovf:VirtualSystemCollection");
    if (ek_xp_count(coll) > 0)
        err = ek_err_new(EK_E_INVALID,
                         "\"%s\" holds a VirtualSystemCollection (a vApp): export "
                         "each virtual machine as an OVA of its own",
                         what);
    else if (ek_xp_count(vs) != 1)
        err = ek_err_new(EK_E_INVALID,
                         "\"%s\" is not an OVF envelope with one VirtualSystem (namespace %s)",
                         what, NS_OVF);
    ek_ova_vm_t *vm = ek_xcalloc(1, sizeof(*vm));
    if (!err)
        err = parse_vm(xp, vs->nodesetval->nodeTab[0], fallback_name, what, vm);
    xmlXPathFreeObject(vs);
    xmlXPathFreeObject(coll);
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    if (err) {
        ek_ova_vm_free(vm);
        return err;
    }
    *out = vm;
    return NULL;
}
