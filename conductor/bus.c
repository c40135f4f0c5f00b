/* bus.c - the dispatcher and listener threads of the conductor. */
#include "conductor/bus.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include "common/amqp.h"
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "engine/placement.h"
#include "engine/store.h"
#include "conductor/seal.h"
#include "proto/envelope.h"
#include "proto/messages.h"
#include "proto/providers.h"
#include "proto/tasks.h"

struct ek_bus {
    ek_app_t *app;
    pthread_t dispatcher;
    pthread_t *listeners; /* [messaging] report_threads */
    int n_listeners;
    atomic_bool stop;
};

void ek_app_wake(ek_app_t *app)
{
    pthread_mutex_lock(&app->wake_lock);
    app->wake_pending = true;
    pthread_cond_signal(&app->wake);
    pthread_mutex_unlock(&app->wake_lock);
}

void ek_app_wait(ek_app_t *app, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&app->wake_lock);
    if (!app->wake_pending)
        pthread_cond_timedwait(&app->wake, &app->wake_lock, &ts);
    app->wake_pending = false;
    pthread_mutex_unlock(&app->wake_lock);
}

/* Keeps a connection to the database and one to the broker, re-opening
 * whichever broke. Returns false when stopping. */
static bool ensure_connections(ek_bus_t *bus, PGconn **db, ek_amqp_t **mq, const char *what)
{
    while (!atomic_load(&bus->stop)) {
        ek_err_t *err = NULL;
        if (*db && PQstatus(*db) != CONNECTION_OK) {
            PQfinish(*db);
            *db = NULL;
        }
        if (!*db)
            err = ek_db_connect_config(bus->app->cfg, db);
        if (!err && !*mq)
            err = ek_amqp_connect(ek_amqp_config_url(bus->app->cfg),
                                  (int)ek_config_get_int(bus->app->cfg, "messaging", "heartbeat"),
                                  mq);
        if (!err)
            return true;
        ek_log_kv(EK_LOG_WARNING, "reconnecting", "loop", what, "error", err->message, NULL);
        ek_err_free(err);
        for (int i = 0; i < 10 && !atomic_load(&bus->stop); i++)
            ek_stop_wait(100);
    }
    return false;
}

/* ---- dispatcher ---------------------------------------------------------------- */

#define DISPATCH_BATCH "20"

/* One dispatcher pass: its app, channel, count of messages sent, and the
 * liveness window (a worker silent for missed_heartbeats intervals counts as
 * gone even before a scheduler marks it DOWN). */
struct dispatch {
    ek_app_t *app;
    ek_amqp_t *mq;
    int *sent;
    int alive_s;
};

