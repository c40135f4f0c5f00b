/* test_client_progress.c - the progress of `ekman ... --wait`
 * (client/progress.c): timestamps, ETA, bars, rates, and the lines and view
 * made from an execution document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "client/progress.h"
#include "common/json.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    assert_null(err);
    return o;
}

static void test_parse_time(void **state)
{
    double t;
    assert_true(ek_cli_parse_time("1970-01-01T00:00:10+00:00", &t));
    assert_true(t == 10.0);
    assert_true(ek_cli_parse_time("2026-11-22T07:52:28.250000+00:00", &t));
    assert_true(t == 1795333948.25);
    assert_true(ek_cli_parse_time("2026-11-22T09:52:28.25+02:00", &t));
    assert_true(t == 1795333948.25);
    assert_true(ek_cli_parse_time("2026-11-22T07:52:28Z", &t));
    assert_true(t == 1795333948.0);
    assert_true(ek_cli_parse_time("2026-11-22 02:52:28-0500", &t));
    assert_true(t == 1795333948.0);
    assert_true(ek_cli_parse_time("2026-11-22T07:52:28", &t)); /* no zone: UTC */
    assert_true(t == 1795333948.0);
    assert_false(ek_cli_parse_time(NULL, &t));
    assert_false(ek_cli_parse_time("", &t));
    assert_false(ek_cli_parse_time("yesterday", &t));
    assert_false(ek_cli_parse_time("2026-11-22T07:52:28 trailing", &t));
}

static void test_format_eta(void **state)
{
    static const struct {
        double s;
        const char *want;
    } cases[] = {{-1, "--"},      {0, "0s"},        {44.6, "45s"},    {59, "59s"},
                 {60, "1m00s"},   {185, "3m05s"},   {3599, "59m59s"}, {3600, "1h00m"},
                 {7440, "2h04m"}, {86400, "1d00h"}, {273600, "3d04h"}};
    char b[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ek_cli_format_eta(cases[i].s, b, sizeof(b));
        assert_string_equal(b, cases[i].want);
    }
}

static void test_format_bar(void **state)
{
    char b[64];
    ek_cli_format_bar(0, 10, b, sizeof(b));
    assert_string_equal(b, "[----------]");
    ek_cli_format_bar(0.5, 10, b, sizeof(b));
    assert_string_equal(b, "[#####-----]");
    ek_cli_format_bar(1, 10, b, sizeof(b));
    assert_string_equal(b, "[##########]");
    ek_cli_format_bar(7, 4, b, sizeof(b)); /* clamped */
    assert_string_equal(b, "[####]");
    ek_cli_format_bar(-1, 4, b, sizeof(b));
    assert_string_equal(b, "[----]");
    char small[6];
    ek_cli_format_bar(0.5, 10, small, sizeof(small)); /* cut to the buffer */
    assert_string_equal(small, "[#--]");
}

static void test_rate_and_eta(void **state)
{
    ek_cli_step_t s = {.current = 50 << 20, .total = 100 << 20, .started = 1000, .updated = 1010};
    assert_true(ek_cli_step_rate(&s) == (double)(5 << 20));
    assert_true(ek_cli_step_eta(&s) == 10.0);
    s.current = 0; /* nothing moved yet: unknown */
    assert_true(ek_cli_step_rate(&s) < 0);
    assert_true(ek_cli_step_eta(&s) < 0);
    s.current = s.total; /* done: no ETA left even without a rate */
    s.updated = s.started;
    assert_true(ek_cli_step_rate(&s) < 0);
    assert_true(ek_cli_step_eta(&s) == 0);
    ek_cli_step_t unknown = {.current = 10, .total = 100};
    assert_true(ek_cli_step_rate(&unknown) < 0);
}

static void test_step_lines(void **state)
{
    ek_cli_step_t s = {.instance = "web01",
                       .message = "Replicating disk vda",
                       .current = 3LL << 30,
                       .total = 8LL << 30,
                       .started = 1000,
                       .updated = 1030};
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_step_line(&s, false, &sb);
    assert_string_equal(sb.buf, "web01: Replicating disk vda: 37% (3.0 GiB of 8.0 GiB, "
                                "102.4 MiB/s, ETA 50s)\n");
    ek_strbuf_reset(&sb);
    ek_cli_step_line(&s, true, &sb);
    assert_string_equal(sb.buf, "  web01: Replicating disk vda\n"
                                "    [########----------------]  37%  3.0 GiB of 8.0 GiB  "
                                "102.4 MiB/s  ETA 50s\n");
    ek_strbuf_reset(&sb);
    ek_cli_step_t count = {
        .message = "Converting", .current = 3, .total = 10, .started = 1, .updated = 2};
    ek_cli_step_line(&count, false, &sb); /* small totals are counts, not bytes */
    assert_string_equal(sb.buf, "Converting: 30% (3 of 10, 3.0/s, ETA 2s)\n");
    ek_strbuf_release(&sb);
}

