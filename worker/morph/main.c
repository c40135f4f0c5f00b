/* main.c - ekman-morph, the OS-morphing engine (issue #16). Runs as root in
 * the OS-morphing worker VM with the migrated VM's disks attached: reads its
 * options (options.h) as one JSON object on stdin, finds the guest's root,
 * mounts it, adapts the guest for KVM (plan.h; windows/ for Windows), undoes
 * every mount and activation (journal.h), and writes JSON lines on stdout:
 *   {"step":"..."} {"event":{"level":..,"message":..}} {"change":"..."}
 * and last {"result":{"os":{..},"changes":[..]}} (exit 0) or
 * {"error":{"message":".."}} (exit 1). Nothing else goes to stdout. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/morph/detect.h"
#include "worker/morph/journal.h"
#include "worker/morph/options.h"
#include "worker/morph/plan.h"
#include "worker/morph/report.h"
#include "worker/morph/runner.h"
#include "worker/morph/storage.h"
#ifdef EK_HAVE_WINDOWS
#include "worker/morph/windows/windows.h"
#endif

/* ---- the JSON-lines reporter ---- */

typedef struct jl_reporter {
    ek_morph_report_t base;
    json_object *changes;
} jl_reporter_t;

static void jl_emit(const char *key, json_object *val)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, key, val);
    fputs(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        stdout);
    fputc('\n', stdout);
    fflush(stdout);
    json_object_put(o);
}

static void jl_step(ek_morph_report_t *r, const char *name)
{
    (void)r;
    jl_emit("step", json_object_new_string(name));
}

static void jl_event(ek_morph_report_t *r, const char *level, const char *message)
{
    (void)r;
    json_object *e = json_object_new_object();
    json_object_object_add(e, "level", json_object_new_string(level));
    json_object_object_add(e, "message", json_object_new_string(message));
    jl_emit("event", e);
}

static void jl_change(ek_morph_report_t *r, const char *what)
{
    jl_reporter_t *jr = (jl_reporter_t *)r;
    json_object_array_add(jr->changes, json_object_new_string(what));
    jl_emit("change", json_object_new_string(what));
}

/* ---- the work ---- */

static void on_signal(int sig)
{
    (void)sig;
    ek_morph_canceled = 1;
}

/* One run at a time. A run whose worker died (its SSH session gone) may
 * still be going: the new run stops it (SIGTERM: it undoes its mounts),
 * waits for it, and only then reads the journal. The lock holds the pid. */
static ek_err_t *take_lock(const char *state_dir, ek_morph_report_t *r, int *out)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/lock", state_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ek_err_errno(errno, "cannot open %s", path);
    pid_t other = 0;
    for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
        if (errno != EWOULDBLOCK) {
            close(fd);
            return ek_err_errno(errno, "cannot lock %s", path);
        }
        if (i == 0) {
            char buf[32] = "";
            if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
                other = (pid_t)atoi(buf);
            ek_morph_event(r, "WARNING",
                           "an earlier OS-morphing run (pid %d) is still going: stopping it",
                           other);
            if (other > 1)
                kill(other, SIGTERM);
        } else if (i == 1200 && other > 1) { /* 2 minutes to undo its work */
            ek_morph_event(r, "WARNING", "the earlier run (pid %d) did not stop: killing it",
                           other);
            kill(other, SIGKILL);
        } else if (i > 1300 || ek_morph_canceled) {
            close(fd);
            return ek_err_new(EK_E_CONFLICT, "another ekman-morph run holds %s", path);
        }
        usleep(100 * 1000);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        close(fd);
        return ek_err_errno(errno, "cannot write %s", path);
    }
    *out = fd;
    return NULL;
}

static ek_err_t *read_stdin(char **out, size_t *len)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        ek_strbuf_add(&sb, buf, n);
        if (sb.len > (4 << 20)) {
            ek_strbuf_release(&sb);
            return ek_err_new(EK_E_INVALID, "options: more than 4 MiB on stdin");
        }
    }
    *len = sb.len;
    *out = ek_strbuf_detach(&sb);
    return NULL;
}

