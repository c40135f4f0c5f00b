/* test_morph_journal.c - the undo journal of mounts and activations, with a
 * fake mounter that records its calls and fails on demand (no root needed);
 * and the command runner (exit status, timeout, output as events). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include <errno.h>
#include <cmocka.h>
#include "common/fsutil.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/morph/journal.h"
#include "worker/morph/runner.h"

typedef struct fake {
    ek_strbuf_t calls;
    int fail_at; /* the n-th call (1-based) fails; 0: none */
    int n;
    const char *fail_umount; /* target whose umount fails with EBUSY */
} fake_t;

static bool fails(fake_t *f)
{
    return ++f->n == f->fail_at;
}

static int f_mount(void *ud, const char *src, const char *target, const char *fstype,
                   unsigned long flags, const char *data)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "mount %s %s %s%s%s\n", src, target, fstype ? fstype : "-",
                   (flags & MS_BIND) ? " bind" : "", data && *data ? " data" : "");
    return fails(f) ? -EIO : 0;
}

static int f_umount(void *ud, const char *target)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "umount %s\n", target);
    if (f->fail_umount && !strcmp(target, f->fail_umount))
        return -EBUSY;
    return 0;
}

static ek_err_t *f_vg_on(void *ud, const char *uuid, const char *filter)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "vg-on %s %s\n", uuid, filter);
    return fails(f) ? ek_err_new(EK_E_IO, "vgchange failed") : NULL;
}

static ek_err_t *f_vg_off(void *ud, const char *uuid, const char *filter)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "vg-off %s %s\n", uuid, filter);
    return NULL;
}

static ek_err_t *f_parts_add(void *ud, const char *disk)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "partx-a %s\n", disk);
    return fails(f) ? ek_err_new(EK_E_IO, "partx failed") : NULL;
}

static ek_err_t *f_parts_del(void *ud, const char *disk)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "partx-d %s\n", disk);
    return NULL;
}

static ek_err_t *f_loop_add(void *ud, const char *dev, unsigned long long off,
                            unsigned long long size, char **loop)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "loop-add %s %llu %llu\n", dev, off, size);
    if (fails(f))
        return ek_err_new(EK_E_IO, "losetup failed");
    *loop = ek_xstrdup("/dev/loop9");
    return NULL;
}

static ek_err_t *f_loop_del(void *ud, const char *dev, unsigned long long off)
{
    fake_t *f = ud;
    ek_strbuf_addf(&f->calls, "loop-del %s %llu\n", dev, off);
    return NULL;
}

static ek_morph_mounter_t mounter(fake_t *f)
{
    return (ek_morph_mounter_t){.mount = f_mount,
                                .umount = f_umount,
                                .vg_activate = f_vg_on,
                                .vg_deactivate = f_vg_off,
                                .loop_add = f_loop_add,
                                .loop_del = f_loop_del,
                                .parts_add = f_parts_add,
                                .parts_del = f_parts_del,
                                .ud = f};
}

typedef struct events {
    ek_morph_report_t base;
    ek_strbuf_t text;
} events_t;

static void ev(ek_morph_report_t *r, const char *level, const char *message)
{
    events_t *e = (events_t *)r;
    ek_strbuf_addf(&e->text, "%s: %s\n", level, message);
}

static char *tmpdir(void)
{
    char *dir = NULL;
    ek_err_t *err = ek_private_dir("/tmp", "ek-morph-journal", &dir);
    assert_null(err);
    return dir;
}

/* The setup the engine does: partitions, a VG, root, /boot, a bind. */
static ek_err_t *setup(ek_morph_journal_t *j)
{
    ek_err_t *err;
    if ((err = ek_morph_journal_parts_add(j, "/dev/loop7")) ||
        (err = ek_morph_journal_vg_activate(j, "UUID-1", "[\"a|^/dev/loop7p2$|\",\"r|.*|\"]")) ||
        (err = ek_morph_journal_mount(j, "/dev/mapper/vg-root", "/s/root", "ext4", 0, "")) ||
        (err = ek_morph_journal_mount(j, "/dev/loop7p1", "/s/root/boot", "ext4", 0, "")) ||
        (err = ek_morph_journal_mount(j, "/dev", "/s/root/dev", NULL, MS_BIND, NULL)))
        return err;
    return NULL;
}

static const char *const undo_all = "umount /s/root/dev\n"
                                    "umount /s/root/boot\n"
                                    "umount /s/root\n"
                                    "vg-off UUID-1 [\"a|^/dev/loop7p2$|\",\"r|.*|\"]\n"
                                    "partx-d /dev/loop7\n";

