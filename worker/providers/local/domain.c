/* domain.c - what the local provider knows of a source VM: a libvirt domain
 * XML file (the input of `virt-v2v -i libvirtxml`) read with libxml2, and
 * the images its disks point to, probed for their format and virtual size.
 *
 * Only what a migration needs is read: name, vCPUs, memory, firmware, the
 * guest OS family when libosinfo metadata names it, the disks (device
 * "disk" of type file or block; CD-ROMs and floppies are not migrated) and
 * the network interfaces. Entities are not expanded and nothing is fetched
 * from the network while parsing. The XML and the images it names are
 * opened beneath the operator's [local] allowed_roots only, the images
 * probed as untrusted input (worker/providers/common/tenant_image.h), and a
 * disk's target dev must be a plain name (common/tenantname.h). */
#include "worker/providers/local/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "common/tenantname.h"
#include "worker/providers/common/tenant_image.h"

#define MAX_XML_BYTES (4u << 20)

/* ---- images -------------------------------------------------------------------------- */

/* Size of the window qemu may read: a file's length, a block device's. */
static ek_err_t *image_size(int fd, const char *path, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return ek_err_errno(errno, "could not stat image \"%s\"", path);
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, size) != 0)
            return ek_err_errno(errno, "could not get the size of \"%s\"", path);
    } else if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
    } else {
        return ek_err_new(EK_E_INVALID, "image \"%s\" is neither a file nor a block device", path);
    }
    if (*size == 0)
        return ek_err_new(EK_E_INVALID, "image \"%s\" is empty", path);
    return NULL;
}

ek_err_t *ek_local_image_open(const ek_local_scope_t *sc, const char *path, const char *declared,
                              int *fd_out, const char **format, uint64_t *size)
{
    if (declared && strcmp(declared, "raw") != 0 && strcmp(declared, "qcow2") != 0)
        return ek_err_new(EK_E_INVALID,
                          "image \"%s\" is in format '%s': the local provider reads raw and "
                          "qcow2 images (convert it with qemu-img convert)",
                          path, declared);
    int fd;
    ek_err_t *err = ek_local_path_open(sc, path, O_RDONLY, &fd);
    if (err)
        return err;
    uint64_t len = 0;
    _cleanup_free_ char *fmt = NULL;
    _cleanup_free_ char *what = ek_xasprintf("\"%s\"", path);
    /* The XML says how the guest sees the image: a raw disk that happens to
     * hold a qcow2 file is raw to the guest, and stays raw here. */
    if (!(err = image_size(fd, path, &len)) &&
        !(err = ek_tenant_image_probe(fd, 0, len, declared, what, &fmt, size)) &&
        strcmp(fmt, "raw") != 0 && strcmp(fmt, "qcow2") != 0)
        err = ek_err_new(EK_E_INVALID,
                         "image \"%s\" is in format '%s': the local provider reads raw and "
                         "qcow2 images (convert it with qemu-img convert)",
                         path, fmt);
    if (err) {
        close(fd);
        return err;
    }
    *format = strcmp(fmt, "qcow2") == 0 ? "qcow2" : "raw";
    *fd_out = fd;
    return NULL;
}

ek_err_t *ek_local_image_probe(const ek_local_scope_t *sc, const char *path, const char *declared,
                               const char **format, uint64_t *size)
{
    int fd;
    ek_err_t *err = ek_local_image_open(sc, path, declared, &fd, format, size);
    if (!err)
        close(fd);
    return err;
}

/* ---- XML helpers --------------------------------------------------------------------- */

/* The string value of an XPath expression relative to node, or NULL when
 * empty. malloc'ed. */
static char *xp_string(xmlXPathContextPtr xp, xmlNodePtr node, const char *expr)
{
    xp->node = node;
    xmlChar *full = xmlStrdup(BAD_CAST "string(");
    full = xmlStrcat(full, BAD_CAST expr);
    full = xmlStrcat(full, BAD_CAST ")");
    xmlXPathObjectPtr o = xmlXPathEvalExpression(full, xp);
    xmlFree(full);
    char *s = NULL;
    if (o && o->type == XPATH_STRING && o->stringval && *o->stringval) {
        /* trim */
        const char *b = (const char *)o->stringval, *e = b + strlen(b);
        while (*b && strchr(" \t\r\n", *b))
            b++;
        while (e > b && strchr(" \t\r\n", e[-1]))
            e--;
        if (e > b)
            s = ek_xstrndup(b, (size_t)(e - b));
    }
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

/* ---- parsing ------------------------------------------------------------------------- */

static void disk_release(ek_local_disk_t *d)
{
    free(d->id);
    free(d->path);
    free(d->format);
    free(d->bus);
}

static void nic_release(ek_local_nic_t *n)
{
    free(n->mac);
    free(n->network);
    free(n->kind);
    free(n->model);
}

void ek_local_domain_free(ek_local_domain_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_disks; i++)
        disk_release(&d->disks[i]);
    for (size_t i = 0; i < d->n_nics; i++)
        nic_release(&d->nics[i]);
    free(d->disks);
    free(d->nics);
    free(d->name);
    free(d->xml_path);
    free(d->arch);
    free(d->firmware);
    free(d->os_type);
    free(d);
}

