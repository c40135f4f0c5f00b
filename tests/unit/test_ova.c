/* test_ova.c - the ova provider's readers: OVF descriptors (the fixtures
 * of tests/fixtures/ova), tar headers of archives built here (ustar, pax,
 * GNU long names, a member named ../x), manifests (SHA1, SHA256, CRLF,
 * subfolders, a mismatch), and the allowed roots. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/testsh.h"
#include "common/fsutil.h"
#include "common/mem.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/providers/ova/ova.h"

static char *tmpdir;

static int setup(void **state)
{
    (void)state;
    tmpdir = ek_xstrdup("/tmp/ek-test-ova-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ek_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

static ek_ova_vm_t *parse_fixture(const char *name, ek_err_t **errp)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/ova/%s", EK_FIXTURES, name);
    char *text = NULL;
    size_t len = 0;
    ek_err_t *err = ek_file_read(path, 1 << 20, &text, &len);
    assert_null(err);
    ek_ova_vm_t *vm = NULL;
    err = ek_ova_ovf_parse(text, len, "fallback", name, &vm);
    free(text);
    if (errp)
        *errp = err;
    else if (err)
        fail_msg("%s: %s", name, err->message);
    return vm;
}

static void test_ovf_vmware_lsilogic(void **state)
{
    (void)state;
    ek_ova_vm_t *vm = parse_fixture("vmware-lsilogic.ovf", NULL);
    assert_string_equal(vm->name, "vmware-web");
    assert_int_equal(vm->vcpus, 2);
    assert_int_equal(vm->memory_mb, 1024);
    assert_string_equal(vm->firmware, "bios");
    assert_string_equal(vm->os_type, "linux");
    assert_string_equal(vm->vmw_ostype, "debian11_64Guest");
    assert_int_equal(vm->ovf_os_id, 96);
    assert_int_equal(vm->n_disks, 1);
    assert_string_equal(vm->disks[0].id, "sda");
    assert_string_equal(vm->disks[0].bus, "scsi");
    assert_string_equal(vm->disks[0].controller, "lsilogic");
    assert_string_equal(vm->disks[0].href, "disk1.vmdk");
    assert_int_equal(vm->disks[0].capacity, 16ull << 20);
    assert_int_equal(vm->n_nics, 1);
    assert_string_equal(vm->nics[0].mac, "00:50:56:ab:cd:ef");
    assert_false(vm->nics[0].mac_generated);
    assert_string_equal(vm->nics[0].model, "vmxnet3");
    assert_string_equal(vm->nics[0].network, "VM Network");
    ek_ova_vm_free(vm);
}

static void test_ovf_efi_pvscsi_two_disks(void **state)
{
    (void)state;
    ek_ova_vm_t *vm = parse_fixture("efi-pvscsi.ovf", NULL);
    assert_string_equal(vm->firmware, "efi");
    assert_string_equal(vm->os_type, "windows");
    assert_int_equal(vm->memory_mb, 4096); /* 4 x byte * 2^30 */
    assert_int_equal(vm->n_disks, 2);
    assert_string_equal(vm->disks[0].id, "sda");
    assert_string_equal(vm->disks[1].id, "sdb");
    assert_string_equal(vm->disks[0].controller, "pvscsi");
    assert_string_equal(vm->disks[1].controller, "pvscsi");
    assert_int_equal(vm->disks[0].capacity, 2ull << 30);
    assert_int_equal(vm->disks[1].capacity, 10ull << 30);
    assert_string_equal(vm->disks[1].href, "data/efi-2.vmdk");
    /* no MAC in the descriptor: a stable, locally administered, unicast one */
    assert_true(vm->nics[0].mac_generated);
    unsigned first;
    assert_int_equal(sscanf(vm->nics[0].mac, "%2x:", &first), 1);
    assert_int_equal(first & 3, 2);
    ek_ova_vm_t *again = parse_fixture("efi-pvscsi.ovf", NULL);
    assert_string_equal(vm->nics[0].mac, again->nics[0].mac);
    ek_ova_vm_free(again);
    ek_ova_vm_free(vm);
}

