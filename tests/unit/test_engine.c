/* test_engine.c - the execution state machine (engine/machine.c) without a
 * database (issue #19): table-driven scenarios over the real task graphs of
 * transfers and deployments for every kind of transition of
 * research/coriolis.md section 3, then random event orders checked against
 * the invariants (no task runs twice at once, no task runs before its
 * parents, a final status never changes, every execution ends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/mem.h"
#include "engine/machine.h"
#include "engine/taskgraph.h"
#include "proto/messages.h"

/* ---- an execution in memory --------------------------------------------------------- */

typedef struct sim {
    ek_taskgraph_t g;
    ek_em_exec_t e;
    char **instance;
    ek_em_effects_t fx; /* of the last event */
    ek_err_t *err;      /* of the last event */
    unsigned attempts;
} sim_t;

static void sim_load(sim_t *s)
{
    ek_em_exec_from_graph(&s->g, &s->e);
    snprintf(s->e.id, sizeof(s->e.id), "00000000-0000-4000-8000-000000000000");
    s->instance = ek_xcalloc(s->g.n + 1, sizeof(char *));
    for (size_t i = 0; i < s->g.n; i++)
        s->instance[i] = s->g.tasks[i].instance;
}

/* graph: transfer, transfer-shutdown, deploy, deploy-clone, deploy-nomorph,
 * or rollback-parent (a normal task that waits on a rollback: can never run) */
static void sim_init(sim_t *s, const char *graph, int instances)
{
    memset(s, 0, sizeof(*s));
    ek_taskgraph_init(&s->g);
    for (int i = 0; i < instances; i++) {
        char inst[32];
        snprintf(inst, sizeof(inst), "vm%d", i);
        if (!strncmp(graph, "transfer", 8)) {
            ek_transfer_opts_t o = {!strcmp(graph, "transfer-shutdown"), false};
            ek_taskgraph_transfer(&s->g, inst, &o);
        } else if (!strncmp(graph, "deploy", 6)) {
            ek_deployment_opts_t o = {!strcmp(graph, "deploy-clone"),
                                      !strcmp(graph, "deploy-nomorph")};
            ek_taskgraph_deployment(&s->g, inst, &o);
        } else {
            int r = ek_taskgraph_add(&s->g, inst, "CLEANUP_FAILED_INSTANCE_DEPLOYMENT", 0, 1, -1);
            int v = ek_taskgraph_add(&s->g, inst, "VALIDATE_DEPLOYMENT_INPUTS", 0, 0, -1);
            ek_taskgraph_add(&s->g, inst, "FINALIZE_INSTANCE_DEPLOYMENT", 0, 0, v, r, -1);
        }
    }
    sim_load(s);
}

static void sim_free(sim_t *s)
{
    ek_em_effects_release(&s->fx);
    ek_err_free(s->err);
    free(s->e.tasks);
    free(s->instance);
    ek_taskgraph_free(&s->g);
}

static int task_index(const sim_t *s, const char *type, int instance)
{
    char inst[32];
    snprintf(inst, sizeof(inst), "vm%d", instance);
    for (size_t i = 0; i < s->e.n; i++)
        if (!strcmp(s->e.tasks[i].type->name, type) && !strcmp(s->instance[i], inst))
            return (int)i;
    fail_msg("no task %s of %s", type, inst);
    return -1;
}

static void apply(sim_t *s, const ek_em_event_t *ev)
{
    ek_em_effects_release(&s->fx);
    ek_err_free(s->err);
    s->err = ek_em_apply(&s->e, ev, &s->fx);
}

/* The dispatcher's part: a PENDING task gets a new attempt. */
static void dispatch(sim_t *s, int i)
{
    snprintf(s->e.tasks[i].attempt_id, sizeof(s->e.tasks[i].attempt_id),
             "00000000-0000-4000-8000-%012x", ++s->attempts);
}

static void claim(sim_t *s, int i, const char *host)
{
    if (!s->e.tasks[i].attempt_id[0])
        dispatch(s, i);
    ek_em_event_t ev = {.kind = EK_EV_CLAIM,
                        .task_id = s->e.tasks[i].id,
                        .attempt_id = s->e.tasks[i].attempt_id,
                        .host = host};
    apply(s, &ev);
}

