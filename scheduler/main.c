/* main.c - ekman-scheduler: keeps the service registry from the workers'
 * heartbeats (ekman.scheduler queue), marks silent workers DOWN and gets their
 * tasks re-run, and fires transfer schedules. Task placement itself happens
 * when the conductor dispatches, from the registry kept here. Any number of
 * schedulers may run: every decision is a conditional UPDATE. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/amqp.h"
#include "common/db.h"
#include "common/log.h"
#include "common/program.h"
#include "engine/migrate.h"
#include "proto/envelope.h"
#include "proto/messages.h"
#include "scheduler/scheduler.h"

static const ek_program_info_t info = {
    .name = "ekman-scheduler",
    .summary = "Ekman's scheduler: worker registry and heartbeats, lost workers, cron schedules.",
};

static const char *const scheduler_types[] = {EK_MSG_SERVICE_HEARTBEAT, EK_MSG_SERVICE_STOPPING,
                                              NULL};

/* Marks silent workers DOWN and fires due schedules. A scheduler judges
 * silence only once it has recorded heartbeats for a whole liveness window
 * (listening_since: it began consuming, or the database took a heartbeat
 * again after failing): the heartbeats sent while it was down, or while the
 * database was, wait in its queue and must count first, or a scheduler (or
 * PostgreSQL) restart would declare every worker lost and re-run their tasks. */
static void periodic(PGconn *db, const ek_config_t *cfg, time_t listening_since, time_t *last_reap,
                     time_t *last_minute)
{
    time_t now = time(NULL);
    int interval = (int)ek_config_get_int(cfg, "scheduler", "heartbeat_interval");
    int missed = (int)ek_config_get_int(cfg, "scheduler", "missed_heartbeats");
    ek_err_t *err = NULL;
    if (now - listening_since >= (time_t)interval * missed &&
        now - *last_reap >= (interval > 2 ? interval / 2 : 1)) {
        int lost;
        err = ek_registry_reap(db, interval, missed, &lost);
        *last_reap = now;
    }
    time_t minute = now - now % 60;
    if (!err && minute != *last_minute) {
        int fired;
        err = ek_schedules_fire(db, minute, &fired);
        if (!err)
            *last_minute = minute;
    }
    if (err) {
        ek_log_err(err, "periodic work failed, retrying");
        ek_err_free(err);
    }
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    if (argc > 1) {
        fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", info.name, argv[1]);
        ek_config_free(cfg);
        return 2;
    }
    ek_signals_install();
    bool quorum = ek_config_get_bool(cfg, "messaging", "quorum_queues");
    PGconn *db = NULL;
    int applied;
    ek_err_t *err = ek_db_connect_config(cfg, &db);
    if (!err)
        err = ek_migrate(db, &applied); /* the scheduler may start before any conductor */
    if (err) {
        code = ek_stop_requested() ? 0 : 1;
        if (code)
            ek_log_err(err, "cannot start");
        ek_err_free(err);
        PQfinish(db);
        ek_config_free(cfg);
        return code;
    }
    time_t last_reap = 0, last_minute = 0;
    bool announced = false;
    while (!ek_stop_requested()) {
        ek_amqp_t *mq = NULL;
        err = ek_amqp_connect_config(cfg, &mq);
        if (!err)
            err = ek_amqp_declare_queue(mq, EK_QUEUE_SCHEDULER, quorum);
        if (!err)
            err = ek_amqp_consume(mq, EK_QUEUE_SCHEDULER, 64);
        time_t listening_since = time(NULL);
        if (!err && !announced) {
            char interval[32];
            snprintf(interval, sizeof(interval), "%lld",
                     (long long)ek_config_get_int(cfg, "scheduler", "heartbeat_interval"));
            ek_log_kv(EK_LOG_INFO, "scheduler started", "broker", ek_amqp_peer(mq),
                      "heartbeat_interval", interval, NULL);
            announced = true;
        }
        while (!err && !ek_stop_requested()) {
            if (PQstatus(db) != CONNECTION_OK) {
                PQreset(db);
                listening_since = time(NULL);
            }
            periodic(db, cfg, listening_since, &last_reap, &last_minute);
            ek_amqp_msg_t msg;
            bool got;
            if ((err = ek_amqp_receive(mq, 1000, &msg, &got)) || !got)
                continue;
            ek_envelope_t *env = NULL;
            ek_err_t *bad = ek_envelope_decode(msg.body, msg.len, scheduler_types, &env);
            if (!bad && !ek_amqp_sender_allowed(cfg, "worker", msg.user_id))
                /* the broker checked user_id: only workers announce themselves */
                bad = ek_err_new(EK_E_PROTOCOL, "sent by broker user '%s', not a worker's",
                                 msg.user_id ? msg.user_id : "(none)");
            if (!bad)
                bad = ek_registry_heartbeat(db, env);
            if (bad && bad->code != EK_E_PROTOCOL && bad->code != EK_E_INVALID) {
                /* the database is in trouble: the message comes back later */
                ek_log_err(bad, "heartbeat not recorded");
                listening_since = time(NULL); /* deaf until the queue is read again */
                err = ek_amqp_reject(mq, msg.delivery_tag, true);
                ek_stop_wait(1000);
            } else if (bad) {
                ek_log_kv(EK_LOG_WARNING, "dead-lettering a malformed message", "queue",
                          EK_QUEUE_SCHEDULER, "error", bad->message, NULL);
                err = ek_amqp_reject(mq, msg.delivery_tag, false);
            } else {
                err = ek_amqp_ack(mq, msg.delivery_tag);
            }
            ek_err_free(bad);
            ek_envelope_free(env);
            ek_amqp_msg_clear(&msg);
        }
        if (err && (err->code == EK_E_AUTH || err->code == EK_E_INVALID)) {
            /* wrong credentials or URL: waiting will not mend them */
            ek_log_err(err, "cannot use the broker");
            ek_err_free(err);
            ek_amqp_close(mq);
            code = 1;
            break;
        }
        if (err) {
            if (err->code != EK_E_CANCELED)
                ek_log_kv(EK_LOG_WARNING, "broker connection lost, reconnecting", "error",
                          err->message, NULL);
            ek_err_free(err);
            err = NULL;
            ek_stop_wait(1000);
        }
        ek_amqp_close(mq);
    }
    ek_info("stopping on signal %d", ek_stop_signal());
    PQfinish(db);
    ek_config_free(cfg);
    ek_info("scheduler stopped");
    ek_log_shutdown();
    return code;
}
