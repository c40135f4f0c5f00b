/* conn.c - the libvirt provider's connection to a host: libvirt over SSH
 * (qemu+libssh2://), with the key and known_hosts written to files of a
 * private directory for the life of the connection.
 *
 * libvirt's own errors for a failed SSH connection are vague ("Cannot
 * recv data", "authentication failed"), so before libvirt is asked, a
 * libssh2 session of our own walks the steps one by one - name resolution,
 * TCP, SSH handshake, host key, login - and the first that fails is named
 * in the error. When the connection info gives only a host key fingerprint
 * (no known_hosts line), that same session fetches the host's key, checks
 * it against the fingerprint and writes the known_hosts file libvirt needs.
 *
 * Files live in "<tmp_dir>/ekman-lv-<pid>-XXXXXX" (0700; key and known_hosts
 * 0600) and go with ek_lv_disconnect. tmp_dir is the task process's own
 * directory (worker/supervisor.c): a task process killed outright cannot
 * clean up, its worker removes the directory when it ends (and tools that
 * run tasks without a worker sweep at the next connection: sweep_stale).
 *
 * An endpoint is a tenant's: it brings its own key. The operator's key
 * ([libvirt_migration_provider] ssh_key_path) is used only for the
 * endpoints the operator lists by URI in operator_key_uris, so no member of
 * a project reaches a host with the operator's credential. */
#include "worker/providers/libvirt/libvirt.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include "common/base64.h"
#include "common/ssh.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define SSH_TIMEOUT_MS 30000
#define DIR_PREFIX     "ekman-lv-"

struct ek_lv_conn {
    char *host, *user, *uri_path;
    int port;
    char *dir, *key_file, *kh_file;
    char *describe;
    virConnectPtr conn;
    bool loop; /* holds the event loop */
    unsigned long lib_version;
};

/* ---- errors ------------------------------------------------------------------------ */

/* The message of the last libvirt error raised in this thread, kept by the
 * error callback: any public libvirt call resets virGetLastError, even one
 * that succeeds (the virDomainGetName(dom) in an ek_lv_err argument list). */
static _Thread_local char last_error[1024];

ek_err_t *ek_lv_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    virErrorPtr e = virGetLastError();
    const char *lv = e && e->code != VIR_ERR_OK && e->message ? e->message : last_error;
    ek_err_t *err =
        ek_err_new((ek_errcode_t)code, "%s: %s", msg, *lv ? lv : "no detail from libvirt");
    last_error[0] = '\0';
    return err;
}

/* libvirt prints every error on stderr unless told otherwise; ours carry
 * them (and the last one is kept for ek_lv_err). */
static void quiet_errors(void *opaque, virErrorPtr e)
{
    (void)opaque;
    if (e && e->message)
        snprintf(last_error, sizeof(last_error), "%s", e->message);
}

/* ---- libvirt event loop (keepalive) -------------------------------------------------- */

/* Keepalive needs an event loop: without it a dead host hangs a call for the
 * TCP timeout (minutes). A thread runs libvirt's default loop while a
 * connection is open, and is joined when the last one closes: left running,
 * it would race the library destructors at exit. */
static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loop_ok;
static int loop_users;
static pthread_t loop_thread;
static volatile bool loop_quit;

static void loop_init(void)
{
    virSetErrorFunc(NULL, quiet_errors);
    libssh2_init(0);
    loop_ok = virEventRegisterDefaultImpl() == 0;
}

static void *loop_main(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&loop_quit, __ATOMIC_ACQUIRE))
        if (virEventRunDefaultImpl() < 0)
            usleep(100000);
    /* libvirt finishes closing a connection's transport from the loop:
     * a little more of it. (libvirt 9.0 still leaks that transport's
     * libssh2 session now and then when the loop stops; a loop that never
     * stops would instead race the library's teardown at exit.) */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        virEventRunDefaultImpl();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 < 100);
    return NULL;
}

static void loop_wake(int timer, void *opaque)
{
    (void)timer;
    (void)opaque;
}