/* A result with exactly the declared keys (or one more when bad). */
static json_object *result_of(const ek_task_type_t *t, bool bad)
{
    json_object *r = json_object_new_object();
    for (const char *const *k = t->provides; *k; k++)
        json_object_object_add(r, *k, json_object_new_object());
    if (bad)
        json_object_object_add(r, "undeclared", json_object_new_int(1));
    return r;
}

static void report(sim_t *s, int i, ek_em_event_kind_t kind, bool bad)
{
    json_object *r = kind == EK_EV_COMPLETED ? result_of(s->e.tasks[i].type, bad) : NULL;
    ek_em_event_t ev = {.kind = kind,
                        .task_id = s->e.tasks[i].id,
                        .attempt_id = s->e.tasks[i].attempt_id,
                        .result = r,
                        .message = "it broke",
                        .details = "trace"};
    apply(s, &ev);
    json_object_put(r);
}

static bool has_effect(const sim_t *s, ek_em_effect_kind_t k)
{
    for (size_t i = 0; i < s->fx.n; i++)
        if (s->fx.v[i].kind == k)
            return true;
    return false;
}

/* Claims and completes every PENDING task until none is left. */
static void run_pending(sim_t *s)
{
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < s->e.n; i++) {
            if (s->e.tasks[i].status != EK_TASK_PENDING)
                continue;
            claim(s, (int)i, "w1");
            assert_true(s->fx.granted);
            report(s, (int)i, EK_EV_COMPLETED, false);
            more = true;
        }
    }
}

/* ---- scenarios -------------------------------------------------------------------------- */

/* One step of a scenario: "<verb> [TASK_TYPE] [arg]", or an expectation
 * "TASK_TYPE=STATUS", "exec=STATUS", "granted", "refused", "ignored",
 * "error", "fx=KIND", "sent=TASK_TYPE" (a cancel to send to its worker).
 * "ok TASK_TYPE" claims and completes it. */
typedef struct scenario {
    const char *name;
    const char *graph;
    const char *steps[32];
} scenario_t;

static const struct {
    const char *name;
    ek_em_effect_kind_t kind;
} fx_names[] = {
    {"claimed", EK_FX_TASK_CLAIMED},
    {"requeued", EK_FX_TASK_REQUEUED},
    {"exception", EK_FX_TASK_EXCEPTION},
    {"result", EK_FX_TASK_RESULT},
    {"hook", EK_FX_TASK_HOOK},
    {"report", EK_FX_TASK_REPORT},
    {"failed", EK_FX_EXEC_FAILED},
    {"cancel", EK_FX_EXEC_CANCEL},
    {"deadlocked", EK_FX_EXEC_DEADLOCKED},
    {"finished", EK_FX_EXEC_FINISHED},
};

