/* main.c - ekman-scheduler: service registry, task placement, transfer schedules. */
#include <stdio.h>
#include "common/amqp.h"
#include "common/db.h"
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

    PGconn *db = NULL;
    ek_amqp_t *mq = NULL;
    ek_err_t *err = NULL;
    if ((err = ek_db_connect_config(cfg, &db)) || (err = ek_amqp_connect_config(cfg, &mq)) ||
        (err = ek_amqp_declare_queue(mq, "ekman.scheduler",
                                     ek_config_get_bool(cfg, "messaging", "quorum_queues")))) {
        code = ek_stop_requested() ? 0 : 1;
        if (code)
            ek_log_err(err, "cannot start");
        goto out;
    }
    char interval[32];
    snprintf(interval, sizeof(interval), "%lld",
             (long long)ek_config_get_int(cfg, "scheduler", "heartbeat_interval"));
    ek_log_kv(EK_LOG_INFO, "scheduler started", "broker", ek_amqp_peer(mq), "heartbeat_interval",
              interval, NULL);
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
out:
    ek_err_free(err);
    ek_amqp_close(mq);
    PQfinish(db);
    ek_config_free(cfg);
    ek_info("scheduler stopped");
    ek_log_shutdown();
    return code;
}
