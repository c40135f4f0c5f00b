/* src_run.c - ek-lv-src: runs the libvirt provider's source side (endpoint
 * calls and task functions) outside the services, for
 * test_libvirt_source.sh; destination tasks run on the `local` provider
 * (a directory of replicas written by a local ekman-writer).
 *
 *   ek-lv-src endpoint QUERY --conn FILE [--args JSON] [--config FILE]
 *       QUERY: validate_connection | instances | instance | networks | storage
 *       prints the answer (JSON); exit 1 with "ERROR: message" on failure
 *   ek-lv-src task TYPE --conn FILE --dst DIR --dest-id ID --instance NAME
 *       --info FILE [--params JSON] [--source-env JSON] [--resume] [--config FILE]
 *       [--kill-after-saves N | --cancel-after-saves N] [--report FILE]
 *
 * FILE (--info) keeps the instance's task info between tasks, as the
 * database would: {"task_info": {...}, "state": {...}}. Results are merged
 * into task_info; "state" is what the task saved last (written on every
 * save), and --resume hands it to the task as a retry would.
 * --kill-after-saves N: the process dies (SIGKILL) right after the Nth state
 * save, as a worker that is lost; --cancel-after-saves N cancels instead.
 * The report is {"status", "error", "events", "steps", "result"}. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "proto/tasks.h"
#include "worker/provider.h"
#include "worker/providers/libvirt/libvirt.h"

extern const ek_provider_t ek_provider_local;

/* ---- a task context that keeps everything in JSON ------------------------------------ */

struct ek_task_ctx {
    const ek_config_t *cfg;
    pthread_mutex_t lock;
    json_object *events, *steps, *state;
    const char *info_path;
    json_object *info;
    int saves, kill_after, cancel_after;
    volatile int cancelled;
    const char *prefix;
};

static bool write_json(const char *path, json_object *o)
{
    char *s = ek_json_dump(o, true);
    _cleanup_free_ char *tmp = ek_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = false;
    free(s);
    return ok && rename(tmp, path) == 0;
}

int ek_task_step(ek_task_ctx_t *c, uint64_t total, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    json_object *s = json_object_new_object();
    json_object_object_add(s, "message", json_object_new_string(msg));
    json_object_object_add(s, "total", json_object_new_int64((int64_t)total));
    json_object_object_add(s, "current", json_object_new_int64(0));
    json_object_array_add(c->steps, s);
    int idx = (int)json_object_array_length(c->steps) - 1;
    pthread_mutex_unlock(&c->lock);
    printf("[%s] step: %s\n", c->prefix, msg);
    fflush(stdout);
    free(msg);
    return idx;
}

void ek_task_step_update(ek_task_ctx_t *c, int step, uint64_t current)
{
    pthread_mutex_lock(&c->lock);
    json_object *s = json_object_array_get_idx(c->steps, (size_t)step);
    if (s)
        json_object_object_add(s, "current", json_object_new_int64((int64_t)current));
    pthread_mutex_unlock(&c->lock);
}

void ek_task_event(ek_task_ctx_t *c, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "level", json_object_new_string(level));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_array_add(c->events, e);
    printf("[%s] %s: %s\n", c->prefix, level, msg);
    fflush(stdout);
    pthread_mutex_unlock(&c->lock);
    free(msg);
}

void ek_task_save_state(ek_task_ctx_t *c, json_object *state)
{
    pthread_mutex_lock(&c->lock);
    json_object *copy = NULL;
    json_object_deep_copy(state, &copy, NULL);
    json_object_put(c->state);
    c->state = copy;
    c->saves++;
    /* the state is in the "database" before anything can happen to us */
    json_object_object_add(c->info, "state", json_object_get(copy));
    write_json(c->info_path, c->info);
    if (c->kill_after > 0 && c->saves >= c->kill_after) {
        printf("[%s] killed after state save %d\n", c->prefix, c->saves);
        fflush(stdout);
        raise(SIGKILL);
    }
    if (c->cancel_after > 0 && c->saves >= c->cancel_after)
        c->cancelled = 1;
    pthread_mutex_unlock(&c->lock);
}

bool ek_task_cancelled(const ek_task_ctx_t *c)
{
    return c->cancelled != 0;
}

const ek_config_t *ek_task_config(const ek_task_ctx_t *c)
{
    return c->cfg;
}

/* ---- the runner ------------------------------------------------------------------ */

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

static json_object *read_json(const char *path, bool must)
{
    char *s = read_file(path);
    if (!s) {
        if (must)
            fprintf(stderr, "cannot read %s\n", path);
        return must ? NULL : json_object_new_object();
    }
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(s, strlen(s), &o);
    free(s);
    if (err) {
        fprintf(stderr, "%s: %s\n", path, err->message);
        ek_err_free(err);
        return NULL;
    }
    return o;
}

