/* supervisor.c - task processes of the worker and their reports, and the
 * task process files that let the next worker instance on this host find and
 * kill what a killed worker left behind (docs/reliability.md). */
#include "worker/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/amqp.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "common/uuid.h"
#include "proto/envelope.h"
#include "proto/messages.h"

#define MAX_JOBS 1024
/* a task process's private directory in [worker] tmp_dir: only directories
 * with this name are ever removed on the word of a task process file */
#define TASK_DIR_PREFIX "ekman-task"

struct job {
    bool query;
    char task_id[EK_UUID_STRLEN + 1];
    char attempt_id[EK_UUID_STRLEN + 1];
    char *reply_to, *correlation_id; /* queries */
    time_t deadline;                 /* queries: killed after it */
    pid_t pid;
    int fd;               /* its standard output, -1 once at EOF */
    ek_strbuf_t buf;      /* a partial line */
    json_object *outcome; /* the "result" or "error" line */
    bool cancel, force;
    bool drained;  /* killed by us: the worker stopped and it did not end in time */
    bool gone;     /* no process: a cancel of an attempt that runs nowhere, reported as such */
    char *pidfile; /* <proc_dir>/<pid>.pid while the process may live */
    char *tmpdir;  /* its private temporary directory (TASK_DIR_PREFIX), removed when it ends */
};

struct ek_supervisor {
    const ek_config_t *cfg;
    char **argv;
    char *proc_dir; /* one file per live task process (ek_supervisor_proc_dir) */
    pthread_mutex_t lock;
    struct job *jobs[MAX_JOBS];
    int n_jobs;
    int wake[2];
    bool stopping;
    pthread_t reporter;
    ek_amqp_t *pub;
};

static void wake(ek_supervisor_t *s)
{
    ssize_t EK_UNUSED n = write(s->wake[1], "x", 1);
}

/* ---- sending, with reconnects: a report is never dropped while the worker lives ---- */

static void publish(ek_supervisor_t *s, const char *queue, ek_envelope_t *env)
{
    char *wire = ek_envelope_encode(env);
    for (int attempt = 0;; attempt++) {
        ek_err_t *err = s->pub ? NULL : ek_amqp_connect_config(s->cfg, &s->pub);
        if (!err)
            err = ek_amqp_publish(s->pub, queue, wire, NULL, env->correlation_id);
        if (!err)
            break;
        bool gone_queue = err->code == EK_E_NOTFOUND;
        ek_log_kv(EK_LOG_WARNING, "report not sent, retrying", "type", env->type, "error",
                  err->message, NULL);
        ek_err_free(err);
        ek_amqp_close(s->pub);
        s->pub = NULL;
        if (gone_queue || attempt > 600)
            break; /* a reply queue that vanished will not come back */
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(wire);
}

static void report(ek_supervisor_t *s, const struct job *j, const char *type, json_object *body)
{
    json_object_object_add(body, "task_id", json_object_new_string(j->task_id));
    json_object_object_add(body, "attempt_id", json_object_new_string(j->attempt_id));
    ek_envelope_t *env = ek_envelope_new(type, body);
    publish(s, EK_QUEUE_CONDUCTOR, env);
    ek_envelope_free(env);
}

static void reply(ek_supervisor_t *s, const struct job *j, json_object *body)
{
    ek_envelope_t *env = ek_envelope_new(EK_MSG_REPLY, body);
    env->correlation_id = ek_xstrdup(j->correlation_id);
    publish(s, j->reply_to, env);
    ek_envelope_free(env);
}

/* ---- lines from a task process -------------------------------------------------------- */

static void handle_line(ek_supervisor_t *s, struct job *j, const char *line)
{
    json_object *m = NULL;
    const char *kind = NULL;
    ek_err_t *err = ek_json_parse(line, strlen(line), &m);
    if (!err)
        err = ek_json_req_string(m, "line", "kind", &kind);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "task process wrote a bad line", "error", err->message, NULL);
        ek_err_free(err);
        json_object_put(m);
        return;
    }
    if (!strcmp(kind, "result") || !strcmp(kind, "error")) {
        json_object_put(j->outcome);
        j->outcome = m; /* sent once the process has ended */
        return;
    }
    if (!j->query) {
        json_object *body = json_object_new_object();
        json_object_object_foreach(m, k, v)
        {
            if (strcmp(k, "kind"))
                json_object_object_add(body, k, json_object_get(v));
        }
        report(s, j,
               !strcmp(kind, "progress") ? EK_MSG_TASK_PROGRESS
               : !strcmp(kind, "event")  ? EK_MSG_TASK_EVENT
                                         : EK_MSG_TASK_STATE,
               body);
    }
    json_object_put(m);
}

