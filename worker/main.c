/* main.c - ekman-worker: takes tasks from ekman.worker and ekman.worker.<host>,
 * claims each attempt from the conductor, runs it in a task process with the
 * provider plugins, answers endpoint queries, and heartbeats to the scheduler.
 * Each start is a new instance (instance_id, instance_started_ms in its
 * heartbeats and claims): the first heartbeat of a new instance makes the
 * scheduler hand back every task the previous instance of this host ran, and
 * the conductor grants this instance's claims only once that is done
 * (docs/reliability.md).
 * SIGTERM stops taking work, lets running tasks finish for up to [worker]
 * task_stop_timeout seconds, then exits. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/amqp.h"
#include "common/box.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/strbuf.h"
#include "common/uuid.h"
#include "proto/envelope.h"
#include "proto/messages.h"
#include "proto/providers.h"
#include "worker/child.h"
#include "worker/keys.h"
#include "worker/provider.h"
#include "worker/supervisor.h"

static const ek_program_info_t info = {
    .name = "ekman-worker",
    .summary = "Ekman's worker: runs migration tasks with the provider plugins.",
};

struct worker {
    const ek_config_t *cfg;
    char host[256];
    char instance_id[EK_UUID_STRLEN + 1];
    long long instance_started_ms; /* wall clock: orders instances of one host */
    char *own_queue;
    int capacity;
    ek_supervisor_t *sup;
    ek_amqp_t *rpc; /* claims */
    atomic_bool stop_heartbeat;
};

static const char *const worker_types[] = {EK_MSG_TASK_DISPATCH, EK_MSG_TASK_CANCEL,
                                           EK_MSG_ENDPOINT_QUERY, NULL};

/* Which worker process this is (heartbeats and claims). */
static void add_instance(const struct worker *w, json_object *b)
{
    json_object_object_add(b, "instance_id", json_object_new_string(w->instance_id));
    json_object_object_add(b, "instance_started_ms", json_object_new_int64(w->instance_started_ms));
}

/* What this worker announces: its providers and their capability bits. */
static json_object *service_body(struct worker *w)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(w->host));
    json_object_object_add(b, "binary", json_object_new_string("ekman-worker"));
    json_object_object_add(b, "topic", json_object_new_string(w->own_queue));
    json_object_object_add(
        b, "region", json_object_new_string(ek_config_get_string(w->cfg, "worker", "region")));
    json_object *providers = json_object_new_object();
    const ek_strlist_t *wanted = ek_config_get_list(w->cfg, "worker", "providers");
    for (const ek_provider_t *const *p = ek_worker_providers; *p; p++) {
        if (!ek_strlist_contains(wanted, (*p)->name))
            continue;
        json_object *types = json_object_new_array();
        for (unsigned bit = 1; bit; bit <<= 1)
            if ((*p)->capabilities & bit)
                json_object_array_add(types, json_object_new_int((int)bit));
        json_object *o = json_object_new_object();
        json_object_object_add(o, "types", types);
        json_object_object_add(providers, (*p)->name, o);
    }
    json_object_object_add(b, "providers", providers);
    json_object_object_add(b, "capacity", json_object_new_int(w->capacity));
    json_object_object_add(b, "running_tasks", json_object_new_int(ek_supervisor_running(w->sup)));
    json_object_object_add(b, "pid", json_object_new_int((int)getpid()));
    add_instance(w, b);
    /* the key the conductor seals this worker's tasks for; read each time, so
     * that a rotation (ekman-worker --rotate-key) is announced at once */
    _cleanup_free_ char *kf = ek_worker_key_path(w->cfg);
    ek_box_ring_t *ring = NULL;
    ek_err_t *err = ek_box_ring_load(kf, true, &ring);
    if (err) {
        ek_log_err(err, "no key to announce: tasks cannot be sealed for this worker");
        ek_err_free(err);
    } else {
        json_object_object_add(b, "box_public_key",
                               json_object_new_string(ek_box_ring_public(ring)));
        json_object_object_add(b, "box_key_id", json_object_new_string(ek_box_ring_kid(ring)));
        ek_box_ring_free(ring);
    }
    return b;
}

