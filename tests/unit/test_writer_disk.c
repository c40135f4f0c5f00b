/* test_writer_disk.c - how ekman-writer opens target disks (worker/writer/
 * disk.c, issue #17): files it creates are 0600; a symbolic link planted at
 * the target's name is not followed, wherever it points; a link in the path
 * or ".." does not lead out of the --allow-path directory; a directory
 * swapped for a link while disks are being opened never makes one land
 * outside; a FIFO is refused without being opened for real; an --allow-path
 * that names one file opens that file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/log.h"
#include "common/mem.h"
#include "worker/writer/writer.h"

static char top[64];      /* holds allowed/ and outside/ */
static char allowed[128]; /* the --allow-path directory */
static char outside[128];
static char *allow[1];
static ek_writer_opts_t opts;

static int setup(void **state)
{
    (void)state;
    snprintf(top, sizeof(top), "/tmp/ekw-disk.XXXXXX");
    assert_non_null(mkdtemp(top));
    snprintf(allowed, sizeof(allowed), "%s/allowed", top);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    assert_int_equal(mkdir(allowed, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    allow[0] = allowed;
    opts = (ek_writer_opts_t){.allow = allow, .n_allow = 1, .no_direct = true};
    ek_log_set_level(EK_LOG_ERROR);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ek_writer_disk_open of path; the disk is closed again on success. */
static ek_dp_errcode_t try_open(const char *path, uint64_t size, uint32_t flags, char *msg,
                                size_t msglen)
{
    ek_writer_disk_t *d = NULL;
    msg[0] = 0;
    ek_dp_errcode_t rc = ek_writer_disk_open(&opts, path, size, flags, &d, msg, msglen);
    if (rc == EK_DP_OK) {
        assert_non_null(d);
        ek_writer_disk_close(d);
    }
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static bool file_is(const char *path, const char *text)
{
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static void test_created_private(void **state)
{
    (void)state;
    char path[256], msg[512];
    mode_t old = umask(0); /* the mode must come from the writer, not the umask */
    snprintf(path, sizeof(path), "%s/new.img", allowed);
    ek_dp_errcode_t rc =
        try_open(path, 1 << 20, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, msg, sizeof(msg));
    umask(old);
    assert_int_equal(rc, EK_DP_OK);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 1 << 20);
    /* opened again (it exists now) it is the same file, still 0600 */
    assert_int_equal(try_open(path, 1 << 20, EK_DP_OPEN_CREATE, msg, sizeof(msg)), EK_DP_OK);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* A link at the target's name is refused whether it points inside the
 * allowed directory, outside it, or nowhere; nothing it points at changes. */
static void test_planted_link_not_followed(void **state)
{
    (void)state;
    char victim_in[256], victim_out[256], link[256], msg[512];
    snprintf(victim_in, sizeof(victim_in), "%s/other-tenant.img", allowed);
    snprintf(victim_out, sizeof(victim_out), "%s/ekman.conf", outside);
    write_file(victim_in, "another disk");
    write_file(victim_out, "secret");
    const char *targets[] = {victim_in, victim_out, "/nonexistent/ekw-dangling"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(link, sizeof(link), "%s/planted-%zu.img", allowed, i);
        assert_int_equal(symlink(targets[i], link), 0);
        for (int create = 0; create < 2; create++) {
            uint32_t flags = create ? EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE : 0;
            ek_dp_errcode_t rc = try_open(link, 4096, flags, msg, sizeof(msg));
            assert_int_not_equal(rc, EK_DP_OK);
            if (i < 2) { /* an existing target: the refusal names the link */
                assert_int_equal(rc, EK_DP_E_FORBIDDEN);
                assert_non_null(strstr(msg, "symbolic link"));
            }
        }
        struct stat st;
        assert_int_equal(lstat(link, &st), 0);
        assert_true(S_ISLNK(st.st_mode)); /* left as it was */
    }
    assert_true(file_is(victim_in, "another disk"));
    assert_true(file_is(victim_out, "secret"));
    assert_int_equal(access("/nonexistent/ekw-dangling", F_OK), -1);
}

/* A link in the middle of the path, or "..", does not lead out. */
static void test_no_way_out(void **state)
{
    (void)state;
    char link[256], path[256], msg[512];
    snprintf(link, sizeof(link), "%s/sub", allowed);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(path, sizeof(path), "%s/sub/escape.img", allowed);
    assert_int_equal(try_open(path, 4096, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, msg, sizeof(msg)),
                     EK_DP_E_FORBIDDEN);
    snprintf(path, sizeof(path), "%s/escape.img", outside);
    assert_int_equal(access(path, F_OK), -1);

    snprintf(path, sizeof(path), "%s/../outside/escape.img", allowed);
    assert_int_equal(try_open(path, 4096, EK_DP_OPEN_CREATE, msg, sizeof(msg)), EK_DP_E_FORBIDDEN);
    assert_non_null(strstr(msg, ".."));
    snprintf(path, sizeof(path), "%s/escape.img", outside);
    assert_int_equal(access(path, F_OK), -1);

    /* outside every prefix, or a prefix's look-alike */
    snprintf(path, sizeof(path), "%s/x.img", outside);
    assert_int_equal(try_open(path, 4096, EK_DP_OPEN_CREATE, msg, sizeof(msg)), EK_DP_E_FORBIDDEN);
    assert_non_null(strstr(msg, "outside the paths"));
    snprintf(path, sizeof(path), "%s-x/y.img", allowed);
    assert_int_equal(try_open(path, 4096, EK_DP_OPEN_CREATE, msg, sizeof(msg)), EK_DP_E_FORBIDDEN);
    assert_int_equal(try_open("relative.img", 4096, EK_DP_OPEN_CREATE, msg, sizeof(msg)),
                     EK_DP_E_FORBIDDEN);
    /* a real subdirectory is fine */
    snprintf(path, sizeof(path), "%s/real", allowed);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/real/ok.img", allowed);
    assert_int_equal(try_open(path, 4096, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, msg, sizeof(msg)),
                     EK_DP_OK);
}

typedef struct swapper {
    char dir[256], aside[256];
    volatile bool stop;
} swapper_t;

/* Swaps allowed/race between a real directory and a link to outside/. */
static void *swap_thread(void *arg)
{
    swapper_t *s = arg;
    while (!s->stop) {
        rename(s->dir, s->aside);
        symlink(outside, s->dir);
        unlink(s->dir);
        rename(s->aside, s->dir);
    }
    return NULL;
}

/* What a resolved-then-opened path loses: here the name is resolved and
 * opened in one step, so however the directory is swapped, no disk is ever
 * created outside. */
static void test_swap_race(void **state)
{
    (void)state;
    swapper_t s = {.stop = false};
    snprintf(s.dir, sizeof(s.dir), "%s/race", allowed);
    snprintf(s.aside, sizeof(s.aside), "%s/race.aside", allowed);
    assert_int_equal(mkdir(s.dir, 0700), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, swap_thread, &s), 0);
    char path[256], msg[512];
    int opened = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0;; i++) {
        snprintf(path, sizeof(path), "%s/race/d%d.img", allowed, i % 64);
        if (try_open(path, 4096, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, msg, sizeof(msg)) ==
            EK_DP_OK)
            opened++;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= 2 && i > 2000)
            break;
    }
    s.stop = true;
    pthread_join(th, NULL);
    for (int i = 0; i < 64; i++) {
        snprintf(path, sizeof(path), "%s/d%d.img", outside, i);
        assert_int_equal(access(path, F_OK), -1);
    }
    assert_true(opened > 0); /* the swap left room for real opens too */
}

static void test_fifo_refused(void **state)
{
    (void)state;
    char path[256], msg[512];
    snprintf(path, sizeof(path), "%s/fifo", allowed);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(try_open(path, 0, 0, msg, sizeof(msg)), EK_DP_E_FORBIDDEN);
    assert_non_null(strstr(msg, "neither a block device nor a regular file"));
}

/* --allow-path naming one disk: that disk opens, its neighbours do not. */
static void test_allow_one_file(void **state)
{
    (void)state;
    char one[256], other[256], msg[512];
    snprintf(one, sizeof(one), "%s/one.img", allowed);
    snprintf(other, sizeof(other), "%s/two.img", allowed);
    write_file(one, "1234");
    write_file(other, "5678");
    char *saved = allow[0];
    allow[0] = one;
    assert_int_equal(try_open(one, 4, 0, msg, sizeof(msg)), EK_DP_OK);
    assert_int_equal(try_open(other, 4, 0, msg, sizeof(msg)), EK_DP_E_FORBIDDEN);
    allow[0] = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_created_private), cmocka_unit_test(test_planted_link_not_followed),
        cmocka_unit_test(test_no_way_out),      cmocka_unit_test(test_swap_race),
        cmocka_unit_test(test_fifo_refused),    cmocka_unit_test(test_allow_one_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
