/* srcread.c - REPLICATE_DISKS of the libvirt source: the readers the
 * generic driver (worker/providers/common/replicate.h) copies from.
 *
 * Running domain: one backup job (backup.c) for all disks, begun before
 * the first disk and ended after the last; each disk is its NBD export
 * (worker/transfer/reader_nbd.c), read through the SSH tunnel.
 *   - qcow2 disk with a base checkpoint: only the ranges of the dirty
 *     bitmap are read and sent ("change tracking");
 *   - disk without a bitmap (raw, qcow2 v2, or no base checkpoint) on an
 *     incremental sync: every block is read and its hash compared with the
 *     replica's (below);
 *   - first sync: everything allocated is sent.
 * Shut-off domain: the volume is downloaded through libvirt
 * (virStorageVolDownload, sparse) into the connection's private directory
 * and read from there (qcow2 through a local qemu-nbd), with the same hash
 * comparison on incremental syncs. The image is the tenant's: its format is
 * checked against its header, any backing file, data file or extent is
 * refused, and qemu opens it with the format forced and "backing": null
 * (worker/providers/common/tenant_image.h), so no file of the worker can
 * reach the destination through it. Downloading, rather than running
 * qemu-nbd on the host over SSH, because libvirt gives a shut-off domain's
 * images back to root (0600): the SSH account of a non-root endpoint
 * cannot open them, while libvirtd serves them; and no tool is needed on
 * the host. The price is temporary space on the worker (the allocated
 * size) - a hash comparison reads every block anyway.
 *
 * Hash comparison keeps no state on the worker: the reader reports data
 * as unchanged and asks the engine for EK_VERIFY_FULL, so the engine hashes
 * every block of the source, asks the writer for the replica's hashes of
 * the same blocks (HASH requests, engine.c verify()) and sends exactly the
 * blocks that differ. Holes and zero ranges are still sent as zero ranges.
 *
 * A re-run of an interrupted task resumes from what the writer
 * acknowledged. That is sound only against the same point in time: the
 * backup job of the first attempt when it is still there (backup.c
 * re-attaches); otherwise the copy is verified in full (EK_VERIFY_FULL), so
 * that a block the guest changed since the first attempt, acknowledged in
 * its older version, is found and sent again. */
#include "worker/providers/libvirt/libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/tenantname.h"
#include "worker/providers/common/replicate.h"
#include "worker/providers/common/tenant_image.h"

#define NBD_START_TIMEOUT_MS 30000

typedef struct src {
    ek_lv_conn_t *c;
    virDomainPtr dom;
    ek_lv_domain_t *d;
    ek_lv_backup_t *bk; /* running domain */
    const ek_task_input_t *in;
    bool resumed_job;
    bool cbt_off; /* source_environment.changed_block_tracking false */
} src_t;

/* One open disk: the inner reader and what it needs. */
typedef struct disk_rd {
    ek_task_ctx_t *ctx;
    const ek_reader_ops_t *ops;
    void *h;
    bool hash_mode;
    char *file;     /* downloaded image, removed at close */
    char *nbd_sock; /* local qemu-nbd socket */
    pid_t nbd_pid;
} disk_rd_t;

