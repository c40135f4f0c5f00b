/* commands.c - helpers of the commands_*.c files and the base commands
 * (login, logout, status). */
#include "client/commands.h"

#include <stdlib.h>
#include <string.h>
#include "client/http.h"
#include "client/session.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"

void ek_cli_print_list(const ek_cli_t *cli, json_object *doc, const char *key,
                       const ek_cli_col_t *cols)
{
    json_object *list = json_object_object_get(doc, key);
    if (cli->json) {
        char *text = list ? ek_json_dump(list, true) : ek_xstrdup("[]");
        puts(text);
        free(text);
        return;
    }
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_render_list(list, cols, &sb);
    fputs(sb.buf, stdout);
    ek_strbuf_release(&sb);
}

void ek_cli_print_object(const ek_cli_t *cli, json_object *doc, const char *key,
                         const char *const *fields)
{
    json_object *obj = key ? json_object_object_get(doc, key) : doc;
    if (cli->json) {
        char *text = ek_json_dump(obj, true);
        puts(text);
        free(text);
        return;
    }
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_render_object(obj, fields, &sb);
    fputs(sb.buf, stdout);
    ek_strbuf_release(&sb);
}

int ek_cli_list(ek_cli_t *cli, const char *path, const char *key, const ek_cli_col_t *cols)
{
    json_object *doc;
    /* the API lists the newest first (as Coriolis); a table reads oldest first */
    char *sorted = ek_xasprintf("%s%ssort_dir=asc", path, strchr(path, '?') ? "&" : "?");
    int ret = ek_cli_call(cli, "GET", sorted, NULL, &doc);
    free(sorted);
    if (!ret)
        ek_cli_print_list(cli, doc, key, cols);
    json_object_put(doc);
    return ret;
}

int ek_cli_show(ek_cli_t *cli, const char *path, const char *key, const char *const *fields)
{
    return ek_cli_send_show(cli, "GET", path, NULL, key, fields);
}

int ek_cli_send_show(ek_cli_t *cli, const char *method, const char *path, json_object *body,
                     const char *key, const char *const *fields)
{
    json_object *doc;
    int ret = ek_cli_call(cli, method, path, body, &doc);
    json_object_put(body);
    if (!ret)
        ek_cli_print_object(cli, doc, key, fields);
    json_object_put(doc);
    return ret;
}

int ek_cli_delete(ek_cli_t *cli, const char *path, const char *what, const char *name)
{
    json_object *doc;
    int ret = ek_cli_call(cli, "DELETE", path, NULL, &doc);
    json_object_put(doc);
    if (ret)
        return ret;
    if (cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "deleted", json_object_new_string(name));
        puts(json_object_to_json_string(o));
        json_object_put(o);
    } else
        printf("Deleted %s %s.\n", what, name);
    return EK_CLI_OK;
}

static int parse_text(const char *opt, const char *origin, const char *text, json_object **out)
{
    ek_err_t *err = ek_json_parse(text, strlen(text), out);
    if (!err)
        return EK_CLI_OK;
    int ret =
        ek_cli_fail(EK_CLI_USAGE, "--%s: %s is not valid JSON: %s", opt, origin, err->message);
    ek_err_free(err);
    return ret;
}

static char *slurp(FILE *f)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    return ek_strbuf_detach(&sb);
}

static int read_json_path(const char *opt, const char *path, json_object **out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f)
        return ek_cli_fail(EK_CLI_USAGE, "--%s: cannot read %s: %m", opt, path);
    char *text = slurp(f);
    if (f != stdin)
        fclose(f);
    char *origin = ek_xasprintf("the file %s", path);
    int ret = parse_text(opt, origin, text, out);
    free(origin);
    ek_free_secret(text); /* connection files hold passwords */
    return ret;
}

static int want_type(const char *opt, json_object **out, json_type want)
{
    if (json_object_is_type(*out, want))
        return EK_CLI_OK;
    json_object_put(*out);
    *out = NULL;
    return ek_cli_fail(EK_CLI_USAGE, "--%s must be a JSON %s", opt,
                       want == json_type_object ? "object {...}" : "array [...]");
}

int ek_cli_json_file(const char *opt, const char *path, json_object **out)
{
    int ret = read_json_path(opt, path, out);
    return ret ? ret : want_type(opt, out, json_type_object);
}