static ek_err_t *parse_disks(const ek_local_scope_t *sc, xmlXPathContextPtr xp, xmlNodePtr root,
                             const char *base_dir, bool probe, ek_local_domain_t *d)
{
    xmlXPathObjectPtr set = xp_nodes(xp, root, "devices/disk");
    size_t n = xp_count(set);
    d->disks = ek_xcalloc(n ? n : 1, sizeof(*d->disks));
    ek_err_t *err = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *device = xp_string(xp, node, "@device");
        _cleanup_free_ char *type = xp_string(xp, node, "@type");
        if (device && strcmp(device, "disk") != 0)
            continue; /* cdrom, floppy, lun: not migrated */
        ek_local_disk_t *k = &d->disks[d->n_disks];
        k->id = xp_string(xp, node, "target/@dev");
        if (!k->id) {
            err = ek_err_new(EK_E_INVALID, "disk #%zu has no <target dev=...>", i + 1);
            break;
        }
        d->n_disks++; /* from here on, released with the domain */
        for (size_t j = 0; j + 1 < d->n_disks && !err; j++)
            if (strcmp(d->disks[j].id, k->id) == 0)
                err = ek_err_new(EK_E_INVALID, "two disks have target dev '%s'", k->id);
        if (err || (err = ek_tenant_name_check(k->id, "disk target dev")))
            break;
        _cleanup_free_ char *src = NULL;
        if (!type || strcmp(type, "file") == 0)
            src = xp_string(xp, node, "source/@file");
        else if (strcmp(type, "block") == 0)
            src = xp_string(xp, node, "source/@dev");
        else {
            err = ek_err_new(EK_E_INVALID,
                             "disk '%s' is of type '%s': the local provider reads file and "
                             "block disks",
                             k->id, type);
            break;
        }
        if (!src) {
            err = ek_err_new(EK_E_INVALID, "disk '%s' has no source image", k->id);
            break;
        }
        k->path = resolve_path(base_dir, src);
        k->format = xp_string(xp, node, "driver/@type");
        k->bus = xp_string(xp, node, "target/@bus");
        if (!k->bus)
            k->bus = ek_xstrdup(strncmp(k->id, "vd", 2) == 0   ? "virtio"
                                : strncmp(k->id, "hd", 2) == 0 ? "ide"
                                                               : "sata");
        _cleanup_free_ char *boot = xp_string(xp, node, "boot/@order");
        k->boot_order = boot ? atoi(boot) : 0;
        if (probe) {
            const char *fmt;
            if ((err = ek_local_image_probe(sc, k->path, k->format, &fmt, &k->size))) {
                err = ek_err_prefix(err, "disk '%s'", k->id);
                break;
            }
            free(k->format);
            k->format = ek_xstrdup(fmt);
        } else if (k->format && strcmp(k->format, "raw") != 0 && strcmp(k->format, "qcow2") != 0) {
            err = ek_err_new(EK_E_INVALID,
                             "disk '%s' is in format '%s': the local provider reads raw and qcow2 "
                             "images",
                             k->id, k->format);
        }
    }
    xmlXPathFreeObject(set);
    return err;
}

