/* store.c - the engine's SQL layer: loads an execution's snapshot under its
 * row lock, hands one event to the state machine (engine/machine.c) and
 * writes the effects it returns, all in one transaction (ek_db_tx). Creating
 * executions (task graphs into rows) lives here too. */
#include "engine/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "engine/machine.h"
#include "engine/taskgraph.h"
#include "proto/tasks.h"

/* ---- transactions --------------------------------------------------------------- */

/* The engine's transactions touch only the database: a deadlock or a
 * serialization failure runs them again, up to 5 times. */
static ek_err_t *in_tx(PGconn *db, ek_db_tx_fn fn, void *arg)
{
    return ek_db_tx(db, 5, fn, arg);
}

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* ---- loading ------------------------------------------------------------------------ */

/* An execution as loaded: the machine's snapshot and what the store needs
 * beside it to write effects. */
struct loaded {
    ek_em_exec_t e;
    char type[32];
    char action_id[EK_UUID_STRLEN + 1];
    char action_type[16];
    bool auto_deploy;
    char **instance; /* of each task */
};

static void loaded_free(struct loaded *l)
{
    for (size_t i = 0; l->instance && i < l->e.n; i++)
        free(l->instance[i]);
    free(l->instance);
    free(l->e.tasks);
    memset(l, 0, sizeof(*l));
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* Fills task i of the snapshot from row r of a result with the columns id,
 * status, task_type, on_error, on_error_only, attempt_id, host, instance. */
static ek_err_t *task_from_row(struct loaded *l, size_t i, PGresult *res, int r)
{
    ek_em_task_t *t = &l->e.tasks[i];
    copy(t->id, sizeof(t->id), PQgetvalue(res, r, 0));
    if (!ek_task_status_parse(PQgetvalue(res, r, 1), &t->status))
        return ek_err_new(EK_E_INTERNAL, "task %s has the unknown status '%s'", t->id,
                          PQgetvalue(res, r, 1));
    t->saved = t->status;
    t->type = ek_task_type_find(PQgetvalue(res, r, 2));
    t->on_error = PQgetvalue(res, r, 3)[0] == 't';
    t->on_error_only = PQgetvalue(res, r, 4)[0] == 't';
    copy(t->attempt_id, sizeof(t->attempt_id), PQgetvalue(res, r, 5));
    copy(t->host, sizeof(t->host), PQgetvalue(res, r, 6));
    free(l->instance[i]);
    l->instance[i] = ek_xstrdup(PQgetvalue(res, r, 7));
    return NULL;
}

#define TASK_COLUMNS "id, status, task_type, on_error, on_error_only, attempt_id, host, instance"

/* Locks the execution row and loads it with its tasks: the execution
 * exec_id, or (exec_id NULL) the one of task task_id. */
static ek_err_t *load_execution_of(PGconn *db, const char *exec_id, const char *task_id,
                                   struct loaded *l)
{
    PGresult *res;
    memset(l, 0, sizeof(*l));
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT id, status, type, action_id, action_type, "
                                "cancel_requested, cancel_force, failed, auto_deploy FROM "
                                "executions WHERE id = coalesce($1::uuid, (SELECT execution_id "
                                "FROM tasks WHERE id = $2::uuid)) FOR UPDATE",
                                2, (const char *[]){exec_id, task_id});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return exec_id ? ek_err_new(EK_E_NOTFOUND, "execution %s not found", exec_id)
                       : ek_err_new(EK_E_NOTFOUND, "task %s not found", task_id);
    }
    ek_em_exec_t *e = &l->e;
    copy(e->id, sizeof(e->id), PQgetvalue(res, 0, 0));
    if (!ek_exec_status_parse(PQgetvalue(res, 0, 1), &e->status))
        err = ek_err_new(EK_E_INTERNAL, "execution %s has the unknown status '%s'", e->id,
                         PQgetvalue(res, 0, 1));
    copy(l->type, sizeof(l->type), PQgetvalue(res, 0, 2));
    copy(l->action_id, sizeof(l->action_id), PQgetvalue(res, 0, 3));
    copy(l->action_type, sizeof(l->action_type), PQgetvalue(res, 0, 4));
    e->cancel_requested = PQgetvalue(res, 0, 5)[0] == 't';
    e->cancel_force = PQgetvalue(res, 0, 6)[0] == 't';
    e->failed = PQgetvalue(res, 0, 7)[0] == 't';
    l->auto_deploy = PQgetvalue(res, 0, 8)[0] == 't';
    PQclear(res);
    if (err || (err = ek_db_query(db, &res,
                                  "SELECT " TASK_COLUMNS ", depends_on::text FROM tasks "
                                  "WHERE execution_id = $1 ORDER BY index",
                                  1, (const char *[]){l->e.id})))
        return err;
    e->n = (size_t)PQntuples(res);
    e->tasks = ek_xcalloc(e->n + 1, sizeof(*e->tasks));
    l->instance = ek_xcalloc(e->n + 1, sizeof(char *));
    for (size_t i = 0; !err && i < e->n; i++)
        err = task_from_row(l, i, res, (int)i);
    /* dependencies: "{uuid,uuid}" into indexes */
    for (size_t i = 0; !err && i < e->n; i++) {
        const char *p = PQgetvalue(res, (int)i, 8);
        while (*p) {
            if (*p == '{' || *p == ',' || *p == '}') {
                p++;
                continue;
            }
            for (size_t j = 0; j < e->n; j++) {
                if (strncmp(p, e->tasks[j].id, EK_UUID_STRLEN) == 0 &&
                    e->tasks[i].n_deps < EK_EM_MAX_DEPS) {
                    e->tasks[i].deps[e->tasks[i].n_deps++] = (int)j;
                    break;
                }
            }
            p += strcspn(p, ",}");
        }
    }
    PQclear(res);
    return err;
}

