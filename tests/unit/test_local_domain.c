/* test_local_domain.c - the local provider's view of a source VM: domain
 * XML parsing (tests/fixtures/local/), image probing, finding a domain in a
 * directory, export_info, and the generated XML of a deployed VM read back
 * by the same parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/process.h"
#include "worker/providers/common/taskutil.h"
#include "worker/providers/local/local.h"

#define FIX EK_FIXTURES "/local/"

/* The operator's roots for these tests: the fixtures and the temporary
 * directories (issue #17: the local provider reads nothing else). */
static ek_config_t *cfg;
static ek_local_scope_t sc_;
static const ek_local_scope_t *const SC = &sc_;

static int group_setup(void **state)
{
    (void)state;
    cfg = ek_config_new();
    if (ek_config_load_string(cfg, "[local]\nallowed_roots = " EK_FIXTURES "/local, /tmp\n",
                              "test.conf"))
        return -1;
    sc_ = (ek_local_scope_t){cfg, "test"};
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ek_config_free(cfg);
    return 0;
}

static ek_local_domain_t *load_ok(const char *name)
{
    _cleanup_free_ char *path = ek_xasprintf(FIX "%s", name);
    ek_local_domain_t *d = NULL;
    ek_err_t *err = ek_local_domain_load(SC, path, false, &d);
    if (err)
        fail_msg("%s: %s", name, err->message);
    return d;
}

static void expect_error(const char *name, const char *fragment)
{
    _cleanup_free_ char *path = ek_xasprintf(FIX "%s", name);
    ek_local_domain_t *d = NULL;
    ek_err_t *err = ek_local_domain_load(SC, path, false, &d);
    assert_non_null(err);
    assert_null(d);
    if (!strstr(err->message, fragment))
        fail_msg("%s: \"%s\" does not say \"%s\"", name, err->message, fragment);
    ek_err_free(err);
}

static void test_full(void **state)
{
    ek_local_domain_t *d = load_ok("full.xml");
    assert_string_equal(d->name, "win & co");
    assert_int_equal(d->vcpus, 4);
    assert_int_equal(d->memory_mb, 4096);
    assert_string_equal(d->firmware, "efi");
    assert_string_equal(d->os_type, "windows");
    assert_string_equal(d->arch, "x86_64");
    assert_int_equal(d->n_disks, 3); /* the CD-ROM stays behind */
    assert_string_equal(d->disks[0].id, "sdb");
    assert_string_equal(d->disks[0].path, EK_FIXTURES "/local/images/system.qcow2");
    assert_string_equal(d->disks[0].format, "qcow2");
    assert_string_equal(d->disks[0].bus, "sata");
    assert_int_equal(d->disks[0].boot_order, 2);
    assert_string_equal(d->disks[1].id, "vdc");
    assert_string_equal(d->disks[1].path, "/dev/vg0/data");
    assert_int_equal(d->disks[1].boot_order, 1);
    assert_string_equal(d->disks[2].id, "hdd");
    assert_null(d->disks[2].format);
    assert_string_equal(d->disks[2].bus, "ide");
    assert_int_equal(d->n_nics, 3);
    assert_string_equal(d->nics[0].network, "default");
    assert_string_equal(d->nics[0].kind, "network");
    assert_string_equal(d->nics[0].model, "virtio");
    assert_string_equal(d->nics[1].network, "br0");
    assert_string_equal(d->nics[1].kind, "bridge");
    assert_null(d->nics[1].model);
    assert_string_equal(d->nics[2].network, "eth1");
    assert_string_equal(d->nics[2].mac, "52:54:00:00:00:03");

    json_object *ei = ek_local_domain_export_info(d);
    json_object *boot = json_object_object_get(ei, "boot_order");
    assert_int_equal(json_object_array_length(boot), 2);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(boot, 0)), "vdc");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(boot, 1)), "sdb");
    json_object *disk2 = json_object_array_get_idx(json_object_object_get(ei, "disks"), 2);
    assert_string_equal(json_object_get_string(json_object_object_get(disk2, "format")), "raw");
    assert_int_equal(json_object_get_int(json_object_object_get(ei, "num_cpu")), 4);
    json_object_put(ei);
    ek_local_domain_free(d);
}

