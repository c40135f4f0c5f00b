/* progress.c - rendering an execution's progress (see progress.h). */
#include "client/progress.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "client/output.h"
#include "common/mem.h"
#include "common/strbuf.h"

bool ek_cli_parse_time(const char *text, double *out)
{
    struct tm tm = {0};
    int n = 0;
    if (!text ||
        sscanf(text, "%4d-%2d-%2d%*[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        !n)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = text + n;
    double frac = 0, scale = 0.1;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
            frac += (*p - '0') * scale;
    long offset = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d", &hh) != 1)
            return false;
        p += 3;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && sscanf(p, "%2d", &mm) == 1)
            p += 2;
        offset = sign * (hh * 3600L + mm * 60L);
    } else if (*p == 'Z') {
        p++;
    }
    if (*p)
        return false;
    *out = (double)(timegm(&tm) - offset) + frac;
    return true;
}

void ek_cli_format_eta(double s, char *out, size_t len)
{
    if (s < 0) {
        snprintf(out, len, "--");
        return;
    }
    long v = (long)(s + 0.5);
    if (v < 60)
        snprintf(out, len, "%lds", v);
    else if (v < 3600)
        snprintf(out, len, "%ldm%02lds", v / 60, v % 60);
    else if (v < 86400)
        snprintf(out, len, "%ldh%02ldm", v / 3600, v % 3600 / 60);
    else
        snprintf(out, len, "%ldd%02ldh", v / 86400, v % 86400 / 3600);
}

void ek_cli_format_bar(double fraction, int width, char *out, size_t len)
{
    if (len < 3 || width < 1) {
        if (len)
            *out = '\0';
        return;
    }
    if ((size_t)width + 3 > len)
        width = (int)len - 3;
    fraction = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    int full = (int)(fraction * width);
    out[0] = '[';
    for (int i = 0; i < width; i++)
        out[1 + i] = i < full ? '#' : '-';
    out[width + 1] = ']';
    out[width + 2] = '\0';
}

double ek_cli_step_rate(const ek_cli_step_t *s)
{
    double dt = s->updated - s->started;
    if (s->current <= 0 || s->started <= 0 || dt <= 0.05)
        return -1;
    return (double)s->current / dt;
}

double ek_cli_step_eta(const ek_cli_step_t *s)
{
    if (s->total > 0 && s->current >= s->total)
        return 0;
    double rate = ek_cli_step_rate(s);
    if (rate <= 0 || s->total <= 0)
        return -1;
    return (double)(s->total - s->current) / rate;
}

static int percent(const ek_cli_step_t *s)
{
    if (s->total <= 0)
        return 0;
    if (s->current >= s->total)
        return 100;
    return (int)(s->current * 100 / s->total);
}

/* Steps of fewer than 1 KiB units count things, not bytes. */
static bool in_bytes(const ek_cli_step_t *s)
{
    return s->total >= 1024;
}

void ek_cli_step_line(const ek_cli_step_t *s, bool bar, ek_strbuf_t *out)
{
    char b[64], cur[32], tot[32], rate[32], eta[32];
    int pct = percent(s);
    double r = ek_cli_step_rate(s);
    ek_cli_format_eta(ek_cli_step_eta(s), eta, sizeof(eta));
    if (in_bytes(s)) {
        ek_human_size((uint64_t)s->current, cur);
        ek_human_size((uint64_t)s->total, tot);
        if (r < 0)
            snprintf(rate, sizeof(rate), "-- B/s");
        else {
            ek_human_size((uint64_t)r, rate);
            strncat(rate, "/s", sizeof(rate) - strlen(rate) - 1);
        }
    } else {
        snprintf(cur, sizeof(cur), "%lld", (long long)s->current);
        snprintf(tot, sizeof(tot), "%lld", (long long)s->total);
        snprintf(rate, sizeof(rate), r < 0 ? "--/s" : "%.1f/s", r);
    }
    const char *inst = s->instance && *s->instance ? s->instance : "";
    if (bar) {
        /* two lines, so that neither gets cut on an 80-column terminal */
        ek_cli_format_bar(pct / 100.0, 24, b, sizeof(b));
        ek_strbuf_addf(out, "  %s%s%s\n    %s %3d%%  %s of %s  %s  ETA %s\n", inst,
                       *inst ? ": " : "", s->message ? s->message : "", b, pct, cur, tot, rate,
                       eta);
    } else {
        ek_strbuf_addf(out, "%s%s%s: %d%% (%s of %s, %s, ETA %s)\n", inst, *inst ? ": " : "",
                       s->message ? s->message : "", pct, cur, tot, rate, eta);
    }
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static int64_t num(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : 0;
}

void ek_cli_step_from_json(json_object *task, json_object *update, ek_cli_step_t *s)
{
    memset(s, 0, sizeof(*s));
    s->instance = str(task, "instance");
    s->message = str(update, "message");
    s->current = num(update, "current_step");
    s->total = num(update, "total_steps");
    if (!ek_cli_parse_time(str(update, "created_at"), &s->started))
        s->started = 0;
    if (!ek_cli_parse_time(str(update, "updated_at"), &s->updated))
        s->updated = 0;
}

/* A task's "TYPE (instance)" for messages. */
static void task_name(json_object *t, char *out, size_t len)
{
    const char *type = str(t, "task_type"), *inst = str(t, "instance");
    if (inst && *inst)
        snprintf(out, len, "%s (%s)", type ? type : "?", inst);
    else
        snprintf(out, len, "%s", type ? type : "?");
}

static json_object *tasks_of(json_object *exec)
{
    json_object *t = NULL;
    if (exec && json_object_object_get_ex(exec, "tasks", &t) &&
        json_object_is_type(t, json_type_array))
        return t;
    return NULL;
}

/* Calls fn for every progress step of every task. */
static void each_step(json_object *exec, void (*fn)(json_object *, json_object *, void *),
                      void *opaque)
{
    json_object *tasks = tasks_of(exec);
    size_t n = tasks ? json_object_array_length(tasks) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(tasks, i), *ups = NULL;
        if (!json_object_object_get_ex(t, "progress_updates", &ups) ||
            !json_object_is_type(ups, json_type_array))
            continue;
        for (size_t k = 0; k < json_object_array_length(ups); k++)
            fn(t, json_object_array_get_idx(ups, k), opaque);
    }
}

