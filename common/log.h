/* log.h - structured logging for every Ekman process.
 *
 * One line per record, written with a single write(2) so that lines of
 * concurrent threads and processes never interleave:
 *   2026-11-22T03:40:01.123Z INFO ekman-worker[412]: task started task_id=... disk=vda
 * or, with format json, one JSON object per line. Key/value pairs follow the
 * message; a thread may also carry context pairs (task id, execution id) that
 * are appended to each of its lines. Every line passes through ek_redact_text(),
 * and values of keys that name a secret are masked before that. */
#ifndef EK_LOG_H
#define EK_LOG_H

#include <stdbool.h>
#include "common/compiler.h"
#include "common/error.h"

typedef enum ek_log_level {
    EK_LOG_DEBUG = 0,
    EK_LOG_INFO,
    EK_LOG_WARNING,
    EK_LOG_ERROR,
} ek_log_level_t;

typedef enum ek_log_format {
    EK_LOG_TEXT = 0,
    EK_LOG_JSON,
} ek_log_format_t;

void ek_log_init(const char *program);
void ek_log_set_level(ek_log_level_t level);
ek_log_level_t ek_log_get_level(void);
EK_ERR_CHECK ek_log_level_parse(const char *name, ek_log_level_t *out);
void ek_log_set_format(ek_log_format_t format);
/* Appends to path instead of stderr ("" goes back to stderr). */
EK_ERR_CHECK ek_log_set_file(const char *path);
/* Sets (value != NULL) or removes a context pair of the calling thread. */
void ek_log_context_set(const char *key, const char *value);
void ek_log_context_clear(void);
/* Frees the logger's resources (context of this thread, log file). */
void ek_log_shutdown(void);

/* Message plus key/value pairs, the list ending with NULL. */
void ek_log_kv(ek_log_level_t level, const char *msg, ...) __attribute__((sentinel));
/* printf-style message, no pairs. */
void ek_logf(ek_log_level_t level, const char *fmt, ...) EK_PRINTF(2, 3);

#define ek_debug(...) ek_logf(EK_LOG_DEBUG, __VA_ARGS__)
#define ek_info(...)  ek_logf(EK_LOG_INFO, __VA_ARGS__)
#define ek_warn(...)  ek_logf(EK_LOG_WARNING, __VA_ARGS__)
#define ek_error(...) ek_logf(EK_LOG_ERROR, __VA_ARGS__)

/* Logs err->message at level ERROR behind a printf-style prefix. */
void ek_log_err(const ek_err_t *err, const char *fmt, ...) EK_PRINTF(2, 3);

#endif
