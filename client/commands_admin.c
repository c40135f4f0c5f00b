/* commands_admin.c - `ekman provider ...` (what providers the conductor
 * knows and their JSON schemas) and the administration of users and
 * projects (admins only). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "client/commands.h"
#include "client/session.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/uuid.h"

/* ---- providers ----------------------------------------------------------------------- */

static bool has_type(json_object *types, int bit)
{
    for (size_t i = 0; types && i < json_object_array_length(types); i++)
        if (json_object_get_int(json_object_array_get_idx(types, i)) == bit)
            return true;
    return false;
}

static int cmd_provider_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {{"NAME", "name"},
                                        {"SOURCE", "source"},
                                        {"DESTINATION", "destination"},
                                        {"DESCRIPTION", "description"},
                                        {NULL, NULL}};
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", "providers", NULL, &doc);
    if (ret)
        return ret;
    if (cli->json) {
        ek_cli_print_object(cli, doc, "providers", NULL);
    } else {
        /* {name: {types, description}} as rows */
        json_object *list = json_object_new_array(), *wrap = json_object_new_object();
        json_object_object_foreach(json_object_object_get(doc, "providers"), name, p)
        {
            json_object *row = json_object_new_object();
            json_object *types = json_object_object_get(p, "types");
            json_object_object_add(row, "name", json_object_new_string(name));
            json_object_object_add(row, "source",
                                   json_object_new_string(has_type(types, 8) ? "yes" : "no"));
            json_object_object_add(row, "destination",
                                   json_object_new_string(has_type(types, 4) ? "yes" : "no"));
            json_object_object_add(row, "description",
                                   json_object_get(json_object_object_get(p, "description")));
            json_object_object_add(row, "types", json_object_get(types));
            json_object_array_add(list, row);
        }
        json_object_object_add(wrap, "providers", list);
        ek_cli_print_list(cli, wrap, "providers", cols);
        json_object_put(wrap);
    }
    json_object_put(doc);
    return EK_CLI_OK;
}

static int cmd_provider_schema(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const char *const kinds[][2] = {
        {"connection", "16"}, {"source", "8"}, {"destination", "4"}};
    const char *kind = a->npos > 1 ? a->pos[1] : "connection", *type = NULL;
    for (size_t i = 0; i < EK_ARRAY_SIZE(kinds) && !type; i++)
        if (!strcmp(kind, kinds[i][0]) || !strcmp(kind, kinds[i][1]))
            type = kinds[i][1];
    if (!type)
        return ek_cli_fail(EK_CLI_USAGE,
                           "provider schema: KIND must be connection, source or "
                           "destination, not '%s'",
                           kind);
    char *path = ek_xasprintf("providers/%s/schemas/%s", a->pos[0], type);
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", path, NULL, &doc);
    free(path);
    if (ret)
        return ret;
    /* a schema is JSON whatever the format; the one value of "schemas",
     * whatever its key ("connection_info_schema", ... as Coriolis names
     * them; "schema" before) */
    json_object *schemas = json_object_object_get(doc, "schemas"), *schema = NULL;
    if (json_object_is_type(schemas, json_type_object)) {
        json_object_object_foreach(schemas, key, val)
        {
            (void)key;
            if (!schema)
                schema = val;
        }
    }
    char *text = ek_json_dump(schema, true);
    puts(text);
    free(text);
    json_object_put(doc);
    return EK_CLI_OK;
}

/* ---- users and projects ------------------------------------------------------------------ */

static const ek_cli_col_t user_cols[] = {
    {"ID", "id"},           {"NAME", "name"},
    {"ROLE", "role"},       {"PROJECT", "project_name"},
    {"ENABLED", "enabled"}, {"CREATED", "created_at"},
    {NULL, NULL},
};

static int cmd_user_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    return ek_cli_list(cli, "/v1/users", "users", user_cols);
}