/* Pending tasks: each is placed, marked with a new attempt and published. */
static ek_err_t *dispatch_tasks(PGconn *db, struct dispatch *d)
{
    PGresult *res = NULL;
    ek_err_t *err = ek_db_query(
        db, &res,
        "SELECT t.id, jsonb_build_object('task_id', t.id, 'execution_id', e.id, 'task_type', "
        "t.task_type, 'instance', t.instance, 'params', t.params, "
        "'action', jsonb_build_object('id', a.id, 'type', a.action_type), "
        "'origin', jsonb_build_object('id', oe.id, 'name', oe.name, 'type', oe.type, "
        "'environment', a.source_environment), "
        "'destination', jsonb_build_object('id', de.id, 'name', de.name, 'type', de.type, "
        "'environment', "
        "a.destination_environment, 'network_map', a.network_map, 'storage_mappings', "
        "a.storage_mappings), 'user_scripts', a.user_scripts, 'clone_disks', a.clone_disks, "
        "'skip_os_morphing', a.skip_os_morphing, "
        "'task_info', coalesce(a.info->t.instance, '{}'), 'state', t.state)::text, "
        "e.project_id, a.user_id, t.task_type, oe.id, oe.type, de.id, de.type "
        "FROM tasks t JOIN executions e ON e.id = t.execution_id "
        "JOIN actions a ON a.id = e.action_id "
        "JOIN endpoints oe ON oe.id = a.origin_endpoint_id "
        "JOIN endpoints de ON de.id = a.destination_endpoint_id "
        "WHERE t.status = 'PENDING' AND t.dispatched_at IS NULL "
        "AND (t.dispatch_not_before IS NULL OR t.dispatch_not_before <= now()) "
        "ORDER BY t.created_at, t.index LIMIT " DISPATCH_BATCH " FOR UPDATE OF t SKIP LOCKED",
        0, NULL);
    int n = err ? 0 : PQntuples(res);
    /* the batch goes to the broker at once, its confirms waited for together */
    char **queues = ek_xcalloc((size_t)n + 1, sizeof(char *));
    char **wires = ek_xcalloc((size_t)n + 1, sizeof(char *));
    const char **ids = ek_xcalloc((size_t)n + 1, sizeof(char *));
    size_t batch = 0;
    for (int i = 0; i < n && !err; i++) {
        json_object *body = NULL;
        const char *text = PQgetvalue(res, i, 1);
        if ((err = ek_json_parse(text, strlen(text), &body)))
            break;
        char attempt[EK_UUID_STRLEN + 1];
        ek_uuid_generate(attempt);
        json_object_object_add(body, "attempt_id", json_object_new_string(attempt));
        /* No secret travels with the task: its connection info comes with the
         * grant of the claim, sealed for the claiming worker (seal.h); secrets
         * in the task info not yet sealed for the conductors are sealed now,
         * and the worker learns the key to seal its results for. */
        const ek_box_ring_t *ring = ek_seal_conductor_ring(d->app->key);
        json_object *ti = json_object_object_get(body, "task_info");
        if (!ring) {
            json_object_put(body);
            err = ek_err_new(EK_E_INTERNAL, "the conductors' key pair is not available");
            break;
        }
        json_object *st = json_object_object_get(body, "state");
        if ((ti && (err = ek_box_json_seal(ti, ek_box_ring_public(ring), EK_SEAL_TASK_INFO_AAD))) ||
            (st && (err = ek_box_json_seal(st, ek_box_ring_public(ring), EK_SEAL_TASK_INFO_AAD)))) {
            json_object_put(body);
            break;
        }
        json_object_object_add(body, "conductor_box_key",
                               json_object_new_string(ek_box_ring_public(ring)));
        ek_envelope_t *env = ek_envelope_new(EK_MSG_TASK_DISPATCH, body);
        env->project_id = ek_xstrdup(PQgetvalue(res, i, 2));
        env->user_id = ek_xstrdup(PQgetvalue(res, i, 3));
        char *wire = ek_envelope_encode(env);
        char *host = NULL;
        bool wait = false;
        err = ek_placement_choose(db, d->alive_s, PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
                                  PQgetvalue(res, i, 6), PQgetvalue(res, i, 7),
                                  PQgetvalue(res, i, 8), &host, &wait);
        char *queue =
            host ? ek_xasprintf("%s.%s", EK_QUEUE_WORKER, host) : ek_xstrdup(EK_QUEUE_WORKER);
        /* marked first, published second, committed last: a crash in between
         * re-sends the task with a new attempt id, and the first one's claim
         * is refused */
        if (!err && !wait)
            err = ek_db_query(db, NULL,
                              "UPDATE tasks SET attempt_id = $2, dispatched_at = now(), "
                              "dispatched_to = $3, attempts = attempts + 1, updated_at = now() "
                              "WHERE id = $1",
                              3, (const char *[]){PQgetvalue(res, i, 0), attempt, host});
        if (!err && !wait) {
            queues[batch] = EK_STEAL(queue);
            wires[batch] = EK_STEAL(wire);
            ids[batch++] = PQgetvalue(res, i, 0);
        }
        free(queue);
        free(host);
        if (!err && wait)
            err = ek_db_query(db, NULL,
                              "UPDATE tasks SET dispatch_not_before = now() + interval '2 s' "
                              "WHERE id = $1",
                              1, (const char *[]){PQgetvalue(res, i, 0)});
        if (wait) {
            free(wire);
            ek_envelope_free(env);
            continue;
        }
        free(wire);
        ek_envelope_free(env);
    }
    if (!err && batch)
        err = ek_amqp_publish_batch(d->mq, batch, (const char *const *)queues,
                                    (const char *const *)wires);
    for (size_t k = 0; k < batch; k++) {
        if (!err) {
            ek_log_kv(EK_LOG_DEBUG, "task dispatched", "task_id", ids[k], NULL);
            (*d->sent)++;
            atomic_fetch_add(&d->app->tasks_dispatched, 1);
        }
        free(queues[k]);
        free(wires[k]);
    }
    free(queues);
    free(wires);
    free(ids);
    PQclear(res);
    return err;
}

