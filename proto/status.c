/* status.c - the status name tables. */
#include "proto/status.h"

#include <string.h>

static const char *const task_names[EK_TASK_STATUS_COUNT] = {
    [EK_TASK_SCHEDULED] = "SCHEDULED",
    [EK_TASK_EXECUTE_ON_ERROR_ONLY] = "EXECUTE_ON_ERROR_ONLY",
    [EK_TASK_PENDING] = "PENDING",
    [EK_TASK_STARTING] = "STARTING",
    [EK_TASK_RUNNING] = "RUNNING",
    [EK_TASK_CANCELLING] = "CANCELLING",
    [EK_TASK_COMPLETED] = "COMPLETED",
    [EK_TASK_ERROR] = "ERROR",
    [EK_TASK_UNSCHEDULED] = "UNSCHEDULED",
    [EK_TASK_CANCELED] = "CANCELED",
    [EK_TASK_FORCE_CANCELED] = "FORCE_CANCELED",
    [EK_TASK_CANCELED_AFTER_COMPLETION] = "CANCELED_AFTER_COMPLETION",
    [EK_TASK_STRANDED_AFTER_DEADLOCK] = "STRANDED_AFTER_DEADLOCK",
    [EK_TASK_FAILED_TO_SCHEDULE] = "FAILED_TO_SCHEDULE",
};

static const char *const exec_names[EK_EXEC_STATUS_COUNT] = {
    [EK_EXEC_UNEXECUTED] = "UNEXECUTED", [EK_EXEC_PENDING] = "PENDING",
    [EK_EXEC_RUNNING] = "RUNNING",       [EK_EXEC_CANCELLING] = "CANCELLING",
    [EK_EXEC_COMPLETED] = "COMPLETED",   [EK_EXEC_ERROR] = "ERROR",
    [EK_EXEC_CANCELED] = "CANCELED",     [EK_EXEC_DEADLOCKED] = "DEADLOCKED",
};

static bool parse(const char *const *names, int n, const char *name, int *out)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0) {
            *out = i;
            return true;
        }
    return false;
}

const char *ek_task_status_name(ek_task_status_t s)
{
    return (unsigned)s < EK_TASK_STATUS_COUNT ? task_names[s] : "?";
}

bool ek_task_status_parse(const char *name, ek_task_status_t *out)
{
    int v;
    if (!parse(task_names, EK_TASK_STATUS_COUNT, name, &v))
        return false;
    *out = (ek_task_status_t)v;
    return true;
}

bool ek_task_status_final(ek_task_status_t s)
{
    return s >= EK_TASK_COMPLETED;
}

bool ek_task_status_active(ek_task_status_t s)
{
    return s >= EK_TASK_PENDING && s <= EK_TASK_CANCELLING;
}

const char *ek_exec_status_name(ek_exec_status_t s)
{
    return (unsigned)s < EK_EXEC_STATUS_COUNT ? exec_names[s] : "?";
}

bool ek_exec_status_parse(const char *name, ek_exec_status_t *out)
{
    int v;
    if (!parse(exec_names, EK_EXEC_STATUS_COUNT, name, &v))
        return false;
    *out = (ek_exec_status_t)v;
    return true;
}

bool ek_exec_status_final(ek_exec_status_t s)
{
    return s >= EK_EXEC_COMPLETED;
}
