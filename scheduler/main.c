/* main.c - ekman-scheduler: service registry, task placement, transfer schedules. */
#include <stdio.h>
#include "common/log.h"
#include "common/program.h"

static const ek_program_info_t info = {
    .name = "ekman-scheduler",
    .summary = "Ekman's scheduler: worker registry and heartbeats, task placement, cron schedules.",
};

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    if (argc > 1) {
        fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", info.name, argv[1]);
        ek_config_free(cfg);
        return 2;
    }
    ek_signals_install();
    char interval[32];
    snprintf(interval, sizeof(interval), "%lld",
             (long long)ek_config_get_int(cfg, "scheduler", "heartbeat_interval"));
    ek_log_kv(EK_LOG_INFO, "scheduler started", "heartbeat_interval", interval, NULL);
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
    ek_config_free(cfg);
    ek_info("scheduler stopped");
    ek_log_shutdown();
    return 0;
}