static ek_err_t *load_execution(PGconn *db, const char *exec_id, struct loaded *l)
{
    return load_execution_of(db, exec_id, NULL, l);
}

/* ---- writing effects ------------------------------------------------------------------ */

/* Task status changes are gathered and written by one statement. */
struct status_batch {
    ek_strbuf_t ids, statuses, cancels, forces;
    int n;
};

static void batch_add(struct status_batch *b, const ek_em_task_t *t, const ek_em_effect_t *f)
{
    const char *sep = b->n ? "," : "{";
    ek_strbuf_addf(&b->ids, "%s%s", sep, t->id);
    ek_strbuf_addf(&b->statuses, "%s%s", sep, ek_task_status_name((ek_task_status_t)f->status));
    ek_strbuf_addf(&b->cancels, "%s%s", sep, f->cancel ? "t" : "f");
    ek_strbuf_addf(&b->forces, "%s%s", sep, f->force ? "t" : "f");
    b->n++;
}

static ek_err_t *batch_flush(PGconn *db, struct status_batch *b)
{
    ek_err_t *err = NULL;
    if (b->n) {
        ek_strbuf_addch(&b->ids, '}');
        ek_strbuf_addch(&b->statuses, '}');
        ek_strbuf_addch(&b->cancels, '}');
        ek_strbuf_addch(&b->forces, '}');
        err = ek_db_query(
            db, NULL,
            "UPDATE tasks t SET status = v.status, updated_at = now(), "
            "cancel_pending = t.cancel_pending OR v.cancel, "
            "cancel_force = t.cancel_force OR v.force, "
            "finished_at = CASE WHEN v.status IN ('COMPLETED','ERROR','UNSCHEDULED','CANCELED',"
            "'FORCE_CANCELED','CANCELED_AFTER_COMPLETION','STRANDED_AFTER_DEADLOCK',"
            "'FAILED_TO_SCHEDULE') THEN coalesce(t.finished_at, now()) END "
            "FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::bool[]) "
            "AS v(id, status, cancel, force) WHERE t.id = v.id",
            4, (const char *[]){b->ids.buf, b->statuses.buf, b->cancels.buf, b->forces.buf});
    }
    ek_strbuf_release(&b->ids);
    ek_strbuf_release(&b->statuses);
    ek_strbuf_release(&b->cancels);
    ek_strbuf_release(&b->forces);
    b->n = 0;
    return err;
}

/* What caused the effects, for the rows they write. */
struct cause {
    const ek_task_report_t *r; /* a worker's report, or NULL */
    const char *message_id;
};

/* Shallow-merges a task's result into its action's task info for the instance. */
static ek_err_t *merge_result(PGconn *db, const struct loaded *l, const char *instance,
                              json_object *result)
{
    const char *text = json_object_to_json_string(result);
    return ek_db_query(db, NULL,
                       is(l->action_type, "transfer")
                           ? "UPDATE transfers SET info = jsonb_set(info, ARRAY[$2], "
                             "coalesce(info->$2, '{}') || $3::jsonb), updated_at = now() "
                             "WHERE id = $1"
                           : "UPDATE deployments SET info = jsonb_set(info, ARRAY[$2], "
                             "coalesce(info->$2, '{}') || $3::jsonb), updated_at = now() "
                             "WHERE id = $1",
                       3, (const char *[]){l->action_id, instance, text});
}

/* What a completed deployment task changes beyond its own task info
 * (ek_task_type_t.hook). */
static ek_err_t *run_hook(PGconn *db, const struct loaded *l, ek_task_hook_t hook,
                          const char *instance, json_object *result)
{
    if (!is(l->action_type, "deployment"))
        return NULL;
    if (hook == EK_HOOK_TRANSFER_RESULT) {
        json_object *tr = json_object_object_get(result, "transfer_result");
        return ek_db_query(
            db, NULL,
            "UPDATE deployments SET transfer_result = jsonb_set("
            "coalesce(transfer_result, '{}'), ARRAY[$2], $3::jsonb) WHERE id = $1",
            3,
            (const char *[]){l->action_id, instance, tr ? json_object_to_json_string(tr) : "null"});
    }
    /* Restored disks are the transfer's again. Without clone_disks, a
     * successful deployment took the replica disks for the new VM: the
     * transfer must never write to them again, so it forgets them. */
    bool restored = hook == EK_HOOK_REPLICA_RESTORED;
    json_object *vols = json_object_object_get(result, "volumes_info");
    return ek_db_query(db, NULL,
                       "UPDATE transfers t SET info = jsonb_set(t.info, ARRAY[$2, "
                       "'volumes_info'], $3::jsonb), updated_at = now() "
                       "FROM deployments d WHERE d.id = $1 AND t.id = d.transfer_id "
                       "AND ($4 OR NOT d.clone_disks) AND t.info ? $2",
                       4,
                       (const char *[]){l->action_id, instance,
                                        restored && vols ? json_object_to_json_string(vols) : "[]",
                                        restored ? "true" : "false"});
}

