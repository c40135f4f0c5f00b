/* test_paging.c - the API's list paging and sorting (conductor/paging.c):
 * the default order (newest first, id as tie-breaker), sort_key/sort_dir,
 * marker and limit, and the 400/404 answers to bad parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/mem.h"
#include "conductor/paging.h"

/* Five items; c has no created_at, b and d were made at the same time. */
static json_object *items(void)
{
    return json_tokener_parse(
        "[{\"id\": \"a\", \"name\": \"zed\", \"created_at\": \"2026-01-01T10:00:00+00:00\", "
        "\"number\": 10, \"enabled\": true, \"info\": {}},"
        " {\"id\": \"b\", \"name\": \"bob\", \"created_at\": \"2026-01-03T10:00:00.5+00:00\", "
        "\"number\": 2, \"enabled\": false},"
        " {\"id\": \"c\", \"name\": \"amy\", \"number\": 3, \"enabled\": null},"
        " {\"id\": \"d\", \"name\": \"bob\", \"created_at\": \"2026-01-03T10:00:00.5+00:00\", "
        "\"number\": 1.5},"
        " {\"id\": \"e\", \"name\": \"eve\", \"created_at\": \"2026-01-03T10:00:00+00:00\", "
        "\"number\": 7}]");
}

/* Pages items() with the query (key=value&...); the ids in order, or the
 * error's code as "E<code>". */
static char *run(const char *query)
{
    ek_page_t p;
    ek_page_init(&p);
    char *q = ek_xstrdup(query), *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq++ = '\0';
        ek_page_param(&p, kv, eq);
    }
    json_object *list = items(), *out = NULL;
    ek_err_t *err = ek_page_finish(&p);
    if (!err)
        err = ek_page_apply(&p, list, &out);
    char *ret;
    if (err) {
        ret = ek_xasprintf("E%d", (int)err->code);
        ek_err_free(err);
    } else {
        ret = ek_xstrdup("");
        for (size_t i = 0; i < json_object_array_length(out); i++) {
            const char *id = json_object_get_string(
                json_object_object_get(json_object_array_get_idx(out, i), "id"));
            char *n = ek_xasprintf("%s%s", ret, id);
            free(ret);
            ret = n;
        }
    }
    json_object_put(out);
    json_object_put(list);
    free(q);
    return ret;
}

#define assert_page(query, expect)                                                                 \
    do {                                                                                           \
        char *got_ = run(query);                                                                   \
        assert_string_equal(got_, expect);                                                         \
        free(got_);                                                                                \
    } while (0)

static void test_default_order(void **state)
{
    (void)state;
    /* created_at desc, then id desc; no created_at (NULL) first when descending */
    assert_page("", "cdbea");
    assert_page("sort_dir=asc", "aebdc");
    /* without sort_key, a second sort_dir is id's */
    assert_page("sort_dir=asc&sort_dir=desc", "aedbc");
    assert_page("unrelated=1&status=x", "cdbea");
}

static void test_sort_keys(void **state)
{
    (void)state;
    /* name asc; the two bobs tie and fall to created_at (same) then id, asc */
    assert_page("sort_key=name&sort_dir=asc", "cbdea");
    /* name desc: ties on id desc */
    assert_page("sort_key=name", "aedbc");
    /* two keys, two directions */
    assert_page("sort_key=name&sort_key=id&sort_dir=asc&sort_dir=desc", "cdbea");
    /* numbers compare as numbers (1.5 < 2 < 3 < 7 < 10), not as text */
    assert_page("sort_key=number&sort_dir=asc", "dbcea");
    /* booleans: false < true, missing and null last (they tie: created_at, c's last) */
    assert_page("sort_key=enabled&sort_dir=asc", "baedc");
    /* the same key twice counts once */
    assert_page("sort_key=number&sort_key=number&sort_dir=asc", "dbcea");
}

static void test_limit_marker(void **state)
{
    (void)state;
    assert_page("limit=1", "c");
    assert_page("limit=0", "");
    assert_page("limit=99", "cdbea");
    assert_page("marker=d", "bea");
    assert_page("marker=d&limit=2", "be");
    assert_page("marker=a", "");
    assert_page("marker=", "cdbea"); /* an empty marker: from the start, as Coriolis */
    assert_page("sort_dir=asc&marker=e&limit=2", "bd");
    assert_page("limit=1&limit=x", "c"); /* the first of a repeated parameter */
}

static void test_errors(void **state)
{
    (void)state;
    assert_page("limit=x", "E2");
    assert_page("limit=-1", "E2");
    assert_page("limit=", "E2");
    assert_page("limit", "E2");
    assert_page("limit=1.5", "E2");
    assert_page("limit=99999999999999999999", "E2");
    assert_page("sort_dir=up", "E2");
    assert_page("sort_key=id&sort_dir=asc&sort_dir=asc", "E2");  /* more directions than keys */
    assert_page("sort_dir=asc&sort_dir=asc&sort_dir=asc", "E2"); /* created_at, id: two */
    assert_page("sort_key=nope", "E2");
    assert_page("sort_key=", "E2");
    assert_page("sort_key=na%20me", "E2");
    assert_page("sort_key=info", "E2"); /* objects do not sort */
    assert_page("marker=zz", "E3");     /* EK_E_NOTFOUND */
    char q[512] = "";
    for (int i = 0; i <= EK_PAGE_MAX_KEYS; i++)
        strcat(q, "sort_key=id&");
    assert_page(q, "E2");
}

static void test_messages(void **state)
{
    (void)state;
    ek_page_t p;
    ek_page_init(&p);
    ek_page_param(&p, "limit", "ten");
    ek_err_t *err = ek_page_finish(&p);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "limit"));
    assert_non_null(strstr(err->message, "\"ten\""));
    ek_err_free(err);

    ek_page_init(&p);
    ek_page_param(&p, "sort_dir", "sideways");
    err = ek_page_finish(&p);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "sort_dir must be asc or desc"));
    ek_err_free(err);

    ek_page_init(&p);
    ek_page_param(&p, "marker", "nope");
    assert_null(ek_page_finish(&p));
    json_object *list = items(), *out = NULL;
    err = ek_page_apply(&p, list, &out);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_NOTFOUND);
    assert_non_null(strstr(err->message, "marker"));
    assert_null(out);
    ek_err_free(err);

    /* a long value is not echoed */
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ek_page_init(&p);
    ek_page_param(&p, "limit", big);
    err = ek_page_finish(&p);
    assert_non_null(err);
    assert_null(strstr(err->message, big));
    ek_err_free(err);
    json_object_put(list);
}

static void test_empty_and_shared(void **state)
{
    (void)state;
    ek_page_t p;
    ek_page_init(&p);
    ek_page_param(&p, "sort_key", "anything");
    assert_null(ek_page_finish(&p));
    json_object *empty = json_object_new_array(), *out = NULL;
    assert_null(ek_page_apply(&p, empty, &out)); /* nothing to sort: any field name */
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);
    json_object_put(empty);

    /* the page shares the items with the list, which stays as it was */
    ek_page_init(&p);
    assert_null(ek_page_finish(&p));
    json_object *list = items();
    assert_null(ek_page_apply(&p, list, &out));
    json_object_put(list);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(out, 4), "id")),
        "a");
    json_object_put(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_order), cmocka_unit_test(test_sort_keys),
        cmocka_unit_test(test_limit_marker),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_messages),      cmocka_unit_test(test_empty_and_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
