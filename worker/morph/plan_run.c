/* plan_run.c - executing a morphing plan in the mounted guest (plan.h). */
#include "worker/morph/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"
#include "worker/morph/runner.h"

static void report_changes(ek_morph_report_t *r, const char *change)
{
    if (!change)
        return;
    for (const char *s = change; *s;) {
        const char *end = strchr(s, '\n');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        ek_morph_change(r, "%.*s", (int)n, s);
        s = end ? end + 1 : s + n;
    }
}

/* The worker's resolv.conf in the guest, the guest's kept aside (journaled,
 * so a kill puts it back at the next run). */
static ek_err_t *resolv_in(const char *root, ek_morph_journal_t *j, size_t *mark, bool *done)
{
    if (*done)
        return NULL;
    _cleanup_free_ char *path = ek_morph_path(root, "/etc/resolv.conf");
    _cleanup_free_ char *keep = ek_morph_path(root, "/etc/resolv.conf.ekman-orig");
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    ek_err_t *err = ek_file_read("/etc/resolv.conf", 1 << 20, &text, &len);
    if (err)
        return ek_err_prefix(err, "the worker's DNS configuration");
    struct stat st;
    bool had = lstat(path, &st) == 0;
    *mark = ek_morph_journal_count(j);
    if ((err = ek_morph_journal_file(j, path, had ? keep : "-")))
        return err;
    if (had && rename(path, keep) != 0)
        return ek_err_errno(errno, "cannot move %s aside", path);
    if ((err = ek_file_write(path, text, len, 0644)))
        return err;
    *done = true;
    return NULL;
}

static ek_err_t *copy_in(const char *src, const char *dst)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    ek_err_t *err = ek_file_read(src, (size_t)1 << 31, &data, &len);
    if (err)
        return err;
    for (char *s = strchr(dst + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(dst, 0755);
        *s = '/';
    }
    return ek_file_write(dst, data, len, 0644);
}

static ek_err_t *do_action(const ek_morph_action_t *a, const char *root, ek_morph_report_t *r)
{
    _cleanup_free_ char *path = a->path ? ek_morph_path(root, a->path) : NULL;
    switch (a->kind) {
    case EK_ACT_STEP:
        ek_morph_step(r, "%s", a->path);
        return NULL;
    case EK_ACT_EVENT:
        ek_morph_event(r, a->path, "%s", a->text);
        return NULL;
    case EK_ACT_WRITE: {
        ek_err_t *err = ek_morph_write(root, a->path, a->text, a->mode);
        if (!err)
            chmod(path, a->mode); /* an existing file keeps its mode otherwise */
        return err;
    }
    case EK_ACT_REMOVE: {
        int rc = ek_rmtree(path);
        return rc ? ek_err_errno(rc, "cannot remove %s", path) : NULL;
    }
    case EK_ACT_COPY_IN:
        return copy_in(a->text, path);
    case EK_ACT_RUN: {
        ek_morph_cmd_t cmd = {
            .argv = (const char *const *)a->argv.v,
            .root = root,
            .env = (const char *const *)a->env.v,
            .timeout_s = a->timeout_s,
            .report = r,
        };
        return ek_morph_run(&cmd, NULL);
    }
    }
    return NULL;
}

ek_err_t *ek_morph_plan_run(const ek_morph_plan_t *p, const char *root, ek_morph_journal_t *j,
                            ek_morph_report_t *r)
{
    size_t resolv_mark = 0;
    bool resolv = false;
    int skip_group = 0;
    ek_err_t *err = NULL;
    for (size_t i = 0; i < p->n && !err; i++) {
        const ek_morph_action_t *a = &p->a[i];
        if (ek_morph_canceled) {
            err = ek_err_new(EK_E_CANCELED, "OS morphing was cancelled");
            break;
        }
        if (a->group && a->group == skip_group)
            continue;
        if (a->online && (err = resolv_in(root, j, &resolv_mark, &resolv)))
            break;
        if (a->kind == EK_ACT_RUN) {
            ek_morph_event(r, "INFO", "running in the guest:%s%s%s%s%s", " ", a->argv.v[0],
                           a->argv.n > 1 ? " " : "", a->argv.n > 1 ? a->argv.v[1] : "",
                           a->argv.n > 2 ? " ..." : "");
        }
        ek_err_t *e = do_action(a, root, r);
        if (!e) {
            report_changes(r, a->change);
            continue;
        }
        if (a->on_fail == EK_FAIL_WARN && e->code != EK_E_CANCELED) {
            ek_morph_event(r, "WARNING", "%s (%s)", a->fail_hint ? a->fail_hint : "a step failed",
                           e->message);
            ek_err_free(e);
            if (a->group)
                skip_group = a->group;
            continue;
        }
        err = a->fail_hint ? ek_err_prefix(e, "%s", a->fail_hint) : e;
    }
    if (resolv) {
        ek_err_t *e = ek_morph_journal_unwind_to(j, resolv_mark);
        if (e && !err)
            err = e;
        else
            ek_err_free(e);
    }
    return err;
}
