/* args.c - the command-line parser of `ekman` (see args.h). */
#include "client/args.h"

#include <stdlib.h>
#include <string.h>
#include "common/mem.h"

static int find_opt(const ek_cli_args_t *a, const char *name, size_t len)
{
    for (int i = 0; i < a->nopts; i++)
        if (strlen(a->opts[i]->name) == len && strncmp(a->opts[i]->name, name, len) == 0)
            return i;
    return -1;
}

static void add_value(ek_cli_args_t *a, int i, const char *v)
{
    a->vals[i] = ek_xrealloc(a->vals[i], sizeof(char *) * (size_t)(a->nvals[i] + 1));
    a->vals[i][a->nvals[i]++] = v;
}

/* Collects the options of the tables, the first table's winning a name. */
static void gather(const ek_cli_opt_t *const *tables, int ntables, ek_cli_args_t *a)
{
    for (int t = 0; t < ntables; t++)
        for (const ek_cli_opt_t *o = tables[t]; o && o->name; o++)
            if (find_opt(a, o->name, strlen(o->name)) < 0 && a->nopts < EK_CLI_MAX_OPTS)
                a->opts[a->nopts++] = o;
}

/* One "--name[=value]" at argv[*i]; may take argv[*i + 1] as its value. */
static char *parse_long(ek_cli_args_t *a, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    int k = find_opt(a, arg, len);
    if (k < 0)
        return ek_xasprintf("unknown option '--%.*s'", (int)len, arg);
    const ek_cli_opt_t *o = a->opts[k];
    if (!o->metavar) {
        if (eq)
            return ek_xasprintf("option '--%s' takes no value", o->name);
        add_value(a, k, "");
        return NULL;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
        if (*i + 1 >= argc)
            return ek_xasprintf("option '--%s' needs a value (%s)", o->name, o->metavar);
        v = argv[++*i];
    }
    if (a->nvals[k] && !o->repeat)
        return ek_xasprintf("option '--%s' given twice", o->name);
    add_value(a, k, v);
    return NULL;
}

char *ek_cli_args_parse(const ek_cli_opt_t *const *tables, int ntables, int argc, char **argv,
                        ek_cli_args_t *out)
{
    memset(out, 0, sizeof(*out));
    gather(tables, ntables, out);
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        char *err = NULL;
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true;
        } else if (!only_pos && strcmp(arg, "-h") == 0) {
            int k = find_opt(out, "help", 4);
            if (k < 0)
                return ek_xstrdup("unknown option '-h'");
            add_value(out, k, "");
        } else if (!only_pos && arg[0] == '-' && arg[1] == '-') {
            err = parse_long(out, argc, argv, &i);
        } else if (!only_pos && arg[0] == '-' && arg[1]) {
            err = ek_xasprintf("unknown option '%s' (options are long: --name)", arg);
        } else if (out->npos == EK_CLI_MAX_POS) {
            err = ek_xasprintf("unexpected argument '%s'", arg);
        } else {
            out->pos[out->npos++] = arg;
        }
        if (err)
            return err;
    }
    return NULL;
}

char *ek_cli_args_check(const ek_cli_spec_t *spec, const ek_cli_args_t *a)
{
    const char *p = spec->positional ? spec->positional : "";
    int n = 0;
    while (*p) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        bool optional = *p == '[';
        if (n >= a->npos && !optional)
            return ek_xasprintf("missing argument %.*s", (int)len, p);
        n++;
        p += len;
    }
    if (a->npos > n)
        return ek_xasprintf("unexpected argument '%s'", a->pos[n]);
    for (int i = 0; i < a->nopts; i++)
        if (a->opts[i]->required && !a->nvals[i])
            return ek_xasprintf("missing option --%s %s", a->opts[i]->name,
                                a->opts[i]->metavar ? a->opts[i]->metavar : "");
    return NULL;
}

void ek_cli_args_release(ek_cli_args_t *a)
{
    for (int i = 0; i < a->nopts; i++)
        free(a->vals[i]);
    memset(a, 0, sizeof(*a));
}

const char *ek_cli_opt(const ek_cli_args_t *a, const char *name)
{
    int k = find_opt(a, name, strlen(name));
    return k >= 0 && a->nvals[k] ? a->vals[k][a->nvals[k] - 1] : NULL;
}

int ek_cli_opt_all(const ek_cli_args_t *a, const char *name, const char *const **values)
{
    int k = find_opt(a, name, strlen(name));
    *values = k >= 0 ? a->vals[k] : NULL;
    return k >= 0 ? a->nvals[k] : 0;
}

bool ek_cli_flag(const ek_cli_args_t *a, const char *name)
{
    return ek_cli_opt(a, name) != NULL;
}

void ek_cli_opts_help(const char *heading, const ek_cli_opt_t *opts, ek_strbuf_t *out)
{
    size_t width = 0;
    for (const ek_cli_opt_t *o = opts; o && o->name; o++) {
        size_t w = strlen(o->name) + (o->metavar ? strlen(o->metavar) + 1 : 0);
        width = w > width ? w : width;
    }
    if (!opts || !opts->name)
        return;
    ek_strbuf_addf(out, "\n%s:\n", heading);
    for (const ek_cli_opt_t *o = opts; o->name; o++) {
        char *left =
            ek_xasprintf("%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        ek_strbuf_addf(out, "  --%-*s  %s%s%s\n", (int)width, left, o->help,
                       o->repeat ? " (repeatable)" : "", o->required ? " (required)" : "");
        free(left);
    }
}

void ek_cli_usage(const char *words, const ek_cli_spec_t *spec, ek_strbuf_t *out)
{
    ek_strbuf_addf(out, "Usage: ekman %s%s%s [options]\n", words,
                   spec->positional && *spec->positional ? " " : "",
                   spec->positional ? spec->positional : "");
    ek_cli_opts_help("Options", spec->opts, out);
}
