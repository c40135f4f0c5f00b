/* run.c - ek-local-run: runs whole executions of the `local` provider
 * through its task functions, without the services: the task graph the
 * conductor would build (engine/taskgraph.c), driven by the conductor's own
 * state machine (engine/machine.c: a task runs when its parents ended;
 * cleanups when one of their parents completed; rollbacks only when the
 * execution failed; each result checked to hold exactly the keys its type
 * declares), its effects applied here as engine/store.c applies them: the
 * result merged into the instance's task info, the post-task hooks of
 * deployments into the transfer's task info.
 *
 *   ek-local-run --src DIR --dst DIR --instance NAME --info FILE
 *                [--network-map JSON] [--report FILE] [--config FILE]
 *                transfer [--shutdown] [--interrupt-replicate N | --cancel-replicate N]
 *              | deploy [--no-clone-disks] [--os-morphing]
 *              | delete-disks
 *
 * FILE (--info) keeps what the database would between runs:
 *   {"transfer": {NAME: task info}, "completed_executions": N}
 * The report is {"status": ..., "tasks": [{type, status, error, events,
 * steps}]}. Exit status: 0 when the execution completed, 1 when it failed,
 * 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "common/uuid.h"
#include "engine/machine.h"
#include "engine/taskgraph.h"
#include "proto/tasks.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/provider.h"

extern const ek_provider_t ek_provider_local;

typedef struct run {
    const char *instance;
    ek_endpoint_t origin, destination;
    const ek_config_t *cfg;
    bool clone_disks, skip_os_morphing, deployment;
    json_object *info;     /* this execution's task info: {NAME: {...}} */
    json_object *transfer; /* the transfer's (same object for a transfer execution) */
    json_object *report_tasks;
    int interrupt_replicate;
    long cancel_replicate;
    char execution_id[EK_UUID_STRLEN + 1]; /* new for each run, as the conductor's */
} run_t;

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static ek_task_fn task_fn(const char *type)
{
    for (const ek_task_impl_t *t = ek_provider_local.tasks; t->task_type; t++)
        if (is(t->task_type, type))
            return t->run;
    return NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    return ek_strbuf_detach(&sb);
}

static bool write_json(const char *path, json_object *o)
{
    char *s = ek_json_dump(o, true);
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = false;
    free(s);
    return ok;
}

static json_object *instance_info(json_object *info, const char *instance)
{
    json_object *ii;
    if (!json_object_object_get_ex(info, instance, &ii)) {
        ii = json_object_new_object();
        json_object_object_add(info, instance, ii);
    }
    return ii;
}

/* One attempt of a task: its report entry is added; the error returned, or
 * its result in *out. */
