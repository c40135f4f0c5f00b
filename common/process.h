/* process.h - running a helper program (ssh-keygen, genisoimage, qemu-img)
 * and turning its failure into an error that quotes what it said. */
#ifndef EK_COMMON_PROCESS_H
#define EK_COMMON_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>
#include "common/error.h"

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout+stderr captured (at most 64 KiB kept). On exit 0 returns NULL and,
 * when output is not NULL, the captured text (caller frees). Otherwise an
 * error naming the program, its exit status or signal and its last output
 * line; a program that is not installed says so. */
EK_ERR_CHECK ek_run(const char *const argv[], char **output);

/* s quoted for a POSIX shell ('...', with ' as '\''): malloc'ed. */
char *ek_shell_quote(const char *s);
/* Starts argv (argv[0] looked up in PATH) as a helper that serves the UNIX
 * socket sock: stdin and stdout /dev/null, stderr into log_path, SIGTERM
 * when the calling process dies, SIGINT ignored (a cancel is for the task,
 * which stops it). Returns once it accepts connections on sock (*pid set);
 * else an error: it exited (quoting the first line of its log) or did not
 * accept within timeout_ms (it is stopped). `what` names it in errors. */
EK_ERR_CHECK ek_helper_start(const char *const argv[], const char *sock, const char *log_path,
                             int timeout_ms, const char *what, pid_t *pid);
/* SIGTERM, then SIGKILL after 5 s; reaps it. pid <= 0: nothing. */
void ek_helper_stop(pid_t pid);
/* Whether something listens on the UNIX socket at path (a helper that
 * creates one is ready once it does). */
bool ek_unix_socket_accepts(const char *path);
/* Sleeps ms milliseconds (a signal may cut it short). */
void ek_sleep_ms(int ms);

#endif
