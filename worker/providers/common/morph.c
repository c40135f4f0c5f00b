/* morph.c - OS_MORPHING over SSH: runs ekman-morph on the OS-morphing
 * worker VM and relays what it reports (see morph.h, and worker/morph/ for
 * the engine itself).
 *
 * Every remote command is made here from fixed text and names this code
 * checked; the login is the one DEPLOY_OS_MORPHING_RESOURCES set up (a key
 * made for that VM, its host key known before it booted). Files go to the
 * VM over the same login as `cat > FILE && wc -c < FILE`, so a short write
 * is seen. ekman-morph's output is JSON lines (worker/morph/report.h):
 * steps, events, changes, then one result or one error. */
#include "worker/providers/common/morph.h"
#include "worker/providers/common/download.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/transfer/stream.h"
#include "worker/transfer/target.h"

#define REMOTE_DIR      "/run/ekman-morph"
#define REMOTE_PACKAGES REMOTE_DIR "/packages"
#define REMOTE_VIRTIO   REMOTE_DIR "/virtio-win"
#define LINE_MAX_BYTES  (64 * 1024)
#define SLICE_MS        2000 /* how often a wait looks at the cancel flag */

static const char *str_of(json_object *o, const char *key, const char *def)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : def;
}

bool ek_morph_file_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 200 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '+' || c == '-' || c == '~' || c == '%'))
            return false;
    }
    return true;
}

const char *ek_morph_user_script(json_object *user_scripts, const char *instance,
                                 const char *os_type)
{
    json_object *group, *v;
    if (!user_scripts || !json_object_is_type(user_scripts, json_type_object))
        return NULL;
    if (instance && json_object_object_get_ex(user_scripts, "instances", &group) &&
        json_object_object_get_ex(group, instance, &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
        return json_object_get_string(v);
    if (os_type && json_object_object_get_ex(user_scripts, "global", &group) &&
        json_object_object_get_ex(group, os_type, &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) > 0)
        return json_object_get_string(v);
    return NULL;
}

/* ---- one remote command ------------------------------------------------------------- */

typedef struct remote {
    ek_task_ctx_t *ctx;
    ek_writer_target_t *target;
    const char *vm; /* "root@10.0.0.5" for messages */
} remote_t;

static ek_err_t *remote_open(remote_t *r, const char *command, ek_stream_t **s)
{
    ek_err_t *err = ek_writer_target_set_command(r->target, command);
    if (!err)
        err = ek_writer_target_connect_fn(r->target)(ek_writer_target_connect_arg(r->target), s);
    return err ? ek_err_prefix(err, "OS-morphing worker VM %s", r->vm) : NULL;
}

/* Reads what is left of s into *out (at most max bytes kept), waiting at
 * most timeout_s in all. */
static ek_err_t *read_rest(ek_stream_t *s, size_t max, int timeout_s, ek_strbuf_t *out)
{
    char buf[4096];
    time_t end = time(NULL) + timeout_s;
    ek_stream_set_timeout(s, SLICE_MS);
    for (;;) {
        ssize_t n = s->ops->read(s, buf, sizeof(buf));
        if (n == 0)
            return NULL;
        if (n < 0) {
            if (s->error_code == EK_E_TIMEOUT && time(NULL) < end) {
                s->error_code = 0;
                continue;
            }
            return ek_err_new(EK_E_IO, "reading from the worker VM: %s", s->error);
        }
        if (out->len < max)
            ek_strbuf_add(out, buf, (size_t)n < max - out->len ? (size_t)n : max - out->len);
    }
}

/* Runs command with input on its stdin; its output is returned in *output
 * (may be NULL) and its exit status checked ("; echo ekman-rc=$?"). */
static ek_err_t *remote_run(remote_t *r, const char *command, const void *input, size_t len,
                            int timeout_s, char **output)
{
    _cleanup_free_ char *full = ek_xasprintf("%s; echo ekman-rc=$?", command);
    ek_stream_t *s;
    ek_err_t *err = remote_open(r, full, &s);
    if (err)
        return err;
    if (len && (err = ek_stream_write_all(s, input, len)))
        err = ek_err_prefix(err, "sending to the worker VM");
    ek_stream_finish(s);
    ek_strbuf_t out = EK_STRBUF_INIT;
    if (!err)
        err = read_rest(s, 64 * 1024, timeout_s, &out);
    ek_stream_free(s);
    char *mark = strstr(out.buf, "ekman-rc=");
    if (!err && !mark)
        err = ek_err_new(EK_E_PROTOCOL, "'%s' on the worker VM %s ended without an exit status",
                         command, r->vm);
    if (!err && atoi(mark + 9) != 0) {
        *mark = 0;
        ek_strbuf_trim(&out);
        const char *last = strrchr(out.buf, '\n');
        err = ek_err_new(EK_E_IO, "'%s' on the worker VM %s failed (exit %d)%s%s", command, r->vm,
                         atoi(mark + 9), out.len ? ": " : "",
                         out.len ? (last ? last + 1 : out.buf) : "");
    } else if (!err && mark) {
        *mark = 0;
    }
    if (!err && output)
        *output = ek_strbuf_detach(&out);
    ek_strbuf_release(&out);
    return err;
}

/* Copies the local file path to remote_path on the VM (through cat), and
 * checks the size that arrived. */
static ek_err_t *remote_put(remote_t *r, const char *path, const char *remote_path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ek_err_errno(errno, "cannot open \"%s\"", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ek_err_new(EK_E_INVALID, "\"%s\" is not a regular file", path);
    }
    _cleanup_free_ char *cmd =
        ek_xasprintf("cat > '%s' && wc -c < '%s'; echo ekman-rc=$?", remote_path, remote_path);
    ek_stream_t *s;
    ek_err_t *err = remote_open(r, cmd, &s);
    if (err) {
        close(fd);
        return err;
    }
    char *buf = ek_xmalloc(1 << 20);
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = ek_err_errno(errno, "reading \"%s\"", path);
            break;
        }
        if (n == 0)
            break;
        if ((err = ek_stream_write_all(s, buf, (size_t)n))) {
            err = ek_err_prefix(err, "copying \"%s\" to the worker VM", path);
            break;
        }
    }
    free(buf);
    close(fd);
    ek_stream_finish(s);
    ek_strbuf_t out = EK_STRBUF_INIT;
    if (!err)
        err = read_rest(s, 4096, 300, &out);
    ek_stream_free(s);
    if (!err && (!strstr(out.buf, "ekman-rc=0") ||
                 strtoull(out.buf, NULL, 10) != (unsigned long long)st.st_size))
        err = ek_err_new(EK_E_IO,
                         "copying \"%s\" to %s on the worker VM %s failed (%s): is its /run full?",
                         path, remote_path, r->vm, out.len ? out.buf : "no answer");
    ek_strbuf_release(&out);
    return err;
}

