/* rpc.h - questions the conductor asks a worker on behalf of the API (list an
 * endpoint's instances, networks, storage, options; validate its connection):
 * an endpoint.query request to one registered worker with the endpoint's
 * provider (its own queue), the connection info sealed for that worker's key
 * (seal.h), answered on the conductor's reply queue within [messaging]
 * rpc_timeout. A worker that has just started registers with its first
 * heartbeat: the query waits up to 5 s for one; with none registered then, it
 * goes to ekman.worker without connection info (a worker that needs it
 * refuses, saying why). */
#ifndef EK_CONDUCTOR_RPC_H
#define EK_CONDUCTOR_RPC_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include "common/error.h"
#include "conductor/app.h"

/* endpoint: {"id","type","name","connection_info_sealed"} (changed: sealed
 * for the worker); args may be NULL; db picks the worker. On success *result
 * is the worker's answer (new reference). */
EK_ERR_CHECK ek_rpc_endpoint_query(ek_app_t *app, PGconn *db, json_object *endpoint,
                                   const char *query, json_object *args, json_object **result);

#endif
