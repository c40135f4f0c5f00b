/* commands_transfer.c - `ekman transfer ...`: transfers (what to replicate
 * where), their executions (with live progress) and their cron schedules. */
#include <stdlib.h>
#include <string.h>
#include "client/commands.h"
#include "client/progress.h"
#include "client/session.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/uuid.h"

static const ek_cli_col_t transfer_cols[] = {
    {"ID", "id"},
    {"INSTANCES", "instances"},
    {"SCENARIO", "scenario"},
    {"STATUS", "last_execution_status"},
    {"ORIGIN", "origin_endpoint_id"},
    {"DESTINATION", "destination_endpoint_id"},
    {"CREATED", "created_at"},
    {NULL, NULL},
};
static const ek_cli_col_t execution_cols[] = {
    {"ID", "id"},         {"NUMBER", "number"},      {"TYPE", "type"},
    {"STATUS", "status"}, {"CREATED", "created_at"}, {"UPDATED", "updated_at"},
    {NULL, NULL},
};

/* ---- building the transfer body ----------------------------------------------------- */

static void add_bool_pair(json_object *t, const ek_cli_args_t *a, const char *yes, const char *no,
                          const char *key)
{
    if (ek_cli_flag(a, yes))
        json_object_object_add(t, key, json_object_new_boolean(true));
    else if (ek_cli_flag(a, no))
        json_object_object_add(t, key, json_object_new_boolean(false));
}

/* --network-map SRC=DST (repeatable), or a JSON object / @FILE */
static int network_map(const ek_cli_args_t *a, json_object **out)
{
    const char *const *v;
    int n = ek_cli_opt_all(a, "network-map", &v);
    *out = NULL;
    if (n == 1 && (v[0][0] == '{' || v[0][0] == '@'))
        return ek_cli_json_opt(a, "network-map", json_type_object, out);
    return ek_cli_pairs_opt(a, "network-map", out);
}

static json_object *mapping_list(json_object *pairs, const char *src_key)
{
    json_object *list = json_object_new_array();
    json_object_object_foreach(pairs, k, v)
    {
        json_object *m = json_object_new_object();
        json_object_object_add(m, src_key, json_object_new_string(k));
        json_object_object_add(m, "destination", json_object_get(v));
        json_object_array_add(list, m);
    }
    return list;
}

static int storage_mappings(const ek_cli_args_t *a, json_object **out)
{
    json_object *backends = NULL, *disks = NULL;
    const char *def = ek_cli_opt(a, "default-storage-backend");
    int ret = ek_cli_pairs_opt(a, "storage-backend-mapping", &backends);
    if (!ret)
        ret = ek_cli_pairs_opt(a, "disk-storage-mapping", &disks);
    *out = NULL;
    if (!ret && (def || backends || disks)) {
        *out = json_object_new_object();
        if (def)
            json_object_object_add(*out, "default", json_object_new_string(def));
        if (backends)
            json_object_object_add(*out, "backend_mappings", mapping_list(backends, "source"));
        if (disks)
            json_object_object_add(*out, "disk_mappings", mapping_list(disks, "disk_id"));
    }
    json_object_put(backends);
    json_object_put(disks);
    return ret;
}

/* The options create and update share, added to t. */
static int transfer_fields(const ek_cli_args_t *a, json_object *t)
{
    static const char *const json_opts[][2] = {
        {"source-environment", "source_environment"},
        {"destination-environment", "destination_environment"},
        {"user-scripts", "user_scripts"},
    };
    json_object *v;
    int ret;
    for (size_t i = 0; i < EK_ARRAY_SIZE(json_opts); i++) {
        if ((ret = ek_cli_json_opt(a, json_opts[i][0], json_type_object, &v)))
            return ret;
        if (v)
            json_object_object_add(t, json_opts[i][1], v);
    }
    if ((ret = network_map(a, &v)))
        return ret;
    if (v)
        json_object_object_add(t, "network_map", v);
    if ((ret = storage_mappings(a, &v)))
        return ret;
    if (v)
        json_object_object_add(t, "storage_mappings", v);
    if (ek_cli_opt(a, "notes"))
        json_object_object_add(t, "notes", json_object_new_string(ek_cli_opt(a, "notes")));
    add_bool_pair(t, a, "clone-disks", "no-clone-disks", "clone_disks");
    add_bool_pair(t, a, "skip-os-morphing", "no-skip-os-morphing", "skip_os_morphing");
    return EK_CLI_OK;
}

