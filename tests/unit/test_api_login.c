/* test_api_login.c - the pieces that keep logins from starving the conductor
 * and from being guessed: scrypt at OWASP parameters (older hashes still
 * verify), back-off per key with a bounded table, the bounded hash pool that
 * refuses instead of queueing without end, and API tokens that leave the
 * log-redaction list when they expire. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/backoff.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/secret.h"
#include "conductor/hashpool.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_password_params(void **state)
{
    (void)state;
    char *h = ek_password_hash("correct horse");
    assert_true(strncmp(h, "scrypt$131072$8$1$", 18) == 0);
    assert_true(ek_password_verify("correct horse", h));
    assert_false(ek_password_verify("wrong horse", h));
    free(h);
    /* a hash made with the old parameters still verifies */
    char *old = ek_password_hash_params("old password", 15, 8, 1);
    assert_true(strncmp(old, "scrypt$32768$8$1$", 17) == 0);
    assert_true(ek_password_verify("old password", old));
    assert_false(ek_password_verify("old passworD", old));
    free(old);
    /* a stored string may not ask for absurd work */
    assert_false(ek_password_verify("x", "scrypt$1073741824$8$1$AAAA$AAAA"));
    assert_false(ek_password_verify("x", "scrypt$131071$8$1$AAAA$AAAA"));
}

static void test_dummy_hash_same_cost(void **state)
{
    (void)state;
    const char *dummy = ek_password_dummy_hash();
    assert_true(strncmp(dummy, "scrypt$131072$8$1$", 18) == 0);
    assert_false(ek_password_verify("", dummy));
    char *real = ek_password_hash("a real password");
    double t0 = now_s();
    assert_false(ek_password_verify("guess", real));
    double t_known = now_s() - t0;
    t0 = now_s();
    assert_false(ek_password_verify("guess", dummy));
    double t_unknown = now_s() - t0;
    free(real);
    /* the same work: within a factor of two of each other */
    assert_true(t_unknown > t_known / 2 && t_unknown < t_known * 2);
}

static void test_backoff(void **state)
{
    (void)state;
    ek_backoff_t *b = ek_backoff_new(
        &(ek_backoff_policy_t){.free_failures = 3, .max_wait = 60, .forget_after = 600}, 64);
    int64_t t = 1000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ek_backoff_wait(b, "user:eve", t), 0);
        ek_backoff_fail(b, "user:eve", t);
    }
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 0); /* three are free */
    ek_backoff_fail(b, "user:eve", t);
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 1);
    ek_backoff_fail(b, "user:eve", t);
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 2);
    ek_backoff_fail(b, "user:eve", t);
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 4);
    for (int i = 0; i < 20; i++)
        ek_backoff_fail(b, "user:eve", t);
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 60); /* the ceiling */
    assert_int_equal(ek_backoff_wait(b, "user:eve", t + 30), 30);
    assert_int_equal(ek_backoff_wait(b, "user:bob", t), 0); /* keys are separate */
    ek_backoff_reset(b, "user:eve");
    assert_int_equal(ek_backoff_wait(b, "user:eve", t), 0);
    /* a quiet period forgets the failures */
    for (int i = 0; i < 4; i++)
        ek_backoff_fail(b, "addr:10.0.0.1", t);
    assert_int_equal(ek_backoff_wait(b, "addr:10.0.0.1", t), 1);
    ek_backoff_fail(b, "addr:10.0.0.1", t + 601);
    assert_int_equal(ek_backoff_wait(b, "addr:10.0.0.1", t + 601), 0);
    /* bounded: a flood of keys fits in the table */
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "user:%d", i);
        ek_backoff_fail(b, key, t);
    }
    ek_backoff_free(b);
}

struct slow {
    pthread_mutex_t lock;
    int ran;
};

static void slow_job(void *arg)
{
    struct slow *s = arg;
    usleep(200 * 1000);
    pthread_mutex_lock(&s->lock);
    s->ran++;
    pthread_mutex_unlock(&s->lock);
}

static void test_hashpool_bounds(void **state)
{
    (void)state;
    struct slow s = {PTHREAD_MUTEX_INITIALIZER, 0};
    ek_hashpool_t *pool = ek_hashpool_new(2, 4, 2);
    /* one source gets two places, not more */
    assert_null(ek_hashpool_submit(pool, "10.0.0.1", slow_job, &s));
    assert_null(ek_hashpool_submit(pool, "10.0.0.1", slow_job, &s));
    ek_err_t *err = ek_hashpool_submit(pool, "10.0.0.1", slow_job, &s);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_UNAVAILABLE);
    ek_err_free(err);
    /* another source is still served */
    assert_null(ek_hashpool_submit(pool, "10.0.0.2", slow_job, &s));
    assert_null(ek_hashpool_submit(pool, "10.0.0.3", slow_job, &s));
    /* the pool as a whole is full */
    err = ek_hashpool_submit(pool, "10.0.0.4", slow_job, &s);
    assert_non_null(err);
    ek_err_free(err);
    assert_int_equal(ek_hashpool_pending(pool), 4);
    ek_hashpool_drain(pool);
    assert_int_equal(s.ran, 4);
    assert_int_equal(ek_hashpool_pending(pool), 0);
    err = ek_hashpool_submit(pool, "10.0.0.1", slow_job, &s); /* drained: refused */
    assert_non_null(err);
    ek_err_free(err);
    ek_hashpool_free(pool);
}

static void test_redact_tokens_expire(void **state)
{
    (void)state;
    ek_redact_reset();
    ek_redact_register("config-password-1");
    ek_redact_register_until("token-expired-already", time(NULL) - 1);
    ek_redact_register_until("token-valid-for-an-hour", time(NULL) + 3600);
    char *line = ek_redact_text("a token-expired-already b token-valid-for-an-hour c "
                                "config-password-1");
    assert_string_equal(line, "a token-expired-already b *** c ***");
    free(line);
    assert_int_equal(ek_redact_registered_count(), 2);
    /* bounded: more tokens than the limit keep the list at the limit, and
     * permanent secrets are never the ones dropped */
    char tok[64];
    for (int i = 0; i < EK_REDACT_MAX_EXPIRING + 100; i++) {
        snprintf(tok, sizeof(tok), "token-%06d-abcdef", i);
        ek_redact_register_until(tok, time(NULL) + 3600 + i);
    }
    assert_true(ek_redact_registered_count() <= EK_REDACT_MAX_EXPIRING + 1);
    line = ek_redact_text("config-password-1 token-004195-abcdef");
    assert_string_equal(line, "*** ***");
    free(line);
    ek_redact_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_params),
        cmocka_unit_test(test_dummy_hash_same_cost),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_hashpool_bounds),
        cmocka_unit_test(test_redact_tokens_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
