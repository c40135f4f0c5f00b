/* report.h - how the parts of the OS-morphing engine (worker/morph/) tell what
 * they do. ekman-morph runs inside the OS-morphing worker VM; the provider
 * that runs it over SSH turns each report into a progress step or an event of
 * the OS_MORPHING task (worker/morph/driver.c). The engine's parts never print:
 * they call these.
 *
 * A step is a named stage of the work ("Mounting the guest's filesystems");
 * an event is a line the user reads, at INFO, WARNING or ERROR; a change is a
 * record of one thing the engine changed in the guest ("removed package
 * open-vm-tools"), collected into the OS_MORPHING result. */
#ifndef EK_MORPH_REPORT_H
#define EK_MORPH_REPORT_H

#include "common/compiler.h"

typedef struct ek_morph_report ek_morph_report_t;

struct ek_morph_report {
    void (*step)(ek_morph_report_t *r, const char *name);
    void (*event)(ek_morph_report_t *r, const char *level, const char *message);
    void (*change)(ek_morph_report_t *r, const char *what);
    void *ud;
};

/* printf-style helpers over the table (NULL r: nothing happens). */
void ek_morph_step(ek_morph_report_t *r, const char *fmt, ...) EK_PRINTF(2, 3);
void ek_morph_event(ek_morph_report_t *r, const char *level, const char *fmt, ...) EK_PRINTF(3, 4);
void ek_morph_change(ek_morph_report_t *r, const char *fmt, ...) EK_PRINTF(2, 3);

#endif
