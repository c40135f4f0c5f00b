/* instance.c - the instances of an ova endpoint directory: each .ova file
 * (tar) and each unpacked .ovf (in the directory or one folder down) is one
 * instance. Loading reads the tar headers and the descriptor only; the
 * manifest check (verify) and the disk probes (export_info) read more and
 * run in the tasks, not in listings. */
#include "worker/providers/ova/ova.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define MAX_OVF_BYTES (16u << 20)
#define MAX_MF_BYTES  (1u << 20)

void ek_ova_instance_free(ek_ova_instance_t *inst)
{
    if (!inst)
        return;
    free(inst->file);
    free(inst->ovf_name);
    free(inst->base);
    ek_ova_tar_release(&inst->tar);
    ek_ova_vm_free(inst->vm);
    free(inst);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "dir/name.ext" -> "name" */
static char *stem(const char *path)
{
    const char *b = base_name(path);
    const char *dot = strrchr(b, '.');
    return ek_xstrndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

static ek_err_t *read_range(int fd, uint64_t off, uint64_t len, uint64_t max, const char *what,
                            char **out)
{
    if (len > max)
        return ek_err_new(EK_E_INVALID, "\"%s\" is larger than %llu bytes", what,
                          (unsigned long long)max);
    char *buf = ek_xmalloc(len + 1);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return n < 0 ? ek_err_errno(errno, "cannot read \"%s\"", what)
                         : ek_err_new(EK_E_IO, "\"%s\" ends early", what);
        }
        done += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    return NULL;
}

static ek_err_t *load_archive(int fd, ek_ova_instance_t *inst, char **text, uint64_t *len)
{
    ek_err_t *err = ek_ova_tar_read(fd, inst->file, &inst->tar);
    if (err)
        return err;
    const ek_ova_member_t *ovf = NULL;
    size_t n_ovf = 0;
    for (size_t i = 0; i < inst->tar.n; i++) {
        const char *b = base_name(inst->tar.v[i].name);
        if (ends_with(b, ".ovf") && strncmp(b, "._", 2) != 0) {
            ovf = &inst->tar.v[i];
            n_ovf++;
        }
    }
    if (n_ovf != 1)
        return ek_err_new(EK_E_INVALID,
                          "\"%s\" holds %zu .ovf descriptors: an OVA must hold "
                          "exactly one",
                          inst->file, n_ovf);
    inst->ovf_name = ek_xstrdup(ovf->name);
    /* hrefs are relative to the descriptor's folder inside the tar */
    const char *slash = strrchr(ovf->name, '/');
    inst->base = slash ? ek_xstrndup(ovf->name, (size_t)(slash - ovf->name)) : ek_xstrdup("");
    *len = ovf->size;
    _cleanup_free_ char *what = ek_xasprintf("%s/%s", inst->file, ovf->name);
    return read_range(fd, ovf->offset, ovf->size, MAX_OVF_BYTES, what, text);
}

/* base/rel, or rel when base is empty (malloc'ed). */
static char *join(const char *base, const char *rel)
{
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    return base && *base ? ek_xasprintf("%s/%s", base, rel) : ek_xstrdup(rel);
}

ek_err_t *ek_ova_instance_load(int dirfd, const char *file, ek_ova_instance_t **out)
{
    *out = NULL;
    int fd;
    ek_err_t *err = ek_ova_open_beneath(dirfd, file, &fd);
    if (err)
        return err;
    ek_ova_instance_t *inst = ek_xcalloc(1, sizeof(*inst));
    inst->file = ek_xstrdup(file);
    inst->archive = ends_with(file, ".ova");
    _cleanup_free_ char *text = NULL;
    uint64_t len = 0;
    if (inst->archive) {
        err = load_archive(fd, inst, &text, &len);
    } else {
        struct stat st;
        inst->ovf_name = ek_xstrdup(file);
        const char *slash = strrchr(file, '/');
        inst->base = slash ? ek_xstrndup(file, (size_t)(slash - file)) : ek_xstrdup("");
        if (fstat(fd, &st) != 0)
            err = ek_err_errno(errno, "cannot read \"%s\"", file);
        else
            err = read_range(fd, 0, (uint64_t)st.st_size, MAX_OVF_BYTES, file, &text);
        len = (uint64_t)st.st_size;
    }
    close(fd);
    _cleanup_free_ char *fallback = stem(file);
    _cleanup_free_ char *what = inst->archive && inst->ovf_name
                                    ? ek_xasprintf("%s/%s", file, inst->ovf_name)
                                    : ek_xstrdup(file);
    if (!err)
        err = ek_ova_ovf_parse(text, len, fallback, what, &inst->vm);
    for (size_t i = 0; !err && i < inst->vm->n_disks; i++) {
        const char *href = inst->vm->disks[i].href;
        if (href[0] == '/' || strstr(href, "://") || strcmp(href, "..") == 0 ||
            strncmp(href, "../", 3) == 0 || strstr(href, "/../") || ends_with(href, "/.."))
            err = ek_err_new(EK_E_FORBIDDEN,
                             "\"%s\": disk file \"%s\" is outside the package (absolute, URL or "
                             "\"..\"): refused",
                             what, href);
        else if (inst->archive) {
            _cleanup_free_ char *name = join(inst->base, href);
            if (!ek_ova_tar_find(&inst->tar, name))
                err = ek_err_new(EK_E_INVALID, "\"%s\" does not hold \"%s\", the file of disk %s",
                                 file, name, inst->vm->disks[i].id);
        }
    }
    if (err) {
        ek_ova_instance_free(inst);
        return err;
    }
    *out = inst;
    return NULL;
}

static int cmp_inst(const void *a, const void *b)
{
    const ek_ova_instance_t *x = *(ek_ova_instance_t *const *)a;
    const ek_ova_instance_t *y = *(ek_ova_instance_t *const *)b;
    int c = strcmp(x->vm->name, y->vm->name);
    return c ? c : strcmp(x->file, y->file);
}

typedef struct inst_vec {
    ek_ova_instance_t **v;
    size_t n, alloc;
} inst_vec_t;

static void scan(int dirfd, const char *prefix, int depth, inst_vec_t *vec)
{
    int fd = prefix ? openat(dirfd, prefix, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                    : dup(dirfd);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    if (!prefix)
        rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *rel =
            prefix ? ek_xasprintf("%s/%s", prefix, e->d_name) : ek_xstrdup(e->d_name);
        struct stat st;
        if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth == 0)
                scan(dirfd, rel, 1, vec);
            continue;
        }
        bool ova = ends_with(rel, ".ova"), ovf = ends_with(rel, ".ovf");
        if (!ovf && !(ova && depth == 0))
            continue;
        ek_ova_instance_t *inst;
        ek_err_t *err = ek_ova_instance_load(dirfd, rel, &inst);
        if (err) {
            ek_log_kv(EK_LOG_WARNING, "ova: skipped a file that does not load", "file", rel,
                      "error", err->message, NULL);
            ek_err_free(err);
            continue;
        }
        if (vec->n == vec->alloc) {
            vec->alloc = vec->alloc ? vec->alloc * 2 : 8;
            vec->v = ek_xrealloc(vec->v, vec->alloc * sizeof(*vec->v));
        }
        vec->v[vec->n++] = inst;
    }
    closedir(d);
}