static ek_err_t *attempt(run_t *r, const ek_tg_task_t *t, json_object *state, int cancel_after,
                         long cancel_after_checks, json_object **saved, json_object **out)
{
    const ek_task_type_t *type = t->type;
    ek_task_fn fn = task_fn(type->name);
    ek_task_ctx_t *ctx = ek_test_ctx_new(r->cfg, stdout, type->name);
    if (cancel_after > 0)
        ek_test_ctx_cancel_after_saves(ctx, cancel_after);
    if (cancel_after_checks > 0)
        ek_test_ctx_cancel_after_checks(ctx, cancel_after_checks);
    json_object *ti = NULL, *result = json_object_new_object();
    json_object_deep_copy(instance_info(r->info, r->instance), &ti, NULL);
    /* one id per task of this execution, kept by its re-runs (as the conductor's) */
    _cleanup_free_ char *task_id = ek_xasprintf("%s-%s", r->execution_id, type->name);
    ek_task_input_t in = {
        .task_id = task_id,
        .execution_id = r->execution_id,
        .task_type = type->name,
        .instance = r->instance,
        .params = t->params,
        .task_info = ti,
        .state = state,
        .user_scripts = NULL,
        .clone_disks = r->clone_disks,
        .skip_os_morphing = r->skip_os_morphing,
        .origin = &r->origin,
        .destination = &r->destination,
    };
    printf("[%s] started%s\n", type->name, state ? " (resuming from the saved state)" : "");
    fflush(stdout);
    ek_err_t *err = fn ? fn(ctx, &in, result)
                       : ek_err_new(EK_E_INVALID, "provider 'local' cannot run %s", type->name);
    if (!err && ek_task_cancelled(ctx))
        err = ek_err_new(EK_E_CANCELED, "cancelled"); /* as worker/child.c does */
    if (!err)
        err = ek_em_check_result(type, result);
    json_object *rep = json_object_new_object();
    json_object_object_add(rep, "type", json_object_new_string(type->name));
    json_object_object_add(rep, "status", json_object_new_string(err ? "ERROR" : "COMPLETED"));
    json_object_object_add(rep, "resumed", json_object_new_boolean(state != NULL));
    json_object_object_add(rep, "state_saves", json_object_new_int(ek_test_ctx_saves(ctx)));
    if (err) {
        json_object_object_add(rep, "error", json_object_new_string(err->message));
        printf("[%s] ERROR: %s\n", type->name, err->message);
    } else {
        printf("[%s] completed\n", type->name);
    }
    json_object_object_add(rep, "events", json_object_get(ek_test_ctx_events(ctx)));
    json_object_object_add(rep, "steps", json_object_get(ek_test_ctx_steps(ctx)));
    json_object_array_add(r->report_tasks, rep);
    fflush(stdout);
    *saved = json_object_get(ek_test_ctx_state(ctx));
    *out = err ? NULL : json_object_get(result);
    json_object_put(result);
    json_object_put(ti);
    ek_test_ctx_free(ctx);
    return err;
}

/* Runs one task; true when it completed. With --interrupt-replicate N,
 * REPLICATE_DISKS is stopped after its Nth state save and run again from
 * that state, as the conductor re-dispatches a task whose worker died.
 * With --cancel-replicate N, it is cancelled after N reads (and the
 * execution fails). */
static ek_err_t *run_task(run_t *r, const ek_tg_task_t *t, json_object **result)
{
    bool repl = is(t->type->name, "REPLICATE_DISKS");
    int interrupt = repl ? r->interrupt_replicate : 0;
    json_object *saved = NULL;
    ek_err_t *err = attempt(r, t, NULL, interrupt, repl ? r->cancel_replicate : 0, &saved, result);
    if (err && interrupt && err->code == EK_E_CANCELED) {
        ek_err_free(err);
        json_object *state = saved;
        saved = NULL;
        err = attempt(r, t, state, 0, 0, &saved, result);
        json_object_put(state);
    }
    json_object_put(saved);
    return err;
}

/* ---- the conductor's state machine, in one process ---- */

/* The effects that change task info, applied as engine/store.c does (the
 * deployment's transfer_result is not kept here). */
static void apply_effect(run_t *r, const ek_task_type_t *type, const ek_em_effect_t *f,
                         json_object *result)
{
    if (f->kind == EK_FX_TASK_RESULT) {
        /* a shallow || of the result into the instance's task info */
        json_object *ii = instance_info(r->info, r->instance);
        json_object_object_foreach(result, key, val)
            json_object_object_add(ii, key, json_object_get(val));
    } else if (f->kind == EK_FX_TASK_HOOK && r->deployment) {
        json_object *tii = instance_info(r->transfer, r->instance);
        if (type->hook == EK_HOOK_REPLICA_RESTORED)
            json_object_object_add(tii, "volumes_info",
                                   json_object_get(json_object_object_get(result, "volumes_info")));
        else if (type->hook == EK_HOOK_REPLICA_TAKEN && !r->clone_disks)
            json_object_object_add(tii, "volumes_info", json_object_new_array());
    }
}

