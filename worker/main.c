/* main.c - ekman-worker: runs tasks in child processes with the provider plugins. */
#include <stdio.h>
#include <unistd.h>
#include "common/amqp.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/strbuf.h"

static const ek_program_info_t info = {
    .name = "ekman-worker",
    .summary = "Ekman's worker: runs migration tasks with the provider plugins.",
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

    char host[256];
    const char *configured = ek_config_get_string(cfg, "worker", "host");
    if (*configured)
        snprintf(host, sizeof(host), "%s", configured);
    else if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    bool quorum = ek_config_get_bool(cfg, "messaging", "quorum_queues");
    char *own_queue = ek_xasprintf("ekman.worker.%s", host);
    ek_amqp_t *mq = NULL;
    ek_err_t *err = NULL;
    if ((err = ek_amqp_connect_config(cfg, &mq)) ||
        (err = ek_amqp_declare_queue(mq, "ekman.worker", quorum)) ||
        (err = ek_amqp_declare_queue(mq, own_queue, quorum))) {
        code = ek_stop_requested() ? 0 : 1;
        if (code)
            ek_log_err(err, "cannot start");
        goto out;
    }

    ek_strbuf_t providers = EK_STRBUF_INIT;
    const ek_strlist_t *list = ek_config_get_list(cfg, "worker", "providers");
    for (size_t i = 0; i < list->n; i++)
        ek_strbuf_addf(&providers, "%s%s", i ? "," : "", list->items[i]);
    char capacity[32];
    snprintf(capacity, sizeof(capacity), "%lld",
             (long long)ek_config_get_int(cfg, "worker", "capacity"));
    ek_log_kv(EK_LOG_INFO, "worker started", "host", host, "region",
              ek_config_get_string(cfg, "worker", "region"), "providers", providers.buf,
              "capacity", capacity, "broker", ek_amqp_peer(mq), NULL);
    ek_strbuf_release(&providers);

    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
out:
    ek_err_free(err);
    ek_amqp_close(mq);
    free(own_queue);
    ek_config_free(cfg);
    ek_info("worker stopped");
    ek_log_shutdown();
    return code;
}
