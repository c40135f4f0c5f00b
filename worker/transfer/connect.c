/* connect.c - TCP connection, the HTTPS upgrade and the local-command
 * transport of the engine (SSH is in ssh.c). */
#include "worker/transfer/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/mem.h"
#include "worker/transfer/tls.h"

ek_err_t *ek_https_connect(void *target, ek_stream_t **out)
{
    ek_https_target_t *t = target;
    int fd;
    ek_err_t *err = ek_tcp_connect(t->host, t->port, t->timeout_ms, &fd);
    if (err)
        return err;
    ek_stream_t *s;
    if ((err = ek_tls_connect(t->ctx, fd, t->server_name, t->timeout_ms, &s)))
        return ek_err_prefix(err, "writer %s:%s", t->host, t->port);
    ek_stream_set_timeout(s, t->timeout_ms);
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "POST /v1/stream HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: ekman/" EKMAN_VERSION
                 "\r\nUpgrade: ekman-writer/1\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
                 t->host, t->port);
    if ((err = ek_stream_write_all(s, req, (size_t)n)))
        goto fail;
    /* The response head, byte by byte: frames follow it at once. */
    char head[4096];
    size_t len = 0;
    while (len < sizeof(head) - 1) {
        bool eof;
        if ((err = ek_stream_read_full(s, head + len, 1, &eof)))
            goto fail;
        if (eof) {
            err = ek_err_new(EK_E_PROTOCOL, "the writer closed the connection");
            goto fail;
        }
        len++;
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[len] = 0;
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0) {
        char *eol = strstr(head, "\r\n");
        if (eol)
            *eol = 0;
        err = ek_err_new(EK_E_PROTOCOL, "the writer did not upgrade the connection: \"%.200s\"",
                         head);
        goto fail;
    }
    *out = s;
    return NULL;
fail:
    if (s->error_code != EK_E_AUTH) {
        /* A writer that refuses our certificate sends an alert and closes;
         * our write may fail first. Read once to learn why. */
        char byte;
        ek_stream_set_timeout(s, 300);
        ek_err_free(ek_stream_read_full(s, &byte, 1, NULL));
    }
    if (s->error_code == EK_E_AUTH) {
        ek_err_free(err);
        err = ek_err_new(EK_E_AUTH, "TLS: %s (is the client certificate from this transfer's CA?)",
                         s->error);
    }
    ek_stream_free(s);
    return ek_err_prefix(err, "writer %s:%s", t->host, t->port);
}

ek_err_t *ek_exec_connect(void *target, ek_stream_t **out)
{
    ek_exec_target_t *t = target;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return ek_err_errno(errno, "socketpair");
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return ek_err_errno(e, "cannot start \"%s\"", t->argv[0]);
    }
    if (pid == 0) {
        /* Child: the socket is its stdin and stdout; stderr stays ours. */
        signal(SIGPIPE, SIG_DFL);
        if (dup2(sv[1], STDIN_FILENO) < 0 || dup2(sv[1], STDOUT_FILENO) < 0)
            _exit(127);
        execv(t->argv[0], t->argv);
        _exit(127);
    }
    close(sv[1]);
    ek_stream_t *s = ek_stream_fd_new(sv[0], sv[0], true);
    ek_stream_fd_set_child(s, pid);
    *out = s;
    return NULL;
}