static void read_job(ek_supervisor_t *s, struct job *j)
{
    char buf[65536];
    ssize_t n = read(j->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(j->fd);
        j->fd = -1;
        return;
    }
    ek_strbuf_add(&j->buf, buf, (size_t)n);
    char *nl;
    while ((nl = memchr(j->buf.buf, '\n', j->buf.len))) {
        *nl = '\0';
        handle_line(s, j, j->buf.buf);
        size_t used = (size_t)(nl - j->buf.buf) + 1;
        memmove(j->buf.buf, nl + 1, j->buf.len - used);
        ek_strbuf_setlen(&j->buf, j->buf.len - used);
    }
}

static const char *signal_name(int sig)
{
    static char other[32];
    switch (sig) {
    case SIGKILL:
        return "SIGKILL";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    }
    snprintf(other, sizeof(other), "signal %d", sig);
    return other;
}

/* True once the task process has exited, with its status. Before the zombie
 * is reaped (its pid, and so its process group id, cannot be reused yet)
 * whatever it left running in its group is killed, and its file removed. */
static bool leader_ended(pid_t pid, int *status)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != pid)
        return false;
    (void)killpg(pid, SIGKILL);
    return waitpid(pid, status, 0) == pid;
}

/* The process has ended: send its outcome. */
static void finish(ek_supervisor_t *s, struct job *j, int status)
{
    const char *kind =
        j->outcome ? json_object_get_string(json_object_object_get(j->outcome, "kind")) : NULL;
    if (j->query) {
        json_object *body = json_object_new_object();
        if (kind && !strcmp(kind, "result")) {
            json_object *r = json_object_object_get(j->outcome, "result");
            json_object_object_add(body, "ok", json_object_new_boolean(1));
            json_object_object_add(body, "result",
                                   json_object_get(json_object_object_get(r, "answer")));
        } else {
            json_object_object_add(body, "ok", json_object_new_boolean(0));
            json_object_object_add(
                body, "error",
                json_object_new_string(
                    kind ? json_object_get_string(json_object_object_get(j->outcome, "message"))
                         : "the worker's query process died"));
        }
        reply(s, j, body);
        return;
    }
    json_object *body = json_object_new_object();
    if (kind && !strcmp(kind, "result")) {
        json_object_object_add(body, "result",
                               json_object_get(json_object_object_get(j->outcome, "result")));
        report(s, j, EK_MSG_TASK_COMPLETED, body);
        ek_log_kv(EK_LOG_INFO, "task completed", "task_id", j->task_id, NULL);
        return;
    }
    bool canceled =
        j->cancel ||
        (kind && json_object_get_boolean(json_object_object_get(j->outcome, "canceled")));
    if (canceled) {
        report(s, j, EK_MSG_TASK_CANCELED, body);
        ek_log_kv(EK_LOG_INFO, "task cancelled", "task_id", j->task_id, NULL);
        return;
    }
    char *msg;
    if (kind)
        msg = ek_xstrdup(json_object_get_string(json_object_object_get(j->outcome, "message")));
    else if (WIFSIGNALED(status) && j->drained)
        msg = ek_xstrdup("the worker stopped and the task did not end within its grace time: "
                         "execute again");
    else if (WIFSIGNALED(status))
        msg = ek_xasprintf("the task process was killed by %s%s", signal_name(WTERMSIG(status)),
                           WTERMSIG(status) == SIGKILL
                               ? " (not by Ekman: the kernel's OOM killer, or an operator; see "
                                 "the host's kernel log): execute again"
                               : ": execute again");
    else
        msg = ek_xasprintf("the task process exited with status %d without a result",
                           WEXITSTATUS(status));
    json_object_object_add(body, "message", json_object_new_string(msg));
    report(s, j, EK_MSG_TASK_ERROR, body);
    ek_log_kv(EK_LOG_WARNING, "task failed", "task_id", j->task_id, "error", msg, NULL);
    free(msg);
}

