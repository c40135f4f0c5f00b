/* test_box.c - sealing for one worker (common/box.c): only the key it was
 * sealed for opens a box; rotation keeps the previous key for values in
 * flight; associated data binds a value to its place; tampering and bad
 * keys are refused with clear errors; key files must be private. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/box.h"
#include "common/fsutil.h"
#include "common/mem.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ekman-test-box.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ek_rmtree(tmpdir);
    return 0;
}

static char *path_of(const char *name)
{
    return ek_xasprintf("%s/%s", tmpdir, name);
}

static void test_seal_open(void **state)
{
    (void)state;
    _cleanup_free_ char *pa = path_of("a.key"), *pb = path_of("b.key");
    ek_box_ring_t *a = NULL, *b = NULL;
    assert_null(ek_box_ring_load(pa, true, &a));
    assert_null(ek_box_ring_load(pb, true, &b));
    struct stat st;
    assert_int_equal(stat(pa, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_not_equal(ek_box_ring_kid(a), ek_box_ring_kid(b));
    assert_int_equal(strlen(ek_box_ring_kid(a)), EK_BOX_KID_LEN);

    char *sealed = NULL, *plain = NULL;
    const char *secret = "{\"password\": \"hunter2\"}";
    assert_null(ek_box_seal(ek_box_ring_public(a), "endpoint-1", secret, &sealed));
    assert_true(ek_box_is_sealed(sealed));
    assert_null(strstr(sealed, "hunter2"));
    assert_non_null(strstr(sealed, ek_box_ring_kid(a)));
    assert_null(ek_box_open(a, "endpoint-1", sealed, &plain));
    assert_string_equal(plain, secret);
    free(plain);

    /* another worker's key does not open it, and says why */
    ek_err_t *err = ek_box_open(b, "endpoint-1", sealed, &plain);
    assert_non_null(err);
    assert_null(plain);
    assert_non_null(strstr(err->message, "meant for another worker"));
    ek_err_free(err);

    /* moved to another place (other associated data): refused */
    err = ek_box_open(a, "endpoint-2", sealed, &plain);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "does not decrypt"));
    ek_err_free(err);

    /* one character of the ciphertext changed: refused */
    size_t n = strlen(sealed);
    sealed[n - 5] = sealed[n - 5] == 'A' ? 'B' : 'A';
    err = ek_box_open(a, "endpoint-1", sealed, &plain);
    assert_non_null(err);
    ek_err_free(err);
    free(sealed);

    /* reloading reads the same key */
    ek_box_ring_t *a2 = NULL;
    assert_null(ek_box_ring_load(pa, false, &a2));
    assert_string_equal(ek_box_ring_kid(a2), ek_box_ring_kid(a));
    assert_string_equal(ek_box_ring_public(a2), ek_box_ring_public(a));
    ek_box_ring_free(a2);
    ek_box_ring_free(a);
    ek_box_ring_free(b);
}

static void test_rotation(void **state)
{
    (void)state;
    _cleanup_free_ char *p = path_of("r.key");
    ek_box_ring_t *r = NULL;
    assert_null(ek_box_ring_load(p, true, &r));
    char old_kid[EK_BOX_KID_LEN + 1];
    snprintf(old_kid, sizeof(old_kid), "%s", ek_box_ring_kid(r));
    char *before = NULL, *plain = NULL;
    assert_null(ek_box_seal(ek_box_ring_public(r), NULL, "in flight", &before));
    ek_box_ring_free(r);

    char kid[EK_BOX_KID_LEN + 1];
    assert_null(ek_box_rotate(p, kid));
    assert_string_not_equal(kid, old_kid);
    assert_null(ek_box_ring_load(p, false, &r));
    assert_string_equal(ek_box_ring_kid(r), kid);
    /* sealed for the previous key: still opens */
    assert_null(ek_box_open(r, NULL, before, &plain));
    assert_string_equal(plain, "in flight");
    free(plain);
    ek_box_ring_free(r);

    /* a second rotation drops the first key */
    assert_null(ek_box_rotate(p, kid));
    assert_null(ek_box_ring_load(p, false, &r));
    ek_err_t *err = ek_box_open(r, NULL, before, &plain);
    assert_non_null(err);
    assert_non_null(strstr(err->message, old_kid));
    ek_err_free(err);
    ek_box_ring_free(r);
    free(before);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    ek_box_ring_t *r = NULL;
    char *out = NULL;
    /* missing key file without create */
    _cleanup_free_ char *missing = path_of("missing.key");
    ek_err_t *err = ek_box_ring_load(missing, false, &r);
    assert_non_null(err);
    assert_null(r);
    ek_err_free(err);

    /* a key file others can read is refused */
    _cleanup_free_ char *p = path_of("open.key");
    assert_null(ek_box_ring_load(p, true, &r));
    ek_box_ring_free(r);
    r = NULL;
    assert_int_equal(chmod(p, 0644), 0);
    err = ek_box_ring_load(p, false, &r);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "chmod 600"));
    ek_err_free(err);
    assert_int_equal(chmod(p, 0600), 0);
    assert_null(ek_box_ring_load(p, false, &r));

    /* a recipient key of the wrong size, not base64, or of small order */
    err = ek_box_seal("AAAA", NULL, "x", &out);
    assert_non_null(err);
    ek_err_free(err);
    err = ek_box_seal("not base64!", NULL, "x", &out);
    assert_non_null(err);
    ek_err_free(err);
    err = ek_box_seal("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL, "x", &out);
    assert_non_null(err); /* the all-zero point: no shared secret */
    ek_err_free(err);
    assert_null(out);

    /* malformed boxes */
    const char *bad[] = {"v1:abcd", "b1:", "b1:0123456789abcdef", "b1:short:AAAA:v1:AAAA",
                         "b1:0123456789abcdef:AAAA:v1:AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *plain = NULL;
        err = ek_box_open(r, NULL, bad[i], &plain);
        assert_non_null(err);
        assert_null(plain);
        ek_err_free(err);
    }
    ek_box_ring_free(r);
}

