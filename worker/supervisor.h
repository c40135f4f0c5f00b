/* supervisor.h - the worker's task processes: starts each job as
 * `ekman-worker --task-child` with the job on its standard input, reads the
 * JSON lines it writes, forwards progress, events and state to the conductor
 * at once and the outcome when the process has ended (so nothing it said is
 * lost), signals it on cancel (SIGINT, or SIGKILL when forced), and reports a
 * process that died without an outcome as an error naming the signal. One
 * reporter thread with its own broker connection does the reading and sending. */
#ifndef EK_WORKER_SUPERVISOR_H
#define EK_WORKER_SUPERVISOR_H

#include <stdbool.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_supervisor ek_supervisor_t;

/* argv of the task process (the worker's own binary with --config and
 * --task-child), NULL-terminated; copied. */
EK_ERR_CHECK ek_supervisor_new(const ek_config_t *cfg, char *const *child_argv,
                               ek_supervisor_t **out);
/* Starts a task (job: the dispatch body with "kind":"task"). */
EK_ERR_CHECK ek_supervisor_start_task(ek_supervisor_t *s, const char *task_id,
                                      const char *attempt_id, const char *job);
/* Starts an endpoint query whose answer goes to reply_to. */
EK_ERR_CHECK ek_supervisor_start_query(ek_supervisor_t *s, const char *reply_to,
                                       const char *correlation_id, const char *job,
                                       int timeout_s);
/* Cancels a running task; false when this worker does not run that attempt. */
bool ek_supervisor_cancel(ek_supervisor_t *s, const char *task_id, const char *attempt_id,
                          bool force);
/* Tasks running now. */
int ek_supervisor_running(ek_supervisor_t *s);
/* Waits up to timeout_s for the running tasks to end, kills the rest, and
 * waits until every outcome was reported. */
void ek_supervisor_drain(ek_supervisor_t *s, int timeout_s);
/* Stops the reporter and frees (after ek_supervisor_drain). NULL is fine. */
void ek_supervisor_free(ek_supervisor_t *s);

#endif
