/* test_ovirt_api.c - the ovirt provider's pieces that need no engine: JSON
 * with string scalars as real engines send it, faults turned into errors
 * (SSO errors, failed actions, empty 404s), names and serials, the VirtIO
 * zip check, and the provider table against proto/tasks.c. The REST calls
 * themselves run against the simulator (tests/integration/ovirt/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/config.h"
#include "proto/tasks.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/providers/ovirt/ovirt.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    assert_null(err);
    return o;
}

static void test_string_scalars(void **state)
{
    (void)state;
    json_object *vm = parse("{\"id\":\"V\",\"memory\":\"4294967296\",\"stateless\":\"false\","
                            "\"delete_protected\":true,\"cpu\":{\"topology\":{\"sockets\":2}},"
                            "\"cluster\":{\"id\":\"C\",\"href\":\"/x\"},\"bad\":\"12x\","
                            "\"date\":1767630835851}");
    int64_t n = 0;
    assert_true(ek_ovirt_int(vm, "memory", &n));
    assert_int_equal(n, 4294967296LL);
    assert_true(ek_ovirt_int(json_object_object_get(json_object_object_get(vm, "cpu"), "topology"),
                             "sockets", &n));
    assert_int_equal(n, 2);
    assert_true(ek_ovirt_int(vm, "date", &n)); /* epoch-ms numbers */
    assert_int_equal(n, 1767630835851LL);
    assert_false(ek_ovirt_int(vm, "bad", &n));
    assert_false(ek_ovirt_int(vm, "missing", &n));
    assert_false(ek_ovirt_bool(vm, "stateless", true));
    assert_true(ek_ovirt_bool(vm, "delete_protected", false));
    assert_true(ek_ovirt_bool(vm, "missing", true));
    assert_string_equal(ek_ovirt_ref(vm, "cluster", "id"), "C");
    assert_null(ek_ovirt_ref(vm, "memory", "id"));
    assert_null(ek_ovirt_str(vm, "cluster")); /* an object is not a string */
    assert_string_equal(ek_ovirt_str(vm, "memory"), "4294967296");
    json_object_put(vm);
}

static void test_collections(void **state)
{
    (void)state;
    json_object *full = parse("{\"vm\":[{\"id\":\"a\"},{\"id\":\"b\"}]}");
    json_object *empty = parse("{}");
    assert_int_equal(ek_ovirt_count(full, "vm"), 2);
    assert_null(ek_ovirt_list(full, "disk"));
    assert_int_equal(ek_ovirt_count(empty, "vm"), 0); /* an empty collection may be {} */
    json_object_put(full);
    json_object_put(empty);
}

static void test_faults(void **state)
{
    (void)state;
    const char *conflict = "{\"reason\":\"Operation Failed\",\"detail\":\"[Cannot remove VM. "
                           "VM is running.]\"}";
    ek_err_t *err = ek_ovirt_fault(409, conflict, strlen(conflict), "deleting VM 'w1'");
    assert_int_equal(err->code, EK_E_CONFLICT);
    assert_string_equal(err->message, "deleting VM 'w1': [Cannot remove VM. VM is running.] "
                                      "(HTTP 409, Operation Failed)");
    ek_err_free(err);
    err = ek_ovirt_fault(404, "", 0, "reading disk 'd1'");
    assert_int_equal(err->code, EK_E_NOTFOUND);
    assert_string_equal(err->message, "reading disk 'd1': not found (HTTP 404)");
    ek_err_free(err);
    const char *sso = "{\"error_code\":\"access_denied\",\"error\":\"Cannot authenticate user "
                      "'admin@internal': The username or password is incorrect..\"}";
    err = ek_ovirt_fault(400, sso, strlen(sso), "logging in as 'admin@internal'");
    assert_non_null(strstr(err->message, "Cannot authenticate user"));
    assert_non_null(strstr(err->message, "access_denied"));
    ek_err_free(err);
    const char *action = "{\"status\":\"failed\",\"fault\":{\"reason\":\"Operation Failed\","
                         "\"detail\":\"[Cannot run VM. Low disk space.]\"}}";
    err = ek_ovirt_fault(400, action, strlen(action), "starting VM 'w1'");
    assert_non_null(strstr(err->message, "starting VM 'w1': [Cannot run VM. Low disk space.]"));
    ek_err_free(err);
    err = ek_ovirt_fault(503, "<html>busy</html>", 17, "listing VMs");
    assert_int_equal(err->code, EK_E_UNAVAILABLE);
    assert_string_equal(err->message, "listing VMs: HTTP 503");
    ek_err_free(err);
}