/* Removes a task process's private directory; only a directory named as
 * the supervisor names them (the path may come from a file on disk). */
static void remove_task_dir(const char *dir)
{
    if (!dir || *dir != '/')
        return;
    const char *base = strrchr(dir, '/') + 1;
    struct stat st;
    if (strncmp(base, TASK_DIR_PREFIX ".", strlen(TASK_DIR_PREFIX) + 1) != 0 ||
        lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return;
    if (ek_rmtree(dir) != 0)
        ek_log_kv(EK_LOG_WARNING, "could not remove a task process's temporary directory", "dir",
                  dir, "error", strerror(errno), NULL);
}

static void job_free(struct job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    ek_strbuf_release(&j->buf);
    json_object_put(j->outcome);
    free(j->reply_to);
    free(j->correlation_id);
    free(j->pidfile);
    free(j->tmpdir);
    free(j);
}

static void *reporter_main(void *arg)
{
    ek_supervisor_t *s = arg;
    ek_log_context_set("loop", "reporter");
    for (;;) {
        struct pollfd pfd[MAX_JOBS + 1];
        struct job *owner[MAX_JOBS + 1];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pthread_mutex_lock(&s->lock);
        bool stop = s->stopping && s->n_jobs == 0;
        for (int i = 0; i < s->n_jobs; i++) {
            if (s->jobs[i]->fd >= 0) {
                owner[n] = s->jobs[i];
                pfd[n++] = (struct pollfd){.fd = s->jobs[i]->fd, .events = POLLIN};
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        poll(pfd, (nfds_t)n, 250);
        if (pfd[0].revents) {
            char buf[64];
            while (read(s->wake[0], buf, sizeof(buf)) > 0)
                ;
        }
        for (int i = 1; i < n; i++)
            if (pfd[i].revents)
                read_job(s, owner[i]);
        /* reap ended processes: their outcome goes out after all they wrote */
        time_t now = time(NULL);
        for (int i = 0;; i++) {
            pthread_mutex_lock(&s->lock);
            if (i >= s->n_jobs) {
                pthread_mutex_unlock(&s->lock);
                break;
            }
            struct job *j = s->jobs[i];
            if (j->query && now > j->deadline)
                killpg(j->pid, SIGKILL);
            int status = 0;
            bool ended = j->gone || (j->fd < 0 && leader_ended(j->pid, &status));
            if (ended) {
                s->jobs[i] = s->jobs[--s->n_jobs];
                i--;
            }
            pthread_mutex_unlock(&s->lock);
            if (ended) {
                /* what it left in its directory goes before its outcome is
                 * told: a finished execution has no temporary files left */
                remove_task_dir(j->tmpdir);
                if (j->pidfile)
                    (void)unlink(j->pidfile);
                finish(s, j, status);
                job_free(j);
            }
        }
    }
    ek_amqp_close(s->pub);
    s->pub = NULL;
    ek_log_context_clear();
    return NULL;
}

/* ---- task process files -------------------------------------------------------------------- */

char *ek_supervisor_proc_dir(const ek_config_t *cfg)
{
    return ek_xasprintf("%s/tasks", ek_config_get_string(cfg, "DEFAULT", "state_dir"));
}

/* The process group id and start time (clock ticks since boot) of a process;
 * false when there is no such process or it is a zombie. */
static bool proc_stat(pid_t pid, pid_t *pgrp, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    char state;
    int ppid, grp;
    if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &grp) != 3 || state == 'Z' || state == 'X')
        return false;
    /* field 22 (starttime): after the 20th space that follows the name */
    for (int field = 0; field < 20 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return false;
    *pgrp = grp;
    *start = strtoull(p + 1, NULL, 10);
    return true;
}

/* Records a new task process: "<pid> <start time> <worker pid> <worker start
 * time> <private directory>\n" in <proc_dir>/<pid>.pid (start times in clock
 * ticks since boot: a pid reused by another process does not match). */
static ek_err_t *proc_file_write(ek_supervisor_t *s, struct job *j)
{
    pid_t grp;
    unsigned long long start = 0, wstart = 0;
    if (!proc_stat(j->pid, &grp, &start))
        return NULL; /* already gone: nothing to find later */
    if (!proc_stat(getpid(), &grp, &wstart))
        return ek_err_new(EK_E_INTERNAL, "cannot read /proc/self/stat (is /proc mounted?)");
    j->pidfile = ek_xasprintf("%s/%d.pid", s->proc_dir, (int)j->pid);
    _cleanup_free_ char *line = ek_xasprintf("%d %llu %d %llu %s\n", (int)j->pid, start,
                                             (int)getpid(), wstart, j->tmpdir ? j->tmpdir : "-");
    int len = (int)strlen(line);
    int fd = open(j->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, line, (size_t)len) != len) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ek_err_errno(e, "writing %s (is [DEFAULT] state_dir writable?)", j->pidfile);
    }
    close(fd);
    return NULL;
}