static void step(sim_t *s, const char *line, const char *scen)
{
    char verb[64] = "", a1[64] = "", a2[64] = "";
    sscanf(line, "%63s %63s %63s", verb, a1, a2);
    char *eq = strchr(verb, '=');
    if (eq) {
        *eq = '\0';
        const char *want = eq + 1;
        if (!strcmp(verb, "exec")) {
            if (strcmp(ek_exec_status_name(s->e.status), want))
                fail_msg("%s: %s: execution is %s", scen, line, ek_exec_status_name(s->e.status));
        } else if (!strcmp(verb, "fx")) {
            bool found = false;
            for (size_t k = 0; k < EK_ARRAY_SIZE(fx_names); k++)
                if (!strcmp(fx_names[k].name, want))
                    found = has_effect(s, fx_names[k].kind);
            if (!found)
                fail_msg("%s: %s: no such effect", scen, line);
        } else if (!strcmp(verb, "sent")) {
            int i = task_index(s, want, 0);
            bool sent = false;
            for (size_t k = 0; k < s->fx.n; k++)
                sent = sent || (s->fx.v[k].kind == EK_FX_TASK_STATUS && s->fx.v[k].task == i &&
                                s->fx.v[k].cancel);
            if (!sent)
                fail_msg("%s: %s: no cancel sent", scen, line);
        } else {
            int i = task_index(s, verb, 0);
            const char *got = ek_task_status_name(s->e.tasks[i].status);
            if (strcmp(got, want))
                fail_msg("%s: %s: it is %s", scen, line, got);
        }
        return;
    }
    int i = a1[0] && strcmp(verb, "lost") ? task_index(s, a1, 0) : -1;
    if (!strcmp(verb, "run"))
        run_pending(s);
    else if (!strcmp(verb, "claim"))
        claim(s, i, a2[0] ? a2 : "w1");
    else if (!strcmp(verb, "done"))
        report(s, i, EK_EV_COMPLETED, false);
    else if (!strcmp(verb, "ok")) {
        claim(s, i, "w1");
        assert_true(s->fx.granted);
        report(s, i, EK_EV_COMPLETED, false);
    } else if (!strcmp(verb, "bad"))
        report(s, i, EK_EV_COMPLETED, true);
    else if (!strcmp(verb, "fail"))
        report(s, i, EK_EV_ERROR, false);
    else if (!strcmp(verb, "canceled"))
        report(s, i, EK_EV_CANCELED, false);
    else if (!strcmp(verb, "event"))
        report(s, i, EK_EV_EVENT, false);
    else if (!strcmp(verb, "stale")) {
        ek_em_event_t ev = {.kind = EK_EV_COMPLETED,
                            .task_id = s->e.tasks[i].id,
                            .attempt_id = "00000000-0000-4000-8000-ffffffffffff"};
        apply(s, &ev);
    } else if (!strcmp(verb, "cancel") || !strcmp(verb, "force")) {
        ek_em_event_t ev = {.kind = EK_EV_CANCEL, .force = !strcmp(verb, "force")};
        apply(s, &ev);
    } else if (!strcmp(verb, "lost")) {
        ek_em_event_t ev = {.kind = EK_EV_WORKER_LOST, .host = a1};
        apply(s, &ev);
    } else if (!strcmp(verb, "granted"))
        assert_true(s->fx.granted && !s->err);
    else if (!strcmp(verb, "refused"))
        assert_false(s->fx.granted);
    else if (!strcmp(verb, "ignored"))
        assert_true(s->fx.ignored);
    else if (!strcmp(verb, "error"))
        assert_non_null(s->err);
    else
        fail_msg("%s: unknown step '%s'", scen, line);
}

/* a transfer's first five tasks, each claimed and completed */
#define UP_TO_SOURCE_RESOURCES                                                                     \
    "ok VALIDATE_TRANSFER_SOURCE_INPUTS", "ok GET_INSTANCE_INFO",                                  \
        "ok VALIDATE_TRANSFER_DESTINATION_INPUTS", "ok DEPLOY_TRANSFER_DISKS",                     \
        "ok DEPLOY_TRANSFER_SOURCE_RESOURCES"

