/* machine.c - the execution state machine: statuses, transitions and their
 * effects, with no I/O (see machine.h). */
#include "engine/machine.h"

#include <stdio.h>
#include <string.h>
#include "common/mem.h"

/* ---- effects -------------------------------------------------------------------- */

void ek_em_effects_release(ek_em_effects_t *fx)
{
    for (size_t i = 0; i < fx->n; i++)
        free(fx->v[i].text);
    free(fx->v);
    memset(fx, 0, sizeof(*fx));
}

static ek_em_effect_t *add(ek_em_effects_t *fx, ek_em_effect_kind_t kind, int task)
{
    if (fx->n == fx->cap) {
        fx->cap = fx->cap ? fx->cap * 2 : 8;
        fx->v = ek_xrealloc(fx->v, fx->cap * sizeof(*fx->v));
    }
    ek_em_effect_t *f = &fx->v[fx->n++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->task = task;
    return f;
}

/* ---- transitions ------------------------------------------------------------------ */

static bool running(ek_task_status_t s)
{
    return s == EK_TASK_STARTING || s == EK_TASK_RUNNING;
}

static bool is_cleanup(const ek_em_task_t *t)
{
    return t->on_error || t->on_error_only;
}

/* Stops the normal work of an execution that failed or is cancelled:
 * rollbacks may now run, unclaimed work is cancelled, running work is told
 * to stop; cleanups run to their end unless the cancel is forced. */
static void abort_tasks(ek_em_exec_t *e, bool force)
{
    for (size_t i = 0; i < e->n; i++) {
        ek_em_task_t *t = &e->tasks[i];
        if (t->status == EK_TASK_EXECUTE_ON_ERROR_ONLY) {
            t->status = EK_TASK_SCHEDULED;
            continue;
        }
        bool live = running(t->status) || t->status == EK_TASK_CANCELLING;
        if (is_cleanup(t) && !(force && live))
            continue;
        if (t->status == EK_TASK_PENDING) {
            t->status = EK_TASK_CANCELED; /* not claimed yet: a claim will be refused */
        } else if (live) {
            t->status = force ? EK_TASK_FORCE_CANCELED : EK_TASK_CANCELLING;
            t->cancel_pending = true;
            t->cancel_force = force;
        }
    }
}

static void fail(ek_em_exec_t *e, ek_em_effects_t *fx)
{
    if (e->failed)
        return;
    e->failed = true;
    add(fx, EK_FX_EXEC_FAILED, -1);
    abort_tasks(e, false);
}

static bool any_parent(const ek_em_exec_t *e, const ek_em_task_t *t, ek_task_status_t s)
{
    for (int d = 0; d < t->n_deps; d++)
        if (e->tasks[t->deps[d]].status == s)
            return true;
    return false;
}

/* Moves SCHEDULED tasks whose parents all ended; repeats until stable. A
 * normal task runs when all its parents completed and the execution goes
 * on; a cleanup when one of its parents did its work. */
static void schedule_ready(ek_em_exec_t *e)
{
    bool stopping = e->failed || e->cancel_requested;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < e->n; i++) {
            ek_em_task_t *t = &e->tasks[i];
            if (t->status != EK_TASK_SCHEDULED)
                continue;
            bool parents_final = true, all_completed = true;
            for (int d = 0; d < t->n_deps; d++) {
                ek_task_status_t ps = e->tasks[t->deps[d]].status;
                parents_final = parents_final && ek_task_status_final(ps);
                all_completed = all_completed && ps == EK_TASK_COMPLETED;
            }
            if (!parents_final)
                continue;
            if (is_cleanup(t)) {
                bool some = any_parent(e, t, EK_TASK_COMPLETED) ||
                            any_parent(e, t, EK_TASK_CANCELED_AFTER_COMPLETION);
                t->status = some ? EK_TASK_PENDING : EK_TASK_UNSCHEDULED;
            } else {
                t->status = all_completed && !stopping ? EK_TASK_PENDING : EK_TASK_UNSCHEDULED;
            }
            changed = true;
        }
    }
}

