/* morph.c - ek_win_morph(): adapts an offline Windows installation for KVM
 * (windows.h; shared/research/osmorphing.md section 3). The hive edits are
 * made in memory, the files are copied, and only then are both hives saved
 * (staged beside the originals, then renamed over them); a failure on the
 * way removes the files it had added and leaves the hives as they were. */
#include "worker/morph/windows/windows.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"
#include "worker/morph/windows/firstboot.h"
#include "worker/morph/windows/hive.h"
#include "worker/morph/windows/path.h"
#include "worker/morph/windows/virtio.h"

/* The SCSIAdapter device class. */
#define SCSI_CLASS_GUID "{4D36E97B-E325-11CE-BFC1-08002BE10318}"

/* The PCI ids of the storage drivers: legacy (transitional) and modern
 * virtio devices, each with and without the revision. */
static const char *const viostor_ids[] = {
    "VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00", "VEN_1AF4&DEV_1001&SUBSYS_00021AF4",
    "VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01", "VEN_1AF4&DEV_1042&SUBSYS_11001AF4", NULL};
static const char *const vioscsi_ids[] = {
    "VEN_1AF4&DEV_1004&SUBSYS_00081AF4&REV_00", "VEN_1AF4&DEV_1004&SUBSYS_00081AF4",
    "VEN_1AF4&DEV_1048&SUBSYS_11001AF4&REV_01", "VEN_1AF4&DEV_1048&SUBSYS_11001AF4", NULL};

static char *lower(const char *s)
{
    char *l = ek_xstrdup(s);
    for (char *c = l; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    return l;
}

/* <CCS>\Services\<drv>: a boot-start SCSI miniport. */
static ek_err_t *add_service(ek_win_hive_t *sys, const ek_win_info_t *info, const char *drv,
                             ek_morph_report_t *r)
{
    _cleanup_free_ char *key = ek_xasprintf("%s\\Services\\%s", info->control_set, drv);
    _cleanup_free_ char *image = ek_xasprintf("system32\\drivers\\%s.sys", drv);
    hive_node_h n;
    ek_err_t *err = ek_win_hive_mkpath(sys, 0, key, &n, NULL);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "Type", 1);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "Start", 0);
    if (!err)
        err = ek_win_hive_set_string(sys, n, "Group", hive_t_REG_SZ, "SCSI miniport");
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "ErrorControl", 1);
    if (!err)
        err = ek_win_hive_set_string(sys, n, "ImagePath", hive_t_REG_EXPAND_SZ, image);
    if (!err)
        ek_morph_change(r, "registered %s as a boot-start driver (SYSTEM\\%s, Start=0)", drv, key);
    return err;
}

/* Before Windows 8: the CriticalDeviceDatabase maps the PCI ids to the
 * driver, so that the boot disk's controller is bound at boot. */
static ek_err_t *add_cdd(ek_win_hive_t *sys, const ek_win_info_t *info, const char *drv,
                         const char *const *ids, ek_morph_report_t *r)
{
    for (size_t i = 0; ids[i]; i++) {
        _cleanup_free_ char *id = lower(ids[i]);
        _cleanup_free_ char *key =
            ek_xasprintf("%s\\Control\\CriticalDeviceDatabase\\pci#%s", info->control_set, id);
        hive_node_h n;
        ek_err_t *err = ek_win_hive_mkpath(sys, 0, key, &n, NULL);
        if (!err)
            err = ek_win_hive_set_string(sys, n, "Service", hive_t_REG_SZ, drv);
        if (!err)
            err = ek_win_hive_set_string(sys, n, "ClassGUID", hive_t_REG_SZ, SCSI_CLASS_GUID);
        if (err)
            return err;
        ek_morph_change(r, "added SYSTEM\\%s (Service=%s)", key, drv);
    }
    return NULL;
}

/* Windows 8 / 2012 and later: the DriverDatabase instead, as if a driver
 * package had been staged (the first boot's pnputil stages the real one). */