static const scenario_t scenarios[] = {
    {"a transfer runs to its end: cleanups after the work",
     "transfer",
     {"run", "REPLICATE_DISKS=COMPLETED", "DELETE_TRANSFER_TARGET_RESOURCES=COMPLETED",
      "exec=COMPLETED", "fx=finished"}},
    {"a claim is granted once; the same attempt asking again is granted again, another "
     "host is refused",
     "transfer",
     {"claim GET_INSTANCE_INFO", "granted", "fx=claimed", "GET_INSTANCE_INFO=RUNNING",
      "claim GET_INSTANCE_INFO", "granted", "claim GET_INSTANCE_INFO w2", "refused"}},
    {"a report of another attempt changes nothing",
     "transfer",
     {"claim GET_INSTANCE_INFO", "stale GET_INSTANCE_INFO", "ignored",
      "GET_INSTANCE_INFO=RUNNING"}},
    {"events of a live attempt are rows; after its end they are dropped",
     "transfer",
     {"claim GET_INSTANCE_INFO", "event GET_INSTANCE_INFO", "fx=report", "done GET_INSTANCE_INFO",
      "fx=result", "event GET_INSTANCE_INFO", "ignored"}},
    {"cascading failure: what depends on the failed task does not run, cleanups of work "
     "done do (on_error)",
     "transfer",
     {UP_TO_SOURCE_RESOURCES, "claim DEPLOY_TRANSFER_TARGET_RESOURCES",
      "fail DEPLOY_TRANSFER_TARGET_RESOURCES", "fx=failed", "fx=exception",
      "REPLICATE_DISKS=UNSCHEDULED", "DELETE_TRANSFER_SOURCE_RESOURCES=PENDING",
      "DELETE_TRANSFER_TARGET_RESOURCES=UNSCHEDULED", "exec=RUNNING", "run",
      "DELETE_TRANSFER_SOURCE_RESOURCES=COMPLETED", "exec=ERROR"}},
    {"a failure stops the running siblings (soft)",
     "transfer",
     {"claim VALIDATE_TRANSFER_SOURCE_INPUTS", "claim GET_INSTANCE_INFO", "fail GET_INSTANCE_INFO",
      "VALIDATE_TRANSFER_SOURCE_INPUTS=CANCELLING", "sent=VALIDATE_TRANSFER_SOURCE_INPUTS",
      "exec=RUNNING", "canceled VALIDATE_TRANSFER_SOURCE_INPUTS",
      "VALIDATE_TRANSFER_SOURCE_INPUTS=CANCELED", "exec=ERROR"}},
    {"a result that is not what the type declares fails the task",
     "transfer",
     {"claim GET_INSTANCE_INFO", "bad GET_INSTANCE_INFO", "GET_INSTANCE_INFO=ERROR", "fx=exception",
      "fx=failed"}},
    {"rollbacks (on_error_only) run only when a deployment fails",
     "deploy",
     {"run", "CLEANUP_FAILED_INSTANCE_DEPLOYMENT=UNSCHEDULED",
      "RESTORE_TRANSFER_DISK_SNAPSHOTS=UNSCHEDULED",
      "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS=COMPLETED", "exec=COMPLETED"}},
    {"a failed deployment rolls back: cleanup, then the replica disks restored",
     "deploy",
     {"ok VALIDATE_DEPLOYMENT_INPUTS", "ok CREATE_TRANSFER_DISK_SNAPSHOTS",
      "ok DEPLOY_INSTANCE_RESOURCES", "ok DEPLOY_OS_MORPHING_RESOURCES", "claim OS_MORPHING",
      "fail OS_MORPHING", "DELETE_OS_MORPHING_RESOURCES=PENDING",
      "CLEANUP_FAILED_INSTANCE_DEPLOYMENT=SCHEDULED", "run",
      "FINALIZE_INSTANCE_DEPLOYMENT=UNSCHEDULED", "CLEANUP_FAILED_INSTANCE_DEPLOYMENT=COMPLETED",
      "RESTORE_TRANSFER_DISK_SNAPSHOTS=COMPLETED",
      "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS=UNSCHEDULED", "exec=ERROR"}},
    {"a completed deployment's hooks: the transfer result, the replica taken",
     "deploy-nomorph",
     {"ok VALIDATE_DEPLOYMENT_INPUTS", "ok CREATE_TRANSFER_DISK_SNAPSHOTS",
      "ok DEPLOY_INSTANCE_RESOURCES", "ok FINALIZE_INSTANCE_DEPLOYMENT", "fx=hook",
      "ok DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", "fx=hook", "exec=COMPLETED"}},
    {"soft cancel: unclaimed work cancelled, running work told to stop, cleanups run",
     "transfer",
     {UP_TO_SOURCE_RESOURCES, "cancel", "fx=cancel", "DEPLOY_TRANSFER_TARGET_RESOURCES=CANCELED",
      "DELETE_TRANSFER_SOURCE_RESOURCES=PENDING", "exec=CANCELLING", "run",
      "REPLICATE_DISKS=UNSCHEDULED", "exec=CANCELED"}},
    {"soft cancel of a running task: it may still complete (CANCELED_AFTER_COMPLETION)",
     "transfer",
     {"claim GET_INSTANCE_INFO", "cancel", "GET_INSTANCE_INFO=CANCELLING", "sent=GET_INSTANCE_INFO",
      "done GET_INSTANCE_INFO", "GET_INSTANCE_INFO=CANCELED_AFTER_COMPLETION", "exec=CANCELED"}},
    {"forced cancel kills running cleanups too",
     "transfer",
     {UP_TO_SOURCE_RESOURCES, "claim DEPLOY_TRANSFER_TARGET_RESOURCES", "cancel",
      "done DEPLOY_TRANSFER_TARGET_RESOURCES",
      "DEPLOY_TRANSFER_TARGET_RESOURCES=CANCELED_AFTER_COMPLETION", "REPLICATE_DISKS=UNSCHEDULED",
      "DELETE_TRANSFER_SOURCE_RESOURCES=PENDING", "DELETE_TRANSFER_TARGET_RESOURCES=PENDING",
      "claim DELETE_TRANSFER_SOURCE_RESOURCES", "claim DELETE_TRANSFER_TARGET_RESOURCES", "force",
      "DELETE_TRANSFER_SOURCE_RESOURCES=FORCE_CANCELED",
      "DELETE_TRANSFER_TARGET_RESOURCES=FORCE_CANCELED", "sent=DELETE_TRANSFER_SOURCE_RESOURCES",
      "exec=CANCELED", "canceled DELETE_TRANSFER_TARGET_RESOURCES", "ignored"}},
    {"a cancel asked twice changes nothing the second time",
     "transfer",
     {"claim GET_INSTANCE_INFO", "cancel", "cancel", "exec=CANCELLING"}},
    {"a lost worker: a re-runnable task goes back to the queue and runs again",
     "transfer",
     {"claim GET_INSTANCE_INFO w1", "lost w1", "fx=requeued", "GET_INSTANCE_INFO=PENDING",
      "exec=RUNNING", "claim GET_INSTANCE_INFO w2", "granted", "done GET_INSTANCE_INFO",
      "GET_INSTANCE_INFO=COMPLETED"}},
    {"a lost worker: a task that cannot run twice fails the execution",
     "transfer",
     {"ok VALIDATE_TRANSFER_SOURCE_INPUTS", "ok GET_INSTANCE_INFO",
      "ok VALIDATE_TRANSFER_DESTINATION_INPUTS", "ok DEPLOY_TRANSFER_DISKS",
      "claim DEPLOY_TRANSFER_SOURCE_RESOURCES w3", "lost w3",
      "DEPLOY_TRANSFER_SOURCE_RESOURCES=ERROR", "fx=exception", "fx=failed",
      "DEPLOY_TRANSFER_TARGET_RESOURCES=CANCELED", "exec=ERROR"}},
    {"a lost worker's attempt reports late: ignored",
     "transfer",
     {"claim GET_INSTANCE_INFO w1", "lost w1", "stale GET_INSTANCE_INFO", "ignored",
      "GET_INSTANCE_INFO=PENDING"}},
    {"a lost worker that was cancelling: its task counts as cancelled",
     "transfer",
     {"claim GET_INSTANCE_INFO w1", "cancel", "lost w1", "GET_INSTANCE_INFO=CANCELED",
      "exec=CANCELED"}},
    {"deadlock: a task that waits on what can never run strands",
     "rollback-parent",
     {"ok VALIDATE_DEPLOYMENT_INPUTS", "exec=DEADLOCKED",
      "FINALIZE_INSTANCE_DEPLOYMENT=STRANDED_AFTER_DEADLOCK", "fx=deadlocked", "fx=finished"}},
    {"cancelling an ended execution is refused", "transfer", {"run", "cancel", "error"}},
};

