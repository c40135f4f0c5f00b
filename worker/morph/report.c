/* report.c - printf-style helpers over an ek_morph_report_t (report.h). */
#include "worker/morph/report.h"

#include <stdarg.h>
#include <stdio.h>

#define FORMAT(buf, fmt)                                                                           \
    char buf[2048];                                                                                \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vsnprintf(buf, sizeof(buf), fmt, ap);                                                      \
        va_end(ap);                                                                                \
    } while (0)

void ek_morph_step(ek_morph_report_t *r, const char *fmt, ...)
{
    if (!r || !r->step)
        return;
    FORMAT(buf, fmt);
    r->step(r, buf);
}

void ek_morph_event(ek_morph_report_t *r, const char *level, const char *fmt, ...)
{
    if (!r || !r->event)
        return;
    FORMAT(buf, fmt);
    r->event(r, level, buf);
}

void ek_morph_change(ek_morph_report_t *r, const char *fmt, ...)
{
    if (!r || !r->change)
        return;
    FORMAT(buf, fmt);
    r->change(r, buf);
}
