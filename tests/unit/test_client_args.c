/* test_client_args.c - the command-line parser of `ekman` (client/args.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "client/args.h"

static const ek_cli_opt_t cmd_opts[] = {
    EK_OPT_REQ("origin", "ENDPOINT", "the source"),
    EK_OPT_REP("instance", "NAME", "an instance"),
    EK_OPT("wait", NULL, "wait"),
    EK_OPT("project", "NAME", "the command's own --project"),
    EK_OPT_END,
};
static const ek_cli_opt_t globals[] = {
    EK_OPT("url", "URL", "address"),
    EK_OPT("project", "PROJECT", "the global one"),
    EK_OPT("help", NULL, "help"),
    EK_OPT_END,
};
static const ek_cli_spec_t spec = {"TRANSFER [EXECUTION]", cmd_opts};

static char *parse(int argc, const char *const *argv, ek_cli_args_t *a)
{
    const ek_cli_opt_t *const tables[] = {cmd_opts, globals};
    return ek_cli_args_parse(tables, 2, argc, (char **)argv, a);
}

static void test_mixed(void **state)
{
    const char *argv[] = {"--origin",   "src", "T1", "--instance=a", "--wait", "--url", "http://x",
                          "--instance", "b",   "E1"};
    ek_cli_args_t a;
    assert_null(parse(10, argv, &a));
    assert_null(ek_cli_args_check(&spec, &a));
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "T1");
    assert_string_equal(a.pos[1], "E1");
    assert_string_equal(ek_cli_opt(&a, "origin"), "src");
    assert_string_equal(ek_cli_opt(&a, "url"), "http://x");
    assert_true(ek_cli_flag(&a, "wait"));
    assert_false(ek_cli_flag(&a, "help"));
    const char *const *v;
    assert_int_equal(ek_cli_opt_all(&a, "instance", &v), 2);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "b");
    assert_null(ek_cli_opt(&a, "nonexistent"));
    ek_cli_args_release(&a);
}

static void test_errors(void **state)
{
    static const struct {
        int argc;
        const char *argv[4];
        const char *want;
    } cases[] = {
        {1, {"--bogus"}, "unknown option '--bogus'"},
        {1, {"-x"}, "unknown option '-x' (options are long: --name)"},
        {1, {"--origin"}, "option '--origin' needs a value (ENDPOINT)"},
        {1, {"--wait=yes"}, "option '--wait' takes no value"},
        {4, {"--origin", "a", "--origin", "b"}, "option '--origin' given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ek_cli_args_t a;
        char *err = parse(cases[i].argc, cases[i].argv, &a);
        assert_non_null(err);
        assert_string_equal(err, cases[i].want);
        free(err);
        ek_cli_args_release(&a);
    }
}

static void test_check(void **state)
{
    ek_cli_args_t a;
    const char *none[] = {"--origin", "x"};
    assert_null(parse(2, none, &a));
    char *err = ek_cli_args_check(&spec, &a);
    assert_string_equal(err, "missing argument TRANSFER");
    free(err);
    ek_cli_args_release(&a);

    const char *extra[] = {"--origin", "x", "T", "E", "F"};
    assert_null(parse(5, extra, &a));
    err = ek_cli_args_check(&spec, &a);
    assert_string_equal(err, "unexpected argument 'F'");
    free(err);
    ek_cli_args_release(&a);

    const char *no_origin[] = {"T"};
    assert_null(parse(1, no_origin, &a));
    err = ek_cli_args_check(&spec, &a);
    assert_string_equal(err, "missing option --origin ENDPOINT");
    free(err);
    ek_cli_args_release(&a);
}

static void test_precedence_dashdash_help(void **state)
{
    ek_cli_args_t a;
    /* the command's --project wins over the global one; "--" ends the options */
    const char *argv[] = {"-h", "--project", "p", "--", "--origin"};
    assert_null(parse(5, argv, &a));
    assert_true(ek_cli_flag(&a, "help"));
    assert_string_equal(ek_cli_opt(&a, "project"), "p");
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.pos[0], "--origin");
    int k = -1;
    for (int i = 0; i < a.nopts; i++)
        if (!strcmp(a.opts[i]->name, "project"))
            k = i;
    assert_string_equal(a.opts[k]->help, "the command's own --project");
    ek_cli_args_release(&a);
}

static void test_usage(void **state)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_usage("transfer execution show", &spec, &sb);
    assert_string_equal(sb.buf, "Usage: ekman transfer execution show TRANSFER [EXECUTION] "
                                "[options]\n\nOptions:\n"
                                "  --origin ENDPOINT  the source (required)\n"
                                "  --instance NAME    an instance (repeatable)\n"
                                "  --wait             wait\n"
                                "  --project NAME     the command's own --project\n");
    ek_strbuf_reset(&sb);
    ek_cli_usage("x", &(ek_cli_spec_t){NULL, NULL}, &sb);
    assert_string_equal(sb.buf, "Usage: ekman x [options]\n");
    ek_strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_check), cmocka_unit_test(test_precedence_dashdash_help),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
