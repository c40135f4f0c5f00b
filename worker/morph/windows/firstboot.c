/* firstboot.c - the first-boot service and its scripts (firstboot.h). */
#include "worker/morph/windows/firstboot.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"
#include "common/strbuf.h"

/* The runner. The service starts it detached (start /b) because cmd.exe is
 * not a service program: the SCM gives up on the service, the runner goes on.
 * A script's exit code: 0 done; 3010 done, restart wanted; 249 not now
 * (restart, then try again); anything else failed (tried again at the next
 * boot). A script is given up after EK_WIN_FIRSTBOOT_TRIES tries, so that one
 * failing optional driver cannot keep the guest restarting forever. */
static const char runner_head[] =
    "@echo off\n"
    "rem Ekman first boot: runs scripts\\*.bat once each, in name order, then\n"
    "rem removes its service. Log: firstboot.log beside this file.\n"
    "setlocal EnableExtensions EnableDelayedExpansion\n"
    "set \"fb=%~dp0\"\n"
    "set \"fb=%fb:~0,-1%\"\n"
    "set \"log=%fb%\\firstboot.log\"\n";

static const char runner_body[] =
    "if exist \"%fb%\\complete\" goto :remove\n"
    "if not exist \"%fb%\\done\" mkdir \"%fb%\\done\"\n"
    "if not exist \"%fb%\\tries\" mkdir \"%fb%\\tries\"\n"
    "echo %date% %time% first boot: starting>>\"%log%\"\n"
    "set reboot=0\n"
    "set pending=0\n"
    "for /f \"delims=\" %%s in ('dir /b /on \"%fb%\\scripts\\*.bat\" 2^>nul') do (\n"
    "  if not exist \"%fb%\\done\\%%s\" (\n"
    "    call :run \"%%s\"\n"
    "    if \"!rc!\"==\"249\" goto :restart\n"
    "  )\n"
    ")\n"
    "if \"!pending!\"==\"1\" goto :restart\n"
    "echo %date% %time% first boot: all scripts done>>\"%log%\"\n"
    "echo done>\"%fb%\\complete\"\n"
    ":remove\n"
    "sc.exe delete " EK_WIN_FIRSTBOOT_SERVICE ">>\"%log%\" 2>&1\n"
    "if \"!reboot!\"==\"1\" shutdown.exe /r /t 30 /c \"Ekman first boot: restarting to finish\"\n"
    "exit /b 0\n"
    "\n"
    ":restart\n"
    "echo %date% %time% first boot: restarting, then going on>>\"%log%\"\n"
    "shutdown.exe /r /t 30 /c \"Ekman first boot: restarting, then going on\"\n"
    "exit /b 0\n"
    "\n"
    ":run\n"
    "set \"name=%~1\"\n"
    "echo !date! !time! running !name!>>\"%log%\"\n"
    "call \"%fb%\\scripts\\!name!\">>\"%log%\" 2>&1\n"
    "set rc=!errorlevel!\n"
    "echo !date! !time! !name! exited with !rc!>>\"%log%\"\n"
    "if \"!rc!\"==\"0\" goto :ok\n"
    "if \"!rc!\"==\"3010\" set reboot=1& goto :ok\n"
    "set tries=0\n"
    "if exist \"%fb%\\tries\\!name!\" set /p tries=<\"%fb%\\tries\\!name!\"\n"
    "set /a tries+=1\n"
    ">\"%fb%\\tries\\!name!\" echo !tries!\n"
    "if !tries! GEQ !maxtries! (\n"
    "  echo !date! !time! !name! failed !tries! times: giving up on it>>\"%log%\"\n"
    "  set rc=0\n"
    "  goto :ok\n"
    ")\n"
    "if not \"!rc!\"==\"249\" set pending=1\n"
    "exit /b\n"
    ":ok\n"
    ">\"%fb%\\done\\!name!\" echo !rc!\n"
    "exit /b\n";

/* pnputil on every .inf copied to %SystemRoot%\Drivers\VirtIO; a driver that
 * does not install is logged and skipped (the boot driver is registered
 * already). Waits (249) while Windows has a restart pending. */
static const char drivers_script[] =
    "@echo off\n"
    "setlocal EnableExtensions EnableDelayedExpansion\n"
    "reg query \"HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto "
    "Update\\RebootRequired\" >nul 2>&1 && exit /b 249\n"
    "reg query \"HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based "
    "Servicing\\RebootPending\" >nul 2>&1 && exit /b 249\n"
    "reg query \"HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\" /v "
    "PendingFileRenameOperations >nul 2>&1 && exit /b 249\n"
    "set \"pnputil=%SystemRoot%\\System32\\pnputil.exe\"\n"
    "if exist \"%SystemRoot%\\Sysnative\\pnputil.exe\" set "
    "\"pnputil=%SystemRoot%\\Sysnative\\pnputil.exe\"\n"
    "for %%f in (\"%SystemRoot%\\Drivers\\VirtIO\\*.inf\") do (\n"
    "  echo installing %%~nxf\n"
    "  \"!pnputil!\" -i -a \"%%f\"\n"
    "  if errorlevel 1 echo %%~nxf did not install: going on without it\n"
    ")\n"
    "exit /b 0\n";