static void test_names(void **state)
{
    (void)state;
    char *s = ek_ovirt_vm_name("ekman-", "web 01/ü", "-copy-1234abcd");
    for (const char *p = s; *p; p++)
        assert_true(
            strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p));
    assert_string_equal(s + strlen(s) - 14, "-copy-1234abcd");
    free(s);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    s = ek_ovirt_vm_name("ekman-", big, "-copy-1");
    assert_int_equal(strlen(s), 64); /* the engine's limit; the suffix stays */
    assert_string_equal(s + 57, "-copy-1");
    free(s);
    s = ek_ovirt_disk_serial_path("0123456789abcdef0123456789abcdef");
    assert_string_equal(s, "serial:0123456789abcdef0123");
    free(s);
    s = ek_ovirt_escape("name=a b&c");
    assert_string_equal(s, "name%3Da%20b%26c");
    free(s);
}

/* A zip with one stored member: local header, data, central directory, end. */
static void write_zip(const char *path, const char *member)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char h[30] = {0x50, 0x4b, 0x03, 0x04, 20}, c[46] = {0x50, 0x4b, 0x01, 0x02, 20, 0, 20};
    unsigned char e[22] = {0x50, 0x4b, 0x05, 0x06};
    size_t nl = strlen(member);
    h[26] = (unsigned char)nl;
    c[28] = (unsigned char)nl;
    fwrite(h, 1, 30, f);
    fwrite(member, 1, nl, f);
    long cd = ftell(f);
    fwrite(c, 1, 46, f);
    fwrite(member, 1, nl, f);
    e[8] = e[10] = 1;
    e[12] = (unsigned char)(46 + nl);
    e[16] = (unsigned char)cd;
    fwrite(e, 1, 22, f);
    assert_int_equal(fclose(f), 0);
}

