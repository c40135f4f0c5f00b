/* test_api_input.c - what the conductor's edge refuses before a handler or
 * PostgreSQL sees it: invalid UTF-8, NUL characters (also \u0000 that json-c
 * would cut), over-long names and notes, a non-JSON Content-Type, and
 * connection info that only a worker would have refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/base64.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/utf8.h"
#include "conductor/conninfo.h"
#include "conductor/input.h"

static void test_utf8(void **state)
{
    (void)state;
    assert_true(ek_utf8_is_valid("", 0));
    assert_true(ek_utf8_is_valid("plain", 5));
    assert_true(ek_utf8_is_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(ek_utf8_is_valid("\xff", 1));
    assert_false(ek_utf8_is_valid("a\0b", 3));
    assert_false(ek_utf8_is_valid("\xc0\x80", 2));         /* overlong NUL */
    assert_false(ek_utf8_is_valid("\xe0\x80\xaf", 3));     /* overlong '/' */
    assert_false(ek_utf8_is_valid("\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(ek_utf8_is_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(ek_utf8_is_valid("\xc3", 1));             /* truncated */
    assert_false(ek_utf8_is_valid("\xe2\x82", 2));
    assert_false(ek_utf8_is_valid("\x80", 1));
}

/* Parses text and runs the edge check; returns the message or NULL. */
static char *check(const char *text, size_t len)
{
    json_object *doc;
    ek_err_t *err = ek_json_parse(text, len, &doc);
    assert_null(err);
    err = ek_input_check_body(doc, text, len);
    json_object_put(doc);
    if (!err)
        return NULL;
    assert_int_equal(err->code, EK_E_INVALID);
    char *msg = ek_xstrdup(err->message);
    ek_err_free(err);
    return msg;
}

static void expect_refused(const char *text, size_t len, const char *needle)
{
    char *msg = check(text, len);
    if (!msg || !strstr(msg, needle)) {
        print_error("body %s\n  got  %s\n  want a message with %s\n", text, msg ? msg : "(none)",
                    needle);
        free(msg);
        fail();
    }
    free(msg);
}

static void test_body_encoding(void **state)
{
    (void)state;
    const char ok[] = "{\"endpoint\":{\"name\":\"h\\u00e9 \xe2\x82\xac\",\"n\":[\"a\\\\u0000\"]}}";
    assert_null(check(ok, strlen(ok)));
    const char bad[] = "{\"endpoint\":{\"name\":\"x\xffy\"}}";
    expect_refused(bad, strlen(bad), "\"endpoint.name\": contains invalid UTF-8");
    const char nul[] = "{\"endpoint\":{\"name\":\"ab\\u0000cd\"}}";
    expect_refused(nul, strlen(nul), "\"endpoint.name\": contains a NUL");
    const char deep[] = "{\"transfer\":{\"instances\":[\"a\",\"b\\u0000\"]}}";
    expect_refused(deep, strlen(deep), "\"transfer.instances[1]\": contains a NUL");
    const char raw_bad[] = "{\"auth\":{\"username\":\"\xed\xa0\x80\"}}"; /* a raw surrogate */
    expect_refused(raw_bad, strlen(raw_bad), "\"auth.username\": contains invalid UTF-8");
    const char key_nul[] = "{\"auth\":{\"user\\u0000name\":\"x\"}}";
    expect_refused(key_nul, strlen(key_nul), "NUL");
    const char key_bad[] = "{\"auth\":{\"us\xfe\":\"x\"}}";
    expect_refused(key_bad, strlen(key_bad), "member name contains invalid UTF-8");
}

static void test_body_lengths(void **state)
{
    (void)state;
    char *name = ek_xmalloc(EK_INPUT_MAX_NAME + 2);
    memset(name, 'n', EK_INPUT_MAX_NAME + 1);
    name[EK_INPUT_MAX_NAME + 1] = '\0';
    char *doc = ek_xasprintf("{\"endpoint\":{\"name\":\"%s\"}}", name);
    expect_refused(doc, strlen(doc), "\"endpoint.name\": is longer than 255 bytes");
    free(doc);
    name[EK_INPUT_MAX_NAME] = '\0';
    doc = ek_xasprintf("{\"endpoint\":{\"name\":\"%s\"}}", name);
    assert_null(check(doc, strlen(doc)));
    free(doc);
    free(name);
    char *notes = ek_xmalloc(EK_INPUT_MAX_TEXT + 2);
    memset(notes, 'x', EK_INPUT_MAX_TEXT + 1);
    notes[EK_INPUT_MAX_TEXT + 1] = '\0';
    doc = ek_xasprintf("{\"transfer\":{\"notes\":\"%s\"}}", notes);
    expect_refused(doc, strlen(doc), "\"transfer.notes\": is longer than 4096 bytes");
    free(doc);
    free(notes);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(ek_input_content_type_ok(NULL));
    assert_true(ek_input_content_type_ok("application/json"));
    assert_true(ek_input_content_type_ok("Application/JSON; charset=utf-8"));
    assert_false(ek_input_content_type_ok("text/plain"));
    assert_false(ek_input_content_type_ok("application/jsonx"));
    assert_false(ek_input_content_type_ok("application/x-www-form-urlencoded"));
}

static ek_err_t *conninfo(const char *text)
{
    json_object *doc;
    ek_err_t *err = ek_json_parse(text, strlen(text), &doc);
    assert_null(err);
    err = ek_conninfo_check(doc, "endpoint.connection_info");
    json_object_put(doc);
    return err;
}

static void test_conninfo(void **state)
{
    (void)state;
    const char key[] = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                       "-----END OPENSSH PRIVATE KEY-----\n";
    char *b64 = ek_base64_encode(key, strlen(key));
    char *doc = ek_xasprintf("{\"host\":\"h\",\"username\":\"u\",\"private_key\":\"%s\"}", b64);
    assert_null(conninfo(doc));
    free(doc);
    free(b64);

    ek_err_t *err = conninfo("{\"private_key\":\"not base64 at all!\"}");
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_INVALID);
    assert_non_null(strstr(err->message, "\"endpoint.connection_info.private_key\": is not "
                                         "valid base64"));
    ek_err_free(err);

    b64 = ek_base64_encode("just some text that is long enough to pass", 42);
    doc = ek_xasprintf("{\"private_key\":\"%s\"}", b64);
    err = conninfo(doc);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "does not decode to an SSH private key"));
    ek_err_free(err);
    free(doc);
    free(b64);

    assert_null(conninfo("{\"url\":\"https://engine.example/ovirt-engine/api\"}"));
    err = conninfo("{\"url\":\"file:///etc/passwd\"}");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "\"endpoint.connection_info.url\""));
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),         cmocka_unit_test(test_body_encoding),
        cmocka_unit_test(test_body_lengths), cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_conninfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
