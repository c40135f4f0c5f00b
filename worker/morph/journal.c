/* journal.c - the undo journal of mounts and activations (journal.h).
 *
 * File format: one entry per line, fields separated by tabs, fields escaped
 * (\t, \n, \\):  mount<TAB>target<TAB>src   vg<TAB>uuid<TAB>filter
 *                parts<TAB>disk              file<TAB>path<TAB>backup
 *                loop<TAB>dev<TAB>offset */
#include "worker/morph/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/morph/runner.h"

typedef struct entry {
    char *kind, *a, *b;
} entry_t;

struct ek_morph_journal {
    char *path;
    const ek_morph_mounter_t *m;
    ek_morph_report_t *r;
    entry_t *e;
    size_t n, alloc;
};

static void escape(ek_strbuf_t *sb, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\t')
            ek_strbuf_adds(sb, "\\t");
        else if (*s == '\n')
            ek_strbuf_adds(sb, "\\n");
        else if (*s == '\\')
            ek_strbuf_adds(sb, "\\\\");
        else
            ek_strbuf_addch(sb, *s);
    }
}

static char *unescape(const char *s, size_t len)
{
    char *out = ek_xmalloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            i++;
            *o++ = s[i] == 't' ? '\t' : s[i] == 'n' ? '\n' : s[i];
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Rewrites the whole file (small: tens of entries) and fsyncs it. */
static ek_err_t *save(ek_morph_journal_t *j)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (size_t i = 0; i < j->n; i++) {
        escape(&sb, j->e[i].kind);
        ek_strbuf_addch(&sb, '\t');
        escape(&sb, j->e[i].a);
        ek_strbuf_addch(&sb, '\t');
        escape(&sb, j->e[i].b);
        ek_strbuf_addch(&sb, '\n');
    }
    _cleanup_free_ char *tmp = ek_xasprintf("%s.new", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ek_err_t *err = NULL;
    if (fd < 0) {
        err = ek_err_errno(errno, "cannot write the journal %s", tmp);
    } else {
        if (write(fd, sb.buf, sb.len) != (ssize_t)sb.len || fsync(fd) != 0)
            err = ek_err_errno(errno, "cannot write the journal %s", tmp);
        close(fd);
        if (!err && rename(tmp, j->path) != 0)
            err = ek_err_errno(errno, "cannot write the journal %s", j->path);
    }
    ek_strbuf_release(&sb);
    return err;
}

static ek_err_t *add(ek_morph_journal_t *j, const char *kind, const char *a, const char *b)
{
    if (j->n == j->alloc) {
        j->alloc = j->alloc ? j->alloc * 2 : 16;
        j->e = ek_xrealloc(j->e, j->alloc * sizeof(entry_t));
    }
    j->e[j->n++] = (entry_t){ek_xstrdup(kind), ek_xstrdup(a), ek_xstrdup(b ? b : "")};
    ek_err_t *err = save(j);
    if (err) {
        j->n--;
        free(j->e[j->n].kind);
        free(j->e[j->n].a);
        free(j->e[j->n].b);
    }
    return err;
}

static void drop_last(ek_morph_journal_t *j)
{
    j->n--;
    free(j->e[j->n].kind);
    free(j->e[j->n].a);
    free(j->e[j->n].b);
}

static ek_err_t *undo(ek_morph_journal_t *j, const entry_t *e)
{
    const ek_morph_mounter_t *m = j->m;
    if (strcmp(e->kind, "mount") == 0) {
        int rc = m->umount(m->ud, e->a);
        if (rc == 0 || rc == -EINVAL || rc == -ENOENT)
            return NULL;
        return ek_err_errno(-rc, "cannot unmount %s", e->a);
    }
    if (strcmp(e->kind, "vg") == 0)
        return m->vg_deactivate(m->ud, e->a, e->b);
    if (strcmp(e->kind, "parts") == 0)
        return m->parts_del(m->ud, e->a);
    if (strcmp(e->kind, "loop") == 0)
        return m->loop_del(m->ud, e->a, strtoull(e->b, NULL, 10));
    if (strcmp(e->kind, "file") == 0) {
        if (strcmp(e->b, "-") == 0) {
            if (unlink(e->a) != 0 && errno != ENOENT)
                return ek_err_errno(errno, "cannot remove %s", e->a);
            return NULL;
        }
        if (rename(e->b, e->a) != 0 && errno != ENOENT)
            return ek_err_errno(errno, "cannot put %s back from %s", e->a, e->b);
        return NULL;
    }
    return ek_err_new(EK_E_INTERNAL, "journal %s: unknown entry \"%s\"", j->path, e->kind);
}

ek_err_t *ek_morph_journal_unwind_to(ek_morph_journal_t *j, size_t keep)
{
    ek_strbuf_t failed = EK_STRBUF_INIT;
    /* entries whose undo failed are kept, in their order */
    entry_t *kept = ek_xcalloc(j->n + 1, sizeof(entry_t));
    size_t n_kept = 0;
    while (j->n > keep) {
        entry_t *e = &j->e[j->n - 1];
        ek_err_t *err = undo(j, e);
        if (err) {
            ek_morph_event(j->r, "ERROR", "%s", err->message);
            ek_strbuf_addf(&failed, "%s%s", failed.len ? "; " : "", err->message);
            ek_err_free(err);
            kept[n_kept++] = (entry_t){EK_STEAL(e->kind), EK_STEAL(e->a), EK_STEAL(e->b)};
        }
        drop_last(j);
    }
    for (size_t i = n_kept; i > 0; i--) {
        if (j->n == j->alloc) {
            j->alloc = j->alloc ? j->alloc * 2 : 16;
            j->e = ek_xrealloc(j->e, j->alloc * sizeof(entry_t));
        }
        j->e[j->n++] = kept[i - 1];
    }
    free(kept);
    ek_err_t *err = save(j);
    if (failed.len) {
        ek_err_free(err);
        err = ek_err_new(EK_E_IO,
                         "could not undo everything (%s); the journal %s keeps what is left "
                         "and the next run of ekman-morph tries again",
                         failed.buf, j->path);
    }
    ek_strbuf_release(&failed);
    return err;
}

ek_err_t *ek_morph_journal_unwind(ek_morph_journal_t *j)
{
    ek_err_t *err = ek_morph_journal_unwind_to(j, 0);
    if (!err && j->n == 0)
        unlink(j->path);
    return err;
}

size_t ek_morph_journal_count(const ek_morph_journal_t *j)
{
    return j->n;
}

void ek_morph_journal_close(ek_morph_journal_t *j)
{
    if (!j)
        return;
    while (j->n)
        drop_last(j);
    free(j->e);
    free(j->path);
    free(j);
}

static ek_err_t *load(ek_morph_journal_t *j)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (access(j->path, F_OK) != 0)
        return NULL;
    ek_err_t *err = ek_file_read(j->path, 1 << 20, &text, &len);
    if (err)
        return err;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        char *f[3] = {0};
        size_t nf = 0, start = 0;
        for (size_t i = 0; i <= ll && nf < 3; i++) {
            if (i == ll || (line[i] == '\t' && (i == 0 || line[i - 1] != '\\'))) {
                f[nf++] = unescape(line + start, i - start);
                start = i + 1;
            }
        }
        if (nf == 3) {
            if (j->n == j->alloc) {
                j->alloc = j->alloc ? j->alloc * 2 : 16;
                j->e = ek_xrealloc(j->e, j->alloc * sizeof(entry_t));
            }
            j->e[j->n++] = (entry_t){f[0], f[1], f[2]};
        } else if (ll) {
            for (size_t i = 0; i < nf; i++)
                free(f[i]);
            return ek_err_new(EK_E_INVALID, "journal %s: malformed line \"%.*s\"", j->path, (int)ll,
                              line);
        }
        line = end ? end + 1 : line + ll;
    }
    return NULL;
}