static void parse_nics(xmlXPathContextPtr xp, xmlNodePtr root, ek_local_domain_t *d)
{
    xmlXPathObjectPtr set = xp_nodes(xp, root, "devices/interface");
    size_t n = xp_count(set);
    d->nics = ek_xcalloc(n ? n : 1, sizeof(*d->nics));
    for (size_t i = 0; i < n; i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        ek_local_nic_t *k = &d->nics[d->n_nics++];
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

/* Windows guests are told apart by the libosinfo id virt-install and
 * virt-manager write; everything else is taken for Linux. */
static char *guess_os_type(xmlXPathContextPtr xp, xmlNodePtr root)
{
    _cleanup_free_ char *id = xp_string(xp, root,
                                        "metadata/*[local-name()='libosinfo']/"
                                        "*[local-name()='os']/@id");
    if (id && strstr(id, "microsoft.com/win"))
        return ek_xstrdup("windows");
    return ek_xstrdup("linux");
}

static char *guess_firmware(xmlXPathContextPtr xp, xmlNodePtr root)
{
    _cleanup_free_ char *fw = xp_string(xp, root, "os/@firmware");
    _cleanup_free_ char *loader_type = xp_string(xp, root, "os/loader/@type");
    _cleanup_free_ char *loader = xp_string(xp, root, "os/loader");
    if ((fw && strcmp(fw, "efi") == 0) || (loader_type && strcmp(loader_type, "pflash") == 0) ||
        (loader &&
         (strcasestr(loader, "ovmf") || strcasestr(loader, "edk2") || strcasestr(loader, "efi"))))
        return ek_xstrdup("efi");
    return ek_xstrdup("bios");
}

ek_err_t *ek_local_domain_parse(const ek_local_scope_t *sc, const char *text, size_t len,
                                const char *base_dir, bool probe, ek_local_domain_t **out)
{
    *out = NULL;
    if (len > MAX_XML_BYTES)
        return ek_err_new(EK_E_INVALID, "the domain XML is larger than %u bytes", MAX_XML_BYTES);
    xmlParserCtxtPtr pc = xmlNewParserCtxt();
    if (!pc)
        return ek_err_new(EK_E_INTERNAL, "libxml2: cannot create a parser");
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
    ek_local_domain_t *d = ek_xcalloc(1, sizeof(*d));
    ek_err_t *err = NULL;
    d->name = xp_string(xp, root, "name");
    _cleanup_free_ char *vcpu = xp_string(xp, root, "vcpu");
    _cleanup_free_ char *mem = xp_string(xp, root, "memory");
    _cleanup_free_ char *mem_unit = xp_string(xp, root, "memory/@unit");
    uint64_t mem_bytes = 0;
    if (!d->name) {
        err = ek_err_new(EK_E_INVALID, "the domain has no <name>");
    } else if (!mem || !memory_bytes(mem, mem_unit, &mem_bytes)) {
        err = ek_err_new(EK_E_INVALID, "domain '%s': <memory> is missing or not a size", d->name);
    } else {
        d->memory_mb = (mem_bytes + (1 << 20) - 1) >> 20;
        d->vcpus = vcpu ? atoi(vcpu) : 1;
        if (d->vcpus < 1 || d->vcpus > 4096)
            err = ek_err_new(EK_E_INVALID, "domain '%s': <vcpu> '%s' is not a CPU count", d->name,
                             vcpu);
    }
    if (!err) {
        d->arch = xp_string(xp, root, "os/type/@arch");
        if (!d->arch)
            d->arch = ek_xstrdup("x86_64");
        d->firmware = guess_firmware(xp, root);
        d->os_type = guess_os_type(xp, root);
        if ((err = parse_disks(sc, xp, root, base_dir, probe, d)))
            err = ek_err_prefix(err, "domain '%s'", d->name);
        else
            parse_nics(xp, root, d);
    }
    xmlXPathFreeContext(xp);
    xmlFreeDoc(doc);
    if (err) {
        ek_local_domain_free(d);
        return err;
    }
    *out = d;
    return NULL;
}

ek_err_t *ek_local_domain_load(const ek_local_scope_t *sc, const char *xml_path, bool probe,
                               ek_local_domain_t **out)
{
    *out = NULL;
    int fd;
    struct stat st;
    ek_err_t *err = ek_local_path_open(sc, xml_path, O_RDONLY | O_CLOEXEC, &fd);
    if (err)
        return err;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ek_err_new(EK_E_INVALID, "\"%s\" is not a regular file", xml_path);
    }
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = ek_err_errno(errno, "could not read \"%s\"", xml_path);
            break;
        }
        if (n == 0)
            break;
        ek_strbuf_add(&sb, buf, (size_t)n);
        if (sb.len > MAX_XML_BYTES) {
            err = ek_err_new(EK_E_INVALID, "\"%s\" is larger than %u bytes: not a domain XML",
                             xml_path, MAX_XML_BYTES);
            break;
        }
    }
    close(fd);
    if (!err) {
        _cleanup_free_ char *copy = ek_xstrdup(xml_path);
        err = ek_local_domain_parse(sc, sb.buf, sb.len, dirname(copy), probe, out);
        if (err)
            err = ek_err_prefix(err, "\"%s\"", xml_path);
    }
    ek_strbuf_release(&sb);
    if (!err)
        (*out)->xml_path = ek_xstrdup(xml_path);
    return err;
}

static bool is_xml_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".xml") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.xml files of dir, sorted. */
static ek_err_t *xml_files(const char *dir, char ***out, size_t *n)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return ek_err_errno(errno, "could not open the directory \"%s\"", dir);
    char **v = NULL;
    size_t len = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (!is_xml_name(de->d_name))
            continue;
        v = ek_xrealloc(v, (len + 1) * sizeof(*v));
        v[len++] = ek_xasprintf("%s/%s", dir, de->d_name);
    }
    closedir(dh);
    if (len)
        qsort(v, len, sizeof(*v), cmp_str);
    *out = v;
    *n = len;
    return NULL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

