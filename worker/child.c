/* child.c - the task process: `ekman-worker --task-child` reads one job (a task
 * dispatch or an endpoint query, as JSON) on standard input, runs the provider
 * code, and writes what happens as JSON lines on standard output:
 *   {"kind":"progress","index":0,"current_step":5,"total_steps":100,"message":"..."}
 *   {"kind":"event","level":"INFO","message":"..."}
 *   {"kind":"state","state":{...}}
 *   {"kind":"result","result":{...}}      (the end: success)
 *   {"kind":"error","message":"...","canceled":false}   (the end: failure)
 * The worker forwards them to the conductor. Running it as its own exec'ed
 * process means a crash, a leak or a hang of provider code stays inside it. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/box.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "proto/tasks.h"
#include "worker/child.h"
#include "worker/keys.h"
#include "worker/provider.h"

#define MAX_STEPS 256

struct ek_task_ctx {
    int fd;
    const ek_config_t *cfg;
    int n_steps;
    uint64_t totals[MAX_STEPS];
    int percent[MAX_STEPS];
    char *messages[MAX_STEPS];
    const char *conductor_key; /* what results and saved state are sealed for (NULL: not sealed) */
};

static volatile sig_atomic_t cancelled;

static void on_cancel(int sig)
{
    (void)sig;
    cancelled = 1;
}

/* One JSON line on the output; the child is its only writer. */
static void emit(ek_task_ctx_t *ctx, json_object *msg)
{
    char *line = ek_xasprintf("%s\n", json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
    json_object_put(msg);
    size_t len = strlen(line);
    const char *p = line;
    while (len) {
        ssize_t n = write(ctx->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the worker is gone: nothing to report to */
        p += n;
        len -= (size_t)n;
    }
    free(line);
}

static json_object *msg(const char *kind)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "kind", json_object_new_string(kind));
    return m;
}

static void send_step(ek_task_ctx_t *ctx, int step, uint64_t current)
{
    json_object *m = msg("progress");
    json_object_object_add(m, "index", json_object_new_int(step));
    json_object_object_add(m, "current_step", json_object_new_int64((int64_t)current));
    json_object_object_add(m, "total_steps", json_object_new_int64((int64_t)ctx->totals[step]));
    json_object_object_add(m, "message", json_object_new_string(ctx->messages[step]));
    emit(ctx, m);
}

int ek_task_step(ek_task_ctx_t *ctx, uint64_t total, const char *fmt, ...)
{
    if (ctx->n_steps == MAX_STEPS)
        return MAX_STEPS - 1;
    int step = ctx->n_steps++;
    va_list ap;
    va_start(ap, fmt);
    ctx->messages[step] = ek_xvasprintf(fmt, ap);
    va_end(ap);
    ctx->totals[step] = total;
    ctx->percent[step] = 0;
    ek_info("%s", ctx->messages[step]);
    send_step(ctx, step, 0);
    return step;
}

void ek_task_step_update(ek_task_ctx_t *ctx, int step, uint64_t current)
{
    if (step < 0 || step >= ctx->n_steps)
        return;
    uint64_t total = ctx->totals[step] ? ctx->totals[step] : 1;
    int pct = (int)(current >= total ? 100 : current * 100 / total);
    if (pct <= ctx->percent[step])
        return;
    ctx->percent[step] = pct;
    send_step(ctx, step, current);
}

void ek_task_event(ek_task_ctx_t *ctx, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = ek_xvasprintf(fmt, ap);
    va_end(ap);
    json_object *m = msg("event");
    json_object_object_add(m, "level", json_object_new_string(level));
    json_object_object_add(m, "message", json_object_new_string(text));
    ek_logf(strcmp(level, "ERROR") == 0     ? EK_LOG_ERROR
            : strcmp(level, "WARNING") == 0 ? EK_LOG_WARNING
                                            : EK_LOG_INFO,
            "%s", text);
    free(text);
    emit(ctx, m);
}

