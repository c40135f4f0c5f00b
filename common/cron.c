/* cron.c - parsing and matching of five-field cron schedules. */
#include "common/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/mem.h"

static bool read_int(const char **p, int *out)
{
    if (!isdigit((unsigned char)**p))
        return false;
    long v = 0;
    while (isdigit((unsigned char)**p) && v < 1000)
        v = v * 10 + (*(*p)++ - '0');
    *out = (int)v;
    return true;
}

ek_err_t *ek_cron_parse_field(const char *text, int lo, int hi, const char *name, uint64_t *bits)
{
    *bits = 0;
    char *copy = ek_xstrdup(text);
    char *save = NULL;
    ek_err_t *err = NULL;
    if (!*copy)
        err = ek_err_new(EK_E_INVALID, "%s must not be empty (use \"*\")", name);
    for (char *item = strtok_r(copy, ",", &save); item && !err; item = strtok_r(NULL, ",", &save)) {
        const char *p = item;
        int from = lo, to = hi, step = 1;
        if (*p == '*') {
            p++;
        } else {
            if (!read_int(&p, &from)) {
                err = ek_err_new(EK_E_INVALID, "%s: '%s' is not a number, range, list or '*'", name,
                                 item);
                break;
            }
            to = from;
            if (*p == '-') {
                p++;
                if (!read_int(&p, &to)) {
                    err = ek_err_new(EK_E_INVALID, "%s: '%s' has an incomplete range", name, item);
                    break;
                }
            }
        }
        if (*p == '/') {
            p++;
            if (!read_int(&p, &step) || step == 0) {
                err = ek_err_new(EK_E_INVALID, "%s: '%s' needs a positive step after '/'", name,
                                 item);
                break;
            }
            if (to == from && item[0] != '*')
                to = hi; /* "5/10" means from 5 to the end, every 10 */
        }
        if (*p) {
            err = ek_err_new(EK_E_INVALID, "%s: unexpected '%s' in '%s'", name, p, item);
            break;
        }
        if (from < lo || to > hi || from > to) {
            err = ek_err_new(EK_E_INVALID, "%s: '%s' is outside %d-%d", name, item, lo, hi);
            break;
        }
        for (int v = from; v <= to; v += step)
            *bits |= (uint64_t)1 << v;
    }
    free(copy);
    return err;
}

static ek_err_t *field(json_object *schedule, const char *path, const char *key, int lo, int hi,
                       uint64_t *bits, bool *any)
{
    json_object *v = NULL;
    char buf[32];
    const char *text = "*";
    if (json_object_object_get_ex(schedule, key, &v) && v) {
        if (json_object_is_type(v, json_type_int)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_object_get_int64(v));
            text = buf;
        } else if (json_object_is_type(v, json_type_string)) {
            text = json_object_get_string(v);
        } else {
            return ek_err_new(EK_E_INVALID, "%s.%s must be a string or an integer", path, key);
        }
    }
    if (any)
        *any = strcmp(text, "*") == 0;
    char *name = ek_xasprintf("%s.%s", path, key);
    ek_err_t *err = ek_cron_parse_field(text, lo, hi, name, bits);
    free(name);
    return err;
}

ek_err_t *ek_cron_from_json(json_object *schedule, const char *path, ek_cron_t *out)
{
    if (!schedule || !json_object_is_type(schedule, json_type_object))
        return ek_err_new(EK_E_INVALID, "%s must be an object {minute, hour, dom, month, dow}",
                          path);
    static const char *const known[] = {"minute", "hour", "dom", "month", "dow"};
    json_object_object_foreach(schedule, k, v)
    {
        (void)v;
        bool ok = false;
        for (size_t i = 0; i < 5; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok)
            return ek_err_new(EK_E_INVALID,
                              "%s.%s is not a cron field (minute, hour, dom, "
                              "month, dow)",
                              path, k);
    }
    uint64_t m, h, d, mo, w;
    ek_err_t *err;
    if ((err = field(schedule, path, "minute", 0, 59, &m, NULL)) ||
        (err = field(schedule, path, "hour", 0, 23, &h, NULL)) ||
        (err = field(schedule, path, "dom", 1, 31, &d, &out->dom_any)) ||
        (err = field(schedule, path, "month", 1, 12, &mo, NULL)) ||
        (err = field(schedule, path, "dow", 0, 7, &w, &out->dow_any)))
        return err;
    if (w & (1u << 7))
        w |= 1; /* 7 is Sunday too */
    out->minute = m;
    out->hour = (uint32_t)h;
    out->dom = (uint32_t)d;
    out->month = (uint16_t)mo;
    out->dow = (uint8_t)(w & 0x7f);
    return NULL;
}

bool ek_cron_matches(const ek_cron_t *c, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!(c->minute & ((uint64_t)1 << tm.tm_min)) || !(c->hour & (1u << tm.tm_hour)) ||
        !(c->month & (1u << (tm.tm_mon + 1))))
        return false;
    bool dom = c->dom & (1u << tm.tm_mday);
    bool dow = c->dow & (1u << tm.tm_wday);
    if (c->dom_any || c->dow_any)
        return dom && dow;
    return dom || dow;
}