char *ek_lv_checkpoint_tag(const ek_task_input_t *in)
{
    /* One set of checkpoints per replica set: the destination endpoint
     * (a transfer has one per instance). Its id is a UUID; 8 hex digits
     * keep bitmap names short. */
    const char *id = in->destination && in->destination->id ? in->destination->id : "";
    char tag[9] = "";
    size_t k = 0;
    for (const char *p = id; *p && k < 8; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
            tag[k++] = *p;
    tag[k] = 0;
    return ek_xstrdup(k ? tag : "0");
}

/* ---- the reader wrapper ------------------------------------------------------------ */

static ek_err_t *rd_cancelled(const disk_rd_t *r)
{
    return r->ctx && ek_task_cancelled(r->ctx) ? ek_err_new(EK_E_CANCELED, "cancelled") : NULL;
}

static ek_err_t *rd_open(const char *source, const ek_reader_params_t *params, void **handle,
                         uint64_t *size)
{
    (void)source;
    (void)params;
    (void)handle;
    (void)size;
    return ek_err_new(EK_E_INTERNAL, "the libvirt source reader is opened by the provider");
}

static ek_err_t *rd_extents(void *p, uint64_t offset, uint64_t length, ek_extents_t *out)
{
    disk_rd_t *r = p;
    ek_err_t *err = rd_cancelled(r);
    if (err)
        return err;
    size_t first = out->n;
    if ((err = r->ops->extents(r->h, offset, length, out)))
        return err;
    if (!r->hash_mode)
        return NULL;
    /* Data is "unchanged" until the full verification finds it differs. */
    ek_extents_t mapped = {0};
    for (size_t i = first; i < out->n; i++)
        ek_extents_push(&mapped, out->v[i].offset, out->v[i].length,
                        out->v[i].kind == EK_EXTENT_DATA ? EK_EXTENT_UNCHANGED : out->v[i].kind);
    out->n = first;
    for (size_t i = 0; i < mapped.n; i++)
        ek_extents_push(out, mapped.v[i].offset, mapped.v[i].length, mapped.v[i].kind);
    ek_extents_release(&mapped);
    return NULL;
}

static ek_err_t *rd_pread(void *p, void *buf, size_t len, uint64_t offset)
{
    disk_rd_t *r = p;
    ek_err_t *err = rd_cancelled(r);
    return err ? err : r->ops->pread(r->h, buf, len, offset);
}

static void rd_close_inner(void *p)
{
    (void)p; /* the provider's close does it */
}

static const ek_reader_ops_t lv_reader = {
    .name = "libvirt",
    .open = rd_open,
    .extents = rd_extents,
    .pread = rd_pread,
    .changes = NULL,
    .block_hashes = NULL,
    .commit = NULL,
    .close = rd_close_inner,
};

/* ---- shut-off domains: download, local qemu-nbd ------------------------------------- */

typedef struct dl {
    int fd;
    off_t pos;
    ek_task_ctx_t *ctx;
} dl_t;

static int dl_data(virStreamPtr st, const char *buf, size_t n, void *opaque)
{
    dl_t *d = opaque;
    (void)st;
    if (d->ctx && ek_task_cancelled(d->ctx))
        return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(d->fd, buf + done, n - done, d->pos + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        done += (size_t)w;
    }
    d->pos += (off_t)n;
    return (int)n;
}

static int dl_hole(virStreamPtr st, long long length, void *opaque)
{
    dl_t *d = opaque;
    (void)st;
    d->pos += (off_t)length;
    return ftruncate(d->fd, d->pos) == 0 ? 0 : -1;
}

static ek_err_t *download(src_t *s, ek_task_ctx_t *ctx, const ek_lv_disk_t *k, const char *file)
{
    virConnectPtr conn = ek_lv_virconn(s->c);
    virStorageVolPtr vol = virStorageVolLookupByPath(conn, k->path);
    if (!vol)
        return ek_lv_err(EK_E_NOTFOUND,
                         "disk '%s' (\"%s\") is in no libvirt storage pool, so it cannot be read "
                         "while the domain is shut off: define a pool for its directory",
                         k->id, k->path);
    /* The download holds the top image only: an overlay would be read
     * against a backing file that is not here. */
    char *vxml = virStorageVolGetXMLDesc(vol, 0);
    const char *bs = vxml ? strstr(vxml, "<backingStore>") : NULL;
    bool overlay = bs && strstr(bs, "<path>");
    free(vxml);
    if (overlay) {
        virStorageVolFree(vol);
        return ek_err_new(EK_E_INVALID,
                          "disk '%s' (\"%s\") is an overlay on a backing image: a shut-off "
                          "domain's backing chain cannot be read through libvirt; start the "
                          "domain (it is then read through a backup job) or flatten the disk "
                          "(qemu-img convert)",
                          k->id, k->path);
    }
    virStorageVolInfo vi;
    struct statvfs fs;
    ek_err_t *err = NULL;
    if (virStorageVolGetInfo(vol, &vi) == 0 && statvfs(ek_lv_tmp_dir(s->c), &fs) == 0 &&
        (uint64_t)fs.f_bavail * fs.f_frsize < vi.allocation) {
        char a[32], b[32];
        err = ek_err_new(EK_E_IO,
                         "disk '%s': reading it needs %s of temporary space on the worker and "
                         "\"%s\" has %s free: free space there or set another [worker] tmp_dir",
                         k->id, ek_human_size(vi.allocation, a), ek_lv_tmp_dir(s->c),
                         ek_human_size((uint64_t)fs.f_bavail * fs.f_frsize, b));
        virStorageVolFree(vol);
        return err;
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        virStorageVolFree(vol);
        return ek_err_errno(errno, "could not create \"%s\"", file);
    }
    virStreamPtr st = virStreamNew(conn, 0);
    dl_t d = {fd, 0, ctx};
    if (!st || virStorageVolDownload(vol, st, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        err =
            ek_lv_err(EK_E_IO, "disk '%s': libvirt cannot download volume \"%s\"", k->id, k->path);
    } else if (virStreamSparseRecvAll(st, dl_data, dl_hole, &d) < 0) {
        err = ctx && ek_task_cancelled(ctx)
                  ? ek_err_new(EK_E_CANCELED, "cancelled")
                  : ek_lv_err(EK_E_IO, "disk '%s': the download of \"%s\" failed", k->id, k->path);
        virStreamAbort(st);
    } else if (virStreamFinish(st) < 0) {
        err =
            ek_lv_err(EK_E_IO, "disk '%s': the download of \"%s\" did not finish", k->id, k->path);
    } else if (ftruncate(fd, d.pos) != 0) {
        err = ek_err_errno(errno, "could not size \"%s\"", file);
    }
    if (st)
        virStreamFree(st);
    virStorageVolFree(vol);
    close(fd);
    return err;
}

static void nbd_stop(disk_rd_t *r)
{
    ek_helper_stop(r->nbd_pid);
    r->nbd_pid = -1;
    if (r->nbd_sock)
        unlink(r->nbd_sock);
}

/* qemu-nbd serving the downloaded image read-only: the guest's view of a
 * qcow2 (or any other format qemu reads). The image comes from the tenant:
 * it was probed (tenant_image.h) and qemu opens it through fd with the
 * format forced and "backing": null, so it reaches no other file. Dies
 * with the task. */
static ek_err_t *nbd_start(disk_rd_t *r, const char *dir, const char *id, int fd, uint64_t size,
                           const char *format)
{
    r->nbd_sock = ek_xasprintf("%s/%s.nbd.sock", dir, id);
    _cleanup_free_ char *fmt = ek_xasprintf("--format=%s", format);
    _cleanup_free_ char *sock = ek_xasprintf("--socket=%s", r->nbd_sock);
    _cleanup_free_ char *log = ek_xasprintf("%s/%s.qemu-nbd.log", dir, id);
    _cleanup_free_ char *spec = ek_tenant_image_spec(fd, 0, size, NULL);
    const char *bin = getenv("EKMAN_QEMU_NBD");
    if (!bin || !*bin)
        bin = "qemu-nbd";
    const char *argv[] = {bin, "--read-only", "--persistent", "--shared=16", fmt, sock, spec, NULL};
    ek_err_t *err =
        ek_helper_start(argv, r->nbd_sock, log, NBD_START_TIMEOUT_MS, "qemu-nbd", &r->nbd_pid);
    return err ? ek_err_prefix(err, "serving the downloaded image of disk '%s'", id) : NULL;
}

static const ek_lv_disk_t *find_disk(const ek_lv_domain_t *d, const char *id)
{
    for (size_t i = 0; i < d->n_disks; i++)
        if (strcmp(d->disks[i].id, id) == 0)
            return &d->disks[i];
    return NULL;
}

static ek_err_t *open_offline(src_t *s, ek_task_ctx_t *ctx, const ek_lv_disk_t *k, disk_rd_t *r,
                              uint64_t *size)
{
    /* k->id names a file here: checked when the domain was parsed, and
     * again because this is where it becomes a path. */
    ek_err_t *err = ek_tenant_name_check(k->id, "disk target dev");
    if (err)
        return err;
    r->file = ek_xasprintf("%s/%s.img", ek_lv_tmp_dir(s->c), k->id);
    char sz[32];
    ek_task_event(ctx, "INFO", "disk '%s': downloading volume \"%s\" (%s, %s) through libvirt",
                  k->id, k->path, k->format, ek_human_size(k->size, sz));
    if ((err = download(s, ctx, k, r->file)))
        return err;
    /* Not close-on-exec: qemu-img and qemu-nbd read it as /dev/fd/N. */
    int fd = open(r->file, O_RDONLY);
    if (fd < 0)
        return ek_err_errno(errno, "could not open \"%s\"", r->file);
    struct stat st;
    _cleanup_free_ char *format = NULL;
    _cleanup_free_ char *what = ek_xasprintf("'%s' (\"%s\")", k->id, k->path);
    uint64_t vsize = 0;
    if (fstat(fd, &st) != 0)
        err = ek_err_errno(errno, "could not stat \"%s\"", r->file);
    else
        err = ek_tenant_image_probe(fd, 0, (uint64_t)st.st_size, k->format, what, &format, &vsize);
    if (!err && strcmp(format, "raw") != 0)
        err = nbd_start(r, ek_lv_tmp_dir(s->c), k->id, fd, (uint64_t)st.st_size, format);
    close(fd); /* qemu-nbd holds its own */
    if (err)
        return err;
    const char *uri = r->file;
    _cleanup_free_ char *nbd_uri = NULL;
    r->ops = &ek_reader_file;
    if (strcmp(format, "raw") != 0) {
        nbd_uri = ek_xasprintf("nbd+unix:///?socket=%s", r->nbd_sock);
        uri = nbd_uri;
        r->ops = &ek_reader_nbd;
    }
    ek_reader_params_t rp = {0};
    return r->ops->open(uri, &rp, &r->h, size);
}

/* ---- the source's callbacks ------------------------------------------------------- */

/* qcow2 v3 (compat 1.1) can hold persistent bitmaps; v2 cannot. */
static bool bitmap_capable(virConnectPtr conn, const ek_lv_disk_t *k)
{
    if (strcmp(k->format, "qcow2") != 0)
        return false;
    virStorageVolPtr v = virStorageVolLookupByPath(conn, k->path);
    char *xml = v ? virStorageVolGetXMLDesc(v, 0) : NULL;
    bool ok = !xml || !strstr(xml, "<compat>0.10</compat>");
    free(xml);
    if (v)
        virStorageVolFree(v);
    virResetLastError();
    return ok;
}

static ek_err_t *src_begin(void *opaque, ek_task_ctx_t *ctx, const ek_task_input_t *in)
{
    src_t *s = opaque;
    ek_err_t *err;
    if ((err = ek_lv_task_connect_source(ctx, in, &s->c)) ||
        (err = ek_lv_domain_load(s->c, in->instance, &s->d)))
        return err;
    s->dom = virDomainLookupByName(ek_lv_virconn(s->c), s->d->name);
    if (!s->dom)
        return ek_lv_err(EK_E_NOTFOUND, "domain '%s'", s->d->name);
    if (!s->d->running)
        return NULL;
    bool incremental = true, cbt = true;
    json_object *saved = NULL;
    if (in->params && json_object_is_type(in->params, json_type_object) &&
        (err = ek_json_opt_bool(in->params, "params", "incremental", true, &incremental)))
        return err;
    if ((err = ek_lv_source_env(in->origin ? in->origin->environment : NULL, &cbt)))
        return err;
    bool resume = in->state && json_object_object_get_ex(in->state, "disks", &saved) &&
                  json_object_is_type(saved, json_type_object) &&
                  json_object_object_length(saved) > 0;
    ek_lv_backup_disk_t *bd = ek_xcalloc(s->d->n_disks ? s->d->n_disks : 1, sizeof(*bd));
    for (size_t i = 0; i < s->d->n_disks; i++) {
        bd[i].id = s->d->disks[i].id;
        bd[i].incremental_ok = cbt && bitmap_capable(ek_lv_virconn(s->c), &s->d->disks[i]);
    }
    _cleanup_free_ char *tag = ek_lv_checkpoint_tag(in);
    s->cbt_off = !cbt;
    if (!cbt) {
        /* source_environment.changed_block_tracking false: no checkpoint is
         * made, and those of earlier syncs go (their bitmaps with them) */
        incremental = false;
        if (!resume && (err = ek_lv_checkpoints_prune(s->dom, tag, NULL))) {
            free(bd);
            return err;
        }
        ek_task_event(ctx, "INFO",
                      "domain '%s': changed block tracking is off (source_environment): every "
                      "disk is read in full, no checkpoint is kept",
                      s->d->name);
    }
    err =
        ek_lv_backup_begin(s->c, s->dom, tag, bd, s->d->n_disks, incremental, resume, ctx, &s->bk);
    free(bd);
    if (!err)
        s->resumed_job = ek_lv_backup_reattached(s->bk);
    return err;
}

static ek_err_t *src_close(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                           ek_repl_reader_t *rr, bool ok);

static ek_err_t *src_open(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                          ek_repl_reader_t *out)
{
    src_t *s = opaque;
    const ek_lv_disk_t *k = find_disk(s->d, d->id);
    if (!k)
        return ek_err_new(EK_E_CONFLICT,
                          "domain '%s' has no disk '%s' any more: execute the transfer again "
                          "(its instance info is read anew)",
                          s->d->name, d->id);
    disk_rd_t *r = ek_xcalloc(1, sizeof(*r));
    r->ctx = ctx;
    r->nbd_pid = -1;
    out->priv = r;
    out->ops = &lv_reader;
    out->handle = r;
    out->verify = EK_VERIFY_SENT;
    ek_err_t *err = NULL;
    const char *bitmap = NULL;
    if (s->bk) {
        _cleanup_free_ char *uri = ek_lv_backup_uri(s->bk, k->id);
        bitmap = d->incremental ? ek_lv_backup_bitmap(s->bk, k->id) : NULL;
        ek_reader_params_t rp = {.dirty_bitmap = bitmap};
        r->ops = &ek_reader_nbd;
        err = r->ops->open(uri, &rp, &r->h, &out->size);
    } else {
        err = open_offline(s, ctx, k, r, &out->size);
    }
    if (err) {
        /* the driver closes only what opened: the download, qemu-nbd and r go now */
        ek_err_free(src_close(opaque, ctx, d, out, false));
        return err;
    }
    r->hash_mode = d->incremental && !bitmap;
    out->tracked = bitmap != NULL || r->hash_mode;
    if (r->hash_mode) {
        out->verify = EK_VERIFY_FULL;
        ek_task_event(ctx, "INFO",
                      "disk '%s' (%s): no change tracking for it%s: every block is read and "
                      "only those that differ from the replica (block hashes) are sent",
                      k->id, k->format,
                      !s->bk       ? " (the domain is shut off)"
                      : s->cbt_off ? " (changed_block_tracking is off in the source environment)"
                      : strcmp(k->format, "qcow2") == 0 ? " yet (no base checkpoint)"
                                                        : " (not qcow2: no bitmaps)");
    } else if (d->retried && !s->resumed_job) {
        out->verify = EK_VERIFY_FULL;
        ek_task_event(ctx, "INFO",
                      "disk '%s': resuming an interrupted copy from a new point in time: every "
                      "block is verified against the replica",
                      k->id);
    } else if (s->bk && !bitmap && d->incremental == false) {
        ek_task_event(ctx, "INFO", "disk '%s': full read (first sync)", k->id);
    }
    return NULL;
}

static ek_err_t *src_close(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                           ek_repl_reader_t *rr, bool ok)
{
    (void)opaque;
    (void)ctx;
    (void)d;
    (void)ok;
    disk_rd_t *r = rr->priv;
    if (!r)
        return NULL;
    if (r->h)
        r->ops->close(r->h);
    nbd_stop(r);
    if (r->file)
        unlink(r->file);
    free(r->file);
    free(r->nbd_sock);
    free(r);
    rr->priv = NULL;
    return NULL;
}

static ek_err_t *src_end(void *opaque, ek_task_ctx_t *ctx, bool ok)
{
    src_t *s = opaque;
    (void)ctx;
    ek_err_t *err = ek_lv_backup_end(s->bk, ok);
    s->bk = NULL;
    if (!err && ok && s->d && s->d->running)
        ek_task_event(ctx, "INFO",
                      "domain '%s': the sync's checkpoint is the base of the next "
                      "incremental",
                      s->d->name);
    return err;
}

ek_err_t *ek_lv_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result)
{
    src_t s = {.in = in};
    ek_repl_source_t src = {
        .opaque = &s,
        .begin = src_begin,
        .open = src_open,
        .close = src_close,
        .end = src_end,
    };
    ek_err_t *err = ek_replicate_disks(ctx, in, &src, result);
    if (s.bk) /* begin failed half-way: the driver calls end, but be sure */
        ek_err_free(ek_lv_backup_end(s.bk, false));
    if (s.dom)
        virDomainFree(s.dom);
    ek_lv_domain_free(s.d);
    ek_lv_disconnect(s.c);
    return err;
}
