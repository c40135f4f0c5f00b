/* main.c - ekman: the command-line client of Ekman's REST API. Global
 * options, the command tables of commands_*.c, help and dispatch. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client/cli.h"
#include "client/commands.h"
#include "client/session.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/strbuf.h"

static const ek_cli_opt_t global_opts[] = {
    EK_OPT("url", "URL", "API address (default: $EKMAN_URL, else http://127.0.0.1:7667)"),
    EK_OPT("ca-file", "FILE",
           "CA certificate(s) an https:// API's certificate is checked against (default: "
           "$EKMAN_CA_FILE, else the system's CAs)"),
    EK_OPT("username", "NAME", "user name (default: $EKMAN_USERNAME, else the last login)"),
    EK_OPT("password", "PASSWORD",
           "password (default: $EKMAN_PASSWORD, else asked on the terminal; prefer the variable)"),
    EK_OPT("project", "PROJECT",
           "project name or id to work in (default: $EKMAN_PROJECT, else the "
           "user's own; another one needs an admin)"),
    EK_OPT("format", "FORMAT", "output: table (default) or json"),
    EK_OPT("debug", NULL, "show the HTTP requests on stderr"),
    EK_OPT("help", NULL, "show the help of the command"),
    EK_OPT("version", NULL, "show the version"),
    EK_OPT("check-config", NULL,
           "validate the Ekman configuration file (--config FILE, else $EKMAN_CONFIG or "
           "/etc/ekman/ekman.conf), print it as JSON with secrets masked, exit"),
    EK_OPT("config", "FILE", "the configuration file of --check-config (ekman needs none)"),
    EK_OPT_END,
};

static const ek_cli_cmd_t base_cmds[] = {
    {"login",
     "log in and cache the token (asks for the password on a terminal)",
     NULL,
     {NULL, NULL},
     ek_cli_cmd_login},
    {"logout", "forget the cached token of the user", NULL, {NULL, NULL}, ek_cli_cmd_logout},
    {"status",
     "check that the API answers (GET /healthz; needs no login)",
     NULL,
     {NULL, NULL},
     ek_cli_cmd_status},
    {NULL, NULL, NULL, {NULL, NULL}, NULL},
};

static const ek_cli_cmd_t *const tables[] = {base_cmds, ek_cli_cmds_endpoint, ek_cli_cmds_transfer,
                                             ek_cli_cmds_deployment, ek_cli_cmds_admin};

int ek_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ekman: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* How many leading words of words[] the command's words match (all or 0). */
static int matches(const char *cmd_words, char **words, int nwords)
{
    int n = 0;
    const char *p = cmd_words;
    while (*p) {
        size_t len = strcspn(p, " ");
        if (n >= nwords || strlen(words[n]) != len || strncmp(words[n], p, len))
            return 0;
        n++;
        p += len;
        p += *p == ' ';
    }
    return n;
}

/* True when prefix (n words) starts some command: a group like "transfer". */
static bool is_group(char **words, int n)
{
    for (size_t t = 0; t < EK_ARRAY_SIZE(tables); t++)
        for (const ek_cli_cmd_t *c = tables[t]; c->words; c++) {
            char *pre = NULL;
            ek_strbuf_t sb = EK_STRBUF_INIT;
            for (int i = 0; i < n; i++)
                ek_strbuf_addf(&sb, "%s%s", i ? " " : "", words[i]);
            pre = ek_strbuf_detach(&sb);
            bool yes = strncmp(c->words, pre, strlen(pre)) == 0 && c->words[strlen(pre)] == ' ';
            free(pre);
            if (yes)
                return true;
        }
    return false;
}

static void list_commands(const char *group, ek_strbuf_t *out)
{
    size_t width = 0, glen = group ? strlen(group) : 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t t = 0; t < EK_ARRAY_SIZE(tables); t++)
            for (const ek_cli_cmd_t *c = tables[t]; c->words; c++) {
                if (group && (strncmp(c->words, group, glen) || c->words[glen] != ' '))
                    continue;
                size_t w =
                    strlen(c->words) + 1 + (c->spec.positional ? strlen(c->spec.positional) : 0);
                if (pass == 0) {
                    width = w > width ? w : width;
                    continue;
                }
                char *left =
                    ek_xasprintf("%s %s", c->words, c->spec.positional ? c->spec.positional : "");
                ek_strbuf_addf(out, "  %-*s  %s\n", (int)width, left, c->summary);
                free(left);
            }
}