static ek_err_t *add_driverdb(ek_win_hive_t *sys, const ek_win_info_t *info, const char *drv,
                              const char *const *ids, ek_morph_report_t *r)
{
    _cleanup_free_ char *inf = ek_xasprintf("ekman%s.inf", drv);
    _cleanup_free_ char *label = ek_xasprintf("%s_%s_0000000000000000", inf, info->arch);
    _cleanup_free_ char *conf = ek_xasprintf("%s_conf", drv);
    _cleanup_free_ char *k1 = ek_xasprintf("DriverDatabase\\DriverInfFiles\\%s", inf);
    _cleanup_free_ char *k3 = ek_xasprintf("DriverDatabase\\DriverPackages\\%s", label);
    _cleanup_free_ char *k4 = ek_xasprintf("%s\\Configurations\\%s", k3, conf);
    hive_node_h n;
    ek_err_t *err = ek_win_hive_mkpath(sys, 0, k1, &n, NULL);
    const char *labels[] = {label, NULL}, *confs[] = {conf, NULL};
    if (!err)
        err = ek_win_hive_set_multi(sys, n, "", labels);
    if (!err)
        err = ek_win_hive_set_string(sys, n, "Active", hive_t_REG_SZ, label);
    if (!err)
        err = ek_win_hive_set_multi(sys, n, "Configurations", confs);

    for (size_t i = 0; !err && ids[i]; i++) {
        static const unsigned char rank[] = {0x01, 0xff, 0x00, 0x00};
        _cleanup_free_ char *k2 = ek_xasprintf("DriverDatabase\\DeviceIds\\PCI\\%s", ids[i]);
        if (!(err = ek_win_hive_mkpath(sys, 0, k2, &n, NULL)))
            err = ek_win_hive_set_raw(sys, n, inf, hive_t_REG_BINARY, rank, sizeof(rank));
    }

    if (!err)
        err = ek_win_hive_mkpath(sys, 0, k3, &n, NULL);
    if (!err) {
        /* Version: a fixed header, the class GUID in its binary (mixed-
         * endian) form, zeros: what Windows 10 / 2016 expect to find. */
        static const unsigned char version[48] = {
            0x00, 0xff, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, /* header */
            0x7b, 0xe9, 0x36, 0x4d, 0x25, 0xe3, 0xce, 0x11, /* {4D36E97B-E325-11CE- */
            0xbf, 0xc1, 0x08, 0x00, 0x2b, 0xe1, 0x03, 0x18, /* BFC1-08002BE10318} */
        };
        err = ek_win_hive_set_raw(sys, n, "Version", hive_t_REG_BINARY, version, sizeof(version));
    }
    if (!err)
        err = ek_win_hive_mkpath(sys, 0, k4, &n, NULL);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "ConfigFlags", 0);
    if (!err)
        err = ek_win_hive_set_string(sys, n, "Service", hive_t_REG_SZ, drv);
    for (size_t i = 0; !err && ids[i]; i++) {
        _cleanup_free_ char *k5 = ek_xasprintf("%s\\Descriptors\\PCI\\%s", k3, ids[i]);
        if (!(err = ek_win_hive_mkpath(sys, 0, k5, &n, NULL)))
            err = ek_win_hive_set_string(sys, n, "Configuration", hive_t_REG_SZ, conf);
    }
    if (!err)
        ek_morph_change(r, "added the driver package %s for %s to SYSTEM\\DriverDatabase", label,
                        drv);
    (void)info;
    return err;
}

static ek_err_t *set_crash_no_reboot(ek_win_hive_t *sys, const ek_win_info_t *info,
                                     ek_morph_report_t *r)
{
    _cleanup_free_ char *key = ek_xasprintf("%s\\Control\\CrashControl", info->control_set);
    hive_node_h n;
    ek_err_t *err = ek_win_hive_mkpath(sys, 0, key, &n, NULL);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "AutoReboot", 0);
    if (!err)
        ek_morph_change(r, "set SYSTEM\\%s\\AutoReboot=0 (a stop error stays on screen)", key);
    return err;
}

#define VIRTIO_PATH "%SystemRoot%\\Drivers\\VirtIO"

/* SOFTWARE\Microsoft\Windows\CurrentVersion\DevicePath gets the driver
 * directory, so that Plug and Play finds the other virtio drivers. */
