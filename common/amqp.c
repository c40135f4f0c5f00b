/* amqp.c - connection, queues, confirmed publishing, consuming and
 * request/reply over librabbitmq. */
#include "common/amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/redact.h"

#define CHANNEL 1
#define DIRECT_REPLY_TO "amq.rabbitmq.reply-to"

struct ek_amqp {
    amqp_connection_state_t conn;
    bool confirms;      /* confirm.select done on the channel */
    bool reply_consumer; /* consuming DIRECT_REPLY_TO */
    char peer[300];
};

/* Describes a failed RPC reply. */
static ek_err_t *reply_error(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return NULL;
    case AMQP_RESPONSE_NONE:
        return ek_err_new(EK_E_PROTOCOL, "%s: the broker sent no reply", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return ek_err_new(EK_E_UNAVAILABLE, "%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            return ek_err_new(EK_E_UNAVAILABLE, "%s: broker closed the connection: %d %.*s", what,
                              m->reply_code, (int)m->reply_text.len,
                              (const char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            return ek_err_new(EK_E_PROTOCOL, "%s: broker closed the channel: %d %.*s", what,
                              m->reply_code, (int)m->reply_text.len,
                              (const char *)m->reply_text.bytes);
        }
        return ek_err_new(EK_E_PROTOCOL, "%s: broker error (method 0x%08x)", what, r.reply.id);
    }
    return ek_err_new(EK_E_INTERNAL, "%s: unexpected reply", what);
}

static ek_err_t *status_error(int status, const char *what)
{
    return status == AMQP_STATUS_OK
               ? NULL
               : ek_err_new(EK_E_UNAVAILABLE, "%s: %s", what, amqp_error_string2(status));
}

ek_err_t *ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out)
{
    struct amqp_connection_info info;
    char *copy = ek_xstrdup(url);
    char *shown = ek_redact_url(url);
    ek_err_t *err = NULL;
    ek_amqp_t *c = NULL;
    *out = NULL;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        err = ek_err_new(EK_E_INVALID,
                         "[messaging] transport_url '%s' is not an AMQP URL "
                         "(amqp://user:password@host:port/vhost)",
                         shown);
        goto out;
    }
    c = ek_xcalloc(1, sizeof(*c));
    snprintf(c->peer, sizeof(c->peer), "%s:%d/%s", info.host, info.port, info.vhost);
    c->conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c->conn);
    struct timeval tv = {.tv_sec = 10};
    int st = sock ? amqp_socket_open_noblock(sock, info.host, info.port, &tv) : AMQP_STATUS_NO_MEMORY;
    if (st != AMQP_STATUS_OK) {
        err = ek_err_new(EK_E_UNAVAILABLE, "could not connect to the broker %s: %s", shown,
                         amqp_error_string2(st));
        goto out;
    }
    amqp_rpc_reply_t r = amqp_login(c->conn, info.vhost, 0, 131072, heartbeat_s,
                                    AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if ((err = reply_error(r, "broker login"))) {
        err->code = EK_E_AUTH;
        ek_err_prefix(err, "broker %s (check the user, password and vhost of [messaging] "
                           "transport_url)",
                      shown);
        goto out;
    }
    amqp_channel_open(c->conn, CHANNEL);
    if ((err = reply_error(amqp_get_rpc_reply(c->conn), "opening a channel")))
        goto out;
    *out = EK_STEAL(c);
out:
    ek_amqp_close(c);
    ek_free_secret(copy);
    free(shown);
    return err;
}

ek_err_t *ek_amqp_connect_config(const ek_config_t *cfg, ek_amqp_t **out)
{
    const char *url = ek_config_get_string(cfg, "messaging", "transport_url");
    int heartbeat = (int)ek_config_get_int(cfg, "messaging", "heartbeat");
    int timeout_ms = (int)ek_config_get_int(cfg, "messaging", "connect_timeout") * 1000;
    int delay_ms = 100, waited_ms = 0;
    for (;;) {
        ek_err_t *err = ek_amqp_connect(url, heartbeat, out);
        /* only an unreachable broker is worth waiting for; bad credentials are not */
        if (!err || err->code != EK_E_UNAVAILABLE || waited_ms >= timeout_ms)
            return err;
        ek_debug("broker not ready, retrying in %d ms: %s", delay_ms, err->message);
        ek_err_free(err);
        if (ek_stop_wait(delay_ms))
            return ek_err_new(EK_E_CANCELED, "stopped while connecting to the broker");
        waited_ms += delay_ms;
        delay_ms = delay_ms < 2000 ? delay_ms * 2 : 2000;
    }
}