#define EXECUTION_JSON                                                                             \
    "{\"id\":\"e1\",\"status\":\"%s\",\"tasks\":["                                                 \
    "{\"id\":\"t1\",\"instance\":\"web01\",\"task_type\":\"GET_INSTANCE_INFO\",\"status\":"        \
    "\"COMPLETED\",\"host\":\"w1\",\"progress_updates\":[]},"                                      \
    "{\"id\":\"t2\",\"instance\":\"web01\",\"task_type\":\"REPLICATE_DISKS\",\"status\":\"%s\","   \
    "\"host\":\"w1\",\"exception_details\":%s,\"progress_updates\":["                              \
    "{\"index\":0,\"current_step\":%d,\"total_steps\":1048576,\"message\":\"Replicating disk "     \
    "vda\",\"created_at\":\"2026-11-22T07:00:00+00:00\",\"updated_at\":\"2026-11-22T07:00:"        \
    "02+00:00\"}]}]}"

static json_object *execution(const char *st, const char *task_st, const char *details, int current)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), EXECUTION_JSON, st, task_st, details, current);
    return parse(buf);
}

static void test_lines_only_changes(void **state)
{
    json_object *seen = json_object_new_object();
    ek_strbuf_t sb = EK_STRBUF_INIT;
    json_object *e = execution("RUNNING", "RUNNING", "null", 524288);
    ek_cli_progress_lines(e, "execution e1", seen, &sb);
    assert_string_equal(sb.buf, "task GET_INSTANCE_INFO (web01): COMPLETED\n"
                                "task REPLICATE_DISKS (web01): RUNNING\n"
                                "web01: Replicating disk vda: 50% (512.0 KiB of 1.0 MiB, "
                                "256.0 KiB/s, ETA 2s)\n"
                                "execution e1: RUNNING\n");
    ek_strbuf_reset(&sb);
    ek_cli_progress_lines(e, "execution e1", seen, &sb); /* nothing changed: nothing printed */
    assert_string_equal(sb.buf, "");
    json_object_put(e);
    e = execution("COMPLETED", "COMPLETED", "null", 1048576);
    ek_cli_progress_lines(e, "execution e1", seen, &sb);
    assert_string_equal(sb.buf, "task REPLICATE_DISKS (web01): COMPLETED\n"
                                "web01: Replicating disk vda: 100% (1.0 MiB of 1.0 MiB, "
                                "512.0 KiB/s, ETA 0s)\n"
                                "execution e1: COMPLETED\n");
    json_object_put(e);
    json_object_put(seen);
    ek_strbuf_release(&sb);
}

static void test_view_and_errors(void **state)
{
    json_object *e = execution("ERROR", "ERROR", "\"disk vda: read failed\"", 262144);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_progress_view(e, "execution e1", &sb);
    assert_string_equal(sb.buf,
                        "execution e1: ERROR\n"
                        "  web01: Replicating disk vda\n"
                        "    [######------------------]  25%  256.0 KiB of 1.0 MiB  128.0 KiB/s  "
                        "ETA 6s\n"
                        "  STATUS     TASK               INSTANCE  HOST\n"
                        "  COMPLETED  GET_INSTANCE_INFO  web01     w1\n"
                        "  ERROR      REPLICATE_DISKS    web01     w1\n");
    ek_strbuf_reset(&sb);
    ek_cli_progress_errors(e, &sb);
    assert_string_equal(sb.buf, "task REPLICATE_DISKS (web01) ERROR: disk vda: read failed\n");
    json_object_put(e);
    ek_strbuf_reset(&sb);
    ek_cli_progress_view(NULL, "nothing", &sb); /* no document: a status line alone */
    assert_string_equal(sb.buf, "nothing: ?\n");
    ek_strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),      cmocka_unit_test(test_format_eta),
        cmocka_unit_test(test_format_bar),      cmocka_unit_test(test_rate_and_eta),
        cmocka_unit_test(test_step_lines),      cmocka_unit_test(test_lines_only_changes),
        cmocka_unit_test(test_view_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