/* An MSI installed quietly; 1641 (restarting) and 3010 (restart needed) both
 * mean done, restart wanted. */
static char *msi_script(const char *msi, const char *log)
{
    return ek_xasprintf("@echo off\n"
                        "setlocal\n"
                        "msiexec.exe /i \"%%~dp0..\\%s\" /qn /norestart /l*v \"%%~dp0..\\%s\"\n"
                        "set rc=%%errorlevel%%\n"
                        "if \"%%rc%%\"==\"1641\" exit /b 3010\n"
                        "exit /b %%rc%%\n",
                        msi, log);
}

ek_err_t *ek_win_vmware_uninstall_command(ek_win_hive_t *sw, const char *log_path, char **out)
{
    static const char *const views[] = {
        "Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall"};
    *out = NULL;
    for (size_t v = 0; v < EK_ARRAY_SIZE(views); v++) {
        hive_node_h un = ek_win_hive_lookup(sw, 0, views[v]);
        if (!un)
            continue;
        _cleanup_free_ hive_node_h *kids = hivex_node_children(sw->h, un);
        for (size_t i = 0; kids && kids[i]; i++) {
            _cleanup_free_ char *name = NULL, *cmd = NULL;
            ek_err_t *err = ek_win_hive_get_string(sw, kids[i], "DisplayName", &name);
            if (err) { /* a DisplayName that is not a string: not ours */
                ek_err_free(err);
                continue;
            }
            if (!name || !strcasestr(name, "VMware Tools"))
                continue;
            if ((err = ek_win_hive_get_string(sw, kids[i], "UninstallString", &cmd)))
                return err;
            if (!cmd)
                continue;
            /* MsiExec.exe /I{GUID} opens the maintenance dialog; /X removes */
            char *exe = strcasestr(cmd, "msiexec");
            char *flag = exe ? strcasestr(exe, " /I") : NULL;
            if (!flag)
                return ek_err_new(EK_E_INVALID,
                                  "VMware Tools' uninstaller is not an MSI (\"%s\"): it cannot "
                                  "run unattended; remove VMware Tools by hand after the first "
                                  "boot",
                                  cmd);
            flag[2] = 'X';
            *out = ek_xasprintf("%s /qn /norestart /l*v+ \"%s\" REBOOT=ReallySuppress REMOVE=ALL",
                                cmd, log_path);
            return NULL;
        }
    }
    return NULL;
}

static ek_err_t *write_script(const char *dir, const char *name, const char *text,
                              ek_win_undo_t *undo, ek_morph_report_t *r, const char *what)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/scripts/%s", dir, name);
    ek_err_t *err = ek_win_file_write_crlf(path, text, undo);
    if (!err)
        ek_morph_change(r, "added the first-boot script %s (%s)", name, what);
    return err;
}

static ek_err_t *copy_msi(const char *dir, const char *src, ek_win_undo_t *undo,
                          ek_morph_report_t *r, char **name)
{
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    _cleanup_free_ char *dst = ek_xasprintf("%s/%s", dir, base);
    ek_err_t *err = ek_win_file_copy(src, dst, undo);
    if (err)
        return err;
    ek_morph_change(r, "copied %s to C:\\Program Files\\Ekman\\Firstboot", base);
    *name = ek_xstrdup(base);
    return NULL;
}

static ek_err_t *register_service(ek_win_hive_t *sys, const ek_win_info_t *info,
                                  ek_morph_report_t *r)
{
    _cleanup_free_ char *key =
        ek_xasprintf("%s\\Services\\" EK_WIN_FIRSTBOOT_SERVICE, info->control_set);
    hive_node_h n;
    ek_err_t *err = ek_win_hive_mkpath(sys, 0, key, &n, NULL);
    /* Own process (0x10), automatic start (2); ErrorControl 0 because the
     * SCM always reports that cmd.exe did not start as a service. */
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "Type", 0x10);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "Start", 2);
    if (!err)
        err = ek_win_hive_set_dword(sys, n, "ErrorControl", 0);
    if (!err)
        err = ek_win_hive_set_string(
            sys, n, "ImagePath", hive_t_REG_EXPAND_SZ,
            "%SystemRoot%\\System32\\cmd.exe /c start \"" EK_WIN_FIRSTBOOT_SERVICE
            "\" /b %SystemRoot%\\System32\\cmd.exe /c "
            "\"%SystemDrive%\\Program Files\\Ekman\\Firstboot\\firstboot.bat\"");
    if (!err)
        err = ek_win_hive_set_string(sys, n, "ObjectName", hive_t_REG_SZ, "LocalSystem");
    if (!err)
        err = ek_win_hive_set_string(sys, n, "DisplayName", hive_t_REG_SZ, "Ekman first boot");
    if (!err)
        err = ek_win_hive_set_string(sys, n, "Description", hive_t_REG_SZ,
                                     "Finishes the move to KVM (virtio drivers, guest agent), "
                                     "then removes itself.");
    if (!err)
        ek_morph_change(r, "registered the first-boot service %s (SYSTEM\\%s)",
                        EK_WIN_FIRSTBOOT_SERVICE, key);
    return err;
}