static void test_scenarios(void **state)
{
    (void)state;
    for (size_t k = 0; k < EK_ARRAY_SIZE(scenarios); k++) {
        sim_t s;
        sim_init(&s, scenarios[k].graph, 1);
        for (const char *const *st = scenarios[k].steps; *st; st++)
            step(&s, *st, scenarios[k].name);
        sim_free(&s);
    }
}

/* Every effect kind and status change is reported as an effect: a TASK_STATUS
 * for each task whose status differs from the stored one, none otherwise. */
static void test_effects_match_statuses(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, "deploy", 2);
    ek_task_status_t before[64];
    for (int round = 0; round < 40 && !ek_exec_status_final(s.e.status); round++) {
        for (size_t i = 0; i < s.e.n; i++)
            before[i] = s.e.tasks[i].status;
        int i = -1;
        for (size_t k = 0; k < s.e.n && i < 0; k++)
            if (s.e.tasks[k].status == EK_TASK_PENDING || s.e.tasks[k].status == EK_TASK_RUNNING)
                i = (int)k;
        assert_true(i >= 0);
        if (s.e.tasks[i].status == EK_TASK_PENDING)
            claim(&s, i, "w1");
        else
            report(&s, i, round == 7 ? EK_EV_ERROR : EK_EV_COMPLETED, false);
        for (size_t t = 0; t < s.e.n; t++) {
            bool fx = false;
            for (size_t f = 0; f < s.fx.n; f++)
                if (s.fx.v[f].kind == EK_FX_TASK_STATUS && s.fx.v[f].task == (int)t) {
                    assert_int_equal(s.fx.v[f].status, s.e.tasks[t].status);
                    fx = true;
                }
            bool claimed =
                s.fx.n && s.fx.v[0].kind == EK_FX_TASK_CLAIMED && s.fx.v[0].task == (int)t;
            assert_int_equal(fx || claimed, before[t] != s.e.tasks[t].status);
        }
    }
    assert_int_equal(s.e.status, EK_EXEC_ERROR);
    sim_free(&s);
}