ek_err_t *ek_ova_instance_list(int dirfd, ek_ova_instance_t ***out, size_t *n)
{
    inst_vec_t vec = {0};
    scan(dirfd, NULL, 0, &vec);
    if (vec.n > 1)
        qsort(vec.v, vec.n, sizeof(*vec.v), cmp_inst);
    *out = vec.v;
    *n = vec.n;
    return NULL;
}

ek_err_t *ek_ova_instance_find(int dirfd, const char *name, ek_ova_instance_t **out)
{
    ek_ova_instance_t **v;
    size_t n;
    ek_err_t *err = ek_ova_instance_list(dirfd, &v, &n);
    if (err)
        return err;
    ek_ova_instance_t *found = NULL;
    ek_strbuf_t names = EK_STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i]->vm->name, name) != 0) {
            ek_strbuf_addf(&names, "%s%s", names.len ? ", " : "", v[i]->vm->name);
            ek_ova_instance_free(v[i]);
        } else if (found) {
            if (!err)
                err = ek_err_new(EK_E_CONFLICT,
                                 "instance '%s' is described by two files (\"%s\" and \"%s\"): "
                                 "remove or rename one",
                                 name, found->file, v[i]->file);
            ek_ova_instance_free(v[i]);
        } else {
            found = v[i];
        }
    }
    free(v);
    if (!err && !found)
        err = ek_err_new(EK_E_NOTFOUND,
                         "no OVA or OVF in the endpoint's directory describes "
                         "instance '%s' (found: %s)",
                         name, names.len ? names.buf : "none");
    ek_strbuf_release(&names);
    if (err) {
        ek_ova_instance_free(found);
        return err;
    }
    *out = found;
    return NULL;
}