/* Re-evaluates the tasks and the execution's status after a transition. */
static void advance(ek_em_exec_t *e, ek_em_effects_t *fx)
{
    schedule_ready(e);
    bool active = false, scheduled = false, error = e->failed;
    for (size_t i = 0; i < e->n; i++) {
        ek_task_status_t s = e->tasks[i].status;
        active = active || ek_task_status_active(s);
        scheduled = scheduled || s == EK_TASK_SCHEDULED;
        error = error || s == EK_TASK_ERROR;
    }
    ek_exec_status_t status;
    if (active) {
        status = e->cancel_requested ? EK_EXEC_CANCELLING : EK_EXEC_RUNNING;
    } else if (scheduled) {
        /* nothing runs and nothing can: the waiting tasks are stranded */
        status = EK_EXEC_DEADLOCKED;
        for (size_t i = 0; i < e->n; i++)
            if (e->tasks[i].status == EK_TASK_SCHEDULED)
                e->tasks[i].status = EK_TASK_STRANDED_AFTER_DEADLOCK;
        add(fx, EK_FX_EXEC_DEADLOCKED, -1);
    } else {
        for (size_t i = 0; i < e->n; i++)
            if (e->tasks[i].status == EK_TASK_EXECUTE_ON_ERROR_ONLY)
                e->tasks[i].status = EK_TASK_UNSCHEDULED;
        status = error ? EK_EXEC_ERROR : e->cancel_requested ? EK_EXEC_CANCELED : EK_EXEC_COMPLETED;
    }
    for (size_t i = 0; i < e->n; i++) {
        ek_em_task_t *t = &e->tasks[i];
        if (t->status == t->saved && !t->cancel_pending)
            continue;
        ek_em_effect_t *f = add(fx, EK_FX_TASK_STATUS, (int)i);
        f->status = (int)t->status;
        f->cancel = t->cancel_pending;
        f->force = t->cancel_force;
        t->saved = t->status;
        t->cancel_pending = false;
    }
    if (status == e->status)
        return;
    e->status = status;
    bool final = ek_exec_status_final(status);
    ek_em_effect_t *f = add(fx, EK_FX_EXEC_STATUS, -1);
    f->status = (int)status;
    f->flag = final;
    if (final)
        add(fx, EK_FX_EXEC_FINISHED, -1)->status = (int)status;
}