void ek_task_save_state(ek_task_ctx_t *ctx, json_object *state)
{
    json_object *m = msg("state");
    json_object *copy = NULL;
    if (json_object_deep_copy(state, &copy, NULL) != 0)
        copy = NULL;
    /* secrets in it (a worker VM's key...) go back sealed for the conductors */
    ek_err_t *err = copy && ctx->conductor_key
                        ? ek_box_json_seal(copy, ctx->conductor_key, EK_BOX_TASK_INFO_AAD)
                        : NULL;
    if (err) {
        ek_log_err(err, "task state not saved: cannot seal its secrets");
        ek_err_free(err);
        json_object_put(copy);
        json_object_put(m);
        return;
    }
    json_object_object_add(m, "state", copy ? copy : json_object_get(state));
    emit(ctx, m);
}

bool ek_task_cancelled(const ek_task_ctx_t *ctx)
{
    (void)ctx;
    return cancelled != 0;
}

const ek_config_t *ek_task_config(const ek_task_ctx_t *ctx)
{
    return ctx->cfg;
}

/* ---- reading the job ----------------------------------------------------------------- */

/* Opens {"id","name","type",...} into an endpoint; its connection info comes
 * from boxed ({"id", "connection_info_box"}: sealed for this worker's key,
 * with the endpoint id as associated data). */
static ek_err_t *open_endpoint(const ek_box_ring_t *ring, json_object *src, json_object *boxed,
                               ek_endpoint_t *ep)
{
    const char *sealed, *boxed_id = NULL;
    ek_err_t *err;
    memset(ep, 0, sizeof(*ep));
    if ((err = ek_json_req_string(src, "endpoint", "id", &ep->id)) ||
        (err = ek_json_req_string(src, "endpoint", "type", &ep->type)) ||
        (err = ek_json_opt_string(src, "endpoint", "name", ep->id, &ep->name)))
        return err;
    if (!boxed || !json_object_object_get_ex(boxed, "connection_info_box", NULL))
        return ek_err_new(EK_E_AUTH,
                          "endpoint '%s': the conductor sent no connection info sealed for this "
                          "worker (only a worker that claimed the task, or registered with a key, "
                          "gets it); for an endpoint query: no worker with the provider had "
                          "registered when it was sent (a worker registers with its first "
                          "heartbeat, once the scheduler runs): try again in a few seconds",
                          ep->name);
    if ((err = ek_json_opt_string(boxed, "endpoint", "id", ep->id, &boxed_id)) ||
        (err = ek_json_req_string(boxed, "endpoint", "connection_info_box", &sealed)))
        return err;
    if (strcmp(boxed_id, ep->id) != 0)
        return ek_err_new(EK_E_PROTOCOL,
                          "endpoint '%s': the sealed connection info is another "
                          "endpoint's",
                          ep->name);
    char *plain = NULL;
    if ((err = ek_box_open(ring, ep->id, sealed, &plain)))
        return ek_err_prefix(err, "endpoint '%s': connection info", ep->name);
    err = ek_json_parse(plain, strlen(plain), &ep->connection_info);
    ek_free_secret(plain);
    if (err)
        return err;
    json_object *v;
    ep->environment = json_object_object_get_ex(src, "environment", &v) && v
                          ? json_object_get(v)
                          : json_object_new_object();
    ep->network_map = json_object_object_get_ex(src, "network_map", &v) && v
                          ? json_object_get(v)
                          : json_object_new_object();
    ep->storage_mappings = json_object_object_get_ex(src, "storage_mappings", &v) && v
                               ? json_object_get(v)
                               : json_object_new_object();
    return NULL;
}

static void close_endpoint(ek_endpoint_t *ep)
{
    json_object_put(ep->connection_info);
    json_object_put(ep->environment);
    json_object_put(ep->network_map);
    json_object_put(ep->storage_mappings);
}

static ek_err_t *read_all(int fd, ek_strbuf_t *sb)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ek_err_errno(errno, "reading the job");
        if (n == 0)
            return NULL;
        ek_strbuf_add(sb, buf, (size_t)n);
    }
}

/* Which provider runs a task: the source's, the destination's, or for the
 * two-sided ones the one that does the work (replication reads the source,
 * OS morphing works on the destination). */
static const ek_endpoint_t *runner_endpoint(const char *type, const ek_endpoint_t *origin,
                                            const ek_endpoint_t *dest)
{
    const ek_task_type_t *t = ek_task_type_find(type);
    if (!t)
        return NULL;
    if (t->platform == EK_TASK_SOURCE)
        return origin;
    if (t->platform == EK_TASK_DESTINATION)
        return dest;
    return strcmp(type, "REPLICATE_DISKS") == 0 ? origin : dest;
}

