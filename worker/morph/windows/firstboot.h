/* firstboot.h - the work left for the guest's first boot on KVM: a service
 * that runs the batch scripts of C:\Program Files\Ekman\Firstboot\scripts in
 * name order (pnputil for the virtio drivers, the qemu-guest-agent and
 * cloudbase-init MSIs, the VMware Tools uninstaller, the user's script), each
 * retried at most EK_WIN_FIRSTBOOT_TRIES times, then removes itself.
 * docs/osmorphing-windows.md says how it works and where it falls short.
 * Internal to worker/morph/windows. */
#ifndef EK_MORPH_WINDOWS_FIRSTBOOT_H
#define EK_MORPH_WINDOWS_FIRSTBOOT_H

#include "common/error.h"
#include "worker/morph/report.h"
#include "worker/morph/windows/hive.h"
#include "worker/morph/windows/path.h"
#include "worker/morph/windows/windows.h"

#define EK_WIN_FIRSTBOOT_SERVICE "ekman-firstboot"
#define EK_WIN_FIRSTBOOT_DIR     "Program Files/Ekman/Firstboot"
#define EK_WIN_FIRSTBOOT_TRIES   3

typedef struct ek_win_firstboot {
    const char *qemu_ga_msi;   /* path of the MSI to install, or NULL */
    const char *cloudbase_msi; /* path of the MSI to install, or NULL */
    const char *user_script;   /* batch text, or PowerShell when its first line is "#ps1" */
} ek_win_firstboot_t;

/* The command that removes VMware Tools, from the UninstallString of the
 * SOFTWARE hive's Uninstall entry whose DisplayName contains "VMware Tools"
 * (native or WOW6432Node view), with MsiExec's /I turned into /X and quiet
 * flags added; *out is NULL when none is installed. EK_E_INVALID when the
 * uninstaller is not an MSI (it could not run unattended). */
EK_ERR_CHECK ek_win_vmware_uninstall_command(ek_win_hive_t *software, const char *log_path,
                                             char **out);

/* Writes the scripts under the volume's EK_WIN_FIRSTBOOT_DIR (new files in
 * undo) and registers the service in the SYSTEM hive's control set; every
 * change is reported to r. */
EK_ERR_CHECK ek_win_firstboot_install(const char *volume_root, const ek_win_info_t *info,
                                      const ek_win_firstboot_t *fb, ek_win_hive_t *system,
                                      ek_win_hive_t *software, ek_win_undo_t *undo,
                                      ek_morph_report_t *r);

#endif
