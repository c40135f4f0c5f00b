/* test_tenant_image.c - a tenant's disk image never makes qemu read another
 * file of the worker (worker/providers/common/tenant_image.h, issue #17):
 * qcow2 backing and data files and VMDK extents that name a "secret" file
 * are refused with a clear error, a declared format must match the header,
 * and the qemu spec keeps the backing chain closed even when qemu is handed
 * such an image anyway. Needs qemu-img (qemu-utils). */
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
#include "common/mem.h"
#include "worker/providers/common/tenant_image.h"

#define SECRET "EKMAN-SECRET-encryption_key=c2VjcmV0"

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = ek_xstrdup("/tmp/ek-test-timage-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    /* The worker file an attacker would like to read (its ekman.conf). */
    sh("cd %s && { printf '%%s\\n' '" SECRET "'; head -c 1048576 /dev/zero; } > secret.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", dir);
    free(dir);
    return 0;
}

/* Probes dir/name (declared format or NULL). */
static ek_err_t *probe(const char *name, const char *declared, char **fmt, uint64_t *vsize)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    *fmt = NULL;
    ek_err_t *err = ek_tenant_image_probe(fd, 0, (uint64_t)st.st_size, declared, name, fmt, vsize);
    close(fd);
    return err;
}

static void expect_refused(const char *name, const char *declared, ek_errcode_t code,
                           const char *fragment)
{
    char *fmt;
    uint64_t vsize;
    ek_err_t *err = probe(name, declared, &fmt, &vsize);
    if (!err)
        fail_msg("%s accepted as %s", name, fmt);
    if (err->code != code || !strstr(err->message, fragment))
        fail_msg("%s: \"%s\" (code %d) does not say \"%s\"", name, err->message, err->code,
                 fragment);
    assert_null(fmt);
    ek_err_free(err);
}

static void test_self_contained(void **state)
{
    (void)state;
    sh("qemu-img create -q -f qcow2 %s/good.qcow2 64M", dir);
    char *fmt;
    uint64_t vsize;
    assert_null(probe("good.qcow2", NULL, &fmt, &vsize));
    assert_string_equal(fmt, "qcow2");
    assert_int_equal(vsize, 64u << 20);
    free(fmt);
    assert_null(probe("good.qcow2", "qcow2", &fmt, &vsize));
    free(fmt);
    /* declared raw: the guest sees the file's bytes, whatever they hold */
    assert_null(probe("good.qcow2", "raw", &fmt, &vsize));
    assert_string_equal(fmt, "raw");
    free(fmt);
    sh("truncate -s 2M %s/plain.img", dir);
    assert_null(probe("plain.img", NULL, &fmt, &vsize));
    assert_string_equal(fmt, "raw");
    assert_int_equal(vsize, 2u << 20);
    free(fmt);
}

static void test_backing_file(void **state)
{
    (void)state;
    sh("qemu-img create -q -f qcow2 -b %s/secret.conf -F raw %s/backed.qcow2 1M", dir, dir);
    expect_refused("backed.qcow2", "qcow2", EK_E_FORBIDDEN, "backing file");
    expect_refused("backed.qcow2", NULL, EK_E_FORBIDDEN, "secret.conf");
    /* a qcow2 naming /etc/passwd, as a tenant would */
    sh("qemu-img create -q -f qcow2 -b /etc/passwd -F raw -u %s/passwd.qcow2 1M", dir);
    expect_refused("passwd.qcow2", "qcow2", EK_E_FORBIDDEN, "/etc/passwd");
}

static void test_data_file(void **state)
{
    (void)state;
    sh("qemu-img create -q -f qcow2 -o data_file=%s/data.raw %s/ext.qcow2 1M", dir, dir);
    expect_refused("ext.qcow2", "qcow2", EK_E_FORBIDDEN, "external data file");
}

static void test_vmdk_extent(void **state)
{
    (void)state;
    /* a descriptor whose flat extent is the secret */
    sh("cd %s && printf '%%s\\n' '# Disk DescriptorFile' 'version=1' 'CID=fffffffe' "
       "'parentCID=ffffffff' 'createType=\"monolithicFlat\"' 'RW 2048 FLAT \"%s/secret.conf\" 0' "
       "> flat.vmdk",
       dir, dir);
    expect_refused("flat.vmdk", "vmdk", EK_E_FORBIDDEN, "other files");
    expect_refused("flat.vmdk", NULL, EK_E_FORBIDDEN, "other files");
}

static void test_declared_mismatch(void **state)
{
    (void)state;
    sh("truncate -s 1M %s/raw.img", dir);
    expect_refused("raw.img", "qcow2", EK_E_INVALID,
                   "declared as 'qcow2' but its header says 'raw'");
    sh("qemu-img create -q -f qcow2 %s/q.qcow2 1M", dir);
    expect_refused("q.qcow2", "vmdk", EK_E_INVALID, "declared as 'vmdk'");
}

/* Even handed a qcow2 with a backing file, qemu reading through the spec
 * gets zeros where the backing file would show through, never its bytes. */
static void test_spec_closes_backing(void **state)
{
    (void)state;
    sh("qemu-img create -q -f qcow2 -b %s/secret.conf -F raw %s/leak.qcow2 1M", dir, dir);
    _cleanup_free_ char *path = ek_xasprintf("%s/leak.qcow2", dir);
    int fd = open(path, O_RDONLY); /* inherited by qemu-img: /dev/fd/N */
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    _cleanup_free_ char *spec = ek_tenant_image_spec(fd, 0, (uint64_t)st.st_size, "qcow2");
    assert_non_null(strstr(spec, "\"backing\":null"));
    assert_non_null(strstr(spec, "/dev/fd/"));
    sh("qemu-img convert -O raw '%s' %s/out.raw", spec, dir);
    close(fd);
    sh("! grep -q EKMAN-SECRET %s/out.raw", dir);
    sh("cmp -s -n 1048576 %s/out.raw /dev/zero", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_contained),    cmocka_unit_test(test_backing_file),
        cmocka_unit_test(test_data_file),         cmocka_unit_test(test_vmdk_extent),
        cmocka_unit_test(test_declared_mismatch), cmocka_unit_test(test_spec_closes_backing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