static bool run_graph(run_t *r, const ek_taskgraph_t *g)
{
    ek_em_exec_t e;
    ek_em_exec_from_graph(g, &e);
    snprintf(e.id, sizeof(e.id), "%s", r->execution_id);
    while (!ek_exec_status_final(e.status)) {
        size_t next = e.n;
        for (size_t i = 0; i < e.n && next == e.n; i++)
            if (e.tasks[i].status == EK_TASK_PENDING)
                next = i;
        if (next == e.n)
            break; /* nothing can run: the machine has said DEADLOCKED */
        ek_em_task_t *t = &e.tasks[next];
        ek_uuid_generate(t->attempt_id); /* the dispatcher's part */
        ek_em_effects_t fx;
        ek_em_event_t ev = {
            .kind = EK_EV_CLAIM, .task_id = t->id, .attempt_id = t->attempt_id, .host = "local"};
        ek_err_t *err = ek_em_apply(&e, &ev, &fx);
        bool granted = !err && fx.granted;
        ek_err_free(err);
        ek_em_effects_release(&fx);
        if (!granted)
            break;
        json_object *result = NULL;
        err = run_task(r, &g->tasks[next], &result);
        ev = (ek_em_event_t){.kind = err ? EK_EV_ERROR : EK_EV_COMPLETED,
                             .task_id = t->id,
                             .attempt_id = t->attempt_id,
                             .result = result,
                             .message = err ? err->message : NULL};
        ek_err_t *aerr = ek_em_apply(&e, &ev, &fx);
        for (size_t k = 0; !aerr && k < fx.n; k++)
            if (fx.v[k].task == (int)next)
                apply_effect(r, t->type, &fx.v[k], result);
        ek_err_free(aerr);
        ek_err_free(err);
        ek_em_effects_release(&fx);
        json_object_put(result);
    }
    for (size_t i = 0; i < e.n; i++)
        printf("  %-40s %s\n", g->tasks[i].type->name, ek_task_status_name(e.tasks[i].status));
    bool ok = e.status == EK_EXEC_COMPLETED;
    free(e.tasks);
    return ok;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ek-local-run --src DIR --dst DIR --instance NAME --info FILE\n"
            "                    [--network-map JSON] [--report FILE] [--config FILE]\n"
            "       transfer [--shutdown] [--interrupt-replicate N | --cancel-replicate N]\n"
            "     | deploy [--no-clone-disks] [--os-morphing]\n"
            "     | delete-disks\n");
}

