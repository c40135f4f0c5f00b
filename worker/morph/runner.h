/* runner.h - running a program for the engine: on the worker (lvm, blkid,
 * partx) or inside the guest (chroot(2) into the mounted root, then exec),
 * with a timeout, its stdout+stderr captured, and a cancel (SIGTERM/SIGINT
 * to ekman-morph) that kills it.
 *
 * Guest programs get a clean environment: PATH of the usual sbin/bin dirs,
 * LC_ALL=C, DEBIAN_FRONTEND=noninteractive, plus what env adds. */
#ifndef EK_MORPH_RUNNER_H
#define EK_MORPH_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include "common/error.h"
#include "worker/morph/report.h"

/* Set by the signal handlers of ekman-morph; a running program is killed and
 * the run returns EK_E_CANCELED. */
extern volatile sig_atomic_t ek_morph_canceled;

typedef struct ek_morph_cmd {
    const char *const *argv;   /* argv[0] looked up in PATH (inside root when chrooted) */
    const char *root;          /* chroot into this directory first, or NULL */
    const char *const *env;    /* extra "K=V" entries, NULL-terminated, or NULL */
    int timeout_s;             /* 0: 600 s */
    ek_morph_report_t *report; /* each output line becomes an INFO event when set */
    const char *stdin_path;    /* file fed as stdin, or NULL for /dev/null */
} ek_morph_cmd_t;

/* Runs the command. On exit 0 returns NULL; else an error naming the
 * program, its exit status (or signal, or the timeout) and its last output
 * line. *output (when not NULL) gets the captured output (at most 256 KiB
 * kept) in both cases; the caller frees it. */
EK_ERR_CHECK ek_morph_run(const ek_morph_cmd_t *cmd, char **output);

/* Shorthand: a worker-side program, output kept, 120 s. */
EK_ERR_CHECK ek_morph_run_host(const char *const argv[], char **output);

/* SIGKILLs every process whose root directory is root or below it (package
 * scripts and daemons a guest program left behind, or the programs of a
 * killed run); returns how many. Done before unmounting the guest. */
int ek_morph_kill_chrooted(const char *root);

#endif