ek_err_t *ek_local_domain_find(const ek_local_scope_t *sc, const char *dir, const char *name,
                               bool probe, ek_local_domain_t **out)
{
    *out = NULL;
    ek_err_t *err = ek_tenant_name_check(name, "name");
    if (err) {
        ek_err_free(err); /* not a file name: only the scan can find it */
        err = NULL;
    } else {
        /* The usual layout first: DIR/<name>.xml. */
        _cleanup_free_ char *path = ek_xasprintf("%s/%s.xml", dir, name);
        ek_local_domain_t *d = NULL;
        if (access(path, F_OK) == 0) {
            if ((err = ek_local_domain_load(sc, path, false, &d))) {
                ek_err_free(err); /* maybe another file holds it */
                err = NULL;
            } else if (strcmp(d->name, name) == 0) {
                ek_local_domain_free(d);
                return ek_local_domain_load(sc, path, probe, out);
            }
            ek_local_domain_free(d);
        }
    }
    char **files;
    size_t n;
    if ((err = xml_files(dir, &files, &n)))
        return err;
    for (size_t i = 0; i < n && !*out; i++) {
        ek_local_domain_t *d = NULL;
        ek_err_t *e = ek_local_domain_load(sc, files[i], false, &d);
        if (e) {
            ek_err_free(e);
            continue;
        }
        if (strcmp(d->name, name) == 0)
            err = ek_local_domain_load(sc, files[i], probe, out);
        ek_local_domain_free(d);
        if (err)
            break;
    }
    free_strv(files, n);
    if (!err && !*out)
        err = ek_err_new(EK_E_NOTFOUND, "no domain XML in \"%s\" describes an instance named '%s'",
                         dir, name);
    return err;
}

static int cmp_domain(const void *a, const void *b)
{
    const ek_local_domain_t *x = *(ek_local_domain_t *const *)a,
                            *y = *(ek_local_domain_t *const *)b;
    return strcmp(x->name, y->name);
}

ek_err_t *ek_local_domain_list(const ek_local_scope_t *sc, const char *dir, bool probe,
                               ek_local_domain_t ***out, size_t *n)
{
    char **files;
    size_t nf;
    ek_err_t *err = xml_files(dir, &files, &nf);
    if (err)
        return err;
    ek_local_domain_t **v = ek_xcalloc(nf ? nf : 1, sizeof(*v));
    size_t len = 0;
    for (size_t i = 0; i < nf; i++) {
        ek_local_domain_t *d;
        ek_err_t *e = ek_local_domain_load(sc, files[i], probe, &d);
        if (e) {
            ek_log_kv(EK_LOG_WARNING, "domain XML skipped", "error", e->message, NULL);
            ek_err_free(e);
            continue;
        }
        v[len++] = d;
    }
    free_strv(files, nf);
    if (len)
        qsort(v, len, sizeof(*v), cmp_domain);
    *out = v;
    *n = len;
    return NULL;
}

/* ---- export_info --------------------------------------------------------------------- */

json_object *ek_local_domain_export_info(const ek_local_domain_t *d)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(d->name));
    json_object_object_add(o, "name", json_object_new_string(d->name));
    json_object_object_add(o, "instance_name", json_object_new_string(d->name));
    json_object_object_add(o, "num_cpu", json_object_new_int(d->vcpus));
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)d->memory_mb));
    json_object_object_add(o, "firmware", json_object_new_string(d->firmware));
    json_object_object_add(o, "os_type", json_object_new_string(d->os_type));
    json_object_object_add(o, "arch", json_object_new_string(d->arch));
    if (d->xml_path)
        json_object_object_add(o, "xml_path", json_object_new_string(d->xml_path));
    json_object *disks = json_object_new_array();
    for (size_t i = 0; i < d->n_disks; i++) {
        const ek_local_disk_t *k = &d->disks[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(k->id));
        json_object_object_add(x, "path", json_object_new_string(k->path));
        json_object_object_add(x, "format", json_object_new_string(k->format ? k->format : "raw"));
        json_object_object_add(x, "size_bytes", json_object_new_int64((int64_t)k->size));
        json_object_object_add(x, "bus", json_object_new_string(k->bus));
        json_object_object_add(x, "shareable", json_object_new_boolean(false));
        if (k->boot_order > 0)
            json_object_object_add(x, "boot_order", json_object_new_int(k->boot_order));
        json_object_array_add(disks, x);
    }
    /* boot_order: the disks that have one, lowest order first */
    json_object *boot = json_object_new_array();
    for (int last = 0;;) {
        const ek_local_disk_t *next = NULL;
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
        const ek_local_nic_t *k = &d->nics[i];
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
