/* test_seal.c - the conductor hands a task's connection info to one worker
 * (conductor/seal.c): what is sealed for worker A opens with A's key and not
 * with B's, the endpoint id binds it, and the conductors' own key pair (from
 * the encryption key) opens what workers return and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/box.h"
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/secret.h"
#include "conductor/seal.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ekman-test-seal.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ek_rmtree(tmpdir);
    return 0;
}

static ek_box_ring_t *worker_ring(const char *name)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s.key", tmpdir, name);
    ek_box_ring_t *r = NULL;
    assert_null(ek_box_ring_load(p, true, &r));
    return r;
}

static void test_endpoint_for_one_worker(void **state)
{
    (void)state;
    unsigned char key[EK_SECRET_KEY_LEN];
    memset(key, 7, sizeof(key));
    const char *ci = "{\"uri\": \"qemu+ssh://root@h/system\", \"private_key\": \"S3CRET\"}";
    char *sealed = ek_secret_seal(key, "ep-1", ci);
    ek_box_ring_t *a = worker_ring("a"), *b = worker_ring("b");

    json_object *ep = json_object_new_object();
    json_object_object_add(ep, "id", json_object_new_string("ep-1"));
    json_object_object_add(ep, "connection_info_sealed", json_object_new_string(sealed));
    assert_null(ek_seal_endpoint_for(key, ek_box_ring_public(a), ep));
    /* the conductors' form is gone from what the worker gets */
    assert_null(json_object_object_get(ep, "connection_info_sealed"));
    const char *box = json_object_get_string(json_object_object_get(ep, "connection_info_box"));
    assert_non_null(box);
    assert_null(strstr(box, "S3CRET"));

    char *plain = NULL;
    assert_null(ek_box_open(a, "ep-1", box, &plain));
    assert_string_equal(plain, ci);
    free(plain);
    /* worker B cannot open what was sealed for A */
    ek_err_t *err = ek_box_open(b, "ep-1", box, &plain);
    assert_non_null(err);
    assert_null(plain);
    ek_err_free(err);
    /* nor can A use it as another endpoint's */
    err = ek_box_open(a, "ep-2", box, &plain);
    assert_non_null(err);
    ek_err_free(err);

    /* sealed with another encryption key: refused at the conductor */
    unsigned char other[EK_SECRET_KEY_LEN];
    memset(other, 8, sizeof(other));
    json_object *ep2 = json_object_new_object();
    json_object_object_add(ep2, "id", json_object_new_string("ep-1"));
    json_object_object_add(ep2, "connection_info_sealed", json_object_new_string(sealed));
    err = ek_seal_endpoint_for(other, ek_box_ring_public(a), ep2);
    assert_non_null(err);
    ek_err_free(err);

    json_object_put(ep);
    json_object_put(ep2);
    free(sealed);
    ek_box_ring_free(a);
    ek_box_ring_free(b);
}

static void test_conductor_ring(void **state)
{
    (void)state;
    unsigned char key[EK_SECRET_KEY_LEN];
    memset(key, 9, sizeof(key));
    const ek_box_ring_t *c = ek_seal_conductor_ring(key);
    assert_non_null(c);
    assert_ptr_equal(c, ek_seal_conductor_ring(key)); /* made once */
    /* a worker seals a result's secrets for it; the conductor opens them */
    json_object *result = json_tokener_parse("{\"minion\": {\"private_key\": \"K\"}}");
    assert_null(ek_box_json_seal(result, ek_box_ring_public(c), EK_BOX_TASK_INFO_AAD));
    assert_null(strstr(json_object_to_json_string(result), "\"K\""));
    ek_box_ring_t *w = worker_ring("w");
    ek_err_t *err = ek_box_json_open(result, w, EK_BOX_TASK_INFO_AAD);
    assert_non_null(err); /* a worker cannot */
    ek_err_free(err);
    assert_null(ek_box_json_open(result, c, EK_BOX_TASK_INFO_AAD));
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_object_get(result, "minion"), "private_key")),
                        "K");
    json_object_put(result);
    ek_box_ring_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_for_one_worker),
        cmocka_unit_test(test_conductor_ring),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