static ek_err_t *declare(ek_amqp_t *c, const char *name, bool quorum, const char *dead_letter)
{
    amqp_table_entry_t entries[3];
    int n = 0;
    if (quorum)
        entries[n++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes("x-queue-type"),
            .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    if (dead_letter) {
        entries[n++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes("x-dead-letter-exchange"),
            .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("")}};
        entries[n++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes("x-dead-letter-routing-key"),
            .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(dead_letter)}};
    }
    amqp_table_t args = {.num_entries = n, .entries = n ? entries : NULL};
    amqp_queue_declare(c->conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "declaring a queue");
    if (err && strstr(err->message, "PRECONDITION_FAILED"))
        return ek_err_prefix(err, "queue '%s' exists with other settings (delete it with "
                                  "rabbitmqctl delete_queue)",
                             name);
    return ek_err_prefix(err, "queue '%s'", name);
}

ek_err_t *ek_amqp_declare_queue(ek_amqp_t *c, const char *name, bool quorum)
{
    char *dead = ek_xasprintf("%s.dead", name);
    ek_err_t *err = declare(c, dead, quorum, NULL);
    if (!err)
        err = declare(c, name, quorum, dead);
    free(dead);
    return err;
}

static amqp_basic_properties_t message_props(const char *reply_to, const char *correlation_id)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(reply_to);
    }
    if (correlation_id) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(correlation_id);
    }
    return props;
}

/* Reads (and drops) the header and body frames after a basic.return. */
static ek_err_t *drain_content(ek_amqp_t *c)
{
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(c->conn, &frame) != AMQP_STATUS_OK ||
        frame.frame_type != AMQP_FRAME_HEADER)
        return ek_err_new(EK_E_PROTOCOL, "broker: malformed returned message");
    uint64_t size = frame.payload.properties.body_size, got = 0;
    while (got < size) {
        if (amqp_simple_wait_frame(c->conn, &frame) != AMQP_STATUS_OK ||
            frame.frame_type != AMQP_FRAME_BODY)
            return ek_err_new(EK_E_PROTOCOL, "broker: malformed returned message");
        got += frame.payload.body_fragment.len;
    }
    return NULL;
}

ek_err_t *ek_amqp_publish(ek_amqp_t *c, const char *queue, const char *body,
                          const char *reply_to, const char *correlation_id)
{
    if (!c->confirms) {
        amqp_confirm_select(c->conn, CHANNEL);
        ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "enabling publisher confirms");
        if (err)
            return err;
        c->confirms = true;
    }
    amqp_basic_properties_t props = message_props(reply_to, correlation_id);
    /* mandatory: a message for a queue that does not exist comes back instead
     * of vanishing. Direct reply-to pseudo-queues do not support it. */
    bool mandatory = strncmp(queue, DIRECT_REPLY_TO, strlen(DIRECT_REPLY_TO)) != 0;
    int st = amqp_basic_publish(c->conn, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(queue),
                                mandatory, 0, &props, amqp_cstring_bytes(body));
    ek_err_t *err = status_error(st, "publishing");
    if (err)
        return ek_err_prefix(err, "queue '%s'", queue);
    bool returned = false;
    for (;;) {
        amqp_frame_t frame;
        struct timeval tv = {.tv_sec = 30};
        st = amqp_simple_wait_frame_noblock(c->conn, &frame, &tv);
        if (st != AMQP_STATUS_OK)
            return ek_err_prefix(status_error(st, "waiting for the broker's confirm"), "queue '%s'",
                                 queue);
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
            if (returned)
                return ek_err_new(EK_E_NOTFOUND,
                                  "queue '%s' does not exist (is its consumer started?)", queue);
            return NULL;
        case AMQP_BASIC_NACK_METHOD:
            return ek_err_new(EK_E_UNAVAILABLE, "the broker refused a message for queue '%s'",
                              queue);
        case AMQP_BASIC_RETURN_METHOD:
            returned = true;
            if ((err = drain_content(c)))
                return err;
            break;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            return ek_err_new(EK_E_UNAVAILABLE, "the broker closed the channel while publishing "
                                                "to '%s'",
                              queue);
        default:
            break;
        }
    }
}

ek_err_t *ek_amqp_consume(ek_amqp_t *c, const char *queue, int prefetch)
{
    amqp_basic_qos(c->conn, CHANNEL, 0, (uint16_t)prefetch, 0);
    ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "setting the prefetch");
    if (err)
        return err;
    amqp_basic_consume(c->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    return ek_err_prefix(reply_error(amqp_get_rpc_reply(c->conn), "consuming"), "queue '%s'",
                         queue);
}

