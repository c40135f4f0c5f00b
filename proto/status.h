/* status.h - task and execution statuses (research/coriolis.md section 3):
 * enums with one name table each. The names are what the API shows, what the
 * database holds and what the client waits for. */
#ifndef EK_PROTO_STATUS_H
#define EK_PROTO_STATUS_H

#include <stdbool.h>

typedef enum ek_task_status {
    EK_TASK_SCHEDULED,             /* waits for its parents */
    EK_TASK_EXECUTE_ON_ERROR_ONLY, /* a rollback: runs only if the execution fails */
    EK_TASK_PENDING,               /* may run: waits for a worker's claim */
    EK_TASK_STARTING,
    EK_TASK_RUNNING,
    EK_TASK_CANCELLING,
    EK_TASK_COMPLETED,
    EK_TASK_ERROR,
    EK_TASK_UNSCHEDULED, /* will not run: a parent did not complete */
    EK_TASK_CANCELED,
    EK_TASK_FORCE_CANCELED,
    EK_TASK_CANCELED_AFTER_COMPLETION,
    EK_TASK_STRANDED_AFTER_DEADLOCK,
    EK_TASK_FAILED_TO_SCHEDULE,
    EK_TASK_STATUS_COUNT
} ek_task_status_t;

typedef enum ek_exec_status {
    EK_EXEC_UNEXECUTED,
    EK_EXEC_PENDING,
    EK_EXEC_RUNNING,
    EK_EXEC_CANCELLING,
    EK_EXEC_COMPLETED,
    EK_EXEC_ERROR,
    EK_EXEC_CANCELED,
    EK_EXEC_DEADLOCKED,
    EK_EXEC_STATUS_COUNT
} ek_exec_status_t;

const char *ek_task_status_name(ek_task_status_t s);
/* False for a name that is not a status. */
bool ek_task_status_parse(const char *name, ek_task_status_t *out);
bool ek_task_status_final(ek_task_status_t s);
bool ek_task_status_active(ek_task_status_t s); /* PENDING .. CANCELLING */
const char *ek_exec_status_name(ek_exec_status_t s);
bool ek_exec_status_parse(const char *name, ek_exec_status_t *out);
bool ek_exec_status_final(ek_exec_status_t s);

#endif
