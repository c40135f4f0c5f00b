/* test_messages.c - the message schemas (proto/schemas/) against the C code
 * that reads and writes the messages: what the readers accept validates, and
 * what they reject names the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/jsonschema.h"
#include "common/strbuf.h"
#include "proto/envelope.h"
#include "proto/messages.h"

static json_object *load_schema(const char *type)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.json", EK_SCHEMAS, type);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("schema %s is missing", path);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    json_object *schema = NULL;
    ek_err_t *err = ek_json_parse(sb.buf, sb.len, &schema);
    if (err)
        fail_msg("schema %s: %s", path, err->message);
    ek_strbuf_release(&sb);
    return schema;
}

#define T   "11111111-1111-4111-8111-111111111111"
#define A   "22222222-2222-4222-8222-222222222222"
#define IDS "\"task_id\":\"" T "\",\"attempt_id\":\"" A "\""

static json_object *body(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    if (err)
        fail_msg("bad test body %s: %s", text, err->message);
    return o;
}

static const struct {
    const char *type;
    const char *good;
    const char *bad;       /* a required field missing or of the wrong type */
    const char *bad_field; /* named in the reader's error */
} reports[] = {
    {EK_MSG_TASK_CLAIM, "{" IDS ",\"host\":\"w1\",\"process_id\":42}", "{" IDS "}", "body.host"},
    {EK_MSG_TASK_COMPLETED, "{" IDS ",\"result\":{\"export_info\":{}}}", "{" IDS ",\"result\":[]}",
     "body.result"},
    {EK_MSG_TASK_ERROR, "{" IDS ",\"message\":\"disk full\"}", "{" IDS "}", "body.message"},
    {EK_MSG_TASK_CANCELED, "{" IDS "}", "{\"task_id\":\"" T "\"}", "body.attempt_id"},
    {EK_MSG_TASK_EVENT, "{" IDS ",\"message\":\"hi\",\"level\":\"WARNING\"}",
     "{" IDS ",\"message\":\"hi\",\"level\":7}", "body.level"},
    {EK_MSG_TASK_PROGRESS, "{" IDS ",\"index\":0,\"current_step\":5,\"total_steps\":10}",
     "{" IDS ",\"current_step\":\"5\"}", "body.current_step"},
    {EK_MSG_TASK_STATE, "{" IDS ",\"state\":{\"acked\":[]}}", "{" IDS "}", "body.state"},
};

static void test_reports_match_schemas(void **state)
{
    for (size_t i = 0; i < sizeof(reports) / sizeof(*reports); i++) {
        json_object *schema = load_schema(reports[i].type);
        json_object *good = body(reports[i].good), *bad = body(reports[i].bad);
        ek_err_t *err = ek_jsonschema_validate(schema, good, "body");
        if (err)
            fail_msg("%s: good body fails its schema: %s", reports[i].type, err->message);
        err = ek_jsonschema_validate(schema, bad, "body");
        if (!err)
            fail_msg("%s: bad body passes its schema", reports[i].type);
        ek_err_free(err);

        ek_envelope_t *env = ek_envelope_new(reports[i].type, good);
        ek_task_report_t r;
        err = ek_task_report_read(env, &r);
        if (err)
            fail_msg("%s: reader refuses a good body: %s", reports[i].type, err->message);
        assert_string_equal(r.task_id, T);
        ek_envelope_free(env);

        env = ek_envelope_new(reports[i].type, bad);
        err = ek_task_report_read(env, &r);
        if (!err || !strstr(err->message, reports[i].bad_field))
            fail_msg("%s: reader should name %s, said %s", reports[i].type, reports[i].bad_field,
                     err ? err->message : "nothing");
        assert_int_equal(err->code, EK_E_PROTOCOL);
        ek_err_free(err);
        ek_envelope_free(env);
        json_object_put(schema);
    }
}

static void test_envelope_schema(void **state)
{
    json_object *schema = load_schema("envelope");
    ek_envelope_t *env = ek_envelope_new(EK_MSG_TASK_CANCEL, NULL);
    char *wire = ek_envelope_encode(env);
    json_object *doc = NULL;
    assert_null(ek_json_parse(wire, strlen(wire), &doc));
    ek_err_t *err = ek_jsonschema_validate(schema, doc, "message");
    if (err)
        fail_msg("encoded envelope fails its schema: %s", err->message);
    json_object_put(doc);
    free(wire);
    ek_envelope_free(env);
    json_object_put(schema);
}

static void test_every_type_has_a_schema(void **state)
{
    const char *types[] = {EK_MSG_TASK_DISPATCH,
                           EK_MSG_TASK_CANCEL,
                           EK_MSG_ENDPOINT_QUERY,
                           EK_MSG_REPLY,
                           EK_MSG_SERVICE_HEARTBEAT,
                           EK_MSG_SERVICE_STOPPING,
                           NULL};
    for (const char *const *t = types; *t; t++)
        json_object_put(load_schema(*t));
    for (const char *const *t = ek_conductor_message_types; *t; t++)
        json_object_put(load_schema(*t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reports_match_schemas),
        cmocka_unit_test(test_envelope_schema),
        cmocka_unit_test(test_every_type_has_a_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