static bool loop_acquire(void)
{
    pthread_once(&loop_once, loop_init);
    pthread_mutex_lock(&loop_lock);
    bool ok = loop_ok;
    if (ok && loop_users == 0) {
        __atomic_store_n(&loop_quit, false, __ATOMIC_RELEASE);
        ok = pthread_create(&loop_thread, NULL, loop_main, NULL) == 0;
    }
    if (ok)
        loop_users++;
    pthread_mutex_unlock(&loop_lock);
    return ok;
}

static void loop_release(void)
{
    pthread_mutex_lock(&loop_lock);
    if (--loop_users == 0) {
        __atomic_store_n(&loop_quit, true, __ATOMIC_RELEASE);
        /* a timer that fires at once makes the loop's poll return */
        int t = virEventAddTimeout(0, loop_wake, NULL, NULL);
        pthread_join(loop_thread, NULL);
        if (t >= 0)
            virEventRemoveTimeout(t);
    }
    pthread_mutex_unlock(&loop_lock);
}

/* ---- accessors --------------------------------------------------------------------- */

virConnectPtr ek_lv_virconn(ek_lv_conn_t *c)
{
    return c->conn;
}
const char *ek_lv_host(const ek_lv_conn_t *c)
{
    return c->host;
}
int ek_lv_port(const ek_lv_conn_t *c)
{
    return c->port;
}
const char *ek_lv_user(const ek_lv_conn_t *c)
{
    return c->user;
}
const char *ek_lv_key_file(const ek_lv_conn_t *c)
{
    return c->key_file;
}
const char *ek_lv_known_hosts_file(const ek_lv_conn_t *c)
{
    return c->kh_file;
}
const char *ek_lv_tmp_dir(const ek_lv_conn_t *c)
{
    return c->dir;
}
const char *ek_lv_describe(const ek_lv_conn_t *c)
{
    return c->describe;
}
unsigned long ek_lv_lib_version(const ek_lv_conn_t *c)
{
    return c->lib_version;
}

/* ---- private directory ------------------------------------------------------------- */

/* Directories of task processes that died without cleaning up. Under a
 * worker, tmp is the task process's own directory (nothing to find);
 * tools that run tasks directly share one tmp_dir, and there a killed
 * task's directory goes with the next connection. */
static void sweep_stale(const char *tmp)
{
    DIR *dh = opendir(tmp);
    if (!dh)
        return;
    struct dirent *de;
    uid_t me = geteuid();
    while ((de = readdir(dh))) {
        if (strncmp(de->d_name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0)
            continue;
        long pid = strtol(de->d_name + strlen(DIR_PREFIX), NULL, 10);
        _cleanup_free_ char *p = ek_xasprintf("%s/%s", tmp, de->d_name);
        struct stat st;
        if (pid <= 0 || lstat(p, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != me)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to judge) */
        ek_log_kv(EK_LOG_INFO, "removing the key directory of a dead task process", "dir", p, NULL);
        ek_rmtree(p);
    }
    closedir(dh);
}

static ek_err_t *write_private(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", path);
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ek_err_t *err = ek_err_errno(errno, "could not write \"%s\"", path);
            close(fd);
            return err;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0)
        return ek_err_errno(errno, "could not write \"%s\"", path);
    return NULL;
}

/* ---- connection info --------------------------------------------------------------- */

static bool uri_path_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '/' || *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

/* Whether the operator lets endpoint c use the operator's own key: its URI
 * (qemu+ssh://USER@HOST:PORT/PATH, ":PORT" optional for 22) is listed in
 * [libvirt_migration_provider] operator_key_uris. */
static bool operator_key_allowed(const ek_lv_conn_t *c, const ek_config_t *cfg, char **uri)
{
    *uri = ek_xasprintf("qemu+ssh://%s@%s:%d/%s", c->user, c->host, c->port, c->uri_path);
    const ek_strlist_t *allowed =
        cfg ? ek_config_get_list(cfg, "libvirt_migration_provider", "operator_key_uris") : NULL;
    _cleanup_free_ char *short_uri =
        c->port == 22 ? ek_xasprintf("qemu+ssh://%s@%s/%s", c->user, c->host, c->uri_path) : NULL;
    for (size_t i = 0; allowed && i < allowed->n; i++) {
        const char *a = allowed->items[i];
        if (a && (strcmp(a, *uri) == 0 || (short_uri && strcmp(a, short_uri) == 0)))
            return true;
    }
    return false;
}

