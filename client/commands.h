/* commands.h - what the commands_*.c files share: printing answers as tables
 * or JSON, JSON arguments, names resolved to ids, and the base commands. */
#ifndef EK_CLI_COMMANDS_H
#define EK_CLI_COMMANDS_H

#include <json-c/json.h>
#include "client/cli.h"
#include "client/output.h"

int ek_cli_cmd_login(ek_cli_t *cli, const ek_cli_args_t *a);
int ek_cli_cmd_logout(ek_cli_t *cli, const ek_cli_args_t *a);
int ek_cli_cmd_status(ek_cli_t *cli, const ek_cli_args_t *a);

/* Prints doc[key] (an array) as a table of cols, or as JSON. */
void ek_cli_print_list(const ek_cli_t *cli, json_object *doc, const char *key,
                       const ek_cli_col_t *cols);
/* Prints doc[key] (an object) as Field/Value (fields NULL: all), or as JSON. */
void ek_cli_print_object(const ek_cli_t *cli, json_object *doc, const char *key,
                         const char *const *fields);
/* GET path and print the list (oldest first: ?sort_dir=asc) / the object. */
int ek_cli_list(ek_cli_t *cli, const char *path, const char *key, const ek_cli_col_t *cols);
int ek_cli_show(ek_cli_t *cli, const char *path, const char *key, const char *const *fields);
/* METHOD path with body (taken), printing the object under key of the answer. */
int ek_cli_send_show(ek_cli_t *cli, const char *method, const char *path, json_object *body,
                     const char *key, const char *const *fields);
/* DELETE path; prints "Deleted WHAT NAME." (or {"deleted": ...} in JSON). */
int ek_cli_delete(ek_cli_t *cli, const char *path, const char *what, const char *name);

/* The value of a JSON option: JSON text, or @FILE ("@-": standard input).
 * *out NULL when the option was not given. A usage error names the option. */
int ek_cli_json_opt(const ek_cli_args_t *a, const char *opt, json_type want, json_object **out);
/* A JSON file ("-": standard input) that must hold an object. */
int ek_cli_json_file(const char *opt, const char *path, json_object **out);
/* KEY=VALUE options into an object (NULL when none given). */
int ek_cli_pairs_opt(const ek_cli_args_t *a, const char *opt, json_object **out);

/* An id from a name or id: GET collection, match "id" or "name" in key[].
 * out receives the id (64 bytes). */
int ek_cli_resolve(ek_cli_t *cli, const char *collection, const char *key, const char *what,
                   const char *name_or_id, char *out);

/* Waits for an execution to end, showing progress (wait.c). path is the API
 * path of the execution (or deployment), key the answer's key holding its
 * status and tasks; returns EK_CLI_OK when COMPLETED, EK_CLI_FAILED with the
 * tasks' errors otherwise. timeout_s <= 0: no limit. */
int ek_cli_wait(ek_cli_t *cli, const char *path, const char *key, const char *title, int timeout_s);
/* The --timeout option: seconds, 0 when absent; -1 after a usage error. */
int ek_cli_timeout_opt(const ek_cli_args_t *a);

/* The --wait/--timeout options of execute and deploy. */
#define EK_CLI_WAIT_OPTS                                                                           \
    EK_OPT("wait", NULL, "wait for the end, showing progress; exit 5 if it fails"),                \
        EK_OPT("timeout", "SECONDS", "with --wait: give up (exit 1) after this long")

#endif
