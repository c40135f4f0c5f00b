/* engine.c - executions, task graphs and the task state machine. */
#include "conductor/engine.h"

#include <stdio.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "conductor/taskgraph.h"
#include "proto/tasks.h"

/* ---- transactions --------------------------------------------------------------- */

/* The engine's transactions touch only the database: a deadlock or a
 * serialization failure runs them again, up to 5 times. */
static ek_err_t *in_tx(PGconn *db, ek_db_tx_fn fn, void *arg)
{
    return ek_db_tx(db, 5, fn, arg);
}

static ek_err_t *query1(PGconn *db, PGresult **res, const char *sql, int n,
                        const char *const *params)
{
    return ek_db_query(db, res, sql, n, params);
}

/* ---- loading tasks ---------------------------------------------------------------- */

struct task {
    char id[EK_UUID_STRLEN + 1];
    char status[32];
    char old_status[32];
    const ek_task_type_t *type;
    int deps[EK_TG_MAX_DEPS * 4];
    int n_deps;
    bool on_error, on_error_only;
    bool cancel_pending, cancel_force; /* to set */
};

struct execution {
    char id[EK_UUID_STRLEN + 1];
    char status[32];
    char type[32];
    char action_id[EK_UUID_STRLEN + 1];
    char action_type[16];
    bool cancel_requested, cancel_force, failed, auto_deploy;
    struct task *tasks;
    size_t n;
};

static void execution_free(struct execution *e)
{
    free(e->tasks);
    e->tasks = NULL;
    e->n = 0;
}

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void set_status(struct task *t, const char *status)
{
    snprintf(t->status, sizeof(t->status), "%s", status);
}

/* Locks the execution row and loads it with its tasks. */
static ek_err_t *load_execution(PGconn *db, const char *exec_id, struct execution *e)
{
    PGresult *res;
    memset(e, 0, sizeof(*e));
    ek_err_t *err = query1(db, &res,
                           "SELECT id, status, type, action_id, action_type, cancel_requested, "
                           "cancel_force, failed, auto_deploy FROM executions WHERE id = $1 "
                           "FOR UPDATE",
                           1, (const char *[]){exec_id});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_NOTFOUND, "execution %s not found", exec_id);
    }
    snprintf(e->id, sizeof(e->id), "%s", PQgetvalue(res, 0, 0));
    snprintf(e->status, sizeof(e->status), "%s", PQgetvalue(res, 0, 1));
    snprintf(e->type, sizeof(e->type), "%s", PQgetvalue(res, 0, 2));
    snprintf(e->action_id, sizeof(e->action_id), "%s", PQgetvalue(res, 0, 3));
    snprintf(e->action_type, sizeof(e->action_type), "%s", PQgetvalue(res, 0, 4));
    e->cancel_requested = PQgetvalue(res, 0, 5)[0] == 't';
    e->cancel_force = PQgetvalue(res, 0, 6)[0] == 't';
    e->failed = PQgetvalue(res, 0, 7)[0] == 't';
    e->auto_deploy = PQgetvalue(res, 0, 8)[0] == 't';
    PQclear(res);

    err = query1(db, &res,
                 "SELECT id, status, task_type, depends_on::text, on_error, on_error_only "
                 "FROM tasks WHERE execution_id = $1 ORDER BY index",
                 1, (const char *[]){exec_id});
    if (err)
        return err;
    e->n = (size_t)PQntuples(res);
    e->tasks = ek_xcalloc(e->n + 1, sizeof(struct task));
    for (size_t i = 0; i < e->n; i++) {
        struct task *t = &e->tasks[i];
        snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, (int)i, 0));
        set_status(t, PQgetvalue(res, (int)i, 1));
        snprintf(t->old_status, sizeof(t->old_status), "%s", t->status);
        t->type = ek_task_type_find(PQgetvalue(res, (int)i, 2));
        t->on_error = PQgetvalue(res, (int)i, 4)[0] == 't';
        t->on_error_only = PQgetvalue(res, (int)i, 5)[0] == 't';
    }
    /* dependencies: "{uuid,uuid}" into indexes */
    for (size_t i = 0; i < e->n; i++) {
        const char *p = PQgetvalue(res, (int)i, 3);
        while (*p) {
            if (*p == '{' || *p == ',' || *p == '}') {
                p++;
                continue;
            }
            for (size_t j = 0; j < e->n; j++) {
                if (strncmp(p, e->tasks[j].id, EK_UUID_STRLEN) == 0 &&
                    e->tasks[i].n_deps < (int)EK_ARRAY_SIZE(e->tasks[i].deps)) {
                    e->tasks[i].deps[e->tasks[i].n_deps++] = (int)j;
                    break;
                }
            }
            p += strcspn(p, ",}");
        }
    }
    PQclear(res);
    return NULL;
}

