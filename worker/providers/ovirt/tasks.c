/* tasks.c - the ovirt provider's validations and updates, the Windows
 * VirtIO zip check (windows_virtio_zip_url must hold winvirtio.iso), and
 * the helpers every task file uses.
 *
 * VALIDATE_TRANSFER_DESTINATION_INPUTS looks up everything a transfer will
 * need before anything is made: the clusters, the worker template, the
 * storage domains of every disk (and that they have room), the vNIC
 * profiles of every NIC, the VM pool; so that a transfer fails early with
 * a message that names what to fix. */
#include "worker/providers/ovirt/ovirt.h"
#include "worker/providers/common/download.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"

ek_err_t *ek_ovirt_info_get(const ek_task_input_t *in, const char *key, json_type type,
                            json_object **out)
{
    static const char *const producers[][2] = {
        {"export_info", "GET_INSTANCE_INFO"},
        {"volumes_info", "DEPLOY_TRANSFER_DISKS"},
        {"instance_deployment_info", "DEPLOY_INSTANCE_RESOURCES"},
    };
    json_object *v = NULL;
    if (!in->task_info || !json_object_object_get_ex(in->task_info, key, &v) || !v) {
        const char *p = "an earlier task";
        for (size_t i = 0; i < EK_ARRAY_SIZE(producers); i++)
            if (strcmp(producers[i][0], key) == 0)
                p = producers[i][1];
        return ek_err_new(EK_E_CONFLICT,
                          "instance '%s': the task info has no '%s' (%s must run "
                          "first)",
                          in->instance, key, p);
    }
    if (!json_object_is_type(v, type))
        return ek_err_new(EK_E_INVALID, "instance '%s': task info '%s' is %s", in->instance, key,
                          ek_json_type_name(v));
    *out = v;
    return NULL;
}

json_object *ek_ovirt_volume_find(json_object *vols, const char *disk_id)
{
    size_t n =
        vols && json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(vols, i);
        const char *id = ek_ovirt_str(v, "disk_id");
        if (id && strcmp(id, disk_id) == 0)
            return v;
    }
    return NULL;
}

/* ---- the VirtIO zip ---------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Reads len bytes at off of f into buf. */
static bool read_at(FILE *f, long off, void *buf, size_t len)
{
    return fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, len, f) == len;
}

/* The central directory of a zip: its offset and size, from the end record. */
static ek_err_t *zip_directory(FILE *f, const char *path, uint32_t *off, uint32_t *size)
{
    if (fseek(f, 0, SEEK_END) != 0)
        return ek_err_errno(errno, "cannot read \"%s\"", path);
    long end = ftell(f), tail = end < 65557 ? end : 65557;
    unsigned char *buf = ek_xmalloc((size_t)tail + 1);
    ek_err_t *err = NULL;
    if (tail < 22 || !read_at(f, end - tail, buf, (size_t)tail)) {
        err = ek_err_new(EK_E_INVALID, "\"%s\" is not a zip archive (too short)", path);
    } else {
        long i = tail - 22;
        while (i >= 0 && le32(buf + i) != 0x06054b50)
            i--;
        if (i < 0)
            err = ek_err_new(EK_E_INVALID, "\"%s\" is not a zip archive (no end record)", path);
        else {
            *size = le32(buf + i + 12);
            *off = le32(buf + i + 16);
        }
    }
    free(buf);
    return err;
}

ek_err_t *ek_ovirt_zip_has(const char *path, const char *member)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ek_err_errno(errno, "cannot open \"%s\"", path);
    uint32_t off = 0, size = 0;
    ek_err_t *err = zip_directory(f, path, &off, &size);
    unsigned char *dir = NULL;
    bool found = false;
    if (!err && size > 64u << 20)
        err = ek_err_new(EK_E_INVALID, "\"%s\": zip directory too large", path);
    if (!err) {
        dir = ek_xmalloc(size + 1);
        if (!read_at(f, (long)off, dir, size))
            err = ek_err_new(EK_E_INVALID, "\"%s\": truncated zip directory", path);
    }
    for (uint32_t p = 0; !err && !found && p + 46 <= size;) {
        if (le32(dir + p) != 0x02014b50)
            break;
        uint16_t nl = le16(dir + p + 28), xl = le16(dir + p + 30), cl = le16(dir + p + 32);
        if (p + 46 + nl > size)
            break;
        const char *name = (const char *)dir + p + 46, *base = name;
        for (uint16_t k = 0; k < nl; k++)
            if (name[k] == '/' || name[k] == '\\')
                base = name + k + 1;
        size_t bl = (size_t)(name + nl - base);
        found = bl == strlen(member) && strncasecmp(base, member, bl) == 0;
        p += 46u + nl + xl + cl;
    }
    free(dir);
    fclose(f);
    if (!err && !found)
        err = ek_err_new(EK_E_INVALID, "the zip archive holds no %s", member);
    return err;
}