/* The key: connection_info.private_key (base64), else the configured
 * ssh_key_path - the operator's credential, so only for the endpoints the
 * operator lists in operator_key_uris: any member of any project can create
 * an endpoint, and must not reach a host with the operator's key.
 * *key is malloc'ed (secret). */
static ek_err_t *load_key(const ek_lv_conn_t *c, const char *endpoint, json_object *ci,
                          const ek_config_t *cfg, unsigned char **key, size_t *len)
{
    const char *b64 = NULL;
    ek_err_t *err = ek_json_opt_string(ci, "connection_info", "private_key", NULL, &b64);
    if (err)
        return err;
    if (b64 && *b64) {
        if ((err = ek_base64_decode(b64, key, len)))
            return ek_err_prefix(err, "connection_info.private_key is not base64 (encode the "
                                      "key file with base64 -w0)");
        if (*len < 32 || !memmem(*key, *len, "PRIVATE KEY", 11)) {
            free(*key);
            *key = NULL;
            return ek_err_new(EK_E_INVALID,
                              "connection_info.private_key does not decode to an SSH private "
                              "key (expected \"-----BEGIN OPENSSH PRIVATE KEY-----\"): encode "
                              "the key file itself with base64 -w0");
        }
        return NULL;
    }
    _cleanup_free_ char *uri = NULL;
    if (!operator_key_allowed(c, cfg, &uri))
        return ek_err_new(EK_E_FORBIDDEN,
                          "endpoint '%s' (%s) has no connection_info.private_key, and the "
                          "operator's key ([libvirt_migration_provider] ssh_key_path) is used "
                          "only for the endpoints listed in [libvirt_migration_provider] "
                          "operator_key_uris: give the endpoint its own SSH private key "
                          "(base64 -w0 KEYFILE), or ask the operator to add %s to "
                          "operator_key_uris",
                          endpoint, uri, uri);
    const char *path =
        cfg ? ek_config_get_string(cfg, "libvirt_migration_provider", "ssh_key_path") : NULL;
    if (!path || !*path)
        return ek_err_new(EK_E_INVALID,
                          "connection_info.private_key is missing and [libvirt_migration_provider] "
                          "ssh_key_path is not set: give the SSH private key (base64 -w0 KEYFILE)");
    FILE *f = fopen(path, "re");
    if (!f)
        return ek_err_errno(errno, "could not read the SSH key \"%s\" (ssh_key_path)", path);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb.len < (1u << 20))
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    *len = sb.len;
    *key = (unsigned char *)ek_strbuf_detach(&sb);
    return NULL;
}

