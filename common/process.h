/* process.h - running a helper program (ssh-keygen, genisoimage, qemu-img)
 * and turning its failure into an error that quotes what it said. */
#ifndef EK_COMMON_PROCESS_H
#define EK_COMMON_PROCESS_H

#include <stdbool.h>
#include "common/error.h"

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout+stderr captured (at most 64 KiB kept). On exit 0 returns NULL and,
 * when output is not NULL, the captured text (caller frees). Otherwise an
 * error naming the program, its exit status or signal and its last output
 * line; a program that is not installed says so. */
EK_ERR_CHECK ek_run(const char *const argv[], char **output);

/* s quoted for a POSIX shell ('...', with ' as '\''): malloc'ed. */
char *ek_shell_quote(const char *s);
/* Whether something listens on the UNIX socket at path (a helper that
 * creates one is ready once it does). */
bool ek_unix_socket_accepts(const char *path);
/* Sleeps ms milliseconds (a signal may cut it short). */
void ek_sleep_ms(int ms);

#endif
