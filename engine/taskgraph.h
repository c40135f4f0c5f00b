/* taskgraph.h - the per-instance task DAGs of executions (research/coriolis.md
 * section 3): built in memory, checked (every key a task reads is produced
 * upstream or already in the instance's task info, no two tasks of one wave
 * write the same key, no cycle); engine/store.c inserts them as task rows. */
#ifndef EK_ENGINE_TASKGRAPH_H
#define EK_ENGINE_TASKGRAPH_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/error.h"
#include "common/uuid.h"
#include "proto/tasks.h"

#define EK_TG_MAX_DEPS 4

typedef struct ek_tg_task {
    char id[EK_UUID_STRLEN + 1];
    char *instance;
    const ek_task_type_t *type;
    int deps[EK_TG_MAX_DEPS];
    int n_deps;
    bool on_error;      /* cleanup: runs once its parents end, if one of them completed */
    bool on_error_only; /* rollback: runs only when the execution fails */
    json_object *params;
} ek_tg_task_t;

typedef struct ek_taskgraph {
    ek_tg_task_t *tasks;
    size_t n;
} ek_taskgraph_t;

typedef struct ek_transfer_opts {
    bool shutdown_instances;
    bool incremental;
} ek_transfer_opts_t;

typedef struct ek_deployment_opts {
    bool clone_disks;
    bool skip_os_morphing;
} ek_deployment_opts_t;

void ek_taskgraph_init(ek_taskgraph_t *g);
void ek_taskgraph_free(ek_taskgraph_t *g);
/* Adds a task; deps are indexes of earlier tasks, ending with -1. Returns its index. */
int ek_taskgraph_add(ek_taskgraph_t *g, const char *instance, const char *type, int on_error,
                     int on_error_only, ...);

void ek_taskgraph_transfer(ek_taskgraph_t *g, const char *instance, const ek_transfer_opts_t *o);
void ek_taskgraph_deployment(ek_taskgraph_t *g, const char *instance,
                             const ek_deployment_opts_t *o);
void ek_taskgraph_delete_disks(ek_taskgraph_t *g, const char *instance);
void ek_taskgraph_update(ek_taskgraph_t *g, const char *instance);

/* Checks the graph against the instances' current task info ({instance: {...}}). */
EK_ERR_CHECK ek_taskgraph_check(const ek_taskgraph_t *g, json_object *info);
#endif
