/* test_config.c - the INI loader against the seeds' sections and broken files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/strbuf.h"

#define OVIRT   EK_FIXTURES "/config/ovirt_migration_provider.conf"
#define LIBVIRT EK_FIXTURES "/config/libvirt_migration_provider.conf"
#define OV      "ovirt_migration_provider"
#define LV      "libvirt_migration_provider"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    return ek_strbuf_detach(&sb);
}

/* Loads text and returns the error message (or NULL); the config is freed. */
static char *load_error(const char *text)
{
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = ek_config_load_string(cfg, text, "t.conf");
    char *msg = err ? ek_xstrdup(err->message) : NULL;
    ek_err_free(err);
    ek_config_free(cfg);
    return msg;
}

static void test_ovirt_seed(void **state)
{
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = ek_config_load_file(cfg, OVIRT);
    assert_null(err);
    assert_int_equal(ek_config_warning_count(cfg), 0);
    assert_string_equal(ek_config_get_string(cfg, OV, "default_cluster"), "Default");
    assert_string_equal(ek_config_get_string(cfg, OV, "default_storage_domain"), "");
    assert_string_equal(ek_config_get_string(cfg, OV, "default_vm_pool"), "");
    assert_string_equal(ek_config_get_string(cfg, OV, "default_os_release"), "other_linux");
    assert_string_equal(ek_config_get_string(cfg, OV, "default_optimized_for"), "server");
    assert_false(ek_config_get_bool(cfg, OV, "default_delete_protected"));
    assert_false(ek_config_get_bool(cfg, OV, "default_leave_migrated_vms_off"));
    assert_string_equal(ek_config_get_string(cfg, OV, "default_migr_minion_cluster"), "Default");
    /* commented out in the seed: the internal default applies */
    assert_false(ek_config_is_set(cfg, OV, "default_migr_blank_template"));
    assert_string_equal(ek_config_get_string(cfg, OV, "default_migr_blank_template"),
                        "00000000-0000-0000-0000-000000000000");
    const ek_strmap_t *tm = ek_config_get_map(cfg, OV, "default_migr_template_map");
    assert_int_equal(tm->n, 2);
    assert_string_equal(tm->keys[0], "linux");
    assert_string_equal(ek_strmap_get(tm, "linux"), "Bionic-passworded");
    assert_string_equal(ek_strmap_get(tm, "windows"), "WS2016");
    assert_null(ek_strmap_get(tm, "bsd"));
    const ek_strmap_t *um = ek_config_get_map(cfg, OV, "default_migr_template_username_map");
    assert_string_equal(ek_strmap_get(um, "windows"), "coriolis");
    const ek_strmap_t *pm = ek_config_get_map(cfg, OV, "default_migr_template_password_map");
    assert_string_equal(ek_strmap_get(pm, "linux"), "Passw0rd");
    ek_config_free(cfg);
    ek_redact_reset();
}