ek_err_t *ek_morph_journal_open(const char *path, const ek_morph_mounter_t *m, ek_morph_report_t *r,
                                ek_morph_journal_t **out)
{
    ek_morph_journal_t *j = ek_xcalloc(1, sizeof(*j));
    j->path = ek_xstrdup(path);
    j->m = m;
    j->r = r;
    ek_err_t *err = load(j);
    if (!err && j->n) {
        ek_morph_event(r, "WARNING",
                       "a previous run of ekman-morph stopped without cleaning up; undoing its "
                       "%zu mounts and activations first",
                       j->n);
        err = ek_morph_journal_unwind(j);
        if (err)
            err = ek_err_prefix(err, "cleaning up after the previous run");
    }
    if (!err)
        err = save(j);
    if (err) {
        ek_morph_journal_close(j);
        return err;
    }
    *out = j;
    return NULL;
}

ek_err_t *ek_morph_journal_mount(ek_morph_journal_t *j, const char *src, const char *target,
                                 const char *fstype, unsigned long flags, const char *data)
{
    ek_err_t *err = add(j, "mount", target, src);
    if (err)
        return err;
    int rc = j->m->mount(j->m->ud, src, target, fstype, fstype ? flags : flags | MS_BIND, data);
    if (rc != 0) {
        drop_last(j);
        ek_err_t *e2 = save(j);
        ek_err_free(e2);
        return ek_err_errno(-rc, "cannot mount %s on %s%s%s", src, target, fstype ? " as " : "",
                            fstype ? fstype : "");
    }
    return NULL;
}