/* The row a report writes without a transition: an event, the state a
 * re-run resumes from, or a progress update. */
static ek_err_t *report_row(PGconn *db, const struct cause *c)
{
    const ek_task_report_t *r = c->r;
    if (r->kind == EK_MSG_T_TASK_EVENT)
        return ek_db_query(db, NULL,
                           "INSERT INTO task_events (task_id, message_id, level, message, index) "
                           "VALUES ($1, $2, $3, $4, (SELECT count(*) FROM task_events WHERE "
                           "task_id = $1)) ON CONFLICT (message_id) DO NOTHING",
                           4, (const char *[]){r->task_id, c->message_id, r->level, r->message});
    if (r->kind == EK_MSG_T_TASK_STATE)
        return ek_db_query(db, NULL, "UPDATE tasks SET state = $2 WHERE id = $1", 2,
                           (const char *[]){r->task_id, json_object_to_json_string(r->state)});
    char idx[32], cur[32], tot[32];
    snprintf(idx, sizeof(idx), "%lld", (long long)r->index);
    snprintf(cur, sizeof(cur), "%lld", (long long)r->current_step);
    snprintf(tot, sizeof(tot), "%lld", (long long)r->total_steps);
    /* a step only moves forward: a late, older update is dropped */
    return ek_db_query(
        db, NULL,
        "INSERT INTO task_progress_updates (task_id, index, current_step, total_steps, "
        "message) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, index) DO UPDATE SET "
        "current_step = EXCLUDED.current_step, total_steps = EXCLUDED.total_steps, "
        "message = EXCLUDED.message, updated_at = now() "
        "WHERE task_progress_updates.current_step <= EXCLUDED.current_step",
        5, (const char *[]){r->task_id, idx, cur, tot, r->message});
}

static ek_err_t *finalize(PGconn *db, const struct loaded *l);

static ek_err_t *apply_one(PGconn *db, struct loaded *l, const struct cause *c,
                           const ek_em_effect_t *f)
{
    const ek_em_task_t *t = f->task >= 0 ? &l->e.tasks[f->task] : NULL;
    const char *inst = f->task >= 0 ? l->instance[f->task] : NULL;
    const char *eid = l->e.id;
    switch (f->kind) {
    case EK_FX_TASK_CLAIMED: {
        char pid[32];
        snprintf(pid, sizeof(pid), "%lld", (long long)c->r->process_id);
        return ek_db_query(db, NULL,
                           "UPDATE tasks SET status = 'RUNNING', host = $2, process_id = $3, "
                           "started_at = now(), updated_at = now() WHERE id = $1",
                           3, (const char *[]){t->id, c->r->host, c->r->process_id ? pid : NULL});
    }
    case EK_FX_TASK_REQUEUED: {
        ek_err_t *err = ek_db_query(db, NULL,
                                    "UPDATE tasks SET status = 'PENDING', host = NULL, process_id "
                                    "= NULL, dispatched_at = NULL, dispatched_to = NULL, "
                                    "attempt_id = NULL, updated_at = now() WHERE id = $1",
                                    1, (const char *[]){t->id});
        return err ? err
                   : ek_db_query(db, NULL,
                                 "INSERT INTO task_events (task_id, level, message) VALUES ($1, "
                                 "'WARNING', $2)",
                                 2, (const char *[]){t->id, f->text});
    }
    case EK_FX_TASK_EXCEPTION:
        ek_log_kv(EK_LOG_WARNING, "task failed", "task_id", t->id, "task_type",
                  t->type ? t->type->name : "?", "execution_id", eid, "error", f->text, NULL);
        return ek_db_query(db, NULL, "UPDATE tasks SET exception_details = $2 WHERE id = $1", 2,
                           (const char *[]){t->id, f->text});
    case EK_FX_TASK_RESULT:
        return merge_result(db, l, inst, c->r->result);
    case EK_FX_TASK_HOOK:
        return run_hook(db, l, t->type->hook, inst, c->r->result);
    case EK_FX_TASK_REPORT:
        return report_row(db, c);
    case EK_FX_TASK_STATUS:
        return NULL; /* batched by the caller */
    case EK_FX_EXEC_FAILED:
        return ek_db_query(db, NULL, "UPDATE executions SET failed = true WHERE id = $1", 1,
                           (const char *[]){eid});
    case EK_FX_EXEC_CANCEL:
        ek_log_kv(EK_LOG_INFO, "execution cancel requested", "execution_id", eid, "force",
                  f->flag ? "true" : "false", NULL);
        return ek_db_query(db, NULL,
                           "UPDATE executions SET cancel_requested = true, "
                           "cancel_force = cancel_force OR $2, updated_at = now() WHERE id = $1",
                           2, (const char *[]){eid, f->flag ? "true" : "false"});
    case EK_FX_EXEC_STATUS: {
        const char *st = ek_exec_status_name((ek_exec_status_t)f->status);
        ek_err_t *err = ek_db_query(db, NULL,
                                    "UPDATE executions SET status = $2, updated_at = now(), "
                                    "finished_at = CASE WHEN $3 THEN now() END WHERE id = $1",
                                    3, (const char *[]){eid, st, f->flag ? "true" : "false"});
        return err ? err
                   : ek_db_query(db, NULL,
                                 is(l->action_type, "transfer")
                                     ? "UPDATE transfers SET last_execution_status = $2, "
                                       "updated_at = now() WHERE id = $1"
                                     : "UPDATE deployments SET last_execution_status = $2, "
                                       "updated_at = now() WHERE id = $1",
                                 2, (const char *[]){l->action_id, st});
    }
    case EK_FX_EXEC_DEADLOCKED:
        ek_log_kv(EK_LOG_ERROR, "execution deadlocked", "execution_id", eid, NULL);
        return NULL;
    case EK_FX_EXEC_FINISHED:
        ek_log_kv(EK_LOG_INFO, "execution finished", "execution_id", eid, "status",
                  ek_exec_status_name((ek_exec_status_t)f->status), NULL);
        return finalize(db, l);
    }
    return NULL;
}

