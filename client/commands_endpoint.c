/* commands_endpoint.c - `ekman endpoint ...`: endpoints (CRUD, validate) and
 * what a worker lists on them (instances, networks, storage). */
#include <stdlib.h>
#include <string.h>
#include "client/commands.h"
#include "client/http.h"
#include "client/session.h"
#include "common/base64.h"
#include "common/mem.h"
#include "common/uuid.h"

static const ek_cli_col_t endpoint_cols[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"TYPE", "type"},
    {"DESCRIPTION", "description"},
    {"CREATED", "created_at"},
    {NULL, NULL},
};

/* The id of the endpoint named or identified by arg. */
static int endpoint_id(ek_cli_t *cli, const char *arg, char *id)
{
    if (ek_uuid_is_valid(arg)) {
        snprintf(id, 64, "%s", arg);
        return ek_cli_auth(cli);
    }
    return ek_cli_resolve(cli, "endpoints", "endpoints", "endpoint", arg, id);
}

static int cmd_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    return ek_cli_list(cli, "endpoints", "endpoints", endpoint_cols);
}

static int cmd_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char id[64], path[128];
    int ret = endpoint_id(cli, a->pos[0], id);
    if (ret)
        return ret;
    snprintf(path, sizeof(path), "endpoints/%s", id);
    return ek_cli_show(cli, path, "endpoint", NULL);
}

/* The fields create and update share; *body receives {"endpoint": {...}}. */
static int endpoint_body(const ek_cli_args_t *a, json_object **body)
{
    json_object *e = json_object_new_object(), *info = NULL;
    const char *v;
    int ret = EK_CLI_OK;
    if ((v = ek_cli_opt(a, "name")))
        json_object_object_add(e, "name", json_object_new_string(v));
    if ((v = ek_cli_opt(a, "provider")))
        json_object_object_add(e, "type", json_object_new_string(v));
    if ((v = ek_cli_opt(a, "description")))
        json_object_object_add(e, "description", json_object_new_string(v));
    if ((v = ek_cli_opt(a, "connection-file")) &&
        !(ret = ek_cli_json_file("connection-file", v, &info)))
        json_object_object_add(e, "connection_info", info);
    const char *const *regions;
    int n = ek_cli_opt_all(a, "region", &regions);
    if (n || ek_cli_flag(a, "no-regions")) {
        json_object *r = json_object_new_array();
        for (int i = 0; i < n; i++)
            json_object_array_add(r, json_object_new_string(regions[i]));
        json_object_object_add(e, "mapped_regions", r);
    }
    *body = json_object_new_object();
    json_object_object_add(*body, "endpoint", e);
    if (ret) {
        json_object_put(*body);
        *body = NULL;
    }
    return ret;
}

static int cmd_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *body;
    int ret = endpoint_body(a, &body);
    return ret ? ret : ek_cli_send_show(cli, "POST", "endpoints", body, "endpoint", NULL);
}

static int cmd_update(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char id[64], path[128];
    json_object *body;
    int ret = endpoint_body(a, &body);
    if (ret)
        return ret;
    if (json_object_object_length(json_object_object_get(body, "endpoint")) == 0) {
        json_object_put(body);
        return ek_cli_fail(EK_CLI_USAGE, "endpoint update: nothing to change (give --name, "
                                         "--description, --connection-file or --region)");
    }
    if ((ret = endpoint_id(cli, a->pos[0], id))) {
        json_object_put(body);
        return ret;
    }
    snprintf(path, sizeof(path), "endpoints/%s", id);
    return ek_cli_send_show(cli, "PUT", path, body, "endpoint", NULL);
}

static int cmd_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char id[64], path[128];
    int ret = endpoint_id(cli, a->pos[0], id);
    if (ret)
        return ret;
    snprintf(path, sizeof(path), "endpoints/%s", id);
    return ek_cli_delete(cli, path, "endpoint", a->pos[0]);
}