static ek_err_t *conn_setup(ek_lv_conn_t *c, const ek_endpoint_t *ep, const ek_config_t *cfg,
                            const char **known_hosts, const char **fingerprint)
{
    json_object *ci = ep->connection_info;
    const char *host, *user, *path;
    int64_t port;
    ek_err_t *err;
    if (!ci || !json_object_is_type(ci, json_type_object))
        return ek_err_new(EK_E_INVALID, "the endpoint has no connection_info");
    if ((err = ek_json_req_string(ci, "connection_info", "host", &host)) ||
        (err = ek_json_req_string(ci, "connection_info", "username", &user)) ||
        (err = ek_json_opt_int(ci, "connection_info", "port", 22, &port)) ||
        (err = ek_json_opt_string(ci, "connection_info", "uri_path", "system", &path)) ||
        (err = ek_json_opt_string(ci, "connection_info", "known_hosts", NULL, known_hosts)) ||
        (err =
             ek_json_opt_string(ci, "connection_info", "host_key_fingerprint", NULL, fingerprint)))
        return err;
    if (!*host || strpbrk(host, "/@?# \t"))
        return ek_err_new(EK_E_INVALID, "connection_info.host '%s' is not a host name", host);
    if (!*user || strpbrk(user, "/@?#:% \t"))
        return ek_err_new(EK_E_INVALID, "connection_info.username '%s' is not a user name", user);
    if (port < 1 || port > 65535)
        return ek_err_new(EK_E_INVALID, "connection_info.port %lld is not a TCP port",
                          (long long)port);
    while (*path == '/')
        path++;
    if (!uri_path_ok(path))
        return ek_err_new(EK_E_INVALID,
                          "connection_info.uri_path '%s' is not a libvirt URI path (e.g. "
                          "'system')",
                          path);
    if ((!*known_hosts || !**known_hosts) && (!*fingerprint || !**fingerprint))
        return ek_err_new(EK_E_INVALID,
                          "give connection_info.known_hosts (the output of ssh-keyscan -p %d %s) "
                          "or connection_info.host_key_fingerprint (SHA256:...): the host key "
                          "of %s must be known before Ekman logs in",
                          (int)port, host, host);
    c->host = ek_xstrdup(host);
    c->user = ek_xstrdup(user);
    c->port = (int)port;
    c->uri_path = ek_xstrdup(path);
    c->describe = ek_xasprintf("%s@%s:%d", user, host, (int)port);

    const char *tmp = cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : NULL;
    if (!tmp || !*tmp)
        tmp = "/var/tmp";
    sweep_stale(tmp);
    char *tmpl = ek_xasprintf("%s/" DIR_PREFIX "%ld-XXXXXX", tmp, (long)getpid());
    if (!mkdtemp(tmpl)) {
        err = ek_err_errno(errno,
                           "could not create a private directory in \"%s\" ([worker] "
                           "tmp_dir)",
                           tmp);
        free(tmpl);
        return err;
    }
    c->dir = tmpl;
    c->key_file = ek_xasprintf("%s/key", c->dir);
    c->kh_file = ek_xasprintf("%s/known_hosts", c->dir);
    unsigned char *key = NULL;
    size_t klen = 0;
    if ((err = load_key(c, ep->name ? ep->name : "?", ci, cfg, &key, &klen)))
        return err;
    err = write_private(c->key_file, key, klen);
    explicit_bzero(key, klen);
    free(key);
    if (!err && *known_hosts && **known_hosts) {
        _cleanup_free_ char *kh = ek_xasprintf("%s\n", *known_hosts);
        err = write_private(c->kh_file, kh, strlen(kh));
    }
    return err;
}

/* ---- the SSH probe ----------------------------------------------------------------- */

/* An authenticated session (blocking, with a timeout): the common SSH
 * client's steps, errors naming the connection info's fields. */
static ek_err_t *ssh_open(ek_lv_conn_t *c, const char *fingerprint, int *fd_out,
                          LIBSSH2_SESSION **out)
{
    ek_ssh_peer_t p = {.host = c->host,
                       .port = c->port,
                       .user = c->user,
                       .key_file = c->key_file,
                       .known_hosts = c->kh_file,
                       .fingerprint = fingerprint,
                       .known_hosts_name = "connection_info.known_hosts",
                       .key_name = "connection_info.private_key",
                       .fingerprint_name = "connection_info.host_key_fingerprint",
                       .timeout_ms = SSH_TIMEOUT_MS};
    return ek_ssh_open(&p, fd_out, out);
}

static void ssh_close(LIBSSH2_SESSION *s, int fd)
{
    ek_ssh_close(s, fd, "done");
}

/* ---- libvirt ----------------------------------------------------------------------- */

static int auth_cb(virConnectCredentialPtr cred, unsigned int ncred, void *opaque)
{
    ek_lv_conn_t *c = opaque;
    for (unsigned i = 0; i < ncred; i++) {
        if (cred[i].type != VIR_CRED_AUTHNAME)
            return -1; /* nobody to answer a prompt */
        cred[i].result = strdup(c->user);
        if (!cred[i].result)
            return -1;
        cred[i].resultlen = (unsigned)strlen(c->user);
    }
    return 0;
}

/* Percent-encodes what a URI component cannot hold as is. */
static void uri_add(ek_strbuf_t *sb, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~/", ch))
            ek_strbuf_addch(sb, (char)ch);
        else
            ek_strbuf_addf(sb, "%%%02X", ch);
    }
}

