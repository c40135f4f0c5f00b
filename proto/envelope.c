/* envelope.c - encode and strictly decode the AMQP message envelope. */
#include "proto/envelope.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/uuid.h"

ek_envelope_t *ek_envelope_new(const char *type, json_object *body)
{
    ek_envelope_t *env = ek_xcalloc(1, sizeof(*env));
    env->type = ek_xstrdup(type);
    env->major = EK_PROTO_MAJOR;
    env->minor = EK_PROTO_MINOR;
    env->id = ek_uuid_new();
    env->body = body ? body : json_object_new_object();
    return env;
}

void ek_envelope_free(ek_envelope_t *env)
{
    if (!env)
        return;
    free(env->type);
    free(env->id);
    free(env->correlation_id);
    free(env->project_id);
    free(env->user_id);
    json_object_put(env->body);
    free(env);
}

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

char *ek_envelope_encode(const ek_envelope_t *env)
{
    json_object *o = json_object_new_object();
    char version[32], when[32];
    snprintf(version, sizeof(version), "%d.%d", env->major, env->minor);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "type", json_object_new_string(env->type));
    json_object_object_add(o, "version", json_object_new_string(version));
    json_object_object_add(o, "id", json_object_new_string(env->id));
    json_object_object_add(o, "correlation_id", str_or_null(env->correlation_id));
    json_object_object_add(o, "sent_at", json_object_new_string(when));
    json_object *ctx = json_object_new_object();
    json_object_object_add(ctx, "project_id", str_or_null(env->project_id));
    json_object_object_add(ctx, "user_id", str_or_null(env->user_id));
    json_object_object_add(o, "context", ctx);
    json_object_object_add(o, "body", json_object_get(env->body));
    char *s = ek_json_dump(o, false);
    json_object_put(o);
    return s;
}

static char *dup_opt(const char *s)
{
    return s && *s ? ek_xstrdup(s) : NULL;
}

ek_err_t *ek_envelope_decode(const char *data, size_t len, const char *const *known_types,
                             ek_envelope_t **out)
{
    _cleanup_json_ json_object *o = NULL;
    const char *type, *version, *id, *corr = NULL, *project = NULL, *user = NULL;
    json_object *ctx = NULL, *body = NULL;
    ek_err_t *err;

    *out = NULL;
    if ((err = ek_json_parse(data, len, &o)))
        return ek_err_prefix(err, "message is not JSON");
    if (!json_object_is_type(o, json_type_object))
        return ek_err_new(EK_E_PROTOCOL, "message must be a JSON object, not %s",
                          ek_json_type_name(o));
    if ((err = ek_json_req_string(o, "message", "type", &type)) ||
        (err = ek_json_req_string(o, "message", "version", &version)) ||
        (err = ek_json_req_string(o, "message", "id", &id)) ||
        (err = ek_json_opt_string(o, "message", "correlation_id", NULL, &corr)) ||
        (err = ek_json_opt_object(o, "message", "context", &ctx)) ||
        (err = ek_json_req_object(o, "message", "body", &body)) ||
        (err = ek_json_opt_string(ctx, "message.context", "project_id", NULL, &project)) ||
        (err = ek_json_opt_string(ctx, "message.context", "user_id", NULL, &user))) {
        err->code = EK_E_PROTOCOL;
        return err;
    }
    int major, minor, used = 0;
    if (sscanf(version, "%d.%d%n", &major, &minor, &used) != 2 || version[used] || major < 1 ||
        minor < 0)
        return ek_err_new(EK_E_PROTOCOL, "message.version '%s' is not MAJOR.MINOR", version);
    if (major != EK_PROTO_MAJOR)
        return ek_err_new(EK_E_PROTOCOL,
                          "message '%s' has version %s; this process speaks %d.x (upgrade it)",
                          type, version, EK_PROTO_MAJOR);
    if (known_types) {
        bool known = false;
        for (const char *const *t = known_types; *t && !known; t++)
            known = strcmp(*t, type) == 0;
        if (!known)
            return ek_err_new(EK_E_PROTOCOL, "unknown message type '%s'", type);
    }
    ek_envelope_t *env = ek_xcalloc(1, sizeof(*env));
    env->type = ek_xstrdup(type);
    env->major = major;
    env->minor = minor;
    env->id = ek_xstrdup(id);
    env->correlation_id = dup_opt(corr);
    env->project_id = dup_opt(project);
    env->user_id = dup_opt(user);
    env->body = json_object_get(body);
    *out = env;
    return NULL;
}