static int cmd_validate(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char id[64], path[128];
    int ret = endpoint_id(cli, a->pos[0], id);
    if (ret)
        return ret;
    snprintf(path, sizeof(path), "endpoints/%s/actions", id);
    json_object *body = json_object_new_object(), *doc;
    json_object_object_add(body, "validate-connection", NULL);
    ret = ek_cli_call(cli, "POST", path, body, &doc);
    json_object_put(body);
    if (ret)
        return ret;
    json_object *v = json_object_object_get(doc, "validate-connection");
    bool valid = json_object_get_boolean(json_object_object_get(v, "valid"));
    const char *msg = json_object_get_string(json_object_object_get(v, "message"));
    if (cli->json)
        ek_cli_print_object(cli, doc, "validate-connection", NULL);
    else if (valid)
        printf("Endpoint %s: the connection is valid.\n", a->pos[0]);
    if (!valid)
        ek_cli_fail(EK_CLI_API, "endpoint %s: the connection is not valid: %s", a->pos[0],
                    msg && *msg ? msg : "no reason given");
    json_object_put(doc);
    return valid ? EK_CLI_OK : EK_CLI_API;
}

/* "?env=...&name=..." from the options of a listing. */
static char *query(const ek_cli_args_t *a)
{
    static const char *const keys[][2] = {
        {"env", "env"}, {"name", "name"}, {"limit", "limit"}, {"marker", "marker"}};
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (size_t i = 0; i < EK_ARRAY_SIZE(keys); i++) {
        const char *v = ek_cli_opt(a, keys[i][0]);
        if (!v)
            continue;
        char *e = ek_cli_escape(v);
        ek_strbuf_addf(&sb, "%c%s=%s", sb.len ? '&' : '?', keys[i][1], e);
        free(e);
    }
    return ek_strbuf_detach(&sb);
}

/* GET endpoints/{id}/WHAT[?query] and the answer under key. */
static int endpoint_get(ek_cli_t *cli, const ek_cli_args_t *a, const char *what, const char *key,
                        json_object **doc)
{
    char id[64];
    int ret = endpoint_id(cli, a->pos[0], id);
    if (ret)
        return ret;
    if (ek_cli_opt(a, "env")) {
        json_object *env;
        if ((ret = ek_cli_json_opt(a, "env", json_type_object, &env)))
            return ret;
        json_object_put(env);
    }
    char *q = query(a);
    char *path = ek_xasprintf("endpoints/%s/%s%s", id, what, q);
    ret = ek_cli_call(cli, "GET", path, NULL, doc);
    free(path);
    free(q);
    return ret;
}

static int cmd_instances(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {
        {"NAME", "name"},    {"ID", "id"},
        {"CPUS", "num_cpu"}, {"MEMORY_MB", "memory_mb"},
        {"OS", "os_type"},   {"FIRMWARE", "firmware"},
        {NULL, NULL},
    };
    json_object *doc;
    int ret = endpoint_get(cli, a, "instances", "instances", &doc);
    if (!ret)
        ek_cli_print_list(cli, doc, "instances", cols);
    json_object_put(doc);
    return ret;
}

/* base64url without padding: instance names may hold '/' */
static char *b64url(const char *s)
{
    char *b = ek_base64_encode(s, strlen(s));
    for (char *p = b; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    b[strcspn(b, "=")] = '\0';
    return b;
}

static int cmd_instance_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *name = b64url(a->pos[1]);
    char *what = ek_xasprintf("instances/%s", name);
    json_object *doc;
    int ret = endpoint_get(cli, a, what, "instance", &doc);
    free(what);
    free(name);
    if (!ret)
        ek_cli_print_object(cli, doc, "instance", NULL);
    json_object_put(doc);
    return ret;
}

static int cmd_networks(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {
        {"ID", "id"}, {"NAME", "name"}, {"TYPE", "type"}, {NULL, NULL}};
    json_object *doc;
    int ret = endpoint_get(cli, a, "networks", "networks", &doc);
    if (!ret)
        ek_cli_print_list(cli, doc, "networks", cols);
    json_object_put(doc);
    return ret;
}

