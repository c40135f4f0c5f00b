/* vms.c - what the tasks do with oVirt VMs and disks: create from a
 * template and wait for the image lock to go, attach and detach disks,
 * start with a cloud-init payload and wait for the guest to report an
 * address, stop, delete (keeping the disks that are the transfer's), and
 * delete disks. Objects already gone count as removed, so every cleanup
 * can run twice. */
#include "worker/providers/ovirt/ovirt.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

void ek_ovirt_cpu_topology(int64_t n, int64_t *sockets, int64_t *cores)
{
    if (n < 1)
        n = 1;
    int64_t c = 1;
    while (n / c > 16 || n % c != 0)
        c++;
    *sockets = n / c;
    *cores = c;
}

char *ek_ovirt_vm_name(const char *prefix, const char *instance, const char *suffix)
{
    char *s = ek_xasprintf("%s%s%s", prefix ? prefix : "", instance, suffix ? suffix : "");
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            *p = '-';
    size_t n = strlen(s);
    if (n > 64) /* keep the end: the suffix tells the VMs apart */
        memmove(s, s + n - 64, 65);
    return s;
}

ek_err_t *ek_ovirt_vm_create(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *body,
                             const char *query, json_object **vm)
{
    const char *name = ek_ovirt_str(body, "name");
    _cleanup_free_ char *what = ek_xasprintf("creating VM '%s'", name ? name : "?");
    _cleanup_free_ char *path = ek_xasprintf("/vms%s", query ? query : "");
    json_object *o;
    ek_err_t *err = ek_ovirt_call(c, "POST", path, body, what, &o);
    if (err)
        return err;
    const char *id = ek_ovirt_str(o, "id");
    if (!id) {
        json_object_put(o);
        return ek_err_new(EK_E_PROTOCOL, "%s: the engine's answer has no id", what);
    }
    _cleanup_free_ char *vpath = ek_xasprintf("/vms/%s", id);
    _cleanup_free_ char *wwhat = ek_xasprintf("VM '%s' (%s) being created", name, id);
    if ((err = ek_ovirt_wait(c, ctx, vpath, "status", "down", "", ek_ovirt_timeout("VM", 900),
                             wwhat))) {
        *vm = o; /* the caller removes what was made */
        return err;
    }
    *vm = o;
    return NULL;
}

ek_err_t *ek_ovirt_vm_attach(ek_ovirt_t *c, const char *vm_id, const char *vm_name,
                             const char *disk_id, const char *iface, bool bootable)
{
    json_object *b = json_object_new_object(), *d = json_object_new_object();
    json_object_object_add(d, "id", json_object_new_string(disk_id));
    json_object_object_add(b, "disk", d);
    json_object_object_add(b, "interface", json_object_new_string(iface));
    json_object_object_add(b, "bootable", json_object_new_string(bootable ? "true" : "false"));
    json_object_object_add(b, "active", json_object_new_string("true"));
    json_object_object_add(b, "pass_discard", json_object_new_string("false"));
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s/diskattachments", vm_id);
    _cleanup_free_ char *dpath = ek_xasprintf("/disks/%s", disk_id);
    json_object *disk = NULL; /* its name, for the message */
    ek_err_t *lookup = ek_ovirt_get_opt(c, dpath, "reading a disk", &disk);
    const char *dname = disk ? ek_ovirt_str(disk, "name") : NULL;
    _cleanup_free_ char *what =
        dname ? ek_xasprintf("attaching disk '%s' (%s) to VM '%s'", dname, disk_id, vm_name)
              : ek_xasprintf("attaching disk %s to VM '%s'", disk_id, vm_name);
    ek_err_free(lookup);
    json_object_put(disk);
    ek_err_t *err = ek_ovirt_call(c, "POST", path, b, what, NULL);
    json_object_put(b);
    return err;
}

ek_err_t *ek_ovirt_vm_start(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                            const char *vm_name, json_object *body, bool wait_up)
{
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s/start", vm_id);
    _cleanup_free_ char *what = ek_xasprintf("starting VM '%s'", vm_name);
    json_object *b = body ? json_object_get(body) : json_object_new_object();
    ek_err_t *err = ek_ovirt_call(c, "POST", path, b, what, NULL);
    json_object_put(b);
    if (err || !wait_up)
        return err;
    _cleanup_free_ char *vpath = ek_xasprintf("/vms/%s", vm_id);
    _cleanup_free_ char *wwhat = ek_xasprintf("VM '%s' starting", vm_name);
    /* The engine answers the start once the VM is wait_for_launch (its run
     * command sets that before it returns); a VM read as down after that
     * could not be run by the host: no reason to wait the whole timeout. */
    err = ek_ovirt_wait(c, ctx, vpath, "status", "up", "down", ek_ovirt_timeout("VM", 900), wwhat);
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        return ek_err_new(EK_E_UNAVAILABLE,
                          "VM '%s' went back to down after the engine accepted to start it: no "
                          "host could run it; the engine's events for this VM say why (memory, "
                          "a network or storage domain the host lacks, CPU type)",
                          vm_name);
    }
    return err;
}