static void *heartbeat_main(void *arg)
{
    struct worker *w = arg;
    ek_amqp_t *mq = NULL;
    int interval_ms = (int)ek_config_get_int(w->cfg, "scheduler", "heartbeat_interval") * 1000;
    int retry_ms = 1000;
    ek_log_context_set("loop", "heartbeat");
    while (!atomic_load(&w->stop_heartbeat)) {
        ek_envelope_t *env = ek_envelope_new(EK_MSG_SERVICE_HEARTBEAT, service_body(w));
        char *wire = ek_envelope_encode(env);
        ek_err_t *err = mq ? NULL : ek_amqp_connect_config(w->cfg, &mq);
        if (!err)
            err = ek_amqp_declare_queue(mq, EK_QUEUE_SCHEDULER,
                                        ek_config_get_bool(w->cfg, "messaging", "quorum_queues"));
        if (!err)
            err = ek_amqp_publish(mq, EK_QUEUE_SCHEDULER, wire, NULL, NULL);
        if (err) {
            ek_log_kv(EK_LOG_WARNING, "heartbeat not sent", "error", err->message, NULL);
            ek_err_free(err);
            ek_amqp_close(mq);
            mq = NULL;
        }
        free(wire);
        ek_envelope_free(env);
        /* until one is sent (the scheduler may start after us), retry soon:
         * 1 s, then doubling up to the interval; no task or endpoint query
         * reaches this worker before the scheduler has its key */
        int pause_ms = interval_ms;
        if (!mq) {
            pause_ms = retry_ms < interval_ms ? retry_ms : interval_ms;
            if (retry_ms < interval_ms)
                retry_ms *= 2; /* no further: a long outage must not overflow it */
        } else {
            retry_ms = 1000;
        }
        for (int waited = 0; waited < pause_ms && !atomic_load(&w->stop_heartbeat); waited += 100)
            usleep(100 * 1000);
    }
    /* tell the scheduler now rather than after three missed heartbeats */
    ek_envelope_t *env = ek_envelope_new(EK_MSG_SERVICE_STOPPING, service_body(w));
    char *wire = ek_envelope_encode(env);
    if (mq)
        ek_err_free(ek_amqp_publish(mq, EK_QUEUE_SCHEDULER, wire, NULL, NULL));
    free(wire);
    ek_envelope_free(env);
    ek_amqp_close(mq);
    ek_log_context_clear();
    return NULL;
}

/* Asks the conductor whether this attempt may run here. */
/* The grant brings the task's secrets sealed for this worker's key: they go
 * into job (the task process opens them). */