static void test_virtio_zip(void **state)
{
    (void)state;
    char dir[] = "/tmp/ek-ovirt-zip-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *good = ek_xasprintf("%s/good.zip", dir), *bad = ek_xasprintf("%s/bad.zip", dir);
    char *junk = ek_xasprintf("%s/junk.zip", dir);
    write_zip(good, "V1037432-01/WinVirtIO.iso");
    write_zip(bad, "readme.txt");
    FILE *f = fopen(junk, "w");
    fputs("not a zip at all", f);
    fclose(f);
    assert_null(ek_ovirt_zip_has(good, "winvirtio.iso"));
    /* the download (download.c): only the schemes the operator allows */
    ek_config_t *strict = ek_config_new(), *cfg = ek_config_new();
    assert_null(ek_config_load_string(cfg,
                                      "[worker]\ndownload_schemes = https,file\n"
                                      "download_max_mb = 1\n",
                                      "test"));
    ek_task_ctx_t *sctx = ek_test_ctx_new(strict, NULL, "zip");
    char *url = ek_xasprintf("file://%s", good);
    ek_err_t *e = ek_ovirt_virtio_zip_check(sctx, url, "", dir);
    assert_non_null(e); /* file:// is not allowed by default: no worker file is reachable */
    assert_non_null(strstr(e->message, "download_schemes"));
    ek_err_free(e);
    e = ek_ovirt_virtio_zip_check(sctx, "http://127.0.0.1:1/x.zip", "", dir);
    assert_non_null(strstr(e->message, "download_schemes"));
    ek_err_free(e);
    ek_test_ctx_free(sctx);
    ek_task_ctx_t *ctx = ek_test_ctx_new(cfg, NULL, "zip");
    assert_null(ek_ovirt_virtio_zip_check(ctx, url, "", dir));
    /* with a SHA-256: the right one passes, another is refused */
    char cmd[512], sha[65] = "";
    snprintf(cmd, sizeof(cmd), "sha256sum '%s'", good);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%64s", sha), 1);
    pclose(p);
    assert_null(ek_ovirt_virtio_zip_check(ctx, url, sha, dir));
    char wrong[65];
    memcpy(wrong, sha, sizeof(wrong));
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    e = ek_ovirt_virtio_zip_check(ctx, url, wrong, dir);
    assert_non_null(strstr(e->message, "SHA-256"));
    assert_non_null(strstr(e->message, sha));
    ek_err_free(e);
    e = ek_ovirt_virtio_zip_check(ctx, url, "xyz", dir);
    assert_non_null(strstr(e->message, "64 hex digits"));
    ek_err_free(e);
    free(url);
    url = ek_xasprintf("file://%s", bad);
    e = ek_ovirt_virtio_zip_check(ctx, url, "", dir);
    assert_non_null(strstr(e->message, "holds no winvirtio.iso"));
    assert_non_null(strstr(e->message, url));
    ek_err_free(e);
    free(url);
    e = ek_ovirt_virtio_zip_check(ctx, "", "", dir);
    assert_non_null(strstr(e->message, "set windows_virtio_zip_url"));
    ek_err_free(e);
    url = ek_xasprintf("file://%s/missing.zip", dir);
    e = ek_ovirt_virtio_zip_check(ctx, url, "", dir);
    assert_non_null(strstr(e->message, "cannot download"));
    ek_err_free(e);
    free(url);
    /* larger than download_max_mb (1 MiB): refused, nothing left behind */
    char *big = ek_xasprintf("%s/big.zip", dir);
    f = fopen(big, "w");
    for (int i = 0; i < 3 * 1024; i++)
        fwrite(cmd, 1, 512, f);
    fclose(f);
    url = ek_xasprintf("file://%s", big);
    e = ek_ovirt_virtio_zip_check(ctx, url, "", dir);
    assert_non_null(strstr(e->message, "download_max_mb"));
    ek_err_free(e);
    free(url);
    unlink(big);
    free(big);
    ek_test_ctx_free(ctx);
    ek_config_free(strict);
    ek_config_free(cfg);
    ek_err_t *err = ek_ovirt_zip_has(bad, "winvirtio.iso");
    assert_non_null(err);
    assert_string_equal(err->message, "the zip archive holds no winvirtio.iso");
    ek_err_free(err);
    err = ek_ovirt_zip_has(junk, "winvirtio.iso");
    assert_non_null(strstr(err->message, "is not a zip archive"));
    ek_err_free(err);
    unlink(good);
    unlink(bad);
    unlink(junk);
    rmdir(dir);
    free(good);
    free(bad);
    free(junk);
}

/* destination_environment beats the configuration file; mappings pick
 * the storage domain of a disk. */
