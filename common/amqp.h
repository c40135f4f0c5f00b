/* amqp.h - AMQP 0-9-1 (librabbitmq): one connection with one channel, used by
 * one thread at a time (librabbitmq connections are not thread-safe).
 *
 * The URL is amqps://user:password@host:port/vhost?cacertfile=CA.pem (TLS
 * 1.2+, the broker's certificate checked against the CA file, else the
 * system's CAs, and against the URL's host name) or amqp://... (plain TCP:
 * credentials and messages in clear, for a broker on a trusted network
 * only). Each daemon's URL is [messaging] <role>_transport_url when set
 * (conductor, worker, scheduler: the last "-" part of the program name),
 * else [messaging] transport_url: one broker user per role.
 *
 * Topology: every queue is "ekman.<role>" or "ekman.<role>.<name>" and is
 * reached through the durable direct exchange "x.ekman.<role>" with its own
 * name as the routing key, so broker permissions on exchanges say which role
 * may send to which. Queues are durable and messages persistent; publishing
 * waits for the broker's confirm, so a publish that returned NULL survives a
 * broker restart. A queue declared here dead-letters rejected messages into
 * "<name>.dead" through the exchange "x.ekman.dead". Request/reply uses an
 * exclusive queue "ekman.reply.<uuid>" per connection (exchange
 * "x.ekman.reply"); a received reply_to naming anything else is dropped. */
#ifndef EK_AMQP_H
#define EK_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <amqp.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_amqp ek_amqp_t;

typedef struct ek_amqp_msg {
    uint64_t delivery_tag;
    char *body; /* NUL-terminated copy */
    size_t len;
    char *reply_to;       /* NULL when absent */
    char *correlation_id; /* NULL when absent */
    char *user_id;        /* the publisher's broker user (RabbitMQ checks it); NULL when absent */
    bool redelivered;
} ek_amqp_msg_t;

/* A parsed URL: pointers into the string given to ek_amqp_url_parse. */
typedef struct ek_amqp_url {
    struct amqp_connection_info info; /* info.ssl for amqps:// */
    const char *cacertfile;           /* ?cacertfile=, or NULL */
} ek_amqp_url_t;
/* Parses url in place (it is modified). Only the query parameter cacertfile
 * is accepted, and only for amqps://. */
EK_ERR_CHECK ek_amqp_url_parse(char *url, ek_amqp_url_t *out);
/* The exchange ("x.ekman.<role>", allocated) that reaches queue; an error
 * for a name outside ekman.<role>[.<name>]. */
EK_ERR_CHECK ek_amqp_route(const char *queue, char **exchange);
/* True for "ekman.reply.<uuid>", the only names answers go to. */
bool ek_amqp_reply_queue_valid(const char *name);
/* The URL of this process's role (see above). */
const char *ek_amqp_config_url(const ek_config_t *cfg);
/* True when user_id (a received message's, which the broker validated) is the
 * broker user of role ("conductor", "worker", "scheduler"): the user of
 * [messaging] <role>_transport_url, else of transport_url. Consumers
 * dead-letter what another role sent them. */
bool ek_amqp_sender_allowed(const ek_config_t *cfg, const char *role, const char *user_id);

/* heartbeat_s is offered to the broker, which may lower it (0: none).
 *
 * Idle connections: RabbitMQ drops a connection it has heard nothing from
 * for two heartbeat intervals, and librabbitmq sends heartbeats only while
 * one of its calls waits for a frame. So: publish, call and declare first
 * send the heartbeat that is due, and a connection that consumes nothing and
 * sat idle for a whole interval is replaced by a new one (confirms and the
 * reply queue come back by themselves) - a publish never fails because the
 * connection sat idle. A consuming connection keeps its consumers: its owner
 * calls ek_amqp_receive (which services heartbeats) or ek_amqp_service at
 * least every half interval. */
EK_ERR_CHECK ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out);
/* Sends a heartbeat when half an interval has passed since we last sent
 * anything; cheap, call it from any wait loop that holds the connection. */
EK_ERR_CHECK ek_amqp_service(ek_amqp_t *conn);
/* The heartbeat interval the broker agreed to, in seconds (0: none). */
int ek_amqp_heartbeat(const ek_amqp_t *conn);
/* Monotonic milliseconds (for idleness). */
long long ek_amqp_now_ms(void);
/* Connects with ek_amqp_config_url(), [messaging] heartbeat and
 * connect_timeout, retrying while the broker is unreachable. */
EK_ERR_CHECK ek_amqp_connect_config(const ek_config_t *cfg, ek_amqp_t **out);
/* Declares a durable queue, its dead-letter queue "<name>.dead" and their
 * exchanges (idempotent). When this broker user may not configure the queue
 * (another role consumes it), succeeds if the queue exists already. */
EK_ERR_CHECK ek_amqp_declare_queue(ek_amqp_t *conn, const char *name, bool quorum);
/* Publishes a persistent message to a queue through its exchange and waits
 * for the broker's confirm. EK_E_NOTFOUND: no such queue (yet);
 * EK_E_FORBIDDEN: this broker user may not send there. */
EK_ERR_CHECK ek_amqp_publish(ek_amqp_t *conn, const char *queue, const char *body,
                             const char *reply_to, const char *correlation_id);
/* Publishes n persistent messages (no reply_to) and then waits for all
 * their confirms: one round trip to the broker's disk for the lot. An
 * error (any message returned, refused, or the connection lost) leaves it
 * unknown which arrived: the caller's records must allow sending again. */
EK_ERR_CHECK ek_amqp_publish_batch(ek_amqp_t *conn, size_t n, const char *const *queues,
                                   const char *const *bodies);
/* Starts consuming a queue with the given prefetch (manual acks). */
EK_ERR_CHECK ek_amqp_consume(ek_amqp_t *conn, const char *queue, int prefetch);
/* Waits up to timeout_ms for a message. Returns NULL with *got false on a
 * timeout; an error means the connection is gone. */
EK_ERR_CHECK ek_amqp_receive(ek_amqp_t *conn, int timeout_ms, ek_amqp_msg_t *msg, bool *got);
void ek_amqp_msg_clear(ek_amqp_msg_t *msg);
EK_ERR_CHECK ek_amqp_ack(ek_amqp_t *conn, uint64_t tag);
/* requeue=false dead-letters the message. */
EK_ERR_CHECK ek_amqp_reject(ek_amqp_t *conn, uint64_t tag, bool requeue);
/* Request/reply: publishes body to queue with this connection's reply queue
 * as reply_to and waits up to timeout_ms for the answer (*reply is then
 * allocated). */
EK_ERR_CHECK ek_amqp_call(ek_amqp_t *conn, const char *queue, const char *body,
                          const char *correlation_id, int timeout_ms, char **reply);
/* "host:port/vhost" of the connection, for log lines. */
const char *ek_amqp_peer(const ek_amqp_t *conn);
void ek_amqp_close(ek_amqp_t *conn);

#endif