/* Opens a file of the package: a tar member or a file beside the .ovf. */
static ek_err_t *open_part(int dirfd, const ek_ova_instance_t *inst, const char *rel, int *fd,
                           uint64_t *offset, uint64_t *size)
{
    _cleanup_free_ char *name = join(inst->base, rel);
    ek_err_t *err;
    if (inst->archive) {
        const ek_ova_member_t *m = ek_ova_tar_find(&inst->tar, name);
        if (!m)
            return ek_err_new(EK_E_NOTFOUND, "\"%s\" holds no \"%s\"", inst->file, name);
        if ((err = ek_ova_open_beneath(dirfd, inst->file, fd)))
            return err;
        /* the archive may have been replaced since it was loaded */
        ek_ova_tar_t now;
        if ((err = ek_ova_tar_read(*fd, inst->file, &now))) {
            close(*fd);
            return err;
        }
        const ek_ova_member_t *m2 = ek_ova_tar_find(&now, name);
        bool same = m2 && m2->offset == m->offset && m2->size == m->size;
        ek_ova_tar_release(&now);
        if (!same) {
            close(*fd);
            return ek_err_new(EK_E_CONFLICT, "\"%s\" changed while it was read: run again",
                              inst->file);
        }
        *offset = m->offset;
        *size = m->size;
        return NULL;
    }
    if ((err = ek_ova_open_beneath(dirfd, name, fd)))
        return err;
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        err = ek_err_errno(errno, "cannot read \"%s\"", name);
        close(*fd);
        return err;
    }
    *offset = 0;
    *size = (uint64_t)st.st_size;
    return NULL;
}

ek_err_t *ek_ova_instance_disk_open(int dirfd, const ek_ova_instance_t *inst, size_t i, int *fd,
                                    uint64_t *offset, uint64_t *size)
{
    const ek_ova_disk_t *d = &inst->vm->disks[i];
    if (d->compression)
        return ek_err_new(EK_E_INVALID,
                          "disk %s (\"%s\") is compressed (ovf:compression=\"%s\"): compressed "
                          "OVF disks are not read in place; export the OVA without compression",
                          d->id, d->href, d->compression);
    return open_part(dirfd, inst, d->href, fd, offset, size);
}

/* The manifest's name: <stem of the .ovf>.mf beside it. */
static char *manifest_name(const ek_ova_instance_t *inst)
{
    _cleanup_free_ char *s = stem(inst->ovf_name);
    return ek_xasprintf("%s.mf", s);
}

ek_err_t *ek_ova_instance_verify(ek_task_ctx_t *ctx, int dirfd, const ek_ova_instance_t *inst)
{
    for (size_t i = 0; i < inst->vm->n_disks; i++)
        if (inst->vm->disks[i].compression)
            return ek_err_new(EK_E_INVALID,
                              "disk %s (\"%s\") is compressed (ovf:compression=\"%s\"): export "
                              "the OVA without compression",
                              inst->vm->disks[i].id, inst->vm->disks[i].href,
                              inst->vm->disks[i].compression);
    _cleanup_free_ char *mf = manifest_name(inst);
    int fd;
    uint64_t off, size;
    ek_err_t *err = open_part(dirfd, inst, mf, &fd, &off, &size);
    if (err) {
        bool missing = err->code == EK_E_NOTFOUND || err->sys_errno == ENOENT;
        if (!missing)
            return err;
        ek_err_free(err);
        ek_task_event(ctx, "WARNING",
                      "\"%s\" comes without a manifest (%s): the files' digests are not checked",
                      inst->file, mf);
        return NULL;
    }
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *what =
        ek_xasprintf("%s%s%s", inst->archive ? inst->file : "", inst->archive ? "/" : "", mf);
    err = read_range(fd, off, size, MAX_MF_BYTES, what, &text);
    close(fd);
    ek_ova_manifest_t m;
    if (err || (err = ek_ova_manifest_parse(text, size, what, &m)))
        return err;
    size_t checked = 0;
    for (size_t i = 0; i < m.n && !err; i++) {
        const ek_ova_mf_entry_t *e = &m.v[i];
        if (e->name[0] == '/' || strstr(e->name, "..")) {
            err = ek_err_new(EK_E_INVALID, "\"%s\" lists \"%s\", outside the package: refused",
                             what, e->name);
            break;
        }
        err = open_part(dirfd, inst, e->name, &fd, &off, &size);
        if (err && (err->code == EK_E_NOTFOUND || err->sys_errno == ENOENT)) {
            ek_task_event(ctx, "WARNING", "\"%s\" lists \"%s\", which is not in the package", what,
                          e->name);
            ek_err_free(err);
            err = NULL;
            continue;
        }
        if (err)
            break;
        char *hex = NULL;
        err = ek_ova_digest(fd, off, size, e->algo, ctx, &hex);
        close(fd);
        if (err) {
            err = ek_err_prefix(err, "checking \"%s\"", e->name);
        } else if (strcmp(hex, e->hex) != 0) {
            err = ek_err_new(EK_E_INVALID,
                             "\"%s\" of \"%s\" does not match its manifest: %s is %s, the "
                             "manifest says %s. The package is damaged or was altered: export it "
                             "again",
                             e->name, inst->file, e->algo, hex, e->hex);
        } else {
            checked++;
        }
        free(hex);
    }
    if (!err)
        ek_task_event(ctx, "INFO", "\"%s\": %zu file(s) match the manifest %s", inst->file, checked,
                      mf);
    ek_ova_manifest_release(&m);
    return err;
}

