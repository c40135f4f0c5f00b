/* cli.h - the state every `ekman` command shares (API address, credentials,
 * token, output format), the command table and the exit codes. */
#ifndef EK_CLI_H
#define EK_CLI_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include "client/args.h"

/* Exit codes (documented in docs/ekman.1). */
enum {
    EK_CLI_OK = 0,
    EK_CLI_API = 1,         /* the API refused or failed the request */
    EK_CLI_USAGE = 2,       /* bad command line */
    EK_CLI_AUTH = 3,        /* wrong credentials, expired token, not allowed */
    EK_CLI_UNREACHABLE = 4, /* no answer from the API */
    EK_CLI_FAILED = 5,      /* the execution waited for ended in ERROR or was canceled */
};

typedef struct ek_cli {
    const char *url;      /* without a trailing slash */
    const char *username; /* NULL: the last user that logged in on url */
    const char *password; /* NULL: from the terminal when needed */
    const char *project;  /* --project: a name or id; NULL: the token's */
    const char *ca_file;  /* --ca-file: the CA of an https:// API; NULL: the system's CAs */
    bool json;            /* --format json */
    bool verbose;         /* --debug: requests on stderr */
    /* filled by ek_cli_auth() */
    char *token;
    char *user_name;
    char project_id[64];
    char project_name[256];
    bool is_admin;
    void *curl;
} ek_cli_t;

typedef struct ek_cli_cmd {
    const char *words;   /* "transfer execution show" */
    const char *summary; /* one line */
    const char *details; /* more text for --help, or NULL */
    const ek_cli_spec_t spec;
    int (*run)(ek_cli_t *cli, const ek_cli_args_t *a);
} ek_cli_cmd_t;

/* The command tables of the commands_*.c files, each ending with {NULL}. */
extern const ek_cli_cmd_t ek_cli_cmds_endpoint[];
extern const ek_cli_cmd_t ek_cli_cmds_transfer[];
extern const ek_cli_cmd_t ek_cli_cmds_deployment[];
extern const ek_cli_cmd_t ek_cli_cmds_admin[];

/* Prints "ekman: MESSAGE" on stderr and returns code. */
int ek_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
