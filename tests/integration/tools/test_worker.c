/* test_worker.c - ek-test-worker: a stand-in worker for the conductor's
 * integration tests. It speaks the real protocol (claims over request/reply,
 * reports with publisher confirms, cancels on its own queue, endpoint queries)
 * but runs no provider: each task "succeeds" with placeholder values for
 * exactly the keys its type declares, unless told to fail or hang.
 *
 *   ek-test-worker --config FILE --log FILE [--host NAME] [--delay-ms N]
 *                  [--fail TASK_TYPE] [--hang TASK_TYPE] [--prefetch N]
 *
 * The log gets one line per task it ran: "<unix ms> <task_id> <attempt_id> <type>". */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include "common/amqp.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "proto/envelope.h"
#include "proto/messages.h"
#include "proto/tasks.h"

struct opts {
    const char *log, *host, *fail, *hang;
    int delay_ms, prefetch;
};

struct hung {
    char task_id[64], attempt_id[64];
};

static const ek_config_t *config;
static struct hung hung[256];
static int n_hung;

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Publishes a report, reconnecting until the broker takes it. */
static void report(ek_amqp_t **pub, const char *type, json_object *body)
{
    ek_envelope_t *env = ek_envelope_new(type, body);
    char *wire = ek_envelope_encode(env);
    for (;;) {
        ek_err_t *err = *pub ? NULL : ek_amqp_connect_config(config, pub);
        if (!err)
            err = ek_amqp_publish(*pub, EK_QUEUE_CONDUCTOR, wire, NULL, NULL);
        if (!err)
            break;
        ek_warn("report %s not sent, retrying: %s", type, err->message);
        ek_err_free(err);
        ek_amqp_close(*pub);
        *pub = NULL;
        if (ek_stop_wait(500))
            break;
    }
    free(wire);
    ek_envelope_free(env);
}

static json_object *task_body(const char *task_id, const char *attempt_id)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "task_id", json_object_new_string(task_id));
    json_object_object_add(b, "attempt_id", json_object_new_string(attempt_id));
    return b;
}

/* Asks the conductor whether this attempt may run. */
static bool claim(const struct opts *o, const char *task_id, const char *attempt_id)
{
    json_object *b = task_body(task_id, attempt_id);
    json_object_object_add(b, "host", json_object_new_string(o->host));
    json_object_object_add(b, "process_id", json_object_new_int((int)getpid()));
    ek_envelope_t *env = ek_envelope_new(EK_MSG_TASK_CLAIM, b);
    char *wire = ek_envelope_encode(env);
    bool granted = false;
    static ek_amqp_t *rpc; /* kept open: one connection for every claim */
    for (int attempt = 0; attempt < 60 && !ek_stop_requested(); attempt++) {
        char *reply = NULL;
        ek_err_t *err = rpc ? NULL : ek_amqp_connect_config(config, &rpc);
        if (!err)
            err = ek_amqp_call(rpc, EK_QUEUE_CONDUCTOR, wire, env->id, 10000, &reply);
        if (err) {
            ek_amqp_close(rpc);
            rpc = NULL;
        }
        if (!err) {
            ek_envelope_t *ans = NULL;
            err = ek_envelope_decode(reply, strlen(reply), NULL, &ans);
            if (!err)
                err = ek_json_opt_bool(ans->body, "reply", "granted", false, &granted);
            ek_envelope_free(ans);
            free(reply);
            if (!err)
                break;
        }
        ek_warn("claim of %s failed, asking again: %s", task_id, err->message);
        ek_err_free(err);
        ek_stop_wait(500);
    }
    free(wire);
    ek_envelope_free(env);
    return granted;
}

