/* runner.c - fork, optional chroot, exec, with a timeout (runner.h). */
#include "worker/morph/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/process.h"
#include "common/strbuf.h"

volatile sig_atomic_t ek_morph_canceled;

#define OUTPUT_MAX      (256 * 1024)
#define EVENT_LINES_MAX 400

static const char *const base_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL=C",
    "DEBIAN_FRONTEND=noninteractive",
    "HOME=/root",
    NULL,
};

static EK_NORETURN void child(const ek_morph_cmd_t *cmd, int outfd)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed ekman-morph leaves no program running */
    int in = open(cmd->stdin_path ? cmd->stdin_path : "/dev/null", O_RDONLY);
    if (in < 0) {
        dprintf(outfd, "cannot open %s: %s\n", cmd->stdin_path, strerror(errno));
        _exit(126);
    }
    dup2(in, 0);
    dup2(outfd, 1);
    dup2(outfd, 2);
    if (cmd->root) {
        if (chroot(cmd->root) != 0 || chdir("/") != 0) {
            dprintf(2, "cannot chroot into %s: %s\n", cmd->root, strerror(errno));
            _exit(126);
        }
        /* guest programs: clean environment */
        const char *envp[32];
        size_t n = 0;
        for (size_t i = 0; base_env[i]; i++)
            envp[n++] = base_env[i];
        for (size_t i = 0; cmd->env && cmd->env[i] && n < 31; i++)
            envp[n++] = cmd->env[i];
        envp[n] = NULL;
        /* execvpe looks PATH up in the new environment */
        execvpe(cmd->argv[0], (char *const *)cmd->argv, (char *const *)envp);
    } else {
        for (size_t i = 0; cmd->env && cmd->env[i]; i++)
            putenv((char *)cmd->env[i]);
        setenv("LC_ALL", "C", 1);
        setenv("LVM_SUPPRESS_FD_WARNINGS", "1", 1);
        execvp(cmd->argv[0], (char *const *)cmd->argv);
    }
    dprintf(2, "%s: %s\n", cmd->argv[0],
            errno == ENOENT ? "not installed (not found in PATH)" : strerror(errno));
    _exit(127);
}

static void emit_lines(const ek_morph_cmd_t *cmd, ek_strbuf_t *pending, int *lines, bool flush)
{
    char *nl;
    while ((nl = memchr(pending->buf, '\n', pending->len)) || (flush && pending->len)) {
        size_t n = nl ? (size_t)(nl - pending->buf) : pending->len;
        if (cmd->report && *lines < EVENT_LINES_MAX && n > 0) {
            _cleanup_free_ char *line = ek_xstrndup(pending->buf, n);
            ek_morph_event(cmd->report, "INFO", "%s: %s", cmd->argv[0], line);
        } else if (cmd->report && *lines == EVENT_LINES_MAX) {
            ek_morph_event(cmd->report, "INFO", "%s: (more output not shown)", cmd->argv[0]);
        }
        if (n > 0)
            (*lines)++;
        size_t used = nl ? n + 1 : n;
        memmove(pending->buf, pending->buf + used, pending->len - used);
        ek_strbuf_setlen(pending, pending->len - used);
    }
}

static const char *last_line(const char *text, char *buf, size_t size)
{
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    size_t start = len;
    while (start && text[start - 1] != '\n')
        start--;
    snprintf(buf, size, "%.*s", (int)(len - start), text + start);
    return buf;
}

ek_err_t *ek_morph_run(const ek_morph_cmd_t *cmd, char **output)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return ek_err_errno(errno, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return ek_err_errno(e, "fork");
    }
    if (pid == 0) {
        close(fds[0]);
        child(cmd, fds[1]);
    }
    close(fds[1]);
    setpgid(pid, pid);
    int timeout_s = cmd->timeout_s > 0 ? cmd->timeout_s : 600;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    _cleanup_strbuf_ ek_strbuf_t out = EK_STRBUF_INIT;
    _cleanup_strbuf_ ek_strbuf_t pending = EK_STRBUF_INIT;
    int lines = 0;
    bool timed_out = false, canceled = false;
    for (;;) {
        if (ek_morph_canceled) {
            canceled = true;
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = (long)timeout_s * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                                 (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left_ms <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, (int)EK_MIN(left_ms, 1000));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (out.len < OUTPUT_MAX)
            ek_strbuf_add(&out, buf, (size_t)n);
        ek_strbuf_add(&pending, buf, (size_t)n);
        emit_lines(cmd, &pending, &lines, false);
    }
    emit_lines(cmd, &pending, &lines, true);
    close(fds[0]);
    if (timed_out || canceled)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* whatever the program left running in its group (a daemon a package
     * script started) must not hold the guest's mounts */
    kill(-pid, SIGKILL);
    if (output)
        *output = ek_xstrdup(out.buf);
    char last[512];
    if (canceled)
        return ek_err_new(EK_E_CANCELED, "%s was stopped: ekman-morph was cancelled", cmd->argv[0]);
    if (timed_out)
        return ek_err_new(EK_E_TIMEOUT, "%s did not finish within %d s%s%s", cmd->argv[0],
                          timeout_s, out.len ? ": " : "", last_line(out.buf, last, sizeof(last)));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return NULL;
    last_line(out.buf, last, sizeof(last));
    if (WIFSIGNALED(status))
        return ek_err_new(EK_E_IO, "%s was killed by signal %d%s%s", cmd->argv[0], WTERMSIG(status),
                          *last ? ": " : "", last);
    return ek_err_new(EK_E_IO, "%s failed with exit status %d%s%s", cmd->argv[0],
                      WEXITSTATUS(status), *last ? ": " : "", last);
}

ek_err_t *ek_morph_run_host(const char *const argv[], char **output)
{
    ek_morph_cmd_t cmd = {.argv = argv, .timeout_s = 120};
    return ek_morph_run(&cmd, output);
}

int ek_morph_kill_chrooted(const char *root)
{
    char want[4096];
    if (!realpath(root, want))
        return 0;
    size_t wl = strlen(want);
    int killed = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        char link[64], target[4096];
        snprintf(link, sizeof(link), "/proc/%ld/root", pid);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, want, wl) == 0 && (target[wl] == '\0' || target[wl] == '/')) {
            kill((pid_t)pid, SIGKILL);
            killed++;
        }
    }
    if (d)
        closedir(d);
    if (killed)
        ek_sleep_ms(200); /* let the kernel release their files */
    return killed;
}