static void test_minimal(void **state)
{
    ek_local_domain_t *d = load_ok("minimal.xml");
    assert_string_equal(d->name, "tiny");
    assert_int_equal(d->vcpus, 1);
    assert_int_equal(d->memory_mb, 512); /* KiB by default */
    assert_string_equal(d->firmware, "bios");
    assert_string_equal(d->os_type, "linux");
    assert_int_equal(d->n_disks, 1);
    assert_string_equal(d->disks[0].bus, "virtio");
    assert_string_equal(d->disks[0].path, EK_FIXTURES "/local/tiny.img");
    assert_int_equal(d->n_nics, 0);
    ek_local_domain_free(d);
}

static void test_bad(void **state)
{
    expect_error("bad-malformed.xml", "malformed domain XML at line");
    expect_error("bad-network-disk.xml", "is of type 'network'");
    expect_error("bad-vmdk.xml", "format 'vmdk'");
    expect_error("bad-traversal.xml", "cannot be used");
    ek_local_domain_t *d = NULL;
    static const char *const docs[][2] = {
        {"<network><name>x</name></network>", "the root element is <network>"},
        {"<domain><memory>1</memory></domain>", "no <name>"},
        {"<domain><name>a</name></domain>", "<memory> is missing"},
        {"<domain><name>a</name><memory unit='parsecs'>1</memory></domain>", "not a size"},
        {"<domain><name>a</name><memory>1</memory><vcpu>0</vcpu></domain>", "not a CPU count"},
        {"<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain><name>&x;</name>"
         "<memory>1</memory></domain>",
         "no <name>"},
        {"<domain><name>a</name><memory>1</memory><devices><disk type='file' device='disk'>"
         "<target dev='vda'/><source file='/a'/></disk><disk type='file' device='disk'>"
         "<target dev='vda'/><source file='/b'/></disk></devices></domain>",
         "two disks have target dev 'vda'"},
        {"<domain><name>a</name><memory>1</memory><devices><disk type='file' device='disk'>"
         "<source file='/a'/></disk></devices></domain>",
         "has no <target dev"},
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++) {
        ek_err_t *err = ek_local_domain_parse(NULL, docs[i][0], strlen(docs[i][0]), "/", false, &d);
        if (!err)
            fail_msg("document %zu parsed", i);
        if (!strstr(err->message, docs[i][1]))
            fail_msg("document %zu: \"%s\" does not say \"%s\"", i, err->message, docs[i][1]);
        ek_err_free(err);
    }
}

static char *tmpdir(void)
{
    char *t = ek_xstrdup("/tmp/ek-test-local-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static void write_file(const char *path, const void *data, size_t len, long long truncate_to)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    if (truncate_to >= 0)
        assert_int_equal(truncate(path, truncate_to), 0);
}

static void test_probe(void **state)
{
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *raw = ek_xasprintf("%s/a.img", dir);
    _cleanup_free_ char *q = ek_xasprintf("%s/b.qcow2", dir);
    write_file(raw, "hello", 5, 3 << 20);
    _cleanup_free_ char *mk = ek_xasprintf("qemu-img create -q -f qcow2 %s 4G", q);
    assert_int_equal(system(mk), 0);
    struct stat qst;
    assert_int_equal(stat(q, &qst), 0);
    const char *fmt;
    uint64_t size;
    assert_null(ek_local_image_probe(SC, raw, NULL, &fmt, &size));
    assert_string_equal(fmt, "raw");
    assert_int_equal(size, 3 << 20);
    assert_null(ek_local_image_probe(SC, q, NULL, &fmt, &size));
    assert_string_equal(fmt, "qcow2");
    assert_int_equal(size, 1ull << 32);
    /* declared raw: the guest sees the qcow2 file's bytes */
    assert_null(ek_local_image_probe(SC, q, "raw", &fmt, &size));
    assert_string_equal(fmt, "raw");
    assert_int_equal(size, (uint64_t)qst.st_size);
    ek_err_t *err = ek_local_image_probe(SC, raw, "qcow2", &fmt, &size);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "declared as 'qcow2' but its header says 'raw'"));
    ek_err_free(err);
    err = ek_local_image_probe(SC, raw, "vpc", &fmt, &size);
    assert_non_null(strstr(err->message, "raw and qcow2"));
    ek_err_free(err);
    _cleanup_free_ char *missing = ek_xasprintf("%s/none.img", dir);
    err = ek_local_image_probe(SC, missing, NULL, &fmt, &size);
    assert_non_null(strstr(err->message, "cannot open"));
    ek_err_free(err);
    unlink(raw);
    unlink(q);
    rmdir(dir);
}