/* ---- what goes to the VM -------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Streams the files names (in dir) to the VM as one tar archive (the
 * local tar writes it, the VM's tar unpacks it into remote_dir): one login
 * instead of one per file. */
static ek_err_t *remote_put_tar(remote_t *r, const char *dir, char **names, size_t n,
                                const char *remote_dir)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return ek_err_errno(errno, "pipe");
    const char **argv = ek_xcalloc(n + 7, sizeof(*argv));
    size_t k = 0;
    argv[k++] = "tar";
    argv[k++] = "-c";
    argv[k++] = "-C";
    argv[k++] = dir;
    argv[k++] = "--";
    for (size_t i = 0; i < n; i++)
        argv[k++] = names[i];
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        execvp("tar", (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return ek_err_errno(errno, "fork");
    }
    _cleanup_free_ char *cmd = ek_xasprintf(
        "rm -rf '%s' && mkdir -p '%s' && tar -x -C '%s' && ls '%s' | wc -l; echo ekman-rc=$?",
        remote_dir, remote_dir, remote_dir, remote_dir);
    ek_stream_t *s = NULL;
    ek_err_t *err = remote_open(r, cmd, &s);
    char *buf = ek_xmalloc(1 << 20);
    for (ssize_t got; !err;) {
        got = read(pfd[0], buf, 1 << 20);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if ((err = ek_stream_write_all(s, buf, (size_t)got)))
            err = ek_err_prefix(err, "copying the packages to the worker VM");
    }
    free(buf);
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        err = ek_err_new(EK_E_IO, "tar could not read the packages in \"%s\"", dir);
    ek_strbuf_t out = EK_STRBUF_INIT;
    if (s) {
        ek_stream_finish(s);
        if (!err)
            err = read_rest(s, 4096, 300, &out);
        ek_stream_free(s);
    }
    if (!err && (!strstr(out.buf, "ekman-rc=0") || strtoull(out.buf, NULL, 10) != n))
        err = ek_err_new(EK_E_IO,
                         "unpacking the packages into %s on the worker VM %s failed (%s): is its "
                         "/run full?",
                         remote_dir, r->vm, out.len ? out.buf : "no answer");
    ek_strbuf_release(&out);
    return err;
}