/* True while some process of group grp is alive (zombies are not). */
static bool group_alive(pid_t grp)
{
    DIR *d = opendir("/proc");
    if (!d)
        return false;
    bool alive = false;
    struct dirent *de;
    while (!alive && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        pid_t g;
        unsigned long long st;
        if (*end || pid <= 0)
            continue;
        alive = proc_stat((pid_t)pid, &g, &st) && g == grp;
    }
    closedir(d);
    return alive;
}

ek_err_t *ek_supervisor_kill_orphans(const char *dir, int timeout_s, int *killed)
{
    *killed = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ek_err_errno(errno, "creating %s (is [DEFAULT] state_dir writable?)", dir);
    DIR *d = opendir(dir);
    if (!d)
        return ek_err_errno(errno, "reading %s", dir);
    ek_err_t *err = NULL;
    struct dirent *de;
    while (!err && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0)
            continue;
        _cleanup_free_ char *path = ek_xasprintf("%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "re");
        int pid = 0, wpid = 0;
        unsigned long long start = 0, wstart = 0;
        char tmpdir[4096] = "";
        bool parsed = f && fscanf(f, "%d %llu %d %llu", &pid, &start, &wpid, &wstart) == 4 &&
                      pid > 1 && wpid > 0;
        /* the private directory, up to the end of the line (files of
         * earlier versions have none) */
        if (parsed && fscanf(f, " %4095[^\n]", tmpdir) != 1)
            tmpdir[0] = '\0';
        if (f)
            fclose(f);
        if (!parsed) {
            ek_log_kv(EK_LOG_WARNING, "removing an unreadable task process file", "file", path,
                      NULL);
            (void)unlink(path);
            continue;
        }
        pid_t grp;
        unsigned long long now_start;
        /* the worker that started it still lives (another worker sharing
         * state_dir): its task, not an orphan */
        if (proc_stat(wpid, &grp, &now_start) && now_start == wstart)
            continue;
        bool leader = proc_stat(pid, &grp, &now_start);
        /* a live leader with another start time is another process that got
         * the pid: the group of ours is then empty (a pid in use as a group
         * id is not handed out again), nothing to kill */
        if (leader && now_start != start) {
            remove_task_dir(tmpdir);
            (void)unlink(path);
            continue;
        }
        if (leader || group_alive(pid)) {
            char p[16];
            snprintf(p, sizeof(p), "%d", pid);
            ek_log_kv(EK_LOG_WARNING,
                      "killing a task process a previous worker instance left running (its "
                      "task runs again)",
                      "pid", p, NULL);
            (void)killpg(pid, SIGKILL);
            (void)kill(pid, SIGKILL);
            (*killed)++;
            long long waited_ms = 0;
            while (group_alive(pid) && waited_ms < timeout_s * 1000LL) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
                waited_ms += 50;
                (void)killpg(pid, SIGKILL); /* anything it forked meanwhile */
            }
            if (group_alive(pid)) {
                err = ek_err_new(EK_E_TIMEOUT,
                                 "task process %d of a previous worker instance is still "
                                 "alive %d s after SIGKILL (stuck in the kernel, e.g. on a hung "
                                 "disk or NFS mount?): not starting, so that its task cannot run "
                                 "twice; find it with `ps -g %d` and start the worker again once "
                                 "it is gone",
                                 pid, timeout_s, pid);
                break;
            }
        }
        remove_task_dir(tmpdir);
        (void)unlink(path);
    }
    closedir(d);
    return err;
}

