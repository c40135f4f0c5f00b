/* messages.h - the message types that cross process boundaries over AMQP, and
 * strict readers for the bodies the conductor consumes. The body of each type
 * is documented in proto/README.md.
 *
 * Queues: ekman.worker (any capable worker), ekman.worker.<host> (one worker),
 * ekman.scheduler, ekman.conductor (everything workers report back). */
#ifndef EK_PROTO_MESSAGES_H
#define EK_PROTO_MESSAGES_H

#include <json-c/json.h>
#include <stdint.h>
#include "common/error.h"
#include "proto/envelope.h"

#define EK_QUEUE_WORKER    "ekman.worker"
#define EK_QUEUE_SCHEDULER "ekman.scheduler"
#define EK_QUEUE_CONDUCTOR "ekman.conductor"

/* conductor -> worker */
#define EK_MSG_TASK_DISPATCH  "task.dispatch"
#define EK_MSG_TASK_CANCEL    "task.cancel"
#define EK_MSG_ENDPOINT_QUERY "endpoint.query" /* request/reply */
/* worker -> conductor */
#define EK_MSG_TASK_CLAIM     "task.claim" /* request/reply: may this attempt run? */
#define EK_MSG_TASK_COMPLETED "task.completed"
#define EK_MSG_TASK_ERROR     "task.error"
#define EK_MSG_TASK_CANCELED  "task.canceled"
#define EK_MSG_TASK_EVENT     "task.event"
#define EK_MSG_TASK_PROGRESS  "task.progress"
#define EK_MSG_TASK_STATE     "task.state" /* what a re-run needs to resume */
/* worker -> scheduler */
#define EK_MSG_SERVICE_HEARTBEAT "service.heartbeat" /* registers on the first one */
#define EK_MSG_SERVICE_STOPPING  "service.stopping"
/* replies */
#define EK_MSG_REPLY "reply"

/* The same types as an enum, with one name table (the wire names above). */
typedef enum ek_msg_type {
    EK_MSG_T_UNKNOWN,
    EK_MSG_T_TASK_DISPATCH,
    EK_MSG_T_TASK_CANCEL,
    EK_MSG_T_ENDPOINT_QUERY,
    EK_MSG_T_TASK_CLAIM,
    EK_MSG_T_TASK_COMPLETED,
    EK_MSG_T_TASK_ERROR,
    EK_MSG_T_TASK_CANCELED,
    EK_MSG_T_TASK_EVENT,
    EK_MSG_T_TASK_PROGRESS,
    EK_MSG_T_TASK_STATE,
    EK_MSG_T_SERVICE_HEARTBEAT,
    EK_MSG_T_SERVICE_STOPPING,
    EK_MSG_T_REPLY,
    EK_MSG_T_COUNT
} ek_msg_type_t;

const char *ek_msg_type_name(ek_msg_type_t t);
/* EK_MSG_T_UNKNOWN for a name that is not a message type. */
ek_msg_type_t ek_msg_type_parse(const char *name);

/* The types the conductor's queue accepts, NULL-terminated. */
extern const char *const ek_conductor_message_types[];

/* A task report from a worker, read from the envelope's body (strings
 * borrowed from it). Which fields are set depends on the type. */
typedef struct ek_task_report {
    const char *type; /* the wire name of kind */
    ek_msg_type_t kind;
    const char *task_id;
    const char *attempt_id;
    const char *host;     /* claim */
    int64_t process_id;   /* claim */
    json_object *result;  /* completed: the task's declared outputs */
    const char *message;  /* error, event, progress */
    const char *details;  /* error: trace or detail for operators */
    const char *level;    /* event: INFO, WARNING, ERROR, DEBUG */
    int64_t index;        /* progress: step index */
    int64_t current_step; /* progress */
    int64_t total_steps;  /* progress */
    json_object *state;   /* state */
} ek_task_report_t;

EK_ERR_CHECK ek_task_report_read(const ek_envelope_t *env, ek_task_report_t *out);

#endif