static int endpoint_ref(ek_cli_t *cli, const char *arg, char *id)
{
    if (ek_uuid_is_valid(arg)) {
        snprintf(id, 64, "%s", arg);
        return EK_CLI_OK;
    }
    return ek_cli_resolve(cli, "endpoints", "endpoints", "endpoint", arg, id);
}

static int cmd_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *t = json_object_new_object(), *inst = json_object_new_array();
    json_object_object_add(t, "instances", inst);
    const char *const *names;
    int n = ek_cli_opt_all(a, "instance", &names);
    for (int i = 0; i < n; i++)
        json_object_array_add(inst, json_object_new_string(names[i]));
    if (ek_cli_opt(a, "scenario"))
        json_object_object_add(t, "scenario", json_object_new_string(ek_cli_opt(a, "scenario")));
    static const char *const pools[][2] = {
        {"origin-minion-pool", "origin_minion_pool_id"},
        {"destination-minion-pool", "destination_minion_pool_id"}};
    for (size_t i = 0; i < EK_ARRAY_SIZE(pools); i++)
        if (ek_cli_opt(a, pools[i][0]))
            json_object_object_add(t, pools[i][1],
                                   json_object_new_string(ek_cli_opt(a, pools[i][0])));
    char origin[64], dest[64];
    int ret = transfer_fields(a, t);
    if (!ret && !(ret = endpoint_ref(cli, ek_cli_opt(a, "origin-endpoint"), origin)) &&
        !(ret = endpoint_ref(cli, ek_cli_opt(a, "destination-endpoint"), dest))) {
        json_object_object_add(t, "origin_endpoint_id", json_object_new_string(origin));
        json_object_object_add(t, "destination_endpoint_id", json_object_new_string(dest));
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "transfer", t);
    if (ret) {
        json_object_put(body);
        return ret;
    }
    return ek_cli_send_show(cli, "POST", "transfers", body, "transfer", NULL);
}

static int cmd_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    return ek_cli_list(cli, "transfers", "transfers", transfer_cols);
}

/* A transfer: its fields, then its executions as a table. */
static void print_transfer(const ek_cli_t *cli, json_object *doc)
{
    json_object *t = json_object_object_get(doc, "transfer");
    if (cli->json) {
        ek_cli_print_object(cli, doc, "transfer", NULL);
        return;
    }
    json_object *execs = json_object_get(json_object_object_get(t, "executions"));
    json_object_object_del(t, "executions");
    ek_cli_print_object(cli, doc, "transfer", NULL);
    if (execs && json_object_array_length(execs)) {
        json_object *wrap = json_object_new_object();
        json_object_object_add(wrap, "executions", execs);
        printf("\nExecutions:\n");
        ek_cli_print_list(cli, wrap, "executions", execution_cols);
        json_object_put(wrap);
    } else {
        json_object_put(execs);
    }
}

static int cmd_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s%s", a->pos[0],
                              ek_cli_flag(a, "include-task-info") ? "?include_task_info=true" : "");
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (!ret)
        print_transfer(cli, doc);
    json_object_put(doc);
    return ret;
}

static int wait_execution(ek_cli_t *cli, const ek_cli_args_t *a, const char *transfer,
                          const char *exec_id)
{
    int timeout = ek_cli_timeout_opt(a);
    if (timeout < 0)
        return EK_CLI_USAGE;
    char *path = ek_xasprintf("transfers/%s/executions/%s", transfer, exec_id);
    char *title = ek_xasprintf("execution %s", exec_id);
    int ret = ek_cli_wait(cli, path, "execution", title, timeout);
    free(title);
    free(path);
    return ret;
}

