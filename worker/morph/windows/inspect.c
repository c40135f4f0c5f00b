/* inspect.c - what a Windows installation is, read offline from its SYSTEM
 * and SOFTWARE hives (shared/research/osmorphing.md section 3): the system
 * root, version, build, edition type, architecture, current control set and
 * the libosinfo-style short id that chooses the virtio-win drivers. */
#include "worker/morph/windows/windows.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/mem.h"
#include "worker/morph/windows/hive.h"
#include "worker/morph/windows/path.h"

/* What a directory must hold to be a system root. */
static bool is_systemroot(const char *volume_root, const char *dir)
{
    static const char *const need[] = {"System32/config/SYSTEM", "System32/config/SOFTWARE",
                                       "System32/cmd.exe"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(need); i++) {
        _cleanup_free_ char *rel = ek_xasprintf("%s/%s", dir, need[i]);
        if (!ek_win_path_exists(volume_root, rel))
            return false;
    }
    return true;
}

/* The system root's directory name as spelled on disk ("Windows", else
 * "WINNT"); *out malloc'ed. */
static ek_err_t *systemroot_find(const char *volume_root, char **out)
{
    static const char *const names[] = {"Windows", "WINNT"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(names); i++) {
        char *dir = NULL;
        ek_err_t *err = ek_win_path_find(volume_root, names[i], &dir);
        if (err) {
            ek_err_free(err);
            continue;
        }
        const char *base = strrchr(dir, '/') + 1;
        if (is_systemroot(volume_root, base)) {
            *out = ek_xstrdup(base);
            free(dir);
            return NULL;
        }
        free(dir);
    }
    return ek_err_new(EK_E_NOTFOUND,
                      "\"%s\" holds no Windows installation (no Windows/System32/config/SYSTEM, "
                      "SOFTWARE and System32/cmd.exe)",
                      volume_root);
}

bool ek_win_is_root(const char *volume_root)
{
    char *sr = NULL;
    ek_err_t *err = systemroot_find(volume_root, &sr);
    bool found = !err;
    ek_err_free(err);
    free(sr);
    return found;
}

ek_err_t *ek_win_hive_path(const char *volume_root, const char *systemroot, const char *hive,
                           char **out)
{
    _cleanup_free_ char *rel = ek_xasprintf("%s/System32/config/%s", systemroot, hive);
    return ek_win_path_find(volume_root, rel, out);
}

static bool contains_ci(const char *s, const char *needle)
{
    return s && strcasestr(s, needle) != NULL;
}