static ek_err_t *add_device_path(ek_win_hive_t *sw, ek_morph_report_t *r)
{
    hive_node_h n;
    ek_err_t *err = ek_win_hive_mkpath(sw, 0, "Microsoft\\Windows\\CurrentVersion", &n, NULL);
    _cleanup_free_ char *old = NULL, *val = NULL;
    if (!err)
        err = ek_win_hive_get_string(sw, n, "DevicePath", &old);
    if (err)
        return err;
    if (old && strcasestr(old, VIRTIO_PATH))
        return NULL; /* a re-run */
    val = ek_xasprintf("%s;%s", old && *old ? old : "%SystemRoot%\\inf", VIRTIO_PATH);
    if ((err = ek_win_hive_set_string(sw, n, "DevicePath", hive_t_REG_EXPAND_SZ, val)))
        return err;
    ek_morph_change(r, "set SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\DevicePath to \"%s\"",
                    val);
    return NULL;
}

static ek_err_t *copy_drivers(const char *volume_root, const ek_win_info_t *info,
                              const ek_win_virtio_t *v, const char *drv, ek_win_undo_t *undo,
                              ek_morph_report_t *r)
{
    _cleanup_free_ char *rel = ek_xasprintf("%s/Drivers/VirtIO", info->systemroot);
    _cleanup_free_ char *dir = NULL, *sysdir = NULL;
    ek_err_t *err = ek_win_path_mkdirs(volume_root, rel, undo, &dir);
    if (err)
        return err;
    for (size_t i = 0; i < v->n; i++) {
        _cleanup_free_ char *dst = ek_xasprintf("%s/%s", dir, v->files[i].name);
        if ((err = ek_win_file_copy(v->files[i].src, dst, undo)))
            return err;
    }
    ek_morph_change(r, "copied %zu virtio-win files to %%SystemRoot%%\\Drivers\\VirtIO", v->n);

    _cleanup_free_ char *sysrel = ek_xasprintf("%s/System32/drivers", info->systemroot);
    if ((err = ek_win_path_mkdirs(volume_root, sysrel, undo, &sysdir)))
        return err;
    _cleanup_free_ char *sys = ek_xasprintf("%s.sys", drv);
    _cleanup_free_ char *dst = ek_xasprintf("%s/%s", sysdir, sys);
    if ((err = ek_win_file_copy(ek_win_virtio_get(v, sys)->src, dst, undo)))
        return err;
    ek_morph_change(r, "copied %s to %%SystemRoot%%\\system32\\drivers", sys);
    return NULL;
}

static ek_err_t *refuse(const ek_win_info_t *info, const char *tree, const char *drv)
{
    const char *osdir = ek_win_virtio_osdir(info->osinfo);
    if (!osdir)
        return ek_err_new(EK_E_INVALID,
                          "%s (%s, build %s, %s) is not a Windows version virtio-win has "
                          "drivers for: it cannot be converted",
                          info->product_name, info->osinfo[0] ? info->osinfo : "unknown version",
                          info->build, info->arch);
    return ek_err_new(EK_E_INVALID,
                      "the virtio-win tree \"%s\" has no %s driver for %s (%s, %s): it looked "
                      "for %s/%s/%s/%s.sys (or %s/%s/); use a virtio-win ISO that supports this "
                      "Windows version",
                      tree, drv, info->product_name, info->osinfo, info->arch, drv, osdir,
                      info->arch, drv, info->arch, osdir);
}

