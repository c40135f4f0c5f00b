/* amqp_idle.c - ek-fault-amqp-idle: a publish after an idle spell longer
 * than the broker tolerates (issue #18: "a socket error occurred" on the
 * first publish after ~70 s). Connects with the given heartbeat, publishes,
 * sits idle for IDLE seconds without touching the connection, publishes
 * again: both must succeed, first time, without the caller retrying. Then
 * the same connection consumes the queue (it can no longer be replaced) and
 * sits IDLE_S more, only calling ek_amqp_service now and then as a full
 * worker does; a third publish must succeed too.
 *   ek-fault-amqp-idle --config FILE QUEUE HEARTBEAT_S IDLE_S */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "common/amqp.h"
#include "common/log.h"
#include "common/program.h"

int main(int argc, char **argv)
{
    static const ek_program_info_t info = {.name = "ek-fault-amqp-idle",
                                           .summary = "Publish, sit idle, publish again."};
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    if (argc != 4) {
        fprintf(stderr, "usage: ek-fault-amqp-idle --config FILE QUEUE HEARTBEAT_S IDLE_S\n");
        ek_config_free(cfg);
        return 2;
    }
    ek_amqp_t *mq = NULL;
    ek_err_t *err = ek_amqp_connect(ek_amqp_config_url(cfg), atoi(argv[2]), &mq);
    if (!err) {
        printf("negotiated heartbeat: %d s\n", ek_amqp_heartbeat(mq));
        err = ek_amqp_declare_queue(mq, argv[1], false);
    }
    if (!err)
        err = ek_amqp_publish(mq, argv[1], "{\"n\":1}", NULL, NULL);
    if (!err) {
        sleep((unsigned)atoi(argv[3]));
        err = ek_amqp_publish(mq, argv[1], "{\"n\":2}", NULL, NULL);
    }
    if (!err)
        err = ek_amqp_consume(mq, argv[1], 1);
    for (int waited_ms = 0; !err && waited_ms < atoi(argv[3]) * 1000; waited_ms += 200) {
        usleep(200 * 1000);
        err = ek_amqp_service(mq);
    }
    if (!err)
        err = ek_amqp_publish(mq, argv[1], "{\"n\":3}", NULL, NULL);
    ek_amqp_close(mq);
    ek_config_free(cfg);
    if (err) {
        fprintf(stderr, "ek-fault-amqp-idle: %s\n", err->message);
        ek_err_free(err);
        return 1;
    }
    printf("all three publishes confirmed\n");
    return 0;
}