/* The operator's packages (osmorphing_packages_dir): every .deb and .rpm
 * directly in it. Returns how many were copied in *count. */
static ek_err_t *put_packages(remote_t *r, const char *dir, int *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ek_err_errno(errno,
                            "osmorphing_packages_dir \"%s\" cannot be read (fix or empty the "
                            "option in ekman.conf)",
                            dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 ||
            (strcmp(e->d_name + len - 4, ".deb") != 0 && strcmp(e->d_name + len - 4, ".rpm") != 0))
            continue;
        struct stat st;
        if (!ek_morph_file_name_ok(e->d_name) ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            ek_task_event(r->ctx, "WARNING",
                          "osmorphing_packages_dir: skipping \"%s\" (not a regular file, or a "
                          "name with unusual characters)",
                          e->d_name);
            continue;
        }
        names = ek_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = ek_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    ek_err_t *err = NULL;
    if (n) {
        ek_task_event(r->ctx, "INFO",
                      "copying %zu package(s) of osmorphing_packages_dir to the "
                      "worker VM",
                      n);
        err = remote_put_tar(r, dir, names, n, REMOTE_PACKAGES);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!err)
        *count = (int)n;
    return err;
}

/* The virtio-win ISO of url into local_path (download.h: the operator's
 * schemes and size limit, the SHA-256 when one is given). */
static ek_err_t *fetch_virtio_iso(ek_task_ctx_t *ctx, const char *url, const char *sha256,
                                  const char *local_path)
{
    uint64_t got = 0;
    ek_err_t *err = ek_download(ctx, "windows_virtio_iso_url", url, sha256, local_path, &got);
    if (err)
        return err;
    char size[32];
    snprintf(size, sizeof(size), "%.1f MiB", (double)got / 1048576.0);
    ek_task_event(ctx, "INFO", "VirtIO drivers downloaded (%s%s)", size,
                  sha256 && *sha256 ? ", SHA-256 checked" : "");
    return NULL;
}

/* ---- running ekman-morph -------------------------------------------------------------- */

typedef struct relay {
    ek_task_ctx_t *ctx;
    int step; /* current progress step, -1 before the first */
    json_object *changes;
    json_object *result; /* the "result" object, once seen */
    char *error;         /* the "error" message, once seen */
} relay_t;

static void relay_line(relay_t *rl, const char *line)
{
    json_object *o = json_tokener_parse(line), *v;
    if (!o || !json_object_is_type(o, json_type_object)) {
        ek_task_event(rl->ctx, "WARNING", "ekman-morph: %.*s", 500, line);
        json_object_put(o);
        return;
    }
    if (json_object_object_get_ex(o, "step", &v)) {
        if (rl->step >= 0)
            ek_task_step_update(rl->ctx, rl->step, 1);
        rl->step = ek_task_step(rl->ctx, 1, "%s", json_object_get_string(v));
    } else if (json_object_object_get_ex(o, "event", &v)) {
        const char *level = str_of(v, "level", "INFO");
        if (strcmp(level, "WARNING") != 0 && strcmp(level, "ERROR") != 0)
            level = "INFO";
        ek_task_event(rl->ctx, level, "%s", str_of(v, "message", ""));
    } else if (json_object_object_get_ex(o, "change", &v)) {
        json_object_array_add(rl->changes, json_object_new_string(json_object_get_string(v)));
    } else if (json_object_object_get_ex(o, "result", &v)) {
        json_object_put(rl->result);
        rl->result = json_object_get(v);
    } else if (json_object_object_get_ex(o, "error", &v)) {
        free(rl->error);
        rl->error = ek_xstrdup(str_of(v, "message", "unknown error"));
    }
    json_object_put(o);
}

/* Asks ekman-morph to stop (SIGINT: it undoes its mounts) over a second
 * login: the one that runs it is busy. */
static void stop_remote(remote_t *r)
{
    ek_err_t *err = remote_run(r, "killall -INT ekman-morph 2>/dev/null; true", NULL, 0, 30, NULL);
    if (err) {
        ek_warn("cannot stop ekman-morph on %s: %s", r->vm, err->message);
        ek_err_free(err);
    }
}

