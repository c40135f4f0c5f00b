/* minion.c - temporary worker VMs on oVirt: the disk-copy worker of a
 * transfer execution (DEPLOY/DELETE_TRANSFER_TARGET_RESOURCES) and the
 * OS-morphing worker of a deployment (deploy.c uses the same two calls).
 *
 * A worker is a VM made from the template default_migr_template_map gives
 * for the OS type, in default_migr_minion_cluster (else default_cluster),
 * its own disks in default_migr_minion_storage_domain when set (else where
 * the template's are). The disks it works on are attached with the virtio
 * interface, so the guest sees each with its oVirt disk id as serial (the
 * first 20 characters: "serial:<id>" for ekman-writer). It is started with
 * cloud-init: initialization.custom_script holds the user-data keys of
 * worker/providers/common/minion.h (keys, certificates, a per-boot script
 * starting the writer), which the engine appends to its own YAML, plus
 * user_name / root_password from the template maps. The
 * address comes from the guest agent's reported devices. Any failure
 * removes the VM again, keeping the attached disks. */
#include "worker/providers/ovirt/ovirt.h"

#include <stdio.h>
#include <string.h>
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/uuid.h"
#include "worker/providers/common/minion.h"

char *ek_ovirt_disk_serial_path(const char *disk_id)
{
    return ek_xasprintf("serial:%.*s", EK_MINION_SERIAL_MAX, disk_id);
}

/* disk_attachments placing the template's disks in storage domain sd. */
static ek_err_t *template_disks_in(ek_ovirt_t *c, const char *tpl_id, json_object *sd,
                                   json_object **out)
{
    _cleanup_free_ char *path = ek_xasprintf("/templates/%s/diskattachments", tpl_id);
    json_object *o;
    ek_err_t *err = ek_ovirt_call(c, "GET", path, NULL, "listing the template's disks", &o);
    if (err)
        return err;
    json_object *arr = json_object_new_array(), *a = ek_ovirt_list(o, "disk_attachment");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        const char *did = ek_ovirt_ref(json_object_array_get_idx(a, i), "disk", "id");
        if (!did)
            did = ek_ovirt_str(json_object_array_get_idx(a, i), "id");
        json_object *att = json_object_new_object(), *d = json_object_new_object();
        json_object *sds = json_object_new_object(), *l = json_object_new_array();
        json_object *ref = json_object_new_object();
        json_object_object_add(ref, "id", json_object_new_string(ek_ovirt_str(sd, "id")));
        json_object_array_add(l, ref);
        json_object_object_add(sds, "storage_domain", l);
        json_object_object_add(d, "id", json_object_new_string(did));
        json_object_object_add(d, "format", json_object_new_string("cow"));
        json_object_object_add(d, "storage_domains", sds);
        json_object_object_add(att, "disk", d);
        json_object_array_add(arr, att);
    }
    json_object_put(o);
    *out = json_object_new_object();
    json_object_object_add(*out, "disk_attachment", arr);
    return NULL;
}

static json_object *ref_id(const char *id)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", json_object_new_string(id));
    return r;
}