static json_object *endpoint_conn(const char *path)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    return o;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"src", 1, NULL, 's'},
        {"dst", 1, NULL, 'd'},
        {"instance", 1, NULL, 'i'},
        {"info", 1, NULL, 'f'},
        {"network-map", 1, NULL, 'n'},
        {"report", 1, NULL, 'r'},
        {"config", 1, NULL, 'c'},
        {"shutdown", 0, NULL, 'S'},
        {"no-clone-disks", 0, NULL, 'C'},
        {"os-morphing", 0, NULL, 'O'},
        {"interrupt-replicate", 1, NULL, 'I'},
        {"cancel-replicate", 1, NULL, 'X'},
        {NULL, 0, NULL, 0},
    };
    const char *src = NULL, *dst = NULL, *instance = NULL, *info_path = NULL, *netmap = "{}";
    const char *report_path = NULL, *config_path = NULL;
    bool shutdown = false, clone = true, morph = false;
    int interrupt = 0;
    long cancel = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            src = optarg;
            break;
        case 'd':
            dst = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 'f':
            info_path = optarg;
            break;
        case 'n':
            netmap = optarg;
            break;
        case 'r':
            report_path = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'S':
            shutdown = true;
            break;
        case 'C':
            clone = false;
            break;
        case 'O':
            morph = true;
            break;
        case 'I':
            interrupt = atoi(optarg);
            break;
        case 'X':
            cancel = atol(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!src || !dst || !instance || !info_path || optind != argc - 1) {
        usage();
        return 2;
    }
    const char *command = argv[optind];
    ek_log_init("ek-local-run");
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = config_path ? ek_config_load_file(cfg, config_path) : NULL;
    json_object *netmap_j = NULL, *state = NULL;
    if (!err)
        err = ek_json_parse(netmap, strlen(netmap), &netmap_j);
    char *text = err ? NULL : read_file(info_path);
    if (!err && text)
        err = ek_json_parse(text, strlen(text), &state);
    free(text);
    if (err) {
        fprintf(stderr, "ek-local-run: %s\n", err->message);
        ek_err_free(err);
        json_object_put(netmap_j);
        ek_config_free(cfg);
        return 2;
    }
    if (!state)
        state = json_object_new_object();
    json_object *transfer, *v;
    if (!json_object_object_get_ex(state, "transfer", &transfer)) {
        transfer = json_object_new_object();
        json_object_object_add(state, "transfer", transfer);
    }
    int64_t completed =
        json_object_object_get_ex(state, "completed_executions", &v) ? json_object_get_int64(v) : 0;

    run_t r = {.instance = instance, .cfg = cfg, .clone_disks = clone, .skip_os_morphing = !morph};
    ek_uuid_generate(r.execution_id);
    r.origin = (ek_endpoint_t){"src-id",
                               "src",
                               "local",
                               endpoint_conn(src),
                               json_object_new_object(),
                               json_object_new_object(),
                               json_object_new_object()};
    r.destination = (ek_endpoint_t){"dst-id",
                                    "dst",
                                    "local",
                                    endpoint_conn(dst),
                                    json_object_new_object(),
                                    json_object_get(netmap_j),
                                    json_object_new_object()};
    r.transfer = transfer;
    r.report_tasks = json_object_new_array();
    r.interrupt_replicate = interrupt;
    r.cancel_replicate = cancel;
    ek_taskgraph_t g;
    ek_taskgraph_init(&g);
    int code = 2;
    if (is(command, "transfer")) {
        ek_transfer_opts_t o = {shutdown, completed > 0};
        ek_taskgraph_transfer(&g, instance, &o);
        r.info = json_object_get(transfer);
    } else if (is(command, "deploy")) {
        ek_deployment_opts_t o = {clone, !morph};
        ek_taskgraph_deployment(&g, instance, &o);
        r.deployment = true;
        json_object_deep_copy(transfer, &r.info, NULL); /* a deployment copies the info */
    } else if (is(command, "delete-disks")) {
        ek_taskgraph_delete_disks(&g, instance);
        r.info = json_object_get(transfer);
    } else {
        usage();
        goto out;
    }
    if ((err = ek_taskgraph_check(&g, r.info))) {
        fprintf(stderr, "ek-local-run: %s\n", err->message);
        ek_err_free(err);
        goto out;
    }
    bool ok = run_graph(&r, &g);
    if (ok && is(command, "transfer"))
        json_object_object_add(state, "completed_executions", json_object_new_int64(completed + 1));
    if (r.deployment) {
        json_object *ii = NULL;
        json_object_object_get_ex(r.info, instance, &ii);
        json_object_object_add(state, "deployment", json_object_get(ii));
    }
    printf("%s: %s\n", command, ok ? "COMPLETED" : "ERROR");
    code = ok ? 0 : 1;
    if (!write_json(info_path, state)) {
        fprintf(stderr, "ek-local-run: could not write %s: %s\n", info_path, strerror(errno));
        code = 2;
    }
    if (report_path) {
        json_object *rep = json_object_new_object();
        json_object_object_add(rep, "status", json_object_new_string(ok ? "COMPLETED" : "ERROR"));
        json_object_object_add(rep, "tasks", json_object_get(r.report_tasks));
        if (!write_json(report_path, rep))
            code = 2;
        json_object_put(rep);
    }
out:
    ek_taskgraph_free(&g);
    json_object_put(r.info);
    json_object_put(r.report_tasks);
    json_object_put(state);
    json_object_put(netmap_j);
    json_object_put(r.origin.connection_info);
    json_object_put(r.origin.environment);
    json_object_put(r.origin.network_map);
    json_object_put(r.origin.storage_mappings);
    json_object_put(r.destination.connection_info);
    json_object_put(r.destination.environment);
    json_object_put(r.destination.network_map);
    json_object_put(r.destination.storage_mappings);
    ek_config_free(cfg);
    ek_log_shutdown();
    return code;
}