/* vCPUs into sockets x cores within the engine's x86 limits (16 sockets). */
static void test_cpu_topology(void **state)
{
    (void)state;
    static const struct {
        int64_t n, sockets, cores;
    } cases[] = {{1, 1, 1},   {4, 4, 1},   {16, 16, 1}, {17, 1, 17}, {18, 9, 2},    {24, 12, 2},
                 {32, 16, 2}, {48, 16, 3}, {64, 16, 4}, {96, 16, 6}, {100, 10, 10}, {0, 1, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t s = 0, c = 0;
        ek_ovirt_cpu_topology(cases[i].n, &s, &c);
        if (s != cases[i].sockets || c != cases[i].cores)
            fail_msg("%lld vCPUs: %lld x %lld, want %lld x %lld", (long long)cases[i].n,
                     (long long)s, (long long)c, (long long)cases[i].sockets,
                     (long long)cases[i].cores);
        assert_true(s <= 16);
    }
}

static void test_options(void **state)
{
    (void)state;
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(cfg,
                                      "[ovirt_migration_provider]\ndefault_cluster = c1\n"
                                      "default_storage_domain = sd-conf\n"
                                      "default_migr_template_map = linux: tl, windows: tw\n",
                                      "t.conf"));
    ek_task_ctx_t *ctx = ek_test_ctx_new(cfg, NULL, "opts");
    ek_endpoint_t ep = {.id = "e", .name = "olvm"};
    ep.environment = parse("{\"default_cluster\":\"c2\",\"default_delete_protected\":true,"
                           "\"default_migr_template_map\":{\"linux\":\"tenv\"}}");
    assert_string_equal(ek_ovirt_opt_str(ctx, &ep, "default_cluster"), "c2");
    assert_string_equal(ek_ovirt_minion_cluster(ctx, &ep), "c2"); /* minion cluster unset */
    assert_true(ek_ovirt_opt_bool(ctx, &ep, "default_delete_protected"));
    assert_false(ek_ovirt_opt_bool(ctx, &ep, "default_leave_migrated_vms_off"));
    assert_string_equal(ek_ovirt_opt_map(ctx, &ep, "default_migr_template_map", "linux"), "tenv");
    assert_null(ek_ovirt_opt_map(ctx, &ep, "default_migr_template_map", "windows"));
    assert_string_equal(ek_ovirt_opt_str(ctx, &ep, "default_os_release"), "other_linux");
    assert_null(ek_ovirt_env_check(&ep));
    json_object *disk = parse("{\"id\":\"vdb\",\"storage_backend\":\"fast\"}");
    const char *sd;
    ep.storage_mappings = parse("{}");
    assert_null(ek_ovirt_disk_domain_name(ctx, &ep, disk, &sd));
    assert_string_equal(sd, "sd-conf");
    json_object_put(ep.storage_mappings);
    ep.storage_mappings = parse("{\"default\":\"sd-def\",\"backend_mappings\":[{\"source\":"
                                "\"fast\",\"destination\":\"sd-fast\"}],\"disk_mappings\":"
                                "[{\"disk_id\":\"vda\",\"destination\":\"sd-vda\"}]}");
    assert_null(ek_ovirt_disk_domain_name(ctx, &ep, disk, &sd));
    assert_string_equal(sd, "sd-fast");
    json_object_put(ep.environment);
    ep.environment = parse("{\"default_cluster\":5}");
    ek_err_t *err = ek_ovirt_env_check(&ep);
    assert_string_equal(err->message, "destination_environment.default_cluster must be a string, "
                                      "not integer");
    ek_err_free(err);
    json_object_put(ep.environment);
    ep.environment = parse("{\"no_such_option\":\"x\"}");
    err = ek_ovirt_env_check(&ep);
    assert_non_null(strstr(err->message, "no_such_option is not an option"));
    ek_err_free(err);
    json_object_put(ep.environment);
    json_object_put(ep.storage_mappings);
    json_object_put(disk);
    ek_test_ctx_free(ctx);
    ek_config_free(cfg);
}

/* Every destination task type has a function; the source ones none. */
static void test_table(void **state)
{
    (void)state;
    assert_string_equal(ek_provider_ovirt.name, "ovirt");
    for (const ek_task_type_t *t = ek_task_types; t->name; t++) {
        const ek_task_impl_t *impl = ek_provider_ovirt.tasks;
        while (impl->task_type && strcmp(impl->task_type, t->name) != 0)
            impl++;
        bool has = impl->task_type != NULL;
        if (t->platform == EK_TASK_SOURCE || strcmp(t->name, "REPLICATE_DISKS") == 0)
            assert_false(has);
        else
            assert_true(has);
    }
    assert_null(ek_provider_ovirt.source_options);
    assert_non_null(ek_provider_ovirt.destination_options);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_scalars), cmocka_unit_test(test_collections),
        cmocka_unit_test(test_faults),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_virtio_zip),     cmocka_unit_test(test_options),
        cmocka_unit_test(test_table),          cmocka_unit_test(test_cpu_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
