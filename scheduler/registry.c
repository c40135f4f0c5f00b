/* registry.c - the service registry: heartbeats from workers become rows of
 * `services` (UP, with providers, capacity and load); a worker silent for
 * [scheduler] missed_heartbeats intervals is marked DOWN and its tasks are
 * handed to the engine (re-run elsewhere when safe, failed otherwise). The
 * UPDATE ... RETURNING that marks a worker DOWN is what makes two schedulers
 * handle each lost worker once. */
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/uuid.h"
#include "conductor/engine.h"
#include "proto/messages.h"

ek_err_t *ek_registry_heartbeat(PGconn *db, const ek_envelope_t *env)
{
    const char *host, *binary, *topic, *region = "", *box_pub = "", *box_kid = "";
    json_object *providers = NULL;
    int64_t capacity = 1, running = 0;
    json_object *b = env->body;
    ek_err_t *err;
    if ((err = ek_json_req_string(b, "body", "host", &host)) ||
        (err = ek_json_req_string(b, "body", "binary", &binary)) ||
        (err = ek_json_req_string(b, "body", "topic", &topic)) ||
        (err = ek_json_opt_string(b, "body", "region", "", &region)) ||
        (err = ek_json_opt_object(b, "body", "providers", &providers)) ||
        (err = ek_json_opt_int(b, "body", "capacity", 1, &capacity)) ||
        (err = ek_json_opt_int(b, "body", "running_tasks", 0, &running)) ||
        (err = ek_json_opt_string(b, "body", "box_public_key", "", &box_pub)) ||
        (err = ek_json_opt_string(b, "body", "box_key_id", "", &box_kid))) {
        err->code = EK_E_PROTOCOL;
        return err;
    }
    bool stopping = strcmp(env->type, EK_MSG_SERVICE_STOPPING) == 0;
    char id[EK_UUID_STRLEN + 1], cap[24], run[24];
    ek_uuid_generate(id);
    snprintf(cap, sizeof(cap), "%lld", (long long)capacity);
    snprintf(run, sizeof(run), "%lld", (long long)running);
    json_object *specs = json_object_new_object();
    json_object_object_add(specs, "region", json_object_new_string(region));
    /* the key the conductor seals this worker's tasks for (common/box.h) */
    if (*box_pub) {
        json_object_object_add(specs, "box_public_key", json_object_new_string(box_pub));
        json_object_object_add(specs, "box_key_id", json_object_new_string(box_kid));
    }
    PGresult *res;
    err = ek_db_query(
        db, &res,
        "INSERT INTO services AS s (id, host, binary_name, topic, providers, specs, capacity, "
        "running_tasks, status, last_heartbeat) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) "
        "ON CONFLICT (host, binary_name) WHERE deleted_at IS NULL DO UPDATE SET topic = "
        "EXCLUDED.topic, providers = EXCLUDED.providers, specs = EXCLUDED.specs, capacity = "
        "EXCLUDED.capacity, running_tasks = EXCLUDED.running_tasks, status = EXCLUDED.status, "
        "last_heartbeat = now(), updated_at = now() "
        "RETURNING s.id, (xmax = 0) AS inserted",
        9,
        (const char *[]){id, host, binary, topic,
                         providers ? json_object_to_json_string(providers) : "{}",
                         json_object_to_json_string(specs), cap, run,
                         stopping ? "DOWN" : "UP"});
    json_object_put(specs);
    if (err)
        return err;
    char sid[EK_UUID_STRLEN + 1];
    snprintf(sid, sizeof(sid), "%s", PQgetvalue(res, 0, 0));
    bool inserted = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (inserted)
        ek_log_kv(EK_LOG_INFO, "worker registered", "host", host, "capacity", cap, NULL);
    if (*region) {
        /* the worker serves the region of that name, when an admin created it */
        err = ek_db_query(db, NULL,
                          "INSERT INTO service_regions (service_id, region_id) SELECT $1, r.id "
                          "FROM regions r WHERE r.name = $2 AND r.deleted_at IS NULL "
                          "ON CONFLICT DO NOTHING",
                          2, (const char *[]){sid, region});
        if (err)
            return err;
    }
    if (stopping) {
        ek_log_kv(EK_LOG_INFO, "worker stopped", "host", host, NULL);
        int affected = 0;
        err = ek_engine_worker_lost(db, host, &affected);
    }
    return err;
}

ek_err_t *ek_registry_reap(PGconn *db, int interval_s, int missed, int *lost)
{
    char seconds[32];
    snprintf(seconds, sizeof(seconds), "%d", interval_s * missed);
    PGresult *res;
    *lost = 0;
    ek_err_t *err = ek_db_query(db, &res,
                                "UPDATE services SET status = 'DOWN', updated_at = now() "
                                "WHERE status = 'UP' AND deleted_at IS NULL AND last_heartbeat < "
                                "now() - make_interval(secs => $1::int) RETURNING host, "
                                "binary_name",
                                1, (const char *[]){seconds});
    if (err)
        return err;
    for (int i = 0; !err && i < PQntuples(res); i++) {
        const char *host = PQgetvalue(res, i, 0);
        int affected = 0;
        ek_log_kv(EK_LOG_WARNING, "service missed its heartbeats: DOWN", "host", host, "binary",
                  PQgetvalue(res, i, 1), NULL);
        if (strcmp(PQgetvalue(res, i, 1), "ekman-worker") == 0)
            err = ek_engine_worker_lost(db, host, &affected);
        if (!err && affected) {
            char n[16];
            snprintf(n, sizeof(n), "%d", affected);
            ek_log_kv(EK_LOG_WARNING, "tasks of a lost worker handed back", "host", host,
                      "tasks", n, NULL);
        }
        (*lost)++;
    }
    PQclear(res);
    return err;
}
