/* commands_deployment.c - `ekman deployment ...`: deployments (instances
 * created on the destination from a transfer's replica disks). */
#include <stdlib.h>
#include <string.h>
#include "client/commands.h"
#include "client/progress.h"
#include "client/session.h"
#include "common/mem.h"

static const char *const deployment_fields[] = {
    "id",
    "transfer_id",
    "status",
    "last_execution_status",
    "execution_id",
    "instances",
    "origin_endpoint_id",
    "destination_endpoint_id",
    "clone_disks",
    "skip_os_morphing",
    "created_at",
    "updated_at",
    NULL,
};

/* A deployment: its fields, then its tasks and progress. */
static void print_deployment(const ek_cli_t *cli, json_object *doc)
{
    if (cli->json) {
        ek_cli_print_object(cli, doc, "deployment", NULL);
        return;
    }
    json_object *d = json_object_object_get(doc, "deployment");
    ek_cli_print_object(cli, doc, "deployment", deployment_fields);
    if (json_object_object_get(d, "tasks")) {
        ek_strbuf_t sb = EK_STRBUF_INIT;
        ek_cli_progress_view(d, "\nProgress", &sb);
        ek_cli_progress_errors(d, &sb);
        fputs(sb.buf, stdout);
        ek_strbuf_release(&sb);
    }
}

static int cmd_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    int timeout = ek_cli_timeout_opt(a);
    if (timeout < 0)
        return EK_CLI_USAGE;
    json_object *d = json_object_new_object(), *scripts = NULL, *doc;
    json_object_object_add(d, "transfer_id", json_object_new_string(a->pos[0]));
    json_object_object_add(d, "clone_disks",
                           json_object_new_boolean(!ek_cli_flag(a, "no-clone-disks")));
    json_object_object_add(d, "force", json_object_new_boolean(ek_cli_flag(a, "force")));
    if (ek_cli_flag(a, "skip-os-morphing"))
        json_object_object_add(d, "skip_os_morphing", json_object_new_boolean(true));
    int ret = ek_cli_json_opt(a, "user-scripts", json_type_object, &scripts);
    if (scripts)
        json_object_object_add(d, "user_scripts", scripts);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "deployment", d);
    if (!ret)
        ret = ek_cli_call(cli, "POST", "deployments", body, &doc);
    json_object_put(body);
    if (ret)
        return ret;
    const char *id = json_object_get_string(
        json_object_object_get(json_object_object_get(doc, "deployment"), "id"));
    char *path = ek_xasprintf("deployments/%s", id ? id : "?");
    char *title = ek_xasprintf("deployment %s", id ? id : "?");
    if (!ek_cli_flag(a, "wait")) {
        print_deployment(cli, doc);
    } else {
        if (!cli->json)
            printf("Started %s of transfer %s.\n", title, a->pos[0]);
        ret = ek_cli_wait(cli, path, "deployment", title, timeout);
    }
    free(title);
    free(path);
    json_object_put(doc);
    return ret;
}

static int cmd_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {
        {"ID", "id"},
        {"TRANSFER", "transfer_id"},
        {"INSTANCES", "instances"},
        {"STATUS", "last_execution_status"},
        {"CREATED", "created_at"},
        {NULL, NULL},
    };
    return ek_cli_list(cli, "deployments", "deployments", cols);
}

static int cmd_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("deployments/%s", a->pos[0]);
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (!ret)
        print_deployment(cli, doc);
    json_object_put(doc);
    return ret;
}

static int cmd_cancel(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *c = json_object_new_object(), *body = json_object_new_object(), *doc;
    json_object_object_add(c, "force", json_object_new_boolean(ek_cli_flag(a, "force")));
    json_object_object_add(body, "cancel", c);
    char *path = ek_xasprintf("deployments/%s/actions", a->pos[0]);
    int ret = ek_cli_call(cli, "POST", path, body, &doc);
    free(path);
    json_object_put(body);
    json_object_put(doc);
    if (!ret && !cli->json)
        printf("Canceling deployment %s%s.\n", a->pos[0],
               ek_cli_flag(a, "force") ? " (forced)" : "");
    return ret;
}

static int cmd_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *path = ek_xasprintf("deployments/%s", a->pos[0]);
    int ret = ek_cli_delete(cli, path, "deployment", a->pos[0]);
    free(path);
    return ret;
}

static const ek_cli_opt_t create_opts[] = {
    EK_OPT("no-clone-disks", NULL, "take the replica disks over instead of copying them"),
    EK_OPT("force", NULL, "deploy even if the last execution did not complete"),
    EK_OPT("skip-os-morphing", NULL, "do not adapt the guest OS to the destination"),
    EK_OPT("user-scripts", "JSON", "scripts run in the guest (JSON or @FILE)"),
    EK_CLI_WAIT_OPTS,
    EK_OPT_END,
};
static const ek_cli_opt_t cancel_opts[] = {
    EK_OPT("force", NULL, "kill the running tasks instead of asking them to stop"),
    EK_OPT_END,
};

const ek_cli_cmd_t ek_cli_cmds_deployment[] = {
    {"deployment create",
     "deploy a transfer's instances on the destination",
     "With --wait, one bar per disk shows percentage, rate and ETA, with the tasks and their "
     "states; exit 5 when the deployment fails.",
     {"TRANSFER", create_opts},
     cmd_create},
    {"deployment list", "list the deployments", NULL, {NULL, NULL}, cmd_list},
    {"deployment show",
     "show a deployment, its tasks and progress",
     NULL,
     {"DEPLOYMENT", NULL},
     cmd_show},
    {"deployment cancel",
     "cancel a running deployment",
     NULL,
     {"DEPLOYMENT", cancel_opts},
     cmd_cancel},
    {"deployment delete",
     "delete a finished deployment (the deployed instances stay)",
     NULL,
     {"DEPLOYMENT", NULL},
     cmd_delete},
    {NULL, NULL, NULL, {NULL, NULL}, NULL},
};
