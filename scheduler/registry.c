/* registry.c - the service registry: heartbeats from workers become rows of
 * `services` (UP, with providers, capacity and load); a worker silent for
 * [scheduler] missed_heartbeats intervals is marked DOWN and its tasks are
 * handed to the engine (re-run elsewhere when safe, failed otherwise). The
 * UPDATE ... RETURNING that marks a worker DOWN is what makes two schedulers
 * handle each lost worker once.
 *
 * Worker instances: every worker start is a new instance (instance_id,
 * instance_started_ms). When one shows up on a host registered with another,
 * every task the previous instance ran is handed back at once (it killed
 * what the previous one left at start, before its first heartbeat) - no
 * waiting for missed heartbeats that never come, since the new instance
 * heartbeats under the same host name. The new instance is recorded only
 * after that, and the conductor grants its claims only once it is recorded:
 * so no task of the new instance is ever handed back. Heartbeats of an older
 * instance, still queued, are ignored. A session advisory lock per host
 * keeps two schedulers from interleaving this (docs/reliability.md). */
#include "scheduler/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/uuid.h"
#include "engine/store.h"
#include "proto/messages.h"

/* What the registry knows of the instance a heartbeat comes from. */
enum standing { STANDING_CURRENT, STANDING_NEW, STANDING_STALE };

static ek_err_t *instance_standing(PGconn *db, const char *host, const char *binary,
                                   const char *instance, int64_t started, enum standing *out)
{
    PGresult *res;
    *out = STANDING_CURRENT;
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT specs->>'instance_id', "
                                "(specs->>'instance_started_ms')::bigint FROM services WHERE "
                                "host = $1 AND binary_name = $2 AND deleted_at IS NULL",
                                2, (const char *[]){host, binary});
    if (err)
        return err;
    if (PQntuples(res) != 1) { /* a first registration: whatever ran under this name is gone */
        *out = STANDING_NEW;
    } else if (strcmp(PQgetvalue(res, 0, 0), instance) != 0) {
        bool known = !PQgetisnull(res, 0, 1);
        *out = known && atoll(PQgetvalue(res, 0, 1)) > started ? STANDING_STALE : STANDING_NEW;
    }
    PQclear(res);
    return NULL;
}

static ek_err_t *record(PGconn *db, const ek_envelope_t *env, const char *instance,
                        int64_t started);

ek_err_t *ek_registry_heartbeat(PGconn *db, const ek_envelope_t *env)
{
    const char *host, *binary, *instance = "";
    int64_t started = 0;
    ek_err_t *err;
    json_object *b = env->body;
    if ((err = ek_json_req_string(b, "body", "host", &host)) ||
        (err = ek_json_req_string(b, "body", "binary", &binary)) ||
        (err = ek_json_opt_string(b, "body", "instance_id", "", &instance)) ||
        (err = ek_json_opt_int(b, "body", "instance_started_ms", 0, &started))) {
        err->code = EK_E_PROTOCOL;
        return err;
    }
    if (!*instance) /* a worker that names no instance: as before instances */
        return record(db, env, NULL, 0);
    PGresult *res;
    _cleanup_free_ char *key = ek_xasprintf("ekman.instance/%s/%s", binary, host);
    if ((err = ek_db_query(db, &res, "SELECT pg_advisory_lock(hashtext($1))", 1,
                           (const char *[]){key})))
        return err;
    PQclear(res);
    enum standing st;
    err = instance_standing(db, host, binary, instance, started, &st);
    if (!err && st == STANDING_STALE) {
        ek_log_kv(EK_LOG_INFO, "ignoring a message of a replaced worker instance", "host", host,
                  "instance_id", instance, "type", env->type, NULL);
    } else if (!err) {
        if (st == STANDING_NEW && strcmp(binary, "ekman-worker") == 0) {
            int affected = 0;
            ek_log_kv(EK_LOG_INFO, "new worker instance", "host", host, "instance_id", instance,
                      NULL);
            err = ek_engine_worker_lost(db, host, &affected);
            if (!err && affected) {
                char n[16];
                snprintf(n, sizeof(n), "%d", affected);
                ek_log_kv(EK_LOG_WARNING,
                          "a new worker instance replaced one that was running tasks: they are "
                          "handed back now",
                          "host", host, "tasks", n, NULL);
            }
        }
        if (!err)
            err = record(db, env, instance, started);
    }
    ek_err_t *uerr =
        ek_db_query(db, &res, "SELECT pg_advisory_unlock(hashtext($1))", 1, (const char *[]){key});
    if (!uerr)
        PQclear(res);
    else if (!err)
        err = uerr;
    else
        ek_err_free(uerr);
    return err;
}

/* Writes the heartbeat into services (instance: NULL when it names none). */
static ek_err_t *record(PGconn *db, const ek_envelope_t *env, const char *instance, int64_t started)
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
    if (instance) {
        json_object_object_add(specs, "instance_id", json_object_new_string(instance));
        json_object_object_add(specs, "instance_started_ms", json_object_new_int64(started));
    }
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
        /* never back to an older instance */
        "WHERE s.specs->>'instance_started_ms' IS NULL OR EXCLUDED.specs->>'instance_started_ms' "
        "IS NULL OR (s.specs->>'instance_started_ms')::bigint <= "
        "(EXCLUDED.specs->>'instance_started_ms')::bigint "
        "RETURNING s.id, (xmax = 0) AS inserted",
        9,
        (const char *[]){id, host, binary, topic,
                         providers ? json_object_to_json_string(providers) : "{}",
                         json_object_to_json_string(specs), cap, run, stopping ? "DOWN" : "UP"});
    json_object_put(specs);
    if (err)
        return err;
    if (PQntuples(res) != 1) { /* a newer instance is recorded */
        PQclear(res);
        return NULL;
    }
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
            ek_log_kv(EK_LOG_WARNING, "tasks of a lost worker handed back", "host", host, "tasks",
                      n, NULL);
        }
        (*lost)++;
    }
    PQclear(res);
    return err;
}