static char *build_uri(const ek_lv_conn_t *c)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, "qemu+libssh2://");
    uri_add(&sb, c->user);
    ek_strbuf_addch(&sb, '@');
    bool v6 = strchr(c->host, ':') != NULL;
    ek_strbuf_addf(&sb, v6 ? "[%s]:%d/" : "%s:%d/", c->host, c->port);
    ek_strbuf_adds(&sb, c->uri_path);
    ek_strbuf_adds(&sb, "?keyfile=");
    uri_add(&sb, c->key_file);
    ek_strbuf_adds(&sb, "&known_hosts=");
    uri_add(&sb, c->kh_file);
    ek_strbuf_adds(&sb, "&known_hosts_verify=normal&sshauth=privkey");
    return ek_strbuf_detach(&sb);
}

static ek_err_t *open_libvirt(ek_lv_conn_t *c)
{
    _cleanup_free_ char *uri = build_uri(c);
    int types[] = {VIR_CRED_AUTHNAME, VIR_CRED_PASSPHRASE, VIR_CRED_NOECHOPROMPT,
                   VIR_CRED_ECHOPROMPT};
    virConnectAuth auth = {types, EK_ARRAY_SIZE(types), auth_cb, c};
    c->conn = virConnectOpenAuth(uri, &auth, 0);
    if (!c->conn)
        return ek_lv_err(EK_E_FORBIDDEN,
                         "logged in to %s over SSH, but libvirt (/%s) refused the connection: "
                         "the user needs read-write access to libvirtd's socket (group libvirt "
                         "on most hosts) and libvirtd must run",
                         c->describe, c->uri_path);
    if (c->loop && virConnectSetKeepAlive(c->conn, 5, 3) < 0)
        ek_log_kv(EK_LOG_WARNING, "libvirt keepalive not enabled", "host", c->host, "error",
                  virGetLastErrorMessage(), NULL);
    /* Access control may let a user connect and refuse every call. */
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c->conn, &doms, 0);
    if (n < 0)
        return ek_lv_err(EK_E_FORBIDDEN,
                         "connected to libvirt on %s, but it refuses to list "
                         "domains",
                         c->describe);
    for (int i = 0; i < n; i++)
        virDomainFree(doms[i]);
    free(doms);
    if (virConnectGetLibVersion(c->conn, &c->lib_version) < 0)
        c->lib_version = 0;
    return NULL;
}

ek_err_t *ek_lv_connect(const ek_endpoint_t *ep, const ek_config_t *cfg, ek_lv_conn_t **out)
{
    *out = NULL;
    ek_lv_conn_t *c = ek_xcalloc(1, sizeof(*c));
    c->loop = loop_acquire();
    const char *known_hosts = NULL, *fingerprint = NULL;
    ek_err_t *err = conn_setup(c, ep, cfg, &known_hosts, &fingerprint);
    int fd = -1;
    LIBSSH2_SESSION *s = NULL;
    if (!err && !(err = ssh_open(c, fingerprint, &fd, &s)))
        ssh_close(s, fd);
    if (!err)
        err = open_libvirt(c);
    if (err) {
        ek_lv_disconnect(c);
        return ek_err_prefix(err, "libvirt endpoint '%s'", ep->name ? ep->name : "?");
    }
    ek_log_kv(EK_LOG_DEBUG, "libvirt connected", "host", c->host, "user", c->user, NULL);
    *out = c;
    return NULL;
}

void ek_lv_disconnect(ek_lv_conn_t *c)
{
    if (!c)
        return;
    if (c->conn)
        virConnectClose(c->conn);
    if (c->loop)
        loop_release();
    if (c->dir)
        ek_rmtree(c->dir);
    free(c->host);
    free(c->user);
    free(c->uri_path);
    free(c->dir);
    free(c->key_file);
    free(c->kh_file);
    free(c->describe);
    free(c);
}

/* ---- OpenSSH client arguments ------------------------------------------------------ */