static int cmd_update(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *t = json_object_new_object(), *doc;
    int ret = transfer_fields(a, t);
    if (!ret && json_object_object_length(t) == 0)
        ret = ek_cli_fail(EK_CLI_USAGE, "transfer update: nothing to change (see ekman transfer "
                                        "update --help)");
    json_object *body = json_object_new_object();
    json_object_object_add(body, "transfer", t);
    char *path = ek_xasprintf("transfers/%s", a->pos[0]);
    if (!ret)
        ret = ek_cli_call(cli, "PUT", path, body, &doc);
    json_object_put(body);
    free(path);
    if (ret)
        return ret;
    /* the answer is the execution that applies the update (as Coriolis's):
     * with tasks when the replicas are told, else recorded COMPLETED */
    json_object *e = json_object_object_get(doc, "execution");
    json_object *tasks = json_object_object_get(e, "tasks");
    const char *id = json_object_get_string(json_object_object_get(e, "id"));
    char *exec = id ? ek_xstrdup(id) : NULL;
    bool running =
        exec && json_object_is_type(tasks, json_type_array) && json_object_array_length(tasks) > 0;
    json_object_put(doc);
    path = ek_xasprintf("transfers/%s", a->pos[0]);
    ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (!ret)
        print_transfer(cli, doc);
    json_object_put(doc);
    if (!ret && running && !cli->json)
        printf("\nThe replicas are being updated by execution %s.\n", exec);
    if (!ret && running && ek_cli_flag(a, "wait"))
        ret = wait_execution(cli, a, a->pos[0], exec);
    free(exec);
    return ret;
}

static int cmd_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s", a->pos[0]);
    int ret = ek_cli_delete(cli, path, "transfer", a->pos[0]);
    free(path);
    return ret;
}

/* Prints a new execution (or waits for it with --wait). */
static int started(ek_cli_t *cli, const ek_cli_args_t *a, json_object *doc)
{
    json_object *e = json_object_object_get(doc, "execution");
    const char *id = json_object_get_string(json_object_object_get(e, "id"));
    if (!ek_cli_flag(a, "wait")) {
        static const char *const fields[] = {"id", "number", "type", "status", "created_at", NULL};
        ek_cli_print_object(cli, doc, "execution", cli->json ? NULL : fields);
        return EK_CLI_OK;
    }
    if (!cli->json)
        printf("Started execution %s of transfer %s.\n", id, a->pos[0]);
    return wait_execution(cli, a, a->pos[0], id);
}

static int cmd_execute(ek_cli_t *cli, const ek_cli_args_t *a)
{
    int timeout = ek_cli_timeout_opt(a);
    if (timeout < 0)
        return EK_CLI_USAGE;
    json_object *e = json_object_new_object(), *body = json_object_new_object(), *doc;
    json_object_object_add(e, "shutdown_instances",
                           json_object_new_boolean(ek_cli_flag(a, "shutdown-instances")));
    json_object_object_add(e, "auto_deploy",
                           json_object_new_boolean(ek_cli_flag(a, "auto-deploy")));
    json_object_object_add(body, "execution", e);
    char *path = ek_xasprintf("transfers/%s/executions", a->pos[0]);
    int ret = ek_cli_call(cli, "POST", path, body, &doc);
    free(path);
    json_object_put(body);
    if (!ret)
        ret = started(cli, a, doc);
    json_object_put(doc);
    return ret;
}

static int cmd_delete_disks(ek_cli_t *cli, const ek_cli_args_t *a)
{
    int timeout = ek_cli_timeout_opt(a);
    if (timeout < 0)
        return EK_CLI_USAGE;
    json_object *body = json_object_new_object(), *doc;
    json_object_object_add(body, "delete-disks", NULL);
    char *path = ek_xasprintf("transfers/%s/actions", a->pos[0]);
    int ret = ek_cli_call(cli, "POST", path, body, &doc);
    free(path);
    json_object_put(body);
    if (!ret)
        ret = started(cli, a, doc);
    json_object_put(doc);
    return ret;
}

/* ---- executions --------------------------------------------------------------------- */

static int cmd_exec_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s/executions", a->pos[0]);
    int ret = ek_cli_list(cli, path, "executions", execution_cols);
    free(path);
    return ret;
}

static int cmd_exec_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s/executions/%s", a->pos[0], a->pos[1]);
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (ret)
        return ret;
    if (cli->json) {
        ek_cli_print_object(cli, doc, "execution", NULL);
    } else {
        static const char *const fields[] = {"id",          "action_id",  "number",
                                             "type",        "status",     "shutdown_instances",
                                             "auto_deploy", "created_at", "updated_at",
                                             "finished_at", NULL};
        json_object *e = json_object_object_get(doc, "execution");
        ek_cli_print_object(cli, doc, "execution", fields);
        ek_strbuf_t sb = EK_STRBUF_INIT;
        ek_cli_progress_view(e, "\nProgress", &sb);
        ek_cli_progress_errors(e, &sb);
        fputs(sb.buf, stdout);
        ek_strbuf_release(&sb);
    }
    json_object_put(doc);
    return EK_CLI_OK;
}