static void test_libvirt_seed(void **state)
{
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_file(cfg, LIBVIRT));
    assert_int_equal(ek_config_warning_count(cfg), 0);
    assert_true(ek_config_is_set(cfg, LV, "default_storage_pool"));
    assert_string_equal(ek_config_get_string(cfg, LV, "default_storage_pool"), "");
    assert_int_equal(ek_config_get_map(cfg, LV, "migr_image_map")->n, 0);
    assert_int_equal(ek_config_get_int(cfg, LV, "migr_worker_volume_size"), 25);
    assert_int_equal(ek_config_get_int(cfg, LV, "migr_worker_memory"), 4096);
    assert_int_equal(ek_config_get_int(cfg, LV, "migr_worker_vcpus"), 2);
    assert_string_equal(ek_config_get_string(cfg, LV, "data_transfer_mechanism"), "https");
    assert_true(ek_config_get_bool(cfg, LV, "enable_vm_console_log"));
    assert_string_equal(ek_config_get_string(cfg, LV, "vm_console_log_dir"),
                        "/var/log/libvirt/qemu");
    assert_false(ek_config_get_bool(cfg, LV, "enable_vm_vnc_console"));
    assert_string_equal(ek_config_get_string(cfg, LV, "windows_virtio_iso_url"),
                        "https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/"
                        "stable-virtio/virtio-win.iso");
    assert_string_equal(ek_config_get_string(cfg, LV, "cpu_mode"), "host-passthrough");
    const ek_strlist_t *feat = ek_config_get_list(cfg, LV, "cpu_features");
    assert_int_equal(feat->n, 3);
    assert_string_equal(feat->items[0], "rdtscp");
    assert_string_equal(feat->items[1], "invtsc");
    assert_string_equal(feat->items[2], "x2apic");
    assert_true(ek_strlist_contains(feat, "invtsc"));
    assert_string_equal(ek_config_get_string(cfg, LV, "migr_worker_iface_addr_src"), "agent");
    assert_true(ek_config_get_bool(cfg, LV, "add_tpm_device"));
    assert_string_equal(ek_config_get_string(cfg, LV, "sqlite_database_file"),
                        "/opt/coriolis/libvirt_provider_db.sqlite");
    ek_config_free(cfg);
}

/* The acceptance check of the foundation issue, on the two fixtures concatenated. */
static void test_both_to_json(void **state)
{
    char *a = slurp(OVIRT), *b = slurp(LIBVIRT);
    char *both = ek_xasprintf("%s\n%s", a, b);
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(cfg, both, "both.conf"));
    json_object *j = ek_config_to_json(cfg, true);
    json_object *ov = json_object_object_get(j, OV), *lv = json_object_object_get(j, LV);
    char *map = ek_json_dump(json_object_object_get(ov, "default_migr_template_map"), false);
    assert_string_equal(map, "{\"linux\":\"Bionic-passworded\",\"windows\":\"WS2016\"}");
    json_object *vcpus = json_object_object_get(lv, "migr_worker_vcpus");
    assert_true(json_object_is_type(vcpus, json_type_int));
    assert_int_equal(json_object_get_int(vcpus), 2);
    json_object *feat = json_object_object_get(lv, "cpu_features");
    assert_true(json_object_is_type(feat, json_type_array));
    assert_int_equal(json_object_array_length(feat), 3);
    json_object *sd = json_object_object_get(ov, "default_storage_domain");
    assert_true(json_object_is_type(sd, json_type_string));
    assert_string_equal(json_object_get_string(sd), "");
    /* the password map is masked, value by value */
    char *pm =
        ek_json_dump(json_object_object_get(ov, "default_migr_template_password_map"), false);
    assert_string_equal(pm, "{\"linux\":\"***\",\"windows\":\"***\"}");
    char *all = ek_json_dump(j, false);
    assert_null(strstr(all, "Passw0rd"));
    /* unmasked, it is there */
    json_object *raw = ek_config_to_json(cfg, false);
    char *rawtext = ek_json_dump(raw, false);
    assert_non_null(strstr(rawtext, "Passw0rd"));
    free(rawtext);
    json_object_put(raw);
    free(all);
    free(pm);
    free(map);
    json_object_put(j);
    ek_config_free(cfg);
    free(both);
    free(a);
    free(b);
    ek_redact_reset();
}