static int cmd_storage(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {{"ID", "id"},
                                        {"NAME", "name"},
                                        {"FREE_BYTES", "free_bytes"},
                                        {"TOTAL_BYTES", "total_bytes"},
                                        {NULL, NULL}};
    json_object *doc;
    int ret = endpoint_get(cli, a, "storage", "storage", &doc);
    if (ret)
        return ret;
    json_object *st = json_object_object_get(doc, "storage");
    if (cli->json) {
        ek_cli_print_object(cli, doc, "storage", NULL);
    } else if (json_object_is_type(st, json_type_array)) {
        ek_cli_print_list(cli, doc, "storage", cols);
    } else {
        /* {"storage_backends": [...], "config_default": "..."} */
        ek_cli_print_list(cli, st, "storage_backends", cols);
        const char *def = json_object_get_string(json_object_object_get(st, "config_default"));
        if (def)
            printf("\nDefault: %s\n", def);
    }
    json_object_put(doc);
    return EK_CLI_OK;
}

#define ENV_OPT EK_OPT("env", "JSON", "provider-specific environment (JSON or @FILE)")

static const ek_cli_opt_t create_opts[] = {
    EK_OPT_REQ("name", "NAME", "the endpoint's name (unique in the project)"),
    EK_OPT_REQ("provider", "TYPE",
               "its provider (ekman provider list): local, libvirt, ovirt, ova"),
    EK_OPT_REQ("connection-file", "FILE",
               "JSON file of the connection info ('-': standard input); its schema: ekman "
               "provider schema TYPE connection"),
    EK_OPT("description", "TEXT", "a description"),
    EK_OPT_REP("region", "REGION_ID", "a region the endpoint is in"),
    EK_OPT_END,
};
static const ek_cli_opt_t update_opts[] = {
    EK_OPT("name", "NAME", "a new name"),
    EK_OPT("description", "TEXT", "a new description"),
    EK_OPT("connection-file", "FILE", "JSON file of the new connection info ('-': stdin)"),
    EK_OPT_REP("region", "REGION_ID", "the regions (replace the current ones)"),
    EK_OPT("no-regions", NULL, "remove the endpoint from all regions"),
    EK_OPT_END,
};
static const ek_cli_opt_t instances_opts[] = {
    EK_OPT("name", "PATTERN", "only instances whose name contains PATTERN"),
    EK_OPT("limit", "N", "at most N instances"),
    EK_OPT("marker", "NAME", "start after this instance"),
    ENV_OPT,
    EK_OPT_END,
};
static const ek_cli_opt_t env_opts[] = {ENV_OPT, EK_OPT_END};

const ek_cli_cmd_t ek_cli_cmds_endpoint[] = {
    {"endpoint create",
     "create an endpoint (a cloud or hypervisor to migrate from or to)",
     "The connection info (host, credentials) is read from a JSON file, never from the "
     "command line.\nExample:\n  ekman endpoint create --name src --provider local "
     "--connection-file src.json",
     {NULL, create_opts},
     cmd_create},
    {"endpoint list", "list the endpoints of the project", NULL, {NULL, NULL}, cmd_list},
    {"endpoint show",
     "show an endpoint (secrets in its connection info masked)",
     NULL,
     {"ENDPOINT", NULL},
     cmd_show},
    {"endpoint update",
     "change an endpoint's name, description, connection info or regions",
     NULL,
     {"ENDPOINT", update_opts},
     cmd_update},
    {"endpoint delete",
     "delete an endpoint no transfer uses",
     NULL,
     {"ENDPOINT", NULL},
     cmd_delete},
    {"endpoint validate",
     "check the endpoint's connection info on a worker (exit 1 if invalid)",
     NULL,
     {"ENDPOINT", NULL},
     cmd_validate},
    {"endpoint instance list",
     "list the instances (VMs) of an endpoint",
     NULL,
     {"ENDPOINT", instances_opts},
     cmd_instances},
    {"endpoint instance show",
     "show an instance of an endpoint: disks, NICs, firmware",
     NULL,
     {"ENDPOINT INSTANCE", env_opts},
     cmd_instance_show},
    {"endpoint network list",
     "list the networks of an endpoint",
     NULL,
     {"ENDPOINT", env_opts},
     cmd_networks},
    {"endpoint storage list",
     "list the storage backends of an endpoint",
     NULL,
     {"ENDPOINT", env_opts},
     cmd_storage},
    {NULL, NULL, NULL, {NULL, NULL}, NULL},
};