/* The VM body of a worker called name. */
static ek_err_t *worker_body(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                             const char *os_type, const char *name, json_object **body, bool *clone)
{
    const ek_endpoint_t *ep = in->destination;
    const char *tname = ek_ovirt_opt_map(ctx, ep, "default_migr_template_map", os_type);
    const char *cname = ek_ovirt_minion_cluster(ctx, ep);
    const char *sdname = ek_ovirt_opt_str(ctx, ep, "default_migr_minion_storage_domain");
    const char *copt = ek_ovirt_opt_str(ctx, ep, "default_migr_minion_cluster")[0]
                           ? "default_migr_minion_cluster"
                           : "default_cluster";
    if (!tname || !*tname)
        return ek_err_new(EK_E_INVALID,
                          "no worker template for OS type '%s': set default_migr_template_map "
                          "(e.g. \"%s: TEMPLATE\") in [ovirt_migration_provider] or the "
                          "destination environment",
                          os_type, os_type);
    _cleanup_json_ json_object *tpl = NULL, *cl = NULL, *sd = NULL;
    ek_err_t *err;
    if ((err = ek_ovirt_template(c, tname, "default_migr_template_map", &tpl)) ||
        (err = ek_ovirt_cluster(c, cname, copt, &cl)))
        return err;
    *body = json_object_new_object();
    json_object_object_add(*body, "name", json_object_new_string(name));
    json_object_object_add(*body, "description",
                           json_object_new_string("Ekman temporary worker: deleted when done"));
    json_object_object_add(*body, "cluster", ref_id(ek_ovirt_str(cl, "id")));
    json_object_object_add(*body, "template", ref_id(ek_ovirt_str(tpl, "id")));
    *clone = false;
    if (sdname && *sdname) {
        json_object *atts;
        if ((err = ek_ovirt_storage_domain(c, sdname, "default_migr_minion_storage_domain", &sd)) ||
            (err = template_disks_in(c, ek_ovirt_str(tpl, "id"), sd, &atts))) {
            json_object_put(*body);
            return err;
        }
        json_object_object_add(*body, "disk_attachments", atts);
        *clone = true; /* disks in another domain than the template's are copies */
    }
    return NULL;
}

/* The start action: cloud-init with the minion's user-data. */
static json_object *start_body(ek_task_ctx_t *ctx, const ek_task_input_t *in, const char *os_type,
                               const ek_minion_boot_t *b)
{
    const ek_endpoint_t *ep = in->destination;
    const char *user = ek_ovirt_opt_map(ctx, ep, "default_migr_template_username_map", os_type);
    const char *pass = ek_ovirt_opt_map(ctx, ep, "default_migr_template_password_map", os_type);
    /* the engine writes "#cloud-config", its own keys (user, password,
     * chpasswd, ssh_pwauth, disable_root, output, runcmd) and then this text
     * (ovirt-engine CloudInitHandler.getUserData) */
    char *ud = ek_minion_user_data_keys(b);
    json_object *init = json_object_new_object();
    json_object_object_add(init, "host_name", json_object_new_string(b->name));
    json_object_object_add(init, "custom_script", json_object_new_string(ud));
    json_object_object_add(init, "authorized_ssh_keys", json_object_new_string(b->client_pub));
    if (user && *user)
        json_object_object_add(init, "user_name", json_object_new_string(user));
    if (pass && *pass)
        json_object_object_add(init, "root_password", json_object_new_string(pass));
    ek_free_secret(ud);
    json_object *vm = json_object_new_object(), *body = json_object_new_object();
    json_object_object_add(vm, "initialization", init);
    json_object_object_add(body, "use_cloud_init", json_object_new_string("true"));
    json_object_object_add(body, "vm", vm);
    return body;
}

static json_object *resources_new(const char *vm_id, const char *name, const char *role,
                                  json_object *disk_ids)
{
    json_object *r = json_object_new_object(), *ids = NULL;
    json_object_object_add(r, "vm_id", json_object_new_string(vm_id));
    json_object_object_add(r, "vm_name", json_object_new_string(name));
    json_object_object_add(r, "role", json_object_new_string(role));
    if (json_object_deep_copy(disk_ids, &ids, NULL) != 0)
        ids = json_object_new_array();
    json_object_object_add(r, "disk_ids", ids);
    return r;
}

/* Attaches the disks, starts the VM and waits for its address. */
static ek_err_t *boot_worker(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                             const char *os_type, const char *vm_id, const char *name,
                             json_object *disk_ids, const ek_minion_boot_t *b, char **ip)
{
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(disk_ids) && !err; i++)
        err = ek_ovirt_vm_attach(c, vm_id, name,
                                 json_object_get_string(json_object_array_get_idx(disk_ids, i)),
                                 "virtio", false);
    if (err)
        return err;
    json_object *sb = start_body(ctx, in, os_type, b);
    err = ek_ovirt_vm_start(c, ctx, vm_id, name, sb, true);
    json_object_put(sb);
    return err ? err : ek_ovirt_vm_wait_ip(c, ctx, vm_id, name, ip);
}