static int cmd_exec_cancel(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *c = json_object_new_object(), *body = json_object_new_object(), *doc;
    json_object_object_add(c, "force", json_object_new_boolean(ek_cli_flag(a, "force")));
    json_object_object_add(body, "cancel", c);
    char *path = ek_xasprintf("transfers/%s/executions/%s/actions", a->pos[0], a->pos[1]);
    int ret = ek_cli_call(cli, "POST", path, body, &doc);
    free(path);
    json_object_put(body);
    json_object_put(doc);
    if (!ret && !cli->json)
        printf("Canceling execution %s%s.\n", a->pos[1],
               ek_cli_flag(a, "force") ? " (forced)" : "");
    return ret;
}

static int cmd_exec_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s/executions/%s", a->pos[0], a->pos[1]);
    int ret = ek_cli_delete(cli, path, "execution", a->pos[1]);
    free(path);
    return ret;
}

/* ---- schedules ---------------------------------------------------------------------- */

/* "MIN HOUR DOM MONTH DOW" into {"minute": ..., ...}. */
static int cron_json(const char *opt, const char *expr, json_object **out)
{
    static const char *const keys[] = {"minute", "hour", "dom", "month", "dow"};
    char *copy = ek_xstrdup(expr), *save = NULL;
    *out = json_object_new_object();
    size_t n = 0;
    for (char *f = strtok_r(copy, " \t", &save); f; f = strtok_r(NULL, " \t", &save), n++)
        if (n < 5)
            json_object_object_add(*out, keys[n], json_object_new_string(f));
    free(copy);
    if (n == 5)
        return EK_CLI_OK;
    json_object_put(*out);
    *out = NULL;
    return ek_cli_fail(EK_CLI_USAGE,
                       "%s must have 5 fields \"MINUTE HOUR DAY MONTH WEEKDAY\" "
                       "like cron (e.g. \"0 2 * * *\"), not '%s'",
                       opt, expr);
}

/* Adds "cron": "M H D M W" to a schedule for the tables. */
static void add_cron(json_object *s)
{
    json_object *c = json_object_object_get(s, "schedule");
    static const char *const keys[] = {"minute", "hour", "dom", "month", "dow"};
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (size_t i = 0; c && i < 5; i++) {
        json_object *v = json_object_object_get(c, keys[i]);
        ek_strbuf_addf(&sb, "%s%s", i ? " " : "", v ? json_object_get_string(v) : "*");
    }
    json_object_object_add(s, "cron", json_object_new_string(sb.buf));
    ek_strbuf_release(&sb);
}

static int schedule_body(const ek_cli_args_t *a, const char *expr, json_object **out)
{
    json_object *b = json_object_new_object(), *cron = NULL;
    int ret = expr ? cron_json(expr == a->pos[1] ? "SCHEDULE" : "--schedule", expr, &cron) : 0;
    if (cron)
        json_object_object_add(b, "schedule", cron);
    if (ek_cli_opt(a, "expires-at"))
        json_object_object_add(b, "expiration_date",
                               json_object_new_string(ek_cli_opt(a, "expires-at")));
    add_bool_pair(b, a, "enabled", "disabled", "enabled");
    add_bool_pair(b, a, "shutdown-instance", "no-shutdown-instance", "shutdown_instance");
    add_bool_pair(b, a, "auto-deploy", "no-auto-deploy", "auto_deploy");
    if (ret) {
        json_object_put(b);
        b = NULL;
    }
    *out = b;
    return ret;
}

static int schedule_send(ek_cli_t *cli, const char *method, const char *path, json_object *body)
{
    json_object *doc;
    int ret = ek_cli_call(cli, method, path, body, &doc);
    json_object_put(body);
    if (ret)
        return ret;
    add_cron(json_object_object_get(doc, "schedule"));
    ek_cli_print_object(cli, doc, "schedule", NULL);
    json_object_put(doc);
    return EK_CLI_OK;
}

static int cmd_sched_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *body;
    int ret = schedule_body(a, a->pos[1], &body);
    if (ret)
        return ret;
    char *path = ek_xasprintf("transfers/%s/schedules", a->pos[0]);
    ret = schedule_send(cli, "POST", path, body);
    free(path);
    return ret;
}