static void test_unwind_in_reverse(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *path = ek_xasprintf("%s/journal", dir);
    fake_t f = {.calls = EK_STRBUF_INIT};
    ek_morph_mounter_t m = mounter(&f);
    ek_morph_journal_t *j = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_null(setup(j));
    assert_int_equal(ek_morph_journal_count(j), 5);
    assert_string_equal(f.calls.buf, "partx-a /dev/loop7\n"
                                     "vg-on UUID-1 [\"a|^/dev/loop7p2$|\",\"r|.*|\"]\n"
                                     "mount /dev/mapper/vg-root /s/root ext4\n"
                                     "mount /dev/loop7p1 /s/root/boot ext4\n"
                                     "mount /dev /s/root/dev - bind\n");
    /* the file says it all, before unwinding */
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    assert_null(ek_file_read(path, 4096, &text, &len));
    assert_non_null(strstr(text, "mount\t/s/root/boot\t/dev/loop7p1\n"));
    ek_strbuf_reset(&f.calls);
    assert_null(ek_morph_journal_unwind(j));
    assert_string_equal(f.calls.buf, undo_all);
    assert_int_equal(access(path, F_OK), -1); /* removed */
    ek_morph_journal_close(j);
    ek_strbuf_release(&f.calls);
    ek_rmtree(dir);
}

static void test_failure_midway(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *path = ek_xasprintf("%s/journal", dir);
    /* each of the 5 actions fails in turn: what was done before it is undone,
     * newest first, and a failed mount leaves no entry */
    for (int at = 1; at <= 5; at++) {
        fake_t f = {.calls = EK_STRBUF_INIT, .fail_at = at};
        ek_morph_mounter_t m = mounter(&f);
        ek_morph_journal_t *j = NULL;
        assert_null(ek_morph_journal_open(path, &m, NULL, &j));
        ek_err_t *err = setup(j);
        assert_non_null(err);
        ek_err_free(err);
        ek_strbuf_reset(&f.calls);
        assert_null(ek_morph_journal_unwind(j));
        /* the undo list is the tail of undo_all: entries 1..at-1 (and the
         * failed activation/partx, which stay: they may have half-happened) */
        size_t kept = (size_t)(at <= 2 ? at : at - 1);
        const char *want = undo_all;
        for (size_t skip = 5 - kept; skip > 0; skip--)
            want = strchr(want, '\n') + 1;
        assert_string_equal(f.calls.buf, want);
        ek_morph_journal_close(j);
        ek_strbuf_release(&f.calls);
        assert_int_equal(access(path, F_OK), -1);
    }
    ek_rmtree(dir);
}

static void test_killed_run_is_undone_by_the_next(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *path = ek_xasprintf("%s/journal", dir);
    fake_t f = {.calls = EK_STRBUF_INIT};
    ek_morph_mounter_t m = mounter(&f);
    ek_morph_journal_t *j = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_null(setup(j));
    char *loop = NULL;
    assert_null(ek_morph_journal_loop_add(j, "/dev/loop7p3", 1048576, 4194304, &loop));
    assert_string_equal(loop, "/dev/loop9");
    free(loop);
    /* killed: no unwind, the memory goes away, the file stays */
    ek_morph_journal_close(j);
    ek_strbuf_reset(&f.calls);
    events_t e = {.base = {.event = ev}, .text = EK_STRBUF_INIT};
    assert_null(ek_morph_journal_open(path, &m, &e.base, &j));
    assert_non_null(strstr(f.calls.buf, "loop-del /dev/loop7p3 1048576\n"));
    assert_string_equal(strchr(f.calls.buf, '\n') + 1, undo_all);
    assert_non_null(strstr(e.text.buf, "WARNING: a previous run of ekman-morph stopped"));
    assert_int_equal(ek_morph_journal_count(j), 0);
    assert_null(ek_morph_journal_unwind(j));
    ek_morph_journal_close(j);
    ek_strbuf_release(&f.calls);
    ek_strbuf_release(&e.text);
    ek_rmtree(dir);
}

static void test_undo_failure_is_kept(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *path = ek_xasprintf("%s/journal", dir);
    fake_t f = {.calls = EK_STRBUF_INIT, .fail_umount = "/s/root/boot"};
    ek_morph_mounter_t m = mounter(&f);
    ek_morph_journal_t *j = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_null(setup(j));
    ek_strbuf_reset(&f.calls);
    ek_err_t *err = ek_morph_journal_unwind(j);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "cannot unmount /s/root/boot"));
    assert_non_null(strstr(err->message, "the next run of ekman-morph tries again"));
    ek_err_free(err);
    /* everything else was still undone */
    assert_string_equal(f.calls.buf, undo_all);
    assert_int_equal(ek_morph_journal_count(j), 1);
    ek_morph_journal_close(j);
    /* the next run finds the one entry and, the mount now free, undoes it */
    f.fail_umount = NULL;
    ek_strbuf_reset(&f.calls);
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_string_equal(f.calls.buf, "umount /s/root/boot\n");
    ek_morph_journal_close(j);
    /* a next run that still cannot undo it refuses to start */
    ek_morph_journal_t *j2 = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j2));
    assert_null(ek_morph_journal_mount(j2, "/dev/x", "/busy", "ext4", 0, ""));
    ek_morph_journal_close(j2);
    f.fail_umount = "/busy";
    err = ek_morph_journal_open(path, &m, NULL, &j2);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "cleaning up after the previous run"));
    ek_err_free(err);
    f.fail_umount = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j2));
    assert_null(ek_morph_journal_unwind(j2));
    ek_morph_journal_close(j2);
    ek_strbuf_release(&f.calls);
    ek_rmtree(dir);
}

