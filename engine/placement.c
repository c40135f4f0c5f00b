/* placement.c - the one place where a task's worker is chosen (see
 * placement.h and docs/architecture.md). */
#include "engine/placement.h"

#include <stdio.h>
#include <string.h>
#include "common/db.h"
#include "common/log.h"
#include "common/mem.h"
#include "proto/providers.h"
#include "proto/tasks.h"

ek_err_t *ek_placement_choose(PGconn *db, int alive_s, const char *task_type, const char *origin_id,
                              const char *origin_type, const char *dest_id, const char *dest_type,
                              char **host, bool *wait)
{
    const ek_task_type_t *t = ek_task_type_find(task_type);
    bool source = ek_task_type_on_source(t);
    unsigned cap = !strcmp(task_type, "OS_MORPHING") ? EK_CAP_OS_MORPHING
                   : source                          ? EK_CAP_TRANSFER_EXPORT
                                                     : EK_CAP_TRANSFER_IMPORT;
    char capstr[32];
    snprintf(capstr, sizeof(capstr), "[%u]", cap);
    const char *provider = source ? origin_type : dest_type;
    const char *endpoint = source ? origin_id : dest_id;
    char alive[16];
    snprintf(alive, sizeof(alive), "%d", alive_s);
    PGresult *res;
    *host = NULL;
    *wait = false;
    ek_err_t *err = ek_db_query(
        db, &res,
        "SELECT s.host FROM services s "
        "WHERE s.binary_name = 'ekman-worker' AND s.status = 'UP' AND s.enabled "
        "AND s.last_heartbeat > now() - make_interval(secs => $4::int) "
        "AND s.deleted_at IS NULL AND s.providers ? $1 "
        "AND (s.providers->$1->'types') @> $2::jsonb "
        "AND (NOT EXISTS (SELECT 1 FROM endpoint_regions er WHERE er.endpoint_id = $3) "
        "     OR EXISTS (SELECT 1 FROM endpoint_regions er JOIN service_regions sr "
        "                ON sr.region_id = er.region_id "
        "                WHERE er.endpoint_id = $3 AND sr.service_id = s.id)) "
        "ORDER BY ((SELECT count(*) FROM tasks k WHERE (k.host = s.host AND k.status IN "
        "('STARTING', 'RUNNING')) OR (k.dispatched_to = s.host AND k.status = 'PENDING'))::float "
        "/ greatest(s.capacity, 1)), random() LIMIT 1",
        4, (const char *[]){provider, capstr, endpoint, alive});
    if (err)
        return err;
    if (PQntuples(res) == 1) {
        *host = ek_xstrdup(PQgetvalue(res, 0, 0));
    } else {
        PGresult *any;
        err = ek_db_query(db, &any,
                          "SELECT 1 FROM services WHERE binary_name = 'ekman-worker' AND "
                          "status = 'UP' AND deleted_at IS NULL AND last_heartbeat > now() - "
                          "make_interval(secs => $1::int) LIMIT 1",
                          1, (const char *[]){alive});
        if (!err) {
            *wait = PQntuples(any) > 0;
            PQclear(any);
        }
        if (*wait)
            ek_log_kv(EK_LOG_DEBUG, "no worker can run the task now", "task_type", task_type,
                      "provider", provider, NULL);
    }
    PQclear(res);
    return err;
}