/* A NUL-terminated copy of a byte string that has no NUL of its own. */
static char *bytes_dup(amqp_bytes_t b)
{
    char *s = ek_xmalloc(b.len + 1);
    if (b.len)
        memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

ek_err_t *ek_amqp_receive(ek_amqp_t *c, int timeout_ms, ek_amqp_msg_t *msg, bool *got)
{
    memset(msg, 0, sizeof(*msg));
    *got = false;
    amqp_envelope_t env;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    amqp_maybe_release_buffers(c->conn);
    amqp_rpc_reply_t r = amqp_consume_message(c->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        msg->delivery_tag = env.delivery_tag;
        msg->len = env.message.body.len;
        msg->body = bytes_dup(env.message.body);
        msg->redelivered = env.redelivered;
        if (env.message.properties._flags & AMQP_BASIC_REPLY_TO_FLAG)
            msg->reply_to = bytes_dup(env.message.properties.reply_to);
        if (env.message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)
            msg->correlation_id = bytes_dup(env.message.properties.correlation_id);
        amqp_destroy_envelope(&env);
        *got = true;
        return NULL;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return NULL;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* a frame other than a delivery: a close means the connection is gone */
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(c->conn, &frame) != AMQP_STATUS_OK)
            return ek_err_new(EK_E_UNAVAILABLE, "lost the broker connection");
        if (frame.frame_type == AMQP_FRAME_METHOD &&
            (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
             frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
            return ek_err_new(EK_E_UNAVAILABLE, "the broker closed the connection");
        return NULL;
    }
    return reply_error(r, "receiving");
}

void ek_amqp_msg_clear(ek_amqp_msg_t *msg)
{
    free(msg->body);
    free(msg->reply_to);
    free(msg->correlation_id);
    memset(msg, 0, sizeof(*msg));
}

ek_err_t *ek_amqp_ack(ek_amqp_t *c, uint64_t tag)
{
    return status_error(amqp_basic_ack(c->conn, CHANNEL, tag, 0), "acknowledging a message");
}

ek_err_t *ek_amqp_reject(ek_amqp_t *c, uint64_t tag, bool requeue)
{
    return status_error(amqp_basic_reject(c->conn, CHANNEL, tag, requeue), "rejecting a message");
}

ek_err_t *ek_amqp_call(ek_amqp_t *c, const char *queue, const char *body,
                       const char *correlation_id, int timeout_ms, char **reply)
{
    *reply = NULL;
    if (!c->reply_consumer) {
        amqp_basic_consume(c->conn, CHANNEL, amqp_cstring_bytes(DIRECT_REPLY_TO),
                           amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
        ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "consuming replies");
        if (err)
            return err;
        c->reply_consumer = true;
    }
    amqp_basic_properties_t props = message_props(DIRECT_REPLY_TO, correlation_id);
    props.delivery_mode = AMQP_DELIVERY_NONPERSISTENT; /* a request outlives no restart */
    int st = amqp_basic_publish(c->conn, CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(queue), 0,
                                0, &props, amqp_cstring_bytes(body));
    if (st != AMQP_STATUS_OK)
        return ek_err_prefix(status_error(st, "sending a request"), "queue '%s'", queue);
    struct timeval start, now;
    gettimeofday(&start, NULL);
    for (;;) {
        gettimeofday(&now, NULL);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (elapsed >= timeout_ms)
            return ek_err_new(EK_E_TIMEOUT, "no answer on '%s' within %d s", queue,
                              timeout_ms / 1000);
        ek_amqp_msg_t msg;
        bool got;
        ek_err_t *err = ek_amqp_receive(c, (int)(timeout_ms - elapsed), &msg, &got);
        if (err)
            return err;
        if (!got)
            continue;
        if (msg.correlation_id && strcmp(msg.correlation_id, correlation_id) == 0) {
            *reply = EK_STEAL(msg.body);
            ek_amqp_msg_clear(&msg);
            return NULL;
        }
        ek_amqp_msg_clear(&msg); /* a late answer to an earlier request */
    }
}

const char *ek_amqp_peer(const ek_amqp_t *c)
{
    return c->peer;
}

void ek_amqp_close(ek_amqp_t *c)
{
    if (!c)
        return;
    amqp_channel_close(c->conn, CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->conn);
    free(c);
}
