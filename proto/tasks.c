/* tasks.c - the task type table and status predicates. */
#include "proto/tasks.h"

#include <string.h>

#define K(...)                                                                                     \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }
#define NONE                                                                                       \
    {                                                                                              \
        NULL                                                                                       \
    }

const ek_task_type_t ek_task_types[] = {
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", EK_TASK_SOURCE, NONE, NONE, true},
    {"GET_INSTANCE_INFO", EK_TASK_SOURCE, NONE, K("export_info"), true},
    {"VALIDATE_TRANSFER_DESTINATION_INPUTS", EK_TASK_DESTINATION, K("export_info"), NONE, true},
    {"DEPLOY_TRANSFER_DISKS", EK_TASK_DESTINATION, K("export_info"), K("volumes_info"), true},
    {"DELETE_TRANSFER_DISKS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"), true},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", EK_TASK_SOURCE, K("export_info"),
     K("source_resources", "source_resources_connection_info"), false},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", EK_TASK_SOURCE, K("source_resources"),
     K("source_resources", "source_resources_connection_info"), true},
    {"DEPLOY_TRANSFER_TARGET_RESOURCES", EK_TASK_DESTINATION, K("export_info", "volumes_info"),
     K("volumes_info", "target_resources", "target_resources_connection_info"), false},
    {"DELETE_TRANSFER_TARGET_RESOURCES", EK_TASK_DESTINATION, K("target_resources"),
     K("target_resources", "target_resources_connection_info"), true},
    {"SHUTDOWN_INSTANCE", EK_TASK_SOURCE, NONE, NONE, true},
    {"REPLICATE_DISKS", EK_TASK_BILATERAL,
     K("export_info", "volumes_info", "source_resources_connection_info",
       "target_resources_connection_info"),
     K("volumes_info"), true},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", EK_TASK_SOURCE, NONE, NONE, true},
    {"CREATE_TRANSFER_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"),
     false},
    {"DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"),
     K("volumes_info"), true},
    {"RESTORE_TRANSFER_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"),
     true},
    {"VALIDATE_DEPLOYMENT_INPUTS", EK_TASK_DESTINATION, K("export_info"), NONE, true},
    {"DEPLOY_INSTANCE_RESOURCES", EK_TASK_DESTINATION, K("export_info", "volumes_info"),
     K("instance_deployment_info"), false},
    {"DEPLOY_OS_MORPHING_RESOURCES", EK_TASK_DESTINATION, K("instance_deployment_info"),
     K("os_morphing_resources", "osmorphing_info", "osmorphing_connection_info"), false},
    {"OS_MORPHING", EK_TASK_BILATERAL, K("osmorphing_info", "osmorphing_connection_info"), NONE,
     true},
    {"DELETE_OS_MORPHING_RESOURCES", EK_TASK_DESTINATION, K("os_morphing_resources"),
     K("os_morphing_resources", "osmorphing_connection_info"), true},
    {"FINALIZE_INSTANCE_DEPLOYMENT", EK_TASK_DESTINATION, K("instance_deployment_info"),
     K("transfer_result"), true},
    {"CLEANUP_FAILED_INSTANCE_DEPLOYMENT", EK_TASK_DESTINATION, K("instance_deployment_info"), NONE,
     true},
    {"UPDATE_SOURCE_TRANSFER", EK_TASK_SOURCE, NONE, NONE, true},
    {"UPDATE_DESTINATION_TRANSFER", EK_TASK_DESTINATION, K("export_info"), NONE, true},
    {NULL, 0, NONE, NONE, false},
};

const ek_task_type_t *ek_task_type_find(const char *name)
{
    for (const ek_task_type_t *t = ek_task_types; name && t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static bool in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

bool ek_task_status_is_final(const char *s)
{
    static const char *const final[] = {EK_TS_COMPLETED,
                                        EK_TS_ERROR,
                                        EK_TS_UNSCHEDULED,
                                        EK_TS_CANCELED,
                                        EK_TS_FORCE_CANCELED,
                                        EK_TS_CANCELED_AFTER_COMPLETION,
                                        EK_TS_STRANDED_AFTER_DEADLOCK,
                                        EK_TS_FAILED_TO_SCHEDULE,
                                        NULL};
    return in(s, final);
}

bool ek_task_status_is_active(const char *s)
{
    static const char *const active[] = {EK_TS_PENDING, EK_TS_STARTING, EK_TS_RUNNING,
                                         EK_TS_CANCELLING, NULL};
    return in(s, active);
}

bool ek_execution_status_is_final(const char *s)
{
    static const char *const final[] = {EK_ES_COMPLETED, EK_ES_ERROR, EK_ES_CANCELED,
                                        EK_ES_DEADLOCKED, NULL};
    return in(s, final);
}