static void test_value_syntax(void **state)
{
    const char *text = "[DEFAULT]\r\n"
                       "log_level: debug\r\n"
                       "; a semicolon comment\n"
                       "   # an indented comment\n"
                       "[worker]\n"
                       "host = 'node-1'\n"
                       "providers = \"local\" , libvirt,, \n"
                       "capacity = 16\n"
                       "[messaging]\n"
                       "quorum_queues = True\n"
                       "[libvirt_migration_provider]\n"
                       "migr_image_map = linux:debian-worker.qcow2,windows : win.qcow2\n"
                       "cpu_features =\n";
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(cfg, text, "t.conf"));
    assert_string_equal(ek_config_get_string(cfg, "DEFAULT", "log_level"), "debug");
    assert_string_equal(ek_config_get_string(cfg, "worker", "host"), "node-1");
    const ek_strlist_t *p = ek_config_get_list(cfg, "worker", "providers");
    assert_int_equal(p->n, 2);
    assert_string_equal(p->items[0], "local");
    assert_string_equal(p->items[1], "libvirt");
    assert_int_equal(ek_config_get_int(cfg, "worker", "capacity"), 16);
    assert_true(ek_config_get_bool(cfg, "messaging", "quorum_queues"));
    const ek_strmap_t *m = ek_config_get_map(cfg, LV, "migr_image_map");
    assert_string_equal(ek_strmap_get(m, "linux"), "debian-worker.qcow2");
    assert_string_equal(ek_strmap_get(m, "windows"), "win.qcow2");
    assert_int_equal(ek_config_get_list(cfg, LV, "cpu_features")->n, 0);
    ek_config_free(cfg);
}

static void test_bools(void **state)
{
    const char *yes[] = {"true", "True", "TRUE", "yes", "on", "1"};
    const char *no[] = {"false", "False", "no", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
        ek_config_t *cfg = ek_config_new();
        char *t = ek_xasprintf("[%s]\nset_dhcp = %s\n", LV, yes[i]);
        assert_null(ek_config_load_string(cfg, t, "t"));
        assert_true(ek_config_get_bool(cfg, LV, "set_dhcp"));
        free(t);
        ek_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++) {
        ek_config_t *cfg = ek_config_new();
        char *t = ek_xasprintf("[%s]\nset_dhcp = %s\n", LV, no[i]);
        assert_null(ek_config_load_string(cfg, t, "t"));
        assert_false(ek_config_get_bool(cfg, LV, "set_dhcp"));
        free(t);
        ek_config_free(cfg);
    }
}

/* Each broken file gives an error naming file, line and what is wrong. */
static void test_malformed(void **state)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"[api]\nport = 7667\nthis line is broken\n",
         "t.conf:3: malformed line 'this line is broken'"},
        {"[api\nport = 1\n", "t.conf:1: malformed section header '[api'"},
        {"[api] trailing\n", "t.conf:1: malformed section header"},
        {"port = 1\n", "t.conf:1: option 'port' appears before any [section] header"},
        {"[api]\nport = seventy\n", "t.conf:2: [api] port: 'seventy' is not an integer"},
        {"[api]\nport = 0\n", "t.conf:2: [api] port: 0 is out of range (1 to 65535)"},
        {"[api]\nport = 99999999999999999999\n",
         "t.conf:2: [api] port: '99999999999999999999' is not an integer"},
        {"[" LV "]\n\nset_dhcp = maybe\n", "t.conf:3: [" LV "] set_dhcp: 'maybe' is not a boolean"},
        {"[" LV "]\ndata_transfer_mechanism = ftp\n",
         "t.conf:2: [" LV "] data_transfer_mechanism: 'ftp' is not one of https|ssh"},
        {"[" OV "]\ndefault_migr_template_map = linux Bionic\n",
         "t.conf:2: [" OV "] default_migr_template_map: map entry 'linux Bionic' has no ':'"},
        {"[" OV "]\ndefault_migr_template_map = :x\n", "has an empty key"},
        {"[bad section!]\n", "t.conf:1: invalid section name 'bad section!'"},
        {"[api]\nbad key = 1\n", "t.conf:2: invalid option name 'bad key'"},
        {"[database]\nconnection = mysql://x\n",
         "t.conf:2: [database] connection: must be a postgresql:// URI"},
        {"[messaging]\ntransport_url = http://x\n",
         "[messaging] transport_url: must be an amqp://"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *msg = load_error(cases[i].text);
        if (!msg || !strstr(msg, cases[i].expect)) {
            print_error("case %zu: expected '%s' in '%s'\n", i, cases[i].expect,
                        msg ? msg : "(no error)");
            fail();
        }
        free(msg);
    }
}