/* Placeholder outputs: every declared key, with a value that says who made it. */
static json_object *fake_result(const ek_task_type_t *t, const char *instance)
{
    json_object *r = json_object_new_object();
    for (const char *const *k = t->provides; *k; k++) {
        if (strcmp(*k, "volumes_info") == 0) {
            json_object *vols = json_object_new_array();
            json_object *v = json_object_new_object();
            json_object_object_add(v, "disk_id", json_object_new_string("disk0"));
            json_object_object_add(v, "written_by", json_object_new_string(t->name));
            json_object_array_add(vols, v);
            json_object_object_add(r, *k, vols);
        } else {
            json_object *v = json_object_new_object();
            json_object_object_add(v, "instance", json_object_new_string(instance));
            json_object_object_add(v, "from", json_object_new_string(t->name));
            json_object_object_add(r, *k, v);
        }
    }
    return r;
}

static void run_task(const struct opts *o, ek_amqp_t **pub, ek_envelope_t *env, FILE *log)
{
    const char *task_id, *attempt_id, *type, *instance;
    json_object *b = env->body;
    ek_err_t *err;
    if ((err = ek_json_req_string(b, "body", "task_id", &task_id)) ||
        (err = ek_json_req_string(b, "body", "attempt_id", &attempt_id)) ||
        (err = ek_json_req_string(b, "body", "task_type", &type)) ||
        (err = ek_json_req_string(b, "body", "instance", &instance))) {
        ek_log_err(err, "bad dispatch");
        ek_err_free(err);
        return;
    }
    if (!claim(o, task_id, attempt_id)) {
        ek_info("claim of %s (%s) refused", task_id, type);
        return;
    }
    fprintf(log, "%lld %s %s %s\n", now_ms(), task_id, attempt_id, type);
    fflush(log);
    json_object *p = task_body(task_id, attempt_id);
    json_object_object_add(p, "index", json_object_new_int(0));
    json_object_object_add(p, "current_step", json_object_new_int(50));
    json_object_object_add(p, "total_steps", json_object_new_int(100));
    json_object_object_add(p, "message", json_object_new_string("halfway"));
    report(pub, EK_MSG_TASK_PROGRESS, p);
    json_object *ev = task_body(task_id, attempt_id);
    json_object_object_add(ev, "message", json_object_new_string("test worker at work"));
    report(pub, EK_MSG_TASK_EVENT, ev);
    if (o->hang && strcmp(o->hang, type) == 0 && n_hung < 256) {
        snprintf(hung[n_hung].task_id, sizeof(hung[0].task_id), "%s", task_id);
        snprintf(hung[n_hung].attempt_id, sizeof(hung[0].attempt_id), "%s", attempt_id);
        n_hung++;
        return; /* until a cancel comes */
    }
    if (o->delay_ms)
        ek_stop_wait(o->delay_ms);
    if (o->fail && strcmp(o->fail, type) == 0) {
        json_object *e = task_body(task_id, attempt_id);
        json_object_object_add(e, "message",
                               json_object_new_string("injected failure of the test worker"));
        report(pub, EK_MSG_TASK_ERROR, e);
        return;
    }
    json_object *c = task_body(task_id, attempt_id);
    json_object_object_add(c, "result", fake_result(ek_task_type_find(type), instance));
    report(pub, EK_MSG_TASK_COMPLETED, c);
}

static void cancel_task(ek_amqp_t **pub, ek_envelope_t *env)
{
    const char *task_id = json_object_get_string(json_object_object_get(env->body, "task_id"));
    for (int i = 0; task_id && i < n_hung; i++) {
        if (strcmp(hung[i].task_id, task_id) == 0) {
            report(pub, EK_MSG_TASK_CANCELED, task_body(hung[i].task_id, hung[i].attempt_id));
            hung[i] = hung[--n_hung];
            return;
        }
    }
}

