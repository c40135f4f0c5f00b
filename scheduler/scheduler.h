/* scheduler.h - the scheduler's two jobs (registry.c, schedules.c). */
#ifndef EK_SCHEDULER_H
#define EK_SCHEDULER_H

#include <libpq-fe.h>
#include <time.h>
#include "common/error.h"
#include "proto/envelope.h"

/* Applies a service.heartbeat or service.stopping message. */
EK_ERR_CHECK ek_registry_heartbeat(PGconn *db, const ek_envelope_t *env);
/* Marks DOWN the services silent for interval_s * missed seconds and hands
 * their tasks back; *lost counts them. */
EK_ERR_CHECK ek_registry_reap(PGconn *db, int interval_s, int missed, int *lost);
/* Fires the schedules matching the minute that starts at `minute`. */
EK_ERR_CHECK ek_schedules_fire(PGconn *db, time_t minute, int *fired);

#endif
