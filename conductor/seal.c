/* seal.c - a task's secrets for the one worker that runs it (see seal.h). */
#include "conductor/seal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/secret.h"

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static ek_box_ring_t *ring;

static void ring_free(void)
{
    ek_box_ring_free(ring);
}

const ek_box_ring_t *ek_seal_conductor_ring(const unsigned char key[EK_SECRET_KEY_LEN])
{
    pthread_mutex_lock(&ring_lock);
    if (!ring) {
        ek_err_t *err = ek_box_ring_derive(key, EK_SEAL_CONDUCTOR_LABEL, &ring);
        if (err) {
            ek_log_err(err, "cannot derive the conductors' key pair");
            ek_err_free(err);
        } else {
            atexit(ring_free);
        }
    }
    pthread_mutex_unlock(&ring_lock);
    return ring;
}

ek_err_t *ek_seal_endpoint_for(const unsigned char key[EK_SECRET_KEY_LEN], const char *worker_pub,
                               json_object *ep)
{
    json_object *v;
    if (!json_object_object_get_ex(ep, "connection_info_sealed", &v))
        return NULL;
    const char *sealed = json_object_get_string(v);
    const char *id = json_object_get_string(json_object_object_get(ep, "id"));
    if (!id || !sealed)
        return ek_err_new(EK_E_INTERNAL, "an endpoint of the job has no id or connection info");
    char *plain = NULL, *boxed = NULL;
    ek_err_t *err = ek_secret_open(key, id, sealed, &plain);
    if (!err)
        err = ek_box_seal(worker_pub, id, plain, &boxed);
    ek_free_secret(plain);
    if (err)
        return ek_err_prefix(err, "endpoint %s: connection info", id);
    json_object_object_add(ep, "connection_info_box", json_object_new_string(boxed));
    json_object_object_del(ep, "connection_info_sealed");
    free(boxed);
    return NULL;
}

static json_object *endpoint_obj(const char *id, const char *sealed)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "connection_info_sealed", json_object_new_string(sealed));
    return o;
}

ek_err_t *ek_seal_claim_secrets(PGconn *db, const unsigned char key[EK_SECRET_KEY_LEN],
                                const char *task_id, const char *worker_pub, json_object **out)
{
    *out = NULL;
    const ek_box_ring_t *conductor = ek_seal_conductor_ring(key);
    if (!conductor)
        return ek_err_new(EK_E_INTERNAL, "the conductors' key pair is not available");
    PGresult *res = NULL;
    ek_err_t *err =
        ek_db_query(db, &res,
                    "SELECT oe.id, oe.connection_info, de.id, de.connection_info, "
                    "coalesce(a.info->t.instance, '{}')::text, t.state::text "
                    "FROM tasks t JOIN executions e ON e.id = t.execution_id "
                    "JOIN actions a ON a.id = e.action_id "
                    "JOIN endpoints oe ON oe.id = a.origin_endpoint_id "
                    "JOIN endpoints de ON de.id = a.destination_endpoint_id WHERE t.id = $1",
                    1, (const char *[]){task_id});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_NOTFOUND, "task %s is gone", task_id);
    }
    json_object *s = json_object_new_object(), *info = NULL;
    json_object *origin = endpoint_obj(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    json_object *dest = endpoint_obj(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    json_object_object_add(s, "origin", origin);
    json_object_object_add(s, "destination", dest);
    const char *text = PQgetvalue(res, 0, 4);
    if (!(err = ek_seal_endpoint_for(key, worker_pub, origin)) &&
        !(err = ek_seal_endpoint_for(key, worker_pub, dest)) &&
        !(err = ek_json_parse(text, strlen(text), &info))) {
        json_object_object_add(s, "task_info", info);
        /* the secrets workers returned are sealed for the conductors: open,
         * then seal for this worker (older, unsealed ones are sealed too) */
        if ((err = ek_box_json_open(info, conductor, EK_SEAL_TASK_INFO_AAD)) ||
            (err = ek_box_json_seal(info, worker_pub, task_id)))
            err = ek_err_prefix(err, "task %s: task info", task_id);
    }
    if (!err && !PQgetisnull(res, 0, 5)) {
        /* what the task saved before (a resumed attempt), the same way */
        json_object *state = NULL;
        const char *st = PQgetvalue(res, 0, 5);
        if (!(err = ek_json_parse(st, strlen(st), &state))) {
            json_object_object_add(s, "state", state);
            if ((err = ek_box_json_open(state, conductor, EK_SEAL_TASK_INFO_AAD)) ||
                (err = ek_box_json_seal(state, worker_pub, task_id)))
                err = ek_err_prefix(err, "task %s: saved state", task_id);
        }
    }
    PQclear(res);
    if (err) {
        json_object_put(s);
        return err;
    }
    *out = s;
    return NULL;
}

ek_err_t *ek_seal_pick_worker(PGconn *db, const char *provider, int alive_s, char **host,
                              char **worker_pub)
{
    *host = *worker_pub = NULL;
    char alive[16];
    snprintf(alive, sizeof(alive), "%d", alive_s);
    PGresult *res = NULL;
    ek_err_t *err = ek_db_query(
        db, &res,
        "SELECT host, specs->>'box_public_key' FROM services WHERE binary_name = "
        "'ekman-worker' AND status = 'UP' AND enabled AND deleted_at IS NULL AND "
        "last_heartbeat > now() - make_interval(secs => $2::int) AND providers ? $1 AND "
        "specs ? 'box_public_key' ORDER BY running_tasks::float / greatest(capacity, 1), "
        "random() LIMIT 1",
        2, (const char *[]){provider, alive});
    if (err)
        return err;
    if (PQntuples(res) == 1) {
        *host = ek_xstrdup(PQgetvalue(res, 0, 0));
        *worker_pub = ek_xstrdup(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return *host ? NULL
                 : ek_err_new(EK_E_NOTFOUND,
                              "no worker with the '%s' provider has registered a key", provider);
}
