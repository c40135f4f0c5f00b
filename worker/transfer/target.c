/* target.c - target_resources_connection_info -> a way to open connections
 * to the ekman-writer it names (see target.h). Key material arrives as
 * text in the task info; OpenSSL and libssh2 want files, so it is written
 * into a private directory: the TLS files are removed as soon as the context
 * holds them, the SSH key and known_hosts when the target is freed (the
 * engine may reconnect). */
#include "worker/transfer/target.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/base64.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "worker/transfer/imageio.h"
#include "worker/transfer/pki.h"
#include "worker/transfer/tls.h"

#define WHAT "target_resources_connection_info"

struct ek_writer_target {
    char *kind;
    char *dir; /* private temporary directory, or NULL */
    char *describe;
    char *host, *port, *user, *command, *server_name, *key_file, *known_hosts;
    SSL_CTX *ctx;
    ek_https_target_t https;
    ek_ssh_target_t ssh;
    ek_exec_target_t exec;
    ek_imageio_target_t imageio;
    char *exec_argv[7]; /* writer --stdio --log-level warning --allow-path DIR NULL */
};

void ek_writer_target_free(ek_writer_target_t *t)
{
    if (!t)
        return;
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    if (t->dir)
        ek_rmtree(t->dir);
    free(t->dir);
    free(t->kind);
    free(t->describe);
    free(t->host);
    free(t->port);
    free(t->user);
    free(t->command);
    free(t->server_name);
    free(t->key_file);
    free(t->known_hosts);
    free(t->exec_argv[0]);
    free(t->exec_argv[5]);
    ek_imageio_target_clear(&t->imageio);
    free(t);
}

/* host and port (a number or a numeric string) of the document. */
static ek_err_t *host_port(json_object *info, int def_port, ek_writer_target_t *t)
{
    const char *host;
    json_object *v;
    ek_err_t *err = ek_json_req_string(info, WHAT, "host", &host);
    if (err)
        return err;
    int64_t port = def_port;
    if (json_object_object_get_ex(info, "port", &v)) {
        char *end = NULL;
        const char *s = json_object_get_string(v);
        port = json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
                                                     : strtoll(s ? s : "", &end, 10);
        if (port < 1 || port > 65535 || (end && *end))
            return ek_err_new(EK_E_INVALID, "%s.port: %s is not a TCP port", WHAT, s ? s : "null");
    }
    t->host = ek_xstrdup(host);
    t->port = ek_xasprintf("%lld", (long long)port);
    return NULL;
}

static ek_err_t *write_secret(ek_writer_target_t *t, const char *name, const void *data, size_t len,
                              char **path)
{
    *path = ek_xasprintf("%s/%s", t->dir, name);
    return ek_file_write(*path, data, len, 0600);
}

static ek_err_t *open_https(json_object *info, ek_writer_target_t *t)
{
    const char *ca, *cert, *key, *sname;
    ek_err_t *err;
    if ((err = host_port(info, 5566, t)) || (err = ek_json_req_string(info, WHAT, "ca_pem", &ca)) ||
        (err = ek_json_req_string(info, WHAT, "cert_pem", &cert)) ||
        (err = ek_json_req_string(info, WHAT, "key_pem", &key)) ||
        (err = ek_json_opt_string(info, WHAT, "server_name", EK_PKI_SERVER_NAME, &sname)))
        return err;
    _cleanup_free_ char *ca_f = NULL, *cert_f = NULL, *key_f = NULL;
    if (!(err = write_secret(t, "ca.pem", ca, strlen(ca), &ca_f)) &&
        !(err = write_secret(t, "client.pem", cert, strlen(cert), &cert_f)) &&
        !(err = write_secret(t, "client.key", key, strlen(key), &key_f)))
        err = ek_tls_client_ctx_new(cert_f, key_f, ca_f, &t->ctx);
    /* the context holds them now */
    ek_rmtree(t->dir);
    free(t->dir);
    t->dir = NULL;
    if (err)
        return ek_err_prefix(err, "%s: the writer's TLS material", WHAT);
    t->server_name = ek_xstrdup(sname);
    t->https = (ek_https_target_t){t->host, t->port, t->ctx, t->server_name, 0};
    t->describe = ek_xasprintf("https://%s:%s", t->host, t->port);
    return NULL;
}

