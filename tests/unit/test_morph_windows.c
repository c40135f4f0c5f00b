/* test_morph_windows.c - the Windows offline morphing (worker/morph/windows)
 * on synthetic guests: a system volume that is a directory tree, its SYSTEM
 * and SOFTWARE hives made here (an empty regf hive written from the format's
 * documentation, then filled by hivexregedit --merge from the .reg files of
 * tests/fixtures/morph-windows), and a synthetic virtio-win tree. Every edit
 * is read back with hivex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/strbuf.h"
#include "tests/unit/emptyhive.h"
#include "worker/morph/windows/firstboot.h"
#include "worker/morph/windows/hive.h"
#include "worker/morph/windows/path.h"
#include "worker/morph/windows/virtio.h"
#include "worker/morph/windows/windows.h"

#define FIX EK_FIXTURES "/morph-windows"

/* A hive of the given kind ("SYSTEM", "SOFTWARE") from .reg fixtures. */
static void make_hive(const char *path, const char *kind, const char *const *regs)
{
    assert_int_equal(ek_test_empty_hive_write(path), 0);
    _cleanup_free_ char *prefix = ek_xasprintf("HKEY_LOCAL_MACHINE\\%s", kind);
    for (size_t i = 0; regs[i]; i++) {
        _cleanup_free_ char *reg = ek_xasprintf("%s/%s", FIX, regs[i]);
        const char *argv[] = {"hivexregedit", "--merge", "--prefix", prefix, path, reg, NULL};
        char *out = NULL;
        ek_err_t *err = ek_run(argv, &out);
        if (err)
            fail_msg("hivexregedit %s: %s", regs[i], err->message);
        free(out);
    }
}

/* ---- a synthetic guest and virtio-win tree ---------------------------------- */
typedef struct guest {
    char *dir;      /* private temporary directory */
    char *volume;   /* the "NTFS volume" */
    char *system;   /* its SYSTEM hive */
    char *software; /* its SOFTWARE hive */
    char *virtio;   /* the virtio-win tree */
} guest_t;

static void mkfile(const char *base, const char *rel, const char *text)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/%s", base, rel);
    for (char *s = strchr(path + strlen(base) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *s = '/';
    }
    assert_null(ek_file_write(path, text, strlen(text), 0644));
}

static void make_virtio_tree(const char *v)
{
    static const char *const files[] = {
        /* per-driver tree */
        "viostor/w7/amd64/viostor.inf", "viostor/w7/amd64/viostor.sys",
        "viostor/w7/amd64/viostor.cat", "viostor/w7/amd64/viostor.pdb",
        "viostor/2k12R2/amd64/viostor.inf", "viostor/2k12R2/amd64/viostor.sys",
        "viostor/2k19/amd64/viostor.inf", "viostor/2k19/amd64/viostor.sys",
        "viostor/2k19/amd64/viostor.cat", "viostor/2k19/x86/viostor.sys",
        "vioscsi/2k19/amd64/vioscsi.inf", "vioscsi/2k19/amd64/vioscsi.sys",
        "NetKVM/2k19/amd64/netkvm.inf", "NetKVM/2k19/amd64/NetKVM.sys",
        "NetKVM/2k19/amd64/vioprot.inf", "NetKVM/2k19/amd64/sriov/netkvmsr.inf",
        "Balloon/2k19/amd64/balloon.inf", "Balloon/2k19/amd64/blnsvr.exe",
        "Balloon/2k22/amd64/balloon.inf", "viostor/w10/x86/viostor.inf",
        "viostor/w10/x86/viostor.sys",
        /* flat tree: only storage drivers, w10 and later */
        "amd64/2k19/viostor.sys", "amd64/w11/viostor.inf", "amd64/w11/viostor.sys",
        "amd64/2k22/vioscsi.sys",
        /* root files */
        "guest-agent/qemu-ga-x86_64.msi", "guest-agent/qemu-ga-i386.msi",
        "CloudbaseInitSetup_1_1_4_x64.msi", "data/info.json", NULL};
    for (size_t i = 0; files[i]; i++)
        mkfile(v, files[i], files[i]); /* each file holds its own path */
}

