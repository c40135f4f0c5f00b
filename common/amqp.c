/* amqp.c - connection (TCP or TLS), the exchanges and queues of Ekman's
 * topology, confirmed publishing, consuming and request/reply over
 * librabbitmq. */
#include "common/amqp.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/redact.h"
#include "common/uuid.h"

#define CHANNEL         1
#define QUEUE_PREFIX    "ekman."
#define REPLY_PREFIX    "ekman.reply."
#define EXCHANGE_PREFIX "x.ekman."
#define DEAD_EXCHANGE   "x.ekman.dead"
#define REPLY_EXCHANGE  "x.ekman.reply"
#define ACCESS_REFUSED  403
#define NOT_FOUND       404

struct ek_amqp {
    amqp_connection_state_t conn;
    char *url;              /* kept (a secret) to connect again before a use after idleness */
    int heartbeat_s;        /* as negotiated with the broker; 0: none */
    int heartbeat_asked;    /* what ek_amqp_connect was given */
    long long last_send_ms; /* when we last sent the broker anything (monotonic) */
    bool consuming;         /* basic.consume done: a new connection would lose the consumer */
    bool confirms;          /* confirm.select done on the channel */
    uint64_t next_tag;      /* the delivery tag of the next message published */
    char *reply_queue;      /* our exclusive reply queue, consumed (no-ack) */
    char peer[300];
    char user[128]; /* our broker user: the user_id of what we publish */
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
            return ek_err_new(m->reply_code == ACCESS_REFUSED ? EK_E_FORBIDDEN
                              : m->reply_code == NOT_FOUND    ? EK_E_NOTFOUND
                                                              : EK_E_PROTOCOL,
                              "%s: broker closed the channel: %d %.*s", what, m->reply_code,
                              (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        }
        return ek_err_new(EK_E_PROTOCOL, "%s: broker error (method 0x%08x)", what, r.reply.id);
    }
    return ek_err_new(EK_E_INTERNAL, "%s: unexpected reply", what);
}

long long ek_amqp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ek_err_t *status_error(int status, const char *what)
{
    return status == AMQP_STATUS_OK
               ? NULL
               : ek_err_new(EK_E_UNAVAILABLE, "%s: %s", what, amqp_error_string2(status));
}

/* A channel the broker closed (403, 404 on a declare or publish) is
 * acknowledged and opened again, so the connection stays usable. */
static ek_err_t *channel_reopen(ek_amqp_t *c)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(c->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
        return ek_err_new(EK_E_UNAVAILABLE, "lost the broker connection");
    c->confirms = false;
    free(c->reply_queue); /* its consumer went with the channel: a new one next call */
    c->reply_queue = NULL;
    amqp_channel_open(c->conn, CHANNEL);
    return reply_error(amqp_get_rpc_reply(c->conn), "opening a channel");
}

/* Runs after an RPC that failed: when the broker closed only the channel,
 * reopens it and keeps err (whose code says 403 or 404). */
static ek_err_t *after_channel_error(ek_amqp_t *c, amqp_rpc_reply_t r, ek_err_t *err)
{
    if (err && r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        ek_err_t *e2 = channel_reopen(c);
        if (e2) {
            ek_err_free(err);
            return e2;
        }
    }
    return err;
}

/* ---- staying connected ------------------------------------------------------------- */

/* Records that the broker just heard from us (librabbitmq also sends its due
 * heartbeats while it waits for a frame, so a wait counts). */
static void sent_now(ek_amqp_t *c)
{
    c->last_send_ms = ek_amqp_now_ms();
}

ek_err_t *ek_amqp_service(ek_amqp_t *c)
{
    if (!c->heartbeat_s)
        return NULL;
    long long now = ek_amqp_now_ms();
    if (now - c->last_send_ms < (long long)c->heartbeat_s * 1000 / 2)
        return NULL;
    amqp_frame_t f;
    memset(&f, 0, sizeof(f));
    f.frame_type = AMQP_FRAME_HEARTBEAT;
    f.channel = 0;
    int st = amqp_send_frame(c->conn, &f);
    if (st != AMQP_STATUS_OK)
        return status_error(st, "sending a heartbeat to the broker");
    c->last_send_ms = now;
    return NULL;
}

/* Replaces the connection by a new one to the same broker; the old one is
 * dropped without a closing handshake (the broker may have closed it). */