/* All errors of a file are reported at once, and the failed load has no effect
 * on values from lines that did not parse. */
static void test_all_errors_listed(void **state)
{
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = ek_config_load_string(cfg, "[api]\nport = x\n[worker]\ncapacity = y\n", "f");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "f:2:"));
    assert_non_null(strstr(err->message, "f:4:"));
    assert_int_equal(ek_config_get_int(cfg, "api", "port"), 7667);
    ek_err_free(err);
    ek_config_free(cfg);
}

static void test_unknown_is_warning(void **state)
{
    ek_config_t *cfg = ek_config_new();
    assert_null(
        ek_config_load_string(cfg,
                              "[api]\nport = 8000\nfrobnicate = 1\n[no_such_section]\nx = 1\n"
                              "[api]\nport = 8001\n",
                              "w.conf"));
    assert_int_equal(ek_config_get_int(cfg, "api", "port"), 8001);
    assert_int_equal(ek_config_warning_count(cfg), 3);
    assert_non_null(strstr(ek_config_warning(cfg, 0), "w.conf:3: unknown option 'frobnicate'"));
    assert_non_null(
        strstr(ek_config_warning(cfg, 1), "w.conf:4: unknown section [no_such_section]"));
    assert_non_null(strstr(ek_config_warning(cfg, 2), "set again"));
    assert_null(ek_config_warning(cfg, 3));
    ek_config_free(cfg);
}

static void test_missing_file(void **state)
{
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = ek_config_load_file(cfg, "/nonexistent/ekman.conf");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "/nonexistent/ekman.conf"));
    assert_non_null(strstr(err->message, "No such file"));
    ek_err_free(err);
    ek_config_free(cfg);
}

static void test_secrets_masked(void **state)
{
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(
        cfg,
        "[DEFAULT]\nencryption_key = MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
        "[database]\nconnection = postgresql://ekman:dbSecret99@127.0.0.1:5432/ekman\n"
        "[messaging]\ntransport_url = amqp://ekman:mqSecret77@127.0.0.1:5672/ekman\n",
        "s.conf"));
    json_object *j = ek_config_to_json(cfg, true);
    char *text = ek_json_dump(j, false);
    assert_null(strstr(text, "dbSecret99"));
    assert_null(strstr(text, "mqSecret77"));
    assert_null(strstr(text, "MDEyMzQ1"));
    assert_non_null(strstr(text, "postgresql://ekman:***@127.0.0.1:5432/ekman"));
    assert_non_null(strstr(text, "amqp://ekman:***@127.0.0.1:5672/ekman"));
    assert_non_null(strstr(text, "\"encryption_key\":\"***\""));
    /* once loaded, the secrets are masked in any text that is logged */
    char *line = ek_redact_text("connecting with dbSecret99 and mqSecret77");
    assert_string_equal(line, "connecting with *** and ***");
    free(line);
    free(text);
    json_object_put(j);
    ek_config_free(cfg);
    ek_redact_reset();
}

static void test_parse_value(void **state)
{
    const ek_opt_def_t *d = ek_config_find_option(LV, "migr_worker_memory");
    assert_non_null(d);
    json_object *v = NULL;
    assert_null(ek_config_parse_value(d, " 2048 ", &v));
    assert_int_equal(json_object_get_int(v), 2048);
    json_object_put(v);
    ek_err_t *err = ek_config_parse_value(d, "2G", &v);
    assert_non_null(err);
    ek_err_free(err);
    assert_null(ek_config_find_option(LV, "nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ovirt_seed),
        cmocka_unit_test(test_libvirt_seed),
        cmocka_unit_test(test_both_to_json),
        cmocka_unit_test(test_value_syntax),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_all_errors_listed),
        cmocka_unit_test(test_unknown_is_warning),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_secrets_masked),
        cmocka_unit_test(test_parse_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