static ek_err_t *run_task(ek_task_ctx_t *ctx, const ek_box_ring_t *ring, json_object *job,
                          json_object *result)
{
    ek_task_input_t in = {0};
    json_object *origin_j, *dest_j, *v;
    ek_endpoint_t origin, dest;
    ek_err_t *err;
    if ((err = ek_json_req_string(job, "task", "task_id", &in.task_id)) ||
        (err = ek_json_req_string(job, "task", "execution_id", &in.execution_id)) ||
        (err = ek_json_req_string(job, "task", "task_type", &in.task_type)) ||
        (err = ek_json_req_string(job, "task", "instance", &in.instance)) ||
        (err = ek_json_req_object(job, "task", "origin", &origin_j)) ||
        (err = ek_json_req_object(job, "task", "destination", &dest_j)) ||
        (err = ek_json_opt_bool(job, "task", "clone_disks", true, &in.clone_disks)) ||
        (err = ek_json_opt_bool(job, "task", "skip_os_morphing", false, &in.skip_os_morphing)))
        return err;
    /* the grant of the claim brought the secrets, sealed for this worker */
    json_object *secrets = json_object_object_get_ex(job, "secrets", &v) ? v : NULL;
    if (!secrets) {
        const char *why = json_object_get_string(json_object_object_get(job, "secrets_error"));
        return ek_err_new(EK_E_AUTH, "the conductor granted the task without its secrets%s%s",
                          why ? ": " : " (is the conductor as new as this worker?)",
                          why ? why : "");
    }
    in.params = json_object_object_get_ex(job, "params", &v) ? v : NULL;
    /* task info and saved state as the grant brought them (sealed for this
     * worker, with the task id as associated data), opened */
    in.task_info = json_object_object_get_ex(secrets, "task_info", &v) ? v : NULL;
    in.state = json_object_object_get_ex(secrets, "state", &v) && v ? v : NULL;
    if (in.task_info && (err = ek_box_json_open(in.task_info, ring, in.task_id)))
        return ek_err_prefix(err, "task info");
    if (in.state && (err = ek_box_json_open(in.state, ring, in.task_id)))
        return ek_err_prefix(err, "saved task state");
    in.user_scripts = json_object_object_get_ex(job, "user_scripts", &v) ? v : NULL;
    ek_log_context_set("task_id", in.task_id);
    ek_log_context_set("task_type", in.task_type);
    if ((err = open_endpoint(ring, origin_j, json_object_object_get(secrets, "origin"), &origin)))
        return err;
    if ((err =
             open_endpoint(ring, dest_j, json_object_object_get(secrets, "destination"), &dest))) {
        close_endpoint(&origin);
        return err;
    }
    in.origin = &origin;
    in.destination = &dest;
    const ek_endpoint_t *ep = runner_endpoint(in.task_type, &origin, &dest);
    const ek_provider_t *p = ep ? ek_provider_get(ep->type) : NULL;
    ek_task_fn fn = p ? ek_provider_task(p, in.task_type) : NULL;
    if (!ep)
        err = ek_err_new(EK_E_INVALID, "unknown task type %s", in.task_type);
    else if (!p)
        err = ek_err_new(EK_E_UNAVAILABLE, "this worker has no '%s' provider", ep->type);
    else if (!fn)
        err = ek_err_new(EK_E_INVALID, "provider '%s' cannot run %s", p->name, in.task_type);
    else
        err = fn(ctx, &in, result);
    if (err && err->code != EK_E_CANCELED && !ek_task_cancelled(ctx) &&
        strcmp(in.task_type, "REPLICATE_DISKS") == 0) {
        /* the destination may know why its side failed */
        const ek_provider_t *dp = dest.type ? ek_provider_get(dest.type) : NULL;
        if (dp && dp->diagnose_copy_error)
            err = dp->diagnose_copy_error(ctx, &in, err);
    }
    if (!err && ek_task_cancelled(ctx))
        err = ek_err_new(EK_E_CANCELED, "cancelled");
    close_endpoint(&origin);
    close_endpoint(&dest);
    return err;
}

