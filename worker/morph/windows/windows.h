/* windows.h - OS morphing of a Windows guest, offline (issue #16): no Windows
 * worker VM. ekman-morph mounts the guest's NTFS volume (ntfs-3g) and calls
 * these; they edit the SYSTEM and SOFTWARE hives with hivex and copy the
 * virtio drivers from a virtio-win tree (the ISO, or the winvirtio.iso inside
 * Oracle's zip, loop-mounted by the caller), the way virt-v2v does
 * (shared/research/osmorphing.md section 3). */
#ifndef EK_MORPH_WINDOWS_H
#define EK_MORPH_WINDOWS_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/error.h"
#include "worker/morph/report.h"

/* What the hives say about the installation. */
typedef struct ek_win_info {
    char systemroot[64];        /* path of the system root below the volume root, as found
                                   on disk (case kept): "Windows" */
    char product_name[128];     /* "Windows Server 2019 Standard" */
    int major, minor;           /* 10, 0 */
    char build[16];             /* CurrentBuildNumber: "17763" */
    char installation_type[32]; /* "Server", "Client", "Server Core" */
    char arch[8];               /* "amd64" or "x86" */
    char osinfo[16];            /* libosinfo-style short id: "win2k19", "win10", "win7"... */
    char control_set[16];       /* "ControlSet001" (from SYSTEM\Select\Current) */
} ek_win_info_t;

/* Whether the directory `volume_root` (a mounted NTFS volume) holds a Windows
 * system root (Windows/System32/config, matched case-insensitively). */
bool ek_win_is_root(const char *volume_root);

/* Reads the installation's facts from its hives. EK_E_NOTFOUND when the
 * volume holds no system root; EK_E_INVALID when a hive lacks the facts. */
EK_ERR_CHECK ek_win_inspect(const char *volume_root, ek_win_info_t *out);

/* The path of hive ("SYSTEM", "SOFTWARE") of the system root systemroot
 * (info.systemroot) on the volume, as spelled on disk; *out malloc'ed. */
EK_ERR_CHECK ek_win_hive_path(const char *volume_root, const char *systemroot, const char *hive,
                              char **out);

typedef struct ek_win_opts {
    const char *virtio_dir;   /* root of a virtio-win tree (mounted ISO); required */
    const char *user_script;  /* batch text run at first boot (PowerShell when its
                                 first line is "#ps1"), or NULL */
    const char *block_driver; /* "viostor" (default) or "vioscsi" */
} ek_win_opts_t;

/* Adapts the installation for KVM: copies the drivers matching its version
 * and architecture, registers the boot-critical storage driver, adds the
 * virtio driver path and a first-boot service that installs the remaining
 * drivers, qemu-guest-agent and cloudbase-init (when the tree has them) and
 * uninstalls VMware Tools, and the user script. Every change is reported
 * through r. Refuses (EK_E_INVALID, naming the version and the tree) when the
 * tree has no storage driver for the guest; nothing is committed to the hives
 * before all edits succeeded (and the files it added are removed again on a
 * failure). info (may be NULL) receives what ek_win_inspect() found, also when
 * a later step fails. docs/osmorphing-windows.md tells the whole story. */
EK_ERR_CHECK ek_win_morph(const char *volume_root, const ek_win_opts_t *o, ek_morph_report_t *r,
                          ek_win_info_t *info);

/* info as JSON (new reference): {"family":"windows","product_name":...}. */
json_object *ek_win_info_json(const ek_win_info_t *info);

#endif
