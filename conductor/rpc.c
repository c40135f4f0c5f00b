/* rpc.c - endpoint queries answered by a worker over AMQP request/reply. */
#include "conductor/rpc.h"

#include <string.h>
#include "common/amqp.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "conductor/seal.h"
#include "proto/envelope.h"
#include "proto/messages.h"

/* How long a query waits for a worker with the provider to register. */
#define RPC_REGISTER_WAIT_MS 5000

ek_err_t *ek_rpc_endpoint_query(ek_app_t *app, PGconn *db, json_object *endpoint, const char *query,
                                json_object *args, json_object **result)
{
    *result = NULL;
    const char *etype = json_object_get_string(json_object_object_get(endpoint, "type"));
    const char *ename = json_object_get_string(json_object_object_get(endpoint, "name"));
    /* one worker that can answer, and the connection info for it alone */
    char *host = NULL, *pub = NULL, *queue = NULL;
    int alive = (int)(ek_config_get_int(app->cfg, "scheduler", "heartbeat_interval") *
                      ek_config_get_int(app->cfg, "scheduler", "missed_heartbeats"));
    ek_err_t *err = NULL;
    /* a worker that has just started registers with its first heartbeat:
     * give one a few seconds before falling back to the shared queue (a worker
     * without a key answers there - a test tool, an older worker; a worker
     * with one refuses, for want of sealed connection info, and says why) */
    for (int waited_ms = 0;; waited_ms += 250) {
        err = ek_seal_pick_worker(db, etype ? etype : "", alive, &host, &pub);
        if (!err || err->code != EK_E_NOTFOUND || waited_ms >= RPC_REGISTER_WAIT_MS)
            break;
        ek_err_free(err);
        ek_stop_wait(250);
    }
    if (!err) {
        err = ek_seal_endpoint_for(app->key, pub, endpoint);
        queue = ek_xasprintf("%s.%s", EK_QUEUE_WORKER, host);
    } else if (err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        err = NULL;
        json_object_object_del(endpoint, "connection_info_sealed");
        queue = ek_xstrdup(EK_QUEUE_WORKER);
    }
    free(host);
    free(pub);
    if (err) {
        free(queue);
        return err;
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "endpoint", json_object_get(endpoint));
    json_object_object_add(body, "query", json_object_new_string(query));
    json_object_object_add(body, "args", args ? json_object_get(args) : json_object_new_object());
    ek_envelope_t *env = ek_envelope_new(EK_MSG_ENDPOINT_QUERY, body);
    char *wire = ek_envelope_encode(env);

    ek_amqp_t *mq = NULL;
    char *reply = NULL;
    err = ek_amqp_connect(ek_amqp_config_url(app->cfg), 0, &mq);
    if (!err)
        err = ek_amqp_call(mq, queue, wire, env->id, app->rpc_timeout_ms, &reply);
    ek_amqp_close(mq);
    free(queue);
    free(wire);
    if (err && err->code == EK_E_TIMEOUT) {
        ek_err_free(err);
        err = ek_err_new(EK_E_UNAVAILABLE,
                         "endpoint '%s': no worker answered within %d s (is an ekman-worker with "
                         "the '%s' provider running?)",
                         ename, app->rpc_timeout_ms / 1000, etype);
    }
    ek_envelope_t *answer = NULL;
    if (!err)
        err =
            ek_envelope_decode(reply, strlen(reply), (const char *[]){EK_MSG_REPLY, NULL}, &answer);
    free(reply);
    ek_envelope_free(env);
    if (err)
        return err;
    bool ok = false;
    const char *message = NULL;
    json_object *res = NULL;
    err = ek_json_opt_bool(answer->body, "reply", "ok", false, &ok);
    if (!err && !ok) {
        err = ek_json_opt_string(answer->body, "reply", "error", "the worker gave no reason",
                                 &message);
        if (!err)
            err = ek_err_new(EK_E_UNAVAILABLE, "endpoint '%s': %s", ename, message);
    } else if (!err) {
        json_object_object_get_ex(answer->body, "result", &res);
        *result = res ? json_object_get(res) : json_object_new_object();
    }
    ek_envelope_free(answer);
    return err;
}
