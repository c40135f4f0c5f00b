/* tasks.c - the task type table. */
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
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", EK_TASK_SOURCE, NONE, NONE, true, EK_HOOK_NONE},
    {"GET_INSTANCE_INFO", EK_TASK_SOURCE, NONE, K("export_info"), true, EK_HOOK_NONE},
    {"VALIDATE_TRANSFER_DESTINATION_INPUTS", EK_TASK_DESTINATION, K("export_info"), NONE, true,
     EK_HOOK_NONE},
    {"DEPLOY_TRANSFER_DISKS", EK_TASK_DESTINATION, K("export_info"), K("volumes_info"), true,
     EK_HOOK_NONE},
    {"DELETE_TRANSFER_DISKS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"), true,
     EK_HOOK_NONE},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", EK_TASK_SOURCE, K("export_info"),
     K("source_resources", "source_resources_connection_info"), false, EK_HOOK_NONE},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", EK_TASK_SOURCE, K("source_resources"),
     K("source_resources", "source_resources_connection_info"), true, EK_HOOK_NONE},
    {"DEPLOY_TRANSFER_TARGET_RESOURCES", EK_TASK_DESTINATION, K("export_info", "volumes_info"),
     K("volumes_info", "target_resources", "target_resources_connection_info"), false,
     EK_HOOK_NONE},
    {"DELETE_TRANSFER_TARGET_RESOURCES", EK_TASK_DESTINATION, K("target_resources"),
     K("target_resources", "target_resources_connection_info"), true, EK_HOOK_NONE},
    {"SHUTDOWN_INSTANCE", EK_TASK_SOURCE, NONE, NONE, true, EK_HOOK_NONE},
    {"REPLICATE_DISKS", EK_TASK_BILATERAL,
     K("export_info", "volumes_info", "source_resources_connection_info",
       "target_resources_connection_info"),
     K("volumes_info"), true, EK_HOOK_NONE},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", EK_TASK_SOURCE, NONE, NONE, true, EK_HOOK_NONE},
    {"CREATE_TRANSFER_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"),
     false, EK_HOOK_NONE},
    {"DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"),
     K("volumes_info"), true, EK_HOOK_REPLICA_TAKEN},
    {"RESTORE_TRANSFER_DISK_SNAPSHOTS", EK_TASK_DESTINATION, K("volumes_info"), K("volumes_info"),
     true, EK_HOOK_REPLICA_RESTORED},
    {"VALIDATE_DEPLOYMENT_INPUTS", EK_TASK_DESTINATION, K("export_info"), NONE, true, EK_HOOK_NONE},
    {"DEPLOY_INSTANCE_RESOURCES", EK_TASK_DESTINATION, K("export_info", "volumes_info"),
     K("instance_deployment_info"), false, EK_HOOK_NONE},
    {"DEPLOY_OS_MORPHING_RESOURCES", EK_TASK_DESTINATION, K("instance_deployment_info"),
     K("os_morphing_resources", "osmorphing_info", "osmorphing_connection_info"), false,
     EK_HOOK_NONE},
    {"OS_MORPHING", EK_TASK_BILATERAL, K("osmorphing_info", "osmorphing_connection_info"), NONE,
     true, EK_HOOK_NONE},
    {"DELETE_OS_MORPHING_RESOURCES", EK_TASK_DESTINATION, K("os_morphing_resources"),
     K("os_morphing_resources", "osmorphing_connection_info"), true, EK_HOOK_NONE},
    {"FINALIZE_INSTANCE_DEPLOYMENT", EK_TASK_DESTINATION, K("instance_deployment_info"),
     K("transfer_result"), true, EK_HOOK_TRANSFER_RESULT},
    {"CLEANUP_FAILED_INSTANCE_DEPLOYMENT", EK_TASK_DESTINATION, K("instance_deployment_info"), NONE,
     true, EK_HOOK_NONE},
    {"UPDATE_SOURCE_TRANSFER", EK_TASK_SOURCE, NONE, NONE, true, EK_HOOK_NONE},
    {"UPDATE_DESTINATION_TRANSFER", EK_TASK_DESTINATION, K("export_info"), NONE, true,
     EK_HOOK_NONE},
    {NULL, 0, NONE, NONE, false, EK_HOOK_NONE},
};

const ek_task_type_t *ek_task_type_find(const char *name)
{
    for (const ek_task_type_t *t = ek_task_types; name && t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

bool ek_task_type_on_source(const ek_task_type_t *t)
{
    return t && (t->platform == EK_TASK_SOURCE ||
                 (t->platform == EK_TASK_BILATERAL && strcmp(t->name, "REPLICATE_DISKS") == 0));
}
