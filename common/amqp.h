/* amqp.h - one AMQP 0-9-1 connection (librabbitmq) with one channel.
 *
 * The URL is [messaging] transport_url: amqp://user:password@host:port/vhost.
 * Queues are durable; with quorum set they are declared x-queue-type=quorum. */
#ifndef EK_AMQP_H
#define EK_AMQP_H

#include <stdbool.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_amqp ek_amqp_t;

EK_ERR_CHECK ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out);
/* Connects with [messaging] transport_url and heartbeat. */
EK_ERR_CHECK ek_amqp_connect_config(const ek_config_t *cfg, ek_amqp_t **out);
/* Declares a durable queue (idempotent). */
EK_ERR_CHECK ek_amqp_declare_queue(ek_amqp_t *conn, const char *name, bool quorum);
/* "host:port/vhost" of the connection, for log lines. */
const char *ek_amqp_peer(const ek_amqp_t *conn);
void ek_amqp_close(ek_amqp_t *conn);

#endif
