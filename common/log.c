/* log.c - the line logger: levels, key=value pairs, thread context, redaction. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/redact.h"
#include "common/strbuf.h"

#define MAX_CONTEXT 8

static char program[64] = "ekman";
static ek_log_level_t min_level = EK_LOG_INFO;
static ek_log_format_t log_format = EK_LOG_TEXT;
static int log_fd = STDERR_FILENO;

struct ctx_pair {
    char *key;
    char *value;
};
static __thread struct ctx_pair context[MAX_CONTEXT];
static __thread int n_context;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void ek_log_init(const char *prog)
{
    const char *base = strrchr(prog, '/');
    snprintf(program, sizeof(program), "%s", base ? base + 1 : prog);
}

void ek_log_set_level(ek_log_level_t level)
{
    min_level = level;
}

ek_log_level_t ek_log_get_level(void)
{
    return min_level;
}

ek_err_t *ek_log_level_parse(const char *name, ek_log_level_t *out)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(names); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (ek_log_level_t)i;
            return NULL;
        }
    }
    if (strcasecmp(name, "warn") == 0) {
        *out = EK_LOG_WARNING;
        return NULL;
    }
    return ek_err_new(EK_E_INVALID, "unknown log level '%s' (use debug, info, warning or error)",
                      name);
}

void ek_log_set_format(ek_log_format_t format)
{
    log_format = format;
}

ek_err_t *ek_log_set_file(const char *path)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
    if (!path || !*path)
        return NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return ek_err_errno(errno, "could not open log file \"%s\"", path);
    log_fd = fd;
    return NULL;
}

void ek_log_context_set(const char *key, const char *value)
{
    for (int i = 0; i < n_context; i++) {
        if (strcmp(context[i].key, key) == 0) {
            free(context[i].value);
            if (value) {
                context[i].value = ek_xstrdup(value);
            } else {
                free(context[i].key);
                context[i] = context[--n_context];
            }
            return;
        }
    }
    if (!value || n_context == MAX_CONTEXT)
        return;
    context[n_context].key = ek_xstrdup(key);
    context[n_context].value = ek_xstrdup(value);
    n_context++;
}

void ek_log_context_clear(void)
{
    for (int i = 0; i < n_context; i++) {
        free(context[i].key);
        free(context[i].value);
    }
    n_context = 0;
}

void ek_log_shutdown(void)
{
    ek_log_context_clear();
    ek_err_free(ek_log_set_file(NULL));
}

static bool needs_quotes(const char *v)
{
    if (!*v)
        return true;
    for (const char *p = v; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\n' || *p == '\t')
            return true;
    return false;
}

static void add_pair(ek_strbuf_t *sb, const char *key, const char *value)
{
    const char *v = value ? value : "(null)";
    if (ek_redact_is_secret_key(key))
        v = EK_REDACTED;
    if (log_format == EK_LOG_JSON) {
        ek_strbuf_adds(sb, ",\"");
        ek_strbuf_add_json_escaped(sb, key);
        ek_strbuf_adds(sb, "\":\"");
        ek_strbuf_add_json_escaped(sb, v);
        ek_strbuf_addch(sb, '"');
        return;
    }
    ek_strbuf_addch(sb, ' ');
    ek_strbuf_adds(sb, key);
    ek_strbuf_addch(sb, '=');
    if (needs_quotes(v)) {
        ek_strbuf_addch(sb, '"');
        ek_strbuf_add_json_escaped(sb, v);
        ek_strbuf_addch(sb, '"');
    } else {
        ek_strbuf_adds(sb, v);
    }
}

static void emit(ek_log_level_t level, const char *msg, va_list *pairs)
{
    if (level < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));

    ek_strbuf_t sb = EK_STRBUF_INIT;
    if (log_format == EK_LOG_JSON) {
        ek_strbuf_addf(&sb, "{\"ts\":\"%s\",\"level\":\"%s\",\"program\":\"", when,
                       level_names[level]);
        ek_strbuf_add_json_escaped(&sb, program);
        ek_strbuf_addf(&sb, "\",\"pid\":%d,\"msg\":\"", (int)getpid());
        ek_strbuf_add_json_escaped(&sb, msg);
        ek_strbuf_addch(&sb, '"');
    } else {
        ek_strbuf_addf(&sb, "%s %s %s[%d]: %s", when, level_names[level], program, (int)getpid(),
                       msg);
    }
    if (pairs) {
        const char *key;
        while ((key = va_arg(*pairs, const char *))) {
            const char *value = va_arg(*pairs, const char *);
            add_pair(&sb, key, value);
        }
    }
    for (int i = 0; i < n_context; i++)
        add_pair(&sb, context[i].key, context[i].value);
    if (log_format == EK_LOG_JSON)
        ek_strbuf_addch(&sb, '}');

    char *line = ek_redact_text(sb.buf);
    ek_strbuf_release(&sb);
    size_t len = strlen(line);
    line = ek_xrealloc(line, len + 2);
    line[len++] = '\n';
    line[len] = '\0';
    const char *p = line;
    while (len > 0) {
        ssize_t n = write(log_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    free(line);
}

void ek_log_kv(ek_log_level_t level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    emit(level, msg, &ap);
    va_end(ap);
}

void ek_logf(ek_log_level_t level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    emit(level, msg, NULL);
    free(msg);
}

void ek_log_err(const ek_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *prefix = ek_xvasprintf(fmt, ap);
    va_end(ap);
    ek_logf(EK_LOG_ERROR, "%s: %s", prefix, err ? err->message : "(no error)");
    free(prefix);
}
