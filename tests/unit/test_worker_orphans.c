/* test_worker_orphans.c - a worker that starts kills the task processes a
 * killed predecessor left (worker/supervisor.c, issue #18): the whole process
 * group, only while the recorded start time still matches, and waits until
 * they are gone; and removes the private directories they worked in. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/mem.h"
#include "worker/supervisor.h"

/* Field 22 of /proc/PID/stat (start time in ticks). */
static unsigned long long start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    for (int i = 0; i < 20 && p; i++)
        p = strchr(p + 1, ' ');
    assert_non_null(p);
    return strtoull(p + 1, NULL, 10);
}

/* Alive and not a zombie. */
static bool alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[2] != 'Z' && p[2] != 'X';
}

/* A stand-in task process: leader of its own group with a child in it that
 * ignores SIGTERM (what a predecessor's copy tool might be); the grandchild's
 * pid comes back through a pipe. */
static pid_t orphan(pid_t *grandchild)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        pid_t g = fork();
        if (g == 0) {
            signal(SIGTERM, SIG_IGN);
            for (;;)
                pause();
        }
        ssize_t EK_UNUSED w = write(fds[1], &g, sizeof(g));
        for (;;)
            pause();
    }
    setpgid(pid, pid);
    assert_int_equal(read(fds[0], grandchild, sizeof(*grandchild)), (ssize_t)sizeof(*grandchild));
    close(fds[0]);
    close(fds[1]);
    return pid;
}

static char *tmpdir(void)
{
    char *dir = ek_xstrdup("/tmp/ek-orphans.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* A worker that has ended: a child that exited (reaped). */
static void dead_worker(pid_t *pid, unsigned long long *start)
{
    *pid = fork();
    if (*pid == 0) {
        pause();
        _exit(0);
    }
    *start = start_time(*pid);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
}

static void write_file_of(const char *dir, pid_t pid, unsigned long long start, pid_t wpid,
                          unsigned long long wstart)
{
    char *path = ek_xasprintf("%s/%d.pid", dir, (int)pid);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fprintf(f, "%d %llu %d %llu\n", (int)pid, start, (int)wpid, wstart);
    fclose(f);
    free(path);
}

/* A file as the supervisor writes it: with the process's private directory. */
static void write_file_dir(const char *dir, pid_t pid, unsigned long long start, const char *tmp)
{
    pid_t w;
    unsigned long long ws;
    dead_worker(&w, &ws);
    char *path = ek_xasprintf("%s/%d.pid", dir, (int)pid);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fprintf(f, "%d %llu %d %llu %s\n", (int)pid, start, (int)w, ws, tmp);
    fclose(f);
    free(path);
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void write_file(const char *dir, pid_t pid, unsigned long long start)
{
    pid_t w;
    unsigned long long ws;
    dead_worker(&w, &ws);
    write_file_of(dir, pid, start, w, ws);
}

static int files(const char *dir)
{
    char *cmd = ek_xasprintf("ls %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    free(cmd);
    return n;
}

static void test_group_killed(void **state)
{
    (void)state;
    char *dir = tmpdir();
    pid_t g;
    pid_t pid = orphan(&g);
    write_file(dir, pid, start_time(pid));
    assert_true(alive(g));
    int killed = -1;
    ek_err_t *err = ek_supervisor_kill_orphans(dir, 10, &killed);
    assert_null(err);
    assert_int_equal(killed, 1);
    /* both gone when it returns (the leader is our zombie until reaped) */
    assert_false(alive(pid));
    assert_false(alive(g));
    assert_int_equal(files(dir), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    rmdir(dir);
    free(dir);
}

static void test_reused_pid_spared(void **state)
{
    (void)state;
    char *dir = tmpdir();
    pid_t g;
    pid_t pid = orphan(&g);
    /* the recorded start time is not this process's: the pid was reused */
    write_file(dir, pid, start_time(pid) + 12345);
    int killed = -1;
    assert_null(ek_supervisor_kill_orphans(dir, 10, &killed));
    assert_int_equal(killed, 0);
    assert_true(alive(pid));
    assert_true(alive(g));
    assert_int_equal(files(dir), 0);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    rmdir(dir);
    free(dir);
}

static void test_live_worker_spared(void **state)
{
    (void)state;
    char *dir = tmpdir();
    pid_t g;
    pid_t pid = orphan(&g);
    /* its worker (this test) still runs: a task of a live worker sharing
     * state_dir, not an orphan */
    write_file_of(dir, pid, start_time(pid), getpid(), start_time(getpid()));
    int killed = -1;
    assert_null(ek_supervisor_kill_orphans(dir, 10, &killed));
    assert_int_equal(killed, 0);
    assert_true(alive(pid));
    assert_true(alive(g));
    assert_int_equal(files(dir), 1);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char *path = ek_xasprintf("%s/%d.pid", dir, (int)pid);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

static void test_gone_and_garbage(void **state)
{
    (void)state;
    char *dir = tmpdir();
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    unsigned long long st = start_time(pid);
    waitpid(pid, NULL, 0);
    write_file(dir, pid, st); /* long gone */
    char *bad = ek_xasprintf("%s/junk.pid", dir);
    FILE *f = fopen(bad, "we");
    fputs("not a pid\n", f);
    fclose(f);
    free(bad);
    int killed = -1;
    assert_null(ek_supervisor_kill_orphans(dir, 10, &killed));
    assert_int_equal(killed, 0);
    assert_int_equal(files(dir), 0);
    rmdir(dir);
    free(dir);
    /* a directory that does not exist yet is made */
    char *fresh = ek_xasprintf("/tmp/ek-orphans-new.%d", (int)getpid());
    assert_null(ek_supervisor_kill_orphans(fresh, 10, &killed));
    struct stat sb;
    assert_int_equal(stat(fresh, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    rmdir(fresh);
    free(fresh);
}

/* The directory a killed task process worked in goes with it, whatever it
 * holds; a path the supervisor would not have made (another name) stays. */
static void test_private_dir_removed(void **state)
{
    (void)state;
    char *dir = tmpdir();
    char *base = tmpdir();
    char *mine = ek_xasprintf("%s/ekman-task.AbC123", base);
    char *nested = ek_xasprintf("%s/ekman-lv-1-x", mine);
    char *key = ek_xasprintf("%s/key", nested);
    assert_int_equal(mkdir(mine, 0700), 0);
    assert_int_equal(mkdir(nested, 0700), 0);
    FILE *f = fopen(key, "we");
    fputs("secret\n", f);
    fclose(f);
    pid_t g;
    pid_t pid = orphan(&g);
    write_file_dir(dir, pid, start_time(pid), mine);
    /* a dead one whose file names a directory that is not a task directory */
    char *other = ek_xasprintf("%s/precious", base);
    assert_int_equal(mkdir(other, 0700), 0);
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    unsigned long long st = start_time(gone);
    waitpid(gone, NULL, 0);
    write_file_dir(dir, gone, st, other);
    int killed = -1;
    assert_null(ek_supervisor_kill_orphans(dir, 10, &killed));
    assert_int_equal(killed, 1);
    assert_false(exists(mine));
    assert_true(exists(other));
    assert_int_equal(files(dir), 0);
    waitpid(pid, NULL, 0);
    rmdir(other);
    rmdir(base);
    rmdir(dir);
    free(other);
    free(key);
    free(nested);
    free(mine);
    free(base);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_killed),        cmocka_unit_test(test_reused_pid_spared),
        cmocka_unit_test(test_live_worker_spared),  cmocka_unit_test(test_gone_and_garbage),
        cmocka_unit_test(test_private_dir_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
