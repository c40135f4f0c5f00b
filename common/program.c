/* program.c - common start-up of Ekman binaries: flags, config, logging, signals. */
#include "common/program.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

#define DEFAULT_CONFIG "/etc/ekman/ekman.conf"

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stop_signo;
static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGTERM || sig == SIGINT) {
        stop_signo = sig;
        if (!stop_flag) {
            stop_flag = 1;
            if (stop_pipe[1] >= 0) {
                ssize_t EK_UNUSED n = write(stop_pipe[1], "x", 1);
            }
        }
    }
    errno = saved;
}

void ek_signals_install(void)
{
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        stop_pipe[0] = stop_pipe[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool ek_stop_requested(void)
{
    return stop_flag != 0;
}

void ek_stop_request(void)
{
    on_signal(SIGTERM);
    stop_signo = 0;
}

int ek_stop_fd(void)
{
    return stop_pipe[0];
}

int ek_stop_signal(void)
{
    return stop_signo;
}

bool ek_stop_wait(int ms)
{
    if (stop_flag)
        return true;
    struct pollfd pfd = {.fd = stop_pipe[0], .events = POLLIN};
    if (pfd.fd < 0) {
        usleep((useconds_t)ms * 1000);
    } else {
        int r;
        do {
            r = poll(&pfd, 1, ms);
        } while (r < 0 && errno == EINTR && !stop_flag);
    }
    return stop_flag != 0;
}

static void print_help(const ek_program_info_t *info)
{
    printf("Usage: %s [OPTIONS]\n%s\n\n"
           "Common options:\n"
           "  --config FILE     configuration file (default: $EKMAN_CONFIG, else %s)\n"
           "  --check-config    validate the configuration, print it as JSON (secrets masked)\n"
           "  --log-level L     debug, info, warning or error\n"
           "  --help            this text\n"
           "  --version         print the version\n",
           info->name, info->summary, DEFAULT_CONFIG);
    if (info->usage)
        printf("\n%s", info->usage);
}

static bool apply_logging(const ek_config_t *cfg, const char *level_override, int *exit_code)
{
    ek_log_level_t level;
    ek_err_t *err = ek_log_level_parse(
        level_override ? level_override : ek_config_get_string(cfg, "DEFAULT", "log_level"), &level);
    if (err) {
        fprintf(stderr, "%s\n", err->message);
        ek_err_free(err);
        *exit_code = 2;
        return false;
    }
    ek_log_set_level(level);
    ek_log_set_format(strcmp(ek_config_get_string(cfg, "DEFAULT", "log_format"), "json") == 0
                          ? EK_LOG_JSON
                          : EK_LOG_TEXT);
    err = ek_log_set_file(ek_config_get_string(cfg, "DEFAULT", "log_file"));
    if (err) {
        fprintf(stderr, "%s\n", err->message);
        ek_err_free(err);
        *exit_code = 1;
        return false;
    }
    return true;
}

bool ek_program_start(const ek_program_info_t *info, int *argc, char **argv, ek_config_t **cfg,
                      int *exit_code)
{
    const char *config_path = NULL;
    const char *level = NULL;
    bool check = false;
    int out = 1;

    ek_log_init(info->name);
    *cfg = NULL;
    *exit_code = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 || strcmp(a, "--log-level") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "%s: %s needs a value\n", info->name, a);
                *exit_code = 2;
                return false;
            }
            if (a[2] == 'c')
                config_path = argv[++i];
            else
                level = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config_path = a + 9;
        } else if (strncmp(a, "--log-level=", 12) == 0) {
            level = a + 12;
        } else if (strcmp(a, "--check-config") == 0) {
            check = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(info);
            return false;
        } else if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", info->name, EKMAN_VERSION);
            return false;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;

    bool explicit_path = config_path != NULL;
    if (!config_path && getenv("EKMAN_CONFIG") && *getenv("EKMAN_CONFIG")) {
        config_path = getenv("EKMAN_CONFIG");
        explicit_path = true;
    }
    if (!config_path && access(DEFAULT_CONFIG, F_OK) == 0)
        config_path = DEFAULT_CONFIG;

    ek_config_t *c = ek_config_new();
    if (config_path) {
        ek_err_t *err = ek_config_load_file(c, config_path);
        if (err) {
            fprintf(stderr, "%s: invalid configuration:\n%s\n", info->name, err->message);
            ek_err_free(err);
            ek_config_free(c);
            *exit_code = 1;
            return false;
        }
    }
    for (size_t i = 0; i < ek_config_warning_count(c); i++)
        fprintf(stderr, "%s: warning: %s\n", info->name, ek_config_warning(c, i));

    if (check) {
        json_object *j = ek_config_to_json(c, true);
        char *s = ek_json_dump(j, true);
        printf("%s\n", s);
        free(s);
        json_object_put(j);
        ek_config_free(c);
        return false;
    }
    if (!apply_logging(c, level, exit_code)) {
        ek_config_free(c);
        return false;
    }
    if (!config_path)
        ek_warn("no configuration file (%s does not exist): using built-in defaults",
                DEFAULT_CONFIG);
    else
        ek_debug("configuration loaded from %s%s", config_path,
                 explicit_path ? "" : " (default location)");
    *cfg = c;
    return true;
}
