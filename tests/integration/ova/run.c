/* run.c - ek-ova-run: a transfer execution from an `ova` source endpoint to
 * a `local` destination endpoint through the providers' task functions,
 * without the services: the conductor's task graph (engine/taskgraph.c)
 * run in order, each task by the provider the worker would pick
 * (worker/child.c: source tasks and REPLICATE_DISKS on the origin), its
 * result checked to hold exactly the declared keys and merged into the
 * instance's task info. Stops at the first failed task (no rollbacks: the
 * tests check that nothing reached the destination).
 *
 *   ek-ova-run --src DIR --dst DIR --instance NAME --info FILE --config FILE
 *              [--network-map JSON] [--report FILE]
 *
 * FILE (--info): {"transfer": {NAME: task info}, "completed_executions": N}.
 * Exit status: 0 completed, 1 failed, 2 bad usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
extern const ek_provider_t ek_provider_ova;

static char *slurp(const char *path)
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

static ek_task_fn task_fn(const ek_provider_t *p, const char *type)
{
    for (const ek_task_impl_t *t = p->tasks; t->task_type; t++)
        if (strcmp(t->task_type, type) == 0)
            return t->run;
    return NULL;
}

static json_object *conn(const char *path)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    return o;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"src", 1, NULL, 's'},         {"dst", 1, NULL, 'd'},
        {"instance", 1, NULL, 'i'},    {"info", 1, NULL, 'f'},
        {"network-map", 1, NULL, 'n'}, {"report", 1, NULL, 'r'},
        {"config", 1, NULL, 'c'},      {NULL, 0, NULL, 0},
    };
    const char *src = NULL, *dst = NULL, *instance = NULL, *info_path = NULL, *netmap = "{}";
    const char *report_path = NULL, *config_path = NULL;
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
        default:
            return 2;
        }
    }
    if (!src || !dst || !instance || !info_path || !config_path) {
        fprintf(stderr, "usage: ek-ova-run --src DIR --dst DIR --instance NAME --info FILE "
                        "--config FILE [--network-map JSON] [--report FILE]\n");
        return 2;
    }
    ek_log_init("ek-ova-run");
    ek_config_t *cfg = ek_config_new();
    json_object *netmap_j = NULL, *state = NULL;
    ek_err_t *err = ek_config_load_file(cfg, config_path);
    if (!err)
        err = ek_json_parse(netmap, strlen(netmap), &netmap_j);
    char *text = err ? NULL : slurp(info_path);
    if (!err && text)
        err = ek_json_parse(text, strlen(text), &state);
    free(text);
    if (err) {
        fprintf(stderr, "ek-ova-run: %s\n", err->message);
        ek_err_free(err);
        json_object_put(netmap_j);
        ek_config_free(cfg);
        return 2;
    }
    if (!state)
        state = json_object_new_object();
    json_object *transfer, *v, *ii;
    if (!json_object_object_get_ex(state, "transfer", &transfer)) {
        transfer = json_object_new_object();
        json_object_object_add(state, "transfer", transfer);
    }
    if (!json_object_object_get_ex(transfer, instance, &ii)) {
        ii = json_object_new_object();
        json_object_object_add(transfer, instance, ii);
    }
    int64_t completed =
        json_object_object_get_ex(state, "completed_executions", &v) ? json_object_get_int64(v) : 0;
    ek_endpoint_t origin = {"src-id",
                            "src",
                            "ova",
                            conn(src),
                            json_object_new_object(),
                            json_object_new_object(),
                            json_object_new_object()};
    ek_endpoint_t dest = {"dst-id",
                          "dst",
                          "local",
                          conn(dst),
                          json_object_new_object(),
                          json_object_get(netmap_j),
                          json_object_new_object()};
    char execution_id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(execution_id);
    ek_taskgraph_t g;
    ek_taskgraph_init(&g);
    ek_transfer_opts_t o = {false, completed > 0};
    ek_taskgraph_transfer(&g, instance, &o);
    json_object *report = json_object_new_array();
    bool ok = true;
    for (size_t i = 0; i < g.n && ok; i++) {
        const ek_tg_task_t *t = &g.tasks[i];
        if (t->on_error_only || t->on_error)
            continue;
        const ek_task_type_t *type = t->type;
        bool on_source = ek_task_type_on_source(type);
        const ek_provider_t *p = on_source ? &ek_provider_ova : &ek_provider_local;
        ek_task_fn fn = task_fn(p, type->name);
        ek_task_ctx_t *ctx = ek_test_ctx_new(cfg, stdout, type->name);
        json_object *ti = NULL, *result = json_object_new_object();
        json_object_deep_copy(ii, &ti, NULL);
        _cleanup_free_ char *task_id = ek_xasprintf("%s-%s", execution_id, type->name);
        ek_task_input_t in = {.task_id = task_id,
                              .execution_id = execution_id,
                              .task_type = type->name,
                              .instance = instance,
                              .params = t->params,
                              .task_info = ti,
                              .clone_disks = true,
                              .skip_os_morphing = true,
                              .origin = &origin,
                              .destination = &dest};
        printf("[%s] started on %s\n", type->name, p->name);
        fflush(stdout);
        err = fn ? fn(ctx, &in, result)
                 : ek_err_new(EK_E_INVALID, "provider '%s' cannot run %s", p->name, type->name);
        if (!err)
            err = ek_em_check_result(type, result);
        json_object *rep = json_object_new_object();
        json_object_object_add(rep, "type", json_object_new_string(type->name));
        json_object_object_add(rep, "status", json_object_new_string(err ? "ERROR" : "COMPLETED"));
        if (err) {
            json_object_object_add(rep, "error", json_object_new_string(err->message));
            printf("[%s] ERROR: %s\n", type->name, err->message);
            ek_err_free(err);
            ok = false;
        } else {
            json_object_object_foreach(result, key, val)
                json_object_object_add(ii, key, json_object_get(val));
            printf("[%s] completed\n", type->name);
        }
        json_object_object_add(rep, "events", json_object_get(ek_test_ctx_events(ctx)));
        json_object_object_add(rep, "steps", json_object_get(ek_test_ctx_steps(ctx)));
        json_object_array_add(report, rep);
        fflush(stdout);
        json_object_put(result);
        json_object_put(ti);
        ek_test_ctx_free(ctx);
    }
    if (ok)
        json_object_object_add(state, "completed_executions", json_object_new_int64(completed + 1));
    printf("transfer: %s\n", ok ? "COMPLETED" : "ERROR");
    int code = ok ? 0 : 1;
    char *s = ek_json_dump(state, true);
    FILE *f = fopen(info_path, "w");
    if (!f || fputs(s, f) < 0)
        code = 2;
    if (f)
        fclose(f);
    free(s);
    if (report_path) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "status", json_object_new_string(ok ? "COMPLETED" : "ERROR"));
        json_object_object_add(r, "tasks", json_object_get(report));
        s = ek_json_dump(r, true);
        f = fopen(report_path, "w");
        if (!f || fputs(s, f) < 0)
            code = 2;
        if (f)
            fclose(f);
        free(s);
        json_object_put(r);
    }
    json_object_put(report);
    ek_taskgraph_free(&g);
    json_object_put(state);
    json_object_put(netmap_j);
    json_object_put(origin.connection_info);
    json_object_put(origin.environment);
    json_object_put(origin.network_map);
    json_object_put(origin.storage_mappings);
    json_object_put(dest.connection_info);
    json_object_put(dest.environment);
    json_object_put(dest.network_map);
    json_object_put(dest.storage_mappings);
    ek_config_free(cfg);
    ek_log_shutdown();
    return code;
}