static ek_err_t *reconnect(ek_amqp_t *c)
{
    ek_amqp_t *fresh = NULL;
    ek_err_t *err = ek_amqp_connect(c->url, c->heartbeat_asked, &fresh);
    if (err)
        return err;
    amqp_destroy_connection(c->conn);
    c->conn = EK_STEAL(fresh->conn);
    c->heartbeat_s = fresh->heartbeat_s;
    c->last_send_ms = fresh->last_send_ms;
    c->confirms = false;
    free(c->reply_queue); /* it was exclusive to the old connection */
    c->reply_queue = NULL;
    ek_amqp_close(fresh);
    return NULL;
}

/* Before a use. RabbitMQ closes a connection it has heard nothing from for
 * two heartbeat intervals, and librabbitmq sends heartbeats only from inside
 * its own calls: a connection that only publishes, and sat idle, is gone
 * without our knowing (the next publish then fails with "a socket error
 * occurred"). One idle for a whole interval is replaced before use (it may
 * be past saving; a consumer's cannot be: its deliveries and consumer tag
 * would go, so its owner's receive loop keeps it alive instead); a younger
 * one gets the heartbeat it is due. */
static ek_err_t *ready(ek_amqp_t *c)
{
    if (!c->heartbeat_s)
        return NULL;
    long long idle_ms = ek_amqp_now_ms() - c->last_send_ms;
    if (idle_ms >= (long long)c->heartbeat_s * 1000 && !c->consuming) {
        char idle[32];
        snprintf(idle, sizeof(idle), "%lld", idle_ms / 1000);
        ek_log_kv(EK_LOG_DEBUG, "connecting to the broker again after an idle spell", "broker",
                  c->peer, "idle_s", idle, NULL);
        return reconnect(c);
    }
    return ek_amqp_service(c);
}

int ek_amqp_heartbeat(const ek_amqp_t *c)
{
    return c->heartbeat_s;
}

/* Decodes %XX in place (URI query values). Returns false on a bad escape. */
static bool percent_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        unsigned v;
        if (!r[1] || !r[2] || sscanf(r + 1, "%2x", &v) != 1 || v == 0)
            return false;
        *w++ = (char)v;
        r += 2;
    }
    *w = '\0';
    return true;
}

ek_err_t *ek_amqp_url_parse(char *url, ek_amqp_url_t *out)
{
    memset(out, 0, sizeof(*out));
    char *query = strchr(url, '?');
    if (query) {
        *query++ = '\0';
        char *save = NULL;
        for (char *kv = strtok_r(query, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq)
                *eq++ = '\0';
            if (strcmp(kv, "cacertfile") != 0 || !eq || !*eq)
                return ek_err_new(EK_E_INVALID,
                                  "query parameter '%s' is not supported (only cacertfile=PATH)",
                                  kv);
            if (!percent_decode(eq))
                return ek_err_new(EK_E_INVALID, "cacertfile: a bad %%-escape");
            out->cacertfile = eq;
        }
    }
    amqp_default_connection_info(&out->info);
    if (amqp_parse_url(url, &out->info) != AMQP_STATUS_OK)
        return ek_err_new(EK_E_INVALID, "not an AMQP URL (amqps://user:password@host:port/vhost"
                                        "?cacertfile=CA.pem)");
    if (out->cacertfile && !out->info.ssl)
        return ek_err_new(EK_E_INVALID, "cacertfile is for amqps:// URLs only");
    return NULL;
}

/* The TLS socket: TLS 1.2 or newer, the broker's chain checked against
 * cacertfile (else the system's trust store) and its name against the host
 * of the URL. */
static ek_err_t *tls_socket(ek_amqp_t *c, const ek_amqp_url_t *u, amqp_socket_t **out)
{
    amqp_socket_t *sock = amqp_ssl_socket_new(c->conn);
    if (!sock)
        return ek_err_new(EK_E_INTERNAL, "could not create a TLS socket for the broker");
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 1);
    if (amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK)
        return ek_err_new(EK_E_INTERNAL, "could not require TLS 1.2 for the broker");
    if (u->cacertfile) {
        if (access(u->cacertfile, R_OK) != 0)
            return ek_err_errno(errno, "cacertfile=%s of [messaging] transport_url cannot be read",
                                u->cacertfile);
        if (amqp_ssl_socket_set_cacert(sock, u->cacertfile) != AMQP_STATUS_OK)
            return ek_err_new(EK_E_INVALID,
                              "cacertfile=%s of [messaging] transport_url holds no PEM "
                              "certificate",
                              u->cacertfile);
    } else {
        SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
        if (!ctx || SSL_CTX_set_default_verify_paths(ctx) != 1)
            return ek_err_new(EK_E_INTERNAL, "could not load the system's CA certificates");
    }
    *out = sock;
    return NULL;
}

