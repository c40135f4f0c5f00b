/* test_amqp_exec_target.c - an "exec" writer target that arrives in a task
 * message (worker/transfer/target.c): the worker runs only its own
 * ekman-writer with execv; a "command" in the message is refused and never
 * run, a bad allow_path is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/mem.h"
#include "worker/transfer/target.h"

static char marker[64];

static ek_err_t *open_doc(const char *doc, ek_writer_target_t **t)
{
    json_object *info = json_tokener_parse(doc);
    assert_non_null(info);
    ek_err_t *err = ek_writer_target_open(info, "/tmp", t);
    json_object_put(info);
    return err;
}

static void test_command_in_message_never_runs(void **state)
{
    (void)state;
    snprintf(marker, sizeof(marker), "/tmp/ek-pwned-%d", (int)getpid());
    unlink(marker);
    char doc[512];
    snprintf(doc, sizeof(doc),
             "{\"kind\": \"exec\", \"command\": \"touch %s\", \"allow_path\": \"/tmp\"}", marker);
    ek_writer_target_t *t = NULL;
    ek_err_t *err = open_doc(doc, &t);
    assert_non_null(err);
    assert_null(t);
    assert_non_null(strstr(err->message, "command is not accepted"));
    ek_err_free(err);
    /* the pre-fix behaviour: {"kind":"exec","command":...} alone */
    snprintf(doc, sizeof(doc), "{\"kind\": \"exec\", \"command\": \"touch %s\"}", marker);
    err = open_doc(doc, &t);
    assert_non_null(err);
    ek_err_free(err);
    assert_int_equal(access(marker, F_OK), -1);
}

static void test_exec_runs_the_workers_writer(void **state)
{
    (void)state;
    /* "; touch" in the directory name stays one argv element */
    snprintf(marker, sizeof(marker), "/tmp/ek-pwned2-%d", (int)getpid());
    unlink(marker);
    setenv("EKMAN_WRITER", "/bin/true", 1);
    char doc[512];
    snprintf(doc, sizeof(doc), "{\"kind\": \"exec\", \"allow_path\": \"/tmp/x; touch %s\"}",
             marker);
    ek_writer_target_t *t = NULL;
    ek_err_t *err = open_doc(doc, &t);
    assert_null(err);
    ek_stream_t *s = NULL;
    err = ek_writer_target_connect_fn(t)(ek_writer_target_connect_arg(t), &s);
    assert_null(err);
    ek_stream_free(s); /* waits for the child */
    assert_int_equal(access(marker, F_OK), -1);
    assert_non_null(strstr(ek_writer_target_describe(t), "/bin/true"));
    /* an exec target takes no command of its own either */
    err = ek_writer_target_set_command(t, "touch /tmp/x");
    assert_non_null(err);
    ek_err_free(err);
    ek_writer_target_free(t);
    unsetenv("EKMAN_WRITER");
}

static void test_allow_path_checked(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"kind\": \"exec\"}",
        "{\"kind\": \"exec\", \"allow_path\": \"relative/dir\"}",
        "{\"kind\": \"exec\", \"allow_path\": \"/srv/a/../../etc\"}",
        "{\"kind\": \"exec\", \"allow_path\": \"/srv/./a\"}",
        "{\"kind\": \"exec\", \"allow_path\": \"/srv/a\\nb\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ek_writer_target_t *t = NULL;
        ek_err_t *err = open_doc(bad[i], &t);
        if (!err)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(err->message, "allow_path"));
        ek_err_free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_in_message_never_runs),
        cmocka_unit_test(test_exec_runs_the_workers_writer),
        cmocka_unit_test(test_allow_path_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
