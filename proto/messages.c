/* messages.c - strict reading of the task reports workers send. */
#include "proto/messages.h"

#include <string.h>
#include "common/json.h"
#include "common/uuid.h"

static const char *const names[EK_MSG_T_COUNT] = {
    [EK_MSG_T_UNKNOWN] = "?",
    [EK_MSG_T_TASK_DISPATCH] = EK_MSG_TASK_DISPATCH,
    [EK_MSG_T_TASK_CANCEL] = EK_MSG_TASK_CANCEL,
    [EK_MSG_T_ENDPOINT_QUERY] = EK_MSG_ENDPOINT_QUERY,
    [EK_MSG_T_TASK_CLAIM] = EK_MSG_TASK_CLAIM,
    [EK_MSG_T_TASK_COMPLETED] = EK_MSG_TASK_COMPLETED,
    [EK_MSG_T_TASK_ERROR] = EK_MSG_TASK_ERROR,
    [EK_MSG_T_TASK_CANCELED] = EK_MSG_TASK_CANCELED,
    [EK_MSG_T_TASK_EVENT] = EK_MSG_TASK_EVENT,
    [EK_MSG_T_TASK_PROGRESS] = EK_MSG_TASK_PROGRESS,
    [EK_MSG_T_TASK_STATE] = EK_MSG_TASK_STATE,
    [EK_MSG_T_SERVICE_HEARTBEAT] = EK_MSG_SERVICE_HEARTBEAT,
    [EK_MSG_T_SERVICE_STOPPING] = EK_MSG_SERVICE_STOPPING,
    [EK_MSG_T_REPLY] = EK_MSG_REPLY,
};

const char *ek_msg_type_name(ek_msg_type_t t)
{
    return (unsigned)t < EK_MSG_T_COUNT ? names[t] : "?";
}

ek_msg_type_t ek_msg_type_parse(const char *name)
{
    for (int i = 1; name && i < EK_MSG_T_COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return (ek_msg_type_t)i;
    return EK_MSG_T_UNKNOWN;
}

const char *const ek_conductor_message_types[] = {
    EK_MSG_TASK_CLAIM, EK_MSG_TASK_COMPLETED, EK_MSG_TASK_ERROR, EK_MSG_TASK_CANCELED,
    EK_MSG_TASK_EVENT, EK_MSG_TASK_PROGRESS,  EK_MSG_TASK_STATE, NULL,
};

ek_err_t *ek_task_report_read(const ek_envelope_t *env, ek_task_report_t *out)
{
    json_object *b = env->body;
    ek_err_t *err;
    memset(out, 0, sizeof(*out));
    out->type = env->type;
    out->kind = ek_msg_type_parse(env->type);
    if ((err = ek_json_req_string(b, "body", "task_id", &out->task_id)) ||
        (err = ek_json_req_string(b, "body", "attempt_id", &out->attempt_id)))
        goto bad;
    if (!ek_uuid_is_valid(out->task_id) || !ek_uuid_is_valid(out->attempt_id)) {
        err = ek_err_new(EK_E_PROTOCOL, "body.task_id and body.attempt_id must be UUIDs");
        goto bad;
    }
    switch (out->kind) {
    case EK_MSG_T_TASK_CLAIM:
        if ((err = ek_json_req_string(b, "body", "host", &out->host)) ||
            (err = ek_json_opt_int(b, "body", "process_id", 0, &out->process_id)))
            goto bad;
        break;
    case EK_MSG_T_TASK_COMPLETED:
        if ((err = ek_json_req_object(b, "body", "result", &out->result)))
            goto bad;
        break;
    case EK_MSG_T_TASK_ERROR:
        if ((err = ek_json_req_string(b, "body", "message", &out->message)) ||
            (err = ek_json_opt_string(b, "body", "details", NULL, &out->details)))
            goto bad;
        break;
    case EK_MSG_T_TASK_EVENT:
        if ((err = ek_json_req_string(b, "body", "message", &out->message)) ||
            (err = ek_json_opt_string(b, "body", "level", "INFO", &out->level)))
            goto bad;
        if (strcmp(out->level, "INFO") && strcmp(out->level, "WARNING") &&
            strcmp(out->level, "ERROR") && strcmp(out->level, "DEBUG")) {
            err = ek_err_new(EK_E_PROTOCOL, "body.level must be INFO, WARNING, ERROR or DEBUG");
            goto bad;
        }
        break;
    case EK_MSG_T_TASK_PROGRESS:
        if ((err = ek_json_opt_int(b, "body", "index", 0, &out->index)) ||
            (err = ek_json_opt_int(b, "body", "current_step", 0, &out->current_step)) ||
            (err = ek_json_opt_int(b, "body", "total_steps", 0, &out->total_steps)) ||
            (err = ek_json_opt_string(b, "body", "message", "", &out->message)))
            goto bad;
        break;
    case EK_MSG_T_TASK_STATE:
        if ((err = ek_json_req_object(b, "body", "state", &out->state)))
            goto bad;
        break;
    case EK_MSG_T_TASK_CANCELED:
        break;
    default:
        return ek_err_new(EK_E_PROTOCOL, "'%s' is not a task report", env->type);
    }
    return NULL;
bad:
    err->code = EK_E_PROTOCOL;
    return ek_err_prefix(err, "%s message", env->type);
}
