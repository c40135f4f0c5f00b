/* amqp.h - AMQP 0-9-1 (librabbitmq): one connection with one channel, used by
 * one thread at a time (librabbitmq connections are not thread-safe).
 *
 * The URL is [messaging] transport_url: amqp://user:password@host:port/vhost.
 * Queues are durable and messages persistent; publishing waits for the
 * broker's confirm, so a publish that returned NULL survives a broker restart.
 * A queue declared here dead-letters rejected messages into "<name>.dead". */
#ifndef EK_AMQP_H
#define EK_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_amqp ek_amqp_t;

typedef struct ek_amqp_msg {
    uint64_t delivery_tag;
    char *body;           /* NUL-terminated copy */
    size_t len;
    char *reply_to;       /* NULL when absent */
    char *correlation_id; /* NULL when absent */
    bool redelivered;
} ek_amqp_msg_t;

EK_ERR_CHECK ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out);
/* Connects with [messaging] transport_url, heartbeat and connect_timeout,
 * retrying while the broker is unreachable. */
EK_ERR_CHECK ek_amqp_connect_config(const ek_config_t *cfg, ek_amqp_t **out);
/* Declares a durable queue and its dead-letter queue "<name>.dead" (idempotent). */
EK_ERR_CHECK ek_amqp_declare_queue(ek_amqp_t *conn, const char *name, bool quorum);
/* Publishes a persistent message to a queue through the default exchange and
 * waits for the broker's confirm. */
EK_ERR_CHECK ek_amqp_publish(ek_amqp_t *conn, const char *queue, const char *body,
                             const char *reply_to, const char *correlation_id);
/* Starts consuming a queue with the given prefetch (manual acks). */
EK_ERR_CHECK ek_amqp_consume(ek_amqp_t *conn, const char *queue, int prefetch);
/* Waits up to timeout_ms for a message. Returns NULL with *got false on a
 * timeout; an error means the connection is gone. */
EK_ERR_CHECK ek_amqp_receive(ek_amqp_t *conn, int timeout_ms, ek_amqp_msg_t *msg, bool *got);
void ek_amqp_msg_clear(ek_amqp_msg_t *msg);
EK_ERR_CHECK ek_amqp_ack(ek_amqp_t *conn, uint64_t tag);
/* requeue=false dead-letters the message. */
EK_ERR_CHECK ek_amqp_reject(ek_amqp_t *conn, uint64_t tag, bool requeue);
/* Request/reply over the broker's direct reply-to: publishes body to queue
 * and waits up to timeout_ms for the answer (*reply is then allocated). */
EK_ERR_CHECK ek_amqp_call(ek_amqp_t *conn, const char *queue, const char *body,
                          const char *correlation_id, int timeout_ms, char **reply);
/* "host:port/vhost" of the connection, for log lines. */
const char *ek_amqp_peer(const ek_amqp_t *conn);
void ek_amqp_close(ek_amqp_t *conn);

#endif