/* Cancels to send to the workers running the tasks. */
static ek_err_t *dispatch_cancels(PGconn *db, struct dispatch *d)
{
    PGresult *res = NULL;
    ek_err_t *err =
        ek_db_query(db, &res,
                    "SELECT id, attempt_id, host, cancel_force FROM tasks "
                    "WHERE cancel_pending LIMIT " DISPATCH_BATCH " FOR UPDATE SKIP LOCKED",
                    0, NULL);
    int n = err ? 0 : PQntuples(res);
    for (int i = 0; i < n && !err; i++) {
        const char *task = PQgetvalue(res, i, 0), *host = PQgetvalue(res, i, 2);
        if (*host) {
            json_object *body = json_object_new_object();
            json_object_object_add(body, "task_id", json_object_new_string(task));
            json_object_object_add(body, "attempt_id",
                                   json_object_new_string(PQgetvalue(res, i, 1)));
            json_object_object_add(body, "force",
                                   json_object_new_boolean(PQgetvalue(res, i, 3)[0] == 't'));
            ek_envelope_t *env = ek_envelope_new(EK_MSG_TASK_CANCEL, body);
            char *wire = ek_envelope_encode(env);
            char *queue = ek_xasprintf("%s.%s", EK_QUEUE_WORKER, host);
            err = ek_amqp_publish(d->mq, queue, wire, NULL, NULL);
            if (err && err->code == EK_E_NOTFOUND) {
                ek_log_kv(EK_LOG_WARNING, "cannot cancel: the worker's queue is gone", "task_id",
                          task, "host", host, NULL);
                ek_err_free(err);
                err = NULL;
            }
            free(queue);
            free(wire);
            ek_envelope_free(env);
        }
        if (!err)
            err = ek_db_query(db, NULL, "UPDATE tasks SET cancel_pending = false WHERE id = $1", 1,
                              (const char *[]){task});
        if (!err)
            (*d->sent)++;
    }
    PQclear(res);
    return err;
}

/* Marked first, published second, committed last (dispatch_tasks): the
 * transaction publishes, so it never runs twice (retries 0). */
static ek_err_t *dispatch_tx(PGconn *db, void *arg)
{
    struct dispatch *d = arg;
    ek_err_t *err = dispatch_tasks(db, d);
    return err ? err : dispatch_cancels(db, d);
}

static ek_err_t *dispatch_batch(ek_app_t *app, PGconn *db, ek_amqp_t *mq, int *sent)
{
    *sent = 0;
    struct dispatch d = {app, mq, sent,
                         (int)(ek_config_get_int(app->cfg, "scheduler", "heartbeat_interval") *
                               ek_config_get_int(app->cfg, "scheduler", "missed_heartbeats"))};
    char alive[16];
    snprintf(alive, sizeof(alive), "%d", d.alive_s);
    /* attempts waiting in the queue of a worker that went silent: sent again */
    ek_err_t *err = ek_db_query(db, NULL,
                                "UPDATE tasks t SET dispatched_at = NULL, dispatched_to = NULL, "
                                "attempt_id = NULL WHERE t.status = 'PENDING' AND "
                                "t.dispatched_to IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                                "services s WHERE s.host = t.dispatched_to AND s.status = 'UP' "
                                "AND s.deleted_at IS NULL AND s.last_heartbeat > now() - "
                                "make_interval(secs => $1::int))",
                                1, (const char *[]){alive});
    return err ? err : ek_db_tx(db, 0, dispatch_tx, &d);
}

