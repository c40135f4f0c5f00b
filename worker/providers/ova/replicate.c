/* replicate.c - REPLICATE_DISKS of the ova source: each disk is served by
 * qemu-nbd straight out of its file or tar member (image.c: a raw window,
 * the format forced, read-only) to the NBD reader, wrapped by the local
 * provider's change tracker (block hashes, providers/local/tracked.c) so
 * that a re-execution over a new export of the same VM sends only the
 * blocks that differ from the replica, and then to the generic driver
 * (providers/common/replicate.h).
 *
 * The hash map's life follows the local provider's rules (see the top of
 * providers/local/replicate.c): a first execution starts a fresh one, a
 * map whose last sync did not finish or that another sync superseded is
 * dropped, each completed sync stamps it with its task id. */
#include "worker/providers/ova/ova.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/replicate.h"
#include "worker/providers/local/local.h"

typedef struct ova_disk {
    ek_local_nbd_t *nbd;
    ek_local_tracked_t *reader;
    const char *hash_map;
} ova_disk_t;

typedef struct ova_repl {
    int dirfd;
} ova_repl_t;

/* The disk's window, checked against what GET_INSTANCE_INFO saw. */
static ek_err_t *open_window(int dirfd, const ek_repl_disk_t *d, int *fd, uint64_t *off,
                             uint64_t *len, char **format)
{
    const char *path, *member, *fmt;
    int64_t o, l;
    ek_err_t *err;
    if ((err = ek_json_req_string(d->disk, "export_info.disks[]", "path", &path)) ||
        (err = ek_json_opt_string(d->disk, "export_info.disks[]", "member", NULL, &member)) ||
        (err = ek_json_req_string(d->disk, "export_info.disks[]", "format", &fmt)) ||
        (err = ek_json_opt_int(d->disk, "export_info.disks[]", "offset", -1, &o)) ||
        (err = ek_json_opt_int(d->disk, "export_info.disks[]", "length", -1, &l)))
        return err;
    if ((err = ek_ova_open_beneath(dirfd, path, fd)))
        return err;
    if (member) {
        ek_ova_tar_t tar;
        if ((err = ek_ova_tar_read(*fd, path, &tar))) {
            close(*fd);
            return err;
        }
        const ek_ova_member_t *m = ek_ova_tar_find(&tar, member);
        if (m) {
            *off = m->offset;
            *len = m->size;
        }
        ek_ova_tar_release(&tar);
        if (!m) {
            close(*fd);
            return ek_err_new(EK_E_CONFLICT, "\"%s\" no longer holds \"%s\" (disk %s)", path,
                              member, d->id);
        }
    } else {
        *off = 0;
        *len = (uint64_t)lseek(*fd, 0, SEEK_END);
    }
    if ((int64_t)*off != o || (int64_t)*len != l) {
        close(*fd);
        return ek_err_new(EK_E_CONFLICT,
                          "disk %s: \"%s\" changed since the instance was read (GET_INSTANCE_INFO):"
                          " run the transfer again",
                          d->id, path);
    }
    uint64_t vsize;
    if ((err = ek_ova_image_probe(*fd, *off, *len, d->id, format, &vsize))) {
        close(*fd);
        return err;
    }
    if (strcmp(*format, fmt) != 0 || vsize != d->size) {
        free(*format);
        close(*fd);
        return ek_err_new(EK_E_CONFLICT,
                          "disk %s: \"%s\" changed since the instance was read: "
                          "run the transfer again",
                          d->id, path);
    }
    return NULL;
}

static ek_err_t *open_disk(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                           ek_repl_reader_t *rd)
{
    ova_repl_t *r = opaque;
    const ek_config_t *cfg = ek_task_config(ctx);
    const char *hash_map;
    ek_err_t *err = ek_json_opt_string(d->volume, "volumes_info[]", "hash_map", NULL, &hash_map);
    if (err)
        return err;
    if (!hash_map && d->incremental)
        ek_task_event(ctx, "WARNING",
                      "disk '%s': the destination keeps no block hashes: every block is sent",
                      d->id);
    if (hash_map && (err = ek_local_hash_map_prepare(ctx, d, hash_map)))
        return err;
    int fd;
    uint64_t off = 0, len = 0;
    _cleanup_free_ char *format = NULL;
    if ((err = open_window(r->dirfd, d, &fd, &off, &len, &format)))
        return err;
    ova_disk_t *od = ek_xcalloc(1, sizeof(*od));
    od->hash_map = hash_map;
    _cleanup_free_ char *spec = ek_ova_image_spec(fd, off, len, NULL);
    const char *tmp = cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : "/tmp";
    err = ek_local_nbd_start(spec, format, tmp, &od->nbd);
    close(fd); /* qemu-nbd opened its own */
    if (err) {
        free(od);
        return ek_err_prefix(err, "disk %s", d->id);
    }
    ek_reader_params_t rp = {0};
    void *ih = NULL;
    if ((err = ek_reader_nbd.open(ek_local_nbd_uri(od->nbd), &rp, &ih, &rd->size)) ||
        (err = ek_local_tracked_open(&ek_reader_nbd, ih, rd->size, hash_map, ctx, &od->reader)) ||
        (err = ek_local_hash_map_mark(hash_map, d->task_id, true))) {
        if (od->reader)
            ek_local_tracked_close(od->reader);
        else if (ih)
            ek_reader_nbd.close(ih);
        ek_local_nbd_stop(od->nbd);
        free(od);
        return err;
    }
    rd->ops = &ek_local_tracked_ops;
    rd->handle = od->reader;
    rd->tracked = hash_map != NULL;
    rd->priv = od;
    return NULL;
}

static ek_err_t *close_disk(void *opaque, ek_task_ctx_t *ctx, const ek_repl_disk_t *d,
                            ek_repl_reader_t *rd, bool ok)
{
    (void)opaque;
    (void)ctx;
    ova_disk_t *od = rd->priv;
    ek_local_tracked_close(od->reader);
    ek_local_nbd_stop(od->nbd);
    ek_err_t *err = NULL;
    if (ok && od->hash_map && !(err = ek_local_hash_map_seal(d, od->hash_map)))
        err = ek_local_hash_map_mark(od->hash_map, NULL, false);
    free(od);
    return err;
}

ek_err_t *ek_ova_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                      json_object *result)
{
    ova_repl_t r = {-1};
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), in->origin, &r.dirfd);
    if (err)
        return err;
    ek_repl_source_t src = {.opaque = &r, .open = open_disk, .close = close_disk};
    err = ek_replicate_disks(ctx, in, &src, result);
    close(r.dirfd);
    return err;
}
