/* machine.h - the execution state machine (research/coriolis.md sections
 * 2-3) as a pure function: a snapshot of one execution (its tasks, their
 * statuses, dependencies and attempts) and one event (a worker's report, a
 * cancel request, a lost worker) in; the new statuses and the list of
 * effects out (rows to write, cancels to send, notifications). No database,
 * no broker, no clock: engine/store.c loads the snapshot under the
 * execution's row lock and applies the effects in the same transaction.
 *
 * Ownership: the snapshot's tasks array is the caller's; effects own their
 * text (ek_em_effects_release). */
#ifndef EK_ENGINE_MACHINE_H
#define EK_ENGINE_MACHINE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "common/uuid.h"
#include "engine/taskgraph.h"
#include "proto/status.h"
#include "proto/tasks.h"

/* ---- the snapshot ------------------------------------------------------------- */

#define EK_EM_MAX_DEPS 16

typedef struct ek_em_task {
    char id[EK_UUID_STRLEN + 1];
    ek_task_status_t status;
    ek_task_status_t saved;     /* as stored: a difference is a row to write */
    const ek_task_type_t *type; /* NULL: unknown to this build */
    int deps[EK_EM_MAX_DEPS];   /* indexes of parents in the snapshot */
    int n_deps;
    bool on_error;      /* cleanup: runs once its parents end, if one did its work */
    bool on_error_only; /* rollback: runs only when the execution fails */
    char attempt_id[EK_UUID_STRLEN + 1]; /* the attempt dispatched, "" if none */
    char host[256];                      /* the worker that claimed it, "" if none */
    bool cancel_pending, cancel_force;   /* a cancel to send to its worker */
} ek_em_task_t;

typedef struct ek_em_exec {
    char id[EK_UUID_STRLEN + 1];
    ek_exec_status_t status;
    bool cancel_requested, cancel_force, failed;
    ek_em_task_t *tasks;
    size_t n;
} ek_em_exec_t;

/* ---- events ------------------------------------------------------------------- */

typedef enum ek_em_event_kind {
    EK_EV_CLAIM,     /* a worker asks whether its attempt may run */
    EK_EV_COMPLETED, /* with result */
    EK_EV_ERROR,     /* with message, details */
    EK_EV_CANCELED,
    EK_EV_EVENT,       /* a task event (message, level): a row, no transition */
    EK_EV_STATE,       /* what a re-run needs to resume: a row, no transition */
    EK_EV_PROGRESS,    /* a progress update: a row, no transition */
    EK_EV_CANCEL,      /* the user cancels the execution (force) */
    EK_EV_WORKER_LOST, /* host stopped answering */
} ek_em_event_kind_t;

typedef struct ek_em_event {
    ek_em_event_kind_t kind;
    const char *task_id;    /* reports */
    const char *attempt_id; /* reports */
    const char *host;       /* claim, worker lost */
    json_object *result;    /* completed */
    const char *message;    /* error */
    const char *details;    /* error, or NULL */
    bool force;             /* cancel */
} ek_em_event_t;

/* ---- effects ------------------------------------------------------------------- */

typedef enum ek_em_effect_kind {
    EK_FX_TASK_CLAIMED,    /* task: RUNNING on the event's host (its process, started now) */
    EK_FX_TASK_REQUEUED,   /* task: PENDING again, its attempt forgotten; text: the event */
    EK_FX_TASK_EXCEPTION,  /* task: exception_details = text */
    EK_FX_TASK_RESULT,     /* task: the event's result goes into the action's task info */
    EK_FX_TASK_HOOK,       /* task: its type's post-completion hook (type->hook) */
    EK_FX_TASK_REPORT,     /* task: the event's row (event, state or progress) */
    EK_FX_TASK_STATUS,     /* task: status written; cancel_pending/force: a cancel to send */
    EK_FX_EXEC_FAILED,     /* the execution failed (its normal work stops) */
    EK_FX_EXEC_CANCEL,     /* cancel requested; flag: forced */
    EK_FX_EXEC_STATUS,     /* the execution's (and its action's) status; flag: final */
    EK_FX_EXEC_DEADLOCKED, /* tasks were stranded: nothing can run any more */
    EK_FX_EXEC_FINISHED,   /* the execution ended (status): what follows it may start */
} ek_em_effect_kind_t;

typedef struct ek_em_effect {
    ek_em_effect_kind_t kind;
    int task;           /* index in the snapshot, or -1 */
    int status;         /* ek_task_status_t or ek_exec_status_t by kind */
    bool flag;          /* EXEC_CANCEL: force; EXEC_STATUS: final */
    bool cancel, force; /* TASK_STATUS: a cancel to send */
    char *text;         /* TASK_EXCEPTION, TASK_REQUEUED */
} ek_em_effect_t;

typedef struct ek_em_effects {
    ek_em_effect_t *v;
    size_t n, cap;
    bool granted; /* claim: the attempt may run */
    bool ignored; /* a stale or duplicate report: nothing changes */
    int affected; /* worker lost: tasks touched */
} ek_em_effects_t;

void ek_em_effects_release(ek_em_effects_t *fx);

/* Applies one event to the snapshot: statuses change in place and fx gets
 * what must be written and sent, in order. An error (nothing to apply, fx
 * empty) only for a request that cannot be honoured, e.g. cancelling an
 * execution that has ended. */
EK_ERR_CHECK ek_em_apply(ek_em_exec_t *e, const ek_em_event_t *ev, ek_em_effects_t *fx);

/* The snapshot of a new execution of graph g, each task with the status
 * engine/store.c inserts it with (tasks without parents PENDING, rollbacks
 * EXECUTE_ON_ERROR_ONLY, the rest SCHEDULED); e->tasks is allocated (free()). */
void ek_em_exec_from_graph(const ek_taskgraph_t *g, ek_em_exec_t *e);
ek_task_status_t ek_em_initial_status(const ek_tg_task_t *t);

/* The result must hold exactly the keys the task type declares. */
EK_ERR_CHECK ek_em_check_result(const ek_task_type_t *type, json_object *result);

#endif