static ek_err_t *installed_packages(const char *root, const ek_morph_os_t *os, ek_strv_t *out)
{
    if (os->family == EK_FAMILY_DEBIAN)
        return ek_morph_dpkg_installed(root, out);
    const char *argv[] = {"rpm", "-qa", "--qf", "%{NAME}\\n", NULL};
    ek_morph_cmd_t cmd = {.argv = argv, .root = root, .timeout_s = 120};
    _cleanup_free_ char *text = NULL;
    ek_err_t *err = ek_morph_run(&cmd, &text);
    if (err)
        return ek_err_prefix(err, "listing the guest's installed packages");
    for (char *s = text; s && *s;) {
        char *end = strchr(s, '\n');
        if (end)
            *end = '\0';
        if (*s && !ek_strv_has(out, s))
            ek_strv_add(out, s);
        s = end ? end + 1 : NULL;
    }
    return NULL;
}

static ek_err_t *morph_linux(const ek_morph_opts_t *o, ek_morph_storage_t *st,
                             const ek_morph_root_t *root, ek_morph_journal_t *j,
                             ek_morph_report_t *r, json_object **os_json)
{
    _cleanup_free_ char *dir = ek_xasprintf("%s/root", o->state_dir);
    ek_morph_step(r, "Mounting the guest's filesystems");
    ek_err_t *err = ek_morph_storage_mount_linux(st, root, j, dir, r);
    if (err)
        return err;
    ek_morph_step(r, "Detecting the guest's distribution");
    _cleanup_(ek_morph_os_freep) ek_morph_os_t *os = NULL;
    if ((err = ek_morph_os_detect(dir, &os)))
        return err;
    ek_morph_event(r, "INFO", "found %s (%s family) on %s, kernels: %zu", os->name,
                   ek_morph_family_name(os->family), st->fs[root->fs].dev, os->kernels.n);
    _cleanup_strv_ ek_strv_t installed = {0};
    if ((err = installed_packages(dir, os, &installed)))
        return err;
    ek_morph_plan_in_t in = {
        .root = dir,
        .os = os,
        .opts = o,
        .installed = &installed,
        .resolve = ek_morph_storage_resolve,
        .resolve_ud = st,
    };
    _cleanup_(ek_morph_plan_freep) ek_morph_plan_t *plan = NULL;
    if ((err = ek_morph_plan_build(&in, &plan)))
        return err;
    if ((err = ek_morph_plan_run(plan, dir, j, r)))
        return err;
    *os_json = ek_morph_os_json(os);
    json_object_object_add(*os_json, "root", json_object_new_string(st->fs[root->fs].dev));
    return NULL;
}

static ek_err_t *morph_windows(const ek_morph_opts_t *o, ek_morph_storage_t *st,
                               const ek_morph_root_t *root, ek_morph_journal_t *j,
                               ek_morph_report_t *r, json_object **os_json)
{
#ifdef EK_HAVE_WINDOWS
    if (!o->virtio_win_dir)
        return ek_err_new(EK_E_INVALID,
                          "the guest runs Windows: options.virtio_win_dir must name the mounted "
                          "virtio-win tree (windows_virtio_iso_url / windows_virtio_zip_url)");
    _cleanup_free_ char *dir = ek_xasprintf("%s/root", o->state_dir);
    mkdir(dir, 0755);
    ek_morph_step(r, "Mounting the guest's Windows volume");
    ek_err_t *err = ek_morph_journal_mount(j, st->fs[root->fs].dev, dir, "ntfs-3g", 0, "rw");
    if (err)
        return ek_err_prefix(err, "mounting the Windows volume (is Windows hibernated or "
                                  "Fast Startup on?)");
    ek_win_opts_t wo = {.virtio_dir = o->virtio_win_dir, .user_script = o->user_script};
    ek_win_info_t info = {0};
    ek_morph_step(r, "Adapting Windows for KVM");
    if ((err = ek_win_morph(dir, &wo, r, &info)))
        return err;
    *os_json = ek_win_info_json(&info);
    json_object_object_add(*os_json, "root", json_object_new_string(st->fs[root->fs].dev));
    return NULL;
#else
    (void)o;
    (void)j;
    (void)r;
    (void)os_json;
    return ek_err_new(EK_E_INVALID,
                      "%s holds Windows, and this ekman-morph was built without its Windows "
                      "part (worker/morph/windows): Windows guests cannot be morphed by it",
                      st->fs[root->fs].dev);
#endif
}

