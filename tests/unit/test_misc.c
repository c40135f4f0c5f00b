/* test_misc.c - UUIDs, base64, errors, the thread pool and the message envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/base64.h"
#include "common/error.h"
#include "common/threadpool.h"
#include "common/uuid.h"
#include "proto/envelope.h"

static void test_uuid(void **state)
{
    char a[EK_UUID_STRLEN + 1], b[EK_UUID_STRLEN + 1];
    ek_uuid_generate(a);
    ek_uuid_generate(b);
    assert_true(ek_uuid_is_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_true(ek_uuid_is_valid("00000000-0000-0000-0000-000000000000"));
    assert_false(ek_uuid_is_valid("00000000-0000-0000-0000-00000000000"));
    assert_false(ek_uuid_is_valid("0000000000000000000000000000000000000"));
    assert_false(ek_uuid_is_valid("g0000000-0000-0000-0000-000000000000"));
    assert_false(ek_uuid_is_valid(NULL));
}

static void test_base64(void **state)
{
    const char *samples[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(*samples); i++) {
        char *enc = ek_base64_encode(samples[i], strlen(samples[i]));
        unsigned char *dec = NULL;
        size_t len = 0;
        assert_null(ek_base64_decode(enc, &dec, &len));
        assert_int_equal(len, strlen(samples[i]));
        assert_memory_equal(dec, samples[i], len);
        free(dec);
        free(enc);
    }
    unsigned char *dec = NULL;
    size_t len = 0;
    /* unpadded, URL-safe, with line breaks */
    assert_null(ek_base64_decode("Zm9v\nYmE", &dec, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(dec, "fooba", 5);
    free(dec);
    assert_null(ek_base64_decode("-_8", &dec, &len));
    assert_int_equal(len, 2);
    assert_int_equal(dec[0], 0xfb);
    assert_int_equal(dec[1], 0xff);
    free(dec);
    ek_err_t *err = ek_base64_decode("Zm9v!", &dec, &len);
    assert_non_null(err);
    ek_err_free(err);
    err = ek_base64_decode("Z", &dec, &len);
    assert_non_null(err);
    ek_err_free(err);
}

static void test_errors(void **state)
{
    ek_err_t *err = ek_err_new(EK_E_NOTFOUND, "pool '%s' not found", "default");
    err = ek_err_prefix(err, "endpoint '%s'", "kvm1");
    assert_string_equal(err->message, "endpoint 'kvm1': pool 'default' not found");
    assert_string_equal(ek_err_code_name(err->code), "not_found");
    ek_err_free(err);
    assert_null(ek_err_prefix(NULL, "x"));
    err = ek_err_errno(2, "could not open \"%s\"", "/x");
    assert_string_equal(err->message, "could not open \"/x\": No such file or directory");
    assert_int_equal(err->sys_errno, 2);
    ek_err_free(err);
}

static atomic_int counter;
static void bump(void *arg)
{
    atomic_fetch_add(&counter, *(int *)arg);
}

static void test_threadpool(void **state)
{
    ek_threadpool_t *pool = ek_threadpool_new(4, 8);
    assert_int_equal(ek_threadpool_size(pool), 4);
    int one = 1;
    for (int i = 0; i < 1000; i++)
        ek_threadpool_submit(pool, bump, &one);
    ek_threadpool_wait(pool);
    assert_int_equal(atomic_load(&counter), 1000);
    for (int i = 0; i < 100; i++)
        ek_threadpool_submit(pool, bump, &one);
    ek_threadpool_free(pool); /* runs what is queued before stopping */
    assert_int_equal(atomic_load(&counter), 1100);
    ek_threadpool_free(NULL);
}

static void test_envelope(void **state)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "task_id", json_object_new_string("t1"));
    ek_envelope_t *env = ek_envelope_new("task.dispatch", body);
    env->project_id = strdup("p1");
    char *wire = ek_envelope_encode(env);
    const char *known[] = {"task.dispatch", NULL};
    ek_envelope_t *back = NULL;
    assert_null(ek_envelope_decode(wire, strlen(wire), known, &back));
    assert_string_equal(back->type, "task.dispatch");
    assert_string_equal(back->id, env->id);
    assert_string_equal(back->project_id, "p1");
    assert_null(back->correlation_id);
    assert_string_equal(json_object_get_string(json_object_object_get(back->body, "task_id")),
                        "t1");
    ek_envelope_free(back);
    free(wire);
    ek_envelope_free(env);

    static const struct {
        const char *wire;
        const char *expect;
    } bad[] = {
        {"not json", "message is not JSON"},
        {"[1]", "must be a JSON object"},
        {"{\"type\":\"task.dispatch\",\"version\":\"1.0\",\"id\":\"x\"}",
         "message.body is required"},
        {"{\"type\":\"task.dispatch\",\"version\":\"2.0\",\"id\":\"x\",\"body\":{}}", "speaks 1.x"},
        {"{\"type\":\"task.dispatch\",\"version\":\"one\",\"id\":\"x\",\"body\":{}}",
         "is not MAJOR.MINOR"},
        {"{\"type\":\"evil\",\"version\":\"1.3\",\"id\":\"x\",\"body\":{}}",
         "unknown message type 'evil'"},
        {"{\"type\":7,\"version\":\"1.0\",\"id\":\"x\",\"body\":{}}",
         "message.type must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ek_err_t *err = ek_envelope_decode(bad[i].wire, strlen(bad[i].wire), known, &back);
        assert_non_null(err);
        assert_null(back);
        if (!strstr(err->message, bad[i].expect)) {
            print_error("case %zu: '%s' lacks '%s'\n", i, err->message, bad[i].expect);
            fail();
        }
        ek_err_free(err);
    }
    /* a newer minor version is accepted */
    const char *minor =
        "{\"type\":\"task.dispatch\",\"version\":\"1.7\",\"id\":\"x\",\"body\":{},\"extra\":1}";
    assert_null(ek_envelope_decode(minor, strlen(minor), known, &back));
    assert_int_equal(back->minor, 7);
    ek_envelope_free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),     cmocka_unit_test(test_base64),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
