/* store.h - the engine as the conductor and the scheduler use it: creating
 * executions and their task graphs, applying what workers report (claims,
 * results merged into the instance's task info in the same transaction as
 * the status change, errors, events, progress), cancellation and lost
 * workers. The transitions themselves are engine/machine.h's; this layer
 * loads an execution's snapshot, hands it one event and writes the effects.
 *
 * Every function runs its own transaction. A transition serialises on the
 * execution's row lock; a claim or a row report (event, state, progress)
 * moves no other task and locks only its task's row. Any number of
 * conductors may call them at once. */
#ifndef EK_ENGINE_STORE_H
#define EK_ENGINE_STORE_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "common/error.h"
#include "common/uuid.h"
#include "proto/messages.h"

typedef char ek_id_t[EK_UUID_STRLEN + 1];

typedef struct ek_deploy_opts {
    bool clone_disks;
    bool skip_os_morphing;
    bool force;                /* deploy without a completed transfer execution */
    json_object *user_scripts; /* NULL: the transfer's */
    json_object *instance_osmorphing_minion_pool_mappings; /* NULL: the transfer's */
} ek_deploy_opts_t;

/* scope: the caller's project, or NULL for an admin. */
EK_ERR_CHECK ek_engine_execute_transfer(PGconn *db, const char *transfer_id, const char *scope,
                                        bool shutdown_instances, bool auto_deploy, ek_id_t exec_id);
EK_ERR_CHECK ek_engine_delete_disks(PGconn *db, const char *transfer_id, const char *scope,
                                    ek_id_t exec_id);
EK_ERR_CHECK ek_engine_update_transfer(PGconn *db, const char *transfer_id, const char *scope,
                                       ek_id_t exec_id);
EK_ERR_CHECK ek_engine_deploy(PGconn *db, const char *transfer_id, const char *scope,
                              const char *user_id, const ek_deploy_opts_t *opts,
                              ek_id_t deployment_id, ek_id_t exec_id);
EK_ERR_CHECK ek_engine_cancel(PGconn *db, const char *exec_id, const char *scope, bool force);
/* Applies a worker's report. For a claim, *granted says whether the attempt
 * may run. A stale or duplicate report changes nothing and is no error. */
EK_ERR_CHECK ek_engine_report(PGconn *db, const ek_task_report_t *r, const char *message_id,
                              bool *granted);
/* A worker stopped answering: its running tasks that are safe to re-run go back
 * to PENDING (a new attempt, on another worker), the others fail and their
 * execution cleans up; tasks sent to its queue but not taken are sent again.
 * *affected counts the tasks touched. */
EK_ERR_CHECK ek_engine_worker_lost(PGconn *db, const char *host, int *affected);
/* {"id", "status", ..., "tasks": [...with events and progress_updates]} */
EK_ERR_CHECK ek_engine_execution_json(PGconn *db, const char *exec_id, bool with_tasks,
                                      json_object **out);

#endif