/* Writes the effects in their order; status changes in one statement. */
static ek_err_t *apply_effects(PGconn *db, struct loaded *l, const struct cause *c,
                               const ek_em_effects_t *fx)
{
    struct status_batch b = {EK_STRBUF_INIT, EK_STRBUF_INIT, EK_STRBUF_INIT, EK_STRBUF_INIT, 0};
    ek_err_t *err = NULL;
    for (size_t i = 0; !err && i < fx->n; i++) {
        const ek_em_effect_t *f = &fx->v[i];
        if (f->kind == EK_FX_TASK_STATUS) {
            batch_add(&b, &l->e.tasks[f->task], f);
            continue;
        }
        if (b.n)
            err = batch_flush(db, &b);
        if (!err)
            err = apply_one(db, l, c, f);
    }
    ek_err_t *ferr = batch_flush(db, &b);
    if (!err)
        err = ferr;
    else
        ek_err_free(ferr);
    return err;
}

/* Hands the event to the machine and writes what it says. */
static ek_err_t *run_event(PGconn *db, struct loaded *l, const ek_em_event_t *ev,
                           const struct cause *c, ek_em_effects_t *fx)
{
    ek_err_t *err = ek_em_apply(&l->e, ev, fx);
    if (!err)
        err = apply_effects(db, l, c, fx);
    return err;
}

/* ---- creating executions: task graphs into rows ---------------------------------------- */

/* Inserts the tasks of execution_id in one statement. Tasks without
 * dependencies start PENDING, rollback tasks EXECUTE_ON_ERROR_ONLY, the rest
 * SCHEDULED. */
static ek_err_t *insert_tasks(PGconn *db, const ek_taskgraph_t *g, const char *execution_id)
{
    _cleanup_json_ json_object *rows = json_object_new_array();
    for (size_t i = 0; i < g->n; i++) {
        const ek_tg_task_t *t = &g->tasks[i];
        json_object *deps = json_object_new_array();
        for (int d = 0; d < t->n_deps; d++)
            json_object_array_add(deps, json_object_new_string(g->tasks[t->deps[d]].id));
        ek_task_status_t st = ek_em_initial_status(t);
        json_object *row = json_object_new_object();
        json_object_object_add(row, "id", json_object_new_string(t->id));
        json_object_object_add(row, "instance", json_object_new_string(t->instance));
        json_object_object_add(row, "task_type", json_object_new_string(t->type->name));
        json_object_object_add(row, "status", json_object_new_string(ek_task_status_name(st)));
        json_object_object_add(row, "depends_on", deps);
        json_object_object_add(row, "on_error", json_object_new_boolean(t->on_error));
        json_object_object_add(row, "on_error_only", json_object_new_boolean(t->on_error_only));
        json_object_object_add(row, "index", json_object_new_int((int)i));
        json_object_object_add(row, "params", json_object_get(t->params));
        json_object_array_add(rows, row);
    }
    return ek_db_query(
        db, NULL,
        "INSERT INTO tasks (id, execution_id, instance, task_type, status, depends_on, "
        "on_error, on_error_only, index, params) "
        "SELECT r.id, $1, r.instance, r.task_type, r.status, "
        "ARRAY(SELECT jsonb_array_elements_text(r.depends_on))::uuid[], r.on_error, "
        "r.on_error_only, r.index, r.params "
        "FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, instance text, task_type text, "
        "status text, depends_on jsonb, on_error bool, on_error_only bool, index int, "
        "params jsonb) ORDER BY r.index",
        2, (const char *[]){execution_id, json_object_to_json_string(rows)});
}

/* ---- creating executions --------------------------------------------------------------- */

struct create_args {
    const char *transfer_id;
    const char *scope;
    const char *user_id;
    const char *type; /* transfer_execution, transfer_disks_delete, transfer_update */
    bool shutdown_instances, auto_deploy;
    const ek_deploy_opts_t *deploy;
    char *exec_id;
    char *deployment_id;
};