static void test_ovf_ide_sata_nvme(void **state)
{
    (void)state;
    ek_ova_vm_t *vm = parse_fixture("ide-sata-nvme.ovf", NULL);
    assert_int_equal(vm->n_disks, 3);
    assert_string_equal(vm->disks[0].id, "hda");
    assert_string_equal(vm->disks[0].bus, "ide");
    assert_string_equal(vm->disks[1].id, "sda");
    assert_string_equal(vm->disks[1].controller, "sata");
    assert_string_equal(vm->disks[2].id, "sdb");
    assert_string_equal(vm->disks[2].controller, "nvme");
    assert_int_equal(vm->disks[1].capacity, 2ull << 30);
    assert_int_equal(vm->disks[2].capacity, 3ull << 30); /* GigaBytes */
    assert_string_equal(vm->nics[0].model, "e1000");
    assert_null(vm->vmw_ostype);
    assert_string_equal(vm->os_type, "linux"); /* from the Description */
    ek_ova_vm_free(vm);
}

static void test_ovf_firmware(void **state)
{
    (void)state;
    ek_ova_vm_t *vm = parse_fixture("no-firmware.ovf", NULL);
    assert_string_equal(vm->firmware, "bios");
    ek_ova_vm_free(vm);
    ek_err_t *err = NULL;
    vm = parse_fixture("bad-firmware.ovf", &err);
    assert_null(vm);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "\"uefi-csm\""));
    assert_non_null(strstr(err->message, "neither bios nor efi"));
    ek_err_free(err);
}

static void test_ovf_not_ovf(void **state)
{
    (void)state;
    ek_ova_vm_t *vm = NULL;
    const char *t = "<domain><name>x</name></domain>";
    ek_err_t *err = ek_ova_ovf_parse(t, strlen(t), "x", "x.ovf", &vm);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "one VirtualSystem"));
    ek_err_free(err);
    err = ek_ova_ovf_parse("<a", 2, "x", "x.ovf", &vm);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "not valid XML"));
    ek_err_free(err);
}

/* Every member's data, read at its offset, is what was written. */
static void check_members(const char *tar_path, const char *dir)
{
    int fd = open(tar_path, O_RDONLY);
    assert_true(fd >= 0);
    ek_ova_tar_t t;
    ek_err_t *err = ek_ova_tar_read(fd, tar_path, &t);
    if (err)
        fail_msg("%s", err->message);
    assert_int_equal(t.n, 3);
    for (size_t i = 0; i < t.n; i++) {
        _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, t.v[i].name);
        char *want = NULL;
        size_t len = 0;
        assert_null(ek_file_read(p, 1 << 20, &want, &len));
        assert_int_equal(len, t.v[i].size);
        char *got = ek_xmalloc(len + 1);
        assert_int_equal(pread(fd, got, len, (off_t)t.v[i].offset), (ssize_t)len);
        assert_memory_equal(got, want, len);
        free(got);
        free(want);
    }
    ek_ova_tar_release(&t);
    close(fd);
}

static void test_tar_pax_and_gnu_long_names(void **state)
{
    (void)state;
    const char *longdir = "a-folder-with-a-rather-long-name-so-that-the-path-needs-more-than-"
                          "one-hundred-bytes/and-another-level";
    sh("mkdir -p %s/t/%s && cd %s/t && echo descriptor > vm.ovf && head -c 70000 /dev/urandom "
       "> %s/disk-with-a-long-name-that-goes-on-and-on-and-on-and-on.vmdk && echo x > small.mf",
       tmpdir, longdir, tmpdir, longdir);
    for (int i = 0; i < 2; i++) {
        const char *fmt = i == 0 ? "pax" : "gnu";
        sh("cd %s/t && tar --format=%s -cf ../%s.tar vm.ovf small.mf %s/disk-with-a-long-name-"
           "that-goes-on-and-on-and-on-and-on.vmdk",
           tmpdir, fmt, fmt, longdir);
        _cleanup_free_ char *p = ek_xasprintf("%s/%s.tar", tmpdir, fmt);
        _cleanup_free_ char *d = ek_xasprintf("%s/t", tmpdir);
        check_members(p, d);
    }
}

/* A ustar header for name with size bytes of data. */
static void ustar_header(unsigned char h[512], const char *name, size_t size)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011zo", size);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static ek_err_t *tar_with(const char *name)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/evil.tar", tmpdir);
    unsigned char buf[512 * 4] = {0};
    ustar_header(buf, "vm.ovf", 3);
    memcpy(buf + 512, "ovf", 3);
    ustar_header(buf + 1024, name, 0);
    assert_null(ek_file_write(p, buf, sizeof(buf), 0600));
    int fd = open(p, O_RDONLY);
    ek_ova_tar_t t;
    ek_err_t *err = ek_ova_tar_read(fd, "evil.tar", &t);
    close(fd);
    if (!err)
        ek_ova_tar_release(&t);
    return err;
}

