/* test_amqp_topology.c - broker URLs (amqps with cacertfile), the exchange
 * each queue name is reached through, and which reply_to names are honoured
 * (common/amqp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/amqp.h"
#include "common/mem.h"

static void test_url_amqps_cacertfile(void **state)
{
    (void)state;
    char url[] = "amqps://ekman-worker:pw@localhost:5671/ekman?cacertfile=/etc/ekman/ca%2Bbus.pem";
    ek_amqp_url_t u;
    ek_err_t *err = ek_amqp_url_parse(url, &u);
    assert_null(err);
    assert_true(u.info.ssl);
    assert_string_equal(u.info.host, "localhost");
    assert_int_equal(u.info.port, 5671);
    assert_string_equal(u.info.vhost, "ekman");
    assert_string_equal(u.info.user, "ekman-worker");
    assert_string_equal(u.cacertfile, "/etc/ekman/ca+bus.pem");
}

static void test_url_plain_and_bad(void **state)
{
    (void)state;
    char plain[] = "amqp://u:p@h:5672/v";
    ek_amqp_url_t u;
    assert_null(ek_amqp_url_parse(plain, &u));
    assert_false(u.info.ssl);
    assert_null(u.cacertfile);
    static const char *const bad[][2] = {
        {"amqp://u:p@h/v?cacertfile=/ca.pem", "amqps:// URLs only"},
        {"amqps://u:p@h/v?verify=verify_none", "'verify' is not supported"},
        {"amqps://u:p@h/v?cacertfile=", "'cacertfile' is not supported"},
        {"http://h/", "not an AMQP URL"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *copy = ek_xstrdup(bad[i][0]);
        ek_err_t *err = ek_amqp_url_parse(copy, &u);
        assert_non_null(err);
        if (!strstr(err->message, bad[i][1]))
            fail_msg("%s: '%s' lacks '%s'", bad[i][0], err->message, bad[i][1]);
        ek_err_free(err);
        free(copy);
    }
}

static void test_route(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"ekman.conductor", "x.ekman.conductor"},
        {"ekman.worker", "x.ekman.worker"},
        {"ekman.worker.host.example.com", "x.ekman.worker"},
        {"ekman.scheduler", "x.ekman.scheduler"},
        {"ekman.reply.0f6e2c1a-aaaa-bbbb-cccc-1234567890ab", "x.ekman.reply"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *x = NULL;
        assert_null(ek_amqp_route(ok[i][0], &x));
        assert_string_equal(x, ok[i][1]);
        free(x);
    }
    /* the default exchange (any queue) and direct reply-to are not Ekman's */
    static const char *const bad[] = {"amq.rabbitmq.reply-to.g2dkAA",
                                      "",
                                      "ekman",
                                      "ekman.",
                                      "ekman.Worker",
                                      "ekman.worker.",
                                      "other.queue",
                                      "ekman.1x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *x = NULL;
        ek_err_t *err = ek_amqp_route(bad[i], &x);
        if (!err)
            fail_msg("'%s' was routed to %s", bad[i], x);
        assert_null(x);
        ek_err_free(err);
    }
}

static void test_reply_queue_names(void **state)
{
    (void)state;
    assert_true(ek_amqp_reply_queue_valid("ekman.reply.0f6e2c1a-aaaa-bbbb-cccc-1234567890ab"));
    assert_false(ek_amqp_reply_queue_valid("ekman.reply."));
    assert_false(ek_amqp_reply_queue_valid("ekman.worker.victim"));
    assert_false(ek_amqp_reply_queue_valid("ekman.conductor"));
    assert_false(ek_amqp_reply_queue_valid("amq.rabbitmq.reply-to.abc"));
    assert_false(ek_amqp_reply_queue_valid("ekman.reply.x.ekman.worker"));
}

/* Who may send what: the broker user of a role's URL (RabbitMQ validates a
 * message's user_id against the publisher's login). */
static void test_sender_allowed(void **state)
{
    (void)state;
    ek_config_t *cfg = ek_config_new();
    assert_null(ek_config_load_string(
        cfg,
        "[messaging]\n"
        "transport_url = amqps://ekman:p0@localhost:5671/ekman\n"
        "worker_transport_url = amqps://ekman-worker:p1@localhost:5671/ekman\n"
        "conductor_transport_url = amqps://ekman-conductor:p2@localhost:5671/ekman\n",
        "test"));
    assert_true(ek_amqp_sender_allowed(cfg, "worker", "ekman-worker"));
    assert_false(ek_amqp_sender_allowed(cfg, "worker", "ekman-conductor"));
    assert_false(ek_amqp_sender_allowed(cfg, "worker", "ekman")); /* the tools' user */
    assert_false(ek_amqp_sender_allowed(cfg, "worker", NULL));    /* no user_id at all */
    assert_false(ek_amqp_sender_allowed(cfg, "worker", ""));
    assert_true(ek_amqp_sender_allowed(cfg, "conductor", "ekman-conductor"));
    /* no scheduler URL: the shared transport_url's user */
    assert_true(ek_amqp_sender_allowed(cfg, "scheduler", "ekman"));
    assert_false(ek_amqp_sender_allowed(cfg, "scheduler", "ekman-worker"));
    ek_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_amqps_cacertfile),
        cmocka_unit_test(test_url_plain_and_bad),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_reply_queue_names),
        cmocka_unit_test(test_sender_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
