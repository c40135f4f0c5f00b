/* paging.c - sorts and cuts the API's lists (see paging.h). */
#include "conductor/paging.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/mem.h"

#define SHOWN_MAX 64

/* A parameter's value as shown in a message: long ones are not echoed. */
static const char *shown(const char *v)
{
    return strlen(v) <= SHOWN_MAX ? v : "(a value too long to show)";
}

void ek_page_init(ek_page_t *p)
{
    memset(p, 0, sizeof(*p));
    p->limit = -1;
}

void ek_page_param(ek_page_t *p, const char *key, const char *value)
{
    if (!key)
        return;
    if (!value)
        value = "";
    if (strcmp(key, "marker") == 0) {
        if (!p->marker)
            p->marker = value;
    } else if (strcmp(key, "limit") == 0) {
        if (!p->limit_text)
            p->limit_text = value;
    } else if (strcmp(key, "sort_key") == 0) {
        if (p->nreq_keys < EK_PAGE_MAX_KEYS)
            p->req_keys[p->nreq_keys++] = value;
        else
            p->too_many_keys = true;
    } else if (strcmp(key, "sort_dir") == 0) {
        if (p->nreq_dirs < EK_PAGE_MAX_KEYS)
            p->req_dirs[p->nreq_dirs++] = value;
        else
            p->too_many_dirs = true;
    }
}

/* A field name: letters, digits and '_', 1 to 64 characters. */
static bool is_field_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool has_key(const ek_page_t *p, const char *key)
{
    for (int i = 0; i < p->nkeys; i++)
        if (strcmp(p->keys[i], key) == 0)
            return true;
    return false;
}

ek_err_t *ek_page_finish(ek_page_t *p)
{
    if (p->limit_text) {
        const char *s = p->limit_text;
        size_t n = strlen(s);
        bool digits = n > 0 && n <= 18;
        for (size_t i = 0; digits && i < n; i++)
            digits = s[i] >= '0' && s[i] <= '9';
        if (!digits)
            return ek_err_new(EK_E_INVALID,
                              "query parameter limit must be a non-negative integer (e.g. "
                              "limit=20), not \"%s\"",
                              shown(s));
        p->limit = strtoll(s, NULL, 10);
    }
    if (p->too_many_keys || p->too_many_dirs)
        return ek_err_new(EK_E_INVALID, "query parameter %s: at most %d of them",
                          p->too_many_keys ? "sort_key" : "sort_dir", EK_PAGE_MAX_KEYS);
    for (int i = 0; i < p->nreq_dirs; i++)
        if (strcmp(p->req_dirs[i], "asc") && strcmp(p->req_dirs[i], "desc"))
            return ek_err_new(EK_E_INVALID,
                              "query parameter sort_dir must be asc or desc, not \"%s\"",
                              shown(p->req_dirs[i]));
    /* without sort_key, the keys are created_at and id (as in Coriolis) */
    int nkeys_named = p->nreq_keys ? p->nreq_keys : 2;
    if (p->nreq_dirs > nkeys_named)
        return ek_err_new(EK_E_INVALID,
                          "query parameter sort_dir is given %d times for %d sort keys%s: at "
                          "most one sort_dir per sort_key",
                          p->nreq_dirs, nkeys_named,
                          p->nreq_keys ? "" : " (created_at and id, without sort_key)");
    bool default_desc = p->nreq_dirs ? strcmp(p->req_dirs[0], "desc") == 0 : true;
    p->nkeys = 0;
    for (int i = 0; i < p->nreq_keys; i++) {
        if (!is_field_name(p->req_keys[i]))
            return ek_err_new(EK_E_INVALID,
                              "query parameter sort_key must be a field of the listed items "
                              "(e.g. sort_key=created_at), not \"%s\"",
                              shown(p->req_keys[i]));
        if (has_key(p, p->req_keys[i]))
            continue;
        p->keys[p->nkeys] = p->req_keys[i];
        p->desc[p->nkeys++] = i < p->nreq_dirs ? strcmp(p->req_dirs[i], "desc") == 0 : default_desc;
    }
    static const char *const tie[] = {"created_at", "id"};
    for (int i = 0; i < 2; i++) {
        if (has_key(p, tie[i]))
            continue;
        p->keys[p->nkeys] = tie[i];
        p->desc[p->nkeys++] =
            !p->nreq_keys && i < p->nreq_dirs ? strcmp(p->req_dirs[i], "desc") == 0 : default_desc;
    }
    return NULL;
}