static void test_tar_refuses_escaping_names(void **state)
{
    (void)state;
    ek_err_t *err = tar_with("../x");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "\"../x\""));
    ek_err_free(err);
    err = tar_with("a/../../x");
    assert_non_null(err);
    ek_err_free(err);
    err = tar_with("/etc/x");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "absolute"));
    ek_err_free(err);
    err = tar_with("./fine.vmdk");
    assert_null(err);
    /* not a tar at all */
    _cleanup_free_ char *p = ek_xasprintf("%s/not.tar", tmpdir);
    char junk[2048];
    memset(junk, 'x', sizeof(junk));
    assert_null(ek_file_write(p, junk, sizeof(junk), 0600));
    int fd = open(p, O_RDONLY);
    ek_ova_tar_t t;
    err = ek_ova_tar_read(fd, "not.tar", &t);
    close(fd);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "not a tar archive"));
    ek_err_free(err);
}

static void test_manifest_parse(void **state)
{
    (void)state;
    const char *text = "SHA1(vm.ovf)= 0123456789ABCDEF0123456789abcdef01234567\r\n"
                       "SHA256(disks/vm-disk1.vmdk)= "
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\r\n";
    ek_ova_manifest_t m;
    assert_null(ek_ova_manifest_parse(text, strlen(text), "vm.mf", &m));
    assert_int_equal(m.n, 2);
    assert_string_equal(m.v[0].algo, "SHA1");
    assert_string_equal(m.v[0].name, "vm.ovf");
    assert_string_equal(m.v[0].hex, "0123456789abcdef0123456789abcdef01234567");
    assert_string_equal(m.v[1].algo, "SHA256");
    assert_string_equal(m.v[1].name, "disks/vm-disk1.vmdk");
    ek_ova_manifest_release(&m);
    const char *bad = "MD5(vm.ovf)= d41d8cd98f00b204e9800998ecf8427e\n";
    ek_err_t *err = ek_ova_manifest_parse(bad, strlen(bad), "vm.mf", &m);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "MD5"));
    ek_err_free(err);
    const char *shortd = "SHA256(vm.ovf)= abcd\n";
    err = ek_ova_manifest_parse(shortd, strlen(shortd), "vm.mf", &m);
    assert_non_null(err);
    ek_err_free(err);
}

/* An OVA of the VMware fixture with a disk of random bytes and a manifest
 * written by `mf` (a shell snippet run in the package folder). */
static void make_ova(const char *mf)
{
    sh("rm -rf %s/p %s/pkg && mkdir -p %s/p %s/pkg && cd %s/p && cp %s/ova/vmware-lsilogic.ovf "
       "vm.ovf && head -c 100000 /dev/urandom > disk1.vmdk && %s && tar -cf %s/pkg/vm.ova vm.ovf "
       "vm.mf disk1.vmdk",
       tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, EK_FIXTURES, mf, tmpdir);
}

static ek_err_t *verify_pkg(ek_task_ctx_t *ctx)
{
    _cleanup_free_ char *dir = ek_xasprintf("%s/pkg", tmpdir);
    int dirfd = open(dir, O_DIRECTORY | O_RDONLY);
    assert_true(dirfd >= 0);
    ek_ova_instance_t *inst;
    ek_err_t *err = ek_ova_instance_load(dirfd, "vm.ova", &inst);
    if (err)
        fail_msg("%s", err->message);
    assert_string_equal(inst->vm->name, "vmware-web");
    err = ek_ova_instance_verify(ctx, dirfd, inst);
    ek_ova_instance_free(inst);
    close(dirfd);
    return err;
}

static bool has_event(ek_task_ctx_t *ctx, const char *level, const char *text)
{
    json_object *ev = ek_test_ctx_events(ctx);
    for (size_t i = 0; i < json_object_array_length(ev); i++) {
        json_object *e = json_object_array_get_idx(ev, i);
        if (strcmp(json_object_get_string(json_object_object_get(e, "level")), level) == 0 &&
            strstr(json_object_get_string(json_object_object_get(e, "message")), text))
            return true;
    }
    return false;
}

