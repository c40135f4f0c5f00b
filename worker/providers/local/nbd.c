/* nbd.c - a qcow2 image reaches the transfer engine through qemu-nbd: it
 * serves the image read-only on a Unix socket in a private directory, and
 * the NBD reader (worker/transfer/reader_nbd.c) reads the guest's view of
 * it, with holes and zeros from base:allocation.
 *
 * qemu-nbd is our child; it gets SIGTERM if the task process dies
 * (PR_SET_PDEATHSIG), so a crashed task leaves no server behind. Its
 * standard error goes to a file in the private directory and becomes the
 * error message if it fails to start. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/process.h"

#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS  5000

struct ek_local_nbd {
    pid_t pid;
    char *dir, *sock, *log, *uri;
};

/* The first line of what qemu-nbd said on standard error. */
static char *read_log(const char *path)
{
    char buf[512] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    return ek_xstrdup(buf[0] ? buf : "no message");
}

static void nbd_free(ek_local_nbd_t *n)
{
    if (n->sock)
        unlink(n->sock);
    if (n->log)
        unlink(n->log);
    if (n->dir)
        rmdir(n->dir);
    free(n->dir);
    free(n->sock);
    free(n->log);
    free(n->uri);
    free(n);
}

ek_err_t *ek_local_nbd_start(const char *image, const char *format, const char *tmp_dir,
                             ek_local_nbd_t **out)
{
    *out = NULL;
    ek_local_nbd_t *n = ek_xcalloc(1, sizeof(*n));
    n->pid = -1;
    char *tmpl = ek_xasprintf("%s/ekman-nbd-XXXXXX", tmp_dir && *tmp_dir ? tmp_dir : "/tmp");
    if (!mkdtemp(tmpl)) {
        ek_err_t *err = ek_err_errno(errno, "could not create a directory in \"%s\"", tmp_dir);
        free(tmpl);
        nbd_free(n);
        return err;
    }
    n->dir = tmpl;
    n->sock = ek_xasprintf("%s/nbd.sock", n->dir);
    n->log = ek_xasprintf("%s/qemu-nbd.log", n->dir);
    if (strlen(n->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        nbd_free(n);
        return ek_err_new(EK_E_INVALID,
                          "the socket path under \"%s\" is too long: set a shorter "
                          "[worker] tmp_dir",
                          tmp_dir);
    }
    n->uri = ek_xasprintf("nbd+unix:///?socket=%s", n->sock);
    _cleanup_free_ char *fmt_arg = ek_xasprintf("--format=%s", format);
    _cleanup_free_ char *sock_arg = ek_xasprintf("--socket=%s", n->sock);
    const char *bin = getenv("EKMAN_QEMU_NBD");
    if (!bin || !*bin)
        bin = "qemu-nbd";
    int logfd = open(n->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        ek_err_t *err = ek_err_errno(errno, "could not create \"%s\"", n->log);
        nbd_free(n);
        return err;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ek_err_t *err = ek_err_errno(errno, "could not start qemu-nbd");
        close(logfd);
        nbd_free(n);
        return err;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1); /* the task died before prctl */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        dup2(logfd, STDERR_FILENO);
        signal(SIGINT, SIG_IGN); /* a task cancel is for the task; it stops us */
        signal(SIGPIPE, SIG_DFL);
        execlp(bin, bin, "--read-only", "--persistent", "--shared=16", fmt_arg, sock_arg, image,
               (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    n->pid = pid;
    for (int waited = 0;; waited += 20) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            n->pid = -1;
            _cleanup_free_ char *msg = read_log(n->log);
            nbd_free(n);
            return ek_err_new(EK_E_IO, "qemu-nbd could not serve \"%s\": %s", image, msg);
        }
        if (ek_unix_socket_accepts(n->sock))
            break;
        if (waited >= START_TIMEOUT_MS) {
            ek_local_nbd_stop(n);
            return ek_err_new(EK_E_TIMEOUT, "qemu-nbd did not serve \"%s\" within %d s", image,
                              START_TIMEOUT_MS / 1000);
        }
        ek_sleep_ms(20);
    }
    ek_log_kv(EK_LOG_DEBUG, "qemu-nbd serving", "image", image, "socket", n->sock, NULL);
    *out = n;
    return NULL;
}

const char *ek_local_nbd_uri(const ek_local_nbd_t *n)
{
    return n->uri;
}

void ek_local_nbd_stop(ek_local_nbd_t *n)
{
    if (!n)
        return;
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        int status;
        pid_t r = 0;
        for (int waited = 0; (r = waitpid(n->pid, &status, WNOHANG)) == 0; waited += 20) {
            if (waited >= STOP_TIMEOUT_MS) {
                kill(n->pid, SIGKILL);
                r = waitpid(n->pid, &status, 0);
                break;
            }
            ek_sleep_ms(20);
        }
        (void)r;
    }
    nbd_free(n);
}