ek_err_t *ek_amqp_connect(const char *url, int heartbeat_s, ek_amqp_t **out)
{
    ek_amqp_url_t u;
    char *copy = ek_xstrdup(url);
    char *shown = ek_redact_url(url);
    ek_err_t *err = NULL;
    ek_amqp_t *c = NULL;
    *out = NULL;
    if ((err = ek_amqp_url_parse(copy, &u))) {
        ek_err_prefix(err, "[messaging] transport_url '%s'", shown);
        goto out;
    }
    c = ek_xcalloc(1, sizeof(*c));
    snprintf(c->peer, sizeof(c->peer), "%s:%d/%s", u.info.host, u.info.port, u.info.vhost);
    snprintf(c->user, sizeof(c->user), "%s", u.info.user ? u.info.user : "");
    c->conn = amqp_new_connection();
    amqp_socket_t *sock = NULL;
    if (u.info.ssl) {
        if ((err = tls_socket(c, &u, &sock)))
            goto out;
    } else {
        sock = amqp_tcp_socket_new(c->conn);
    }
    struct timeval tv = {.tv_sec = 10};
    int st = sock ? amqp_socket_open_noblock(sock, u.info.host, u.info.port, &tv)
                  : AMQP_STATUS_NO_MEMORY;
    if (st == AMQP_STATUS_SSL_CONNECTION_FAILED || st == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
        st == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED || st == AMQP_STATUS_SSL_ERROR) {
        /* not worth retrying: the same certificate comes back */
        err = ek_err_new(EK_E_AUTH,
                         "TLS with the broker %s failed: %s (is the broker's certificate "
                         "signed by the CA in cacertfile=%s of [messaging] transport_url, for "
                         "the host name of the URL?)",
                         shown, amqp_error_string2(st),
                         u.cacertfile ? u.cacertfile : "(none: the system's CAs)");
        goto out;
    }
    if (st != AMQP_STATUS_OK) {
        err = ek_err_new(EK_E_UNAVAILABLE, "could not connect to the broker %s: %s", shown,
                         amqp_error_string2(st));
        goto out;
    }
    amqp_rpc_reply_t r = amqp_login(c->conn, u.info.vhost, 0, 131072, heartbeat_s,
                                    AMQP_SASL_METHOD_PLAIN, u.info.user, u.info.password);
    if ((err = reply_error(r, "broker login"))) {
        err->code = EK_E_AUTH;
        ek_err_prefix(err,
                      "broker %s (check the user, password and vhost of [messaging] "
                      "transport_url)",
                      shown);
        goto out;
    }
    amqp_channel_open(c->conn, CHANNEL);
    if ((err = reply_error(amqp_get_rpc_reply(c->conn), "opening a channel")))
        goto out;
    /* what the broker and we agreed (the smaller non-zero of both): the
     * broker drops a connection it hears nothing from for two of these */
    c->heartbeat_s = amqp_get_heartbeat(c->conn);
    c->url = ek_xstrdup(url);
    c->heartbeat_asked = heartbeat_s;
    c->last_send_ms = ek_amqp_now_ms();
    *out = EK_STEAL(c);
out:
    ek_amqp_close(c);
    ek_free_secret(copy);
    free(shown);
    return err;
}

/* The role of this process: the last '-' part of its name (ekman-worker,
 * ek-test-worker: "worker"). */
const char *ek_amqp_config_url(const ek_config_t *cfg)
{
    static const char *const roles[] = {"conductor", "worker", "scheduler"};
    const char *name = program_invocation_short_name;
    const char *dash = strrchr(name, '-');
    const char *role = dash ? dash + 1 : name;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(role, roles[i]) != 0)
            continue;
        char opt[64];
        snprintf(opt, sizeof(opt), "%s_transport_url", roles[i]);
        const char *url = ek_config_get_string(cfg, "messaging", opt);
        if (url && *url)
            return url;
    }
    return ek_config_get_string(cfg, "messaging", "transport_url");
}

