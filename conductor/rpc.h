/* rpc.h - questions the conductor asks a worker on behalf of the API (list an
 * endpoint's instances, networks, storage, options; validate its connection):
 * an endpoint.query request on ekman.worker, answered through the broker's
 * direct reply-to within [messaging] rpc_timeout. */
#ifndef EK_CONDUCTOR_RPC_H
#define EK_CONDUCTOR_RPC_H

#include <json-c/json.h>
#include "common/error.h"
#include "conductor/app.h"

/* endpoint: {"id","type","name","connection_info_sealed"}; args may be NULL.
 * On success *result is the worker's answer (new reference). */
EK_ERR_CHECK ek_rpc_endpoint_query(ek_app_t *app, json_object *endpoint, const char *query,
                                   json_object *args, json_object **result);

#endif
