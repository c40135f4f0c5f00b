/* placement.h - where a task runs: the one place that chooses a worker.
 * The conductor's dispatcher calls it for each PENDING task it sends; it
 * reads the service registry the scheduler keeps (heartbeats, UP/DOWN,
 * providers and capabilities, regions, capacity) and the tasks in flight.
 *
 * The chosen worker is one that is UP and heard from within alive_s
 * seconds, has the provider of the endpoint the task runs against
 * (ek_task_type_on_source) with the capability the task needs (OS morphing,
 * export on the source side, import on the destination side), serves that
 * endpoint's region when the endpoint has any, and has the lowest load
 * (tasks running or sent to it, over its capacity; ties at random). */
#ifndef EK_ENGINE_PLACEMENT_H
#define EK_ENGINE_PLACEMENT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include "common/error.h"

/* *host (allocated) is the chosen worker. It stays NULL for the shared
 * queue when no worker has registered at all (any consumer of ekman.worker
 * may take the task); *wait is set when workers exist but none can run the
 * task now: it stays PENDING until one can. */
EK_ERR_CHECK ek_placement_choose(PGconn *db, int alive_s, const char *task_type,
                                 const char *origin_id, const char *origin_type,
                                 const char *dest_id, const char *dest_type, char **host,
                                 bool *wait);

#endif
