/* supervisor.h - the worker's task processes: starts each job as
 * `ekman-worker --task-child` with the job on its standard input, reads the
 * JSON lines it writes, forwards progress, events and state to the conductor
 * at once and the outcome when the process has ended (so nothing it said is
 * lost), signals it on cancel (SIGINT, or SIGKILL when forced), and reports a
 * process that died without an outcome as an error naming the signal. One
 * reporter thread with its own broker connection does the reading and sending.
 *
 * A task process is the leader of its own process group, dies with the worker
 * (PR_SET_PDEATHSIG), works in a private directory of its own
 * (<tmp_dir>/ekman-task.<6 random characters> from mkdtemp, its [worker] tmp_dir, removed when it
 * ends, however it ends), and has a file <state_dir>/tasks/<pid>.pid ("<pid> <start time> <worker
 * pid> <worker start time> <directory>") while it lives: a worker started after one that was killed
 * finds what it left, kills it and removes its directory before taking work (docs/reliability.md).
 */
#ifndef EK_WORKER_SUPERVISOR_H
#define EK_WORKER_SUPERVISOR_H

#include <stdbool.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_supervisor ek_supervisor_t;

/* argv of the task process (the worker's own binary with --config and
 * --task-child), NULL-terminated; copied. Kills first the task processes a
 * previous worker instance left (ek_supervisor_kill_orphans): an error when
 * one does not die. */
EK_ERR_CHECK ek_supervisor_new(const ek_config_t *cfg, char *const *child_argv,
                               ek_supervisor_t **out);
/* Starts a task (job: the dispatch body with "kind":"task"). */
EK_ERR_CHECK ek_supervisor_start_task(ek_supervisor_t *s, const char *task_id,
                                      const char *attempt_id, const char *job);
/* Starts an endpoint query whose answer goes to reply_to. */
EK_ERR_CHECK ek_supervisor_start_query(ek_supervisor_t *s, const char *reply_to,
                                       const char *correlation_id, const char *job, int timeout_s);
/* Cancels a running task; false when this worker does not run that attempt. */
bool ek_supervisor_cancel(ek_supervisor_t *s, const char *task_id, const char *attempt_id,
                          bool force);
/* Answers a cancel of an attempt that has no process here (it was this
 * host's, but the worker instance that ran it is gone and its processes were
 * killed at start): reports it canceled, so a soft cancel ends. */
void ek_supervisor_report_gone(ek_supervisor_t *s, const char *task_id, const char *attempt_id);
/* The directory of task process files: <state_dir>/tasks (allocated). */
char *ek_supervisor_proc_dir(const ek_config_t *cfg);
/* Kills (SIGKILL, the whole process group) every process recorded in dir
 * whose worker is gone and that still lives, and waits up to timeout_s for
 * all of them to be gone; their files are removed (those of a live worker
 * stay), and so are their private directories. *killed counts the groups
 * killed. Creates dir. */
EK_ERR_CHECK ek_supervisor_kill_orphans(const char *dir, int timeout_s, int *killed);
/* Tasks running now. */
int ek_supervisor_running(ek_supervisor_t *s);
/* Waits up to timeout_s for the running tasks to end, kills the rest, and
 * waits until every outcome was reported. */
void ek_supervisor_drain(ek_supervisor_t *s, int timeout_s);
/* Stops the reporter and frees (after ek_supervisor_drain). NULL is fine. */
void ek_supervisor_free(ek_supervisor_t *s);

#endif
