/* test_redact.c - secrets never reach a log line or a redacted document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/strbuf.h"

static void expect_redacted(const char *in, const char *out)
{
    char *r = ek_redact_text(in);
    if (strcmp(r, out) != 0) {
        print_error("redact(\"%s\")\n  got  \"%s\"\n  want \"%s\"\n", in, r, out);
        free(r);
        fail();
    }
    free(r);
}

static void test_secret_keys(void **state)
{
    const char *secret[] = {"password",      "Password",
                            "db_password",   "passwd",
                            "token",         "X-Auth-Token",
                            "private_key",   "ssh_private_key",
                            "api_key",       "encryption_key",
                            "Authorization", "client_secret",
                            "key",           "default_migr_template_password_map",
                            "passphrase",    "ssh_key"};
    const char *plain[] = {"username", "url",  "host",    "ssh_key_path",    "public_key",
                           "keyboard", "name", "disk_id", "allow_untrusted", "monkey_business"};
    for (size_t i = 0; i < sizeof(secret) / sizeof(*secret); i++)
        if (!ek_redact_is_secret_key(secret[i])) {
            print_error("'%s' should be secret\n", secret[i]);
            fail();
        }
    for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++)
        if (ek_redact_is_secret_key(plain[i])) {
            print_error("'%s' should not be secret\n", plain[i]);
            fail();
        }
}

static void test_patterns(void **state)
{
    expect_redacted("nothing to hide here", "nothing to hide here");
    expect_redacted("db=postgresql://ekman:s3cr3t@127.0.0.1:5432/ekman ok",
                    "db=postgresql://ekman:***@127.0.0.1:5432/ekman ok");
    expect_redacted("amqp://guest@localhost:5672/ no password",
                    "amqp://guest@localhost:5672/ no password");
    expect_redacted("https://example.com/a:b@c", "https://example.com/a:b@c");
    expect_redacted("login password=hunter22 user=bob", "login password=*** user=bob");
    expect_redacted("{\"username\": \"admin\", \"password\": \"SuperS3kre7\"}",
                    "{\"username\": \"admin\", \"password\": \"***\"}");
    expect_redacted("X-Auth-Token: abcdef0123", "X-Auth-Token: ***");
    expect_redacted("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***");
    expect_redacted("token='abc def'", "token='***'");
    expect_redacted("password=", "password=");
    expect_redacted("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH "
                    "PRIVATE KEY-----\ntail",
                    "-----BEGIN OPENSSH PRIVATE KEY-----***\ntail");
    expect_redacted("cut: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg",
                    "cut: -----BEGIN PRIVATE KEY-----***");
    expect_redacted("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
}

static void test_registered(void **state)
{
    ek_redact_register("abc"); /* too short: ignored */
    ek_redact_register("Zq9-unique-secret");
    ek_redact_register("Zq9-unique-secret");
    expect_redacted("abc Zq9-unique-secret and Zq9-unique-secret again", "abc *** and *** again");
    ek_redact_reset();
    expect_redacted("Zq9-unique-secret", "Zq9-unique-secret");
}

static void test_json(void **state)
{
    json_object *doc = NULL;
    const char *text = "{\"name\":\"olvm\",\"connection_info\":{\"url\":\"https://h/api\","
                       "\"username\":\"admin\",\"password\":\"SuperS3kre7\","
                       "\"allow_untrusted\":true},\"list\":[{\"token\":\"t0k3n\"}],"
                       "\"password_map\":{\"linux\":\"Passw0rd\"},\"private_key\":null,"
                       "\"note\":\"amqp://u:pw123456@h/\"}";
    assert_null(ek_json_parse(text, strlen(text), &doc));
    json_object *red = ek_redact_json(doc);
    char *s = ek_json_dump(red, false);
    assert_null(strstr(s, "SuperS3kre7"));
    assert_null(strstr(s, "t0k3n"));
    assert_null(strstr(s, "Passw0rd"));
    assert_null(strstr(s, "pw123456"));
    assert_non_null(strstr(s, "\"username\":\"admin\""));
    assert_non_null(strstr(s, "\"allow_untrusted\":true"));
    assert_non_null(strstr(s, "\"password_map\":{\"linux\":\"***\"}"));
    assert_non_null(strstr(s, "\"private_key\":null"));
    free(s);
    json_object_put(red);
    json_object_put(doc);
}

/* Whatever a caller passes to the logger, the file it writes holds no secret. */
static void test_log_lines(void **state)
{
    char path[] = "/tmp/ekman-test-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ek_log_init("/usr/bin/test-redact");
    assert_null(ek_log_set_file(path));
    ek_redact_register("registered-Secret-1");
    ek_log_kv(EK_LOG_INFO, "endpoint created", "name", "olvm 1", "password", "kv-Secret-2", "url",
              "https://admin:url-Secret-3@engine/api", NULL);
    ek_info("connecting with registered-Secret-1 and token=fmt-Secret-4");
    ek_log_context_set("task_id", "T1");
    ek_log_context_set("task_id", "T2");
    ek_log_context_set("api_key", "ctx-Secret-5");
    ek_warn("with context");
    ek_log_context_set("api_key", NULL);
    ek_debug("below the level: not written");
    ek_log_set_format(EK_LOG_JSON);
    ek_log_kv(EK_LOG_ERROR, "json \"line\"", "private_key", "-----BEGIN PRIVATE KEY-----\nAAA",
              NULL);
    ek_log_set_format(EK_LOG_TEXT);
    ek_log_shutdown();

    FILE *f = fopen(path, "r");
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    unlink(path);
    assert_null(strstr(sb.buf, "Secret"));
    assert_null(strstr(sb.buf, "BEGIN PRIVATE KEY-----\nAAA"));
    assert_null(strstr(sb.buf, "below the level"));
    assert_non_null(strstr(sb.buf, "INFO test-redact["));
    assert_non_null(strstr(sb.buf, "endpoint created name=\"olvm 1\" password=*** "));
    assert_non_null(strstr(sb.buf, "with context task_id=T2 api_key=***"));
    assert_non_null(strstr(sb.buf, "\"level\":\"ERROR\""));
    assert_non_null(strstr(sb.buf, "\"msg\":\"json \\\"line\\\"\""));
    /* one record per line: 4 lines */
    int lines = 0;
    for (size_t i = 0; i < sb.len; i++)
        lines += sb.buf[i] == '\n';
    assert_int_equal(lines, 4);
    ek_strbuf_release(&sb);
    ek_redact_reset();
}

static void test_log_level_parse(void **state)
{
    ek_log_level_t l;
    assert_null(ek_log_level_parse("WARNING", &l));
    assert_int_equal(l, EK_LOG_WARNING);
    assert_null(ek_log_level_parse("warn", &l));
    ek_err_t *err = ek_log_level_parse("verbose", &l);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "verbose"));
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_keys), cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_registered),  cmocka_unit_test(test_json),
        cmocka_unit_test(test_log_lines),   cmocka_unit_test(test_log_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