/* A guest whose directories are spelled as given (case varies on disk). */
static void guest_make(guest_t *g, const char *software_reg, const char *const *system_regs,
                       bool wow64)
{
    memset(g, 0, sizeof(*g));
    assert_null(ek_private_dir(NULL, "ek-morph-win", &g->dir));
    g->volume = ek_xasprintf("%s/volume", g->dir);
    g->virtio = ek_xasprintf("%s/virtio-win", g->dir);
    mkdir(g->volume, 0755);
    mkdir(g->virtio, 0755);
    mkfile(g->volume, "WINDOWS/system32/cmd.exe", "MZ");
    mkfile(g->volume, "WINDOWS/system32/drivers/lsi_sas.sys", "MZ");
    mkfile(g->volume, "Program Files/desktop.ini", ""); /* the directory exists, as on Windows */
    if (wow64)
        mkfile(g->volume, "WINDOWS/SysWOW64/cmd.exe", "MZ");
    g->system = ek_xasprintf("%s/WINDOWS/system32/config/system", g->volume);
    g->software = ek_xasprintf("%s/WINDOWS/system32/config/SOFTWARE", g->volume);
    _cleanup_free_ char *config = ek_xasprintf("%s/WINDOWS/system32/config", g->volume);
    mkdir(config, 0755);
    make_hive(g->system, "SYSTEM", system_regs);
    const char *sw[] = {software_reg, NULL};
    make_hive(g->software, "SOFTWARE", sw);
    make_virtio_tree(g->virtio);
}

static void guest_free(guest_t *g)
{
    ek_rmtree(g->dir);
    free(g->dir);
    free(g->volume);
    free(g->system);
    free(g->software);
    free(g->virtio);
}

/* ---- a report that keeps what it was told --------------------------------- */
typedef struct seen {
    ek_morph_report_t r;
    ek_strbuf_t steps, events, changes;
} seen_t;

static void on_step(ek_morph_report_t *r, const char *name)
{
    ek_strbuf_addf(&((seen_t *)r->ud)->steps, "%s\n", name);
}
static void on_event(ek_morph_report_t *r, const char *level, const char *message)
{
    ek_strbuf_addf(&((seen_t *)r->ud)->events, "%s %s\n", level, message);
}
static void on_change(ek_morph_report_t *r, const char *what)
{
    ek_strbuf_addf(&((seen_t *)r->ud)->changes, "%s\n", what);
}

static void seen_init(seen_t *s)
{
    memset(s, 0, sizeof(*s));
    s->r = (ek_morph_report_t){on_step, on_event, on_change, s};
    s->steps = s->events = s->changes = (ek_strbuf_t)EK_STRBUF_INIT;
}

static void seen_release(seen_t *s)
{
    ek_strbuf_release(&s->steps);
    ek_strbuf_release(&s->events);
    ek_strbuf_release(&s->changes);
}

/* ---- reading back --------------------------------------------------------- */
static ek_win_hive_t *hive_read(const char *path)
{
    ek_win_hive_t *hv = NULL;
    ek_err_t *err = ek_win_hive_open(path, "test", false, &hv);
    if (err)
        fail_msg("%s", err->message);
    return hv;
}

/* The raw value name under key: type and bytes (malloc'ed). */
static char *value_raw(ek_win_hive_t *hv, const char *key, const char *name, hive_type *t,
                       size_t *len)
{
    hive_node_h n = ek_win_hive_lookup(hv, 0, key);
    if (!n)
        fail_msg("no key %s", key);
    hive_value_h v = hivex_node_get_value(hv->h, n, name);
    if (!v)
        fail_msg("no value %s in %s", name, key);
    char *data = hivex_value_value(hv->h, v, t, len);
    assert_non_null(data);
    return data;
}

static void assert_dword(ek_win_hive_t *hv, const char *key, const char *name, uint32_t want)
{
    hive_type t;
    size_t len;
    _cleanup_free_ char *d = value_raw(hv, key, name, &t, &len);
    assert_int_equal(t, hive_t_REG_DWORD);
    assert_int_equal(len, 4);
    uint32_t got;
    memcpy(&got, d, 4);
    assert_int_equal(got, want);
}

static void assert_string(ek_win_hive_t *hv, const char *key, const char *name, hive_type want_t,
                          const char *want)
{
    hive_type t;
    size_t len;
    _cleanup_free_ char *d = value_raw(hv, key, name, &t, &len);
    assert_int_equal(t, want_t);
    _cleanup_free_ char *u = NULL;
    size_t ulen;
    assert_null(ek_win_utf16le(want, &u, &ulen));
    assert_int_equal(len, ulen); /* UTF-16LE with its NUL */
    assert_memory_equal(d, u, len);
}

