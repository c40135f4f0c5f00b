/* main.c - ekman-conductor: the REST API and owner of all state. */
#include <stdio.h>
#include "common/log.h"
#include "common/program.h"
#include "conductor/api.h"

static const ek_program_info_t info = {
    .name = "ekman-conductor",
    .summary = "Ekman's conductor: REST API, state in PostgreSQL, task graphs over AMQP.",
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

    ek_api_t *api = NULL;
    ek_err_t *err = ek_api_start(cfg, &api);
    if (err) {
        ek_log_err(err, "cannot start the API");
        ek_err_free(err);
        ek_config_free(cfg);
        return 1;
    }
    ek_log_kv(EK_LOG_INFO, "conductor started", "api", ek_api_address(api), "version",
              EKMAN_VERSION, NULL);
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
    ek_api_stop(api);
    ek_config_free(cfg);
    ek_info("conductor stopped");
    ek_log_shutdown();
    return 0;
}
