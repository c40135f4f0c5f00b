/* output.c - tables and cells for `ekman` (see output.h). */
#include "client/output.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include "client/progress.h"
#include "common/json.h"
#include "common/mem.h"

struct ek_cli_table {
    size_t ncols, nrows, cap;
    char **headers;
    char **cells; /* nrows * ncols */
};

/* A copy with control characters turned into spaces, so a row stays a line. */
static char *clean(const char *s)
{
    char *c = ek_xstrdup(s ? s : "");
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return c;
}

ek_cli_table_t *ek_cli_table_new(size_t ncols, const char *const *headers)
{
    ek_cli_table_t *t = ek_xcalloc(1, sizeof(*t));
    t->ncols = ncols;
    t->headers = ek_xcalloc(ncols, sizeof(char *));
    for (size_t i = 0; i < ncols; i++)
        t->headers[i] = clean(headers[i]);
    return t;
}

void ek_cli_table_add(ek_cli_table_t *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = ek_xrealloc(t->cells, sizeof(char *) * t->cap * t->ncols);
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = clean(cells[i]);
    t->nrows++;
}

size_t ek_cli_table_rows(const ek_cli_table_t *t)
{
    return t->nrows;
}

size_t ek_cli_text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static void render_row(const ek_cli_table_t *t, char *const *row, const size_t *width,
                       ek_strbuf_t *out)
{
    size_t pending = 0; /* padding owed before the next non-empty text */
    for (size_t i = 0; i < t->ncols; i++) {
        if (i)
            pending += 2;
        if (*row[i]) {
            for (; pending; pending--)
                ek_strbuf_addch(out, ' ');
            ek_strbuf_adds(out, row[i]);
        }
        pending += width[i] - ek_cli_text_width(row[i]);
    }
    ek_strbuf_addch(out, '\n');
}

void ek_cli_table_render(const ek_cli_table_t *t, ek_strbuf_t *out)
{
    size_t *width = ek_xcalloc(t->ncols, sizeof(size_t));
    for (size_t i = 0; i < t->ncols; i++) {
        width[i] = ek_cli_text_width(t->headers[i]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = ek_cli_text_width(t->cells[r * t->ncols + i]);
            width[i] = w > width[i] ? w : width[i];
        }
    }
    render_row(t, t->headers, width, out);
    for (size_t r = 0; r < t->nrows; r++)
        render_row(t, &t->cells[r * t->ncols], width, out);
    free(width);
}

void ek_cli_table_free(ek_cli_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncols; i++)
        free(t->headers[i]);
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->cells);
    free(t);
}

static bool is_scalar(json_object *v)
{
    return !v ||
           (!json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array));
}

/* "2026-11-22T07:52:28.123456+00:00" as "2026-11-22 08:52:28" in local time:
 * shorter, and the time people read their clocks in. */
static char *timestamp(const char *s)
{
    double t;
    if (strlen(s) < 20 || s[4] != '-' || s[10] != 'T' || !ek_cli_parse_time(s, &t))
        return NULL;
    time_t secs = (time_t)t;
    struct tm tm;
    char buf[32];
    if (!localtime_r(&secs, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
        return NULL;
    return ek_xstrdup(buf);
}

char *ek_cli_cell(json_object *v)
{
    if (!v)
        return ek_xstrdup("");
    if (json_object_is_type(v, json_type_string)) {
        char *ts = timestamp(json_object_get_string(v));
        return ts ? ts : ek_xstrdup(json_object_get_string(v));
    }
    if (json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        bool flat = true;
        for (size_t i = 0; i < n && flat; i++)
            flat = is_scalar(json_object_array_get_idx(v, i));
        if (flat) {
            ek_strbuf_t sb = EK_STRBUF_INIT;
            for (size_t i = 0; i < n; i++) {
                char *c = ek_cli_cell(json_object_array_get_idx(v, i));
                ek_strbuf_addf(&sb, "%s%s", i ? ", " : "", c);
                free(c);
            }
            return ek_strbuf_detach(&sb);
        }
    }
    return ek_json_dump(v, false);
}

json_object *ek_cli_json_path(json_object *obj, const char *path)
{
    char *copy = ek_xstrdup(path), *save = NULL;
    json_object *cur = obj;
    for (char *k = strtok_r(copy, ".", &save); k && cur; k = strtok_r(NULL, ".", &save)) {
        if (!json_object_is_type(cur, json_type_object) || !json_object_object_get_ex(cur, k, &cur))
            cur = NULL;
    }
    free(copy);
    return cur;
}

void ek_cli_render_list(json_object *array, const ek_cli_col_t *cols, ek_strbuf_t *out)
{
    size_t ncols = 0;
    while (cols[ncols].header)
        ncols++;
    const char **headers = ek_xcalloc(ncols, sizeof(char *));
    char **cells = ek_xcalloc(ncols, sizeof(char *));
    for (size_t i = 0; i < ncols; i++)
        headers[i] = cols[i].header;
    ek_cli_table_t *t = ek_cli_table_new(ncols, headers);
    size_t n =
        array && json_object_is_type(array, json_type_array) ? json_object_array_length(array) : 0;
    for (size_t r = 0; r < n; r++) {
        json_object *row = json_object_array_get_idx(array, r);
        for (size_t i = 0; i < ncols; i++)
            cells[i] = ek_cli_cell(ek_cli_json_path(row, cols[i].path));
        ek_cli_table_add(t, (const char *const *)cells);
        for (size_t i = 0; i < ncols; i++)
            free(cells[i]);
    }
    ek_cli_table_render(t, out);
    ek_cli_table_free(t);
    free(cells);
    free(headers);
}

static void add_field(ek_cli_table_t *t, const char *key, json_object *v)
{
    char *c = ek_cli_cell(v);
    ek_cli_table_add(t, (const char *const[]){key, c});
    free(c);
}

void ek_cli_render_object(json_object *obj, const char *const *fields, ek_strbuf_t *out)
{
    ek_cli_table_t *t = ek_cli_table_new(2, (const char *const[]){"FIELD", "VALUE"});
    if (fields) {
        for (; *fields; fields++)
            add_field(t, *fields, ek_cli_json_path(obj, *fields));
    } else if (obj && json_object_is_type(obj, json_type_object)) {
        json_object_object_foreach(obj, k, v) add_field(t, k, v);
    }
    ek_cli_table_render(t, out);
    ek_cli_table_free(t);
}
