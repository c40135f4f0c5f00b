/* tasks.h - task types, task and execution statuses, and what each task type
 * reads from and writes to the instance's task info (research/coriolis.md
 * section 3). The conductor checks a graph against these declarations before
 * running it; a worker's result must hold exactly the declared outputs. */
#ifndef EK_PROTO_TASKS_H
#define EK_PROTO_TASKS_H

#include <stdbool.h>

typedef enum ek_task_platform {
    EK_TASK_SOURCE,      /* runs the origin endpoint's provider */
    EK_TASK_DESTINATION, /* runs the destination endpoint's provider */
    EK_TASK_BILATERAL,   /* needs both (replicate disks, OS morphing) */
} ek_task_platform_t;

#define EK_TASK_MAX_KEYS 5

typedef struct ek_task_type {
    const char *name;
    ek_task_platform_t platform;
    const char *requires[EK_TASK_MAX_KEYS + 1]; /* NULL-terminated */
    const char *provides[EK_TASK_MAX_KEYS + 1];
    bool rerunnable; /* safe to run again after its worker died mid-way */
} ek_task_type_t;

extern const ek_task_type_t ek_task_types[];
const ek_task_type_t *ek_task_type_find(const char *name);

/* Task statuses. */
#define EK_TS_SCHEDULED                 "SCHEDULED"
#define EK_TS_EXECUTE_ON_ERROR_ONLY     "EXECUTE_ON_ERROR_ONLY"
#define EK_TS_PENDING                   "PENDING"
#define EK_TS_STARTING                  "STARTING"
#define EK_TS_RUNNING                   "RUNNING"
#define EK_TS_CANCELLING                "CANCELLING"
#define EK_TS_COMPLETED                 "COMPLETED"
#define EK_TS_ERROR                     "ERROR"
#define EK_TS_UNSCHEDULED               "UNSCHEDULED"
#define EK_TS_CANCELED                  "CANCELED"
#define EK_TS_FORCE_CANCELED            "FORCE_CANCELED"
#define EK_TS_CANCELED_AFTER_COMPLETION "CANCELED_AFTER_COMPLETION"
#define EK_TS_STRANDED_AFTER_DEADLOCK   "STRANDED_AFTER_DEADLOCK"
#define EK_TS_FAILED_TO_SCHEDULE        "FAILED_TO_SCHEDULE"

/* Execution statuses. */
#define EK_ES_UNEXECUTED "UNEXECUTED"
#define EK_ES_PENDING    "PENDING"
#define EK_ES_RUNNING    "RUNNING"
#define EK_ES_CANCELLING "CANCELLING"
#define EK_ES_COMPLETED  "COMPLETED"
#define EK_ES_ERROR      "ERROR"
#define EK_ES_CANCELED   "CANCELED"
#define EK_ES_DEADLOCKED "DEADLOCKED"

bool ek_task_status_is_final(const char *status);
bool ek_task_status_is_active(const char *status);
bool ek_execution_status_is_final(const char *status);

#endif