static ek_err_t *run_query(ek_task_ctx_t *ctx, const ek_box_ring_t *ring, json_object *job,
                           json_object *result)
{
    json_object *ep_j, *args = NULL;
    const char *query;
    ek_endpoint_t ep;
    ek_err_t *err;
    if ((err = ek_json_req_object(job, "query", "endpoint", &ep_j)) ||
        (err = ek_json_req_string(job, "query", "query", &query)) ||
        (err = ek_json_opt_object(job, "query", "args", &args)) ||
        (err = open_endpoint(ring, ep_j, ep_j, &ep)))
        return err;
    const ek_provider_t *p = ek_provider_get(ep.type);
    ek_endpoint_fn fn = NULL;
    if (p) {
        fn = !strcmp(query, "validate_connection")   ? p->validate_connection
             : !strcmp(query, "instances")           ? p->list_instances
             : !strcmp(query, "instance")            ? p->get_instance
             : !strcmp(query, "networks")            ? p->list_networks
             : !strcmp(query, "storage")             ? p->list_storage
             : !strcmp(query, "source_options")      ? p->source_options
             : !strcmp(query, "destination_options") ? p->destination_options
                                                     : NULL;
    }
    json_object *out = NULL;
    if (!p)
        err = ek_err_new(EK_E_UNAVAILABLE, "this worker has no '%s' provider", ep.type);
    else if (!fn)
        err = ek_err_new(EK_E_INVALID, "provider '%s' does not answer '%s'", p->name, query);
    else
        err = fn(ctx, &ep, args, &out);
    if (!err)
        json_object_object_add(result, "answer", out ? out : json_object_new_object());
    close_endpoint(&ep);
    return err;
}

int ek_worker_child_main(const ek_config_t *cfg)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_cancel;
    sigaction(SIGINT, &sa, NULL);
    signal(SIGTERM, SIG_IGN); /* the worker decides when a task dies, not a stray TERM */
    signal(SIGPIPE, SIG_IGN);

    ek_task_ctx_t ctx = {.fd = STDOUT_FILENO, .cfg = cfg};
    ek_strbuf_t input = EK_STRBUF_INIT;
    json_object *job = NULL, *result = json_object_new_object();
    ek_box_ring_t *ring = NULL;
    const char *kind = NULL;
    ek_err_t *err = read_all(STDIN_FILENO, &input);
    if (!err)
        err = ek_json_parse(input.buf, input.len, &job);
    if (!err)
        err = ek_json_req_string(job, "job", "kind", &kind);
    if (!err) {
        /* this worker's own key: the conductor sealed the job's secrets for it */
        _cleanup_free_ char *kf = ek_worker_key_path(cfg);
        err = ek_box_ring_load(kf, false, &ring);
        if (err)
            err = ek_err_prefix(err, "this worker's key ([worker] key_file)");
    }
    if (!err)
        ctx.conductor_key =
            json_object_get_string(json_object_object_get(job, "conductor_box_key"));
    if (!err)
        err = strcmp(kind, "task") == 0 ? run_task(&ctx, ring, job, result)
                                        : run_query(&ctx, ring, job, result);
    /* secrets in the result (task info: worker VM keys...) go back sealed for
     * the conductors, never in clear over the bus or into the database */
    if (!err && ctx.conductor_key && strcmp(kind, "task") == 0)
        err = ek_box_json_seal(result, ctx.conductor_key, EK_BOX_TASK_INFO_AAD);
    ek_box_ring_free(ring);
    int code = 0;
    if (err) {
        json_object *m = msg("error");
        json_object_object_add(m, "message", json_object_new_string(err->message));
        json_object_object_add(m, "canceled", json_object_new_boolean(err->code == EK_E_CANCELED));
        emit(&ctx, m);
        ek_log_err(err, "task failed");
        ek_err_free(err);
        code = 1;
    } else {
        json_object *m = msg("result");
        json_object_object_add(m, "result", json_object_get(result));
        emit(&ctx, m);
    }
    json_object_put(result);
    json_object_put(job);
    ek_strbuf_release(&input);
    for (int i = 0; i < ctx.n_steps; i++)
        free(ctx.messages[i]);
    return code;
}