/* The short id for a version (libosinfo's naming, as libguestfs maps it). */
static const char *osinfo_of(const ek_win_info_t *i)
{
    bool server = contains_ci(i->installation_type, "server") ||
                  (!i->installation_type[0] && contains_ci(i->product_name, "server"));
    long build = strtol(i->build, NULL, 10);
    int v = i->major * 10 + i->minor;
    switch (v) {
    case 51:
        return "winxp";
    case 52:
        return server ? "win2k3" : "winxp";
    case 60:
        return server ? "win2k8" : "winvista";
    case 61:
        return server ? "win2k8r2" : "win7";
    case 62:
        return server ? "win2k12" : "win8";
    case 63:
        return server ? "win2k12r2" : "win8.1";
    case 100:
        if (!server) /* Windows 11's ProductName often still says "Windows 10" */
            return build >= 22000 ? "win11" : "win10";
        if (strstr(i->product_name, "2025"))
            return "win2k25";
        if (strstr(i->product_name, "2022"))
            return "win2k22";
        if (strstr(i->product_name, "2019"))
            return "win2k19";
        if (strstr(i->product_name, "2016"))
            return "win2k16";
        /* no year in the name (semi-annual channel): the build tells */
        return build >= 26100   ? "win2k25"
               : build >= 20348 ? "win2k22"
               : build >= 17763 ? "win2k19"
                                : "win2k16";
    default:
        return "";
    }
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static ek_err_t *read_software(ek_win_hive_t *sw, ek_win_info_t *out)
{
    hive_node_h cv = ek_win_hive_lookup(sw, 0, "Microsoft\\Windows NT\\CurrentVersion");
    if (!cv)
        return ek_err_new(EK_E_INVALID,
                          "the SOFTWARE hive has no Microsoft\\Windows NT\\CurrentVersion key: "
                          "is this a Windows system volume?");
    _cleanup_free_ char *product = NULL, *itype = NULL, *build = NULL, *ver = NULL;
    ek_err_t *err = ek_win_hive_get_string(sw, cv, "ProductName", &product);
    if (!err)
        err = ek_win_hive_get_string(sw, cv, "InstallationType", &itype);
    if (!err)
        err = ek_win_hive_get_string(sw, cv, "CurrentBuildNumber", &build);
    if (!err)
        err = ek_win_hive_get_string(sw, cv, "CurrentVersion", &ver);
    if (err)
        return err;
    copy_str(out->product_name, sizeof(out->product_name), product);
    copy_str(out->installation_type, sizeof(out->installation_type), itype);
    copy_str(out->build, sizeof(out->build), build);

    /* The DWORDs first: Server 2022 still says CurrentVersion "6.3". */
    uint32_t major, minor;
    if (ek_win_hive_get_dword(sw, cv, "CurrentMajorVersionNumber", &major) &&
        ek_win_hive_get_dword(sw, cv, "CurrentMinorVersionNumber", &minor)) {
        out->major = (int)major;
        out->minor = (int)minor;
    } else if (!ver || sscanf(ver, "%d.%d", &out->major, &out->minor) != 2) {
        return ek_err_new(EK_E_INVALID,
                          "the SOFTWARE hive gives no Windows version (neither "
                          "CurrentMajorVersionNumber nor a CurrentVersion like \"6.1\")");
    }
    return NULL;
}

static ek_err_t *read_system(ek_win_hive_t *sys, const char *volume_root, ek_win_info_t *out)
{
    uint32_t current;
    hive_node_h sel = ek_win_hive_lookup(sys, 0, "Select");
    if (!ek_win_hive_get_dword(sys, sel, "Current", &current))
        return ek_err_new(EK_E_INVALID,
                          "the SYSTEM hive has no Select\\Current value: cannot tell the current "
                          "control set");
    snprintf(out->control_set, sizeof(out->control_set), "ControlSet%03u", current % 1000u);
    hive_node_h ccs = ek_win_hive_lookup(sys, 0, out->control_set);
    if (!ccs)
        return ek_err_new(EK_E_INVALID,
                          "the SYSTEM hive names %s as its current control set, but has no such "
                          "key",
                          out->control_set);

    hive_node_h env = ek_win_hive_lookup(sys, ccs, "Control\\Session Manager\\Environment");
    _cleanup_free_ char *pa = NULL;
    ek_err_t *err = ek_win_hive_get_string(sys, env, "PROCESSOR_ARCHITECTURE", &pa);
    if (err)
        return err;
    if (pa && strcasecmp(pa, "AMD64") == 0)
        copy_str(out->arch, sizeof(out->arch), "amd64");
    else if (pa && strcasecmp(pa, "x86") == 0)
        copy_str(out->arch, sizeof(out->arch), "x86");
    else if (pa) {
        snprintf(out->arch, sizeof(out->arch), "%s", pa);
        for (char *c = out->arch; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    } else {
        /* no Environment value: a 64-bit Windows has SysWOW64 */
        _cleanup_free_ char *wow = ek_xasprintf("%s/SysWOW64", out->systemroot);
        copy_str(out->arch, sizeof(out->arch),
                 ek_win_path_exists(volume_root, wow) ? "amd64" : "x86");
    }
    return NULL;
}

ek_err_t *ek_win_inspect(const char *volume_root, ek_win_info_t *out)
{
    memset(out, 0, sizeof(*out));
    _cleanup_free_ char *sr = NULL, *sys_path = NULL, *sw_path = NULL;
    ek_err_t *err = systemroot_find(volume_root, &sr);
    if (err)
        return err;
    copy_str(out->systemroot, sizeof(out->systemroot), sr);
    if ((err = ek_win_hive_path(volume_root, sr, "SOFTWARE", &sw_path)) ||
        (err = ek_win_hive_path(volume_root, sr, "SYSTEM", &sys_path)))
        return err;

    _cleanup_(ek_win_hive_freep) ek_win_hive_t *sw = NULL;
    _cleanup_(ek_win_hive_freep) ek_win_hive_t *sys = NULL;
    if ((err = ek_win_hive_open(sw_path, "SOFTWARE", false, &sw)) ||
        (err = read_software(sw, out)) ||
        (err = ek_win_hive_open(sys_path, "SYSTEM", false, &sys)) ||
        (err = read_system(sys, volume_root, out)))
        return ek_err_prefix(err, "Windows on \"%s\"", volume_root);
    copy_str(out->osinfo, sizeof(out->osinfo), osinfo_of(out));
    return NULL;
}

json_object *ek_win_info_json(const ek_win_info_t *info)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "family", json_object_new_string("windows"));
    json_object_object_add(o, "product_name", json_object_new_string(info->product_name));
    json_object_object_add(o, "major", json_object_new_int(info->major));
    json_object_object_add(o, "minor", json_object_new_int(info->minor));
    json_object_object_add(o, "build", json_object_new_string(info->build));
    json_object_object_add(o, "installation_type", json_object_new_string(info->installation_type));
    json_object_object_add(o, "arch", json_object_new_string(info->arch));
    json_object_object_add(o, "osinfo", json_object_new_string(info->osinfo));
    json_object_object_add(o, "systemroot", json_object_new_string(info->systemroot));
    json_object_object_add(o, "control_set", json_object_new_string(info->control_set));
    return o;
}
