/* imageio.c - data_transfer_mechanism = imageio: the disks of a transfer
 * execution are written straight into oVirt image transfers, with no
 * disk-copy worker VM (the OS-morphing worker stays as it is).
 *
 * DEPLOY_TRANSFER_TARGET_RESOURCES opens one upload image transfer per disk
 * (POST /imagetransfers, format raw: the host's imageio serves raw guest
 * data whatever the disk's format), waits until each is transferring, and
 * hands the source worker their ticket URLs (transfer_url on the host's
 * daemon, proxy_url on the engine's proxy) with the engine's CA, as a
 * target of kind "imageio" (worker/transfer/imageio.h). The source's
 * REPLICATE_DISKS writes them with the transfer engine.
 * DELETE_TRANSFER_TARGET_RESOURCES finalizes them and waits until each is
 * finished_success (or, engines before 4.4.7, gone with its disk ok).
 *
 * Transfers are always finalized, never cancelled, also after a failed
 * replication: the engine deletes the disk of a cancelled upload
 * (ovirt-engine-sdk examples/helpers/imagetransfer.py: "the transfer owns
 * the disk and will delete the disk if the transfer is canceled"), and the
 * disk is the replica an incremental or a retry continues from.
 *
 * A transfer is paused by the engine after inactivity_timeout seconds
 * without a request, and its ticket then answers 403. The disks of an
 * instance are copied one after the other, so the last disk's transfer
 * waits for all the others: imageio_inactivity_timeout must exceed the
 * replication of the whole instance. A paused transfer is resumed before
 * it is finalized. */
#include "worker/providers/ovirt/ovirt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"

/* Phases an upload never comes back from (ovirt-engine ImageTransferPhase). */
#define BAD_PHASES "finished_failure,finalizing_failure,cancelled_system,cancelled_user"

ek_err_t *ek_ovirt_use_imageio(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, bool *yes)
{
    const char *m = ek_ovirt_opt_str(ctx, ep, "data_transfer_mechanism");
    if (!m || !*m || strcmp(m, "https") == 0) {
        *yes = false;
        return NULL;
    }
    if (strcmp(m, "imageio") == 0) {
        *yes = true;
        return NULL;
    }
    return ek_err_new(EK_E_INVALID,
                      "data_transfer_mechanism '%s': use https (a worker VM running "
                      "ekman-writer) or imageio (oVirt image transfers)",
                      m);
}

static json_object *transfer_ref(const char *id, const char *disk_id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "disk_id", json_object_new_string(disk_id));
    return o;
}

/* Seconds a wait on a disk of size bytes may take: storage moves ~50 MiB/s
 * at worst, and never less than 5 minutes. */
static int size_timeout(int64_t size)
{
    int64_t s = size / (50LL << 20);
    return s < 300 ? 300 : s > 86400 ? 86400 : (int)s;
}