/* Locks the transfer (in scope) and checks that nothing runs on it. */
static ek_err_t *lock_transfer(PGconn *db, const char *id, const char *scope, json_object **info,
                               json_object **instances)
{
    PGresult *res;
    *info = *instances = NULL;
    if (!ek_uuid_is_valid(id))
        return ek_err_new(EK_E_NOTFOUND, "transfer %s not found", id);
    ek_err_t *err =
        ek_db_query(db, &res,
                    "SELECT info::text, instances::text FROM transfers WHERE id = $1 AND "
                    "deleted_at IS NULL AND ($2::uuid IS NULL OR project_id = $2) "
                    "FOR UPDATE",
                    2, (const char *[]){id, scope});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_NOTFOUND, "transfer %s not found", id);
    }
    const char *i = PQgetvalue(res, 0, 0), *n = PQgetvalue(res, 0, 1);
    err = ek_json_parse(i, strlen(i), info);
    if (!err)
        err = ek_json_parse(n, strlen(n), instances);
    PQclear(res);
    if (err)
        return err;
    err = ek_db_query(
        db, &res,
        "SELECT e.id FROM executions e WHERE e.action_id = $1 AND e.finished_at IS NULL "
        "AND e.deleted_at IS NULL "
        "UNION ALL SELECT e.id FROM executions e JOIN deployments d ON d.id = e.action_id "
        "WHERE d.transfer_id = $1 AND e.finished_at IS NULL AND e.deleted_at IS NULL "
        "LIMIT 1",
        1, (const char *[]){id});
    if (err)
        return err;
    if (PQntuples(res)) {
        err = ek_err_new(EK_E_CONFLICT,
                         "transfer %s has execution %s running: wait for it to end or cancel it",
                         id, PQgetvalue(res, 0, 0));
        PQclear(res);
        return err;
    }
    PQclear(res);
    return NULL;
}

static ek_err_t *insert_execution(PGconn *db, const char *action_id, const char *action_type,
                                  const char *type, bool shutdown, bool auto_deploy,
                                  ek_taskgraph_t *g, json_object *info, char *exec_id)
{
    ek_err_t *err = ek_taskgraph_check(g, info);
    if (err)
        return err;
    ek_uuid_generate(exec_id);
    err =
        ek_db_query(db, NULL,
                    "INSERT INTO executions (id, project_id, action_id, action_type, type, "
                    "number, status, shutdown_instances, auto_deploy) "
                    "SELECT $1, a.project_id, $2, $3, $4, "
                    "coalesce((SELECT max(number) FROM executions WHERE action_id = $2), 0) + 1, "
                    "'RUNNING', $5, $6 FROM actions a WHERE a.id = $2",
                    6,
                    (const char *[]){exec_id, action_id, action_type, type,
                                     shutdown ? "true" : "false", auto_deploy ? "true" : "false"});
    if (!err)
        err = insert_tasks(db, g, exec_id);
    if (!err)
        err = ek_db_query(db, NULL,
                          is(action_type, "transfer")
                              ? "UPDATE transfers SET last_execution_status = 'RUNNING', "
                                "updated_at = now() WHERE id = $1"
                              : "UPDATE deployments SET last_execution_status = 'RUNNING', "
                                "updated_at = now() WHERE id = $1",
                          1, (const char *[]){action_id});
    if (!err)
        ek_log_kv(EK_LOG_INFO, "execution created", "execution_id", exec_id, "type", type,
                  "action_id", action_id, NULL);
    return err;
}

static ek_err_t *create_tx(PGconn *db, void *arg)
{
    struct create_args *a = arg;
    json_object *info, *instances;
    ek_err_t *err = lock_transfer(db, a->transfer_id, a->scope, &info, &instances);
    if (err)
        return err;
    ek_taskgraph_t g;
    ek_taskgraph_init(&g);
    size_t n = json_object_array_length(instances);
    bool incremental = false;
    if (is(a->type, "transfer_execution")) {
        PGresult *res;
        err = ek_db_query(db, &res,
                          "SELECT 1 FROM executions WHERE action_id = $1 AND type = "
                          "'transfer_execution' AND status = 'COMPLETED' LIMIT 1",
                          1, (const char *[]){a->transfer_id});
        if (!err) {
            incremental = PQntuples(res) > 0;
            PQclear(res);
        }
    }
    for (size_t i = 0; !err && i < n; i++) {
        const char *inst = json_object_get_string(json_object_array_get_idx(instances, i));
        json_object *ii = json_object_object_get(info, inst);
        json_object *vols = ii ? json_object_object_get(ii, "volumes_info") : NULL;
        if (is(a->type, "transfer_execution")) {
            ek_transfer_opts_t o = {a->shutdown_instances, incremental};
            ek_taskgraph_transfer(&g, inst, &o);
        } else if (is(a->type, "transfer_disks_delete")) {
            if (vols && json_object_array_length(vols))
                ek_taskgraph_delete_disks(&g, inst);
        } else {
            if (ii && json_object_object_get(ii, "export_info"))
                ek_taskgraph_update(&g, inst);
        }
    }
    if (!err && g.n == 0)
        err = ek_err_new(EK_E_CONFLICT,
                         is(a->type, "transfer_disks_delete")
                             ? "transfer %s has no replica disks to delete"
                             : "transfer %s has not been executed yet: nothing to update",
                         a->transfer_id);
    if (!err)
        err = insert_execution(db, a->transfer_id, "transfer", a->type, a->shutdown_instances,
                               a->auto_deploy, &g, info, a->exec_id);
    ek_taskgraph_free(&g);
    json_object_put(info);
    json_object_put(instances);
    return err;
}

ek_err_t *ek_engine_execute_transfer(PGconn *db, const char *transfer_id, const char *scope,
                                     bool shutdown_instances, bool auto_deploy, ek_id_t exec_id)
{
    struct create_args a = {.transfer_id = transfer_id,
                            .scope = scope,
                            .type = "transfer_execution",
                            .shutdown_instances = shutdown_instances,
                            .auto_deploy = auto_deploy,
                            .exec_id = exec_id};
    return in_tx(db, create_tx, &a);
}