/* The broker user of a URL option, into buf ("" when unset or malformed). */
static void url_user(const ek_config_t *cfg, const char *opt, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *url = ek_config_get_string(cfg, "messaging", opt);
    if (!url || !*url)
        return;
    char *copy = ek_xstrdup(url);
    ek_amqp_url_t u;
    ek_err_t *err = ek_amqp_url_parse(copy, &u);
    if (!err && u.info.user)
        snprintf(buf, len, "%s", u.info.user);
    ek_err_free(err);
    ek_free_secret(copy);
}

bool ek_amqp_sender_allowed(const ek_config_t *cfg, const char *role, const char *user_id)
{
    if (!user_id || !*user_id)
        return false;
    char opt[64], user[128];
    snprintf(opt, sizeof(opt), "%s_transport_url", role);
    url_user(cfg, opt, user, sizeof(user));
    if (!user[0]) /* one broker user for every role */
        url_user(cfg, "transport_url", user, sizeof(user));
    return user[0] && strcmp(user, user_id) == 0;
}

ek_err_t *ek_amqp_connect_config(const ek_config_t *cfg, ek_amqp_t **out)
{
    const char *url = ek_amqp_config_url(cfg);
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

ek_err_t *ek_amqp_route(const char *queue, char **exchange)
{
    *exchange = NULL;
    size_t plen = strlen(QUEUE_PREFIX), len = strlen(queue), n = 0;
    if (strncmp(queue, QUEUE_PREFIX, plen) == 0)
        n = strspn(queue + plen, "abcdefghijklmnopqrstuvwxyz");
    char next = n ? queue[plen + n] : 'X';
    if (!n || (next != '\0' && next != '.') || queue[len - 1] == '.' || len > 255)
        return ek_err_new(EK_E_INVALID,
                          "'%s' is not an Ekman queue name (ekman.<role> or ekman.<role>.<name>)",
                          queue);
    *exchange = ek_xasprintf(EXCHANGE_PREFIX "%.*s", (int)n, queue + plen);
    return NULL;
}

/* Declares a durable direct exchange (idempotent). */
static ek_err_t *declare_exchange(ek_amqp_t *c, const char *name)
{
    amqp_exchange_declare(c->conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes("direct"),
                          0, 1, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    return ek_err_prefix(after_channel_error(c, r, reply_error(r, "declaring an exchange")),
                         "exchange '%s'", name);
}

/* Binds queue to exchange with the queue's name as the routing key. */
static ek_err_t *bind_queue(ek_amqp_t *c, const char *queue, const char *exchange)
{
    amqp_queue_bind(c->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(queue), amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    return ek_err_prefix(after_channel_error(c, r, reply_error(r, "binding a queue")),
                         "queue '%s' to '%s'", queue, exchange);
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
        entries[n++] =
            (amqp_table_entry_t){.key = amqp_cstring_bytes("x-dead-letter-exchange"),
                                 .value = {.kind = AMQP_FIELD_KIND_UTF8,
                                           .value.bytes = amqp_cstring_bytes(DEAD_EXCHANGE)}};
        entries[n++] =
            (amqp_table_entry_t){.key = amqp_cstring_bytes("x-dead-letter-routing-key"),
                                 .value = {.kind = AMQP_FIELD_KIND_UTF8,
                                           .value.bytes = amqp_cstring_bytes(dead_letter)}};
    }
    amqp_table_t args = {.num_entries = n, .entries = n ? entries : NULL};
    amqp_queue_declare(c->conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    ek_err_t *err = after_channel_error(c, r, reply_error(r, "declaring a queue"));
    if (err && strstr(err->message, "PRECONDITION_FAILED"))
        return ek_err_prefix(err,
                             "queue '%s' exists with other settings (delete it with "
                             "rabbitmqctl delete_queue)",
                             name);
    return ek_err_prefix(err, "queue '%s'", name);
}

/* Sets *exists when the queue exists (a passive declare needs no permission). */
static ek_err_t *queue_exists(ek_amqp_t *c, const char *name, bool *exists)
{
    amqp_queue_declare(c->conn, CHANNEL, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    ek_err_t *err = after_channel_error(c, r, reply_error(r, "looking up a queue"));
    *exists = !err;
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        return NULL;
    }
    return err;
}

/* The queue, its dead-letter queue "<name>.dead" bound to DEAD_EXCHANGE, and
 * the exchange of its role ("x.ekman.<role>") routing to it by its name. */
static ek_err_t *declare_all(ek_amqp_t *c, const char *name, bool quorum)
{
    char *exchange = NULL;
    ek_err_t *err = ek_amqp_route(name, &exchange);
    char *dead = ek_xasprintf("%s.dead", name);
    if (!err)
        err = declare_exchange(c, DEAD_EXCHANGE);
    if (!err)
        err = declare_exchange(c, exchange);
    if (!err)
        err = declare(c, dead, quorum, NULL);
    if (!err)
        err = bind_queue(c, dead, DEAD_EXCHANGE);
    if (!err)
        err = declare(c, name, quorum, dead);
    if (!err)
        err = bind_queue(c, name, exchange);
    free(dead);
    free(exchange);
    return err;
}

ek_err_t *ek_amqp_declare_queue(ek_amqp_t *c, const char *name, bool quorum)
{
    ek_err_t *err = ready(c);
    if (err)
        return ek_err_prefix(err, "queue '%s'", name);
    err = declare_all(c, name, quorum);
    sent_now(c);
    if (!err || err->code != EK_E_FORBIDDEN)
        return err;
    /* The broker user of this role may not configure it: another role
     * consumes it and declares it; publishing needs only that it exists. */
    bool exists = false;
    ek_err_t *e2 = queue_exists(c, name, &exists);
    if (e2 || !exists) {
        ek_err_free(e2);
        return ek_err_prefix(err,
                             "queue '%s' does not exist yet and this broker user may not "
                             "create it (its consumer declares it when it starts)",
                             name);
    }
    ek_err_free(err);
    return NULL;
}

/* Every message names its publisher's broker user (user_id): RabbitMQ
 * refuses a user_id that is not the connection's own user, so a consumer
 * knows which role sent it (ek_amqp_sender_allowed). */
static amqp_basic_properties_t message_props(const ek_amqp_t *c, const char *reply_to,
                                             const char *correlation_id)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (c->user[0]) {
        props._flags |= AMQP_BASIC_USER_ID_FLAG;
        props.user_id = amqp_cstring_bytes(c->user);
    }
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

/* Sends one message (no wait); its delivery tag is c->next_tag - 1. */
static ek_err_t *send_msg(ek_amqp_t *c, const char *queue, const char *body, const char *reply_to,
                          const char *correlation_id)
{
    ek_err_t *err = ready(c);
    if (err)
        return ek_err_prefix(err, "queue '%s'", queue);
    if (!c->confirms) {
        amqp_confirm_select(c->conn, CHANNEL);
        if ((err = reply_error(amqp_get_rpc_reply(c->conn), "enabling publisher confirms")))
            return err;
        c->confirms = true;
        c->next_tag = 1;
    }
    amqp_basic_properties_t props = message_props(c, reply_to, correlation_id);
    _cleanup_free_ char *exchange = NULL;
    if ((err = ek_amqp_route(queue, &exchange)))
        return err;
    /* mandatory: a message for a queue that does not exist comes back instead
     * of vanishing; an answer to a caller that left may vanish. */
    bool mandatory = strncmp(queue, REPLY_PREFIX, strlen(REPLY_PREFIX)) != 0;
    int st = amqp_basic_publish(c->conn, CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(queue), mandatory, 0, &props,
                                amqp_cstring_bytes(body));
    if ((err = status_error(st, "publishing")))
        return ek_err_prefix(err, "queue '%s'", queue);
    c->next_tag++;
    sent_now(c);
    return NULL;
}

/* Waits for the broker's confirms of the n messages sent last (tags first
 * .. first + n - 1). A message returned for want of its queue, or refused,
 * is an error naming the queue (queue: the one all went to, or NULL). */
static ek_err_t *wait_confirms(ek_amqp_t *c, uint64_t first, size_t n, const char *queue)
{
    _cleanup_free_ char *exchange = NULL;
    if (queue)
        ek_err_free(ek_amqp_route(queue, &exchange));
    const char *q = queue ? queue : "(batch)", *x = exchange ? exchange : "?";
    _cleanup_free_ bool *done = ek_xcalloc(n ? n : 1, sizeof(bool));
    size_t left = n;
    char returned[256] = "";
    ek_err_t *err = NULL;
    while (left) {
        amqp_frame_t frame;
        struct timeval tv = {.tv_sec = 30};
        int st = amqp_simple_wait_frame_noblock(c->conn, &frame, &tv);
        if (st != AMQP_STATUS_OK) {
            ek_err_free(err);
            return ek_err_prefix(status_error(st, "waiting for the broker's confirm"), "queue '%s'",
                                 q);
        }
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
        case AMQP_BASIC_NACK_METHOD: {
            bool nack = frame.payload.method.id == AMQP_BASIC_NACK_METHOD;
            uint64_t tag, lo;
            bool multiple;
            if (nack) {
                amqp_basic_nack_t *m = frame.payload.method.decoded;
                tag = m->delivery_tag;
                multiple = m->multiple;
            } else {
                amqp_basic_ack_t *m = frame.payload.method.decoded;
                tag = m->delivery_tag;
                multiple = m->multiple;
            }
            lo = multiple ? first : tag;
            for (uint64_t t = lo < first ? first : lo; t <= tag && t < first + n; t++)
                if (!done[t - first]) {
                    done[t - first] = true;
                    left--;
                }
            if (nack && !err)
                err =
                    ek_err_new(EK_E_UNAVAILABLE, "the broker refused a message for queue '%s'", q);
            break;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_basic_return_t *m = frame.payload.method.decoded;
            if (!returned[0])
                snprintf(returned, sizeof(returned), "%.*s", (int)m->routing_key.len,
                         (const char *)m->routing_key.bytes);
            ek_err_t *derr = drain_content(c);
            if (derr) {
                ek_err_free(err);
                return derr;
            }
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *m = frame.payload.method.decoded;
            int code = m->reply_code;
            ek_err_free(err);
            if ((err = channel_reopen(c)))
                return err;
            if (code == NOT_FOUND)
                return ek_err_new(EK_E_NOTFOUND,
                                  "queue '%s' does not exist (exchange '%s' is missing: is its "
                                  "consumer started?)",
                                  q, x);
            if (code == ACCESS_REFUSED)
                return ek_err_new(EK_E_FORBIDDEN,
                                  "the broker refused a message for queue '%s': this broker "
                                  "user may not publish to exchange '%s'",
                                  q, x);
            return ek_err_new(EK_E_UNAVAILABLE,
                              "the broker closed the channel (%d) while publishing to '%s'", code,
                              q);
        }
        case AMQP_CONNECTION_CLOSE_METHOD:
            ek_err_free(err);
            return ek_err_new(EK_E_UNAVAILABLE,
                              "the broker closed the connection while publishing to '%s'", q);
        default:
            break;
        }
    }
    if (!err && returned[0])
        err = ek_err_new(EK_E_NOTFOUND, "queue '%s' does not exist (is its consumer started?)",
                         returned);
    return err;
}

ek_err_t *ek_amqp_publish(ek_amqp_t *c, const char *queue, const char *body, const char *reply_to,
                          const char *correlation_id)
{
    ek_err_t *err = send_msg(c, queue, body, reply_to, correlation_id);
    return err ? err : wait_confirms(c, c->next_tag - 1, 1, queue);
}

ek_err_t *ek_amqp_publish_batch(ek_amqp_t *c, size_t n, const char *const *queues,
                                const char *const *bodies)
{
    ek_err_t *err = NULL;
    uint64_t first = 0;
    size_t sent = 0;
    for (; sent < n && !err; sent++) {
        err = send_msg(c, queues[sent], bodies[sent], NULL, NULL);
        if (!err && sent == 0)
            first = c->next_tag - 1;
    }
    if (err)
        return err; /* the connection is in trouble: the caller starts again */
    return n ? wait_confirms(c, first, n, NULL) : NULL;
}

ek_err_t *ek_amqp_consume(ek_amqp_t *c, const char *queue, int prefetch)
{
    amqp_basic_qos(c->conn, CHANNEL, 0, (uint16_t)prefetch, 0);
    ek_err_t *err = reply_error(amqp_get_rpc_reply(c->conn), "setting the prefetch");
    if (err)
        return err;
    amqp_basic_consume(c->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    c->consuming = true;
    sent_now(c);
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
    if (r.reply_type == AMQP_RESPONSE_NORMAL ||
        (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT))
        sent_now(c); /* librabbitmq sent the heartbeats due while it waited */
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        msg->delivery_tag = env.delivery_tag;
        msg->len = env.message.body.len;
        msg->body = bytes_dup(env.message.body);
        msg->redelivered = env.redelivered;
        /* answers go only to reply queues: a reply_to naming another
         * queue would make this process publish there for the sender */
        if (env.message.properties._flags & AMQP_BASIC_REPLY_TO_FLAG) {
            msg->reply_to = bytes_dup(env.message.properties.reply_to);
            if (!ek_amqp_reply_queue_valid(msg->reply_to)) {
                ek_log_kv(EK_LOG_WARNING, "ignoring a reply_to that is not a reply queue",
                          "reply_to", msg->reply_to, NULL);
                free(msg->reply_to);
                msg->reply_to = NULL;
            }
        }
        if (env.message.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)
            msg->correlation_id = bytes_dup(env.message.properties.correlation_id);
        if (env.message.properties._flags & AMQP_BASIC_USER_ID_FLAG)
            msg->user_id = bytes_dup(env.message.properties.user_id);
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
    free(msg->user_id);
    memset(msg, 0, sizeof(*msg));
}

ek_err_t *ek_amqp_ack(ek_amqp_t *c, uint64_t tag)
{
    sent_now(c);
    return status_error(amqp_basic_ack(c->conn, CHANNEL, tag, 0), "acknowledging a message");
}

ek_err_t *ek_amqp_reject(ek_amqp_t *c, uint64_t tag, bool requeue)
{
    sent_now(c);
    return status_error(amqp_basic_reject(c->conn, CHANNEL, tag, requeue), "rejecting a message");
}

bool ek_amqp_reply_queue_valid(const char *name)
{
    size_t plen = strlen(REPLY_PREFIX), len = strlen(name);
    return strncmp(name, REPLY_PREFIX, plen) == 0 && len > plen && len <= 255 &&
           strspn(name + plen, "0123456789abcdef-") == len - plen;
}

/* An exclusive reply queue (gone with the connection) bound to
 * REPLY_EXCHANGE, consumed without acks. */
static ek_err_t *reply_queue(ek_amqp_t *c)
{
    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    char *name = ek_xasprintf(REPLY_PREFIX "%s", id);
    ek_err_t *err = declare_exchange(c, REPLY_EXCHANGE);
    if (!err) {
        amqp_queue_declare(c->conn, CHANNEL, amqp_cstring_bytes(name), 0, 0, 1, 1,
                           amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
        err = ek_err_prefix(after_channel_error(c, r, reply_error(r, "declaring a reply queue")),
                            "queue '%s'", name);
    }
    if (!err)
        err = bind_queue(c, name, REPLY_EXCHANGE);
    if (!err) {
        amqp_basic_consume(c->conn, CHANNEL, amqp_cstring_bytes(name), amqp_empty_bytes, 0, 1, 1,
                           amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
        err = after_channel_error(c, r, reply_error(r, "consuming replies"));
    }
    if (err) {
        free(name);
        return err;
    }
    c->reply_queue = name;
    return NULL;
}

ek_err_t *ek_amqp_call(ek_amqp_t *c, const char *queue, const char *body,
                       const char *correlation_id, int timeout_ms, char **reply)
{
    *reply = NULL;
    _cleanup_free_ char *exchange = NULL;
    ek_err_t *err = ek_amqp_route(queue, &exchange);
    if (!err)
        err = ready(c);
    if (!err && !c->reply_queue)
        err = reply_queue(c);
    if (err)
        return err;
    amqp_basic_properties_t props = message_props(c, c->reply_queue, correlation_id);
    props.delivery_mode = AMQP_DELIVERY_NONPERSISTENT; /* a request outlives no restart */
    int st = amqp_basic_publish(c->conn, CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(queue), 0, 0, &props, amqp_cstring_bytes(body));
    if (st != AMQP_STATUS_OK)
        return ek_err_prefix(status_error(st, "sending a request"), "queue '%s'", queue);
    sent_now(c);
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
        err = ek_amqp_receive(c, (int)(timeout_ms - elapsed), &msg, &got);
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
    if (c->conn) {
        amqp_channel_close(c->conn, CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(c->conn);
    }
    free(c->reply_queue);
    ek_free_secret(c->url);
    free(c);
}
