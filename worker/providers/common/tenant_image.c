/* tenant_image.c - a tenant's disk image as qemu sees it, and what we
 * refuse (tenant_image.h).
 *
 * The format is taken from the disk's own header, never guessed by qemu,
 * and anything that would make qemu open another file is refused before
 * qemu sees the image: VMDK descriptors (their extents are other files),
 * sparse VMDKs with a parent, qcow2 with a backing file or an external data
 * file, differencing VHDs. The spec also says "backing": null. Then
 * `qemu-img info` with the format forced gives the virtual size and is
 * checked once more for any reference. */
#include "worker/providers/common/tenant_image.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/process.h"

/* Limits of `qemu-img info` on an untrusted image (1 GiB, 30 s). */
#define PROBE_MAX_AS  "1073741824"
#define PROBE_MAX_CPU "30"

static ek_err_t *read_window(int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n = ek_pread_full(fd, buf, len, off);
    if (n < 0)
        return ek_err_errno(errno, "read failed");
    if ((size_t)n < len)
        return ek_err_new(EK_E_INVALID, "the file ends early");
    return NULL;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}
static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | (uint64_t)be32(p + 4);
}

char *ek_tenant_image_spec(int fd, uint64_t offset, uint64_t size, const char *format)
{
    struct stat st = {0};
    bool blk = fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
    json_object *file = json_object_new_object();
    json_object_object_add(file, "driver", json_object_new_string(blk ? "host_device" : "file"));
    char path[32];
    snprintf(path, sizeof(path), "/dev/fd/%d", fd);
    json_object_object_add(file, "filename", json_object_new_string(path));
    json_object_object_add(file, "locking", json_object_new_string("off"));
    /* A window only when it is part of the file (a tar member): qemu wants
     * its size in whole sectors, which a whole image file need not be. */
    uint64_t whole = blk ? 0 : (uint64_t)st.st_size;
    json_object *win = file;
    if (blk || offset != 0 || size != whole) {
        win = json_object_new_object();
        json_object_object_add(win, "driver", json_object_new_string("raw"));
        json_object_object_add(win, "offset", json_object_new_int64((int64_t)offset));
        json_object_object_add(win, "size", json_object_new_int64((int64_t)size));
        json_object_object_add(win, "file", file);
    }
    json_object *top = json_object_new_object();
    if (format)
        json_object_object_add(top, "driver", json_object_new_string(format));
    json_object_object_add(top, "backing", NULL);
    json_object_object_add(top, "file", win);
    char *s =
        ek_xasprintf("json:%s", json_object_to_json_string_ext(
                                    top, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(top);
    return s;
}

/* A sparse VMDK (KDMV): monolithic, no parent. */
static ek_err_t *check_vmdk_sparse(int fd, uint64_t offset, uint64_t size, const unsigned char *h,
                                   const char *what)
{
    uint64_t desc_off = le64(h + 28) * 512, desc_len = le64(h + 36) * 512;
    if (desc_len == 0)
        return NULL; /* no embedded descriptor: one extent, itself */
    if (desc_len > (1u << 20) || desc_off > size || desc_len > size - desc_off)
        return ek_err_new(EK_E_INVALID,
                          "disk %s: the VMDK's embedded descriptor is out of "
                          "bounds",
                          what);
    _cleanup_free_ char *d = ek_xcalloc(1, desc_len + 1);
    ek_err_t *err = read_window(fd, d, desc_len, offset + desc_off);
    if (err)
        return ek_err_prefix(err, "disk %s", what);
    const char *p = strstr(d, "parentFileNameHint");
    if (p) {
        const char *q = strchr(p, '"');
        if (q && q[1] != '"')
            return ek_err_new(EK_E_FORBIDDEN,
                              "disk %s is a VMDK delta disk with a parent (parentFileNameHint): "
                              "only self-contained disks are read; consolidate the snapshots "
                              "before exporting",
                              what);
    }
    const char *ct = strstr(d, "createType");
    if (ct && !strstr(ct, "monolithicSparse") && !strstr(ct, "streamOptimized"))
        return ek_err_new(EK_E_FORBIDDEN,
                          "disk %s is a VMDK whose data lies in other files (createType not "
                          "monolithicSparse or streamOptimized): refused; export it as a "
                          "streamOptimized VMDK",
                          what);
    return NULL;
}

static ek_err_t *check_qcow2(int fd, uint64_t offset, uint64_t size, const unsigned char *h,
                             const char *what)
{
    uint32_t version = be32(h + 4);
    uint64_t bf_off = be64(h + 8);
    uint32_t bf_len = be32(h + 16);
    if (bf_off != 0) {
        char name[256] = "";
        if (bf_len > 0 && bf_off < size && bf_len < sizeof(name) && bf_len <= size - bf_off &&
            !read_window(fd, name, bf_len, offset + bf_off))
            name[bf_len] = '\0';
        return ek_err_new(EK_E_FORBIDDEN,
                          "disk %s is a qcow2 image with a backing file (\"%s\"): a disk must be "
                          "self-contained; flatten it (qemu-img convert) and try again",
                          what, name);
    }
    if (version >= 3 && (be64(h + 72) & 4))
        return ek_err_new(EK_E_FORBIDDEN,
                          "disk %s is a qcow2 image with an external data file: refused; convert "
                          "it to a self-contained image",
                          what);
    return NULL;
}

/* The format from the header (and a VHD footer), references refused. */
static ek_err_t *detect(int fd, uint64_t offset, uint64_t size, const char *what,
                        const char **format)
{
    unsigned char h[512] = {0};
    size_t n = size < sizeof(h) ? (size_t)size : sizeof(h);
    ek_err_t *err = read_window(fd, h, n, offset);
    if (err)
        return ek_err_prefix(err, "disk %s", what);
    if (n >= 64 && memcmp(h, "KDMV", 4) == 0) {
        *format = "vmdk";
        return check_vmdk_sparse(fd, offset, size, h, what);
    }
    if (memcmp(h, "# Disk DescriptorFile", 21) == 0 || memcmp(h, "COWD", 4) == 0)
        return ek_err_new(EK_E_FORBIDDEN,
                          "disk %s is a VMDK descriptor or ESX sparse file whose data lies in "
                          "other files: refused; export the disk as a streamOptimized VMDK",
                          what);
    if (n >= 104 && memcmp(h, "QFI\xfb", 4) == 0) {
        *format = "qcow2";
        return check_qcow2(fd, offset, size, h, what);
    }
    if (n >= 8 && memcmp(h, "vhdxfile", 8) == 0) {
        *format = "vhdx";
        return NULL;
    }
    if (n >= 64 && memcmp(h, "conectix", 8) == 0) {
        if (be32(h + 60) == 4)
            return ek_err_new(EK_E_FORBIDDEN,
                              "disk %s is a differencing VHD (it needs its parent): refused", what);
        *format = "vpc";
        return NULL;
    }
    if (memcmp(h, "QED", 4) == 0 || memcmp(h + 64, "\x7f\x10\xda\xbe", 4) == 0)
        return ek_err_new(EK_E_INVALID,
                          "disk %s is in a format this provider does not read "
                          "(QED or VDI): convert it to VMDK, qcow2, VHD(X) or raw",
                          what);
    if (size >= 512) {
        unsigned char f[512];
        if (!read_window(fd, f, 512, offset + size - 512) && memcmp(f, "conectix", 8) == 0) {
            *format = "vpc"; /* a fixed VHD: raw data and a footer */
            return NULL;
        }
    }
    *format = "raw";
    return NULL;
}

ek_err_t *ek_tenant_image_probe(int fd, uint64_t offset, uint64_t size, const char *declared,
                                const char *what, char **format, uint64_t *virtual_size)
{
    const char *fmt = "raw";
    ek_err_t *err = NULL;
    if (!declared || strcmp(declared, "raw") != 0) {
        if ((err = detect(fd, offset, size, what, &fmt)))
            return err;
        if (declared && strcmp(declared, fmt) != 0)
            return ek_err_new(EK_E_INVALID,
                              "disk %s is declared as '%s' but its header says '%s': correct the "
                              "driver type of the disk (or convert the image with qemu-img "
                              "convert)",
                              what, declared, fmt);
    }
    if (strcmp(fmt, "raw") == 0) {
        /* Raw data refers to nothing: the guest sees the window as it is. */
        if (size == 0)
            return ek_err_new(EK_E_INVALID, "disk %s is empty", what);
        *virtual_size = size;
        *format = ek_xstrdup(fmt);
        return NULL;
    }
    _cleanup_free_ char *spec = ek_tenant_image_spec(fd, offset, size, NULL);
    const char *bin = getenv("EKMAN_QEMU_IMG");
    if (!bin || !*bin)
        bin = "qemu-img";
    /* qemu's advice for untrusted images: bound memory and CPU time. */
    const char *argv[] = {"prlimit",
                          "--as=" PROBE_MAX_AS,
                          "--cpu=" PROBE_MAX_CPU,
                          "--",
                          bin,
                          "info",
                          "--output=json",
                          "-f",
                          fmt,
                          spec,
                          NULL};
    _cleanup_free_ char *out = NULL;
    if ((err = ek_run(argv, &out)))
        return ek_err_prefix(err, "disk %s: qemu-img cannot read it as %s", what, fmt);
    json_object *info;
    if ((err = ek_json_parse(out, strlen(out), &info)))
        return ek_err_prefix(err, "disk %s: qemu-img info", what);
    json_object *v, *fs, *data, *x;
    if (json_object_object_get_ex(info, "backing-filename", &v) && v) {
        err = ek_err_new(EK_E_FORBIDDEN, "disk %s names a backing file (\"%s\"): refused", what,
                         json_object_get_string(v));
    } else if (json_object_object_get_ex(info, "format-specific", &fs) &&
               json_object_object_get_ex(fs, "data", &data) &&
               ((json_object_object_get_ex(data, "data-file", &x) && x) ||
                (json_object_object_get_ex(data, "extents", &x) &&
                 json_object_array_length(x) != 1))) {
        err = ek_err_new(EK_E_FORBIDDEN,
                         "disk %s refers to other files (data file or extents): "
                         "refused",
                         what);
    } else if (!json_object_object_get_ex(info, "virtual-size", &v) ||
               json_object_get_int64(v) <= 0) {
        err = ek_err_new(EK_E_INVALID, "disk %s: qemu-img reports no virtual size", what);
    } else {
        *virtual_size = (uint64_t)json_object_get_int64(v);
        *format = ek_xstrdup(fmt);
    }
    json_object_put(info);
    return err;
}