static void test_derived(void **state)
{
    (void)state;
    unsigned char k1[EK_SECRET_KEY_LEN] = {1}, k2[EK_SECRET_KEY_LEN] = {2};
    ek_box_ring_t *a = NULL, *a2 = NULL, *b = NULL;
    assert_null(ek_box_ring_derive(k1, "conductor", &a));
    assert_null(ek_box_ring_derive(k1, "conductor", &a2));
    assert_null(ek_box_ring_derive(k2, "conductor", &b));
    /* the same secret gives the same pair; another gives another */
    assert_string_equal(ek_box_ring_public(a), ek_box_ring_public(a2));
    assert_string_not_equal(ek_box_ring_public(a), ek_box_ring_public(b));
    char *sealed = NULL, *plain = NULL;
    assert_null(ek_box_seal(ek_box_ring_public(a), "t", "result", &sealed));
    assert_null(ek_box_open(a2, "t", sealed, &plain));
    assert_string_equal(plain, "result");
    free(plain);
    ek_err_t *err = ek_box_open(b, "t", sealed, &plain);
    assert_non_null(err);
    ek_err_free(err);
    free(sealed);
    ek_box_ring_free(a);
    ek_box_ring_free(a2);
    ek_box_ring_free(b);
}

/* Secrets inside task info: sealed at any depth under secret-named keys,
 * opened back to the same document; other values untouched. */
static void test_json(void **state)
{
    (void)state;
    _cleanup_free_ char *p = path_of("j.key");
    ek_box_ring_t *r = NULL;
    assert_null(ek_box_ring_load(p, true, &r));
    const char *doc =
        "{\"minion\": {\"connection_info\": {\"kind\": \"ssh\", \"host\": \"10.0.0.5\", "
        "\"private_key\": \"S3CRET-KEY\"}}, \"disks\": [{\"id\": \"d1\", "
        "\"password\": \"pw-1\"}], \"count\": 3}";
    json_object *o = json_tokener_parse(doc);
    json_object *want = json_tokener_parse(doc);
    assert_null(ek_box_json_seal(o, ek_box_ring_public(r), "action-1"));
    const char *text = json_object_to_json_string(o);
    assert_null(strstr(text, "S3CRET-KEY"));
    assert_null(strstr(text, "pw-1"));
    assert_non_null(strstr(text, "10.0.0.5"));
    assert_non_null(strstr(text, "\"$box\""));
    /* sealing again leaves sealed values as they are */
    char *once = ek_xstrdup(text);
    assert_null(ek_box_json_seal(o, ek_box_ring_public(r), "action-1"));
    assert_string_equal(json_object_to_json_string(o), once);
    free(once);
    /* the wrong place does not open; the right one gives the document back */
    json_object *copy = NULL;
    assert_int_equal(json_object_deep_copy(o, &copy, NULL), 0);
    ek_err_t *err = ek_box_json_open(copy, r, "action-2");
    assert_non_null(err);
    assert_non_null(strstr(err->message, "private_key"));
    ek_err_free(err);
    json_object_put(copy);
    assert_null(ek_box_json_open(o, r, "action-1"));
    assert_true(json_object_equal(o, want));
    json_object_put(o);
    json_object_put(want);
    ek_box_ring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open),  cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_bad_inputs), cmocka_unit_test(test_derived),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