static char *slurp(const char *path, size_t *len)
{
    char *out = NULL;
    ek_err_t *err = ek_file_read(path, 64 << 20, &out, len);
    if (err)
        fail_msg("%s", err->message);
    return out;
}

static bool exists(const char *base, const char *rel)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", base, rel);
    return access(p, F_OK) == 0;
}

/* ---- tests ---------------------------------------------------------------- */
static const char *const sys_plain[] = {"system.reg", NULL};
static const char *const sys_db[] = {"system.reg", "system-driverdb.reg", NULL};

static void test_empty_hive_opens(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = NULL;
    assert_null(ek_private_dir(NULL, "ek-hive", &dir));
    _cleanup_free_ char *path = ek_xasprintf("%s/hive", dir);
    assert_int_equal(ek_test_empty_hive_write(path), 0);
    ek_win_hive_t *hv = NULL;
    assert_null(ek_win_hive_open(path, "empty", true, &hv));
    hive_node_h n;
    bool created;
    assert_null(ek_win_hive_mkpath(hv, 0, "A\\B", &n, &created));
    assert_true(created);
    assert_null(ek_win_hive_set_dword(hv, n, "X", 7));
    assert_null(ek_win_hive_stage(hv));
    assert_null(ek_win_hive_install(hv));
    ek_win_hive_free(hv);
    hv = hive_read(path);
    assert_dword(hv, "a\\b", "x", 7); /* keys and values match ignoring case */
    ek_win_hive_free(hv);
    ek_rmtree(dir);
}

static void test_inspect_versions(void **state)
{
    (void)state;
    static const struct {
        const char *reg, *product, *build, *itype, *osinfo;
        int major, minor;
    } cases[] = {
        {"software-win7.reg", "Windows 7 Professional", "7601", "Client", "win7", 6, 1},
        {"software-win2k12r2.reg", "Windows Server 2012 R2 Standard", "9600", "Server", "win2k12r2",
         6, 3},
        {"software-win2k19.reg", "Windows Server 2019 Standard", "17763", "Server", "win2k19", 10,
         0},
        {"software-win2k22.reg", "Windows Server 2022 Datacenter", "20348", "Server", "win2k22", 10,
         0},
        {"software-win11.reg", "Windows 10 Pro", "22631", "Client", "win11", 10, 0},
    };
    for (size_t i = 0; i < EK_ARRAY_SIZE(cases); i++) {
        guest_t g;
        guest_make(&g, cases[i].reg, sys_plain, true);
        assert_true(ek_win_is_root(g.volume));
        ek_win_info_t info;
        ek_err_t *err = ek_win_inspect(g.volume, &info);
        if (err)
            fail_msg("%s: %s", cases[i].reg, err->message);
        assert_string_equal(info.systemroot, "WINDOWS");
        assert_string_equal(info.product_name, cases[i].product);
        assert_string_equal(info.build, cases[i].build);
        assert_string_equal(info.installation_type, cases[i].itype);
        assert_string_equal(info.osinfo, cases[i].osinfo);
        assert_int_equal(info.major, cases[i].major);
        assert_int_equal(info.minor, cases[i].minor);
        assert_string_equal(info.arch, "amd64");
        assert_string_equal(info.control_set, "ControlSet001");
        json_object *j = ek_win_info_json(&info);
        assert_string_equal(json_object_get_string(json_object_object_get(j, "osinfo")),
                            cases[i].osinfo);
        assert_string_equal(json_object_get_string(json_object_object_get(j, "family")), "windows");
        json_object_put(j);
        guest_free(&g);
    }
}

/* No PROCESSOR_ARCHITECTURE: the architecture comes from SysWOW64, and the
 * control set from Select\Current (2 here). */
static void test_inspect_arch_and_control_set(void **state)
{
    (void)state;
    const char *const sys[] = {"system-x86.reg", NULL};
    guest_t g;
    guest_make(&g, "software-win10-x86.reg", sys, false);
    ek_win_info_t info;
    assert_null(ek_win_inspect(g.volume, &info));
    assert_string_equal(info.arch, "x86");
    assert_string_equal(info.control_set, "ControlSet002");
    assert_string_equal(info.osinfo, "win10");
    guest_free(&g);

    guest_make(&g, "software-win10-x86.reg", sys, true);
    assert_null(ek_win_inspect(g.volume, &info));
    assert_string_equal(info.arch, "amd64");
    guest_free(&g);
}

