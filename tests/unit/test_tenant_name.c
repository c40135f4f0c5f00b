/* test_tenant_name.c - the one check of tenant-chosen names that become
 * file names or command arguments (common/tenantname.h, issue #17). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "common/tenantname.h"

static void test_accepted(void **state)
{
    (void)state;
    const char *ok[] = {
        "vda",     "sda",    "hdc",
        "nvme0n1", "disk-1", "a.b_c",
        "0",       "V1",     "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!ek_tenant_name_ok(ok[i]))
            fail_msg("'%s' refused", ok[i]);
        assert_null(ek_tenant_name_check(ok[i], "disk target dev"));
    }
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "../x",
                         "..",
                         ".",
                         ".hidden",
                         "a/b",
                         "/etc/passwd",
                         "x..y",
                         "-o",
                         "_x",
                         "a b",
                         "a'b",
                         "a\"b",
                         "a\nb",
                         "a\\b",
                         "a;b",
                         "a$b",
                         "\xc3\xa9t\xc3\xa9",
                         "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ012"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ek_tenant_name_ok(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
        ek_err_t *err = ek_tenant_name_check(bad[i], "disk target dev");
        assert_non_null(err);
        assert_int_equal(err->code, EK_E_INVALID);
        assert_non_null(strstr(err->message, "disk target dev"));
        /* the message never carries the raw name's control characters */
        assert_null(strchr(err->message, '\n'));
        ek_err_free(err);
    }
    assert_false(ek_tenant_name_ok(NULL));
    ek_err_t *err = ek_tenant_name_check("../x", "disk target dev");
    assert_non_null(strstr(err->message, "'../x'"));
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
