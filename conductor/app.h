/* app.h - the conductor's shared state: configuration, database pool, the key
 * that seals connection info, and the signal that wakes the dispatcher. One
 * instance lives in main(); every thread borrows it. */
#ifndef EK_CONDUCTOR_APP_H
#define EK_CONDUCTOR_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "common/config.h"
#include "common/db.h"
#include "common/secret.h"

typedef struct ek_app {
    const ek_config_t *cfg;
    ek_dbpool_t *db;
    unsigned char key[EK_SECRET_KEY_LEN];
    int token_lifetime;
    int rpc_timeout_ms;
    int max_transfer_instances; /* [api] max_transfer_instances */
    /* logins (made and freed by the API server): scrypt runs on its own
     * bounded pool; failures back off per user name and per client address */
    struct ek_hashpool *hashpool;
    struct ek_backoff *login_by_user, *login_by_addr;
    bool quorum;
    /* set by the API server: its scheme, and scheme://listen_address:port */
    bool api_https;
    char api_url[80];
    char host[256];

    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    bool wake_pending;

    /* counters for /metrics */
    atomic_ulong http_requests[6]; /* by status class: 1xx..5xx, index 1-5 */
    atomic_ulong tasks_dispatched;
    atomic_ulong reports_handled;
    atomic_ulong messages_dead_lettered;
} ek_app_t;

/* Tells the dispatcher that tasks may be ready (cheap; coalesces). */
void ek_app_wake(ek_app_t *app);
/* Waits up to ms for a wake-up. */
void ek_app_wait(ek_app_t *app, int ms);

#endif