/* Writes the tasks whose status (or cancel flags) changed. */
static ek_err_t *save_tasks(PGconn *db, struct execution *e)
{
    ek_strbuf_t ids = EK_STRBUF_INIT, statuses = EK_STRBUF_INIT, cancels = EK_STRBUF_INIT,
                forces = EK_STRBUF_INIT;
    int n = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct task *t = &e->tasks[i];
        if (is(t->status, t->old_status) && !t->cancel_pending)
            continue;
        ek_strbuf_addf(&ids, "%s%s", n ? "," : "{", t->id);
        ek_strbuf_addf(&statuses, "%s%s", n ? "," : "{", t->status);
        ek_strbuf_addf(&cancels, "%s%s", n ? "," : "{", t->cancel_pending ? "t" : "f");
        ek_strbuf_addf(&forces, "%s%s", n ? "," : "{", t->cancel_force ? "t" : "f");
        n++;
    }
    ek_err_t *err = NULL;
    if (n) {
        ek_strbuf_addch(&ids, '}');
        ek_strbuf_addch(&statuses, '}');
        ek_strbuf_addch(&cancels, '}');
        ek_strbuf_addch(&forces, '}');
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
            4, (const char *[]){ids.buf, statuses.buf, cancels.buf, forces.buf});
    }
    ek_strbuf_release(&ids);
    ek_strbuf_release(&statuses);
    ek_strbuf_release(&cancels);
    ek_strbuf_release(&forces);
    for (size_t i = 0; i < e->n; i++) {
        snprintf(e->tasks[i].old_status, sizeof(e->tasks[i].old_status), "%s", e->tasks[i].status);
        e->tasks[i].cancel_pending = false;
    }
    return err;
}

/* ---- the state machine -------------------------------------------------------------- */

static bool is_cleanup(const struct task *t)
{
    return t->on_error || t->on_error_only;
}

/* Stops the normal work of an execution that failed or is cancelled. */
static void abort_tasks(struct execution *e, bool force)
{
    for (size_t i = 0; i < e->n; i++) {
        struct task *t = &e->tasks[i];
        if (is(t->status, EK_TS_EXECUTE_ON_ERROR_ONLY)) {
            set_status(t, EK_TS_SCHEDULED); /* rollbacks now run */
            continue;
        }
        bool running = is(t->status, EK_TS_STARTING) || is(t->status, EK_TS_RUNNING) ||
                       is(t->status, EK_TS_CANCELLING);
        if (is_cleanup(t) && !(force && running))
            continue; /* cleanups run to their end */
        if (is(t->status, EK_TS_PENDING)) {
            set_status(t, EK_TS_CANCELED); /* not claimed yet: a claim will be refused */
        } else if (running) {
            set_status(t, force ? EK_TS_FORCE_CANCELED : EK_TS_CANCELLING);
            t->cancel_pending = true;
            t->cancel_force = force;
        }
    }
}

static bool any_parent(const struct execution *e, const struct task *t, const char *status)
{
    for (int d = 0; d < t->n_deps; d++)
        if (is(e->tasks[t->deps[d]].status, status))
            return true;
    return false;
}