static void test_find_and_list(void **state)
{
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *img = ek_xasprintf("%s/disk.img", dir);
    write_file(img, "x", 1, 1 << 20);
#define DOMAIN_FMT                                                                                 \
    "<domain><name>%s</name><memory unit='MiB'>64</memory><devices>"                               \
    "<disk type='file' device='disk'><source file='disk.img'/>"                                    \
    "<target dev='vda'/></disk><interface type='network'>"                                         \
    "<source network='%s'/></interface></devices></domain>"
    /* b.xml holds "alpha", alpha.xml holds "beta": the file name is a hint only */
    char *x1 = ek_xasprintf(DOMAIN_FMT, "alpha", "n1"),
         *x2 = ek_xasprintf(DOMAIN_FMT, "beta", "n2");
    _cleanup_free_ char *p1 = ek_xasprintf("%s/b.xml", dir);
    _cleanup_free_ char *p2 = ek_xasprintf("%s/alpha.xml", dir);
    _cleanup_free_ char *p3 = ek_xasprintf("%s/junk.xml", dir);
    write_file(p1, x1, strlen(x1), -1);
    write_file(p2, x2, strlen(x2), -1);
    write_file(p3, "not xml", 7, -1);
    free(x1);
    free(x2);
    ek_local_domain_t *d;
    assert_null(ek_local_domain_find(SC, dir, "alpha", true, &d));
    assert_string_equal(d->xml_path, p1);
    assert_int_equal(d->disks[0].size, 1 << 20);
    ek_local_domain_free(d);
    assert_null(ek_local_domain_find(SC, dir, "beta", false, &d));
    assert_string_equal(d->xml_path, p2);
    ek_local_domain_free(d);
    ek_err_t *err = ek_local_domain_find(SC, dir, "gamma", false, &d);
    assert_int_equal(err->code, EK_E_NOTFOUND);
    ek_err_free(err);
    err = ek_local_domain_find(SC, dir, "../etc", false, &d);
    assert_int_equal(err->code, EK_E_NOTFOUND);
    ek_err_free(err);
    ek_local_domain_t **v;
    size_t n;
    assert_null(ek_local_domain_list(SC, dir, false, &v, &n));
    assert_int_equal(n, 2); /* junk.xml skipped */
    assert_string_equal(v[0]->name, "alpha");
    assert_string_equal(v[1]->name, "beta");
    for (size_t i = 0; i < n; i++)
        ek_local_domain_free(v[i]);
    free(v);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    unlink(img);
    rmdir(dir);
}