static ek_err_t *open_ssh(json_object *info, ek_writer_target_t *t)
{
    const char *user, *key_b64, *kh, *command;
    ek_err_t *err;
    if ((err = host_port(info, 22, t)) ||
        (err = ek_json_opt_string(info, WHAT, "username", "root", &user)) ||
        (err = ek_json_req_string(info, WHAT, "private_key", &key_b64)) ||
        (err = ek_json_req_string(info, WHAT, "known_hosts", &kh)) ||
        (err = ek_json_opt_string(info, WHAT, "command", "ekman-writer --stdio --allow-path /dev",
                                  &command)))
        return err;
    unsigned char *key = NULL;
    size_t key_len = 0;
    if ((err = ek_base64_decode(key_b64, &key, &key_len)))
        return ek_err_prefix(err, "%s.private_key is not base64", WHAT);
    err = write_secret(t, "id", key, key_len, &t->key_file);
    explicit_bzero(key, key_len);
    free(key);
    if (err || (err = write_secret(t, "known_hosts", kh, strlen(kh), &t->known_hosts)))
        return err;
    t->user = ek_xstrdup(user);
    t->command = ek_xstrdup(command);
    t->ssh =
        (ek_ssh_target_t){t->host, t->port, t->user, t->key_file, t->known_hosts, t->command, 0};
    t->describe = ek_xasprintf("ssh://%s@%s:%s", t->user, t->host, t->port);
    return NULL;
}

/* The ekman-writer this worker runs for an "exec" target: $EKMAN_WRITER (the
 * worker's own environment), else the one next to the running binary, else
 * the first on $PATH. Never a name that came in a message. */
ek_err_t *ek_writer_binary(char **out)
{
    const char *env = getenv("EKMAN_WRITER");
    if (env && *env) {
        if (env[0] != '/' || access(env, X_OK) != 0)
            return ek_err_new(EK_E_INVALID,
                              "EKMAN_WRITER \"%s\" is not an absolute path to a program this "
                              "worker can run",
                              env);
        *out = ek_xstrdup(env);
        return NULL;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *path = ek_xasprintf("%s/ekman-writer", dirname(self));
        if (access(path, X_OK) == 0) {
            *out = path;
            return NULL;
        }
        free(path);
    }
    const char *p = getenv("PATH");
    _cleanup_free_ char *copy = ek_xstrdup(p && *p ? p : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (d[0] != '/')
            continue; /* a relative PATH entry depends on the working directory */
        char *path = ek_xasprintf("%s/ekman-writer", d);
        if (access(path, X_OK) == 0) {
            *out = path;
            return NULL;
        }
        free(path);
    }
    return ek_err_new(EK_E_NOTFOUND, "no ekman-writer next to this worker, nor on PATH (set "
                                     "EKMAN_WRITER to its absolute path)");
}

/* allow_path: the one directory the local writer may write in. An absolute,
 * normalised path without control characters: it becomes one argv element,
 * never shell text, but a "../" would widen what the writer may touch. */
static ek_err_t *check_allow_path(const char *path)
{
    size_t len = strlen(path);
    if (path[0] != '/' || len > 4000)
        return ek_err_new(EK_E_INVALID, "%s.allow_path must be an absolute path", WHAT);
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return ek_err_new(EK_E_INVALID, "%s.allow_path contains a control character", WHAT);
    for (const char *c = path; *c;) {
        while (*c == '/')
            c++;
        const char *end = strchrnul(c, '/');
        size_t n = (size_t)(end - c);
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return ek_err_new(EK_E_INVALID, "%s.allow_path \"%s\" has a '.' or '..' component",
                              WHAT, path);
        c = end;
    }
    return NULL;
}

/* {"kind": "exec", "allow_path": DIR}: the worker runs its own ekman-writer
 * with fixed arguments. A "command" in the document is refused: a message
 * never chooses what a worker runs. */
