/* session.c - token cache, login and API calls of `ekman` (see session.h). */
#include "client/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "client/http.h"
#include "client/progress.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/secret.h"
#include "common/strbuf.h"
#include "common/uuid.h"

/* ---- the cache directory and its files ------------------------------------------ */

static int mkdir_private(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

/* $XDG_CACHE_HOME/ekman or ~/.cache/ekman, created 0700; NULL on failure. */
static char *cache_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *base = xdg && *xdg     ? ek_xstrdup(xdg)
                 : home && *home ? ek_xasprintf("%s/.cache", home)
                                 : NULL;
    if (!base)
        return NULL;
    char *dir = ek_xasprintf("%s/ekman", base);
    bool ok = mkdir_private(base) == 0 && mkdir_private(dir) == 0 && chmod(dir, 0700) == 0;
    free(base);
    if (!ok) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* The cache file PREFIX-<hash of the url and user>.json. */
static char *cache_file(const char *prefix, const char *url, const char *user)
{
    char *dir = cache_dir();
    if (!dir)
        return NULL;
    char *key = ek_xasprintf("%s\n%s", url, user ? user : "");
    char digest[65];
    ek_token_digest(key, digest);
    free(key);
    digest[16] = '\0';
    char *path = ek_xasprintf("%s/%s-%s.json", dir, prefix, digest);
    free(dir);
    return path;
}

static char *read_text(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    return ek_strbuf_detach(&sb);
}

/* Writes a file only its owner can read, atomically (a temporary file renamed). */
static bool write_private(const char *path, const char *text)
{
    char *tmp = ek_xasprintf("%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    size_t len = strlen(text);
    ok = ok && fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    free(tmp);
    return ok;
}

static json_object *read_json(const char *path)
{
    char *text = read_text(path);
    json_object *doc = NULL;
    if (text) {
        ek_err_free(ek_json_parse(text, strlen(text), &doc));
        ek_free_secret(text);
    }
    return doc;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* ---- credentials --------------------------------------------------------------- */

/* The user: --username / EKMAN_USERNAME, else the last login on this URL. */
static int resolve_user(ek_cli_t *cli)
{
    if (cli->user_name)
        return EK_CLI_OK;
    if (cli->username && *cli->username) {
        cli->user_name = ek_xstrdup(cli->username);
        return EK_CLI_OK;
    }
    char *path = cache_file("current", cli->url, NULL);
    json_object *cur = read_json(path);
    free(path);
    const char *u = jstr(cur, "username");
    if (u)
        cli->user_name = ek_xstrdup(u);
    json_object_put(cur);
    if (!cli->user_name)
        return ek_cli_fail(EK_CLI_AUTH,
                           "no user name: give --username or set EKMAN_USERNAME (or run "
                           "`ekman login --username NAME` once for %s)",
                           cli->url);
    return EK_CLI_OK;
}

char *ek_cli_prompt_secret(const char *prompt)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return NULL;
    struct termios old, quiet;
    bool restore = tcgetattr(fileno(tty), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, tty);
    if (restore)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    if (n < 0) {
        free(line);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

/* ---- login and the token cache -------------------------------------------------- */

static void take_token(ek_cli_t *cli, json_object *cached)
{
    ek_free_secret(cli->token);
    cli->token = ek_xstrdup(jstr(cached, "token"));
    snprintf(cli->project_id, sizeof(cli->project_id), "%s",
             jstr(cached, "project_id") ? jstr(cached, "project_id") : "");
    snprintf(cli->project_name, sizeof(cli->project_name), "%s",
             jstr(cached, "project_name") ? jstr(cached, "project_name") : "");
    json_object *admin = NULL;
    cli->is_admin =
        json_object_object_get_ex(cached, "is_admin", &admin) && json_object_get_boolean(admin);
}

static void save_token(ek_cli_t *cli, json_object *tok)
{
    json_object *c = json_object_new_object(), *roles = NULL;
    bool admin = false;
    if (json_object_object_get_ex(tok, "roles", &roles) &&
        json_object_is_type(roles, json_type_array))
        for (size_t i = 0; i < json_object_array_length(roles); i++)
            admin = admin ||
                    !strcmp(json_object_get_string(json_object_array_get_idx(roles, i)), "admin");
    json_object_object_add(c, "url", json_object_new_string(cli->url));
    json_object_object_add(c, "username", json_object_new_string(cli->user_name));
    json_object_object_add(c, "token", json_object_new_string(jstr(tok, "id")));
    json_object_object_add(
        c, "expires_at",
        json_object_new_string(jstr(tok, "expires_at") ? jstr(tok, "expires_at") : ""));
    json_object *proj = json_object_object_get(tok, "project");
    json_object_object_add(c, "project_id", json_object_new_string(jstr(proj, "id")));
    json_object_object_add(c, "project_name",
                           json_object_new_string(jstr(proj, "name") ? jstr(proj, "name") : ""));
    json_object_object_add(c, "is_admin", json_object_new_boolean(admin));
    take_token(cli, c);
    char *path = cache_file("token", cli->url, cli->user_name);
    char *text = ek_json_dump(c, true);
    if (!path || !write_private(path, text))
        fprintf(stderr,
                "ekman: warning: could not cache the token in %s (set XDG_CACHE_HOME "
                "to a writable directory); logging in on every command\n",
                path ? path : "~/.cache/ekman");
    ek_free_secret(text);
    free(path);
    json_object_put(c);
    /* the user to use when none is named next time */
    json_object *cur = json_object_new_object();
    json_object_object_add(cur, "username", json_object_new_string(cli->user_name));
    path = cache_file("current", cli->url, NULL);
    if (path)
        write_private(path, json_object_to_json_string(cur));
    free(path);
    json_object_put(cur);
}

static int login_failed(ek_cli_t *cli, const ek_cli_resp_t *r)
{
    json_object *doc = NULL;
    ek_err_free(ek_json_parse(r->body, r->len, &doc));
    const char *msg = jstr(json_object_object_get(doc, "error"), "message");
    int ret;
    if (r->status == 401)
        ret = ek_cli_fail(EK_CLI_AUTH,
                          "wrong user name or password for user '%s' at %s (check --username/"
                          "EKMAN_USERNAME and --password/EKMAN_PASSWORD)",
                          cli->user_name, cli->url);
    else
        ret = ek_cli_fail(r->status >= 500 ? EK_CLI_API : EK_CLI_AUTH,
                          "login of user '%s' at %s failed: %s (HTTP %ld)", cli->user_name,
                          cli->url, msg ? msg : "unexpected answer", r->status);
    json_object_put(doc);
    return ret;
}

int ek_cli_login(ek_cli_t *cli)
{
    int ret = resolve_user(cli);
    if (ret)
        return ret;
    char *prompted = NULL;
    const char *password = cli->password;
    if (!password) {
        char *q = ek_xasprintf("Password for %s at %s: ", cli->user_name, cli->url);
        password = prompted = ek_cli_prompt_secret(q);
        free(q);
    }
    if (!password)
        return ek_cli_fail(EK_CLI_AUTH,
                           "no password for user '%s': set EKMAN_PASSWORD or give --password "
                           "(or run ekman on a terminal to be asked)",
                           cli->user_name);
    json_object *body = json_object_new_object(), *auth = json_object_new_object();
    json_object_object_add(auth, "username", json_object_new_string(cli->user_name));
    json_object_object_add(auth, "password", json_object_new_string(password));
    json_object_object_add(body, "auth", auth);
    char *text = ek_json_dump(body, false);
    json_object_put(body);
    ek_free_secret(prompted);
    ek_cli_resp_t r;
    ret = ek_cli_http(cli, "POST", "/v1/auth/tokens", NULL, text, &r);
    ek_free_secret(text);
    if (ret)
        return ret;
    json_object *doc = NULL;
    ek_err_free(ek_json_parse(r.body, r.len, &doc));
    json_object *tok = json_object_object_get(doc, "token");
    if (r.status != 201 || !jstr(tok, "id") || !jstr(json_object_object_get(tok, "project"), "id"))
        ret = login_failed(cli, &r);
    else
        save_token(cli, tok);
    json_object_put(doc);
    ek_cli_resp_release(&r);
    return ret;
}

/* The cached token, if it has not expired (a minute of margin). */
static bool load_cached(ek_cli_t *cli)
{
    char *path = cache_file("token", cli->url, cli->user_name);
    json_object *c = read_json(path);
    free(path);
    double expires = 0;
    bool ok =
        jstr(c, "token") && jstr(c, "project_id") &&
        (!jstr(c, "expires_at") || !*jstr(c, "expires_at") ||
         (ek_cli_parse_time(jstr(c, "expires_at"), &expires) && expires > (double)time(NULL) + 60));
    if (ok)
        take_token(cli, c);
    json_object_put(c);
    return ok;
}

/* --project: a project id or name; other projects than the token's are for admins. */
static int select_project(ek_cli_t *cli)
{
    const char *p = cli->project;
    if (!p || !*p || strcmp(p, cli->project_id) == 0 || strcmp(p, cli->project_name) == 0)
        return EK_CLI_OK;
    if (!cli->is_admin)
        return ek_cli_fail(EK_CLI_AUTH,
                           "user '%s' belongs to project '%s', not '%s': only an "
                           "admin may work in another project",
                           cli->user_name, cli->project_name, p);
    json_object *doc = NULL;
    const char *saved = cli->project;
    cli->project = NULL; /* no recursion through ek_cli_call */
    int ret = ek_cli_call(cli, "GET", "/v1/projects", NULL, &doc);
    cli->project = saved;
    if (ret)
        return ret;
    json_object *list = json_object_object_get(doc, "projects");
    bool found = false;
    for (size_t i = 0; list && i < json_object_array_length(list) && !found; i++) {
        json_object *x = json_object_array_get_idx(list, i);
        if ((jstr(x, "id") && !strcmp(jstr(x, "id"), p)) ||
            (jstr(x, "name") && !strcmp(jstr(x, "name"), p))) {
            snprintf(cli->project_id, sizeof(cli->project_id), "%s", jstr(x, "id"));
            found = true;
        }
    }
    json_object_put(doc);
    if (!found)
        return ek_cli_fail(EK_CLI_API, "project '%s' not found (ekman project list shows them)", p);
    return EK_CLI_OK;
}

int ek_cli_auth(ek_cli_t *cli)
{
    if (cli->token)
        return EK_CLI_OK;
    int ret = resolve_user(cli);
    if (ret)
        return ret;
    if (!load_cached(cli) && (ret = ek_cli_login(cli)))
        return ret;
    return select_project(cli);
}

int ek_cli_logout(ek_cli_t *cli)
{
    int ret = resolve_user(cli);
    if (ret)
        return ret;
    char *path = cache_file("token", cli->url, cli->user_name);
    if (path && unlink(path) != 0 && errno != ENOENT)
        ret = ek_cli_fail(EK_CLI_API, "could not remove %s: %s", path, strerror(errno));
    free(path);
    return ret;
}

/* ---- calls ------------------------------------------------------------------------ */

static int api_error(const ek_cli_resp_t *r)
{
    json_object *doc = NULL;
    ek_err_free(ek_json_parse(r->body, r->len, &doc));
    const char *msg = jstr(json_object_object_get(doc, "error"), "message");
    int code = r->status == 401 || r->status == 403 ? EK_CLI_AUTH : EK_CLI_API;
    int ret = ek_cli_fail(code, "%s (HTTP %ld)", msg ? msg : "the API sent an unexpected answer",
                          r->status);
    json_object_put(doc);
    return ret;
}

int ek_cli_call(ek_cli_t *cli, const char *method, const char *path, json_object *body,
                json_object **out)
{
    *out = NULL;
    int ret = ek_cli_auth(cli);
    if (ret)
        return ret;
    char *full =
        path[0] == '/' ? ek_xstrdup(path) : ek_xasprintf("/v1/%s/%s", cli->project_id, path);
    char *text = body ? ek_json_dump(body, false) : NULL;
    ek_cli_resp_t r;
    bool renewed = false;
    while (!(ret = ek_cli_http(cli, method, full, cli->token, text, &r)) && r.status == 401 &&
           !renewed) {
        /* the token expired or was revoked: log in again, once */
        ek_cli_resp_release(&r);
        renewed = true;
        if ((ret = ek_cli_login(cli)))
            break;
    }
    free(full);
    ek_free_secret(text);
    if (ret)
        return ret;
    if (r.status >= 400) {
        ret = api_error(&r);
    } else if (r.len) {
        ek_err_t *err = ek_json_parse(r.body, r.len, out);
        if (err) {
            ret = ek_cli_fail(EK_CLI_API, "the API at %s sent an invalid answer: %s", cli->url,
                              err->message);
            ek_err_free(err);
        }
    }
    ek_cli_resp_release(&r);
    return ret;
}

void ek_cli_session_free(ek_cli_t *cli)
{
    ek_free_secret(cli->token);
    free(cli->user_name);
    cli->token = NULL;
    cli->user_name = NULL;
    ek_cli_http_cleanup(cli);
}