static int help_top(FILE *f, int code)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, "Usage: ekman [global options] COMMAND [arguments] [options]\n\n"
                        "The command-line client of Ekman's REST API.\n\nCommands:\n");
    list_commands(NULL, &sb);
    ek_cli_opts_help("Global options (before or after the command)", global_opts, &sb);
    ek_strbuf_adds(&sb, "\n`ekman COMMAND --help` describes a command; `man ekman` has the "
                        "exit codes and examples.\n");
    fputs(sb.buf, f);
    ek_strbuf_release(&sb);
    return code;
}

static int help_group(char **words, int n, FILE *f, int code)
{
    ek_strbuf_t group = EK_STRBUF_INIT, sb = EK_STRBUF_INIT;
    for (int i = 0; i < n; i++)
        ek_strbuf_addf(&group, "%s%s", i ? " " : "", words[i]);
    ek_strbuf_addf(&sb, "Usage: ekman %s SUBCOMMAND [arguments] [options]\n\nSubcommands:\n",
                   group.buf);
    list_commands(group.buf, &sb);
    ek_strbuf_addf(&sb, "\n`ekman %s SUBCOMMAND --help` describes a subcommand.\n", group.buf);
    fputs(sb.buf, f);
    ek_strbuf_release(&sb);
    ek_strbuf_release(&group);
    return code;
}

static void help_cmd(const ek_cli_cmd_t *c, FILE *f)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    const ek_cli_spec_t *spec = &c->spec;
    ek_strbuf_addf(&sb, "Usage: ekman %s%s%s [options]\n\n%c%s.\n", c->words,
                   spec->positional ? " " : "", spec->positional ? spec->positional : "",
                   toupper((unsigned char)c->summary[0]), c->summary + 1);
    if (c->details)
        ek_strbuf_addf(&sb, "\n%s\n", c->details);
    ek_cli_opts_help("Options", spec->opts, &sb);
    ek_cli_opts_help("Global options", global_opts, &sb);
    fputs(sb.buf, f);
    ek_strbuf_release(&sb);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Fills cli from the global options and the environment. */
static int setup(ek_cli_t *cli, const ek_cli_args_t *a, char **url_owned)
{
    const char *url = ek_cli_opt(a, "url") ? ek_cli_opt(a, "url") : env("EKMAN_URL");
    *url_owned = ek_xstrdup(url ? url : "http://127.0.0.1:7667");
    size_t len = strlen(*url_owned);
    while (len && (*url_owned)[len - 1] == '/')
        (*url_owned)[--len] = '\0';
    cli->url = *url_owned;
    cli->username = ek_cli_opt(a, "username") ? ek_cli_opt(a, "username") : env("EKMAN_USERNAME");
    cli->password = ek_cli_opt(a, "password") ? ek_cli_opt(a, "password") : env("EKMAN_PASSWORD");
    cli->project = ek_cli_opt(a, "project") ? ek_cli_opt(a, "project") : env("EKMAN_PROJECT");
    cli->ca_file = ek_cli_opt(a, "ca-file") ? ek_cli_opt(a, "ca-file") : env("EKMAN_CA_FILE");
    cli->verbose = ek_cli_flag(a, "debug");
    const char *fmt = ek_cli_opt(a, "format") ? ek_cli_opt(a, "format") : "table";
    if (strcmp(fmt, "table") && strcmp(fmt, "json"))
        return ek_cli_fail(EK_CLI_USAGE, "--format must be table or json, not '%s'", fmt);
    cli->json = strcmp(fmt, "json") == 0;
    if (strncmp(cli->url, "http://", 7) && strncmp(cli->url, "https://", 8))
        return ek_cli_fail(EK_CLI_USAGE, "--url must start with http:// or https://, not '%s'",
                           cli->url);
    return EK_CLI_OK;
}

static int run(const ek_cli_cmd_t *c, int argc, char **argv)
{
    const ek_cli_opt_t *const opts[] = {c->spec.opts, global_opts};
    ek_cli_args_t a;
    char *err = ek_cli_args_parse(opts, 2, argc, argv, &a);
    if (!err && ek_cli_flag(&a, "help")) {
        help_cmd(c, stdout);
        ek_cli_args_release(&a);
        return EK_CLI_OK;
    }
    if (!err)
        err = ek_cli_args_check(&c->spec, &a);
    if (err) {
        ek_cli_fail(EK_CLI_USAGE, "%s: %s", c->words, err);
        ek_strbuf_t sb = EK_STRBUF_INIT;
        ek_cli_usage(c->words, &c->spec, &sb);
        fprintf(stderr, "%s(see ekman %s --help)\n", sb.buf, c->words);
        ek_strbuf_release(&sb);
        free(err);
        ek_cli_args_release(&a);
        return EK_CLI_USAGE;
    }
    ek_cli_t cli = {0};
    char *url = NULL;
    int ret = setup(&cli, &a, &url);
    if (!ret)
        ret = c->run(&cli, &a);
    ek_cli_session_free(&cli);
    free(url);
    ek_cli_args_release(&a);
    return ret;
}