/* Finalizes one transfer and waits for its end. */
static ek_err_t *finalize_one(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *id,
                              const char *disk_id)
{
    _cleanup_free_ char *path = ek_xasprintf("/imagetransfers/%s", id);
    _cleanup_free_ char *what = ek_xasprintf("image transfer %s (disk %s)", id, disk_id);
    json_object *t = NULL;
    ek_err_t *err = ek_ovirt_get_opt(c, path, what, &t);
    if (err)
        return err;
    const char *phase = t ? ek_ovirt_str(t, "phase") : "gone";
    if (!phase)
        phase = "unknown";
    _cleanup_free_ char *ph = ek_xstrdup(phase);
    json_object_put(t);
    if (strcmp(ph, "paused_system") == 0 || strcmp(ph, "paused_user") == 0) {
        /* the ticket went with the pause; finalize wants it back */
        _cleanup_free_ char *act = ek_xasprintf("%s/resume", path);
        json_object *body = json_object_new_object();
        err = ek_ovirt_call(c, "POST", act, body, what, NULL);
        json_object_put(body);
        if (!err)
            err = ek_ovirt_wait(c, ctx, path, "phase", "transferring", BAD_PHASES, 300, what);
        if (err)
            return err;
        free(ph);
        ph = ek_xstrdup("transferring");
    }
    if (strcmp(ph, "transferring") == 0) {
        _cleanup_free_ char *act = ek_xasprintf("%s/finalize", path);
        json_object *body = json_object_new_object();
        err = ek_ovirt_call(c, "POST", act, body, what, NULL);
        json_object_put(body);
        if (err)
            return err;
    } else if (strcmp(ph, "finished_success") == 0) {
        return NULL;
    } else if (strstr(BAD_PHASES, ph)) {
        return ek_err_new(EK_E_CONFLICT, "%s: the engine ended it in phase %s", what, ph);
    }
    /* finalizing_success -> finished_success; engines before 4.4.7 remove
     * the transfer as it ends: then the disk says how it went */
    _cleanup_free_ char *dpath = ek_xasprintf("/disks/%s", disk_id);
    json_object *d = NULL;
    int64_t size = 0;
    if (!(err = ek_ovirt_get_opt(c, dpath, what, &d)) && d)
        ek_ovirt_int(d, "provisioned_size", &size);
    json_object_put(d);
    if (err)
        return err;
    err = ek_ovirt_wait(c, ctx, path, "phase", "finished_success,gone", BAD_PHASES,
                        size_timeout(size), what);
    if (err)
        return err;
    if ((err = ek_ovirt_get_opt(c, dpath, what, &d)))
        return err;
    const char *st = d ? ek_ovirt_str(d, "status") : NULL;
    if (!d || !st || (strcmp(st, "ok") != 0 && strcmp(st, "locked") != 0))
        err = ek_err_new(EK_E_CONFLICT, "%s: after finalizing, the disk is %s", what,
                         !d   ? "gone (the engine removed it)"
                         : st ? st
                              : "of unknown status");
    else if (strcmp(st, "locked") == 0)
        err = ek_ovirt_wait(c, ctx, dpath, "status", "ok", "illegal", size_timeout(size), what);
    json_object_put(d);
    return err;
}

ek_err_t *ek_ovirt_imageio_finalize(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *resources)
{
    json_object *list = NULL;
    ek_err_t *first = NULL;
    if (!resources || !json_object_object_get_ex(resources, "image_transfers", &list) ||
        !json_object_is_type(list, json_type_array))
        return NULL;
    /* every transfer, also after one failed: each holds its disk locked */
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *t = json_object_array_get_idx(list, i);
        const char *id = ek_ovirt_str(t, "id"), *disk = ek_ovirt_str(t, "disk_id");
        if (!id || !disk)
            continue;
        ek_err_t *err = finalize_one(c, ctx, id, disk);
        if (err && !first)
            first = err;
        else if (err)
            ek_err_free(err);
        else
            ek_task_event(ctx, "INFO", "image transfer %s of disk %s finalized", id, disk);
    }
    return first;
}

/* POST /imagetransfers for one disk; *out the transfer once transferring. */
static ek_err_t *start_one(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *disk_id,
                           int64_t inactivity, json_object *made, json_object **out)
{
    json_object *body = json_object_new_object(), *disk = json_object_new_object(), *t = NULL;
    json_object_object_add(disk, "id", json_object_new_string(disk_id));
    json_object_object_add(body, "disk", disk);
    json_object_object_add(body, "direction", json_object_new_string("upload"));
    json_object_object_add(body, "format", json_object_new_string("raw"));
    json_object_object_add(body, "inactivity_timeout", json_object_new_int64(inactivity));
    _cleanup_free_ char *what = ek_xasprintf("starting an image transfer to disk %s", disk_id);
    ek_err_t *err = ek_ovirt_call(c, "POST", "/imagetransfers", body, what, &t);
    json_object_put(body);
    const char *id = t ? ek_ovirt_str(t, "id") : NULL;
    if (!err && !id)
        err = ek_err_new(EK_E_PROTOCOL, "%s: the engine's answer has no id", what);
    if (err) {
        json_object_put(t);
        return err;
    }
    /* a killed task leaves the ids in its state: the next attempt finalizes them */
    json_object_array_add(json_object_object_get(made, "image_transfers"),
                          transfer_ref(id, disk_id));
    ek_task_save_state(ctx, made);
    _cleanup_free_ char *path = ek_xasprintf("/imagetransfers/%s", id);
    _cleanup_free_ char *w2 = ek_xasprintf("image transfer %s (disk %s)", id, disk_id);
    json_object_put(t);
    t = NULL;
    if (!(err = ek_ovirt_wait(c, ctx, path, "phase", "transferring",
                              BAD_PHASES ",paused_system,paused_user",
                              ek_ovirt_timeout("IMAGE_TRANSFER", 300), w2)))
        err = ek_ovirt_call(c, "GET", path, NULL, w2, &t);
    if (!err && !ek_ovirt_str(t, "transfer_url") && !ek_ovirt_str(t, "proxy_url"))
        err = ek_err_new(EK_E_PROTOCOL, "%s is transferring but has no transfer_url or proxy_url",
                         w2);
    if (err) {
        json_object_put(t);
        return err;
    }
    *out = t;
    return NULL;
}