static int cmd_sched_update(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *body;
    int ret = schedule_body(a, ek_cli_opt(a, "schedule"), &body);
    if (ret)
        return ret;
    if (json_object_object_length(body) == 0) {
        json_object_put(body);
        return ek_cli_fail(EK_CLI_USAGE, "transfer schedule update: nothing to change (see "
                                         "--help)");
    }
    char *path = ek_xasprintf("transfers/%s/schedules/%s", a->pos[0], a->pos[1]);
    ret = schedule_send(cli, "PUT", path, body);
    free(path);
    return ret;
}

static int cmd_sched_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {
        {"ID", "id"},
        {"SCHEDULE", "cron"},
        {"ENABLED", "enabled"},
        {"EXPIRES", "expiration_date"},
        {"AUTO_DEPLOY", "auto_deploy"},
        {"LAST_FIRED", "last_fired_at"},
        {NULL, NULL},
    };
    char *path = ek_xasprintf("transfers/%s/schedules", a->pos[0]);
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (ret)
        return ret;
    json_object *list = json_object_object_get(doc, "schedules");
    for (size_t i = 0; !cli->json && list && i < json_object_array_length(list); i++)
        add_cron(json_object_array_get_idx(list, i));
    ek_cli_print_list(cli, doc, "schedules", cols);
    json_object_put(doc);
    return EK_CLI_OK;
}

static int cmd_sched_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s/schedules/%s", a->pos[0], a->pos[1]);
    int ret = schedule_send(cli, "GET", path, NULL);
    free(path);
    return ret;
}

static int cmd_sched_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("transfers/%s/schedules/%s", a->pos[0], a->pos[1]);
    int ret = ek_cli_delete(cli, path, "schedule", a->pos[1]);
    free(path);
    return ret;
}

/* ---- the tables --------------------------------------------------------------------- */

#define FIELD_OPTS                                                                                 \
    EK_OPT("source-environment", "JSON", "source options of the provider (JSON or @FILE)"),        \
        EK_OPT("destination-environment", "JSON",                                                  \
               "destination options of the provider (JSON or @FILE)"),                             \
        EK_OPT_REP("network-map", "SRC=DST", "map a source network (or one JSON object/@FILE)"),   \
        EK_OPT("default-storage-backend", "NAME", "where disks go unless mapped"),                 \
        EK_OPT_REP("storage-backend-mapping", "SRC=DST", "map a source storage backend"),          \
        EK_OPT_REP("disk-storage-mapping", "DISK=DST", "put one disk on a storage backend"),       \
        EK_OPT("user-scripts", "JSON", "scripts run in the guest (JSON or @FILE)"),                \
        EK_OPT("notes", "TEXT", "free text"),                                                      \
        EK_OPT("clone-disks", NULL, "deployments copy the replica disks (the default)"),           \
        EK_OPT("no-clone-disks", NULL, "deployments take the replica disks over"),                 \
        EK_OPT("skip-os-morphing", NULL, "do not adapt the guest OS to the destination"),          \
        EK_OPT("no-skip-os-morphing", NULL, "adapt the guest OS (the default)")

static const ek_cli_opt_t create_opts[] = {
    EK_OPT_REQ("origin-endpoint", "ENDPOINT", "the source endpoint (name or id)"),
    EK_OPT_REQ("destination-endpoint", "ENDPOINT", "the destination endpoint (name or id)"),
    {"instance", "NAME", "an instance to transfer", true, true},
    EK_OPT("scenario", "SCENARIO", "replica (the default) or live_migration"),
    EK_OPT("origin-minion-pool", "POOL_ID", "a minion pool on the source"),
    EK_OPT("destination-minion-pool", "POOL_ID", "a minion pool on the destination"),
    FIELD_OPTS,
    EK_OPT_END,
};
static const ek_cli_opt_t update_opts[] = {FIELD_OPTS, EK_CLI_WAIT_OPTS, EK_OPT_END};
static const ek_cli_opt_t show_opts[] = {
    EK_OPT("include-task-info", NULL, "add what the tasks left for later ones (redacted)"),
    EK_OPT_END,
};
static const ek_cli_opt_t execute_opts[] = {
    EK_OPT("shutdown-instances", NULL, "shut the source instances down first"),
    EK_OPT("auto-deploy", NULL, "deploy when the execution completes"),
    EK_CLI_WAIT_OPTS,
    EK_OPT_END,
};
static const ek_cli_opt_t wait_opts[] = {EK_CLI_WAIT_OPTS, EK_OPT_END};
static const ek_cli_opt_t cancel_opts[] = {
    EK_OPT("force", NULL, "kill the running tasks instead of asking them to stop"),
    EK_OPT_END,
};
#define SCHED_OPTS                                                                                 \
    EK_OPT("expires-at", "DATE", "stop firing after this date (2027-01-31T00:00)"),                \
        EK_OPT("shutdown-instance", NULL, "shut the instances down before each execution"),        \
        EK_OPT("auto-deploy", NULL, "deploy after each execution")
