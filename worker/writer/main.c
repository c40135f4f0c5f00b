/* main.c - ekman-writer: the agent in the disk-copy worker VM that writes the
 * chunks it receives at their offsets on the attached disks. It needs no
 * configuration file: everything comes from flags. */
#include <stdio.h>
#include "common/log.h"
#include "common/program.h"

static const ek_program_info_t info = {
    .name = "ekman-writer",
    .config_optional = true,
    .summary = "Ekman's disk writer agent for the temporary disk-copy VM.",
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
    ek_info("writer started");
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
    ek_config_free(cfg);
    ek_info("writer stopped");
    ek_log_shutdown();
    return 0;
}