static void test_not_windows(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = NULL;
    assert_null(ek_private_dir(NULL, "ek-notwin", &dir));
    mkfile(dir, "etc/os-release", "ID=debian\n");
    mkfile(dir, "Windows/System32/config/SYSTEM", "not a hive"); /* no SOFTWARE, no cmd */
    assert_false(ek_win_is_root(dir));
    ek_win_info_t info;
    ek_err_t *err = ek_win_inspect(dir, &info);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_NOTFOUND);
    ek_err_free(err);
    ek_rmtree(dir);
}

static char *names_of(const ek_win_virtio_t *v)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (size_t i = 0; i < v->n; i++)
        ek_strbuf_addf(&sb, "%s%s", i ? " " : "", v->files[i].name);
    return ek_strbuf_detach(&sb);
}

static void test_matcher(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = NULL;
    assert_null(ek_private_dir(NULL, "ek-virtio", &dir));
    make_virtio_tree(dir);
    ek_win_info_t info = {.arch = "amd64", .osinfo = "win2k19"};
    ek_win_virtio_t *v = NULL;
    assert_null(ek_win_virtio_match(dir, &info, &v));
    _cleanup_free_ char *names = names_of(v);
    /* walked in byte order (Balloon, NetKVM, amd64, vioscsi, viostor); no
     * pdb, sriov, vioprot, x86 or other versions; one viostor.sys although
     * both trees have it (the flat tree's, found first) */
    assert_string_equal(names, "balloon.inf blnsvr.exe netkvm.sys netkvm.inf viostor.sys "
                               "vioscsi.inf vioscsi.sys viostor.cat viostor.inf");
    assert_non_null(strstr(ek_win_virtio_get(v, "viostor.sys")->src, "/amd64/2k19/"));
    assert_non_null(strstr(v->qemu_ga_msi, "guest-agent/qemu-ga-x86_64.msi"));
    assert_non_null(strstr(v->cloudbase_msi, "CloudbaseInitSetup_1_1_4_x64.msi"));
    ek_win_virtio_free(v);

    ek_win_info_t w10 = {.arch = "x86", .osinfo = "win10"};
    assert_null(ek_win_virtio_match(dir, &w10, &v));
    _cleanup_free_ char *n2 = names_of(v);
    assert_string_equal(n2, "viostor.inf viostor.sys");
    assert_non_null(strstr(v->qemu_ga_msi, "qemu-ga-i386.msi"));
    assert_null(v->cloudbase_msi);
    ek_win_virtio_free(v);

    ek_win_info_t w11 = {.arch = "amd64", .osinfo = "win11"}; /* the flat tree only */
    assert_null(ek_win_virtio_match(dir, &w11, &v));
    _cleanup_free_ char *n3 = names_of(v);
    assert_string_equal(n3, "viostor.inf viostor.sys");
    ek_win_virtio_free(v);

    assert_string_equal(ek_win_virtio_osdir("win2k12r2"), "2k12r2");
    assert_string_equal(ek_win_virtio_osdir("win8.1"), "w8.1");
    assert_null(ek_win_virtio_osdir("win95"));
    ek_rmtree(dir);
}

#define CCS "ControlSet001"