/* ---- random event orders ------------------------------------------------------------------ */

static unsigned rnd(unsigned *seed, unsigned n)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) % n;
}

static const char *const hosts[] = {"w1", "w2", "w3"};

/* Checks a granted claim: parents done as the task's kind needs, and no
 * other attempt of the task live. */
static void check_claim(const sim_t *s, int i, const bool *live)
{
    const ek_em_task_t *t = &s->e.tasks[i];
    bool some = t->n_deps == 0;
    for (int d = 0; d < t->n_deps; d++) {
        ek_task_status_t ps = s->e.tasks[t->deps[d]].status;
        assert_true(ek_task_status_final(ps));
        if (!t->on_error && !t->on_error_only)
            assert_int_equal(ps, EK_TASK_COMPLETED);
        some = some || ps == EK_TASK_COMPLETED || ps == EK_TASK_CANCELED_AFTER_COMPLETION;
    }
    assert_true(some);
    assert_false(live[i]); /* never two attempts of one task at once */
}

static ek_exec_status_t random_run(unsigned seed)
{
    static const char *const graphs[] = {"transfer", "transfer-shutdown", "deploy", "deploy-clone",
                                         "deploy-nomorph"};
    sim_t s;
    sim_init(&s, graphs[rnd(&seed, EK_ARRAY_SIZE(graphs))], 1 + (int)rnd(&seed, 3));
    size_t n = s.e.n;
    bool *live = ek_xcalloc(n, sizeof(bool)); /* an attempt runs on a worker */
    int *host = ek_xcalloc(n, sizeof(int));
    ek_task_status_t *final_seen = ek_xcalloc(n, sizeof(ek_task_status_t));
    bool *was_final = ek_xcalloc(n, sizeof(bool));
    int steps = 0;
    while (!ek_exec_status_final(s.e.status)) {
        assert_true(++steps < 5000); /* every execution ends */
        unsigned what = rnd(&seed, 100);
        int i = (int)rnd(&seed, (unsigned)n);
        ek_em_task_t *t = &s.e.tasks[i];
        if (what < 3) {
            ek_em_event_t ev = {.kind = EK_EV_CANCEL, .force = rnd(&seed, 2)};
            apply(&s, &ev);
            if (ev.force) /* the worker kills what was force-cancelled */
                for (size_t k = 0; k < n; k++)
                    if (s.e.tasks[k].status == EK_TASK_FORCE_CANCELED)
                        live[k] = false;
        } else if (what < 6) {
            int h = (int)rnd(&seed, 3);
            ek_em_event_t ev = {.kind = EK_EV_WORKER_LOST, .host = hosts[h]};
            apply(&s, &ev);
            for (size_t k = 0; k < n; k++)
                if (live[k] && host[k] == h)
                    live[k] = false; /* its processes died with it */
        } else if (what < 10) {
            report(&s, i, EK_EV_EVENT, false); /* maybe stale: must not move anything */
            assert_int_equal(s.e.status == EK_EXEC_RUNNING || s.e.status == EK_EXEC_CANCELLING,
                             true);
        } else if (t->status == EK_TASK_PENDING) {
            int h = (int)rnd(&seed, 3);
            claim(&s, i, hosts[h]);
            /* a claim writes its task alone (the store loads only that row) */
            assert_true(s.fx.n == (s.fx.granted ? 1u : 0u));
            if (s.fx.granted) {
                check_claim(&s, i, live);
                live[i] = true;
                host[i] = h;
            }
        } else if (live[i]) {
            unsigned r = rnd(&seed, 10);
            report(&s, i, r < 7 ? EK_EV_COMPLETED : r < 9 ? EK_EV_ERROR : EK_EV_CANCELED, false);
            live[i] = false;
        }
        /* the dispatcher gives new attempts to PENDING tasks without one */
        for (size_t k = 0; k < n; k++) {
            if (s.e.tasks[k].status == EK_TASK_PENDING && !s.e.tasks[k].attempt_id[0])
                dispatch(&s, (int)k);
            /* a final status never changes */
            if (was_final[k])
                assert_int_equal(s.e.tasks[k].status, final_seen[k]);
            if (ek_task_status_final(s.e.tasks[k].status)) {
                was_final[k] = true;
                final_seen[k] = s.e.tasks[k].status;
            }
            /* a task the engine holds as running has an attempt on a worker */
            if (s.e.tasks[k].status == EK_TASK_RUNNING)
                assert_true(live[k]);
        }
    }
    for (size_t k = 0; k < n; k++) {
        assert_true(ek_task_status_final(s.e.tasks[k].status));
        assert_false(live[k] && s.e.tasks[k].status != EK_TASK_FORCE_CANCELED &&
                     s.e.tasks[k].status != EK_TASK_CANCELED);
    }
    free(live);
    free(host);
    free(final_seen);
    free(was_final);
    ek_exec_status_t end = s.e.status;
    sim_free(&s);
    return end;
}

