/* test_tenant_libvirt.c - the libvirt provider keeps the operator's
 * credentials and files out of a tenant's reach (issue #17): an endpoint
 * without a private_key is refused unless the operator lists its URI in
 * operator_key_uris; a destination environment cannot name a key file (or
 * any other operator-only option); a disk's <target dev> must be a plain
 * name. No host is contacted: every case fails (or passes the gate) before
 * the SSH connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/libvirt/libvirt.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    assert_null(ek_json_parse(text, strlen(text), &o));
    return o;
}

static ek_config_t *config(const char *text)
{
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(cfg, text, "test.conf"));
    return cfg;
}

/* ek_lv_connect to a keyless endpoint of user@host:port; the error. */
static ek_err_t *connect_keyless(const ek_config_t *cfg, const char *user, int port)
{
    _cleanup_free_ char *ci_text =
        ek_xasprintf("{\"host\": \"127.0.0.1\", \"port\": %d, \"username\": \"%s\", "
                     "\"host_key_fingerprint\": \"SHA256:AAAA\"}",
                     port, user);
    json_object *ci = parse(ci_text);
    ek_endpoint_t ep = {"id1", "projA-kvm", "libvirt", ci, NULL, NULL, NULL};
    ek_lv_conn_t *c = NULL;
    ek_err_t *err = ek_lv_connect(&ep, cfg, &c);
    assert_null(c);
    json_object_put(ci);
    return err;
}

static void test_operator_key_refused(void **state)
{
    (void)state;
    ek_config_t *cfg = config("[worker]\ntmp_dir = /tmp\n"
                              "[libvirt_migration_provider]\n"
                              "ssh_key_path = /nonexistent/operator_key\n");
    ek_err_t *err = connect_keyless(cfg, "root", 2223);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_FORBIDDEN);
    assert_non_null(strstr(err->message, "endpoint 'projA-kvm'"));
    assert_non_null(strstr(err->message, "qemu+ssh://root@127.0.0.1:2223/system"));
    assert_non_null(strstr(err->message, "operator_key_uris"));
    ek_err_free(err);
    ek_config_free(cfg);
}

static void test_operator_key_allowed(void **state)
{
    (void)state;
    ek_config_t *cfg = config("[worker]\ntmp_dir = /tmp\n"
                              "[libvirt_migration_provider]\n"
                              "ssh_key_path = /nonexistent/operator_key\n"
                              "operator_key_uris = qemu+ssh://admin@10.0.0.1/system, "
                              "qemu+ssh://root@127.0.0.1:2223/system\n");
    /* listed: the operator's key is used (here it cannot be read) */
    ek_err_t *err = connect_keyless(cfg, "root", 2223);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "/nonexistent/operator_key"));
    ek_err_free(err);
    /* another user, or another port, of the same host is not */
    err = connect_keyless(cfg, "other", 2223);
    assert_int_equal(err->code, EK_E_FORBIDDEN);
    ek_err_free(err);
    err = connect_keyless(cfg, "root", 22);
    assert_int_equal(err->code, EK_E_FORBIDDEN);
    ek_err_free(err);
    ek_config_free(cfg);
}

static void test_environment_names_no_key(void **state)
{
    (void)state;
    ek_config_t *cfg = config("[libvirt_migration_provider]\nssh_key_path = /etc/ekman/key\n");
    const char *envs[] = {"{\"ssh_key_path\": \"/etc/ekman/ekman.conf\"}",
                          "{\"operator_key_uris\": \"qemu+ssh://root@victim/system\"}",
                          "{\"osmorphing_packages_dir\": \"/etc\"}"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(envs); i++) {
        json_object *env = parse(envs[i]);
        ek_lv_opts_t o;
        ek_err_t *err = ek_lv_opts_load(cfg, env, &o);
        assert_non_null(err);
        assert_int_equal(err->code, EK_E_FORBIDDEN);
        assert_non_null(strstr(err->message, "only be set by the operator"));
        ek_err_free(err);
        json_object_put(env);
    }
    ek_config_free(cfg);
}

static void test_target_dev(void **state)
{
    (void)state;
#define VM_FMT                                                                                     \
    "<domain type='kvm'><name>vm</name><memory unit='MiB'>64</memory><devices>"                    \
    "<disk type='file' device='disk'><driver type='qcow2'/><source file='/v/a.qcow2'/>"            \
    "<target dev='%s' bus='virtio'/></disk></devices></domain>"
    const char *bad[] = {"../x", "../../etc/cron.d/x", "vda/../../x", "a b", ".x", "-o"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *xml = ek_xasprintf(VM_FMT, bad[i]);
        ek_lv_domain_t *d = NULL;
        ek_err_t *err = ek_lv_domain_parse(xml, &d);
        if (!err)
            fail_msg("<target dev='%s'> accepted", bad[i]);
        assert_non_null(strstr(err->message, "disk target dev"));
        ek_err_free(err);
        ek_lv_domain_free(d);
    }
    _cleanup_free_ char *xml = ek_xasprintf(VM_FMT, "vda");
    ek_lv_domain_t *d = NULL;
    assert_null(ek_lv_domain_parse(xml, &d));
    assert_string_equal(d->disks[0].id, "vda");
    ek_lv_domain_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_key_refused),
        cmocka_unit_test(test_operator_key_allowed),
        cmocka_unit_test(test_environment_names_no_key),
        cmocka_unit_test(test_target_dev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