static const struct {
    const char *type;
    ek_task_fn fn;
} source_tasks[] = {
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", ek_lv_task_validate_source_inputs},
    {"GET_INSTANCE_INFO", ek_lv_task_get_instance_info},
    {"SHUTDOWN_INSTANCE", ek_lv_task_shutdown_instance},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", ek_lv_task_deploy_source_resources},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", ek_lv_task_delete_source_resources},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", ek_lv_task_delete_source_disk_snapshots},
    {"REPLICATE_DISKS", ek_lv_task_replicate_disks},
    {"UPDATE_SOURCE_TRANSFER", ek_lv_task_update_source_transfer},
};

static ek_task_fn task_fn(const char *type)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(source_tasks); i++)
        if (strcmp(source_tasks[i].type, type) == 0)
            return source_tasks[i].fn;
    for (const ek_task_impl_t *t = ek_provider_local.tasks; t->task_type; t++)
        if (strcmp(t->task_type, type) == 0)
            return t->run;
    return NULL;
}

typedef struct opts {
    const char *conn, *args, *config, *dst, *dest_id, *instance, *info, *params, *report;
    const char *source_env;
    bool resume;
    int kill_after, cancel_after;
} opts_t;

static int run_endpoint(const char *query, const opts_t *o, ek_task_ctx_t *ctx, ek_endpoint_t *ep)
{
    static const struct {
        const char *q;
        ek_endpoint_fn fn;
    } fns[] = {{"validate_connection", ek_lv_validate_connection},
               {"instances", ek_lv_list_instances},
               {"instance", ek_lv_get_instance},
               {"networks", ek_lv_list_networks},
               {"storage", ek_lv_list_storage}};
    ek_endpoint_fn fn = NULL;
    for (size_t i = 0; i < EK_ARRAY_SIZE(fns); i++)
        if (strcmp(fns[i].q, query) == 0)
            fn = fns[i].fn;
    if (!fn) {
        fprintf(stderr, "unknown query %s\n", query);
        return 2;
    }
    json_object *args = o->args ? json_tokener_parse(o->args) : NULL, *out = NULL;
    ek_err_t *err = fn(ctx, ep, args, &out);
    json_object_put(args);
    if (err) {
        printf("ERROR: %s\n", err->message);
        ek_err_free(err);
        return 1;
    }
    char *s = ek_json_dump(out, true);
    printf("%s\n", s);
    free(s);
    json_object_put(out);
    return 0;
}

