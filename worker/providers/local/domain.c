/* domain.c - what the local provider knows of a source VM: a libvirt domain
 * XML file (the input of `virt-v2v -i libvirtxml`) read by the common
 * reader (worker/providers/common/domxml.h: disks of type file or block
 * here), and the images its disks point to, probed for their format and
 * virtual size. The XML and the images it names are
 * opened beneath the operator's [local] allowed_roots only, the images
 * probed as untrusted input (worker/providers/common/tenant_image.h), and a
 * disk's target dev must be a plain name (common/tenantname.h). */
#include "worker/providers/local/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "common/tenantname.h"
#include "worker/providers/common/tenant_image.h"

#define MAX_XML_BYTES EK_DOMXML_MAX_BYTES

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

/* ---- parsing ------------------------------------------------------------------------- */

void ek_local_domain_free(ek_local_domain_t *d)
{
    ek_domxml_free(d);
}

ek_err_t *ek_local_domain_parse(const ek_local_scope_t *sc, const char *text, size_t len,
                                const char *base_dir, bool probe, ek_local_domain_t **out)
{
    ek_domxml_opts_t o = {.base_dir = base_dir, .reader = "the local provider"};
    ek_local_domain_t *d;
    ek_err_t *err = ek_domxml_parse(text, len, &o, &d);
    *out = NULL;
    if (err)
        return err;
    for (size_t i = 0; !err && i < d->n_disks; i++) {
        ek_local_disk_t *k = &d->disks[i];
        if (probe) {
            const char *fmt;
            if ((err = ek_local_image_probe(sc, k->path, k->format, &fmt, &k->size))) {
                err = ek_err_prefix(err, "domain '%s': disk '%s'", d->name, k->id);
                break;
            }
            free(k->format);
            k->format = ek_xstrdup(fmt);
        } else if (k->format && strcmp(k->format, "raw") != 0 && strcmp(k->format, "qcow2") != 0) {
            err = ek_err_new(EK_E_INVALID,
                             "domain '%s': disk '%s' is in format '%s': the local provider reads "
                             "raw and qcow2 images",
                             d->name, k->id, k->format);
        }
    }
    if (err) {
        ek_domxml_free(d);
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
    return ek_domxml_export_info(d, NULL);
}