ek_err_t *ek_engine_delete_disks(PGconn *db, const char *transfer_id, const char *scope,
                                 ek_id_t exec_id)
{
    struct create_args a = {.transfer_id = transfer_id,
                            .scope = scope,
                            .type = "transfer_disks_delete",
                            .exec_id = exec_id};
    return in_tx(db, create_tx, &a);
}

ek_err_t *ek_engine_update_transfer(PGconn *db, const char *transfer_id, const char *scope,
                                    ek_id_t exec_id)
{
    struct create_args a = {
        .transfer_id = transfer_id, .scope = scope, .type = "transfer_update", .exec_id = exec_id};
    return in_tx(db, create_tx, &a);
}

/* Creates a deployment of the transfer; runs inside the caller's transaction. */
static ek_err_t *deploy_in_tx(PGconn *db, struct create_args *a)
{
    const ek_deploy_opts_t *o = a->deploy;
    json_object *info, *instances;
    ek_err_t *err = lock_transfer(db, a->transfer_id, a->scope, &info, &instances);
    if (err)
        return err;
    PGresult *res = NULL;
    if (!o->force) {
        err = ek_db_query(db, &res,
                          "SELECT 1 FROM executions WHERE action_id = $1 AND type = "
                          "'transfer_execution' AND status = 'COMPLETED' AND deleted_at IS NULL "
                          "LIMIT 1",
                          1, (const char *[]){a->transfer_id});
        if (!err && PQntuples(res) == 0)
            err = ek_err_new(EK_E_CONFLICT,
                             "transfer %s has no completed execution to deploy (execute it "
                             "first, or set deployment.force)",
                             a->transfer_id);
        PQclear(res);
    }
    ek_taskgraph_t g;
    ek_taskgraph_init(&g);
    size_t n = json_object_array_length(instances);
    for (size_t i = 0; !err && i < n; i++) {
        const char *inst = json_object_get_string(json_object_array_get_idx(instances, i));
        ek_deployment_opts_t d = {o->clone_disks, o->skip_os_morphing};
        ek_taskgraph_deployment(&g, inst, &d);
    }
    if (!err) {
        ek_uuid_generate(a->deployment_id);
        const char *scripts = o->user_scripts ? json_object_to_json_string(o->user_scripts) : NULL;
        const char *pools =
            o->instance_osmorphing_minion_pool_mappings
                ? json_object_to_json_string(o->instance_osmorphing_minion_pool_mappings)
                : NULL;
        err = ek_db_query(
            db, NULL,
            "INSERT INTO deployments (id, project_id, user_id, transfer_id, origin_endpoint_id, "
            "destination_endpoint_id, instances, source_environment, destination_environment, "
            "network_map, storage_mappings, user_scripts, "
            "instance_osmorphing_minion_pool_mappings, clone_disks, skip_os_morphing, info, "
            "notes) "
            "SELECT $1, t.project_id, coalesce($3::uuid, t.user_id), t.id, t.origin_endpoint_id, "
            "t.destination_endpoint_id, t.instances, t.source_environment, "
            "t.destination_environment, t.network_map, t.storage_mappings, "
            "coalesce($4::jsonb, t.user_scripts), "
            "coalesce($5::jsonb, t.instance_osmorphing_minion_pool_mappings), $6, $7, t.info, "
            "t.notes "
            "FROM transfers t WHERE t.id = $2",
            7,
            (const char *[]){a->deployment_id, a->transfer_id, a->user_id, scripts, pools,
                             o->clone_disks ? "true" : "false",
                             o->skip_os_morphing ? "true" : "false"});
    }
    if (!err)
        err = insert_execution(db, a->deployment_id, "deployment", "deployment", false, false, &g,
                               info, a->exec_id);
    ek_taskgraph_free(&g);
    json_object_put(info);
    json_object_put(instances);
    return err;
}

static ek_err_t *deploy_tx(PGconn *db, void *arg)
{
    return deploy_in_tx(db, arg);
}

ek_err_t *ek_engine_deploy(PGconn *db, const char *transfer_id, const char *scope,
                           const char *user_id, const ek_deploy_opts_t *opts, ek_id_t deployment_id,
                           ek_id_t exec_id)
{
    struct create_args a = {.transfer_id = transfer_id,
                            .scope = scope,
                            .user_id = user_id,
                            .deploy = opts,
                            .exec_id = exec_id,
                            .deployment_id = deployment_id};
    return in_tx(db, deploy_tx, &a);
}

/* ---- finishing ------------------------------------------------------------------------- */

static ek_err_t *finalize(PGconn *db, const struct loaded *l)
{
    if (!is(l->action_type, "transfer") || !is(l->type, "transfer_execution") ||
        l->e.status != EK_EXEC_COMPLETED || !l->auto_deploy)
        return NULL;
    /* auto_deploy: the deployment starts in the same transaction */
    PGresult *res;
    ek_err_t *err =
        ek_db_query(db, &res, "SELECT clone_disks, skip_os_morphing FROM transfers WHERE id = $1",
                    1, (const char *[]){l->action_id});
    if (err)
        return err;
    ek_deploy_opts_t o = {.clone_disks = PQgetvalue(res, 0, 0)[0] == 't',
                          .skip_os_morphing = PQgetvalue(res, 0, 1)[0] == 't'};
    PQclear(res);
    ek_id_t dep, ex;
    struct create_args a = {
        .transfer_id = l->action_id, .deploy = &o, .exec_id = ex, .deployment_id = dep};
    err = deploy_in_tx(db, &a);
    if (!err)
        ek_log_kv(EK_LOG_INFO, "auto-deploy started", "transfer_id", l->action_id, "deployment_id",
                  dep, NULL);
    return err;
}