static int run_task(const char *type, const opts_t *o, ek_task_ctx_t *ctx, ek_endpoint_t *origin,
                    ek_endpoint_t *dest)
{
    ek_task_fn fn = task_fn(type);
    const ek_task_type_t *tt = ek_task_type_find(type);
    if (!fn || !tt || !o->info || !o->instance) {
        fprintf(stderr, "unknown task %s, or --info/--instance missing\n", type);
        return 2;
    }
    json_object *info = read_json(o->info, false), *ti, *state = NULL;
    if (!info)
        return 2;
    if (!json_object_object_get_ex(info, "task_info", &ti)) {
        ti = json_object_new_object();
        json_object_object_add(info, "task_info", ti);
    }
    if (o->resume)
        json_object_object_get_ex(info, "state", &state);
    ctx->info = info;
    ctx->info_path = o->info;
    json_object *params = o->params ? json_tokener_parse(o->params) : NULL;
    json_object *result = json_object_new_object();
    ek_task_input_t in = {
        .task_id = "task",
        .execution_id = "execution",
        .task_type = type,
        .instance = o->instance,
        .params = params,
        .task_info = ti,
        .state = state,
        .clone_disks = false,
        .skip_os_morphing = true,
        .origin = origin,
        .destination = dest,
    };
    printf("[%s] started%s\n", type, state ? " (resuming from the saved state)" : "");
    fflush(stdout);
    ek_err_t *err = fn(ctx, &in, result);
    if (!err && ek_task_cancelled(ctx))
        err = ek_err_new(EK_E_CANCELED, "cancelled");
    json_object *rep = json_object_new_object();
    json_object_object_add(rep, "status", json_object_new_string(err ? "ERROR" : "COMPLETED"));
    if (err) {
        printf("[%s] ERROR: %s\n", type, err->message);
        json_object_object_add(rep, "error", json_object_new_string(err->message));
    } else {
        json_object_object_foreach(result, key, val)
            json_object_object_add(ti, key, json_object_get(val));
        if (strcmp(type, "REPLICATE_DISKS") == 0)
            json_object_object_del(info, "state"); /* a completed task leaves none */
        printf("[%s] completed\n", type);
    }
    json_object_object_add(rep, "events", json_object_get(ctx->events));
    json_object_object_add(rep, "steps", json_object_get(ctx->steps));
    json_object_object_add(rep, "result", json_object_get(result));
    if (o->report)
        write_json(o->report, rep);
    write_json(o->info, info);
    json_object_put(rep);
    json_object_put(result);
    json_object_put(params);
    json_object_put(info);
    int rc = err ? 1 : 0;
    ek_err_free(err);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"conn", 1, NULL, 'c'},
        {"args", 1, NULL, 'a'},
        {"config", 1, NULL, 'C'},
        {"dst", 1, NULL, 'd'},
        {"dest-id", 1, NULL, 'D'},
        {"instance", 1, NULL, 'i'},
        {"info", 1, NULL, 'I'},
        {"params", 1, NULL, 'p'},
        {"source-env", 1, NULL, 'e'},
        {"report", 1, NULL, 'r'},
        {"resume", 0, NULL, 'R'},
        {"kill-after-saves", 1, NULL, 'k'},
        {"cancel-after-saves", 1, NULL, 'x'},
        {0, 0, 0, 0},
    };
    opts_t o = {0};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.conn = optarg;
            break;
        case 'a':
            o.args = optarg;
            break;
        case 'C':
            o.config = optarg;
            break;
        case 'd':
            o.dst = optarg;
            break;
        case 'D':
            o.dest_id = optarg;
            break;
        case 'i':
            o.instance = optarg;
            break;
        case 'I':
            o.info = optarg;
            break;
        case 'p':
            o.params = optarg;
            break;
        case 'e':
            o.source_env = optarg;
            break;
        case 'r':
            o.report = optarg;
            break;
        case 'R':
            o.resume = true;
            break;
        case 'k':
            o.kill_after = atoi(optarg);
            break;
        case 'x':
            o.cancel_after = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (argc - optind != 2 || !o.conn) {
        fprintf(stderr,
                "usage: ek-lv-src endpoint QUERY|task TYPE --conn FILE ... (see src_run.c)\n");
        return 2;
    }
    ek_log_init("ek-lv-src");
    ek_log_set_level(EK_LOG_WARNING);
    ek_config_t *cfg = ek_config_new();
    ek_err_t *err = o.config ? ek_config_load_file(cfg, o.config) : NULL;
    if (err) {
        fprintf(stderr, "%s\n", err->message);
        return 2;
    }
    json_object *conn = read_json(o.conn, true);
    if (!conn)
        return 2;
    ek_endpoint_t origin = {.id = "11111111-1111-1111-1111-111111111111",
                            .name = "lvsrc",
                            .type = "libvirt",
                            .connection_info = conn,
                            .environment = json_object_new_object()};
    if (o.source_env) { /* the transfer's source_environment */
        json_object_put(origin.environment);
        ek_err_t *perr = ek_json_parse(o.source_env, strlen(o.source_env), &origin.environment);
        if (perr) {
            fprintf(stderr, "--source-env: %s\n", perr->message);
            ek_err_free(perr);
            return 2;
        }
    }
    json_object *dci = json_object_new_object();
    json_object_object_add(dci, "path", json_object_new_string(o.dst ? o.dst : "/nonexistent"));
    ek_endpoint_t dest = {.id = o.dest_id ? o.dest_id : "2222aaaa-0000-0000-0000-000000000000",
                          .name = "replicas",
                          .type = "local",
                          .connection_info = dci,
                          .environment = json_object_new_object(),
                          .network_map = json_object_new_object(),
                          .storage_mappings = json_object_new_object()};
    ek_task_ctx_t ctx = {.cfg = cfg,
                         .events = json_object_new_array(),
                         .steps = json_object_new_array(),
                         .kill_after = o.kill_after,
                         .cancel_after = o.cancel_after,
                         .prefix = argv[optind + 1]};
    pthread_mutex_init(&ctx.lock, NULL);
    int rc =
        strcmp(argv[optind], "endpoint") == 0 ? run_endpoint(argv[optind + 1], &o, &ctx, &origin)
        : strcmp(argv[optind], "task") == 0   ? run_task(argv[optind + 1], &o, &ctx, &origin, &dest)
                                              : 2;
    json_object_put(ctx.events);
    json_object_put(ctx.steps);
    json_object_put(ctx.state);
    json_object_put(conn);
    json_object_put(dci);
    json_object_put(origin.environment);
    json_object_put(dest.environment);
    json_object_put(dest.network_map);
    json_object_put(dest.storage_mappings);
    pthread_mutex_destroy(&ctx.lock);
    ek_config_free(cfg);
    return rc;
}