static void *dispatcher_main(void *arg)
{
    ek_bus_t *bus = arg;
    PGconn *db = NULL;
    ek_amqp_t *mq = NULL;
    ek_log_context_set("loop", "dispatcher");
    while (ensure_connections(bus, &db, &mq, "dispatcher")) {
        int sent = 0;
        ek_err_t *err = dispatch_batch(bus->app, db, mq, &sent);
        if (err) {
            ek_log_kv(EK_LOG_WARNING, "dispatch failed, will retry", "error", err->message, NULL);
            if (err->code == EK_E_UNAVAILABLE || err->code == EK_E_PROTOCOL ||
                err->code == EK_E_NOTFOUND) {
                ek_amqp_close(mq); /* the database side is checked by ensure_connections */
                mq = NULL;
            }
            ek_err_free(err);
            ek_app_wait(bus->app, 500);
        } else if (sent == 0) {
            ek_app_wait(bus->app, 500);
        }
        /* mq only publishes: without this the broker hears nothing from an
         * idle dispatcher and drops the connection (issue #18) */
        if (mq && (err = ek_amqp_service(mq))) {
            ek_log_kv(EK_LOG_DEBUG, "broker connection lost while idle, reconnecting", "error",
                      err->message, NULL);
            ek_err_free(err);
            ek_amqp_close(mq);
            mq = NULL;
        }
    }
    ek_amqp_close(mq);
    PQfinish(db);
    ek_log_context_clear();
    return NULL;
}

/* ---- listener ------------------------------------------------------------------- */

/* Where a claiming worker instance stands against the instance the scheduler
 * registered last for its host (scheduler/registry.c, docs/reliability.md):
 * the scheduler records a new instance only after it handed back every task
 * the host ran before, so a claim is granted only to the registered instance
 * (or to a worker that names none). One not registered yet is told to ask
 * again (*retry); an older one (replaced, yet still alive) is refused
 * (*replaced). */
static ek_err_t *claim_standing(PGconn *db, json_object *body, const char *host, bool *retry,
                                bool *replaced)
{
    const char *id = json_object_get_string(json_object_object_get(body, "instance_id"));
    int64_t started = json_object_get_int64(json_object_object_get(body, "instance_started_ms"));
    *retry = *replaced = false;
    if (!id || !*id)
        return NULL;
    PGresult *res;
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT specs->>'instance_id', "
                                "(specs->>'instance_started_ms')::bigint FROM services WHERE "
                                "host = $1 AND binary_name = 'ekman-worker' AND deleted_at IS NULL",
                                1, (const char *[]){host});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        *retry = true; /* never registered: the scheduler hands back what the host ran first */
    } else if (strcmp(PQgetvalue(res, 0, 0), id) != 0) {
        bool known = !PQgetisnull(res, 0, 1);
        long long recorded = known ? atoll(PQgetvalue(res, 0, 1)) : 0;
        if (known && recorded > started)
            *replaced = true;
        else
            *retry = true;
    }
    PQclear(res);
    return NULL;
}

