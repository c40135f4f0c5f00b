/* tasks.h - task types and what each task type
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

/* What a completed task changes beyond its instance's task info. */
typedef enum ek_task_hook {
    EK_HOOK_NONE,
    EK_HOOK_TRANSFER_RESULT,  /* the deployment records the instance's transfer_result */
    EK_HOOK_REPLICA_RESTORED, /* the restored replica disks are the transfer's again */
    EK_HOOK_REPLICA_TAKEN, /* without clone_disks the new VM took them: the transfer forgets them */
} ek_task_hook_t;

typedef struct ek_task_type {
    const char *name;
    ek_task_platform_t platform;
    const char *requires[EK_TASK_MAX_KEYS + 1]; /* NULL-terminated */
    const char *provides[EK_TASK_MAX_KEYS + 1];
    bool rerunnable; /* safe to run again after its worker died mid-way */
    ek_task_hook_t hook;
} ek_task_type_t;

extern const ek_task_type_t ek_task_types[];
const ek_task_type_t *ek_task_type_find(const char *name);
/* True when the task runs against the origin endpoint (its provider and a
 * worker serving it): source tasks, and REPLICATE_DISKS (it reads the source
 * and writes to the destination's writer); the rest run against the
 * destination. */
bool ek_task_type_on_source(const ek_task_type_t *t);

#endif
