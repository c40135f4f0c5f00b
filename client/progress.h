/* progress.h - an execution's progress as `ekman ... --wait` shows it: one
 * bar per progress step (one per disk when disks are copied) with
 * percentage, rate and ETA, and the task list with states. Pure functions
 * over the execution JSON of GET .../executions/{id} (unit-tested in
 * tests/unit/test_client_progress.c); the polling loop is in wait.c. */
#ifndef EK_CLI_PROGRESS_H
#define EK_CLI_PROGRESS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/strbuf.h"

/* Parses a PostgreSQL/ISO 8601 timestamp ("2026-11-22T07:52:28.123456+00:00",
 * "...Z", or without a zone: UTC) into seconds since the epoch. */
bool ek_cli_parse_time(const char *text, double *out);
/* "45s", "3m05s", "2h04m", "3d04h"; "--" when unknown (negative). */
void ek_cli_format_eta(double seconds, char *out, size_t len);
/* "[#####-----]" of width cells between the brackets. */
void ek_cli_format_bar(double fraction, int width, char *out, size_t len);

/* A progress step of a task, as reported by its worker. */
typedef struct ek_cli_step {
    const char *instance, *message;
    int64_t current, total;
    double started, updated; /* epoch seconds; 0 when unknown */
} ek_cli_step_t;

/* Bytes per second since the step started, or -1 when not yet known. */
double ek_cli_step_rate(const ek_cli_step_t *s);
/* Seconds left at that rate, 0 when done, -1 when unknown. */
double ek_cli_step_eta(const ek_cli_step_t *s);
/* What the step is, its percentage, amount, rate and ETA: one line, or two
 * with a bar (bar true). */
void ek_cli_step_line(const ek_cli_step_t *s, bool bar, ek_strbuf_t *out);
/* Fills s from one element of a task's progress_updates. */
void ek_cli_step_from_json(json_object *task, json_object *update, ek_cli_step_t *s);

/* The whole view redrawn on a terminal: status, bars, tasks table. */
void ek_cli_progress_view(json_object *exec, const char *title, ek_strbuf_t *out);
/* For a log or a pipe: the lines that changed since `seen` (a JSON object
 * the function keeps up to date): task states, step percentages, and
 * "TITLE: STATUS" when the execution's status changes. */
void ek_cli_progress_lines(json_object *exec, const char *title, json_object *seen,
                           ek_strbuf_t *out);
/* What went wrong in a failed execution, from its tasks' errors. */
void ek_cli_progress_errors(json_object *exec, ek_strbuf_t *out);

#endif