static const ek_cli_opt_t sched_create_opts[] = {
    EK_OPT("disabled", NULL, "create it disabled"),
    SCHED_OPTS,
    EK_OPT_END,
};
static const ek_cli_opt_t sched_update_opts[] = {
    EK_OPT("schedule", "\"M H D M W\"", "a new cron expression"),
    EK_OPT("enabled", NULL, "enable it"),
    EK_OPT("disabled", NULL, "disable it"),
    SCHED_OPTS,
    EK_OPT("no-shutdown-instance", NULL, "stop shutting the instances down"),
    EK_OPT("no-auto-deploy", NULL, "stop deploying after each execution"),
    EK_OPT_END,
};

const ek_cli_cmd_t ek_cli_cmds_transfer[] = {
    {"transfer create",
     "create a transfer: instances to replicate from one endpoint to another",
     "Example:\n  ekman transfer create --origin-endpoint src --destination-endpoint dst "
     "--instance web01 --network-map lan=br0",
     {NULL, create_opts},
     cmd_create},
    {"transfer list", "list the transfers", NULL, {NULL, NULL}, cmd_list},
    {"transfer show",
     "show a transfer and its executions",
     NULL,
     {"TRANSFER", show_opts},
     cmd_show},
    {"transfer update",
     "change a transfer's options (existing replicas are updated)",
     NULL,
     {"TRANSFER", update_opts},
     cmd_update},
    {"transfer delete",
     "delete a transfer (its replica disks stay: see delete-disks)",
     NULL,
     {"TRANSFER", NULL},
     cmd_delete},
    {"transfer execute",
     "replicate the instances' disks now (an incremental after the first)",
     "With --wait, one bar per disk shows percentage, rate and ETA, with the tasks and their "
     "states; on a terminal the view is redrawn in place, otherwise lines are appended.",
     {"TRANSFER", execute_opts},
     cmd_execute},
    {"transfer delete-disks",
     "delete the replica disks on the destination",
     NULL,
     {"TRANSFER", wait_opts},
     cmd_delete_disks},
    {"transfer execution list",
     "list the executions of a transfer",
     NULL,
     {"TRANSFER", NULL},
     cmd_exec_list},
    {"transfer execution show",
     "show an execution: tasks, progress and errors",
     NULL,
     {"TRANSFER EXECUTION", NULL},
     cmd_exec_show},
    {"transfer execution cancel",
     "cancel a running execution",
     NULL,
     {"TRANSFER EXECUTION", cancel_opts},
     cmd_exec_cancel},
    {"transfer execution delete",
     "delete a finished execution",
     NULL,
     {"TRANSFER EXECUTION", NULL},
     cmd_exec_delete},
    {"transfer schedule create",
     "execute a transfer on a cron schedule (UTC)",
     "SCHEDULE is \"MINUTE HOUR DAY MONTH WEEKDAY\" as in crontab(5), e.g. \"0 2 * * *\".",
     {"TRANSFER SCHEDULE", sched_create_opts},
     cmd_sched_create},
    {"transfer schedule list",
     "list the schedules of a transfer",
     NULL,
     {"TRANSFER", NULL},
     cmd_sched_list},
    {"transfer schedule show",
     "show a schedule",
     NULL,
     {"TRANSFER SCHEDULE_ID", NULL},
     cmd_sched_show},
    {"transfer schedule update",
     "change a schedule",
     NULL,
     {"TRANSFER SCHEDULE_ID", sched_update_opts},
     cmd_sched_update},
    {"transfer schedule delete",
     "delete a schedule",
     NULL,
     {"TRANSFER SCHEDULE_ID", NULL},
     cmd_sched_delete},
    {NULL, NULL, NULL, {NULL, NULL}, NULL},
};