ek_err_t *ek_em_check_result(const ek_task_type_t *type, json_object *result)
{
    if (!type)
        return ek_err_new(EK_E_PROTOCOL, "a task of a type this conductor does not know");
    if (!result || !json_object_is_type(result, json_type_object))
        return ek_err_new(EK_E_PROTOCOL, "%s returned a result that is not an object", type->name);
    json_object_object_foreach(result, key, val)
    {
        (void)val;
        bool declared = false;
        for (const char *const *k = type->provides; *k && !declared; k++)
            declared = strcmp(*k, key) == 0;
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

static int find_task(const ek_em_exec_t *e, const char *id)
{
    for (size_t i = 0; id && i < e->n; i++)
        if (strcmp(e->tasks[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* A worker's report about one attempt of one task. */
static void report(ek_em_exec_t *e, const ek_em_event_t *ev, ek_em_effects_t *fx)
{
    int ti = find_task(e, ev->task_id);
    ek_em_task_t *t = ti < 0 ? NULL : &e->tasks[ti];
    if (!t || !ev->attempt_id || !t->attempt_id[0] || strcmp(t->attempt_id, ev->attempt_id) != 0) {
        fx->ignored = true; /* another attempt's, or a task of another execution */
        return;
    }
    bool live = running(t->status) || t->status == EK_TASK_CANCELLING;
    bool changed = false;
    switch (ev->kind) {
    case EK_EV_CLAIM:
        if (t->status == EK_TASK_PENDING) {
            /* written by the claim itself; and nothing else moves: a PENDING
             * task and a RUNNING one are both active and neither final, so
             * no other task and not the execution's status can change (the
             * store loads the claimed task alone) */
            t->status = t->saved = EK_TASK_RUNNING;
            snprintf(t->host, sizeof(t->host), "%s", ev->host ? ev->host : "");
            add(fx, EK_FX_TASK_CLAIMED, ti);
            fx->granted = true;
        } else {
            /* the same attempt asking again (its answer was lost) is granted again */
            fx->granted = running(t->status) && ev->host && strcmp(t->host, ev->host) == 0;
            fx->ignored = !fx->granted;
        }
        break;
    case EK_EV_COMPLETED:
        if (!live)
            break;
        ek_err_t *bad = ek_em_check_result(t->type, ev->result);
        if (bad) {
            add(fx, EK_FX_TASK_EXCEPTION, ti)->text = ek_xstrdup(bad->message);
            ek_err_free(bad);
            bool was_running = running(t->status);
            t->status = was_running ? EK_TASK_ERROR : EK_TASK_CANCELED;
            if (was_running)
                fail(e, fx);
        } else {
            add(fx, EK_FX_TASK_RESULT, ti);
            if (t->type->hook != EK_HOOK_NONE)
                add(fx, EK_FX_TASK_HOOK, ti);
            t->status = running(t->status) ? EK_TASK_COMPLETED : EK_TASK_CANCELED_AFTER_COMPLETION;
        }
        changed = true;
        break;
    case EK_EV_ERROR:
        if (!live)
            break;
        add(fx, EK_FX_TASK_EXCEPTION, ti)->text =
            ev->details ? ek_xasprintf("%s\n%s", ev->message ? ev->message : "", ev->details)
                        : ek_xstrdup(ev->message ? ev->message : "");
        if (running(t->status)) {
            t->status = EK_TASK_ERROR;
            fail(e, fx);
        } else {
            t->status = EK_TASK_CANCELED;
        }
        changed = true;
        break;
    case EK_EV_CANCELED:
        if (live) {
            t->status = EK_TASK_CANCELED;
            changed = true;
        }
        break;
    default: /* event, state, progress: rows of a live attempt */
        if (live)
            add(fx, EK_FX_TASK_REPORT, ti);
        else
            fx->ignored = true;
        break;
    }
    if (changed)
        advance(e, fx);
    else if (!fx->n && ev->kind != EK_EV_CLAIM)
        fx->ignored = true;
}

static ek_err_t *cancel(ek_em_exec_t *e, bool force, ek_em_effects_t *fx)
{
    if (ek_exec_status_final(e->status))
        return ek_err_new(EK_E_CONFLICT, "execution %s has already ended (%s)", e->id,
                          ek_exec_status_name(e->status));
    if (e->cancel_requested && (e->cancel_force || !force))
        return NULL; /* asked before: nothing more to do */
    e->cancel_requested = true;
    e->cancel_force = e->cancel_force || force;
    add(fx, EK_FX_EXEC_CANCEL, -1)->flag = force;
    abort_tasks(e, force);
    advance(e, fx);
    return NULL;
}

/* The worker on host stopped answering: what it ran either goes back to the
 * queue (a new attempt elsewhere) or fails, by the task type's rerunnable. */
static void worker_lost(ek_em_exec_t *e, const char *host, ek_em_effects_t *fx)
{
    bool changed = false;
    for (size_t i = 0; host && i < e->n; i++) {
        ek_em_task_t *t = &e->tasks[i];
        if (strcmp(t->host, host) != 0 || !(running(t->status) || t->status == EK_TASK_CANCELLING))
            continue;
        fx->affected++;
        changed = true;
        if (t->status == EK_TASK_CANCELLING) {
            t->status = EK_TASK_CANCELED;
        } else if (t->type && t->type->rerunnable && !e->failed && !e->cancel_requested) {
            t->status = t->saved = EK_TASK_PENDING; /* written by the requeue */
            t->host[0] = t->attempt_id[0] = '\0';
            add(fx, EK_FX_TASK_REQUEUED, (int)i)->text =
                ek_xasprintf("worker %s stopped answering or was restarted: the task runs again "
                             "on another worker",
                             host);
        } else {
            add(fx, EK_FX_TASK_EXCEPTION, (int)i)->text = ek_xasprintf(
                "worker %s stopped answering while it ran this task (%s cannot safely run twice)",
                host, t->type ? t->type->name : "?");
            t->status = EK_TASK_ERROR;
            fail(e, fx);
        }
    }
    if (changed)
        advance(e, fx);
}

ek_err_t *ek_em_apply(ek_em_exec_t *e, const ek_em_event_t *ev, ek_em_effects_t *fx)
{
    memset(fx, 0, sizeof(*fx));
    switch (ev->kind) {
    case EK_EV_CANCEL:
        return cancel(e, ev->force, fx);
    case EK_EV_WORKER_LOST:
        worker_lost(e, ev->host, fx);
        return NULL;
    default:
        report(e, ev, fx);
        return NULL;
    }
}

ek_task_status_t ek_em_initial_status(const ek_tg_task_t *t)
{
    return t->on_error_only ? EK_TASK_EXECUTE_ON_ERROR_ONLY
           : t->n_deps == 0 ? EK_TASK_PENDING
                            : EK_TASK_SCHEDULED;
}

void ek_em_exec_from_graph(const ek_taskgraph_t *g, ek_em_exec_t *e)
{
    memset(e, 0, sizeof(*e));
    e->status = EK_EXEC_RUNNING;
    e->n = g->n;
    e->tasks = ek_xcalloc(g->n + 1, sizeof(*e->tasks));
    for (size_t i = 0; i < g->n; i++) {
        const ek_tg_task_t *gt = &g->tasks[i];
        ek_em_task_t *t = &e->tasks[i];
        snprintf(t->id, sizeof(t->id), "%s", gt->id);
        t->type = gt->type;
        t->on_error = gt->on_error;
        t->on_error_only = gt->on_error_only;
        for (int d = 0; d < gt->n_deps && d < EK_EM_MAX_DEPS; d++)
            t->deps[t->n_deps++] = gt->deps[d];
        t->status = t->saved = ek_em_initial_status(gt);
    }
}
