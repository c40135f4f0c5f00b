/* process.c - ek_run: posix_spawnp with a pipe for the output; waiting for
 * a helper's UNIX socket. */
#include "common/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/strbuf.h"

#define KEEP (64u << 10)

extern char **environ;

/* The last non-empty line of text, in place. */
static const char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = 0;
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

static char *drain(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = ek_xmalloc(cap + 1);
    for (;;) {
        if (n == cap && cap < KEEP) {
            cap *= 2;
            buf = ek_xrealloc(buf, cap + 1);
        }
        char sink[4096];
        bool keep = n < cap;
        ssize_t r = keep ? read(fd, buf + n, cap - n) : read(fd, sink, sizeof(sink));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (keep)
            n += (size_t)r;
    }
    buf[n] = 0;
    return buf;
}

ek_err_t *ek_run(const char *const argv[], char **output)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return ek_err_errno(errno, "could not run %s", argv[0]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        if (rc == ENOENT)
            return ek_err_new(EK_E_NOTFOUND, "%s is not installed (not found in PATH)", argv[0]);
        return ek_err_errno(rc, "could not run %s", argv[0]);
    }
    char *out = drain(p[0]);
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (output)
            *output = out;
        else
            free(out);
        return NULL;
    }
    ek_err_t *err = WIFSIGNALED(status)
                        ? ek_err_new(EK_E_INTERNAL, "%s was killed by signal %d: %s", argv[0],
                                     WTERMSIG(status), last_line(out))
                        : ek_err_new(EK_E_INTERNAL, "%s failed (exit status %d): %s", argv[0],
                                     WEXITSTATUS(status), last_line(out));
    free(out);
    return err;
}

bool ek_unix_socket_accepts(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

void ek_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *ek_shell_quote(const char *s)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_addch(&sb, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            ek_strbuf_adds(&sb, "'\\''");
        else
            ek_strbuf_addch(&sb, *s);
    }
    ek_strbuf_addch(&sb, '\'');
    return ek_strbuf_detach(&sb);
}

ek_err_t *ek_helper_start(const char *const argv[], const char *sock, const char *log_path,
                          int timeout_ms, const char *what, pid_t *pid)
{
    *pid = -1;
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", log_path);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(logfd);
        return ek_err_errno(e, "could not start %s", what);
    }
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1); /* the parent died before prctl */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        dup2(logfd, STDERR_FILENO);
        signal(SIGINT, SIG_IGN);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child) {
            char msg[512] = "";
            FILE *f = fopen(log_path, "re");
            if (f) {
                if (!fgets(msg, sizeof(msg), f))
                    msg[0] = '\0';
                fclose(f);
            }
            msg[strcspn(msg, "\n")] = '\0';
            return ek_err_new(EK_E_IO, "%s exited: %s", what, *msg ? msg : "no message");
        }
        if (ek_unix_socket_accepts(sock)) {
            *pid = child;
            return NULL;
        }
        ek_sleep_ms(20);
    }
    ek_helper_stop(child);
    return ek_err_new(EK_E_TIMEOUT, "%s did not serve %s within %d s", what, sock,
                      timeout_ms / 1000);
}

void ek_helper_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    int status;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 20) {
        if (waited >= 5000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return;
        }
        ek_sleep_ms(20);
    }
}