static void answer_query(ek_amqp_t **pub, ek_envelope_t *env, const ek_amqp_msg_t *msg)
{
    const char *query = json_object_get_string(json_object_object_get(env->body, "query"));
    json_object *body = json_object_new_object();
    json_object_object_add(body, "ok", json_object_new_boolean(1));
    json_object *list = json_object_new_array();
    json_object *one = json_object_new_object();
    json_object_object_add(one, "name", json_object_new_string("vm1"));
    json_object_object_add(one, "query", json_object_new_string(query ? query : ""));
    json_object_array_add(list, one);
    json_object_object_add(body, "result", list);
    ek_envelope_t *reply = ek_envelope_new(EK_MSG_REPLY, body);
    reply->correlation_id = ek_xstrdup(env->id);
    char *wire = ek_envelope_encode(reply);
    ek_err_t *err = *pub ? NULL : ek_amqp_connect_config(config, pub);
    if (!err)
        err = ek_amqp_publish(*pub, msg->reply_to, wire, NULL, msg->correlation_id);
    if (err) {
        ek_log_err(err, "cannot answer a query");
        ek_err_free(err);
    }
    free(wire);
    ek_envelope_free(reply);
}

int main(int argc, char **argv)
{
    static const ek_program_info_t info = {.name = "ek-test-worker",
                                           .summary = "Stand-in worker for integration tests."};
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    config = cfg;
    struct opts o = {.host = "test-worker", .prefetch = 8};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--log"))
            o.log = argv[i + 1];
        else if (!strcmp(argv[i], "--host"))
            o.host = argv[i + 1];
        else if (!strcmp(argv[i], "--fail"))
            o.fail = argv[i + 1];
        else if (!strcmp(argv[i], "--hang"))
            o.hang = argv[i + 1];
        else if (!strcmp(argv[i], "--delay-ms"))
            o.delay_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefetch"))
            o.prefetch = atoi(argv[i + 1]);
    }
    FILE *log = fopen(o.log ? o.log : "/dev/null", "a");
    if (!log) {
        perror("log");
        return 1;
    }
    ek_signals_install();
    char *own = ek_xasprintf("%s.%s", EK_QUEUE_WORKER, o.host);
    ek_amqp_t *pub = NULL;
    while (!ek_stop_requested()) {
        ek_amqp_t *mq = NULL;
        ek_err_t *err = ek_amqp_connect_config(cfg, &mq);
        if (!err)
            err = ek_amqp_declare_queue(mq, EK_QUEUE_WORKER, false);
        if (!err)
            err = ek_amqp_declare_queue(mq, own, false);
        if (!err)
            err = ek_amqp_consume(mq, own, o.prefetch);
        if (!err)
            err = ek_amqp_consume(mq, EK_QUEUE_WORKER, o.prefetch);
        if (!err)
            ek_info("test worker %s ready", o.host);
        while (!err && !ek_stop_requested()) {
            ek_amqp_msg_t msg;
            bool got;
            if ((err = ek_amqp_receive(mq, 500, &msg, &got)) || !got)
                continue;
            ek_envelope_t *env = NULL;
            ek_err_t *bad = ek_envelope_decode(msg.body, msg.len, NULL, &env);
            if (bad) {
                ek_log_err(bad, "dead-lettering");
                ek_err_free(bad);
                err = ek_amqp_reject(mq, msg.delivery_tag, false);
            } else {
                if (!strcmp(env->type, EK_MSG_TASK_DISPATCH))
                    run_task(&o, &pub, env, log);
                else if (!strcmp(env->type, EK_MSG_TASK_CANCEL))
                    cancel_task(&pub, env);
                else if (!strcmp(env->type, EK_MSG_ENDPOINT_QUERY) && msg.reply_to)
                    answer_query(&pub, env, &msg);
                err = ek_amqp_ack(mq, msg.delivery_tag);
            }
            ek_envelope_free(env);
            ek_amqp_msg_clear(&msg);
        }
        if (err) {
            ek_warn("broker connection lost, reconnecting: %s", err->message);
            ek_err_free(err);
            ek_stop_wait(500);
        }
        ek_amqp_close(mq);
    }
    ek_amqp_close(pub);
    free(own);
    fclose(log);
    ek_config_free(cfg);
    ek_log_shutdown();
    return 0;
}