static void view_step(json_object *task, json_object *update, void *opaque)
{
    ek_cli_step_t s;
    ek_cli_step_from_json(task, update, &s);
    ek_cli_step_line(&s, true, opaque);
}

static void tasks_table(json_object *tasks, ek_strbuf_t *out)
{
    static const ek_cli_col_t cols[] = {{"STATUS", "status"},
                                        {"TASK", "task_type"},
                                        {"INSTANCE", "instance"},
                                        {"HOST", "host"},
                                        {NULL, NULL}};
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_render_list(tasks, cols, &sb);
    /* indented under the execution's line */
    for (char *line = sb.buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ek_strbuf_addf(out, "  %.*s\n", (int)(nl - line), line);
    }
    ek_strbuf_release(&sb);
}

void ek_cli_progress_view(json_object *exec, const char *title, ek_strbuf_t *out)
{
    ek_strbuf_addf(out, "%s: %s\n", title, str(exec, "status") ? str(exec, "status") : "?");
    each_step(exec, view_step, out);
    json_object *tasks = tasks_of(exec);
    if (tasks && json_object_array_length(tasks))
        tasks_table(tasks, out);
}

struct lines_ctx {
    json_object *seen;
    ek_strbuf_t *out;
};

/* True when seen[key] differs from value (and records value). */
static bool changed(json_object *seen, const char *key, const char *value)
{
    const char *old = str(seen, key);
    if (old && strcmp(old, value) == 0)
        return false;
    json_object_object_add(seen, key, json_object_new_string(value));
    return true;
}

static void line_step(json_object *task, json_object *update, void *opaque)
{
    struct lines_ctx *c = opaque;
    ek_cli_step_t s;
    ek_cli_step_from_json(task, update, &s);
    char key[160], pct[16];
    snprintf(key, sizeof(key), "step:%s:%lld", str(task, "id") ? str(task, "id") : "?",
             (long long)num(update, "index"));
    snprintf(pct, sizeof(pct), "%d", percent(&s));
    if (changed(c->seen, key, pct))
        ek_cli_step_line(&s, false, c->out);
}

void ek_cli_progress_lines(json_object *exec, const char *title, json_object *seen,
                           ek_strbuf_t *out)
{
    json_object *tasks = tasks_of(exec);
    size_t n = tasks ? json_object_array_length(tasks) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(tasks, i);
        const char *id = str(t, "id"), *st = str(t, "status");
        char key[128];
        snprintf(key, sizeof(key), "task:%s", id ? id : "?");
        if (st && changed(seen, key, st)) {
            char name[256];
            task_name(t, name, sizeof(name));
            ek_strbuf_addf(out, "task %s: %s\n", name, st);
        }
    }
    struct lines_ctx c = {seen, out};
    each_step(exec, line_step, &c);
    const char *st = str(exec, "status");
    if (st && changed(seen, "execution", st))
        ek_strbuf_addf(out, "%s: %s\n", title, st);
}

void ek_cli_progress_errors(json_object *exec, ek_strbuf_t *out)
{
    json_object *tasks = tasks_of(exec);
    size_t n = tasks ? json_object_array_length(tasks) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(tasks, i);
        const char *st = str(t, "status"), *details = str(t, "exception_details");
        if (!st || !details || !*details)
            continue;
        char name[256];
        task_name(t, name, sizeof(name));
        ek_strbuf_addf(out, "task %s %s: %s\n", name, st, details);
    }
}