char **ek_lv_ssh_argv(const ek_lv_conn_t *c, const char *const *extra, const char *remote_command)
{
    size_t n_extra = 0;
    while (extra && extra[n_extra])
        n_extra++;
    char **v = ek_xcalloc(32 + n_extra, sizeof(char *));
    size_t i = 0;
    v[i++] = ek_xstrdup("ssh");
    v[i++] = ek_xstrdup("-F");
    v[i++] = ek_xstrdup("/dev/null");
    v[i++] = ek_xstrdup("-i");
    v[i++] = ek_xstrdup(c->key_file);
    v[i++] = ek_xstrdup("-p");
    v[i++] = ek_xasprintf("%d", c->port);
    v[i++] = ek_xstrdup("-l");
    v[i++] = ek_xstrdup(c->user);
    static const char *const opts[] = {
        "IdentitiesOnly=yes",        "BatchMode=yes",
        "StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null",
        "ServerAliveInterval=5",     "ServerAliveCountMax=3",
        "ConnectTimeout=10",         "LogLevel=ERROR",
    };
    for (size_t k = 0; k < EK_ARRAY_SIZE(opts); k++) {
        v[i++] = ek_xstrdup("-o");
        v[i++] = ek_xstrdup(opts[k]);
    }
    v[i++] = ek_xstrdup("-o");
    v[i++] = ek_xasprintf("UserKnownHostsFile=%s", c->kh_file);
    for (size_t k = 0; k < n_extra; k++)
        v[i++] = ek_xstrdup(extra[k]);
    v[i++] = ek_xstrdup("--");
    v[i++] = ek_xstrdup(c->host);
    if (remote_command)
        v[i++] = ek_xstrdup(remote_command);
    v[i] = NULL;
    return v;
}

void ek_lv_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

/* ---- remote commands --------------------------------------------------------------- */

static void drain(LIBSSH2_CHANNEL *ch, int stream, ek_strbuf_t *sb)
{
    char buf[4096];
    ssize_t n;
    while ((n = libssh2_channel_read_ex(ch, stream, buf, sizeof(buf))) > 0)
        if (sb->len < (8u << 20))
            ek_strbuf_add(sb, buf, (size_t)n);
}

ek_err_t *ek_lv_ssh_run(ek_lv_conn_t *c, const char *command, char **out, char **errout,
                        int *status)
{
    int fd = -1;
    LIBSSH2_SESSION *s = NULL;
    ek_err_t *err = ssh_open(c, NULL, &fd, &s);
    if (err)
        return err;
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s);
    if (!ch || libssh2_channel_exec(ch, command) != 0) {
        err =
            ek_err_new(EK_E_IO, "could not run a command on %s: %s", c->describe, ek_ssh_errmsg(s));
        if (ch)
            libssh2_channel_free(ch);
        ssh_close(s, fd);
        return err;
    }
    /* Blocking reads: stdout to its end, then stderr (our commands are
     * short and print little, so neither pipe fills up meanwhile). */
    ek_strbuf_t o = EK_STRBUF_INIT, e = EK_STRBUF_INIT;
    libssh2_session_set_blocking(s, 0);
    while (!libssh2_channel_eof(ch)) {
        drain(ch, 0, &o);
        drain(ch, SSH_EXTENDED_DATA_STDERR, &e);
        if (libssh2_channel_eof(ch))
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, SSH_TIMEOUT_MS) <= 0) {
            err = ek_err_new(EK_E_TIMEOUT, "command on %s did not finish within %d s", c->describe,
                             SSH_TIMEOUT_MS / 1000);
            break;
        }
    }
    drain(ch, 0, &o);
    drain(ch, SSH_EXTENDED_DATA_STDERR, &e);
    libssh2_session_set_blocking(s, 1);
    libssh2_channel_close(ch);
    libssh2_channel_wait_closed(ch);
    int st = libssh2_channel_get_exit_status(ch);
    libssh2_channel_free(ch);
    ssh_close(s, fd);
    if (status)
        *status = st;
    if (out && !err)
        *out = ek_strbuf_detach(&o);
    else
        ek_strbuf_release(&o);
    if (errout && !err)
        *errout = ek_strbuf_detach(&e);
    else
        ek_strbuf_release(&e);
    return err;
}