ek_err_t *ek_ovirt_imageio_deploy(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                  json_object *vols, json_object **resources, json_object **conn,
                                  json_object **vols_out)
{
    const ek_endpoint_t *ep = in->destination;
    int64_t inactivity = ek_ovirt_opt_int(ctx, ep, "imageio_inactivity_timeout");
    json_object *made = json_object_new_object(), *copy = NULL;
    json_object_object_add(made, "image_transfers", json_object_new_array());
    json_object *disks = json_object_new_array();
    char *ca = NULL;
    ek_err_t *err = NULL;
    bool insecure = ek_ovirt_insecure(c);
    if (!insecure)
        err = ek_ovirt_engine_ca(c, &ca);
    if (!err && json_object_deep_copy(vols, &copy, NULL) != 0)
        err = ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    for (size_t i = 0; !err && i < json_object_array_length(copy); i++) {
        json_object *v = json_object_array_get_idx(copy, i), *t = NULL;
        const char *disk_id = ek_ovirt_str(v, "ovirt_disk_id");
        int64_t size = 0;
        if (!disk_id || !ek_ovirt_int(v, "size_bytes", &size) || size <= 0) {
            err = ek_err_new(EK_E_INVALID,
                             "volumes_info[%zu] names no oVirt disk and size "
                             "(DEPLOY_TRANSFER_DISKS must run first)",
                             i);
            break;
        }
        if ((err = start_one(c, ctx, disk_id, inactivity, made, &t)))
            break;
        const char *tid = ek_ovirt_str(t, "id");
        const char *turl = ek_ovirt_str(t, "transfer_url"), *purl = ek_ovirt_str(t, "proxy_url");
        _cleanup_free_ char *vpath = ek_xasprintf("imageio:%s", tid);
        json_object *d = json_object_new_object();
        json_object_object_add(d, "path", json_object_new_string(vpath));
        json_object_object_add(d, "ticket_url", json_object_new_string(turl ? turl : purl));
        if (purl && turl)
            json_object_object_add(d, "proxy_ticket_url", json_object_new_string(purl));
        json_object_object_add(d, "size", json_object_new_int64(size));
        json_object_array_add(disks, d);
        json_object_object_add(v, "path", json_object_new_string(vpath));
        ek_task_event(ctx, "INFO", "image transfer %s to disk %s is ready (%s)", tid, disk_id,
                      turl ? "the host's imageio, the engine's proxy as fallback"
                           : "through the engine's proxy");
        json_object_put(t);
    }
    if (err) {
        /* finalized, not cancelled: a cancelled upload deletes its disk */
        ek_ovirt_set_cancellable(c, false);
        ek_err_t *e2 = ek_ovirt_imageio_finalize(c, ctx, made);
        ek_ovirt_set_cancellable(c, true);
        if (e2) {
            ek_task_event(ctx, "ERROR", "could not finalize the image transfers started: %s",
                          e2->message);
            ek_err_free(e2);
        }
        json_object_put(made);
        json_object_put(disks);
        json_object_put(copy);
        ek_free_secret(ca);
        return err;
    }
    *conn = json_object_new_object();
    json_object_object_add(*conn, "kind", json_object_new_string("imageio"));
    if (ca)
        json_object_object_add(*conn, "ca_pem", json_object_new_string(ca));
    json_object_object_add(*conn, "insecure", json_object_new_boolean(insecure));
    json_object_object_add(*conn, "disks", disks);
    *resources = made;
    *vols_out = copy;
    free(ca);
    return NULL;
}