/* ---- starting processes ------------------------------------------------------------------ */

/* The task process's own temporary directory: its [worker] tmp_dir (the
 * last argument of --task-child), so that whatever it leaves there - killed
 * outright, or by a crash - goes when it ends (remove_task_dir), or when the
 * next worker instance finds its file (ek_supervisor_kill_orphans). */
static ek_err_t *make_task_dir(ek_supervisor_t *s, struct job *j)
{
    const char *tmp = s->cfg ? ek_config_get_string(s->cfg, "worker", "tmp_dir") : NULL;
    if (!tmp || !*tmp)
        tmp = "/var/tmp";
    ek_err_t *err = ek_private_dir(tmp, TASK_DIR_PREFIX, &j->tmpdir);
    return err ? ek_err_prefix(err, "a task process needs a directory of its own ([worker] "
                                    "tmp_dir)")
               : NULL;
}

static ek_err_t *spawn(ek_supervisor_t *s, struct job *j, const char *input)
{
    int in[2], out[2];
    ek_err_t *err = make_task_dir(s, j);
    if (err)
        return err;
    size_t argc = 0;
    while (s->argv[argc])
        argc++;
    _cleanup_free_ char **argv = ek_xcalloc(argc + 2, sizeof(char *));
    memcpy(argv, s->argv, argc * sizeof(char *));
    argv[argc] = j->tmpdir;
    if (pipe2(in, O_CLOEXEC) != 0) {
        remove_task_dir(j->tmpdir);
        return ek_err_errno(errno, "creating a pipe for a task process");
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        remove_task_dir(j->tmpdir);
        return ek_err_errno(errno, "creating a pipe for a task process");
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        remove_task_dir(j->tmpdir);
        return ek_err_errno(e, "starting a task process");
    }
    if (pid == 0) {
        /* only async-signal-safe calls until exec. Its own process group,
         * so that it and all it starts are killed as one; and it dies with
         * the worker (its reports go through the worker: with the worker
         * gone they would go nowhere, docs/reliability.md). The death
         * signal comes when the forking thread ends: the consuming thread,
         * which lives as long as the worker. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the worker died before prctl */
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    (void)setpgid(pid, pid); /* the same as the child does: whichever runs first */
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    j->pid = pid;
    j->fd = out[0];
    ek_err_t *ferr = proc_file_write(s, j);
    if (ferr) {
        /* without it a worker killed now would leave this process unfound */
        ek_log_err(ferr, "task process %d not recorded: killing it", (int)pid);
        ek_err_free(ferr);
        (void)killpg(pid, SIGKILL);
    }
    /* the job is small (task info and sealed credentials): write it whole */
    size_t len = strlen(input);
    const char *p = input;
    while (len) {
        ssize_t n = write(in[1], p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the process died: its exit is reported */
        p += n;
        len -= (size_t)n;
    }
    close(in[1]);
    return NULL;
}

static ek_err_t *add_job(ek_supervisor_t *s, struct job *j, const char *input)
{
    ek_strbuf_init(&j->buf, 0);
    j->fd = -1;
    pthread_mutex_lock(&s->lock);
    ek_err_t *err = s->n_jobs == MAX_JOBS ? ek_err_new(EK_E_UNAVAILABLE, "too many task processes")
                                          : spawn(s, j, input);
    if (!err)
        s->jobs[s->n_jobs++] = j;
    pthread_mutex_unlock(&s->lock);
    if (err)
        job_free(j);
    else
        wake(s);
    return err;
}

ek_err_t *ek_supervisor_start_task(ek_supervisor_t *s, const char *task_id, const char *attempt_id,
                                   const char *job)
{
    struct job *j = ek_xcalloc(1, sizeof(*j));
    snprintf(j->task_id, sizeof(j->task_id), "%s", task_id);
    snprintf(j->attempt_id, sizeof(j->attempt_id), "%s", attempt_id);
    return add_job(s, j, job);
}

ek_err_t *ek_supervisor_start_query(ek_supervisor_t *s, const char *reply_to,
                                    const char *correlation_id, const char *job, int timeout_s)
{
    struct job *j = ek_xcalloc(1, sizeof(*j));
    j->query = true;
    j->reply_to = ek_xstrdup(reply_to);
    j->correlation_id = ek_xstrdup(correlation_id ? correlation_id : "");
    j->deadline = time(NULL) + timeout_s;
    return add_job(s, j, job);
}

void ek_supervisor_report_gone(ek_supervisor_t *s, const char *task_id, const char *attempt_id)
{
    struct job *j = ek_xcalloc(1, sizeof(*j));
    snprintf(j->task_id, sizeof(j->task_id), "%s", task_id);
    snprintf(j->attempt_id, sizeof(j->attempt_id), "%s", attempt_id);
    ek_strbuf_init(&j->buf, 0);
    j->fd = -1;
    j->gone = j->cancel = true;
    pthread_mutex_lock(&s->lock);
    if (s->n_jobs < MAX_JOBS)
        s->jobs[s->n_jobs++] = EK_STEAL(j);
    pthread_mutex_unlock(&s->lock);
    if (j)
        job_free(j);
    wake(s);
}

bool ek_supervisor_cancel(ek_supervisor_t *s, const char *task_id, const char *attempt_id,
                          bool force)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_jobs; i++) {
        struct job *j = s->jobs[i];
        if (j->query || j->gone || strcmp(j->task_id, task_id) || strcmp(j->attempt_id, attempt_id))
            continue;
        j->cancel = true;
        j->force = j->force || force;
        if (force)
            killpg(j->pid, SIGKILL); /* with what it started */
        else
            kill(j->pid, SIGINT);
        found = true;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

int ek_supervisor_running(ek_supervisor_t *s)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_jobs; i++)
        n += !s->jobs[i]->query && !s->jobs[i]->gone;
    pthread_mutex_unlock(&s->lock);
    return n;
}