ek_err_t *ek_ovirt_vm_stop(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                           const char *vm_name)
{
    _cleanup_free_ char *vpath = ek_xasprintf("/vms/%s", vm_id);
    _cleanup_free_ char *what = ek_xasprintf("stopping VM '%s'", vm_name);
    json_object *vm;
    ek_err_t *err = ek_ovirt_get_opt(c, vpath, what, &vm);
    if (err || !vm)
        return err;
    const char *st = ek_ovirt_str(vm, "status");
    bool down = st && strcmp(st, "down") == 0;
    json_object_put(vm);
    if (down)
        return NULL;
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s/stop", vm_id);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "force", json_object_new_string("true"));
    err = ek_ovirt_call(c, "POST", path, b, what, NULL);
    json_object_put(b);
    if (err)
        return err;
    return ek_ovirt_wait(c, ctx, vpath, "status", "down,gone", "", ek_ovirt_timeout("VM", 900),
                         what);
}

static ek_err_t *detach(ek_ovirt_t *c, const char *vm_id, const char *vm_name, const char *disk_id)
{
    _cleanup_free_ char *path =
        ek_xasprintf("/vms/%s/diskattachments/%s?detach_only=true", vm_id, disk_id);
    _cleanup_free_ char *what = ek_xasprintf("detaching disk %s from VM '%s'", disk_id, vm_name);
    ek_err_t *err = ek_ovirt_call(c, "DELETE", path, NULL, what, NULL);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        return NULL;
    }
    return err;
}

ek_err_t *ek_ovirt_vm_remove(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                             const char *vm_name, json_object *keep_disk_ids)
{
    _cleanup_free_ char *vpath = ek_xasprintf("/vms/%s", vm_id);
    _cleanup_free_ char *what = ek_xasprintf("deleting VM '%s' (%s)", vm_name, vm_id);
    json_object *vm;
    ek_err_t *err = ek_ovirt_get_opt(c, vpath, what, &vm);
    if (err || !vm)
        return err;
    bool protected_ = ek_ovirt_bool(vm, "delete_protected", false);
    json_object_put(vm);
    if ((err = ek_ovirt_vm_stop(c, ctx, vm_id, vm_name)))
        return err;
    size_t n = keep_disk_ids && json_object_is_type(keep_disk_ids, json_type_array)
                   ? json_object_array_length(keep_disk_ids)
                   : 0;
    for (size_t i = 0; i < n && !err; i++)
        err = detach(c, vm_id, vm_name,
                     json_object_get_string(json_object_array_get_idx(keep_disk_ids, i)));
    if (!err && protected_) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "delete_protected", json_object_new_string("false"));
        err = ek_ovirt_call(c, "PUT", vpath, b, what, NULL);
        json_object_put(b);
    }
    if (!err)
        err = ek_ovirt_call(c, "DELETE", vpath, NULL, what, NULL);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        return NULL;
    }
    if (err)
        return err;
    return ek_ovirt_wait(c, ctx, vpath, "status", "gone", "", ek_ovirt_timeout("VM", 900), what);
}

/* A usable address of a reported device, or NULL. */
static const char *device_ip(json_object *dev, bool v4)
{
    json_object *ips;
    if (!json_object_object_get_ex(dev, "ips", &ips))
        return NULL;
    json_object *a = ek_ovirt_list(ips, "ip");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *ip = json_object_array_get_idx(a, i);
        const char *addr = ek_ovirt_str(ip, "address"), *ver = ek_ovirt_str(ip, "version");
        if (!addr || strncmp(addr, "169.254.", 8) == 0 || strncasecmp(addr, "fe80:", 5) == 0)
            continue; /* link-local: not reachable from the worker */
        bool is_v4 = ver ? strcmp(ver, "v4") == 0 : strchr(addr, ':') == NULL;
        if (is_v4 == v4)
            return addr;
    }
    return NULL;
}

ek_err_t *ek_ovirt_vm_wait_ip(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                              const char *vm_name, char **ip)
{
    _cleanup_free_ char *path = ek_xasprintf("/vms/%s/reporteddevices", vm_id);
    _cleanup_free_ char *what = ek_xasprintf("reading the addresses of VM '%s'", vm_name);
    int timeout = ek_ovirt_timeout("IP", 900);
    time_t t0 = time(NULL);
    for (;;) {
        json_object *o;
        ek_err_t *err = ek_ovirt_call(c, "GET", path, NULL, what, &o);
        if (err)
            return err;
        json_object *a = ek_ovirt_list(o, "reported_device");
        const char *found = NULL;
        for (int v4 = 1; v4 >= 0 && !found; v4--)
            for (size_t i = 0; a && i < json_object_array_length(a) && !found; i++)
                found = device_ip(json_object_array_get_idx(a, i), v4);
        if (found)
            *ip = ek_xstrdup(found);
        json_object_put(o);
        if (found)
            return NULL;
        (void)ctx;
        if (ek_ovirt_cancelled(c))
            return ek_err_new(EK_E_CANCELED, "%s: cancelled", what);
        if (time(NULL) - t0 >= timeout)
            return ek_err_new(EK_E_TIMEOUT,
                              "VM '%s' reported no IP address in %d s: the template needs "
                              "qemu-guest-agent (or ovirt-guest-agent) running and a network "
                              "with DHCP",
                              vm_name, timeout);
        usleep(ek_ovirt_poll_ms() * 1000);
    }
}

ek_err_t *ek_ovirt_disk_remove(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *disk_id,
                               const char *what_disk)
{
    _cleanup_free_ char *path = ek_xasprintf("/disks/%s", disk_id);
    _cleanup_free_ char *what = ek_xasprintf("deleting %s (oVirt disk %s)", what_disk, disk_id);
    ek_err_t *err = ek_ovirt_call(c, "DELETE", path, NULL, what, NULL);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        return NULL;
    }
    if (err)
        return err;
    return ek_ovirt_wait(c, ctx, path, "status", "gone", "", ek_ovirt_timeout("DISK", 900), what);
}