ek_err_t *ek_ovirt_virtio_zip_check(ek_task_ctx_t *ctx, const char *url, const char *sha256,
                                    const char *tmp_dir)
{
    if (!url || !*url)
        return ek_err_new(EK_E_INVALID,
                          "the instance runs Windows: set windows_virtio_zip_url to the URL of "
                          "the Oracle VirtIO drivers zip (it must hold winvirtio.iso)");
    _cleanup_free_ char *path = ek_xasprintf("%s/ekman-virtio-XXXXXX", tmp_dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return ek_err_errno(errno, "cannot create a file in \"%s\"", tmp_dir);
    close(fd);
    /* the operator's schemes and size limit, the SHA-256 when given (download.h) */
    ek_err_t *err = ek_download(ctx, "windows_virtio_zip_url", url, sha256, path, NULL);
    if (!err && (err = ek_ovirt_zip_has(path, "winvirtio.iso")))
        err = ek_err_prefix(err, "windows_virtio_zip_url '%s'", url);
    unlink(path);
    if (!err)
        ek_task_event(ctx, "INFO", "windows_virtio_zip_url holds winvirtio.iso%s",
                      sha256 && *sha256 ? " (SHA-256 checked)" : "");
    return err;
}

/* ---- validations ------------------------------------------------------------------------ */

/* Room for the disks mapped to each storage domain (thin disks may need
 * less, but a domain with less free space than the disks' size is where
 * replications die halfway: said now). */
static ek_err_t *check_storage(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                               json_object *disks)
{
    json_object *need = json_object_new_object(); /* name -> bytes */
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i), *v;
        const char *sd;
        int64_t size = 0;
        if ((err = ek_ovirt_disk_domain_name(ctx, in->destination, d, &sd)))
            break;
        ek_ovirt_int(d, "size_bytes", &size);
        int64_t sum = json_object_object_get_ex(need, sd, &v) ? json_object_get_int64(v) : 0;
        json_object_object_add(need, sd, json_object_new_int64(sum + size));
    }
    json_object_object_foreach(need, name, bytes)
    {
        json_object *sd;
        int64_t avail;
        if (err || (err = ek_ovirt_storage_domain(c, name,
                                                  "storage_mappings/default_storage_domain", &sd)))
            break;
        /* the replicas of an earlier execution are there already */
        bool known =
            in->task_info && json_object_object_get_ex(in->task_info, "volumes_info", NULL);
        if (!known && ek_ovirt_int(sd, "available", &avail) && avail < json_object_get_int64(bytes))
            err = ek_err_new(EK_E_CONFLICT,
                             "storage domain '%s' is full: %lld MiB free, the instance's disks "
                             "need %lld MiB; free space there or map the disks elsewhere "
                             "(storage_mappings)",
                             name, (long long)(avail >> 20),
                             (long long)(json_object_get_int64(bytes) >> 20));
        json_object_put(sd);
    }
    json_object_put(need);
    return err;
}

/* A UEFI guest gets bios.type q35_ovmf (deploy.c). BIOS types came with
 * cluster level 4.3 (ovirt-engine FeatureSupported.isBiosTypeSupported,
 * config BiosTypeSupported); on an older cluster the REST mapper stores the
 * type without applying it, and the VM would boot SeaBIOS and find no
 * bootloader. Refused here, naming the cluster and its level. */
static ek_err_t *check_firmware(json_object *export_info, json_object *cl, const char *cname)
{
    const char *fw = ek_ovirt_str(export_info, "firmware");
    int64_t major = 0, minor = 0;
    json_object *v = json_object_object_get(cl, "version");
    if (!fw || strcmp(fw, "efi") != 0 || !ek_ovirt_int(v, "major", &major) ||
        !ek_ovirt_int(v, "minor", &minor) || major > 4 || (major == 4 && minor >= 3))
        return NULL;
    return ek_err_new(EK_E_INVALID,
                      "the instance boots with UEFI, but cluster '%s' (default_cluster) has "
                      "compatibility version %lld.%lld, which has no BIOS types (UEFI, q35_ovmf, "
                      "needs 4.3 or later): raise the cluster's compatibility version, or name a "
                      "4.3+ cluster in default_cluster",
                      cname, (long long)major, (long long)minor);
}