static ek_err_t *morph(const ek_morph_opts_t *o, ek_morph_journal_t *j, ek_morph_report_t *r,
                       json_object **os_json)
{
    ek_morph_step(r, "Finding the guest's operating system");
    _cleanup_(ek_morph_storage_freep) ek_morph_storage_t *st = NULL;
    ek_err_t *err = ek_morph_storage_scan(o, j, r, &st);
    if (err)
        return err;
    _cleanup_free_ char *probe = ek_xasprintf("%s/probe", o->state_dir);
    ek_morph_root_t root = {0};
    if ((err = ek_morph_storage_find_root(st, j, probe, r, &root)))
        return err;
    const char *found = root.windows ? "windows" : "linux";
    ek_morph_event(r, "INFO", "the guest's root is %s%s%s (%s)", st->fs[root.fs].dev,
                   root.subvol ? " subvolume " : "", root.subvol ? root.subvol : "", found);
    if (o->os_type && strcmp(o->os_type, found) != 0)
        ek_morph_event(r, "WARNING", "the source says the guest runs %s, but its disks hold %s",
                       o->os_type, found);
    err = root.windows ? morph_windows(o, st, &root, j, r, os_json)
                       : morph_linux(o, st, &root, j, r, os_json);
    free(root.subvol);
    return err;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: ekman-morph < options.json\n"
                        "Adapts the guest on the disks the options name for KVM; writes JSON "
                        "lines on stdout.\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(022);

    jl_reporter_t jr = {
        .base = {.step = jl_step, .event = jl_event, .change = jl_change},
        .changes = json_object_new_array(),
    };
    ek_morph_report_t *r = &jr.base;
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    _cleanup_(ek_morph_opts_freep) ek_morph_opts_t *o = NULL;
    ek_err_t *err = read_stdin(&text, &len);
    if (!err)
        err = ek_morph_opts_parse(text, len, &o);
    ek_morph_journal_t *j = NULL;
    if (!err && mkdir(o->state_dir, 0700) != 0 && errno != EEXIST)
        err = ek_err_errno(errno, "cannot create the state directory %s", o->state_dir);
    int lock_fd = -1;
    if (!err)
        err = take_lock(o->state_dir, r, &lock_fd);
    if (!err) {
        _cleanup_free_ char *jpath = ek_xasprintf("%s/journal", o->state_dir);
        _cleanup_free_ char *root = ek_xasprintf("%s/root", o->state_dir);
        int n = ek_morph_kill_chrooted(root);
        if (n)
            ek_morph_event(r, "WARNING", "stopped %d programs a previous run left in the guest", n);
        err = ek_morph_journal_open(jpath, &ek_morph_mounter_real, r, &j);
    }
    json_object *os_json = NULL;
    if (!err)
        err = morph(o, j, r, &os_json);
    if (j) {
        ek_morph_step(r, "Unmounting the guest's filesystems");
        _cleanup_free_ char *root = ek_xasprintf("%s/root", o->state_dir);
        int n = ek_morph_kill_chrooted(root);
        if (n)
            ek_morph_event(r, "INFO", "stopped %d programs still running in the guest", n);
        ek_err_t *uerr = ek_morph_journal_unwind(j);
        if (uerr && err) {
            ek_morph_event(r, "ERROR", "%s", uerr->message);
            ek_err_free(uerr);
        } else if (uerr) {
            err = uerr;
        }
        ek_morph_journal_close(j);
    }
    int rc = 0;
    if (err) {
        if (ek_morph_canceled && err->code != EK_E_CANCELED)
            err = ek_err_prefix(err, "cancelled");
        json_object *e = json_object_new_object();
        json_object_object_add(e, "message", json_object_new_string(err->message));
        jl_emit("error", e);
        ek_err_free(err);
        if (os_json)
            json_object_put(os_json);
        rc = 1;
    } else {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "os", os_json);
        json_object_object_add(res, "changes", json_object_get(jr.changes));
        jl_emit("result", res);
    }
    json_object_put(jr.changes);
    if (lock_fd >= 0)
        close(lock_fd); /* the next run may start */
    return rc;
}
