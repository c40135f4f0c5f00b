/* api.h - the conductor's HTTP server (libmicrohttpd): listening, request
 * bodies, JSON responses and the route table. */
#ifndef EK_CONDUCTOR_API_H
#define EK_CONDUCTOR_API_H

#include "common/config.h"
#include "common/error.h"

typedef struct ek_api ek_api_t;

/* Starts serving on [api] listen_address:port. */
EK_ERR_CHECK ek_api_start(const ek_config_t *cfg, ek_api_t **out);
/* The address the server actually listens on, "host:port". */
const char *ek_api_address(const ek_api_t *api);
/* Stops accepting, finishes the requests in flight, frees. NULL is fine. */
void ek_api_stop(ek_api_t *api);

#endif