int ek_cli_json_opt(const ek_cli_args_t *a, const char *opt, json_type want, json_object **out)
{
    *out = NULL;
    const char *v = ek_cli_opt(a, opt);
    if (!v)
        return EK_CLI_OK;
    int ret = v[0] == '@' ? read_json_path(opt, v + 1, out) : parse_text(opt, "the value", v, out);
    return ret ? ret : want_type(opt, out, want);
}

int ek_cli_pairs_opt(const ek_cli_args_t *a, const char *opt, json_object **out)
{
    const char *const *v;
    int n = ek_cli_opt_all(a, opt, &v);
    *out = NULL;
    if (!n)
        return EK_CLI_OK;
    *out = json_object_new_object();
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(v[i], '=');
        if (!eq || eq == v[i]) {
            json_object_put(*out);
            *out = NULL;
            return ek_cli_fail(EK_CLI_USAGE, "--%s must be KEY=VALUE, not '%s'", opt, v[i]);
        }
        char *k = ek_xstrndup(v[i], (size_t)(eq - v[i]));
        json_object_object_add(*out, k, json_object_new_string(eq + 1));
        free(k);
    }
    return EK_CLI_OK;
}

int ek_cli_resolve(ek_cli_t *cli, const char *collection, const char *key, const char *what,
                   const char *name_or_id, char *out)
{
    json_object *doc;
    int ret = ek_cli_call(cli, "GET", collection, NULL, &doc);
    if (ret)
        return ret;
    json_object *list = json_object_object_get(doc, key);
    int found = 0;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *x = json_object_array_get_idx(list, i);
        const char *id = json_object_get_string(json_object_object_get(x, "id"));
        const char *name = json_object_get_string(json_object_object_get(x, "name"));
        if (id && (!strcmp(id, name_or_id) || (name && !strcmp(name, name_or_id)))) {
            snprintf(out, 64, "%s", id);
            if (!strcmp(id, name_or_id)) {
                found = 1;
                break;
            }
            found++;
        }
    }
    json_object_put(doc);
    if (found == 1)
        return EK_CLI_OK;
    if (found > 1)
        return ek_cli_fail(EK_CLI_USAGE, "%d %ss are named '%s': give the id", found, what,
                           name_or_id);
    return ek_cli_fail(EK_CLI_API, "%s '%s' not found (ekman %s list shows them)", what, name_or_id,
                       what);
}

/* ---- base commands --------------------------------------------------------------- */

int ek_cli_cmd_login(ek_cli_t *cli, const ek_cli_args_t *a)
{
    int ret = ek_cli_login(cli);
    if (ret)
        return ret;
    if ((ret = ek_cli_auth(cli)))
        return ret;
    if (cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "url", json_object_new_string(cli->url));
        json_object_object_add(o, "username", json_object_new_string(cli->user_name));
        json_object_object_add(o, "project_id", json_object_new_string(cli->project_id));
        json_object_object_add(o, "project_name", json_object_new_string(cli->project_name));
        json_object_object_add(o, "is_admin", json_object_new_boolean(cli->is_admin));
        puts(json_object_to_json_string(o));
        json_object_put(o);
    } else
        printf("Logged in to %s as %s%s (project %s %s).\n", cli->url, cli->user_name,
               cli->is_admin ? ", an admin" : "", cli->project_name, cli->project_id);
    return EK_CLI_OK;
}

int ek_cli_cmd_logout(ek_cli_t *cli, const ek_cli_args_t *a)
{
    int ret = ek_cli_logout(cli);
    if (!ret && !cli->json)
        printf("Forgot the token of %s at %s.\n", cli->user_name, cli->url);
    return ret;
}

int ek_cli_cmd_status(ek_cli_t *cli, const ek_cli_args_t *a)
{
    ek_cli_resp_t r;
    int ret = ek_cli_http(cli, "GET", "/healthz", NULL, NULL, &r);
    if (ret)
        return ret;
    json_object *doc = NULL;
    ek_err_free(ek_json_parse(r.body, r.len, &doc));
    json_object *st = json_object_object_get(doc, "status");
    json_object *ver = json_object_object_get(doc, "version");
    if (r.status != 200 || !st)
        ret = ek_cli_fail(EK_CLI_API, "the API at %s answered HTTP %ld: %s", cli->url, r.status,
                          r.body);
    else if (cli->json)
        puts(json_object_to_json_string(doc));
    else
        printf("API %s: %s (version %s)\n", cli->url, json_object_get_string(st),
               ver ? json_object_get_string(ver) : "?");
    json_object_put(doc);
    ek_cli_resp_release(&r);
    return ret;
}
