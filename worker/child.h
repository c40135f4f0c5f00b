/* child.h - the task process side of the worker (see child.c). */
#ifndef EK_WORKER_CHILD_H
#define EK_WORKER_CHILD_H

#include "common/config.h"

/* Runs the job on standard input; returns the process exit code. */
int ek_worker_child_main(const ek_config_t *cfg);

#endif