ek_err_t *ek_ova_instance_export_info(int dirfd, const ek_ova_instance_t *inst, json_object **out)
{
    const ek_ova_vm_t *vm = inst->vm;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(vm->name));
    json_object_object_add(o, "name", json_object_new_string(vm->name));
    json_object_object_add(o, "instance_name", json_object_new_string(vm->name));
    json_object_object_add(o, "num_cpu", json_object_new_int(vm->vcpus));
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)vm->memory_mb));
    json_object_object_add(o, "firmware", json_object_new_string(vm->firmware));
    json_object_object_add(o, "os_type", json_object_new_string(vm->os_type));
    json_object_object_add(o, "arch", json_object_new_string("x86_64"));
    if (vm->vmw_ostype)
        json_object_object_add(o, "guest_os_id", json_object_new_string(vm->vmw_ostype));
    if (vm->ovf_os_id >= 0)
        json_object_object_add(o, "ovf_os_id", json_object_new_int(vm->ovf_os_id));
    json_object_object_add(o, "source_file", json_object_new_string(inst->file));
    json_object *disks = json_object_new_array();
    json_object_object_add(o, "disks", disks);
    ek_err_t *err = NULL;
    for (size_t i = 0; i < vm->n_disks && !err; i++) {
        const ek_ova_disk_t *d = &vm->disks[i];
        int fd;
        uint64_t off, size, vsize = 0;
        char *fmt = NULL;
        if ((err = ek_ova_instance_disk_open(dirfd, inst, i, &fd, &off, &size)))
            break;
        err = ek_ova_image_probe(fd, off, size, d->id, &fmt, &vsize);
        close(fd);
        if (err)
            break;
        _cleanup_free_ char *name = join(inst->base, d->href);
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(d->id));
        json_object_object_add(x, "path",
                               json_object_new_string(inst->archive ? inst->file : name));
        if (inst->archive)
            json_object_object_add(x, "member", json_object_new_string(name));
        json_object_object_add(x, "offset", json_object_new_int64((int64_t)off));
        json_object_object_add(x, "length", json_object_new_int64((int64_t)size));
        json_object_object_add(x, "format", json_object_new_string(fmt));
        json_object_object_add(x, "size_bytes", json_object_new_int64((int64_t)vsize));
        json_object_object_add(x, "ovf_capacity_bytes",
                               json_object_new_int64((int64_t)d->capacity));
        json_object_object_add(x, "bus", json_object_new_string(d->bus));
        json_object_object_add(x, "controller", json_object_new_string(d->controller));
        json_object_object_add(x, "shareable", json_object_new_boolean(false));
        if (i == 0)
            json_object_object_add(x, "boot_order", json_object_new_int(1));
        json_object_array_add(disks, x);
        free(fmt);
    }
    if (err) {
        json_object_put(o);
        return err;
    }
    json_object *boot = json_object_new_array();
    json_object_array_add(boot, json_object_new_string(vm->disks[0].id));
    json_object_object_add(o, "boot_order", boot);
    json_object *nics = json_object_new_array();
    for (size_t i = 0; i < vm->n_nics; i++) {
        const ek_ova_nic_t *k = &vm->nics[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "mac", json_object_new_string(k->mac));
        json_object_object_add(x, "mac_generated", json_object_new_boolean(k->mac_generated));
        json_object_object_add(x, "network_name",
                               k->network ? json_object_new_string(k->network) : NULL);
        json_object_object_add(x, "type", json_object_new_string("network"));
        json_object_object_add(x, "model", json_object_new_string(k->model));
        json_object_array_add(nics, x);
    }
    json_object_object_add(o, "nics", nics);
    *out = o;
    return NULL;
}