static ek_err_t *claim(struct worker *w, const char *task_id, const char *attempt_id,
                       json_object *job, bool *granted)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "task_id", json_object_new_string(task_id));
    json_object_object_add(b, "attempt_id", json_object_new_string(attempt_id));
    json_object_object_add(b, "host", json_object_new_string(w->host));
    json_object_object_add(b, "process_id", json_object_new_int((int)getpid()));
    add_instance(w, b);
    {
        _cleanup_free_ char *kf = ek_worker_key_path(w->cfg);
        ek_box_ring_t *ring = NULL;
        ek_err_t *kerr = ek_box_ring_load(kf, false, &ring);
        if (kerr)
            return ek_err_prefix(kerr, "this worker's key ([worker] key_file)");
        json_object_object_add(b, "box_public_key",
                               json_object_new_string(ek_box_ring_public(ring)));
        ek_box_ring_free(ring);
    }
    ek_envelope_t *env = ek_envelope_new(EK_MSG_TASK_CLAIM, b);
    char *wire = ek_envelope_encode(env);
    ek_err_t *err = NULL;
    *granted = false;
    /* a new instance waits for the scheduler to register it (it hands the
     * tasks of the previous instance back first): a few heartbeat intervals */
    int waits = 3 * (int)ek_config_get_int(w->cfg, "scheduler", "heartbeat_interval");
    for (int attempt = 0; attempt < 10; attempt++) {
        char *reply = NULL;
        bool retry = false;
        err = w->rpc ? NULL : ek_amqp_connect_config(w->cfg, &w->rpc);
        if (!err)
            err = ek_amqp_call(w->rpc, EK_QUEUE_CONDUCTOR, wire, env->id, 30000, &reply);
        if (!err) {
            ek_envelope_t *ans = NULL;
            err = ek_envelope_decode(reply, strlen(reply), (const char *[]){EK_MSG_REPLY, NULL},
                                     &ans);
            if (!err)
                err = ek_json_opt_bool(ans->body, "reply", "granted", false, granted);
            if (!err)
                err = ek_json_opt_bool(ans->body, "reply", "retry", false, &retry);
            json_object *v;
            if (!err && *granted) {
                if (json_object_object_get_ex(ans->body, "secrets", &v) && v)
                    json_object_object_add(job, "secrets", json_object_get(v));
                if (json_object_object_get_ex(ans->body, "error", &v) && v)
                    json_object_object_add(job, "secrets_error", json_object_get(v));
            }
            ek_envelope_free(ans);
            free(reply);
            if (!err && retry && waits-- > 0 && !ek_stop_requested()) {
                ek_log_kv(EK_LOG_INFO,
                          "claim deferred until the scheduler registers this worker "
                          "instance",
                          "task_id", task_id, NULL);
                ek_stop_wait(1000);
                attempt--;
                continue;
            }
            if (!err)
                break;
        }
        ek_log_kv(EK_LOG_WARNING, "claim not answered, asking again", "task_id", task_id, "error",
                  err->message, NULL);
        ek_amqp_close(w->rpc);
        w->rpc = NULL;
        if (ek_stop_requested())
            break;
        ek_err_free(err);
        err = NULL;
        ek_stop_wait(1000);
    }
    free(wire);
    ek_envelope_free(env);
    return err;
}

/* Handles one delivery; returns false when it should be dead-lettered. */
static bool handle(struct worker *w, const ek_amqp_msg_t *msg)
{
    ek_envelope_t *env = NULL;
    ek_err_t *err = ek_envelope_decode(msg->body, msg->len, worker_types, &env);
    const char *task_id = NULL, *attempt_id = NULL;
    if (!err && strcmp(env->type, EK_MSG_ENDPOINT_QUERY) != 0 &&
        (!(err = ek_json_req_string(env->body, "body", "task_id", &task_id))))
        err = ek_json_req_string(env->body, "body", "attempt_id", &attempt_id);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "dead-lettering a malformed message", "error", err->message,
                  NULL);
        ek_err_free(err);
        ek_envelope_free(env);
        return false;
    }
    if (!ek_amqp_sender_allowed(w->cfg, "conductor", msg->user_id)) {
        /* the broker checked user_id: only a conductor sends work (another
         * worker or a tool cannot put a task in our queue) */
        ek_log_kv(EK_LOG_WARNING, "dead-lettering a message no conductor sent", "type", env->type,
                  "broker_user", msg->user_id ? msg->user_id : "(none)", NULL);
        ek_envelope_free(env);
        return false;
    }
    if (!strcmp(env->type, EK_MSG_TASK_CANCEL)) {
        bool force = false;
        ek_err_free(ek_json_opt_bool(env->body, "body", "force", false, &force));
        if (!ek_supervisor_cancel(w->sup, task_id, attempt_id, force)) {
            /* the conductor sends a cancel to the host that runs the attempt:
             * not running here means its process is gone (a previous
             * instance's, killed at start): canceled, not CANCELLING for good */
            ek_log_kv(EK_LOG_INFO, "cancel for a task not running here: reported canceled",
                      "task_id", task_id, NULL);
            ek_supervisor_report_gone(w->sup, task_id, attempt_id);
        }
    } else if (!strcmp(env->type, EK_MSG_ENDPOINT_QUERY)) {
        json_object_object_add(env->body, "kind", json_object_new_string("query"));
        if (msg->reply_to)
            err = ek_supervisor_start_query(
                w->sup, msg->reply_to, msg->correlation_id ? msg->correlation_id : env->id,
                json_object_to_json_string(env->body),
                (int)ek_config_get_int(w->cfg, "messaging", "rpc_timeout"));
    } else {
        bool granted = false;
        err = claim(w, task_id, attempt_id, env->body, &granted);
        if (!err && granted) {
            json_object_object_add(env->body, "kind", json_object_new_string("task"));
            err = ek_supervisor_start_task(w->sup, task_id, attempt_id,
                                           json_object_to_json_string(env->body));
            if (!err)
                ek_log_kv(EK_LOG_INFO, "task started", "task_id", task_id, "task_type",
                          json_object_get_string(json_object_object_get(env->body, "task_type")),
                          NULL);
        } else if (!err) {
            ek_log_kv(EK_LOG_INFO, "claim refused: the attempt runs elsewhere or is stale",
                      "task_id", task_id, NULL);
        }
    }
    if (err) {
        ek_log_err(err, "%s not handled", env->type);
        ek_err_free(err);
    }
    ek_envelope_free(env);
    return true;
}