/* ---- sorting ------------------------------------------------------------------ */

/* The order of a value's kind: missing and null last (PostgreSQL's NULLs). */
static int kind_rank(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        return 0;
    case json_type_int:
    case json_type_double:
        return 1;
    case json_type_string:
        return 2;
    case json_type_null:
    default:
        return 3;
    }
}

static int cmp_values(json_object *a, json_object *b)
{
    int ra = kind_rank(a), rb = kind_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 0: {
        int x = json_object_get_boolean(a), y = json_object_get_boolean(b);
        return (x > y) - (x < y);
    }
    case 1:
        if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int)) {
            int64_t x = json_object_get_int64(a), y = json_object_get_int64(b);
            return (x > y) - (x < y);
        } else {
            double x = json_object_get_double(a), y = json_object_get_double(b);
            return (x > y) - (x < y);
        }
    case 2: {
        int c = strcmp(json_object_get_string(a), json_object_get_string(b));
        return (c > 0) - (c < 0);
    }
    default:
        return 0;
    }
}

static json_object *field(json_object *item, const char *key)
{
    json_object *v = NULL;
    if (json_object_is_type(item, json_type_object))
        json_object_object_get_ex(item, key, &v);
    return v;
}

static int cmp_items(const ek_page_t *p, json_object *a, json_object *b)
{
    for (int i = 0; i < p->nkeys; i++) {
        int c = cmp_values(field(a, p->keys[i]), field(b, p->keys[i]));
        if (c)
            return p->desc[i] ? -c : c;
    }
    return 0;
}

/* A stable merge sort of v[0..n) by cmp_items, with tmp of n slots. */
static void merge_sort(const ek_page_t *p, json_object **v, json_object **tmp, size_t n)
{
    if (n < 2)
        return;
    size_t half = n / 2;
    merge_sort(p, v, tmp, half);
    merge_sort(p, v + half, tmp, n - half);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n)
        tmp[k++] = cmp_items(p, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < half)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

/* A requested sort key must be a field some item has, with scalar values. */
static ek_err_t *check_key(json_object *list, size_t n, const char *key)
{
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        json_object *v = NULL;
        json_object *item = json_object_array_get_idx(list, i);
        if (!json_object_is_type(item, json_type_object) ||
            !json_object_object_get_ex(item, key, &v))
            continue;
        seen = true;
        if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
            return ek_err_new(EK_E_INVALID,
                              "query parameter sort_key: cannot sort by \"%s\", its values are "
                              "%s",
                              key, json_object_is_type(v, json_type_object) ? "objects" : "lists");
    }
    if (!seen && n)
        return ek_err_new(EK_E_INVALID,
                          "query parameter sort_key: the listed items have no field \"%s\"", key);
    return NULL;
}

ek_err_t *ek_page_apply(const ek_page_t *p, json_object *list, json_object **out)
{
    *out = NULL;
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    ek_err_t *err;
    for (int i = 0; i < p->nreq_keys; i++)
        if ((err = check_key(list, n, p->req_keys[i])))
            return err;
    json_object **v = ek_xcalloc(n ? n : 1, sizeof(*v));
    json_object **tmp = ek_xcalloc(n ? n : 1, sizeof(*tmp));
    for (size_t i = 0; i < n; i++)
        v[i] = json_object_array_get_idx(list, i);
    merge_sort(p, v, tmp, n);
    free(tmp);
    size_t start = 0;
    if (p->marker && *p->marker) {
        size_t i;
        for (i = 0; i < n; i++) {
            json_object *id = field(v[i], "id");
            if (json_object_is_type(id, json_type_string) &&
                strcmp(json_object_get_string(id), p->marker) == 0)
                break;
        }
        if (i == n) {
            err = ek_err_new(EK_E_NOTFOUND,
                             "query parameter marker: no listed item has the id \"%s\" (pass the "
                             "id of the last item of the previous page)",
                             shown(p->marker));
            free(v);
            return err;
        }
        start = i + 1;
    }
    size_t end = n;
    if (p->limit >= 0 && (unsigned long long)p->limit < end - start)
        end = start + (size_t)p->limit;
    json_object *page = json_object_new_array();
    for (size_t i = start; i < end; i++)
        json_object_array_add(page, json_object_get(v[i]));
    free(v);
    *out = page;
    return NULL;
}