static ek_err_t *check_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in)
{
    json_object *export_info, *disks, *nics, *x;
    const ek_endpoint_t *ep = in->destination;
    ek_ovirt_t *c;
    ek_err_t *err;
    if ((err = ek_ovirt_env_check(ep)) ||
        (err = ek_ovirt_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_ovirt_open(ep, ctx, &c)))
        return err;
    json_object *cl = NULL;
    const char *copt = ek_ovirt_opt_str(ctx, ep, "default_migr_minion_cluster")[0]
                           ? "default_migr_minion_cluster"
                           : "default_cluster";
    const char *tpl = ek_ovirt_opt_map(ctx, ep, "default_migr_template_map", "linux");
    const char *msd = ek_ovirt_opt_str(ctx, ep, "default_migr_minion_storage_domain");
    const char *pool = ek_ovirt_opt_str(ctx, ep, "default_vm_pool");
    if (!(err = ek_ovirt_cluster(c, ek_ovirt_main_cluster(ctx, ep), "default_cluster", &cl)) &&
        !(err = check_firmware(export_info, cl, ek_ovirt_main_cluster(ctx, ep))) &&
        !(err = ek_ovirt_cluster(c, ek_ovirt_minion_cluster(ctx, ep), copt, &x)))
        json_object_put(x);
    if (!err && (!tpl || !*tpl))
        err = ek_err_new(EK_E_INVALID, "no Linux worker template: set default_migr_template_map "
                                       "(\"linux: TEMPLATE\")");
    if (!err && !(err = ek_ovirt_template(c, tpl, "default_migr_template_map", &x)))
        json_object_put(x);
    if (!err && msd && *msd &&
        !(err = ek_ovirt_storage_domain(c, msd, "default_migr_minion_storage_domain", &x)))
        json_object_put(x);
    /* POST /vms takes no vm_pool (the API maps a VM's pool on output only)
     * and no call adds an existing VM to a pool: a pool's VMs are the ones
     * the engine makes from the pool's template. Refused, not ignored. */
    if (!err && pool && *pool)
        err = ek_err_new(EK_E_INVALID,
                         "default_vm_pool is '%s', but oVirt cannot put a migrated VM in a pool: "
                         "a pool only holds the VMs the engine makes from the pool's template. "
                         "Leave default_vm_pool empty (in the endpoint's destination options or "
                         "[ovirt_migration_provider])",
                         pool);
    bool imageio;
    if (!err)
        err = ek_ovirt_use_imageio(ctx, ep, &imageio);
    if (!err)
        err = check_storage(c, ctx, in, disks);
    if (!err && json_object_object_get_ex(export_info, "nics", &nics))
        for (size_t i = 0; i < json_object_array_length(nics) && !err; i++) {
            json_object *mapped = NULL;
            const char *net = ek_ovirt_str(json_object_array_get_idx(nics, i), "network_name");
            if (net && ep->network_map)
                json_object_object_get_ex(ep->network_map, net, &mapped);
            if (!(err = ek_ovirt_vnic_profile(c, cl, mapped, net ? net : "(none)", &x)))
                json_object_put(x);
        }
    json_object_put(cl);
    ek_ovirt_close(c);
    const char *os = ek_ovirt_str(export_info, "os_type");
    if (!err && os && strcmp(os, "windows") == 0)
        err = ek_ovirt_virtio_zip_check(
            ctx, ek_ovirt_opt_str(ctx, ep, "windows_virtio_zip_url"),
            ek_ovirt_opt_str(ctx, ep, "windows_virtio_zip_sha256"),
            ek_config_get_string(ek_task_config(ctx), "worker", "tmp_dir"));
    return err;
}

ek_err_t *ek_ovirt_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                    json_object *result)
{
    (void)result;
    ek_err_t *err = check_destination(ctx, in);
    if (!err)
        ek_task_event(ctx, "INFO",
                      "oVirt endpoint '%s': clusters, template, storage and networks "
                      "for '%s' are there",
                      in->destination->name, in->instance);
    return err;
}

ek_err_t *ek_ovirt_task_update_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result)
{
    (void)result;
    return check_destination(ctx, in);
}