/* ---- cancellation ------------------------------------------------------------------------ */

struct cancel_args {
    const char *exec_id;
    const char *scope;
    bool force;
};

static ek_err_t *cancel_tx(PGconn *db, void *arg)
{
    struct cancel_args *a = arg;
    PGresult *res;
    if (!ek_uuid_is_valid(a->exec_id))
        return ek_err_new(EK_E_NOTFOUND, "execution %s not found", a->exec_id);
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT 1 FROM executions WHERE id = $1 AND deleted_at IS NULL "
                                "AND ($2::uuid IS NULL OR project_id = $2)",
                                2, (const char *[]){a->exec_id, a->scope});
    if (err)
        return err;
    int found = PQntuples(res);
    PQclear(res);
    if (!found)
        return ek_err_new(EK_E_NOTFOUND, "execution %s not found", a->exec_id);
    struct loaded l;
    ek_em_effects_t fx = {0};
    if (!(err = load_execution(db, a->exec_id, &l))) {
        ek_em_event_t ev = {.kind = EK_EV_CANCEL, .force = a->force};
        err = run_event(db, &l, &ev, &(struct cause){0}, &fx);
    }
    ek_em_effects_release(&fx);
    loaded_free(&l);
    return err;
}

ek_err_t *ek_engine_cancel(PGconn *db, const char *exec_id, const char *scope, bool force)
{
    struct cancel_args a = {exec_id, scope, force};
    return in_tx(db, cancel_tx, &a);
}

/* ---- reports from workers ------------------------------------------------------------------ */

struct report_args {
    const ek_task_report_t *r;
    const char *message_id;
    bool *granted;
};

static ek_em_event_kind_t event_kind(ek_msg_type_t t)
{
    switch (t) {
    case EK_MSG_T_TASK_CLAIM:
        return EK_EV_CLAIM;
    case EK_MSG_T_TASK_COMPLETED:
        return EK_EV_COMPLETED;
    case EK_MSG_T_TASK_ERROR:
        return EK_EV_ERROR;
    case EK_MSG_T_TASK_CANCELED:
        return EK_EV_CANCELED;
    case EK_MSG_T_TASK_EVENT:
        return EK_EV_EVENT;
    case EK_MSG_T_TASK_STATE:
        return EK_EV_STATE;
    default:
        return EK_EV_PROGRESS;
    }
}

/* Loads one task alone, its row locked: a snapshot for the events that
 * move no other task and not the execution (a claim turns an active task
 * into another active one; events, state and progress are rows). The row
 * lock orders them with the transitions of the same task. */
static ek_err_t *load_task(PGconn *db, const char *task_id, struct loaded *l, bool *found)
{
    PGresult *res;
    memset(l, 0, sizeof(*l));
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT " TASK_COLUMNS ", execution_id FROM tasks WHERE id = $1 "
                                "FOR UPDATE",
                                1, (const char *[]){task_id});
    if (err)
        return err;
    *found = PQntuples(res) == 1;
    if (*found) {
        l->e.n = 1;
        l->e.tasks = ek_xcalloc(1, sizeof(*l->e.tasks));
        l->instance = ek_xcalloc(2, sizeof(char *));
        copy(l->e.id, sizeof(l->e.id), PQgetvalue(res, 0, 8));
        err = task_from_row(l, 0, res, 0);
    }
    PQclear(res);
    return err;
}

/* Refreshes task i of a loaded execution from its row, locked: FOR UPDATE
 * waits for a dispatcher still committing this task's attempt. */
static ek_err_t *lock_task(PGconn *db, struct loaded *l, size_t i)
{
    PGresult *res;
    ek_err_t *err =
        ek_db_query(db, &res, "SELECT " TASK_COLUMNS " FROM tasks WHERE id = $1 FOR UPDATE", 1,
                    (const char *[]){l->e.tasks[i].id});
    if (err)
        return err;
    if (PQntuples(res) == 1)
        err = task_from_row(l, i, res, 0);
    PQclear(res);
    return err;
}

static ek_err_t *report_tx(PGconn *db, void *arg)
{
    struct report_args *a = arg;
    const ek_task_report_t *r = a->r;
    *a->granted = false;
    ek_em_event_t ev = {.kind = event_kind(r->kind),
                        .task_id = r->task_id,
                        .attempt_id = r->attempt_id,
                        .host = r->host,
                        .result = r->result,
                        .message = r->message,
                        .details = r->details};
    bool transition =
        ev.kind == EK_EV_COMPLETED || ev.kind == EK_EV_ERROR || ev.kind == EK_EV_CANCELED;
    struct loaded l;
    bool found = true;
    ek_err_t *err;
    if (transition) {
        /* the whole execution under its row lock, then this task's row,
         * locked and read again (the order cancels and lost workers use) */
        err = load_execution_of(db, NULL, r->task_id, &l);
        if (err && err->code == EK_E_NOTFOUND) {
            ek_err_free(err);
            err = NULL;
            found = false;
        }
        for (size_t i = 0; !err && found && i < l.e.n; i++)
            if (is(l.e.tasks[i].id, r->task_id))
                err = lock_task(db, &l, i);
    } else {
        err = load_task(db, r->task_id, &l, &found);
    }
    if (!err && !found) {
        ek_log_kv(EK_LOG_WARNING, "report for an unknown task ignored", "task_id", r->task_id,
                  "type", r->type, NULL);
        loaded_free(&l);
        return NULL;
    }
    ek_em_effects_t fx = {0};
    struct cause c = {r, a->message_id};
    if (!err)
        err = run_event(db, &l, &ev, &c, &fx);
    if (!err && fx.ignored)
        ek_log_kv(EK_LOG_DEBUG, "stale report ignored", "task_id", r->task_id, "type", r->type,
                  "attempt_id", r->attempt_id, NULL);
    *a->granted = !err && fx.granted;
    ek_em_effects_release(&fx);
    loaded_free(&l);
    return err;
}