static void test_unwind_to_and_files(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *path = ek_xasprintf("%s/journal", dir);
    _cleanup_free_ char *conf = ek_xasprintf("%s/resolv.conf", dir);
    _cleanup_free_ char *keep = ek_xasprintf("%s/resolv.conf.orig", dir);
    _cleanup_free_ char *newf = ek_xasprintf("%s/new\tfile", dir); /* a tab in a name */
    fake_t f = {.calls = EK_STRBUF_INIT};
    ek_morph_mounter_t m = mounter(&f);
    ek_morph_journal_t *j = NULL;
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_null(ek_morph_journal_mount(j, "/dev/a", "/root", "xfs", MS_RDONLY, "norecovery"));
    size_t mark = ek_morph_journal_count(j);
    /* a replaced file and a new one */
    assert_null(ek_file_write(conf, "guest\n", 6, 0644));
    assert_null(ek_morph_journal_file(j, conf, keep));
    assert_int_equal(rename(conf, keep), 0);
    assert_null(ek_file_write(conf, "worker\n", 7, 0644));
    assert_null(ek_morph_journal_file(j, newf, "-"));
    assert_null(ek_file_write(newf, "x", 1, 0644));
    /* a crash here: the next open puts both back, via the escaped file */
    ek_morph_journal_close(j);
    ek_strbuf_reset(&f.calls);
    assert_null(ek_morph_journal_open(path, &m, NULL, &j));
    assert_string_equal(f.calls.buf, "umount /root\n");
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    assert_null(ek_file_read(conf, 100, &text, &len));
    assert_string_equal(text, "guest\n");
    assert_int_equal(access(newf, F_OK), -1);
    assert_int_equal(access(keep, F_OK), -1);
    (void)mark;
    /* unwind_to keeps the older entries */
    assert_null(ek_morph_journal_mount(j, "/dev/a", "/root", "xfs", 0, ""));
    mark = ek_morph_journal_count(j);
    assert_null(ek_morph_journal_mount(j, "/dev/b", "/probe", "ext4", MS_RDONLY, "noload"));
    ek_strbuf_reset(&f.calls);
    assert_null(ek_morph_journal_unwind_to(j, mark));
    assert_string_equal(f.calls.buf, "umount /probe\n");
    assert_int_equal(ek_morph_journal_count(j), 1);
    assert_null(ek_morph_journal_unwind(j));
    ek_morph_journal_close(j);
    ek_strbuf_release(&f.calls);
    ek_rmtree(dir);
}

static void test_runner(void **state)
{
    (void)state;
    char *out = NULL;
    const char *ok[] = {"sh", "-c", "echo one; echo two >&2", NULL};
    events_t e = {.base = {.event = ev}, .text = EK_STRBUF_INIT};
    ek_morph_cmd_t cmd = {.argv = ok, .timeout_s = 10, .report = &e.base};
    assert_null(ek_morph_run(&cmd, &out));
    assert_string_equal(out, "one\ntwo\n");
    assert_string_equal(e.text.buf, "INFO: sh: one\nINFO: sh: two\n");
    free(out);
    const char *bad[] = {"sh", "-c", "echo it broke; exit 3", NULL};
    ek_err_t *err = ek_morph_run_host(bad, NULL);
    assert_non_null(err);
    assert_string_equal(err->message, "sh failed with exit status 3: it broke");
    ek_err_free(err);
    const char *slow[] = {"sh", "-c", "echo waiting; sleep 30", NULL};
    ek_morph_cmd_t c2 = {.argv = slow, .timeout_s = 1};
    err = ek_morph_run(&c2, NULL);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_TIMEOUT);
    assert_string_equal(err->message, "sh did not finish within 1 s: waiting");
    ek_err_free(err);
    const char *missing[] = {"ekman-no-such-program", NULL};
    err = ek_morph_run_host(missing, NULL);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "not installed"));
    ek_err_free(err);
    ek_morph_canceled = 1;
    err = ek_morph_run(&c2, NULL);
    ek_morph_canceled = 0;
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_CANCELED);
    ek_err_free(err);
    ek_strbuf_release(&e.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwind_in_reverse),
        cmocka_unit_test(test_failure_midway),
        cmocka_unit_test(test_killed_run_is_undone_by_the_next),
        cmocka_unit_test(test_undo_failure_is_kept),
        cmocka_unit_test(test_unwind_to_and_files),
        cmocka_unit_test(test_runner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
