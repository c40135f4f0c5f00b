/* test_strbuf.c - the growable string buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/strbuf.h"

static void test_basics(void **state)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    assert_string_equal(sb.buf, "");
    ek_strbuf_setlen(&sb, 0); /* harmless on the shared empty buffer */
    ek_strbuf_adds(&sb, "hello");
    ek_strbuf_addch(&sb, ' ');
    ek_strbuf_addf(&sb, "%s #%d", "world", 42);
    assert_string_equal(sb.buf, "hello world #42");
    assert_int_equal(sb.len, 15);
    assert_true(ek_strbuf_starts_with(&sb, "hello"));
    assert_false(ek_strbuf_starts_with(&sb, "world"));
    ek_strbuf_setlen(&sb, 5);
    assert_string_equal(sb.buf, "hello");
    ek_strbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    ek_strbuf_release(&sb);
}

static void test_growth_and_detach(void **state)
{
    ek_strbuf_t sb;
    ek_strbuf_init(&sb, 3);
    for (int i = 0; i < 10000; i++)
        ek_strbuf_add(&sb, "0123456789", 10);
    assert_int_equal(sb.len, 100000);
    assert_int_equal(sb.buf[sb.len], '\0');
    char *s = ek_strbuf_detach(&sb);
    assert_int_equal(strlen(s), 100000);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.buf, "");
    free(s);
    s = ek_strbuf_detach(&sb); /* empty buffer detaches to an owned "" */
    assert_string_equal(s, "");
    free(s);
}

static void test_trim_and_escape(void **state)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, " \t value with space \r\n");
    ek_strbuf_trim(&sb);
    assert_string_equal(sb.buf, "value with space");
    ek_strbuf_reset(&sb);
    ek_strbuf_add_json_escaped(&sb, "a\"b\\c\nd\x01");
    assert_string_equal(sb.buf, "a\\\"b\\\\c\\nd\\u0001");
    ek_strbuf_release(&sb);
}

static void test_human_size(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(ek_human_size(0, b), "0 B");
    assert_string_equal(ek_human_size(1023, b), "1023 B");
    assert_string_equal(ek_human_size(1536, b), "1.5 KiB");
    assert_string_equal(ek_human_size(8ull << 30, b), "8.0 GiB");
    assert_string_equal(ek_human_size(3ull << 60, b), "3072.0 PiB");
    assert_string_equal(ek_human_size(UINT64_MAX, b), "16384.0 PiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_growth_and_detach),
        cmocka_unit_test(test_trim_and_escape),
        cmocka_unit_test(test_human_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