ek_err_t *ek_ovirt_minion_deploy(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                 const char *role, const char *os_type, json_object *disk_ids,
                                 json_object **resources, json_object **conn, char **ip)
{
    char tag[9], *u = ek_uuid_new();
    snprintf(tag, sizeof(tag), "%s", u);
    free(u);
    _cleanup_free_ char *suffix = ek_xasprintf("-%s-%s", role, tag);
    _cleanup_free_ char *name = ek_ovirt_vm_name("ekman-", in->instance, suffix);
    json_object *body = NULL, *vm = NULL;
    bool clone = false;
    ek_err_t *err = worker_body(c, ctx, in, os_type, name, &body, &clone);
    if (err)
        return err;
    ek_minion_boot_t *b = NULL;
    const char *tmp = ek_config_get_string(ek_task_config(ctx), "worker", "tmp_dir");
    if ((err = ek_minion_boot_new(name, tmp, NULL, &b))) {
        json_object_put(body);
        return err;
    }
    err = ek_ovirt_vm_create(c, ctx, body, clone ? "?clone=true" : NULL, &vm);
    json_object_put(body);
    const char *vm_id = vm ? ek_ovirt_str(vm, "id") : NULL;
    if (vm_id) {
        /* a killed task leaves the id in its state: the next attempt removes it */
        json_object *r = resources_new(vm_id, name, role, disk_ids);
        ek_task_save_state(ctx, r);
        json_object_put(r);
    }
    if (!err) {
        const char *tid = ek_ovirt_ref(vm, "template", "id");
        ek_task_event(ctx, "INFO",
                      "worker VM '%s' (%s) created from template %s; attaching %zu "
                      "disk(s)",
                      name, vm_id, tid ? tid : "(not named)", json_object_array_length(disk_ids));
        err = boot_worker(c, ctx, in, os_type, vm_id, name, disk_ids, b, ip);
    }
    if (err && vm_id) {
        ek_ovirt_set_cancellable(c, false);
        ek_err_t *e2 = ek_ovirt_vm_remove(c, ctx, vm_id, name, disk_ids);
        ek_ovirt_set_cancellable(c, true);
        if (e2) {
            ek_task_event(ctx, "ERROR", "could not remove worker VM '%s' (%s): %s", name, vm_id,
                          e2->message);
            ek_err_free(e2);
        } else {
            ek_task_event(ctx, "INFO", "worker VM '%s' removed after the failure", name);
        }
    }
    if (!err) {
        *resources = resources_new(vm_id, name, role, disk_ids);
        /* the disk copy streams to the writer over mutual TLS; OS morphing
         * runs commands over SSH */
        *conn = ek_minion_connection_info(b, strcmp(role, "copy") == 0 ? "https" : "ssh", *ip, 0);
        ek_task_event(ctx, "INFO", "worker VM '%s' is up at %s", name, *ip);
    }
    json_object_put(vm);
    ek_minion_boot_free(b);
    return err;
}

ek_err_t *ek_ovirt_minion_delete(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *resources)
{
    const char *vm_id = ek_ovirt_str(resources, "vm_id");
    const char *name = ek_ovirt_str(resources, "vm_name");
    json_object *ids = NULL;
    if (!vm_id)
        return NULL; /* nothing was made */
    json_object_object_get_ex(resources, "disk_ids", &ids);
    ek_err_t *err = ek_ovirt_vm_remove(c, ctx, vm_id, name ? name : vm_id, ids);
    if (!err)
        ek_task_event(ctx, "INFO", "worker VM '%s' deleted; its disks were detached first",
                      name ? name : vm_id);
    return err;
}

/* ---- the disk-copy worker ---------------------------------------------------------------- */

