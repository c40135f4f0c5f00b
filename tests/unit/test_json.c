/* test_json.c - strict parsing and field readers that name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    assert_null(ek_json_parse(text, strlen(text), &o));
    return o;
}

static void expect_parse_error(const char *text, const char *fragment)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    assert_non_null(err);
    assert_null(o);
    if (!strstr(err->message, fragment)) {
        print_error("'%s': '%s' lacks '%s'\n", text, err->message, fragment);
        fail();
    }
    assert_int_equal(err->code, EK_E_INVALID);
    ek_err_free(err);
}

static void test_parse(void **state)
{
    json_object *o = parse(" {\"a\": [1, 2]}\n");
    assert_true(json_object_is_type(o, json_type_object));
    json_object_put(o);
    expect_parse_error("{\"a\": ", "incomplete");
    expect_parse_error("", "incomplete");
    expect_parse_error("{\"a\": 1} trailing", "unexpected data at offset 9");
    expect_parse_error("{\"a\" 1}", "malformed JSON at offset");
}

static void test_fields(void **state)
{
    json_object *o = parse("{\"transfer\": {\"name\": \"t1\", \"count\": 3, \"flag\": true, "
                           "\"empty\": \"\", \"list\": [], \"nothing\": null, \"num\": \"3\"}}");
    json_object *t = NULL, *arr = NULL;
    const char *s = NULL;
    bool b = false;
    int64_t i = 0;
    ek_err_t *err;

    assert_null(ek_json_req_object(o, "", "transfer", &t));
    assert_null(ek_json_req_string(t, "transfer", "name", &s));
    assert_string_equal(s, "t1");
    assert_null(ek_json_opt_string(t, "transfer", "missing", "dflt", &s));
    assert_string_equal(s, "dflt");
    assert_null(ek_json_opt_string(t, "transfer", "nothing", "dflt", &s));
    assert_string_equal(s, "dflt");
    assert_null(ek_json_opt_bool(t, "transfer", "flag", false, &b));
    assert_true(b);
    assert_null(ek_json_opt_int(t, "transfer", "count", 0, &i));
    assert_int_equal(i, 3);
    assert_null(ek_json_req_array(t, "transfer", "list", &arr));
    assert_null(ek_json_opt_array(t, "transfer", "nope", &arr));
    assert_null(arr);

    err = ek_json_req_string(t, "transfer", "origin_endpoint_id", &s);
    assert_string_equal(err->message, "transfer.origin_endpoint_id is required");
    ek_err_free(err);
    err = ek_json_req_string(t, "transfer", "empty", &s);
    assert_string_equal(err->message, "transfer.empty must not be empty");
    ek_err_free(err);
    err = ek_json_opt_int(t, "transfer", "num", 0, &i);
    assert_string_equal(err->message, "transfer.num must be an integer, not string");
    ek_err_free(err);
    err = ek_json_opt_bool(t, "transfer", "count", false, &b);
    assert_string_equal(err->message, "transfer.count must be a boolean, not integer");
    ek_err_free(err);
    err = ek_json_req_object(o, NULL, "execution", &t);
    assert_string_equal(err->message, "execution is required");
    assert_int_equal(err->code, EK_E_INVALID);
    ek_err_free(err);
    json_object_put(o);
}

static void test_dump(void **state)
{
    json_object *o = parse("{\"path\":\"/a/b\",\"n\":1}");
    char *s = ek_json_dump(o, false);
    assert_string_equal(s, "{\"path\":\"/a/b\",\"n\":1}");
    free(s);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
