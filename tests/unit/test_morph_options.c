/* test_morph_options.c - the JSON options of ekman-morph: a full document,
 * and bad input whose error names the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "worker/morph/options.h"

static ek_err_t *parse(const char *text, ek_morph_opts_t **o)
{
    return ek_morph_opts_parse(text, strlen(text), o);
}

static void test_full(void **state)
{
    (void)state;
    ek_morph_opts_t *o = NULL;
    ek_err_t *err = parse("{\"disks\":[\"/dev/vdb\",\"serial:abc123\"],\"os_type\":\"linux\","
                          "\"set_dhcp\":true,\"retain_user_credentials\":false,"
                          "\"nics\":[{\"mac\":\"52:54:00:AB:cd:EF\",\"model\":\"vmxnet3\","
                          "\"network_name\":\"VM Network\"},{\"model\":\"e1000\"}],"
                          "\"packages_dir\":\"/run/ekman-morph/packages\",\"virtio_win_dir\":null,"
                          "\"user_script\":\"#!/bin/sh\\necho hi\\n\",\"state_dir\":\"/tmp/s\"}",
                          &o);
    assert_null(err);
    assert_int_equal(o->n_disks, 2);
    assert_string_equal(o->disks[1], "serial:abc123");
    assert_string_equal(o->os_type, "linux");
    assert_true(o->set_dhcp);
    assert_false(o->retain_user_credentials);
    assert_int_equal(o->n_nics, 2);
    assert_string_equal(o->nics[0].mac, "52:54:00:ab:cd:ef");
    assert_string_equal(o->nics[0].network_name, "VM Network");
    assert_null(o->nics[1].mac);
    assert_string_equal(o->packages_dir, "/run/ekman-morph/packages");
    assert_null(o->virtio_win_dir);
    assert_string_equal(o->user_script, "#!/bin/sh\necho hi\n");
    assert_string_equal(o->state_dir, "/tmp/s");
    ek_morph_opts_free(o);
}

static void test_defaults(void **state)
{
    (void)state;
    ek_morph_opts_t *o = NULL;
    assert_null(parse("{\"disks\":[\"/dev/vdb\"]}", &o));
    assert_null(o->os_type);
    assert_false(o->set_dhcp);
    assert_true(o->retain_user_credentials);
    assert_int_equal(o->n_nics, 0);
    assert_string_equal(o->state_dir, "/run/ekman-morph");
    ek_morph_opts_free(o);
}

static void expect_error(const char *text, const char *needle)
{
    ek_morph_opts_t *o = NULL;
    ek_err_t *err = parse(text, &o);
    assert_non_null(err);
    assert_null(o);
    if (!strstr(err->message, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err->message, needle);
    assert_int_equal(err->code, EK_E_INVALID);
    ek_err_free(err);
}

static void test_bad(void **state)
{
    (void)state;
    expect_error("{\"disks\":", "options");
    expect_error("[1,2]", "options must be a JSON object");
    expect_error("{}", "disks");
    expect_error("{\"disks\":[]}", "options.disks is empty");
    expect_error("{\"disks\":\"/dev/vdb\"}", "disks");
    expect_error("{\"disks\":[\"/dev/vdb\",7]}", "options.disks[1] must be a string, not int");
    expect_error("{\"disks\":[\"vdb\"]}", "options.disks[0] must be a device path");
    expect_error("{\"disks\":[\"serial:\"]}", "options.disks[0]");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"os_type\":\"bsd\"}", "options.os_type");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":\"yes\"}", "set_dhcp");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"nics\":[{\"mac\":\"52:54:00\"}]}",
                 "options.nics[0].mac must look like");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"nics\":[{},3]}", "options.nics[1] must be an object");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"packages_dir\":\"pkgs\"}",
                 "options.packages_dir must be an absolute path");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"user_script\":5}", "user_script");
    expect_error("{\"disks\":[\"/dev/vdb\"],\"set_dchp\":true}",
                 "options.set_dchp is not a known option");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