static void test_manifest_check(void **state)
{
    (void)state;
    /* SHA256 with CRLF, SHA1: both good */
    make_ova("printf 'SHA256(vm.ovf)= %s\\r\\n' $(sha256sum vm.ovf | cut -d' ' -f1) > vm.mf && "
             "printf 'SHA1(disk1.vmdk)= %s\\r\\n' $(sha1sum disk1.vmdk | cut -d' ' -f1) >> vm.mf");
    ek_task_ctx_t *ctx = ek_test_ctx_new(NULL, NULL, "t");
    ek_err_t *err = verify_pkg(ctx);
    if (err)
        fail_msg("%s", err->message);
    assert_true(has_event(ctx, "INFO", "2 file(s) match the manifest"));
    ek_test_ctx_free(ctx);
    /* a wrong digest: refused, naming the file */
    make_ova("printf 'SHA256(disk1.vmdk)= %s\\n' $(echo other | sha256sum | cut -d' ' -f1) > "
             "vm.mf");
    ctx = ek_test_ctx_new(NULL, NULL, "t");
    err = verify_pkg(ctx);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "\"disk1.vmdk\" of \"vm.ova\" does not match its "
                                         "manifest"));
    ek_err_free(err);
    ek_test_ctx_free(ctx);
    /* a listed file that is missing: a warning only */
    make_ova("printf 'SHA256(vm.ovf)= %s\\nSHA1(gone.nvram)= %s\\n' $(sha256sum vm.ovf | cut "
             "-d' ' -f1) 0123456789abcdef0123456789abcdef01234567 > vm.mf");
    ctx = ek_test_ctx_new(NULL, NULL, "t");
    assert_null(verify_pkg(ctx));
    assert_true(has_event(ctx, "WARNING", "gone.nvram"));
    ek_test_ctx_free(ctx);
}

static void test_roots(void **state)
{
    (void)state;
    ek_config_t *cfg = ek_config_new();
    int fd = -1;
    ek_err_t *err = ek_ova_root_open_dir(cfg, "e1", tmpdir, &fd);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "allowed_roots"));
    ek_err_free(err);
    _cleanup_free_ char *conf =
        ek_xasprintf("[ova]\nallowed_roots = /nonexistent, %s/pkg\n", tmpdir);
    assert_null(ek_config_load_string(cfg, conf, "test.conf"));
    sh("mkdir -p %s/pkg/sub %s/pkgx && ln -sfn / %s/pkg/up", tmpdir, tmpdir, tmpdir);
    _cleanup_free_ char *ok = ek_xasprintf("%s/pkg/sub", tmpdir);
    assert_null(ek_ova_root_open_dir(cfg, "e1", ok, &fd));
    close(fd);
    _cleanup_free_ char *sibling = ek_xasprintf("%s/pkgx", tmpdir);
    err = ek_ova_root_open_dir(cfg, "e1", sibling, &fd);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "not under any"));
    ek_err_free(err);
    _cleanup_free_ char *link = ek_xasprintf("%s/pkg/up/etc", tmpdir);
    err = ek_ova_root_open_dir(cfg, "e1", link, &fd);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "leads out"));
    ek_err_free(err);
    /* beneath an endpoint directory: no absolute names, no "..", no link out */
    _cleanup_free_ char *root = ek_xasprintf("%s/pkg", tmpdir);
    assert_null(ek_ova_root_open_dir(cfg, "e1", root, &fd));
    int f;
    err = ek_ova_open_beneath(fd, "/etc/passwd", &f);
    assert_non_null(err);
    ek_err_free(err);
    err = ek_ova_open_beneath(fd, "sub/../../x", &f);
    assert_non_null(err);
    ek_err_free(err);
    err = ek_ova_open_beneath(fd, "up/etc/passwd", &f);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "leads out"));
    ek_err_free(err);
    close(fd);
    ek_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ovf_vmware_lsilogic),
        cmocka_unit_test(test_ovf_efi_pvscsi_two_disks),
        cmocka_unit_test(test_ovf_ide_sata_nvme),
        cmocka_unit_test(test_ovf_firmware),
        cmocka_unit_test(test_ovf_not_ovf),
        cmocka_unit_test(test_tar_pax_and_gnu_long_names),
        cmocka_unit_test(test_tar_refuses_escaping_names),
        cmocka_unit_test(test_manifest_parse),
        cmocka_unit_test(test_manifest_check),
        cmocka_unit_test(test_roots),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