ek_err_t *ek_morph_journal_vg_activate(ek_morph_journal_t *j, const char *vg_uuid,
                                       const char *filter)
{
    ek_err_t *err = add(j, "vg", vg_uuid, filter);
    if (err)
        return err;
    /* a failed activation may have activated some LVs: the entry stays */
    return j->m->vg_activate(j->m->ud, vg_uuid, filter);
}

ek_err_t *ek_morph_journal_parts_add(ek_morph_journal_t *j, const char *disk)
{
    ek_err_t *err = add(j, "parts", disk, "");
    if (err)
        return err;
    return j->m->parts_add(j->m->ud, disk);
}

ek_err_t *ek_morph_journal_loop_add(ek_morph_journal_t *j, const char *dev,
                                    unsigned long long offset, unsigned long long size, char **loop)
{
    char off[32];
    snprintf(off, sizeof(off), "%llu", offset);
    ek_err_t *err = add(j, "loop", dev, off);
    if (err)
        return err;
    return j->m->loop_add(j->m->ud, dev, offset, size, loop);
}

ek_err_t *ek_morph_journal_file(ek_morph_journal_t *j, const char *path, const char *backup)
{
    return add(j, "file", path, backup);
}

/* ---- the real mounter ---- */

static int real_mount(void *ud, const char *src, const char *target, const char *fstype,
                      unsigned long flags, const char *data)
{
    (void)ud;
    if (fstype && strcmp(fstype, "ntfs-3g") == 0) {
        /* FUSE: the ntfs-3g program mounts; /dev/fuse appears once its
         * module is loaded (nothing loads it on demand in the worker image) */
        if (access("/dev/fuse", F_OK) != 0) {
            const char *mp[] = {"modprobe", "fuse", NULL};
            ek_err_free(ek_morph_run_host(mp, NULL));
        }
        const char *argv[] = {"ntfs-3g", "-o", data && *data ? data : "rw", src, target, NULL};
        ek_err_t *err = ek_morph_run_host(argv, NULL);
        if (err) {
            ek_err_free(err);
            return -EIO;
        }
        return 0;
    }
    return mount(src, target, fstype, flags, data) == 0 ? 0 : -errno;
}

static int real_umount(void *ud, const char *target)
{
    (void)ud;
    if (umount2(target, 0) == 0)
        return 0;
    int e = errno;
    if (e == EBUSY) {
        /* a process still holds it: detach now, the kernel frees it when it
         * lets go; the journal's job (nothing left mounted) is done */
        sync();
        if (umount2(target, MNT_DETACH) == 0)
            return 0;
        e = errno;
    }
    return -e;
}