/* Windows 7: no DriverDatabase, so the CriticalDeviceDatabase. */
static void test_morph_win7(void **state)
{
    (void)state;
    guest_t g;
    guest_make(&g, "software-win7.reg", sys_plain, true);
    seen_t s;
    seen_init(&s);
    ek_win_opts_t o = {.virtio_dir = g.virtio, .user_script = "echo hello from the user\n"};
    ek_win_info_t info;
    ek_err_t *err = ek_win_morph(g.volume, &o, &s.r, &info);
    if (err)
        fail_msg("%s", err->message);
    assert_string_equal(info.osinfo, "win7");

    ek_win_hive_t *sys = hive_read(g.system);
    assert_dword(sys, CCS "\\Services\\viostor", "Type", 1);
    assert_dword(sys, CCS "\\Services\\viostor", "Start", 0);
    assert_dword(sys, CCS "\\Services\\viostor", "ErrorControl", 1);
    assert_string(sys, CCS "\\Services\\viostor", "Group", hive_t_REG_SZ, "SCSI miniport");
    assert_string(sys, CCS "\\Services\\viostor", "ImagePath", hive_t_REG_EXPAND_SZ,
                  "system32\\drivers\\viostor.sys");
    static const char *const cdd[] = {
        "pci#ven_1af4&dev_1001&subsys_00021af4&rev_00", "pci#ven_1af4&dev_1001&subsys_00021af4",
        "pci#ven_1af4&dev_1042&subsys_11001af4&rev_01", "pci#ven_1af4&dev_1042&subsys_11001af4"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(cdd); i++) {
        _cleanup_free_ char *k = ek_xasprintf(CCS "\\Control\\CriticalDeviceDatabase\\%s", cdd[i]);
        assert_string(sys, k, "Service", hive_t_REG_SZ, "viostor");
        assert_string(sys, k, "ClassGUID", hive_t_REG_SZ, "{4D36E97B-E325-11CE-BFC1-08002BE10318}");
    }
    assert_int_equal(ek_win_hive_lookup(sys, 0, "DriverDatabase"), 0);
    assert_dword(sys, CCS "\\Control\\CrashControl", "AutoReboot", 0);
    assert_dword(sys, CCS "\\Services\\LSI_SAS", "Start", 0); /* left alone */
    /* the first-boot service */
    assert_dword(sys, CCS "\\Services\\ekman-firstboot", "Type", 0x10);
    assert_dword(sys, CCS "\\Services\\ekman-firstboot", "Start", 2);
    assert_string(sys, CCS "\\Services\\ekman-firstboot", "ObjectName", hive_t_REG_SZ,
                  "LocalSystem");
    _cleanup_free_ char *image = NULL;
    assert_null(ek_win_hive_get_string(
        sys, ek_win_hive_lookup(sys, 0, CCS "\\Services\\ekman-firstboot"), "ImagePath", &image));
    assert_non_null(strstr(image, "Program Files\\Ekman\\Firstboot\\firstboot.bat"));
    ek_win_hive_free(sys);

    /* DevicePath: appended, REG_EXPAND_SZ, UTF-16LE with its NUL */
    ek_win_hive_t *sw = hive_read(g.software);
    assert_string(sw, "Microsoft\\Windows\\CurrentVersion", "DevicePath", hive_t_REG_EXPAND_SZ,
                  "%SystemRoot%\\inf;%SystemRoot%\\Drivers\\VirtIO");
    ek_win_hive_free(sw);

    /* files: into the system root as spelled on disk, names in lower case */
    assert_true(exists(g.volume, "WINDOWS/Drivers/VirtIO/viostor.inf"));
    assert_true(exists(g.volume, "WINDOWS/Drivers/VirtIO/viostor.cat"));
    assert_false(exists(g.volume, "WINDOWS/Drivers/VirtIO/viostor.pdb"));
    assert_false(exists(g.volume, "WINDOWS/Drivers/VirtIO/netkvm.inf")); /* 2k19 only */
    size_t len;
    _cleanup_free_ char *sysfile =
        ek_xasprintf("%s/WINDOWS/system32/drivers/viostor.sys", g.volume);
    _cleanup_free_ char *body = slurp(sysfile, &len);
    assert_string_equal(body, "viostor/w7/amd64/viostor.sys");

    /* first-boot files, CRLF */
    _cleanup_free_ char *fbdir = ek_xasprintf("%s/Program Files/Ekman/Firstboot", g.volume);
    _cleanup_free_ char *runner_path = ek_xasprintf("%s/firstboot.bat", fbdir);
    _cleanup_free_ char *runner = slurp(runner_path, &len);
    assert_non_null(strstr(runner, "@echo off\r\n"));
    assert_null(strstr(runner, "\r\r"));
    assert_non_null(strstr(runner, "set maxtries=3\r\n"));
    assert_non_null(strstr(runner, "sc.exe delete ekman-firstboot"));
    assert_true(exists(fbdir, "scripts/2000-virtio-drivers.bat"));
    assert_true(exists(fbdir, "scripts/3000-qemu-guest-agent.bat"));
    assert_true(exists(fbdir, "qemu-ga-x86_64.msi"));
    assert_true(exists(fbdir, "scripts/3100-cloudbase-init.bat"));
    assert_false(exists(fbdir, "scripts/4000-remove-vmware-tools.bat")); /* none installed */
    _cleanup_free_ char *user_path = ek_xasprintf("%s/scripts/9000-user-script.bat", fbdir);
    _cleanup_free_ char *user = slurp(user_path, &len);
    assert_string_equal(user, "echo hello from the user\r\n");

    /* reported */
    assert_non_null(strstr(s.steps.buf, "Registering the boot storage driver viostor"));
    assert_non_null(strstr(s.steps.buf, "Saving the registry hives"));
    assert_non_null(strstr(s.changes.buf, "registered viostor as a boot-start driver"));
    assert_non_null(strstr(s.changes.buf, "CriticalDeviceDatabase\\pci#ven_1af4&dev_1001"));
    assert_non_null(strstr(s.changes.buf, "DevicePath"));
    assert_non_null(strstr(s.changes.buf, "ekman-firstboot"));
    assert_false(exists(g.volume, "WINDOWS/system32/config/system.ekman-new"));
    seen_release(&s);
    guest_free(&g);
}

