/* test_client_output.c - the tables and cells of `ekman` (client/output.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "client/output.h"
#include "common/json.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    assert_null(err);
    return o;
}

static void test_table_aligned(void **state)
{
    ek_cli_table_t *t = ek_cli_table_new(3, (const char *const[]){"ID", "NAME", "TYPE"});
    ek_cli_table_add(t, (const char *const[]){"1", "source-endpoint", "local"});
    ek_cli_table_add(t, (const char *const[]){"22", "dst", "libvirt"});
    assert_int_equal(ek_cli_table_rows(t), 2);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_table_render(t, &sb);
    assert_string_equal(sb.buf, "ID  NAME             TYPE\n"
                                "1   source-endpoint  local\n"
                                "22  dst              libvirt\n");
    ek_strbuf_release(&sb);
    ek_cli_table_free(t);
}

static void test_table_empty_cells_no_trailing_blanks(void **state)
{
    ek_cli_table_t *t = ek_cli_table_new(3, (const char *const[]){"A", "B", "C"});
    ek_cli_table_add(t, (const char *const[]){"x", NULL, ""});
    ek_cli_table_add(t, (const char *const[]){"", "yy", "z"});
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_table_render(t, &sb);
    assert_string_equal(sb.buf, "A  B   C\n"
                                "x\n"
                                "   yy  z\n");
    ek_strbuf_release(&sb);
    ek_cli_table_free(t);
}

static void test_table_utf8_and_control(void **state)
{
    assert_int_equal(ek_cli_text_width("héllo"), 5);
    assert_int_equal(ek_cli_text_width(""), 0);
    ek_cli_table_t *t = ek_cli_table_new(2, (const char *const[]){"NAME", "NOTE"});
    ek_cli_table_add(t, (const char *const[]){"été", "two\nlines\tand tab"});
    ek_cli_table_add(t, (const char *const[]){"abcd", "x"});
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_table_render(t, &sb);
    /* "été" is 3 characters wide: padded like "abc" would be */
    assert_string_equal(sb.buf, "NAME  NOTE\n"
                                "été   two lines and tab\n"
                                "abcd  x\n");
    ek_strbuf_release(&sb);
    ek_cli_table_free(t);
}

static void test_table_many_rows(void **state)
{
    ek_cli_table_t *t = ek_cli_table_new(1, (const char *const[]){"N"});
    char buf[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        ek_cli_table_add(t, (const char *const[]){buf});
    }
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_table_render(t, &sb);
    assert_true(strstr(sb.buf, "N\n0\n1\n") == sb.buf);
    assert_non_null(strstr(sb.buf, "\n999\n"));
    ek_strbuf_release(&sb);
    ek_cli_table_free(t);
}

static void test_cells(void **state)
{
    json_object *o = parse("{\"s\":\"text\",\"n\":42,\"b\":true,\"z\":null,\"a\":[\"x\",1,null],"
                           "\"o\":{\"k\":\"v\"},\"ao\":[{\"k\":1}],\"e\":[]}");
    static const char *const cases[][2] = {
        {"s", "text"},         {"n", "42"},
        {"b", "true"},         {"z", ""},
        {"a", "x, 1, "},       {"o", "{\"k\":\"v\"}"},
        {"ao", "[{\"k\":1}]"}, {"e", ""},
        {"missing", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = ek_cli_cell(ek_cli_json_path(o, cases[i][0]));
        assert_string_equal(c, cases[i][1]);
        free(c);
    }
    json_object_put(o);
}

static void test_timestamps(void **state)
{
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1); /* POSIX rule: no tzdata needed */
    tzset();
    json_object *o = parse("{\"a\":\"2026-11-22T07:52:28.123456+00:00\","
                           "\"b\":\"2026-07-01T12:00:00Z\",\"c\":\"2026-11-22\","
                           "\"d\":\"2026-11-22T07:52:28 is not one\"}");
    static const char *const cases[][2] = {
        {"a", "2026-11-22 08:52:28"}, /* CET */
        {"b", "2026-07-01 14:00:00"}, /* CEST */
        {"c", "2026-11-22"},
        {"d", "2026-11-22T07:52:28 is not one"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = ek_cli_cell(ek_cli_json_path(o, cases[i][0]));
        assert_string_equal(c, cases[i][1]);
        free(c);
    }
    json_object_put(o);
}

static void test_json_path(void **state)
{
    json_object *o = parse("{\"token\":{\"project\":{\"id\":\"p1\"}},\"list\":[1]}");
    assert_string_equal(json_object_get_string(ek_cli_json_path(o, "token.project.id")), "p1");
    assert_null(ek_cli_json_path(o, "token.user.id"));
    assert_null(ek_cli_json_path(o, "list.x"));
    assert_null(ek_cli_json_path(o, "token.project.id.more"));
    json_object_put(o);
}

static void test_render_list_and_object(void **state)
{
    json_object *list = parse("[{\"id\":\"a1\",\"name\":\"src\",\"x\":{\"y\":\"deep\"}},"
                              "{\"id\":\"b22\",\"name\":null}]");
    static const ek_cli_col_t cols[] = {{"ID", "id"}, {"NAME", "name"}, {"Y", "x.y"}, {NULL, NULL}};
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_render_list(list, cols, &sb);
    assert_string_equal(sb.buf, "ID   NAME  Y\n"
                                "a1   src   deep\n"
                                "b22\n");
    ek_strbuf_reset(&sb);
    ek_cli_render_list(NULL, cols, &sb); /* no rows: the header alone */
    assert_string_equal(sb.buf, "ID  NAME  Y\n");
    ek_strbuf_reset(&sb);
    ek_cli_render_object(json_object_array_get_idx(list, 0), NULL, &sb);
    assert_string_equal(sb.buf, "FIELD  VALUE\n"
                                "id     a1\n"
                                "name   src\n"
                                "x      {\"y\":\"deep\"}\n");
    ek_strbuf_reset(&sb);
    ek_cli_render_object(json_object_array_get_idx(list, 0),
                         (const char *const[]){"name", "x.y", "nope", NULL}, &sb);
    assert_string_equal(sb.buf, "FIELD  VALUE\n"
                                "name   src\n"
                                "x.y    deep\n"
                                "nope\n");
    ek_strbuf_release(&sb);
    json_object_put(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_aligned),
        cmocka_unit_test(test_table_empty_cells_no_trailing_blanks),
        cmocka_unit_test(test_table_utf8_and_control),
        cmocka_unit_test(test_table_many_rows),
        cmocka_unit_test(test_cells),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_json_path),
        cmocka_unit_test(test_render_list_and_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