static void test_generated_xml(void **state)
{
    ek_local_domain_t *d = load_ok("full.xml");
    for (size_t i = 0; i < d->n_disks; i++)
        d->disks[i].size = 1 << 30;
    json_object *ei = ek_local_domain_export_info(d);
    ek_local_deployed_disk_t disks[3];
    char *paths[3];
    for (size_t i = 0; i < 3; i++) {
        paths[i] = ek_xasprintf("/dst/win & co/deployed/disk-%s.img", d->disks[i].id);
        disks[i] = (ek_local_deployed_disk_t){d->disks[i].id, paths[i], d->disks[i].bus,
                                              d->disks[i].boot_order};
    }
    json_object *map = NULL;
    const char *m = "{\"default\": \"prod\", \"br0\": {\"id\": \"bridge:br9\"}, \"eth1\": "
                    "{\"name\": \"dmz\"}}";
    assert_null(ek_json_parse(m, strlen(m), &map));
    char *xml = NULL;
    assert_null(ek_local_domain_xml_build(ei, disks, 3, map, &xml));
    assert_non_null(strstr(xml, "<domain type=\"qemu\">"));
    assert_non_null(strstr(xml, "<name>win &amp; co</name>"));
    ek_local_domain_t *back = NULL;
    ek_err_t *err = ek_local_domain_parse(NULL, xml, strlen(xml), "/", false, &back);
    if (err)
        fail_msg("%s\n%s", err->message, xml);
    assert_string_equal(back->name, "win & co");
    assert_int_equal(back->vcpus, 4);
    assert_int_equal(back->memory_mb, 4096);
    assert_string_equal(back->firmware, "efi");
    assert_int_equal(back->n_disks, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(back->disks[i].id, d->disks[i].id);
        assert_string_equal(back->disks[i].path, paths[i]);
        assert_string_equal(back->disks[i].format, "raw");
        assert_string_equal(back->disks[i].bus, d->disks[i].bus);
        assert_int_equal(back->disks[i].boot_order, d->disks[i].boot_order);
    }
    assert_int_equal(back->n_nics, 3);
    assert_string_equal(back->nics[0].network, "prod");
    assert_string_equal(back->nics[0].kind, "network");
    assert_string_equal(back->nics[0].mac, "52:54:00:00:00:01");
    assert_string_equal(back->nics[1].network, "br9");
    assert_string_equal(back->nics[1].kind, "bridge");
    assert_string_equal(back->nics[1].model, "virtio");
    assert_string_equal(back->nics[2].network, "dmz");
    ek_local_domain_free(back);
    free(xml);

    /* an unmapped network is an error, never a guess */
    json_object_object_del(map, "eth1");
    xml = NULL;
    err = ek_local_domain_xml_build(ei, disks, 3, map, &xml);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "network 'eth1'"));
    assert_null(xml);
    ek_err_free(err);
    err = ek_local_network_map_check(ei, map);
    assert_non_null(strstr(err->message, "network 'eth1' (NIC 52:54:00:00:00:03)"));
    ek_err_free(err);

    for (size_t i = 0; i < 3; i++)
        free(paths[i]);
    json_object_put(map);
    json_object_put(ei);
    ek_local_domain_free(d);
}

static void test_names(void **state)
{
    static const char *const good[] = {"vda", "web-01", "Win 10 (copy)", "a.b", "é"};
    static const char *const bad[] = {"", ".", "..", ".hidden", "a/b", "a\nb", "/abs"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        assert_null(ek_local_name_check(good[i], "name"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ek_err_t *err = ek_local_name_check(bad[i], "name");
        if (!err)
            fail_msg("'%s' accepted", bad[i]);
        ek_err_free(err);
    }
    char *q = ek_shell_quote("it's a \"dir\"");
    assert_string_equal(q, "'it'\\''s a \"dir\"'");
    free(q);
    bool bridge;
    json_object *map = json_object_new_object();
    json_object_object_add(map, "a", json_object_new_string("bridge:br1"));
    json_object_object_add(map, "b", json_object_new_string(""));
    assert_string_equal(ek_network_map_lookup(map, "a", &bridge), "br1");
    assert_true(bridge);
    assert_null(ek_network_map_lookup(map, "b", &bridge));
    assert_null(ek_network_map_lookup(map, "c", &bridge));
    assert_null(ek_network_map_lookup(NULL, "a", &bridge));
    json_object_put(map);
    char buf[32];
    assert_string_equal(ek_human_size(512, buf), "512 B");
    assert_string_equal(ek_human_size(8ull << 30, buf), "8.0 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),          cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_bad),           cmocka_unit_test(test_probe),
        cmocka_unit_test(test_find_and_list), cmocka_unit_test(test_generated_xml),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