/* Takes work until stopped; false when the broker refuses this worker. */
static bool consume(struct worker *w)
{
    bool quorum = ek_config_get_bool(w->cfg, "messaging", "quorum_queues");
    bool announced = false;
    while (!ek_stop_requested()) {
        ek_amqp_t *mq = NULL;
        ek_err_t *err = ek_amqp_connect_config(w->cfg, &mq);
        if (!err)
            err = ek_amqp_declare_queue(mq, EK_QUEUE_WORKER, quorum);
        if (!err)
            err = ek_amqp_declare_queue(mq, w->own_queue, quorum);
        if (!err)
            err = ek_amqp_consume(mq, w->own_queue, w->capacity);
        if (!err)
            err = ek_amqp_consume(mq, EK_QUEUE_WORKER, w->capacity);
        if (!err && !announced) {
            ek_log_kv(EK_LOG_INFO, "worker started", "host", w->host, "queue", w->own_queue,
                      "broker", ek_amqp_peer(mq), NULL);
            announced = true;
        }
        while (!err && !ek_stop_requested()) {
            if (ek_supervisor_running(w->sup) >= w->capacity) {
                ek_stop_wait(200);         /* full: what the broker sent waits in the prefetch */
                err = ek_amqp_service(mq); /* and the broker keeps hearing from us */
                continue;
            }
            ek_amqp_msg_t msg;
            bool got;
            if ((err = ek_amqp_receive(mq, 500, &msg, &got)) || !got)
                continue;
            if (handle(w, &msg))
                err = ek_amqp_ack(mq, msg.delivery_tag);
            else
                err = ek_amqp_reject(mq, msg.delivery_tag, false);
            ek_amqp_msg_clear(&msg);
        }
        if (err && (err->code == EK_E_AUTH || err->code == EK_E_INVALID)) {
            /* wrong credentials or URL: waiting will not mend them */
            ek_log_err(err, "cannot use the broker");
            ek_err_free(err);
            ek_amqp_close(mq);
            return false;
        }
        if (err) {
            if (err->code != EK_E_CANCELED)
                ek_log_kv(EK_LOG_WARNING, "broker connection lost, reconnecting", "error",
                          err->message, NULL);
            ek_err_free(err);
            ek_stop_wait(1000);
        }
        ek_amqp_close(mq); /* unacked deliveries go back to the queue */
    }
    return true;
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    /* --task-child [DIR]: DIR is the private temporary directory the
     * supervisor made for this task process, its [worker] tmp_dir */
    bool child = (argc == 2 || argc == 3) && strcmp(argv[1], "--task-child") == 0;
    if (argc == 2 && strcmp(argv[1], "--rotate-key") == 0) {
        /* a new key pair; the previous one still opens what was sealed for it */
        _cleanup_free_ char *kf = ek_worker_key_path(cfg);
        char kid[EK_BOX_KID_LEN + 1];
        ek_err_t *err = ek_box_rotate(kf, kid);
        if (err) {
            fprintf(stderr, "%s: cannot rotate the key: %s\n", info.name, err->message);
            ek_err_free(err);
            ek_config_free(cfg);
            return 1;
        }
        printf("new key %s in %s (the previous one kept in %s.prev); a running worker "
               "announces it with its next heartbeat\n",
               kid, kf, kf);
        ek_config_free(cfg);
        return 0;
    }
    if (argc > 1 && !child) {
        fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", info.name, argv[1]);
        ek_config_free(cfg);
        return 2;
    }
    if (child) {
        if (argc == 3) {
            _cleanup_free_ char *text = ek_xasprintf("[worker]\ntmp_dir = \"%s\"\n", argv[2]);
            ek_err_t *err = ek_config_load_string(cfg, text, "--task-child");
            if (err) {
                fprintf(stderr, "%s: %s\n", info.name, err->message);
                ek_err_free(err);
                ek_config_free(cfg);
                return 2;
            }
        }
        code = ek_worker_child_main(cfg);
        ek_config_free(cfg);
        ek_log_shutdown();
        return code;
    }
    ek_signals_install();

    struct worker w = {.cfg = cfg};
    const char *configured = ek_config_get_string(cfg, "worker", "host");
    if (*configured)
        snprintf(w.host, sizeof(w.host), "%s", configured);
    else if (gethostname(w.host, sizeof(w.host) - 1) != 0)
        snprintf(w.host, sizeof(w.host), "localhost");
    w.own_queue = ek_xasprintf("%s.%s", EK_QUEUE_WORKER, w.host);
    w.capacity = (int)ek_config_get_int(cfg, "worker", "capacity");
    ek_uuid_generate(w.instance_id);
    {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        w.instance_started_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }
    atomic_init(&w.stop_heartbeat, false);
    {
        /* the key exists before the first heartbeat and task (made now if new) */
        _cleanup_free_ char *kf = ek_worker_key_path(cfg);
        _cleanup_free_ char *dir = ek_xstrdup(kf);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            (void)mkdir(dir, 0700); /* [DEFAULT] state_dir on a fresh machine */
        }
        ek_box_ring_t *ring = NULL;
        ek_err_t *err = ek_box_ring_load(kf, true, &ring);
        if (err) {
            ek_log_err(err, "cannot start: [worker] key_file");
            ek_err_free(err);
            free(w.own_queue);
            ek_config_free(cfg);
            return 1;
        }
        ek_log_kv(EK_LOG_INFO, "worker key", "key_id", ek_box_ring_kid(ring), "file", kf, NULL);
        /* a worker never needs the conductors' key: it should not hold it */
        if (*ek_config_get_string(cfg, "DEFAULT", "encryption_key") ||
            *ek_config_get_string(cfg, "DEFAULT", "encryption_key_file"))
            ek_log_kv(EK_LOG_WARNING,
                      "this worker's configuration holds [DEFAULT] encryption_key, which "
                      "workers never use: remove it from the workers' ekman.conf, so that a "
                      "worker broken into cannot give it away",
                      NULL);
        ek_box_ring_free(ring);
    }

    /* task processes are this very binary, exec'ed afresh */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    const char *path = ek_config_path(cfg);
    char *child_argv[] = {self, "--config", (char *)(path ? path : "/dev/null"), "--task-child",
                          NULL};
    pthread_t hb;
    ek_err_t *err = ek_supervisor_new(cfg, child_argv, &w.sup);
    if (err) {
        ek_log_err(err, "cannot start");
        ek_err_free(err);
        free(w.own_queue);
        ek_config_free(cfg);
        return 1;
    }
    pthread_create(&hb, NULL, heartbeat_main, &w);
    int exit_code = consume(&w) ? 0 : 1;

    int grace = (int)ek_config_get_int(cfg, "worker", "task_stop_timeout");
    ek_log_kv(EK_LOG_INFO, "stopping: no new tasks, waiting for the running ones", "running",
              ek_supervisor_running(w.sup) ? "yes" : "no", NULL);
    ek_supervisor_drain(w.sup, grace); /* still heartbeating: the tasks are ours */
    atomic_store(&w.stop_heartbeat, true);
    pthread_join(hb, NULL);
    ek_supervisor_free(w.sup);
    ek_amqp_close(w.rpc);
    free(w.own_queue);
    ek_config_free(cfg);
    ek_info("worker stopped");
    ek_log_shutdown();
    return exit_code;
}
