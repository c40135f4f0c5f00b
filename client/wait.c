/* wait.c - `--wait`: polls an execution until it ends and shows its progress,
 * redrawn in place on a terminal, as appended lines otherwise (logs, CI). */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "client/commands.h"
#include "client/progress.h"
#include "client/session.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "proto/status.h"

#define POLL_MS 1000

/* The terminal's size; 80x24 when unknown. */
static void term_size(size_t *cols, size_t *rows)
{
    struct winsize ws;
    bool ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0;
    *cols = ok && ws.ws_col > 10 ? ws.ws_col : 80;
    *rows = ok && ws.ws_row > 3 ? ws.ws_row : 24;
}

/* Replaces the view drawn last time (*drawn lines) with text, each line cut
 * to the terminal's width and the text to its height, so that moving the
 * cursor up by the count of lines drawn lands on the first one. */
static void redraw(const char *text, size_t *drawn)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    if (*drawn)
        ek_strbuf_addf(&sb, "\r\033[%zuA\033[J", *drawn);
    size_t width, rows, lines = 0;
    term_size(&width, &rows);
    width--;
    for (const char *line = text, *nl; *line && lines + 1 < rows; line = nl + 1) {
        nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line), chars = 0, cut = 0;
        for (; cut < len; cut++) {
            if (((unsigned char)line[cut] & 0xc0) != 0x80 && ++chars > width)
                break;
        }
        ek_strbuf_add(&sb, line, cut);
        ek_strbuf_addch(&sb, '\n');
        lines++;
    }
    fputs(sb.buf, stdout);
    fflush(stdout);
    ek_strbuf_release(&sb);
    *drawn = lines;
}

static void show(json_object *exec, const char *title, bool tty, FILE *out, json_object *seen,
                 size_t *drawn)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    if (tty) {
        ek_cli_progress_view(exec, title, &sb);
        redraw(sb.buf, drawn);
    } else {
        ek_cli_progress_lines(exec, title, seen, &sb);
        fputs(sb.buf, out);
        fflush(out);
    }
    ek_strbuf_release(&sb);
}

/* The end: the errors of a failed execution, the JSON document for scripts. */
static int conclude(ek_cli_t *cli, json_object *exec, const char *title, const char *status)
{
    if (cli->json) {
        char *text = ek_json_dump(exec, true);
        puts(text);
        free(text);
    }
    if (strcmp(status, "COMPLETED") == 0)
        return EK_CLI_OK;
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_cli_progress_errors(exec, &sb);
    ek_cli_fail(EK_CLI_FAILED, "%s ended %s%s%s", title, status, sb.len ? ":\n" : "",
                sb.len ? sb.buf : "");
    ek_strbuf_release(&sb);
    return EK_CLI_FAILED;
}

int ek_cli_wait(ek_cli_t *cli, const char *path, const char *key, const char *title, int timeout_s)
{
    bool tty = !cli->json && isatty(STDOUT_FILENO);
    FILE *out = cli->json ? stderr : stdout;
    json_object *seen = json_object_new_object();
    size_t drawn = 0;
    time_t start = time(NULL);
    int ret;
    for (;;) {
        json_object *doc;
        if ((ret = ek_cli_call(cli, "GET", path, NULL, &doc)))
            break;
        json_object *exec = json_object_object_get(doc, key);
        const char *st = json_object_get_string(json_object_object_get(exec, "status"));
        show(exec, title, tty, out, seen, &drawn);
        ek_exec_status_t es;
        if (ek_exec_status_parse(st, &es) && ek_exec_status_final(es)) {
            ret = conclude(cli, exec, title, st);
            json_object_put(doc);
            break;
        }
        json_object_put(doc);
        if (timeout_s > 0 && time(NULL) - start >= timeout_s) {
            ret = ek_cli_fail(EK_CLI_API,
                              "gave up waiting after %d s: %s is still %s (it goes on; show it "
                              "again later)",
                              timeout_s, title, st ? st : "running");
            break;
        }
        usleep(POLL_MS * 1000);
    }
    json_object_put(seen);
    return ret;
}

int ek_cli_timeout_opt(const ek_cli_args_t *a)
{
    const char *v = ek_cli_opt(a, "timeout");
    if (!v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n <= 0 || n > 86400 * 30) {
        ek_cli_fail(EK_CLI_USAGE, "--timeout must be a number of seconds, not '%s'", v);
        return -1;
    }
    return (int)n;
}