ek_err_t *ek_supervisor_new(const ek_config_t *cfg, char *const *child_argv, ek_supervisor_t **out)
{
    /* before anything runs again: nothing a killed predecessor left
     * behind may write a disk alongside the re-run of its task */
    _cleanup_free_ char *dir = ek_supervisor_proc_dir(cfg);
    int killed = 0;
    ek_err_t *err = ek_supervisor_kill_orphans(dir, 30, &killed);
    if (err)
        return err;
    ek_supervisor_t *s = ek_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->proc_dir = EK_STEAL(dir);
    int n = 0;
    while (child_argv[n])
        n++;
    s->argv = ek_xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++)
        s->argv[i] = ek_xstrdup(child_argv[i]);
    pthread_mutex_init(&s->lock, NULL);
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
        pthread_create(&s->reporter, NULL, reporter_main, s) != 0) {
        for (int i = 0; i < n; i++)
            free(s->argv[i]);
        free(s->argv);
        free(s->proc_dir);
        free(s);
        return ek_err_new(EK_E_INTERNAL, "could not start the task reporter");
    }
    *out = s;
    return NULL;
}

void ek_supervisor_drain(ek_supervisor_t *s, int timeout_s)
{
    time_t end = time(NULL) + timeout_s;
    struct timespec ts = {0, 200 * 1000 * 1000};
    while (ek_supervisor_running(s) > 0 && time(NULL) < end)
        nanosleep(&ts, NULL);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_jobs; i++) {
        if (s->jobs[i]->gone)
            continue;
        if (!s->jobs[i]->query)
            ek_log_kv(EK_LOG_WARNING, "killing a task that did not finish in time", "task_id",
                      s->jobs[i]->task_id, NULL);
        s->jobs[i]->drained = true;
        killpg(s->jobs[i]->pid, SIGKILL);
    }
    pthread_mutex_unlock(&s->lock);
    /* the reporter reaps them and sends their outcome */
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int n = s->n_jobs;
        pthread_mutex_unlock(&s->lock);
        if (!n)
            break;
        nanosleep(&ts, NULL);
    }
}

void ek_supervisor_free(ek_supervisor_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    wake(s);
    pthread_join(s->reporter, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->lock);
    for (int i = 0; s->argv[i]; i++)
        free(s->argv[i]);
    free(s->argv);
    free(s->proc_dir);
    free(s);
}
