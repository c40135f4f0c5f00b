/* task_ctx.h - a task context for running provider task functions outside
 * the worker (the local provider's harness and unit tests): what the task
 * reports is kept in JSON (steps, events, the last saved state) and, when a
 * log is given, printed as it happens. */
#ifndef EK_TEST_TASK_CTX_H
#define EK_TEST_TASK_CTX_H

#include <stdio.h>
#include <json-c/json.h>
#include "worker/provider.h"

/* cfg is borrowed (may be NULL); log may be NULL; prefix names the task in
 * the log lines. */
ek_task_ctx_t *ek_test_ctx_new(const ek_config_t *cfg, FILE *log, const char *prefix);
void ek_test_ctx_free(ek_task_ctx_t *ctx);
/* [{"message", "total", "current", "updates"}] (borrowed) */
json_object *ek_test_ctx_steps(ek_task_ctx_t *ctx);
/* [{"level", "message"}] (borrowed) */
json_object *ek_test_ctx_events(ek_task_ctx_t *ctx);
/* The last state saved, or NULL (borrowed); how many saves. */
json_object *ek_test_ctx_state(ek_task_ctx_t *ctx);
int ek_test_ctx_saves(ek_task_ctx_t *ctx);
/* Makes ek_task_cancelled() true: now, or once the task saved its state n
 * times (an interruption at a known point, to test resuming). */
void ek_test_ctx_cancel(ek_task_ctx_t *ctx);
void ek_test_ctx_cancel_after_saves(ek_task_ctx_t *ctx, int n);
/* ... or once ek_task_cancelled() was asked n times (the local provider
 * asks before each read). */
void ek_test_ctx_cancel_after_checks(ek_task_ctx_t *ctx, long n);

#endif