/* The ovirt_disk_id of every volume. */
static ek_err_t *volume_disk_ids(json_object *vols, json_object **out)
{
    *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(vols); i++) {
        const char *d = ek_ovirt_str(json_object_array_get_idx(vols, i), "ovirt_disk_id");
        if (!d) {
            json_object_put(*out);
            return ek_err_new(EK_E_INVALID,
                              "volumes_info[%zu] names no oVirt disk (DEPLOY_TRANSFER_DISKS "
                              "must run first)",
                              i);
        }
        json_object_array_add(*out, json_object_new_string(d));
    }
    return NULL;
}

/* A worker (or image transfers) an earlier, killed attempt of this task
 * left behind. */
static void remove_leftover(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in)
{
    if (!in->state)
        return;
    ek_err_t *err = NULL;
    if (ek_ovirt_str(in->state, "vm_id"))
        err = ek_ovirt_minion_delete(c, ctx, in->state);
    else if (json_object_object_get_ex(in->state, "image_transfers", NULL))
        err = ek_ovirt_imageio_finalize(c, ctx, in->state);
    if (err) {
        ek_task_event(ctx, "WARNING", "what an earlier attempt left: %s", err->message);
        ek_err_free(err);
    }
}

ek_err_t *ek_ovirt_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    json_object *vols, *ids, *res = NULL, *conn = NULL, *copy = NULL;
    ek_ovirt_t *c;
    char *ip = NULL;
    bool imageio = false;
    ek_err_t *err;
    if ((err = ek_ovirt_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = ek_ovirt_use_imageio(ctx, in->destination, &imageio)) ||
        (err = volume_disk_ids(vols, &ids)))
        return err;
    if ((err = ek_ovirt_open(in->destination, ctx, &c))) {
        json_object_put(ids);
        return err;
    }
    remove_leftover(c, ctx, in);
    if (imageio) {
        /* the disks go straight into image transfers: no worker VM */
        err = ek_ovirt_imageio_deploy(c, ctx, in, vols, &res, &conn, &copy);
    } else {
        /* the disk-copy worker is always the Linux template (seed: "the
         * Linux template will be used for data transfer") */
        err = ek_ovirt_minion_deploy(c, ctx, in, "copy", "linux", ids, &res, &conn, &ip);
        if (!err && json_object_deep_copy(vols, &copy, NULL) != 0)
            copy = json_object_new_array();
        /* the writer finds each disk by its serial (an earlier imageio
         * execution left its own paths) */
        for (size_t i = 0; !err && i < json_object_array_length(copy); i++) {
            json_object *v = json_object_array_get_idx(copy, i);
            char *path = ek_ovirt_disk_serial_path(ek_ovirt_str(v, "ovirt_disk_id"));
            json_object_object_add(v, "path", json_object_new_string(path));
            free(path);
        }
    }
    ek_ovirt_close(c);
    json_object_put(ids);
    free(ip);
    if (err)
        return err;
    json_object_object_add(result, "volumes_info", copy);
    json_object_object_add(result, "target_resources", res);
    json_object_object_add(result, "target_resources_connection_info", conn);
    return NULL;
}

ek_err_t *ek_ovirt_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    json_object *res;
    ek_ovirt_t *c;
    ek_err_t *err;
    if (!in->task_info || !json_object_object_get_ex(in->task_info, "target_resources", &res) ||
        (!ek_ovirt_str(res, "vm_id") && !json_object_object_get_ex(res, "image_transfers", NULL))) {
        ek_task_event(ctx, "INFO", "no worker VM or image transfer to end");
    } else {
        if ((err = ek_ovirt_open(in->destination, ctx, &c)))
            return err;
        /* the end of a failed execution too: its transfers are finalized
         * (the disks keep what was written) and its worker removed */
        ek_ovirt_set_cancellable(c, false);
        err = ek_ovirt_str(res, "vm_id") ? ek_ovirt_minion_delete(c, ctx, res)
                                         : ek_ovirt_imageio_finalize(c, ctx, res);
        ek_ovirt_close(c);
        if (err)
            return err;
    }
    json_object_object_add(result, "target_resources", json_object_new_object());
    json_object_object_add(result, "target_resources_connection_info", json_object_new_object());
    return NULL;
}