/* Windows Server 2019 with vioscsi: the DriverDatabase, VMware Tools removal,
 * a PowerShell user script. */
static void test_morph_2k19_driverdb(void **state)
{
    (void)state;
    guest_t g;
    guest_make(&g, "software-win2k19.reg", sys_db, true);
    seen_t s;
    seen_init(&s);
    ek_win_opts_t o = {.virtio_dir = g.virtio,
                       .block_driver = "vioscsi",
                       .user_script = "#ps1\nWrite-Output hi\n"};
    ek_win_info_t info;
    ek_err_t *err = ek_win_morph(g.volume, &o, &s.r, &info);
    if (err)
        fail_msg("%s", err->message);

    ek_win_hive_t *sys = hive_read(g.system);
    assert_dword(sys, CCS "\\Services\\vioscsi", "Start", 0);
    assert_string(sys, CCS "\\Services\\vioscsi", "ImagePath", hive_t_REG_EXPAND_SZ,
                  "system32\\drivers\\vioscsi.sys");
    assert_int_equal(ek_win_hive_lookup(sys, 0, CCS "\\Control\\CriticalDeviceDatabase"), 0);
    const char *label = "ekmanvioscsi.inf_amd64_0000000000000000";
    hive_type t;
    size_t len;
    {
        _cleanup_free_ char *d =
            value_raw(sys, "DriverDatabase\\DriverInfFiles\\ekmanvioscsi.inf", "", &t, &len);
        assert_int_equal(t, hive_t_REG_MULTI_SZ);
        _cleanup_free_ char *u = NULL;
        size_t ulen;
        assert_null(ek_win_utf16le(label, &u, &ulen));
        assert_int_equal(len, ulen + 2); /* the list's closing NUL */
        assert_memory_equal(d, u, ulen);
    }
    assert_string(sys, "DriverDatabase\\DriverInfFiles\\ekmanvioscsi.inf", "Active", hive_t_REG_SZ,
                  label);
    {
        _cleanup_free_ char *d = value_raw(
            sys, "DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1048&SUBSYS_11001AF4&REV_01",
            "ekmanvioscsi.inf", &t, &len);
        assert_int_equal(t, hive_t_REG_BINARY);
        assert_int_equal(len, 4);
        assert_memory_equal(d, "\x01\xff\x00\x00", 4);
    }
    _cleanup_free_ char *pkg = ek_xasprintf("DriverDatabase\\DriverPackages\\%s", label);
    {
        _cleanup_free_ char *d = value_raw(sys, pkg, "Version", &t, &len);
        assert_int_equal(t, hive_t_REG_BINARY);
        assert_int_equal(len, 48);
        assert_memory_equal(d, "\x00\xff\x09\x00\x00\x00\x00\x00\x7b\xe9\x36\x4d", 12);
    }
    _cleanup_free_ char *conf = ek_xasprintf("%s\\Configurations\\vioscsi_conf", pkg);
    assert_dword(sys, conf, "ConfigFlags", 0);
    assert_string(sys, conf, "Service", hive_t_REG_SZ, "vioscsi");
    _cleanup_free_ char *desc =
        ek_xasprintf("%s\\Descriptors\\PCI\\VEN_1AF4&DEV_1004&SUBSYS_00081AF4&REV_00", pkg);
    assert_string(sys, desc, "Configuration", hive_t_REG_SZ, "vioscsi_conf");
    ek_win_hive_free(sys);

    assert_true(exists(g.volume, "WINDOWS/system32/drivers/vioscsi.sys"));
    assert_true(exists(g.volume, "WINDOWS/Drivers/VirtIO/netkvm.sys"));
    assert_false(exists(g.volume, "WINDOWS/Drivers/VirtIO/vioprot.inf"));
    assert_false(exists(g.volume, "WINDOWS/Drivers/VirtIO/netkvmsr.inf"));

    _cleanup_free_ char *vmw_path = ek_xasprintf(
        "%s/Program Files/Ekman/Firstboot/scripts/4000-remove-vmware-tools.bat", g.volume);
    _cleanup_free_ char *vmw = slurp(vmw_path, &len);
    assert_non_null(strstr(vmw, "MsiExec.exe /X{F32C4E7B-2BF8-4788-8408-824C6896E1BB} /qn "
                                "/norestart /l*v+ "));
    assert_non_null(strstr(vmw, "REBOOT=ReallySuppress REMOVE=ALL\r\n"));
    assert_true(exists(g.volume, "Program Files/Ekman/Firstboot/user-script.ps1"));
    _cleanup_free_ char *user_path =
        ek_xasprintf("%s/Program Files/Ekman/Firstboot/scripts/9000-user-script.bat", g.volume);
    _cleanup_free_ char *user = slurp(user_path, &len);
    assert_non_null(strstr(user, "powershell.exe"));
    assert_non_null(strstr(s.changes.buf, "DriverDatabase"));

    /* run again (a worker that died after saving): nothing doubles */
    assert_null(ek_win_morph(g.volume, &o, NULL, NULL));
    ek_win_hive_t *sw = hive_read(g.software);
    assert_string(sw, "Microsoft\\Windows\\CurrentVersion", "DevicePath", hive_t_REG_EXPAND_SZ,
                  "%SystemRoot%\\inf;%SystemRoot%\\Drivers\\VirtIO");
    ek_win_hive_free(sw);
    seen_release(&s);
    guest_free(&g);
}