/* Global options before the command: ekman --url X transfer list. */
static int leading_globals(int argc, char **argv, int *first)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        const char *name = argv[i] + 2;
        size_t len = strcspn(name, "=");
        const ek_cli_opt_t *o = NULL;
        for (const ek_cli_opt_t *g = global_opts; g->name && argv[i][1] == '-'; g++)
            if (strlen(g->name) == len && !strncmp(g->name, name, len))
                o = g;
        if (!o && strcmp(argv[i], "-h"))
            return ek_cli_fail(EK_CLI_USAGE, "unknown option '%s' (see ekman --help)", argv[i]);
        i += o && o->metavar && !name[len] ? 2 : 1;
    }
    *first = i > argc ? argc : i;
    return EK_CLI_OK;
}

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], flag) || (!strcmp(flag, "--help") && !strcmp(argv[i], "-h")))
            return true;
    return false;
}

/* Finds the command named by the words at argv[first..]: the longest match. */
static const ek_cli_cmd_t *find_cmd(int argc, char **argv, int first, int *nwords)
{
    int nw = 0;
    while (first + nw < argc && argv[first + nw][0] != '-')
        nw++;
    const ek_cli_cmd_t *best = NULL;
    *nwords = 0;
    for (size_t t = 0; t < EK_ARRAY_SIZE(tables); t++)
        for (const ek_cli_cmd_t *c = tables[t]; c->words; c++) {
            int n = matches(c->words, argv + first, nw);
            if (n > *nwords) {
                *nwords = n;
                best = c;
            }
        }
    return best;
}

/* --check-config is the one flag every Ekman binary shares (common/program.c). */
static int check_config(int argc, char **argv)
{
    static const ek_program_info_t info = {
        .name = "ekman",
        .summary = "Command-line client of the Ekman REST API.",
        .config_optional = true,
    };
    ek_config_t *cfg = NULL;
    int code = EK_CLI_OK;
    if (ek_program_start(&info, &argc, argv, &cfg, &code))
        ek_config_free(cfg);
    ek_log_shutdown();
    return code;
}

int main(int argc, char **argv)
{
    int first = argc, ret;
    if (has_flag(argc, argv, "--check-config"))
        return check_config(argc, argv);
    if ((ret = leading_globals(argc, argv, &first)))
        return ret;
    if (has_flag(first, argv, "--version")) {
        printf("ekman %s\n", EKMAN_VERSION);
        return EK_CLI_OK;
    }
    if (first >= argc)
        return has_flag(argc, argv, "--help") ? help_top(stdout, EK_CLI_OK)
                                              : (ek_cli_fail(EK_CLI_USAGE, "no command given"),
                                                 help_top(stderr, EK_CLI_USAGE));
    int nwords = 0;
    const ek_cli_cmd_t *c = find_cmd(argc, argv, first, &nwords);
    int ngroup = 0;
    while (first + ngroup < argc && argv[first + ngroup][0] != '-' &&
           is_group(argv + first, ngroup + 1))
        ngroup++;
    if (ngroup > nwords || !c) {
        if (!ngroup) {
            ek_cli_fail(EK_CLI_USAGE, "unknown command '%s' (see ekman --help)", argv[first]);
            return EK_CLI_USAGE;
        }
        if (has_flag(argc, argv, "--help"))
            return help_group(argv + first, ngroup, stdout, EK_CLI_OK);
        ek_strbuf_t group = EK_STRBUF_INIT;
        for (int i = 0; i < ngroup; i++)
            ek_strbuf_addf(&group, "%s%s", i ? " " : "", argv[first + i]);
        if (first + ngroup < argc && argv[first + ngroup][0] != '-')
            ek_cli_fail(EK_CLI_USAGE, "unknown command '%s %s'", group.buf, argv[first + ngroup]);
        else
            ek_cli_fail(EK_CLI_USAGE, "'%s' needs a subcommand", group.buf);
        ek_strbuf_release(&group);
        return help_group(argv + first, ngroup, stderr, EK_CLI_USAGE);
    }
    /* the global options given first are parsed again with the command's */
    int n = first - 1 + argc - first - nwords;
    char **rest = ek_xcalloc((size_t)n + 1, sizeof(char *));
    memcpy(rest, argv + 1, sizeof(char *) * (size_t)(first - 1));
    memcpy(rest + first - 1, argv + first + nwords,
           sizeof(char *) * (size_t)(argc - first - nwords));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ret = run(c, n, rest);
    curl_global_cleanup();
    free(rest);
    return ret;
}
