/* amqp_send.c - ek-amqp-send: publishes one message, exactly as given, to a
 * queue (tests use it to send corrupt and unknown messages).
 *   ek-amqp-send --config FILE QUEUE BODY */
#include <stdio.h>
#include "common/amqp.h"
#include "common/log.h"
#include "common/program.h"

int main(int argc, char **argv)
{
    static const ek_program_info_t info = {.name = "ek-amqp-send",
                                           .summary = "Publish one raw message to a queue."};
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    if (argc != 3) {
        fprintf(stderr, "usage: ek-amqp-send --config FILE QUEUE BODY\n");
        ek_config_free(cfg);
        return 2;
    }
    ek_amqp_t *mq = NULL;
    ek_err_t *err = ek_amqp_connect_config(cfg, &mq);
    if (!err)
        err = ek_amqp_publish(mq, argv[1], argv[2], NULL, NULL);
    ek_amqp_close(mq);
    ek_config_free(cfg);
    if (err) {
        fprintf(stderr, "ek-amqp-send: %s\n", err->message);
        ek_err_free(err);
        return 1;
    }
    return 0;
}