static void assert_untouched(const guest_t *g, const char *sys0, size_t sys0_len, const char *sw0,
                             size_t sw0_len)
{
    size_t len;
    _cleanup_free_ char *sys1 = slurp(g->system, &len);
    assert_int_equal(len, sys0_len);
    assert_memory_equal(sys1, sys0, len);
    _cleanup_free_ char *sw1 = slurp(g->software, &len);
    assert_int_equal(len, sw0_len);
    assert_memory_equal(sw1, sw0, len);
    assert_false(exists(g->volume, "WINDOWS/system32/drivers/viostor.sys"));
    assert_false(exists(g->volume, "Program Files/Ekman"));
    assert_false(exists(g->volume, "WINDOWS/system32/config/system.ekman-new"));
}

/* The tree has no driver for Windows Server 2022: a clear refusal and no
 * change. */
static void test_refuses_missing_version(void **state)
{
    (void)state;
    guest_t g;
    guest_make(&g, "software-win2k22.reg", sys_db, true);
    size_t sys0_len, sw0_len;
    _cleanup_free_ char *sys0 = slurp(g.system, &sys0_len);
    _cleanup_free_ char *sw0 = slurp(g.software, &sw0_len);
    ek_win_opts_t o = {.virtio_dir = g.virtio};
    ek_err_t *err = ek_win_morph(g.volume, &o, NULL, NULL);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_INVALID);
    assert_non_null(strstr(err->message, "Windows Server 2022 Datacenter"));
    assert_non_null(strstr(err->message, g.virtio));
    assert_non_null(strstr(err->message, "viostor/2k22/amd64/viostor.sys"));
    assert_non_null(strstr(err->message, "amd64"));
    ek_err_free(err);
    assert_untouched(&g, sys0, sys0_len, sw0, sw0_len);
    assert_false(exists(g.volume, "WINDOWS/Drivers"));

    /* vioscsi for 2k22 is in the flat tree: that one works */
    ek_win_opts_t scsi = {.virtio_dir = g.virtio, .block_driver = "vioscsi"};
    assert_null(ek_win_morph(g.volume, &scsi, NULL, NULL));

    ek_win_opts_t bad = {.virtio_dir = g.virtio, .block_driver = "ide"};
    err = ek_win_morph(g.volume, &bad, NULL, NULL);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_INVALID);
    assert_non_null(strstr(err->message, "'ide'"));
    ek_err_free(err);
    guest_free(&g);
}

/* A failure after the hive edits were made in memory: copying the drivers
 * fails (Windows/Drivers is a file). Nothing is saved, nothing is left. */
