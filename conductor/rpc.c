/* rpc.c - endpoint queries answered by a worker over AMQP request/reply. */
#include "conductor/rpc.h"

#include <string.h>
#include "common/amqp.h"
#include "common/json.h"
#include "common/mem.h"
#include "proto/envelope.h"
#include "proto/messages.h"

ek_err_t *ek_rpc_endpoint_query(ek_app_t *app, json_object *endpoint, const char *query,
                                json_object *args, json_object **result)
{
    *result = NULL;
    json_object *body = json_object_new_object();
    json_object_object_add(body, "endpoint", json_object_get(endpoint));
    json_object_object_add(body, "query", json_object_new_string(query));
    json_object_object_add(body, "args", args ? json_object_get(args) : json_object_new_object());
    ek_envelope_t *env = ek_envelope_new(EK_MSG_ENDPOINT_QUERY, body);
    char *wire = ek_envelope_encode(env);
    const char *etype = json_object_get_string(json_object_object_get(endpoint, "type"));
    const char *ename = json_object_get_string(json_object_object_get(endpoint, "name"));

    ek_amqp_t *mq = NULL;
    char *reply = NULL;
    ek_err_t *err = ek_amqp_connect(ek_config_get_string(app->cfg, "messaging", "transport_url"),
                                    0, &mq);
    if (!err)
        err = ek_amqp_call(mq, EK_QUEUE_WORKER, wire, env->id, app->rpc_timeout_ms, &reply);
    ek_amqp_close(mq);
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
        err = ek_envelope_decode(reply, strlen(reply), (const char *[]){EK_MSG_REPLY, NULL},
                                 &answer);
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
