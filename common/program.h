/* program.h - what every Ekman binary does before its own work: common flags,
 * configuration, logging, and SIGTERM/SIGINT handling.
 *
 * Common flags (all binaries):
 *   --config FILE    configuration file (default: $EKMAN_CONFIG, else
 *                    /etc/ekman/ekman.conf when it exists, else built-in defaults)
 *   --check-config   load and validate the configuration, print it as JSON with
 *                    secrets masked, exit 0; or print the errors and exit 1
 *   --log-level L    override [DEFAULT] log_level
 *   --help, --version
 * Flags a binary does not know here are left in argv for it. */
#ifndef EK_PROGRAM_H
#define EK_PROGRAM_H

#include <stdbool.h>
#include "common/config.h"

typedef struct ek_program_info {
    const char *name;     /* "ekman-conductor" */
    const char *summary;  /* one line for --help */
    const char *usage;    /* the binary's own flags for --help, or NULL */
    bool config_optional; /* no warning when no configuration file exists */
} ek_program_info_t;

/* Parses the common flags, loads the configuration and sets up logging.
 * Returns true when the program should go on, with *cfg set and argc/argv
 * holding only the flags left for the binary; returns false when it should
 * exit with *exit_code (after --help, --version, --check-config or an error). */
bool ek_program_start(const ek_program_info_t *info, int *argc, char **argv, ek_config_t **cfg,
                      int *exit_code);

/* Installs SIGTERM/SIGINT/SIGHUP handlers and ignores SIGPIPE. */
void ek_signals_install(void);
/* True once SIGTERM or SIGINT arrived. */
bool ek_stop_requested(void);
/* Sets the stop flag as a signal would (tests, fatal conditions). */
void ek_stop_request(void);
/* A descriptor that becomes readable when a stop was requested (for poll). */
int ek_stop_fd(void);
/* Sleeps up to ms milliseconds; returns true early when a stop is requested. */
bool ek_stop_wait(int ms);
/* The signal that requested the stop, or 0. */
int ek_stop_signal(void);

#endif