static void test_random_orders(void **state)
{
    (void)state;
    int ends[EK_EXEC_STATUS_COUNT] = {0};
    for (unsigned seed = 1; seed <= 3000; seed++)
        ends[random_run(seed)]++;
    /* the orders reach every way an execution ends */
    assert_true(ends[EK_EXEC_COMPLETED] > 0);
    assert_true(ends[EK_EXEC_ERROR] > 0);
    assert_true(ends[EK_EXEC_CANCELED] > 0);
}

/* ---- names ---------------------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < EK_TASK_STATUS_COUNT; i++) {
        ek_task_status_t s;
        assert_true(ek_task_status_parse(ek_task_status_name((ek_task_status_t)i), &s));
        assert_int_equal(s, i);
    }
    for (int i = 0; i < EK_EXEC_STATUS_COUNT; i++) {
        ek_exec_status_t s;
        assert_true(ek_exec_status_parse(ek_exec_status_name((ek_exec_status_t)i), &s));
        assert_int_equal(s, i);
    }
    for (int i = 1; i < EK_MSG_T_COUNT; i++)
        assert_int_equal(ek_msg_type_parse(ek_msg_type_name((ek_msg_type_t)i)), i);
    ek_task_status_t ts;
    assert_false(ek_task_status_parse("running", &ts));
    assert_false(ek_task_status_parse(NULL, &ts));
    assert_int_equal(ek_msg_type_parse("task.nope"), EK_MSG_T_UNKNOWN);
    assert_true(ek_task_status_final(EK_TASK_FAILED_TO_SCHEDULE));
    assert_false(ek_task_status_final(EK_TASK_CANCELLING));
    assert_true(ek_task_status_active(EK_TASK_PENDING));
    assert_false(ek_task_status_active(EK_TASK_SCHEDULED));
    assert_true(ek_exec_status_final(EK_EXEC_DEADLOCKED));
    assert_false(ek_exec_status_final(EK_EXEC_CANCELLING));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_effects_match_statuses),
        cmocka_unit_test(test_random_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