static ek_err_t *open_exec(json_object *info, ek_writer_target_t *t)
{
    const char *dir;
    if (json_object_object_get_ex(info, "command", NULL))
        return ek_err_new(EK_E_INVALID,
                          "%s.command is not accepted for kind exec: the worker runs its own "
                          "ekman-writer (give allow_path instead)",
                          WHAT);
    ek_err_t *err = ek_json_req_string(info, WHAT, "allow_path", &dir);
    if (!err)
        err = check_allow_path(dir);
    char *writer = NULL;
    if (!err)
        err = ek_writer_binary(&writer);
    if (err)
        return err;
    t->exec_argv[0] = writer;
    t->exec_argv[1] = "--stdio";
    t->exec_argv[2] = "--log-level";
    t->exec_argv[3] = "warning";
    t->exec_argv[4] = "--allow-path";
    t->exec_argv[5] = ek_xstrdup(dir);
    t->exec_argv[6] = NULL;
    t->exec.argv = t->exec_argv;
    t->describe = ek_xasprintf("the local ekman-writer %s", writer);
    return NULL;
}

static ek_err_t *open_imageio(json_object *info, ek_writer_target_t *t)
{
    ek_err_t *err = ek_imageio_target_parse(info, WHAT, &t->imageio);
    if (err)
        return err;
    /* the ticket URLs are credentials: the description names no host path */
    t->describe =
        ek_xasprintf("imageio (%zu image transfer%s)", t->imageio.n, t->imageio.n == 1 ? "" : "s");
    return NULL;
}

ek_err_t *ek_writer_target_open(json_object *info, const char *tmp_dir, ek_writer_target_t **out)
{
    const char *kind;
    int64_t timeout_ms;
    ek_err_t *err;
    if (!info || !json_object_is_type(info, json_type_object))
        return ek_err_new(EK_E_INVALID, "%s is not an object", WHAT);
    if ((err = ek_json_opt_string(info, WHAT, "kind", "", &kind)) ||
        (err = ek_json_opt_int(info, WHAT, "timeout_ms", 30000, &timeout_ms)))
        return err;
    if (!*kind)
        return ek_err_new(EK_E_CONFLICT,
                          "%s names no writer (DEPLOY_TRANSFER_TARGET_RESOURCES must run first)",
                          WHAT);
    ek_writer_target_t *t = ek_xcalloc(1, sizeof(*t));
    t->kind = ek_xstrdup(kind);
    if (strcmp(kind, "https") == 0 || strcmp(kind, "ssh") == 0)
        err = ek_private_dir(tmp_dir, "ekman-target", &t->dir);
    if (!err) {
        if (strcmp(kind, "https") == 0)
            err = open_https(info, t);
        else if (strcmp(kind, "ssh") == 0)
            err = open_ssh(info, t);
        else if (strcmp(kind, "exec") == 0)
            err = open_exec(info, t);
        else if (strcmp(kind, "imageio") == 0)
            err = open_imageio(info, t);
        else
            err = ek_err_new(EK_E_INVALID, "%s.kind: '%s' is not https, ssh, exec or imageio", WHAT,
                             kind);
    }
    if (err) {
        ek_writer_target_free(t);
        return err;
    }
    t->https.timeout_ms = (int)timeout_ms;
    t->ssh.timeout_ms = (int)timeout_ms;
    *out = t;
    return NULL;
}

ek_connect_fn ek_writer_target_connect_fn(const ek_writer_target_t *t)
{
    if (strcmp(t->kind, "imageio") == 0)
        return ek_imageio_connect;
    if (strcmp(t->kind, "https") == 0)
        return ek_https_connect;
    if (strcmp(t->kind, "ssh") == 0)
        return ek_ssh_connect;
    return ek_exec_connect;
}

void *ek_writer_target_connect_arg(ek_writer_target_t *t)
{
    if (strcmp(t->kind, "imageio") == 0)
        return &t->imageio;
    if (strcmp(t->kind, "https") == 0)
        return &t->https;
    if (strcmp(t->kind, "ssh") == 0)
        return &t->ssh;
    return &t->exec;
}

ek_err_t *ek_writer_target_set_command(ek_writer_target_t *t, const char *command)
{
    if (strcmp(t->kind, "ssh") != 0)
        return ek_err_new(EK_E_INVALID, "%s: a %s connection runs no command of its own", WHAT,
                          t->kind);
    free(t->command);
    t->command = ek_xstrdup(command);
    t->ssh.command = t->command;
    return NULL;
}

const char *ek_writer_target_kind(const ek_writer_target_t *t)
{
    return t->kind;
}

const char *ek_writer_target_describe(const ek_writer_target_t *t)
{
    return t->describe;
}