static void test_failed_copy_commits_nothing(void **state)
{
    (void)state;
    guest_t g;
    guest_make(&g, "software-win2k19.reg", sys_db, true);
    mkfile(g.volume, "WINDOWS/Drivers", "in the way");
    size_t sys0_len, sw0_len;
    _cleanup_free_ char *sys0 = slurp(g.system, &sys0_len);
    _cleanup_free_ char *sw0 = slurp(g.software, &sw0_len);
    seen_t s;
    seen_init(&s);
    ek_win_opts_t o = {.virtio_dir = g.virtio};
    ek_err_t *err = ek_win_morph(g.volume, &o, &s.r, NULL);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "Drivers"));
    ek_err_free(err);
    /* it had got as far as the hive edits */
    assert_non_null(strstr(s.changes.buf, "registered viostor"));
    assert_untouched(&g, sys0, sys0_len, sw0, sw0_len);
    seen_release(&s);
    guest_free(&g);
}

/* The SOFTWARE hive cannot be saved after SYSTEM was: SYSTEM stays as it
 * was, and the copied files are taken back. */
static void test_failed_save_commits_nothing(void **state)
{
    (void)state;
    guest_t g;
    guest_make(&g, "software-win7.reg", sys_plain, true);
    _cleanup_free_ char *blocker = ek_xasprintf("%s.ekman-new", g.software);
    assert_int_equal(mkdir(blocker, 0755), 0);
    size_t sys0_len, sw0_len;
    _cleanup_free_ char *sys0 = slurp(g.system, &sys0_len);
    _cleanup_free_ char *sw0 = slurp(g.software, &sw0_len);
    ek_win_opts_t o = {.virtio_dir = g.virtio};
    ek_err_t *err = ek_win_morph(g.volume, &o, NULL, NULL);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "SOFTWARE"));
    ek_err_free(err);
    assert_untouched(&g, sys0, sys0_len, sw0, sw0_len);
    assert_false(exists(g.volume, "WINDOWS/Drivers/VirtIO"));
    guest_free(&g);
}

static void test_vmware_not_msi(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = NULL;
    assert_null(ek_private_dir(NULL, "ek-vmw", &dir));
    _cleanup_free_ char *path = ek_xasprintf("%s/SOFTWARE", dir);
    assert_int_equal(ek_test_empty_hive_write(path), 0);
    ek_win_hive_t *hv = NULL;
    assert_null(ek_win_hive_open(path, "SOFTWARE", true, &hv));
    hive_node_h n;
    assert_null(ek_win_hive_mkpath(
        hv, 0, "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\VMwareTools", &n,
        NULL));
    assert_null(ek_win_hive_set_string(hv, n, "DisplayName", hive_t_REG_SZ, "VMware Tools"));
    assert_null(ek_win_hive_set_string(hv, n, "UninstallString", hive_t_REG_SZ,
                                       "C:\\VMware\\setup.exe /remove"));
    char *cmd = NULL;
    ek_err_t *err = ek_win_vmware_uninstall_command(hv, "log", &cmd);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_INVALID);
    assert_non_null(strstr(err->message, "setup.exe"));
    ek_err_free(err);
    assert_null(cmd);
    ek_win_hive_free(hv);
    ek_rmtree(dir);
}

static void test_utf16(void **state)
{
    (void)state;
    char *u = NULL;
    size_t len;
    assert_null(ek_win_utf16le("A\xc3\xa9\xf0\x9f\x98\x80", &u, &len)); /* A, e-acute, emoji */
    assert_int_equal(len, 2 + 2 + 4 + 2);
    assert_memory_equal(u, "A\0\xe9\0\x3d\xd8\x00\xde\0\0", len);
    free(u);
    ek_err_t *err = ek_win_utf16le("\xff", &u, &len);
    assert_non_null(err);
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_hive_opens),
        cmocka_unit_test(test_inspect_versions),
        cmocka_unit_test(test_inspect_arch_and_control_set),
        cmocka_unit_test(test_not_windows),
        cmocka_unit_test(test_matcher),
        cmocka_unit_test(test_morph_win7),
        cmocka_unit_test(test_morph_2k19_driverdb),
        cmocka_unit_test(test_refuses_missing_version),
        cmocka_unit_test(test_failed_copy_commits_nothing),
        cmocka_unit_test(test_failed_save_commits_nothing),
        cmocka_unit_test(test_vmware_not_msi),
        cmocka_unit_test(test_utf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
