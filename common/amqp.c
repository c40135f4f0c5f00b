/* amqp.c - connection, login and queue declaration over librabbitmq. */
#include "common/amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <string.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/redact.h"

struct ek_amqp {
    amqp_connection_state_t conn;
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

ek_err_t *ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out)
{
    struct amqp_connection_info info;
    char *copy = ek_xstrdup(url);
    char *shown = ek_redact_url(url);
    ek_err_t *err = NULL;
    *out = NULL;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        err = ek_err_new(EK_E_INVALID,
                         "[messaging] transport_url '%s' is not an AMQP URL "
                         "(amqp://user:password@host:port/vhost)",
                         shown);
        goto out;
    }
    ek_amqp_t *c = ek_xcalloc(1, sizeof(*c));
    snprintf(c->peer, sizeof(c->peer), "%s:%d/%s", info.host, info.port, info.vhost);
    c->conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c->conn);
    struct timeval tv = {.tv_sec = 10};
    int st = sock ? amqp_socket_open_noblock(sock, info.host, info.port, &tv) : AMQP_STATUS_NO_MEMORY;
    if (st != AMQP_STATUS_OK) {
        err = ek_err_new(EK_E_UNAVAILABLE, "could not connect to the broker %s: %s", shown,
                         amqp_error_string2(st));
        ek_amqp_close(c);
        goto out;
    }
    amqp_rpc_reply_t r = amqp_login(c->conn, info.vhost, 0, 131072, heartbeat_s,
                                    AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if ((err = reply_error(r, "broker login"))) {
        ek_err_prefix(err, "broker %s (check the user, password and vhost of [messaging] "
                           "transport_url)",
                      shown);
        ek_amqp_close(c);
        goto out;
    }
    amqp_channel_open(c->conn, 1);
    if ((err = reply_error(amqp_get_rpc_reply(c->conn), "opening channel"))) {
        ek_amqp_close(c);
        goto out;
    }
    *out = c;
out:
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
        if (!err || err->code != EK_E_UNAVAILABLE || strstr(err->message, "login") ||
            waited_ms >= timeout_ms)
            return err;
        ek_debug("broker not ready, retrying in %d ms: %s", delay_ms, err->message);
        ek_err_free(err);
        if (ek_stop_wait(delay_ms))
            return ek_err_new(EK_E_CANCELED, "stopped while connecting to the broker");
        waited_ms += delay_ms;
        delay_ms = delay_ms < 2000 ? delay_ms * 2 : 2000;
    }
}

ek_err_t *ek_amqp_declare_queue(ek_amqp_t *c, const char *name, bool quorum)
{
    amqp_table_entry_t entry = {.key = amqp_cstring_bytes("x-queue-type"),
                                .value = {.kind = AMQP_FIELD_KIND_UTF8,
                                          .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = {.num_entries = quorum ? 1 : 0, .entries = quorum ? &entry : NULL};
    amqp_queue_declare(c->conn, 1, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "declaring a queue");
    return ek_err_prefix(err, "queue '%s'", name);
}

const char *ek_amqp_peer(const ek_amqp_t *c)
{
    return c->peer;
}

void ek_amqp_close(ek_amqp_t *c)
{
    if (!c)
        return;
    amqp_channel_close(c->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->conn);
    free(c);
}