/* Everything but the inspection; undo collects the files it adds. */
static ek_err_t *morph(const char *root, const ek_win_opts_t *o, const char *drv,
                       const ek_win_info_t *info, ek_win_undo_t *undo, ek_morph_report_t *r)
{
    if (strcmp(info->arch, "amd64") != 0 && strcmp(info->arch, "x86") != 0)
        return ek_err_new(EK_E_INVALID,
                          "%s runs on %s: only x86 and amd64 Windows can be converted",
                          info->product_name, info->arch);

    ek_morph_step(r, "Choosing the virtio drivers for %s (%s, %s)", info->product_name,
                  info->osinfo, info->arch);
    _cleanup_(ek_win_virtio_freep) ek_win_virtio_t *v = NULL;
    ek_err_t *err = ek_win_virtio_match(o->virtio_dir, info, &v);
    if (err)
        return err;
    _cleanup_free_ char *sys = ek_xasprintf("%s.sys", drv);
    if (!ek_win_virtio_get(v, sys))
        return refuse(info, o->virtio_dir, drv);
    ek_morph_event(r, "INFO", "%zu files of \"%s\" fit %s %s", v->n, o->virtio_dir, info->osinfo,
                   info->arch);

    _cleanup_free_ char *sys_path = NULL, *sw_path = NULL;
    _cleanup_(ek_win_hive_freep) ek_win_hive_t *system = NULL;
    _cleanup_(ek_win_hive_freep) ek_win_hive_t *software = NULL;
    if ((err = ek_win_hive_path(root, info->systemroot, "SYSTEM", &sys_path)) ||
        (err = ek_win_hive_path(root, info->systemroot, "SOFTWARE", &sw_path)) ||
        (err = ek_win_hive_open(sys_path, "SYSTEM", true, &system)) ||
        (err = ek_win_hive_open(sw_path, "SOFTWARE", true, &software)))
        return err;

    ek_morph_step(r, "Registering the boot storage driver %s", drv);
    const char *const *ids = strcmp(drv, "vioscsi") == 0 ? vioscsi_ids : viostor_ids;
    bool driverdb = hivex_node_get_child(system->h, hivex_root(system->h), "DriverDatabase");
    if ((err = add_service(system, info, drv, r)) ||
        (err = driverdb ? add_driverdb(system, info, drv, ids, r)
                        : add_cdd(system, info, drv, ids, r)) ||
        (err = set_crash_no_reboot(system, info, r)))
        return err;

    ek_morph_step(r, "Adding %%SystemRoot%%\\Drivers\\VirtIO to the driver search path");
    if ((err = add_device_path(software, r)))
        return err;

    ek_morph_step(r, "Copying the virtio drivers");
    if ((err = copy_drivers(root, info, v, drv, undo, r)))
        return err;

    ek_morph_step(r, "Adding the first-boot service");
    ek_win_firstboot_t fb = {.qemu_ga_msi = v->qemu_ga_msi,
                             .cloudbase_msi = v->cloudbase_msi,
                             .user_script = o->user_script};
    if ((err = ek_win_firstboot_install(root, info, &fb, system, software, undo, r)))
        return err;

    ek_morph_step(r, "Saving the registry hives");
    if ((err = ek_win_hive_stage(system)) || (err = ek_win_hive_stage(software)) ||
        (err = ek_win_hive_install(system)) || (err = ek_win_hive_install(software)))
        return err;
    return NULL;
}

ek_err_t *ek_win_morph(const char *volume_root, const ek_win_opts_t *o, ek_morph_report_t *r,
                       ek_win_info_t *info)
{
    if (!o || !o->virtio_dir || !*o->virtio_dir)
        return ek_err_new(EK_E_INVALID, "Windows conversion needs a virtio-win tree (the "
                                        "mounted virtio-win ISO): none was given");
    const char *drv = o->block_driver && *o->block_driver ? o->block_driver : "viostor";
    if (strcmp(drv, "viostor") != 0 && strcmp(drv, "vioscsi") != 0)
        return ek_err_new(EK_E_INVALID,
                          "unknown Windows block driver '%s': use viostor (virtio-blk) or "
                          "vioscsi (virtio-scsi)",
                          drv);

    ek_morph_step(r, "Inspecting the Windows installation");
    ek_win_info_t local;
    ek_win_info_t *wi = info ? info : &local;
    ek_err_t *err = ek_win_inspect(volume_root, wi);
    if (err)
        return err;
    ek_morph_event(r, "INFO", "found %s (%s, version %d.%d, build %s, %s) in \\%s",
                   wi->product_name, wi->osinfo, wi->major, wi->minor, wi->build, wi->arch,
                   wi->systemroot);

    ek_win_undo_t undo = EK_WIN_UNDO_INIT;
    err = morph(volume_root, o, drv, wi, &undo, r);
    if (err) {
        ek_win_undo_run(&undo); /* the hives were not saved: take the files back too */
        return ek_err_prefix(err, "Windows on \"%s\"", volume_root);
    }
    ek_win_undo_release(&undo);
    return NULL;
}