ek_err_t *ek_engine_report(PGconn *db, const ek_task_report_t *r, const char *message_id,
                           bool *granted)
{
    bool ignored;
    struct report_args a = {r, message_id, granted ? granted : &ignored};
    return in_tx(db, report_tx, &a);
}

/* ---- lost workers ---------------------------------------------------------------------------- */

struct lost_args {
    const char *host;
    const char *exec_id;
    int affected;
};

static ek_err_t *lost_tx(PGconn *db, void *arg)
{
    struct lost_args *a = arg;
    struct loaded l;
    ek_em_effects_t fx = {0};
    ek_err_t *err = load_execution(db, a->exec_id, &l);
    /* its tasks on that host, locked and read again */
    for (size_t i = 0; !err && i < l.e.n; i++)
        if (is(l.e.tasks[i].host, a->host))
            err = lock_task(db, &l, i);
    if (!err) {
        ek_em_event_t ev = {.kind = EK_EV_WORKER_LOST, .host = a->host};
        err = run_event(db, &l, &ev, &(struct cause){0}, &fx);
        a->affected = fx.affected;
    }
    ek_em_effects_release(&fx);
    loaded_free(&l);
    return err;
}

ek_err_t *ek_engine_worker_lost(PGconn *db, const char *host, int *affected)
{
    PGresult *res;
    *affected = 0;
    /* attempts sent to its queue but never taken: sent again */
    ek_err_t *err = ek_db_query(db, &res,
                                "UPDATE tasks SET dispatched_at = NULL, dispatched_to = NULL, "
                                "attempt_id = NULL WHERE status = 'PENDING' AND dispatched_to = $1",
                                1, (const char *[]){host});
    if (err)
        return err;
    *affected += atoi(PQcmdTuples(res));
    PQclear(res);
    err = ek_db_query(db, &res,
                      "SELECT DISTINCT execution_id FROM tasks WHERE host = $1 AND status IN "
                      "('STARTING', 'RUNNING', 'CANCELLING')",
                      1, (const char *[]){host});
    for (int i = 0; !err && i < PQntuples(res); i++) {
        struct lost_args a = {host, PQgetvalue(res, i, 0), 0};
        err = in_tx(db, lost_tx, &a);
        *affected += a.affected;
    }
    PQclear(res);
    return err;
}

/* ---- reading ------------------------------------------------------------------------------- */

ek_err_t *ek_engine_execution_json(PGconn *db, const char *exec_id, bool with_tasks,
                                   json_object **out)
{
    return ek_db_query_json(
        db, out,
        with_tasks
            ? "SELECT jsonb_build_object('id', e.id, 'action_id', e.action_id, 'type', e.type, "
              "'number', e.number, 'status', e.status, 'shutdown_instances', "
              "e.shutdown_instances, 'auto_deploy', e.auto_deploy, 'created_at', e.created_at, "
              "'updated_at', e.updated_at, 'finished_at', e.finished_at, 'tasks', "
              "coalesce((SELECT jsonb_agg(jsonb_build_object('id', t.id, 'instance', t.instance, "
              "'task_type', t.task_type, 'status', t.status, 'depends_on', to_jsonb(t.depends_on), "
              "'on_error', t.on_error OR t.on_error_only, 'on_error_only', t.on_error_only, "
              "'index', t.index, 'host', t.host, 'process_id', t.process_id, "
              "'exception_details', t.exception_details, 'created_at', t.created_at, "
              "'updated_at', t.updated_at, "
              "'events', coalesce((SELECT jsonb_agg(jsonb_build_object('level', v.level, "
              "'message', v.message, 'index', v.index, 'created_at', v.created_at) "
              "ORDER BY v.id) FROM task_events v WHERE v.task_id = t.id), '[]'), "
              "'progress_updates', coalesce((SELECT jsonb_agg(jsonb_build_object('index', "
              "p.index, 'current_step', p.current_step, 'total_steps', p.total_steps, "
              "'message', p.message, 'created_at', p.created_at, 'updated_at', p.updated_at) "
              "ORDER BY p.index) FROM task_progress_updates p WHERE p.task_id = t.id), '[]')) "
              "ORDER BY t.index) FROM tasks t WHERE t.execution_id = e.id), '[]')) "
              "FROM executions e WHERE e.id = $1"
            : "SELECT jsonb_build_object('id', e.id, 'action_id', e.action_id, 'type', e.type, "
              "'number', e.number, 'status', e.status, 'shutdown_instances', "
              "e.shutdown_instances, 'auto_deploy', e.auto_deploy, 'created_at', e.created_at, "
              "'updated_at', e.updated_at, 'finished_at', e.finished_at) "
              "FROM executions e WHERE e.id = $1",
        1, (const char *[]){exec_id});
}
