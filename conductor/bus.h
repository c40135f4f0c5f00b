/* bus.h - the conductor's two AMQP loops, each a thread with its own
 * connections:
 *  - the dispatcher publishes PENDING tasks (each with a fresh attempt id, in
 *    the same transaction that marks it dispatched, rows taken with SKIP
 *    LOCKED so that two conductors never send one task) and pending cancels;
 *  - the listener consumes ekman.conductor (claims, results, errors, events,
 *    progress), applies each through the engine and acks it only after the
 *    commit. Malformed or unknown messages are dead-lettered.
 * Both reconnect after a broker or database restart. */
#ifndef EK_CONDUCTOR_BUS_H
#define EK_CONDUCTOR_BUS_H

#include "common/error.h"
#include "conductor/app.h"

typedef struct ek_bus ek_bus_t;

EK_ERR_CHECK ek_bus_start(ek_app_t *app, ek_bus_t **out);
/* Stops both loops (after the message in hand) and frees. */
void ek_bus_stop(ek_bus_t *bus);

#endif