/* Handles one message; *requeue set when it should come back later. */
static bool handle_message(ek_bus_t *bus, PGconn *db, ek_amqp_t *pub, const ek_amqp_msg_t *msg,
                           bool *requeue)
{
    ek_envelope_t *env = NULL;
    ek_task_report_t r;
    *requeue = false;
    ek_err_t *err = ek_envelope_decode(msg->body, msg->len, ek_conductor_message_types, &env);
    if (!err)
        err = ek_task_report_read(env, &r);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "dead-lettering a malformed message", "queue", EK_QUEUE_CONDUCTOR,
                  "error", err->message, NULL);
        atomic_fetch_add(&bus->app->messages_dead_lettered, 1);
        ek_err_free(err);
        ek_envelope_free(env);
        return false;
    }
    if (!ek_amqp_sender_allowed(bus->app->cfg, "worker", msg->user_id)) {
        /* the broker checked user_id: this came from another role (or a tool) */
        ek_log_kv(EK_LOG_WARNING, "dead-lettering a message no worker sent", "queue",
                  EK_QUEUE_CONDUCTOR, "type", env->type, "broker_user",
                  msg->user_id ? msg->user_id : "(none)", NULL);
        atomic_fetch_add(&bus->app->messages_dead_lettered, 1);
        ek_envelope_free(env);
        return false;
    }
    bool granted = false, retry = false, replaced = false;
    bool is_claim = strcmp(env->type, EK_MSG_TASK_CLAIM) == 0;
    if (is_claim)
        err = claim_standing(db, env->body, r.host, &retry, &replaced);
    if (!err && (retry || replaced))
        ek_log_kv(EK_LOG_INFO,
                  retry ? "claim deferred: the scheduler has not registered this worker "
                          "instance yet"
                        : "claim refused: a newer worker instance runs on that host",
                  "task_id", r.task_id, "host", r.host, NULL);
    else if (!err)
        err = ek_engine_report(db, &r, env->id, &granted);
    if (err) {
        bool transient = err->code == EK_E_UNAVAILABLE || err->code == EK_E_RETRY ||
                         PQstatus(db) != CONNECTION_OK;
        ek_log_kv(transient ? EK_LOG_WARNING : EK_LOG_ERROR,
                  transient ? "report not applied, will retry" : "report rejected", "type",
                  env->type, "task_id", r.task_id, "error", err->message, NULL);
        ek_err_free(err);
        ek_envelope_free(env);
        *requeue = transient;
        return false;
    }
    atomic_fetch_add(&bus->app->reports_handled, 1);
    if (strcmp(env->type, EK_MSG_TASK_CLAIM) == 0 && msg->reply_to) {
        json_object *body = json_object_new_object();
        json_object *secrets = NULL;
        const char *wkey =
            json_object_get_string(json_object_object_get(env->body, "box_public_key"));
        if (granted && wkey) {
            /* the task's secrets, for the worker that now runs it and no other */
            err = ek_seal_claim_secrets(db, bus->app->key, r.task_id, wkey, &secrets);
            if (err) {
                ek_log_kv(EK_LOG_ERROR, "cannot seal the task's secrets for the worker", "task_id",
                          r.task_id, "host", r.host, "error", err->message, NULL);
                ek_err_free(err);
                err = NULL;
                json_object_object_add(body, "error",
                                       json_object_new_string("the conductor could not seal the "
                                                              "task's secrets for this worker's "
                                                              "key (see the conductor's log)"));
            }
        }
        json_object_object_add(body, "granted", json_object_new_boolean(granted));
        if (retry)
            json_object_object_add(body, "retry", json_object_new_boolean(1));
        if (secrets)
            json_object_object_add(body, "secrets", secrets);
        ek_envelope_t *reply = ek_envelope_new(EK_MSG_REPLY, body);
        reply->correlation_id = ek_xstrdup(env->id);
        char *wire = ek_envelope_encode(reply);
        err = ek_amqp_publish(pub, msg->reply_to, wire, NULL, env->id);
        free(wire);
        ek_envelope_free(reply);
        if (err) {
            /* the claim is committed: the worker asks again and is granted again */
            ek_log_kv(EK_LOG_WARNING, "could not answer a claim", "task_id", r.task_id, "error",
                      err->message, NULL);
            ek_err_free(err);
        }
    }
    if (strcmp(env->type, EK_MSG_TASK_EVENT) && strcmp(env->type, EK_MSG_TASK_PROGRESS))
        ek_app_wake(bus->app);
    ek_envelope_free(env);
    return true;
}