static ek_err_t *run_engine(remote_t *r, const char *options, int timeout_s, json_object **report)
{
    ek_stream_t *s;
    ek_err_t *err = remote_open(r, "ekman-morph", &s);
    if (err)
        return err;
    if ((err = ek_stream_write_all(s, options, strlen(options)))) {
        ek_stream_free(s);
        return ek_err_prefix(err, "sending the options to ekman-morph");
    }
    ek_stream_finish(s);
    ek_stream_set_timeout(s, SLICE_MS);
    relay_t rl = {.ctx = r->ctx, .step = -1, .changes = json_object_new_array()};
    ek_strbuf_t line = EK_STRBUF_INIT;
    time_t end = time(NULL) + timeout_s, cancel_end = 0;
    char buf[4096];
    for (;;) {
        if (!cancel_end && ek_task_cancelled(r->ctx)) {
            ek_task_event(r->ctx, "WARNING",
                          "cancelled: stopping OS morphing on the worker VM "
                          "(it unmounts the guest's filesystems)");
            stop_remote(r);
            cancel_end = time(NULL) + 120;
        }
        ssize_t n = s->ops->read(s, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            bool waiting = s->error_code == EK_E_TIMEOUT;
            s->error_code = 0;
            if (waiting && cancel_end && time(NULL) >= cancel_end)
                break;
            if (waiting && !cancel_end && time(NULL) >= end) {
                err =
                    ek_err_new(EK_E_TIMEOUT,
                               "OS morphing took longer than osmorphing_timeout (%d s)", timeout_s);
                stop_remote(r);
                break;
            }
            if (waiting)
                continue;
            err = ek_err_new(EK_E_IO, "the connection to ekman-morph on %s broke: %s", r->vm,
                             s->error);
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (line.len < LINE_MAX_BYTES)
                    ek_strbuf_add(&line, &buf[i], 1);
                continue;
            }
            if (line.len)
                relay_line(&rl, line.buf);
            ek_strbuf_reset(&line);
        }
    }
    if (line.len)
        relay_line(&rl, line.buf);
    ek_strbuf_release(&line);
    ek_stream_free(s);
    if (rl.step >= 0)
        ek_task_step_update(r->ctx, rl.step, 1);
    size_t nch = json_object_array_length(rl.changes);
    if (nch) {
        ek_strbuf_t all = EK_STRBUF_INIT;
        for (size_t i = 0; i < nch; i++)
            ek_strbuf_addf(&all, "%s%s", i ? "; " : "",
                           json_object_get_string(json_object_array_get_idx(rl.changes, i)));
        ek_task_event(r->ctx, "INFO", "OS morphing changed %zu thing(s): %s", nch, all.buf);
        ek_strbuf_release(&all);
    }
    if (!err && cancel_end)
        err = ek_err_new(EK_E_CANCELED, "OS morphing was cancelled");
    if (!err && rl.error)
        err = ek_err_new(EK_E_INVALID, "OS morphing failed: %s", rl.error);
    if (!err && !rl.result)
        err = ek_err_new(EK_E_IO,
                         "ekman-morph on the worker VM %s ended without a result (was it killed? "
                         "is the worker image older than this worker: rebuild it with "
                         "deploy/worker-image/build.sh)",
                         r->vm);
    if (!err && report) {
        json_object *rep = json_object_new_object();
        json_object_object_add(rep, "os", json_object_get(json_object_object_get(rl.result, "os")));
        json_object_object_add(rep, "changes", json_object_get(rl.changes));
        *report = rep;
    }
    json_object_put(rl.changes);
    json_object_put(rl.result);
    free(rl.error);
    return err;
}

