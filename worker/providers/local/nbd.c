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
    const char *argv[] = {bin,     "--read-only", "--persistent", "--shared=16",
                          fmt_arg, sock_arg,      image,          NULL};
    ek_err_t *err = ek_helper_start(argv, n->sock, n->log, START_TIMEOUT_MS, "qemu-nbd", &n->pid);
    if (err) {
        nbd_free(n);
        return ek_err_prefix(err, "serving \"%s\"", image);
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
    ek_helper_stop(n->pid);
    nbd_free(n);
}
