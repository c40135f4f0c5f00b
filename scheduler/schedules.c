/* schedules.c - fires transfer schedules: once per matching minute, for every
 * enabled schedule that has not expired, an execution of its transfer. The
 * conditional UPDATE of last_fired_at is the claim on a minute, so two
 * schedulers never fire the same minute twice. */
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <string.h>
#include "common/cron.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "engine/store.h"

ek_err_t *ek_schedules_fire(PGconn *db, time_t minute, int *fired)
{
    char at[32];
    struct tm tm;
    gmtime_r(&minute, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:00Z", &tm);
    PGresult *res;
    *fired = 0;
    ek_err_t *err =
        ek_db_query(db, &res,
                    "SELECT s.id, s.transfer_id, s.schedule::text, s.shutdown_instance, "
                    "s.auto_deploy FROM transfer_schedules s JOIN transfers t ON t.id "
                    "= s.transfer_id WHERE s.enabled AND s.deleted_at IS NULL AND "
                    "t.deleted_at IS NULL AND (s.expiration_date IS NULL OR "
                    "s.expiration_date > $1::timestamptz) AND (s.last_fired_at IS "
                    "NULL OR s.last_fired_at < $1::timestamptz)",
                    1, (const char *[]){at});
    if (err)
        return err;
    for (int i = 0; !err && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0), *transfer = PQgetvalue(res, i, 1);
        const char *text = PQgetvalue(res, i, 2);
        json_object *sched = NULL;
        ek_cron_t cron;
        ek_err_t *bad = ek_json_parse(text, strlen(text), &sched);
        if (!bad)
            bad = ek_cron_from_json(sched, "schedule", &cron);
        json_object_put(sched);
        if (bad) {
            ek_log_kv(EK_LOG_ERROR, "schedule cannot be read", "schedule_id", id, "error",
                      bad->message, NULL);
            ek_err_free(bad);
            continue;
        }
        if (!ek_cron_matches(&cron, minute))
            continue;
        PGresult *claim;
        err = ek_db_query(db, &claim,
                          "UPDATE transfer_schedules SET last_fired_at = $2::timestamptz WHERE id "
                          "= $1 AND (last_fired_at IS NULL OR last_fired_at < $2::timestamptz)",
                          2, (const char *[]){id, at});
        if (err)
            break;
        bool mine = atoi(PQcmdTuples(claim)) == 1;
        PQclear(claim);
        if (!mine)
            continue; /* another scheduler fired this minute */
        ek_id_t exec_id;
        ek_err_t *e =
            ek_engine_execute_transfer(db, transfer, NULL, PQgetvalue(res, i, 3)[0] == 't',
                                       PQgetvalue(res, i, 4)[0] == 't', exec_id);
        if (e) {
            /* e.g. the previous execution still runs: this minute is skipped */
            ek_log_kv(EK_LOG_WARNING, "schedule did not start an execution", "schedule_id", id,
                      "transfer_id", transfer, "error", e->message, NULL);
            ek_err_free(e);
            continue;
        }
        ek_log_kv(EK_LOG_INFO, "schedule fired", "schedule_id", id, "transfer_id", transfer,
                  "execution_id", exec_id, "minute", at, NULL);
        (*fired)++;
    }
    PQclear(res);
    return err;
}