/* The options document ekman-morph reads (worker/morph/: its stdin). */
static char *engine_options(const ek_task_input_t *in, const ek_morph_params_t *p, int packages,
                            bool virtio)
{
    json_object *o = json_object_new_object(), *v;
    json_object_object_add(o, "disks", json_object_get(p->disk_paths));
    const char *os_type = str_of(p->info, "os_type", NULL);
    json_object_object_add(o, "os_type", os_type ? json_object_new_string(os_type) : NULL);
    json_object_object_add(
        o, "set_dhcp",
        json_object_new_boolean(json_object_object_get_ex(p->info, "set_dhcp", &v)
                                    ? json_object_get_boolean(v)
                                    : true));
    json_object_object_add(
        o, "retain_user_credentials",
        json_object_new_boolean(json_object_object_get_ex(p->info, "retain_user_credentials", &v)
                                    ? json_object_get_boolean(v)
                                    : true));
    json_object_object_add(o, "nics",
                           json_object_object_get_ex(p->info, "nics", &v)
                               ? json_object_get(v)
                               : json_object_new_array());
    json_object_object_add(o, "packages_dir",
                           packages ? json_object_new_string(REMOTE_PACKAGES) : NULL);
    json_object_object_add(o, "virtio_win_dir",
                           virtio ? json_object_new_string(REMOTE_VIRTIO) : NULL);
    const char *script =
        ek_morph_user_script(in->user_scripts, in->instance, os_type ? os_type : "linux");
    json_object_object_add(o, "user_script", script ? json_object_new_string(script) : NULL);
    json_object_object_add(o, "state_dir", json_object_new_string(REMOTE_DIR));
    char *text = ek_xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

ek_err_t *ek_morph_remote_run(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                              const ek_morph_params_t *p, json_object **report)
{
    const ek_config_t *cfg = ek_task_config(ctx);
    const char *tmp = cfg ? ek_config_get_string(cfg, "worker", "tmp_dir") : "/var/tmp";
    const char *pkgdir =
        cfg ? ek_config_get_string(cfg, p->section, "osmorphing_packages_dir") : "";
    int timeout_s = cfg ? (int)ek_config_get_int(cfg, p->section, "osmorphing_timeout") : 3600;
    if (timeout_s <= 0)
        timeout_s = 3600;
    if (!p->connection || !json_object_is_type(p->connection, json_type_object) ||
        strcmp(str_of(p->connection, "kind", ""), "ssh") != 0)
        return ek_err_new(EK_E_CONFLICT,
                          "osmorphing_connection_info gives no SSH login to the OS-morphing "
                          "worker VM (DEPLOY_OS_MORPHING_RESOURCES must run first, with a worker "
                          "image that runs sshd)");
    if (!p->disk_paths || json_object_array_length(p->disk_paths) == 0)
        return ek_err_new(EK_E_CONFLICT, "no disk of '%s' is attached to the OS-morphing worker VM",
                          in->instance);
    ek_writer_target_t *target;
    ek_err_t *err = ek_writer_target_open(p->connection, tmp, &target);
    if (err)
        return ek_err_prefix(err, "osmorphing_connection_info");
    _cleanup_free_ char *vm = ek_xasprintf("%s@%s", str_of(p->connection, "username", "root"),
                                           str_of(p->connection, "host", "?"));
    remote_t r = {ctx, target, vm};
    int step = ek_task_step(ctx, 1, "Preparing the OS-morphing worker VM %s", vm);
    int packages = 0;
    bool virtio = false;
    err = remote_run(&r,
                     "command -v ekman-morph >/dev/null || { echo 'ekman-morph is not "
                     "installed on this worker image'; exit 1; }; mkdir -p " REMOTE_DIR,
                     NULL, 0, 60, NULL);
    if (!err && pkgdir && *pkgdir)
        err = put_packages(&r, pkgdir, &packages);
    const char *os_type = str_of(p->info, "os_type", "linux");
    const char *iso_url = str_of(p->info, "windows_virtio_iso_url", "");
    if (!err && strcmp(os_type, "windows") == 0) {
        if (!*iso_url) {
            err = ek_err_new(EK_E_INVALID, "a Windows guest needs the VirtIO drivers: set "
                                           "windows_virtio_iso_url");
        } else {
            _cleanup_free_ char *dir = NULL;
            if (!(err = ek_private_dir(tmp, "ekman-virtio", &dir))) {
                _cleanup_free_ char *iso = ek_xasprintf("%s/virtio-win.iso", dir);
                if (!(err = fetch_virtio_iso(
                          ctx, iso_url, str_of(p->info, "windows_virtio_iso_sha256", ""), iso)) &&
                    !(err = remote_put(&r, iso, REMOTE_DIR "/virtio-win.iso")))
                    err = remote_run(&r,
                                     "mkdir -p " REMOTE_VIRTIO " && { mountpoint -q " REMOTE_VIRTIO
                                     " || mount -o loop,ro " REMOTE_DIR
                                     "/virtio-win.iso " REMOTE_VIRTIO "; }",
                                     NULL, 0, 120, NULL);
                virtio = !err;
                ek_rmtree(dir);
            }
        }
    }
    ek_task_step_update(ctx, step, 1);
    if (!err) {
        _cleanup_free_ char *options = engine_options(in, p, packages, virtio);
        err = run_engine(&r, options, timeout_s, report);
    }
    if (virtio) {
        ek_err_t *e2 = remote_run(
            &r, "umount " REMOTE_VIRTIO "; rm -f " REMOTE_DIR "/virtio-win.iso", NULL, 0, 60, NULL);
        ek_err_free(e2);
    }
    ek_writer_target_free(target);
    return err;
}