/* The user of /v1/users named or identified by arg, as {"user": {...}}. */
static int find_user(ek_cli_t *cli, const char *arg, json_object **out)
{
    json_object *doc;
    *out = NULL;
    int ret = ek_cli_call(cli, "GET", "/v1/users", NULL, &doc);
    if (ret)
        return ret;
    json_object *list = json_object_object_get(doc, "users");
    for (size_t i = 0; list && i < json_object_array_length(list) && !*out; i++) {
        json_object *u = json_object_array_get_idx(list, i);
        const char *id = json_object_get_string(json_object_object_get(u, "id"));
        const char *name = json_object_get_string(json_object_object_get(u, "name"));
        if ((id && !strcmp(id, arg)) || (name && !strcmp(name, arg))) {
            *out = json_object_new_object();
            json_object_object_add(*out, "user", json_object_get(u));
        }
    }
    json_object_put(doc);
    return *out ? EK_CLI_OK
                : ek_cli_fail(EK_CLI_API, "user '%s' not found (ekman user list shows them)", arg);
}

static int cmd_user_show(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *doc;
    int ret = find_user(cli, a->pos[0], &doc);
    if (!ret)
        ek_cli_print_object(cli, doc, "user", NULL);
    json_object_put(doc);
    return ret;
}

/* The new password: --password-file (first line; '-': stdin), else asked
 * twice on the terminal. */
static int new_password(const ek_cli_args_t *a, const char *cmd, char **out)
{
    const char *file = ek_cli_opt(a, "password-file");
    *out = NULL;
    if (!file && !isatty(STDIN_FILENO))
        return ek_cli_fail(EK_CLI_USAGE,
                           "%s: give the new password with --password-file FILE "
                           "('-': standard input)",
                           cmd);
    FILE *f = !file ? NULL : strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (file && !f)
        return ek_cli_fail(EK_CLI_USAGE, "--password-file: cannot read %s: %m", file);
    size_t cap = 0;
    if (f) {
        ssize_t n = getline(out, &cap, f);
        if (f != stdin)
            fclose(f);
        if (n <= 0) {
            ek_free_secret(*out);
            *out = NULL;
            return ek_cli_fail(EK_CLI_USAGE, "--password-file: %s is empty", file);
        }
        (*out)[strcspn(*out, "\r\n")] = '\0';
        return EK_CLI_OK;
    }
    char *first = ek_cli_prompt_secret("New password: ");
    char *again = first ? ek_cli_prompt_secret("Again: ") : NULL;
    bool same = again && strcmp(first, again) == 0;
    ek_free_secret(again);
    if (!same) {
        ek_free_secret(first);
        return ek_cli_fail(EK_CLI_USAGE, "the two passwords differ (or no terminal to ask on)");
    }
    *out = first;
    return EK_CLI_OK;
}

static int cmd_user_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    char *password;
    int ret = new_password(a, "user create", &password);
    if (ret)
        return ret;
    json_object *u = json_object_new_object(), *body = json_object_new_object();
    json_object_object_add(u, "name", json_object_new_string(a->pos[0]));
    json_object_object_add(u, "password", json_object_new_string(password));
    json_object_object_add(u, "project", json_object_new_string(ek_cli_opt(a, "project")));
    json_object_object_add(
        u, "role",
        json_object_new_string(ek_cli_opt(a, "role") ? ek_cli_opt(a, "role") : "member"));
    json_object_object_add(body, "user", u);
    ek_free_secret(password);
    return ek_cli_send_show(cli, "POST", "/v1/users", body, "user", NULL);
}