ek_err_t *ek_win_firstboot_install(const char *volume_root, const ek_win_info_t *info,
                                   const ek_win_firstboot_t *fb, ek_win_hive_t *system,
                                   ek_win_hive_t *software, ek_win_undo_t *undo,
                                   ek_morph_report_t *r)
{
    _cleanup_free_ char *dir = NULL, *scripts = NULL, *ga = NULL, *cb = NULL, *vmw = NULL;
    _cleanup_free_ char *runner = NULL, *text = NULL;
    ek_err_t *err = ek_win_path_mkdirs(volume_root, EK_WIN_FIRSTBOOT_DIR, undo, &dir);
    if (!err)
        err = ek_win_path_mkdirs(dir, "scripts", undo, &scripts);
    if (err)
        return err;

    runner =
        ek_xasprintf("%sset maxtries=%d\n%s", runner_head, EK_WIN_FIRSTBOOT_TRIES, runner_body);
    _cleanup_free_ char *runner_path = ek_xasprintf("%s/firstboot.bat", dir);
    if ((err = ek_win_file_write_crlf(runner_path, runner, undo)))
        return err;
    ek_morph_change(r, "added C:\\Program Files\\Ekman\\Firstboot\\firstboot.bat");

    if ((err = write_script(dir, "2000-virtio-drivers.bat", drivers_script, undo, r,
                            "pnputil for each driver in Drivers\\VirtIO")))
        return err;

    if (fb->qemu_ga_msi) {
        if ((err = copy_msi(dir, fb->qemu_ga_msi, undo, r, &ga)))
            return err;
        _cleanup_free_ char *s = msi_script(ga, "qemu-ga-install.log");
        if ((err = write_script(dir, "3000-qemu-guest-agent.bat", s, undo, r,
                                "installs qemu-guest-agent")))
            return err;
    } else {
        ek_morph_event(r, "WARNING",
                       "the virtio-win tree has no qemu-guest-agent MSI for %s: the guest will "
                       "have no guest agent",
                       info->arch);
    }
    if (fb->cloudbase_msi) {
        if ((err = copy_msi(dir, fb->cloudbase_msi, undo, r, &cb)))
            return err;
        _cleanup_free_ char *s = msi_script(cb, "cloudbase-init-install.log");
        if ((err = write_script(dir, "3100-cloudbase-init.bat", s, undo, r,
                                "installs cloudbase-init")))
            return err;
    }

    err = ek_win_vmware_uninstall_command(
        software, "%SystemDrive%\\Program Files\\Ekman\\Firstboot\\vmware-tools-uninstall.log",
        &vmw);
    if (err) {
        ek_morph_event(r, "WARNING", "%s", err->message);
        ek_err_free(err);
    } else if (vmw) {
        /* 1605: not installed any more, which is what we want */
        _cleanup_free_ char *s = ek_xasprintf("@echo off\n"
                                              "setlocal\n"
                                              "%s\n"
                                              "set rc=%%errorlevel%%\n"
                                              "if \"%%rc%%\"==\"1605\" exit /b 0\n"
                                              "if \"%%rc%%\"==\"1641\" exit /b 3010\n"
                                              "exit /b %%rc%%\n",
                                              vmw);
        if ((err = write_script(dir, "4000-remove-vmware-tools.bat", s, undo, r,
                                "uninstalls VMware Tools")))
            return err;
    }

    if (fb->user_script && *fb->user_script) {
        if (strncmp(fb->user_script, "#ps1", 4) == 0) {
            _cleanup_free_ char *ps = ek_xasprintf("%s/user-script.ps1", dir);
            if ((err = ek_win_file_write_crlf(ps, fb->user_script, undo)))
                return err;
            text = ek_xstrdup("@echo off\n"
                              "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
                              "-File \"%~dp0..\\user-script.ps1\"\n"
                              "exit /b %errorlevel%\n");
        } else {
            text = ek_xstrdup(fb->user_script);
        }
        if ((err = write_script(dir, "9000-user-script.bat", text, undo, r,
                                "the deployment's user script")))
            return err;
    }
    return register_service(system, info, r);
}