static void *listener_main(void *arg)
{
    ek_bus_t *bus = arg;
    PGconn *db = NULL;
    ek_amqp_t *mq = NULL, *pub = NULL;
    ek_log_context_set("loop", "listener");
    while (ensure_connections(bus, &db, &mq, "listener")) {
        ek_err_t *err = NULL;
        if (!pub)
            err = ek_amqp_connect(ek_amqp_config_url(bus->app->cfg),
                                  (int)ek_config_get_int(bus->app->cfg, "messaging", "heartbeat"),
                                  &pub);
        if (!err)
            err = ek_amqp_declare_queue(mq, EK_QUEUE_CONDUCTOR, bus->app->quorum);
        if (!err)
            err = ek_amqp_consume(mq, EK_QUEUE_CONDUCTOR, 32);
        while (!err && !atomic_load(&bus->stop)) {
            ek_amqp_msg_t msg;
            bool got;
            /* pub only publishes: it hears from us only through this */
            ek_err_t *perr = ek_amqp_service(pub);
            if (perr) {
                ek_log_kv(EK_LOG_DEBUG, "reply connection lost, opening another", "error",
                          perr->message, NULL);
                ek_err_free(perr);
                ek_amqp_close(pub);
                if ((err = ek_amqp_connect(
                         ek_amqp_config_url(bus->app->cfg),
                         (int)ek_config_get_int(bus->app->cfg, "messaging", "heartbeat"), &pub))) {
                    pub = NULL;
                    continue;
                }
            }
            if ((err = ek_amqp_receive(mq, 500, &msg, &got)) || !got)
                continue;
            bool requeue;
            if (handle_message(bus, db, pub, &msg, &requeue))
                err = ek_amqp_ack(mq, msg.delivery_tag);
            else
                err = ek_amqp_reject(mq, msg.delivery_tag, requeue);
            ek_amqp_msg_clear(&msg);
            if (!err && requeue)
                ek_stop_wait(500); /* the database is in trouble: do not spin */
            if (!err && requeue && PQstatus(db) != CONNECTION_OK)
                break;
        }
        if (err) {
            ek_log_kv(EK_LOG_WARNING, "lost the broker, reconnecting", "error", err->message, NULL);
            ek_err_free(err);
        }
        ek_amqp_close(mq);
        ek_amqp_close(pub);
        mq = pub = NULL;
    }
    ek_amqp_close(mq);
    ek_amqp_close(pub);
    PQfinish(db);
    ek_log_context_clear();
    return NULL;
}

ek_err_t *ek_bus_start(ek_app_t *app, ek_bus_t **out)
{
    ek_bus_t *bus = ek_xcalloc(1, sizeof(*bus));
    bus->app = app;
    atomic_init(&bus->stop, false);
    int n = (int)ek_config_get_int(app->cfg, "messaging", "report_threads");
    bus->listeners = ek_xcalloc((size_t)n, sizeof(pthread_t));
    if (pthread_create(&bus->dispatcher, NULL, dispatcher_main, bus) != 0) {
        free(bus->listeners);
        free(bus);
        return ek_err_new(EK_E_INTERNAL, "could not start the dispatcher thread");
    }
    /* reports of one execution may be applied by several threads (and
     * conductors) at once: the engine serialises them on the execution's
     * and the task's row locks */
    for (; bus->n_listeners < n; bus->n_listeners++) {
        if (pthread_create(&bus->listeners[bus->n_listeners], NULL, listener_main, bus) != 0) {
            ek_bus_stop(bus);
            return ek_err_new(EK_E_INTERNAL, "could not start a report listener thread");
        }
    }
    *out = bus;
    return NULL;
}

void ek_bus_stop(ek_bus_t *bus)
{
    if (!bus)
        return;
    atomic_store(&bus->stop, true);
    ek_app_wake(bus->app);
    pthread_join(bus->dispatcher, NULL);
    for (int i = 0; i < bus->n_listeners; i++)
        pthread_join(bus->listeners[i], NULL);
    free(bus->listeners);
    free(bus);
}