static ek_err_t *lvm_vgchange(const char *how, const char *uuid, const char *filter)
{
    _cleanup_free_ char *sel = ek_xasprintf("vg_uuid=%s", uuid);
    _cleanup_free_ char *config = ek_xasprintf(
        "devices{filter=%s use_devicesfile=0} activation{udev_sync=0 udev_rules=0}", filter);
    const char *argv[] = {"lvm", "vgchange", how, "--select", sel, "--config", config, NULL};
    ek_err_t *err = ek_morph_run_host(argv, NULL);
    if (err)
        return ek_err_prefix(err, "volume group %s", uuid);
    if (strcmp(how, "-ay") == 0) {
        /* vgmknodes takes no --select: the filter shows it only the guest's VGs */
        const char *mk[] = {"lvm", "vgmknodes", "--config", config, NULL};
        err = ek_morph_run_host(mk, NULL);
    }
    return err;
}

static ek_err_t *real_vg_activate(void *ud, const char *uuid, const char *filter)
{
    (void)ud;
    return lvm_vgchange("-ay", uuid, filter);
}

static ek_err_t *real_vg_deactivate(void *ud, const char *uuid, const char *filter)
{
    (void)ud;
    _cleanup_free_ char *config = ek_xasprintf("devices{filter=%s use_devicesfile=0}", filter);
    _cleanup_free_ char *out = NULL;
    const char *vgs[] = {"lvm", "vgs", "--noheadings", "-o", "vg_uuid", "--config", config, NULL};
    ek_err_t *err = ek_morph_run_host(vgs, &out);
    if (err || !strstr(out, uuid)) {
        /* the disks or the VG are gone: nothing is active */
        ek_err_free(err);
        return NULL;
    }
    return lvm_vgchange("-an", uuid, filter);
}

static ek_err_t *real_loop_add(void *ud, const char *dev, unsigned long long offset,
                               unsigned long long size, char **loop)
{
    (void)ud;
    char off[32], sz[32];
    snprintf(off, sizeof(off), "%llu", offset);
    snprintf(sz, sizeof(sz), "%llu", size);
    const char *argv[] = {"losetup", "-f", "--show", "-o", off, "--sizelimit", sz, dev, NULL};
    _cleanup_free_ char *out = NULL;
    ek_err_t *err = ek_morph_run_host(argv, &out);
    if (err)
        return err;
    out[strcspn(out, "\n")] = '\0';
    *loop = EK_STEAL(out);
    return NULL;
}

static ek_err_t *real_loop_del(void *ud, const char *dev, unsigned long long offset)
{
    (void)ud;
    char off[32];
    snprintf(off, sizeof(off), "%llu", offset);
    const char *argv[] = {"losetup", "-n", "-O", "NAME", "-j", dev, "-o", off, NULL};
    _cleanup_free_ char *out = NULL;
    ek_err_t *err = ek_morph_run_host(argv, &out);
    if (err) {
        ek_err_free(err); /* dev gone: no loop over it */
        return NULL;
    }
    for (char *s = out, *end; s && *s; s = end ? end + 1 : NULL) {
        end = strchr(s, '\n');
        if (end)
            *end = '\0';
        while (*s == ' ')
            s++;
        if (!*s)
            continue;
        const char *del[] = {"losetup", "-d", s, NULL};
        if ((err = ek_morph_run_host(del, NULL)))
            return err;
    }
    return NULL;
}

static ek_err_t *real_parts_add(void *ud, const char *disk)
{
    (void)ud;
    const char *argv[] = {"partx", "-a", disk, NULL};
    return ek_morph_run_host(argv, NULL);
}

static ek_err_t *real_parts_del(void *ud, const char *disk)
{
    (void)ud;
    if (access(disk, F_OK) != 0)
        return NULL;
    const char *argv[] = {"partx", "-d", disk, NULL};
    return ek_morph_run_host(argv, NULL);
}

const ek_morph_mounter_t ek_morph_mounter_real = {
    .mount = real_mount,
    .umount = real_umount,
    .vg_activate = real_vg_activate,
    .vg_deactivate = real_vg_deactivate,
    .loop_add = real_loop_add,
    .loop_del = real_loop_del,
    .parts_add = real_parts_add,
    .parts_del = real_parts_del,
};
