/* args.h - the command-line parser of `ekman`: long options (--name VALUE,
 * --name=VALUE, flags, repeatable options) mixed with positional arguments,
 * and the usage text generated from the same table. Pure: no I/O. */
#ifndef EK_CLI_ARGS_H
#define EK_CLI_ARGS_H

#include <stdbool.h>
#include "common/strbuf.h"

#define EK_CLI_MAX_OPTS 48
#define EK_CLI_MAX_POS  4

typedef struct ek_cli_opt {
    const char *name;    /* long name without "--"; NULL ends a table */
    const char *metavar; /* the value's name in the help, NULL for a flag */
    const char *help;
    bool repeat;   /* may be given more than once (each value is kept) */
    bool required; /* the command cannot run without it */
} ek_cli_opt_t;

#define EK_OPT(name, metavar, help)                                                                \
    {                                                                                              \
        name, metavar, help, false, false                                                          \
    }
#define EK_OPT_REQ(name, metavar, help)                                                            \
    {                                                                                              \
        name, metavar, help, false, true                                                           \
    }
#define EK_OPT_REP(name, metavar, help)                                                            \
    {                                                                                              \
        name, metavar, help, true, false                                                           \
    }
#define EK_OPT_END                                                                                 \
    {                                                                                              \
        NULL, NULL, NULL, false, false                                                             \
    }

typedef struct ek_cli_spec {
    const char *positional;   /* "TRANSFER EXECUTION"; "[NAME]" is optional */
    const ek_cli_opt_t *opts; /* ends with {NULL}; may be NULL */
} ek_cli_spec_t;

typedef struct ek_cli_args {
    const ek_cli_opt_t *opts[EK_CLI_MAX_OPTS];
    int nopts;
    const char **vals[EK_CLI_MAX_OPTS]; /* the values given, borrowed from argv */
    int nvals[EK_CLI_MAX_OPTS];
    const char *pos[EK_CLI_MAX_POS];
    int npos;
} ek_cli_args_t;

/* Parses argv[0..argc) against the options of the tables (earlier tables win
 * a name both hold). Returns NULL, or an error message (the caller frees). */
char *ek_cli_args_parse(const ek_cli_opt_t *const *tables, int ntables, int argc, char **argv,
                        ek_cli_args_t *out);
/* Checks the number of positional arguments against spec->positional and
 * the required options: NULL, or a message naming the missing or extra
 * argument. */
char *ek_cli_args_check(const ek_cli_spec_t *spec, const ek_cli_args_t *a);
void ek_cli_args_release(ek_cli_args_t *a);

/* The last value of an option, or NULL. */
const char *ek_cli_opt(const ek_cli_args_t *a, const char *name);
/* How many times the option was given, *values set to them. */
int ek_cli_opt_all(const ek_cli_args_t *a, const char *name, const char *const **values);
bool ek_cli_flag(const ek_cli_args_t *a, const char *name);

/* "Usage: ekman WORDS POSITIONAL [options]" and the options, aligned. */
void ek_cli_usage(const char *words, const ek_cli_spec_t *spec, ek_strbuf_t *out);
/* The options of a table, one a line, aligned, with a heading. */
void ek_cli_opts_help(const char *heading, const ek_cli_opt_t *opts, ek_strbuf_t *out);

#endif