static int cmd_user_update(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *u = json_object_new_object(), *body = json_object_new_object(), *doc = NULL;
    json_object_object_add(body, "user", u);
    char *password = NULL;
    int ret = EK_CLI_OK;
    if (ek_cli_opt(a, "password-file") || ek_cli_flag(a, "ask-password"))
        ret = new_password(a, "user update", &password);
    if (password)
        json_object_object_add(u, "password", json_object_new_string(password));
    ek_free_secret(password);
    if (ek_cli_opt(a, "role"))
        json_object_object_add(u, "role", json_object_new_string(ek_cli_opt(a, "role")));
    if (ek_cli_flag(a, "enable") || ek_cli_flag(a, "disable"))
        json_object_object_add(u, "enabled", json_object_new_boolean(ek_cli_flag(a, "enable")));
    if (!ret && json_object_object_length(u) == 0)
        ret = ek_cli_fail(EK_CLI_USAGE, "user update: nothing to change (give --password-file, "
                                        "--role, --enable or --disable)");
    if (!ret)
        ret = find_user(cli, a->pos[0], &doc);
    if (ret) {
        json_object_put(body);
        json_object_put(doc);
        return ret;
    }
    char *path = ek_xasprintf("/v1/users/%s", json_object_get_string(json_object_object_get(
                                                  json_object_object_get(doc, "user"), "id")));
    json_object_put(doc);
    ret = ek_cli_send_show(cli, "PUT", path, body, "user", NULL);
    free(path);
    return ret;
}

static int cmd_user_delete(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *doc;
    int ret = find_user(cli, a->pos[0], &doc);
    if (ret)
        return ret;
    char *path = ek_xasprintf("/v1/users/%s", json_object_get_string(json_object_object_get(
                                                  json_object_object_get(doc, "user"), "id")));
    json_object_put(doc);
    ret = ek_cli_delete(cli, path, "user", a->pos[0]);
    free(path);
    return ret;
}

static int cmd_project_list(ek_cli_t *cli, const ek_cli_args_t *a)
{
    static const ek_cli_col_t cols[] = {
        {"ID", "id"}, {"NAME", "name"}, {"CREATED", "created_at"}, {NULL, NULL}};
    return ek_cli_list(cli, "/v1/projects", "projects", cols);
}

static int cmd_project_create(ek_cli_t *cli, const ek_cli_args_t *a)
{
    json_object *p = json_object_new_object(), *body = json_object_new_object();
    json_object_object_add(p, "name", json_object_new_string(a->pos[0]));
    json_object_object_add(body, "project", p);
    return ek_cli_send_show(cli, "POST", "/v1/projects", body, "project", NULL);
}

static const ek_cli_opt_t user_update_opts[] = {
    EK_OPT("password-file", "FILE", "a new password, first line of FILE ('-': standard input)"),
    EK_OPT("ask-password", NULL, "ask for a new password on the terminal"),
    EK_OPT("role", "ROLE", "member or admin"),
    EK_OPT("enable", NULL, "enable the account"),
    EK_OPT("disable", NULL, "disable the account (its tokens stop working)"),
    EK_OPT_END,
};
static const ek_cli_opt_t user_create_opts[] = {
    EK_OPT_REQ("project", "PROJECT", "the user's project (name or id; created when missing)"),
    EK_OPT("role", "ROLE", "member (the default) or admin"),
    EK_OPT("password-file", "FILE",
           "the password, first line of FILE ('-': standard input); "
           "asked on the terminal otherwise"),
    EK_OPT_END,
};

const ek_cli_cmd_t ek_cli_cmds_admin[] = {
    {"provider list",
     "list the providers the conductor knows",
     NULL,
     {NULL, NULL},
     cmd_provider_list},
    {"provider schema",
     "print a provider's JSON schema: KIND is connection (default), "
     "source or destination",
     NULL,
     {"PROVIDER [KIND]", NULL},
     cmd_provider_schema},
    {"user list", "list the users (admin)", NULL, {NULL, NULL}, cmd_user_list},
    {"user show", "show a user (admin)", NULL, {"USER", NULL}, cmd_user_show},
    {"user create", "create a user (admin)", NULL, {"NAME", user_create_opts}, cmd_user_create},
    {"user update",
     "reset a user's password, change the role, enable or disable (admin)",
     NULL,
     {"USER", user_update_opts},
     cmd_user_update},
    {"user delete", "delete a user (admin)", NULL, {"USER", NULL}, cmd_user_delete},
    {"project list", "list the projects (admin)", NULL, {NULL, NULL}, cmd_project_list},
    {"project create", "create a project (admin)", NULL, {"NAME", NULL}, cmd_project_create},
    {NULL, NULL, NULL, {NULL, NULL}, NULL},
};