/* Moves SCHEDULED tasks whose parents all ended; repeats until stable. */
static void schedule_ready(struct execution *e)
{
    bool stopping = e->failed || e->cancel_requested;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < e->n; i++) {
            struct task *t = &e->tasks[i];
            if (!is(t->status, EK_TS_SCHEDULED))
                continue;
            bool parents_final = true, all_completed = true;
            for (int d = 0; d < t->n_deps; d++) {
                const char *ps = e->tasks[t->deps[d]].status;
                parents_final = parents_final && ek_task_status_is_final(ps);
                all_completed = all_completed && is(ps, EK_TS_COMPLETED);
            }
            if (!parents_final)
                continue;
            if (is_cleanup(t)) {
                /* a cleanup runs when one of its parents did its work */
                bool some = any_parent(e, t, EK_TS_COMPLETED) ||
                            any_parent(e, t, EK_TS_CANCELED_AFTER_COMPLETION);
                set_status(t, some ? EK_TS_PENDING : EK_TS_UNSCHEDULED);
            } else {
                set_status(t, all_completed && !stopping ? EK_TS_PENDING : EK_TS_UNSCHEDULED);
            }
            changed = true;
        }
    }
}

static ek_err_t *finalize(PGconn *db, struct execution *e);

/* Re-evaluates the tasks and the execution's status; saves both. */
static ek_err_t *advance(PGconn *db, struct execution *e)
{
    schedule_ready(e);
    bool active = false, scheduled = false, error = e->failed;
    for (size_t i = 0; i < e->n; i++) {
        const char *s = e->tasks[i].status;
        active = active || ek_task_status_is_active(s);
        scheduled = scheduled || is(s, EK_TS_SCHEDULED);
        error = error || is(s, EK_TS_ERROR);
    }
    const char *status;
    if (active) {
        status = e->cancel_requested ? EK_ES_CANCELLING : EK_ES_RUNNING;
    } else if (scheduled) {
        status = EK_ES_DEADLOCKED;
        for (size_t i = 0; i < e->n; i++)
            if (is(e->tasks[i].status, EK_TS_SCHEDULED))
                set_status(&e->tasks[i], EK_TS_STRANDED_AFTER_DEADLOCK);
        ek_log_kv(EK_LOG_ERROR, "execution deadlocked", "execution_id", e->id, NULL);
    } else {
        for (size_t i = 0; i < e->n; i++)
            if (is(e->tasks[i].status, EK_TS_EXECUTE_ON_ERROR_ONLY))
                set_status(&e->tasks[i], EK_TS_UNSCHEDULED);
        status = error ? EK_ES_ERROR : e->cancel_requested ? EK_ES_CANCELED : EK_ES_COMPLETED;
    }
    ek_err_t *err = save_tasks(db, e);
    if (err || is(status, e->status))
        return err;
    bool final = ek_execution_status_is_final(status);
    err = ek_db_query(db, NULL,
                      "UPDATE executions SET status = $2, updated_at = now(), "
                      "finished_at = CASE WHEN $3 THEN now() END WHERE id = $1",
                      3, (const char *[]){e->id, status, final ? "true" : "false"});
    snprintf(e->status, sizeof(e->status), "%s", status);
    if (!err)
        err = ek_db_query(db, NULL,
                          is(e->action_type, "transfer")
                              ? "UPDATE transfers SET last_execution_status = $2, updated_at = "
                                "now() WHERE id = $1"
                              : "UPDATE deployments SET last_execution_status = $2, updated_at = "
                                "now() WHERE id = $1",
                          2, (const char *[]){e->action_id, status});
    if (!err && final) {
        ek_log_kv(EK_LOG_INFO, "execution finished", "execution_id", e->id, "status", status, NULL);
        err = finalize(db, e);
    }
    return err;
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
    ek_err_t *err = query1(db, &res,
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
    err = query1(db, &res,
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
        err = ek_taskgraph_insert(g, db, exec_id);
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
        err = query1(db, &res,
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
        err = query1(db, &res,
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
            "instance_osmorphing_minion_pool_mappings, clone_disks, skip_os_morphing, info) "
            "SELECT $1, t.project_id, coalesce($3::uuid, t.user_id), t.id, t.origin_endpoint_id, "
            "t.destination_endpoint_id, t.instances, t.source_environment, "
            "t.destination_environment, t.network_map, t.storage_mappings, "
            "coalesce($4::jsonb, t.user_scripts), "
            "coalesce($5::jsonb, t.instance_osmorphing_minion_pool_mappings), $6, $7, t.info "
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

static ek_err_t *finalize(PGconn *db, struct execution *e)
{
    if (!is(e->action_type, "transfer") || !is(e->type, "transfer_execution") ||
        !is(e->status, EK_ES_COMPLETED) || !e->auto_deploy)
        return NULL;
    /* auto_deploy: the deployment starts in the same transaction */
    PGresult *res;
    ek_err_t *err =
        query1(db, &res, "SELECT clone_disks, skip_os_morphing FROM transfers WHERE id = $1", 1,
               (const char *[]){e->action_id});
    if (err)
        return err;
    ek_deploy_opts_t o = {.clone_disks = PQgetvalue(res, 0, 0)[0] == 't',
                          .skip_os_morphing = PQgetvalue(res, 0, 1)[0] == 't'};
    PQclear(res);
    ek_id_t dep, ex;
    struct create_args a = {
        .transfer_id = e->action_id, .deploy = &o, .exec_id = ex, .deployment_id = dep};
    err = deploy_in_tx(db, &a);
    if (!err)
        ek_log_kv(EK_LOG_INFO, "auto-deploy started", "transfer_id", e->action_id, "deployment_id",
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
    ek_err_t *err = query1(db, &res,
                           "SELECT 1 FROM executions WHERE id = $1 AND deleted_at IS NULL AND "
                           "($2::uuid IS NULL OR project_id = $2)",
                           2, (const char *[]){a->exec_id, a->scope});
    if (err)
        return err;
    int found = PQntuples(res);
    PQclear(res);
    if (!found)
        return ek_err_new(EK_E_NOTFOUND, "execution %s not found", a->exec_id);
    struct execution e;
    if ((err = load_execution(db, a->exec_id, &e)))
        return err;
    if (ek_execution_status_is_final(e.status)) {
        err = ek_err_new(EK_E_CONFLICT, "execution %s has already ended (%s)", e.id, e.status);
    } else if (e.cancel_requested && (e.cancel_force || !a->force)) {
        err = NULL; /* asked before: nothing more to do */
    } else {
        e.cancel_requested = true;
        e.cancel_force = e.cancel_force || a->force;
        err = ek_db_query(db, NULL,
                          "UPDATE executions SET cancel_requested = true, "
                          "cancel_force = cancel_force OR $2, updated_at = now() WHERE id = $1",
                          2, (const char *[]){e.id, a->force ? "true" : "false"});
        abort_tasks(&e, a->force);
        if (!err)
            err = advance(db, &e);
        ek_log_kv(EK_LOG_INFO, "execution cancel requested", "execution_id", e.id, "force",
                  a->force ? "true" : "false", NULL);
    }
    execution_free(&e);
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

/* The result must hold exactly the keys the task type declares. */
static ek_err_t *check_result(const ek_task_type_t *type, json_object *result)
{
    json_object_object_foreach(result, key, val)
    {
        (void)val;
        bool declared = false;
        for (const char *const *k = type->provides; *k && !declared; k++)
            declared = is(*k, key);
        if (!declared)
            return ek_err_new(EK_E_PROTOCOL, "%s returned '%s', which it does not declare",
                              type->name, key);
    }
    for (const char *const *k = type->provides; *k; k++) {
        json_object *v;
        if (!json_object_object_get_ex(result, *k, &v))
            return ek_err_new(EK_E_PROTOCOL, "%s did not return '%s'", type->name, *k);
    }
    return NULL;
}

/* Shallow-merges a task's result into its action's task info for the instance. */
static ek_err_t *merge_result(PGconn *db, const struct execution *e, const char *instance,
                              json_object *result)
{
    const char *text = json_object_to_json_string(result);
    return ek_db_query(db, NULL,
                       is(e->action_type, "transfer")
                           ? "UPDATE transfers SET info = jsonb_set(info, ARRAY[$2], "
                             "coalesce(info->$2, '{}') || $3::jsonb), updated_at = now() "
                             "WHERE id = $1"
                           : "UPDATE deployments SET info = jsonb_set(info, ARRAY[$2], "
                             "coalesce(info->$2, '{}') || $3::jsonb), updated_at = now() "
                             "WHERE id = $1",
                       3, (const char *[]){e->action_id, instance, text});
}

/* What a completed deployment task changes beyond its own task info. */
static ek_err_t *post_task_hooks(PGconn *db, const struct execution *e, const char *type,
                                 const char *instance, json_object *result)
{
    if (!is(e->action_type, "deployment"))
        return NULL;
    if (is(type, "FINALIZE_INSTANCE_DEPLOYMENT")) {
        json_object *tr = json_object_object_get(result, "transfer_result");
        return ek_db_query(
            db, NULL,
            "UPDATE deployments SET transfer_result = jsonb_set("
            "coalesce(transfer_result, '{}'), ARRAY[$2], $3::jsonb) WHERE id = $1",
            3,
            (const char *[]){e->action_id, instance, tr ? json_object_to_json_string(tr) : "null"});
    }
    if (is(type, "RESTORE_TRANSFER_DISK_SNAPSHOTS") ||
        is(type, "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS")) {
        /* Restored disks are the transfer's again. Without clone_disks, a
         * successful deployment took the replica disks for the new VM: the
         * transfer must never write to them again, so it forgets them. */
        bool restored = is(type, "RESTORE_TRANSFER_DISK_SNAPSHOTS");
        json_object *vols = json_object_object_get(result, "volumes_info");
        return ek_db_query(
            db, NULL,
            "UPDATE transfers t SET info = jsonb_set(t.info, ARRAY[$2, "
            "'volumes_info'], $3::jsonb), updated_at = now() "
            "FROM deployments d WHERE d.id = $1 AND t.id = d.transfer_id "
            "AND ($4 OR NOT d.clone_disks) AND t.info ? $2",
            4,
            (const char *[]){e->action_id, instance,
                             restored && vols ? json_object_to_json_string(vols) : "[]",
                             restored ? "true" : "false"});
    }
    return NULL;
}

static ek_err_t *report_tx(PGconn *db, void *arg)
{
    struct report_args *a = arg;
    const ek_task_report_t *r = a->r;
    PGresult *res;
    *a->granted = false;
    ek_err_t *err = query1(db, &res, "SELECT execution_id FROM tasks WHERE id = $1", 1,
                           (const char *[]){r->task_id});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        ek_log_kv(EK_LOG_WARNING, "report for an unknown task ignored", "task_id", r->task_id,
                  "type", r->type, NULL);
        return NULL;
    }
    char exec_id[EK_UUID_STRLEN + 1];
    snprintf(exec_id, sizeof(exec_id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    struct execution e;
    if ((err = load_execution(db, exec_id, &e)))
        return err;
    /* FOR UPDATE waits for a dispatcher still committing this task's attempt */
    err = query1(db, &res,
                 "SELECT status, attempt_id, host, task_type, instance FROM tasks WHERE id = $1 "
                 "FOR UPDATE",
                 1, (const char *[]){r->task_id});
    if (err) {
        execution_free(&e);
        return err;
    }
    char status[32], host[256], instance[512], type[64];
    snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 0));
    bool attempt_ok = is(PQgetvalue(res, 0, 1), r->attempt_id);
    snprintf(host, sizeof(host), "%s", PQgetvalue(res, 0, 2));
    snprintf(type, sizeof(type), "%s", PQgetvalue(res, 0, 3));
    snprintf(instance, sizeof(instance), "%s", PQgetvalue(res, 0, 4));
    PQclear(res);
    struct task *t = NULL;
    for (size_t i = 0; i < e.n; i++)
        if (is(e.tasks[i].id, r->task_id))
            t = &e.tasks[i];
    if (!attempt_ok || !t) {
        ek_log_kv(EK_LOG_DEBUG, "stale report ignored", "task_id", r->task_id, "type", r->type,
                  "attempt_id", r->attempt_id, NULL);
        execution_free(&e);
        return NULL;
    }
    bool running = is(status, EK_TS_STARTING) || is(status, EK_TS_RUNNING);
    bool changed = false;

    if (is(r->type, EK_MSG_TASK_CLAIM)) {
        if (is(status, EK_TS_PENDING)) {
            char pid[32];
            snprintf(pid, sizeof(pid), "%lld", (long long)r->process_id);
            err = ek_db_query(db, NULL,
                              "UPDATE tasks SET status = 'RUNNING', host = $2, process_id = $3, "
                              "started_at = now(), updated_at = now() WHERE id = $1",
                              3, (const char *[]){r->task_id, r->host, r->process_id ? pid : NULL});
            set_status(t, EK_TS_RUNNING);
            snprintf(t->old_status, sizeof(t->old_status), "%s", EK_TS_RUNNING);
            *a->granted = true;
            changed = true;
        } else {
            /* the same attempt asking again (its answer was lost) is granted again */
            *a->granted = running && is(host, r->host);
        }
    } else if (is(r->type, EK_MSG_TASK_COMPLETED)) {
        if (running || is(status, EK_TS_CANCELLING)) {
            ek_err_t *bad = check_result(t->type, r->result);
            if (bad) {
                err = ek_db_query(db, NULL, "UPDATE tasks SET exception_details = $2 WHERE id = $1",
                                  2, (const char *[]){r->task_id, bad->message});
                ek_log_kv(EK_LOG_ERROR, "task result rejected", "task_id", r->task_id, "error",
                          bad->message, NULL);
                ek_err_free(bad);
                set_status(t, running ? EK_TS_ERROR : EK_TS_CANCELED);
                if (running && !e.failed) {
                    e.failed = true;
                    if (!err)
                        err = ek_db_query(db, NULL,
                                          "UPDATE executions SET failed = true WHERE id = $1", 1,
                                          (const char *[]){e.id});
                    abort_tasks(&e, false);
                }
            } else {
                err = merge_result(db, &e, instance, r->result);
                if (!err)
                    err = post_task_hooks(db, &e, type, instance, r->result);
                set_status(t, running ? EK_TS_COMPLETED : EK_TS_CANCELED_AFTER_COMPLETION);
            }
            changed = true;
        }
    } else if (is(r->type, EK_MSG_TASK_ERROR)) {
        if (running || is(status, EK_TS_CANCELLING)) {
            char *details = r->details ? ek_xasprintf("%s\n%s", r->message, r->details)
                                       : ek_xstrdup(r->message);
            err = ek_db_query(db, NULL, "UPDATE tasks SET exception_details = $2 WHERE id = $1", 2,
                              (const char *[]){r->task_id, details});
            free(details);
            if (running) {
                set_status(t, EK_TS_ERROR);
                ek_log_kv(EK_LOG_WARNING, "task failed", "task_id", r->task_id, "task_type", type,
                          "execution_id", e.id, "error", r->message, NULL);
                if (!e.failed && !err) {
                    e.failed = true;
                    err = ek_db_query(db, NULL, "UPDATE executions SET failed = true WHERE id = $1",
                                      1, (const char *[]){e.id});
                    abort_tasks(&e, false);
                }
            } else {
                set_status(t, EK_TS_CANCELED);
            }
            changed = true;
        }
    } else if (is(r->type, EK_MSG_TASK_CANCELED)) {
        if (running || is(status, EK_TS_CANCELLING)) {
            set_status(t, EK_TS_CANCELED);
            changed = true;
        }
    } else if (is(r->type, EK_MSG_TASK_EVENT)) {
        if (running || is(status, EK_TS_CANCELLING))
            err = ek_db_query(db, NULL,
                              "INSERT INTO task_events (task_id, message_id, level, message, "
                              "index) VALUES ($1, $2, $3, $4, (SELECT count(*) FROM task_events "
                              "WHERE task_id = $1)) ON CONFLICT (message_id) DO NOTHING",
                              4, (const char *[]){r->task_id, a->message_id, r->level, r->message});
    } else if (is(r->type, EK_MSG_TASK_STATE)) {
        if (running || is(status, EK_TS_CANCELLING))
            err = ek_db_query(db, NULL, "UPDATE tasks SET state = $2 WHERE id = $1", 2,
                              (const char *[]){r->task_id, json_object_to_json_string(r->state)});
    } else if (is(r->type, EK_MSG_TASK_PROGRESS)) {
        if (running || is(status, EK_TS_CANCELLING)) {
            char idx[32], cur[32], tot[32];
            snprintf(idx, sizeof(idx), "%lld", (long long)r->index);
            snprintf(cur, sizeof(cur), "%lld", (long long)r->current_step);
            snprintf(tot, sizeof(tot), "%lld", (long long)r->total_steps);
            /* a step only moves forward: a late, older update is dropped */
            err = ek_db_query(
                db, NULL,
                "INSERT INTO task_progress_updates (task_id, index, current_step, total_steps, "
                "message) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, index) DO UPDATE SET "
                "current_step = EXCLUDED.current_step, total_steps = EXCLUDED.total_steps, "
                "message = EXCLUDED.message, updated_at = now() "
                "WHERE task_progress_updates.current_step <= EXCLUDED.current_step",
                5, (const char *[]){r->task_id, idx, cur, tot, r->message});
        }
    }
    if (!err && changed)
        err = advance(db, &e);
    execution_free(&e);
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
    struct execution e;
    ek_err_t *err = load_execution(db, a->exec_id, &e);
    if (err)
        return err;
    PGresult *res;
    err = query1(db, &res,
                 "SELECT id FROM tasks WHERE execution_id = $1 AND host = $2 AND status IN "
                 "('STARTING', 'RUNNING', 'CANCELLING') FOR UPDATE",
                 2, (const char *[]){a->exec_id, a->host});
    bool changed = false;
    for (int i = 0; !err && i < PQntuples(res); i++) {
        struct task *t = NULL;
        for (size_t k = 0; k < e.n; k++)
            if (is(e.tasks[k].id, PQgetvalue(res, i, 0)))
                t = &e.tasks[k];
        if (!t)
            continue;
        a->affected++;
        changed = true;
        if (is(t->status, EK_TS_CANCELLING)) {
            set_status(t, EK_TS_CANCELED);
        } else if (t->type && t->type->rerunnable && !e.failed && !e.cancel_requested) {
            /* back to the queue: the next dispatch is a new attempt elsewhere */
            err = ek_db_query(db, NULL,
                              "UPDATE tasks SET status = 'PENDING', host = NULL, process_id = "
                              "NULL, dispatched_at = NULL, dispatched_to = NULL, attempt_id = "
                              "NULL, updated_at = now() WHERE id = $1",
                              1, (const char *[]){t->id});
            if (!err)
                err = ek_db_query(
                    db, NULL,
                    "INSERT INTO task_events (task_id, level, message) VALUES ($1, "
                    "'WARNING', 'worker ' || $2 || ' stopped answering or was restarted: the task "
                    "runs again on another worker')",
                    2, (const char *[]){t->id, a->host});
            set_status(t, EK_TS_PENDING);
            snprintf(t->old_status, sizeof(t->old_status), "%s", EK_TS_PENDING);
        } else {
            char *why = ek_xasprintf("worker %s stopped answering while it ran this task (%s "
                                     "cannot safely run twice)",
                                     a->host, t->type ? t->type->name : "?");
            err = ek_db_query(db, NULL, "UPDATE tasks SET exception_details = $2 WHERE id = $1", 2,
                              (const char *[]){t->id, why});
            free(why);
            set_status(t, EK_TS_ERROR);
            if (!e.failed && !err) {
                e.failed = true;
                err = ek_db_query(db, NULL, "UPDATE executions SET failed = true WHERE id = $1", 1,
                                  (const char *[]){e.id});
                abort_tasks(&e, false);
            }
        }
    }
    PQclear(res);
    if (!err && changed)
        err = advance(db, &e);
    execution_free(&e);
    return err;
}

ek_err_t *ek_engine_worker_lost(PGconn *db, const char *host, int *affected)
{
    PGresult *res;
    *affected = 0;
    /* attempts sent to its queue but never taken: sent again */
    ek_err_t *err = query1(db, &res,
                           "UPDATE tasks SET dispatched_at = NULL, dispatched_to = NULL, "
                           "attempt_id = NULL WHERE status = 'PENDING' AND dispatched_to = $1",
                           1, (const char *[]){host});
    if (err)
        return err;
    *affected += atoi(PQcmdTuples(res));
    PQclear(res);
    err = query1(db, &res,
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
