/* r_transfers.c - transfers (what to replicate where, with which options) and
 * their cron schedules. */
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/cron.h"
#include "common/db.h"
#include "common/json.h"
#include "common/jsonschema.h"
#include "conductor/input.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/redact.h"
#include "engine/store.h"
#include "conductor/routes.h"
#include "proto/providers.h"

#define TRANSFER_JSON                                                                              \
    "jsonb_build_object('id', t.id, 'scenario', t.scenario, 'origin_endpoint_id', "                \
    "t.origin_endpoint_id, 'destination_endpoint_id', t.destination_endpoint_id, 'instances', "    \
    "t.instances, 'source_environment', t.source_environment, 'destination_environment', "         \
    "t.destination_environment, 'network_map', t.network_map, 'storage_mappings', "                \
    "t.storage_mappings, 'user_scripts', t.user_scripts, 'origin_minion_pool_id', "                \
    "t.origin_minion_pool_id, 'destination_minion_pool_id', t.destination_minion_pool_id, "        \
    "'instance_osmorphing_minion_pool_mappings', t.instance_osmorphing_minion_pool_mappings, "     \
    "'clone_disks', t.clone_disks, 'skip_os_morphing', t.skip_os_morphing, 'notes', t.notes, "     \
    "'last_execution_status', t.last_execution_status, 'project_id', t.project_id, 'user_id', "    \
    "t.user_id, 'created_at', t.created_at, 'updated_at', t.updated_at, 'reservation_id', NULL)"

static ek_err_t *load_transfer(ek_req_t *req, const char *id, json_object **out)
{
    *out = NULL;
    if (!ek_uuid_is_valid(id))
        return ek_err_not_found("transfer", id);
    ek_err_t *err = ek_db_query_json(req->db, out,
                                     "SELECT " TRANSFER_JSON
                                     " || jsonb_build_object('info', t.info, 'executions', "
                                     "coalesce((SELECT jsonb_agg(jsonb_build_object('id', e.id, "
                                     "'number', e.number, 'status', e.status, 'type', e.type, "
                                     "'created_at', e.created_at) ORDER BY e.number) FROM "
                                     "executions e WHERE e.action_id = t.id AND e.deleted_at IS "
                                     "NULL), '[]')) FROM transfers t WHERE t.id = $1 AND "
                                     "t.deleted_at IS NULL AND ($2::uuid IS NULL OR "
                                     "t.project_id = $2)",
                                     2, (const char *[]){id, ek_req_scope(req)});
    if (!err && !*out)
        err = ek_err_not_found("transfer", id);
    return err;
}

/* The task info holds what providers left for later tasks (worker VM
 * credentials among them): shown only when asked, and redacted. */
static void shape_info(ek_req_t *req, json_object *doc)
{
    const char *q = ek_req_query(req, "include_task_info");
    json_object *info = json_object_object_get(doc, "info");
    if (q && (strcmp(q, "true") == 0 || strcmp(q, "1") == 0))
        json_object_object_add(doc, "info", ek_redact_json(info));
    else
        json_object_object_del(doc, "info");
}

void r_transfers_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    const char *status = ek_req_query(req, "status");
    ek_err_t *err = ek_db_query_json(req->db, &list,
                                     "SELECT coalesce(jsonb_agg(" TRANSFER_JSON
                                     " ORDER BY t.created_at), '[]') FROM transfers t "
                                     "WHERE t.deleted_at IS NULL "
                                     "AND ($1::uuid IS NULL OR t.project_id = $1) "
                                     "AND ($2::text IS NULL OR t.last_execution_status = $2)",
                                     2, (const char *[]){ek_req_scope(req), status});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "transfers", list);
}

/* Checks an endpoint id of the caller's scope and returns its type. */
static ek_err_t *endpoint_type(ek_req_t *req, const char *field, const char *id, char *type,
                               size_t type_len)
{
    if (!ek_uuid_is_valid(id))
        return ek_err_new(EK_E_INVALID, "transfer.%s must be an endpoint id", field);
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT type FROM endpoints WHERE id = $1 AND deleted_at IS NULL "
                                "AND ($2::uuid IS NULL OR project_id = $2)",
                                2, (const char *[]){id, ek_req_scope(req)});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_INVALID, "transfer.%s: endpoint %s not found", field, id);
    }
    snprintf(type, type_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return NULL;
}

static ek_err_t *check_string_map(json_object *obj, const char *path)
{
    json_object_object_foreach(obj, k, v)
    {
        if (!json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_object))
            return ek_err_new(EK_E_INVALID, "%s.%s must be a string", path, k);
    }
    return NULL;
}

static ek_err_t *check_storage_mappings(json_object *sm)
{
    static const char *schema_text =
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"default\":{\"type\":[\"string\",\"null\"]},"
        "\"backend_mappings\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"required\":[\"source\",\"destination\"],\"properties\":{\"source\":{\"type\":"
        "\"string\"},\"destination\":{\"type\":\"string\"}}}},"
        "\"disk_mappings\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"required\":[\"disk_id\",\"destination\"],\"properties\":{\"disk_id\":{\"type\":"
        "\"string\"},\"destination\":{\"type\":\"string\"}}}}}}";
    json_object *schema = NULL;
    ek_err_t *err = ek_json_parse(schema_text, strlen(schema_text), &schema);
    if (!err)
        err = ek_jsonschema_validate(schema, sm, "transfer.storage_mappings");
    json_object_put(schema);
    return err;
}

static ek_err_t *check_pool(ek_req_t *req, const char *field, const char *id)
{
    if (!id)
        return NULL;
    PGresult *res;
    if (!ek_uuid_is_valid(id))
        return ek_err_new(EK_E_INVALID, "transfer.%s must be a minion pool id", field);
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT 1 FROM minion_pools WHERE id = $1 AND deleted_at IS NULL "
                                "AND ($2::uuid IS NULL OR project_id = $2)",
                                2, (const char *[]){id, ek_req_scope(req)});
    if (err)
        return err;
    int n = PQntuples(res);
    PQclear(res);
    return n ? NULL : ek_err_new(EK_E_INVALID, "transfer.%s: minion pool %s not found", field, id);
}

/* The fields a create and an update share, validated. */
struct transfer_fields {
    json_object *src_env, *dst_env, *network_map, *storage_mappings, *user_scripts, *pool_map;
    const char *notes;
    bool clone_disks, skip_os_morphing;
};

static ek_err_t *read_fields(json_object *t, const char *origin_type, const char *dest_type,
                             struct transfer_fields *f, bool for_update)
{
    ek_err_t *err;
    if ((err = ek_json_opt_object(t, "transfer", "source_environment", &f->src_env)) ||
        (err = ek_json_opt_object(t, "transfer", "destination_environment", &f->dst_env)) ||
        (err = ek_json_opt_object(t, "transfer", "network_map", &f->network_map)) ||
        (err = ek_json_opt_object(t, "transfer", "storage_mappings", &f->storage_mappings)) ||
        (err = ek_json_opt_object(t, "transfer", "user_scripts", &f->user_scripts)) ||
        (err = ek_json_opt_object(t, "transfer", "instance_osmorphing_minion_pool_mappings",
                                  &f->pool_map)) ||
        (err = ek_json_opt_string(t, "transfer", "notes", for_update ? NULL : "", &f->notes)) ||
        (err = ek_json_opt_bool(t, "transfer", "clone_disks", true, &f->clone_disks)) ||
        (err = ek_json_opt_bool(t, "transfer", "skip_os_morphing", false, &f->skip_os_morphing)))
        return err;
    if (f->src_env &&
        (err = ek_jsonschema_validate(ek_provider_schema(origin_type, EK_SCHEMA_SOURCE_ENVIRONMENT),
                                      f->src_env, "transfer.source_environment")))
        return err;
    if (f->dst_env && (err = ek_jsonschema_validate(
                           ek_provider_schema(dest_type, EK_SCHEMA_DESTINATION_ENVIRONMENT),
                           f->dst_env, "transfer.destination_environment")))
        return err;
    if (f->network_map && (err = check_string_map(f->network_map, "transfer.network_map")))
        return err;
    if (f->storage_mappings && (err = check_storage_mappings(f->storage_mappings)))
        return err;
    return NULL;
}

/* The instance names: 1 to max of them, each named once. The duplicate check
 * is a hash set (json-c's object table), so linear in the count. */
static ek_err_t *check_instances(json_object *instances, size_t max)
{
    size_t n = json_object_array_length(instances);
    if (n == 0)
        return ek_err_new(EK_E_INVALID, "transfer.instances must name an instance");
    if (n > max)
        return ek_err_new(EK_E_INVALID,
                          "transfer.instances names %zu instances, more than the limit of %zu "
                          "([api] max_transfer_instances): split it into several transfers",
                          n, max);
    json_object *seen = json_object_new_object();
    ek_err_t *err = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        json_object *v = json_object_array_get_idx(instances, i);
        const char *name = json_object_get_string(v);
        if (!json_object_is_type(v, json_type_string) || !*name)
            err = ek_err_new(EK_E_INVALID, "transfer.instances[%zu] must be an instance name", i);
        else if (strlen(name) > EK_INPUT_MAX_NAME)
            err = ek_err_new(EK_E_INVALID, "\"transfer.instances[%zu]\": is longer than %d bytes",
                             i, EK_INPUT_MAX_NAME);
        else if (json_object_object_get_ex(seen, name, NULL))
            err = ek_err_new(EK_E_INVALID, "transfer.instances names '%s' twice", name);
        else
            json_object_object_add(seen, name, NULL);
    }
    json_object_put(seen);
    return err;
}

static const char *json_or(json_object *o, const char *dflt)
{
    return o ? json_object_to_json_string(o) : dflt;
}

void r_transfers_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *t, *instances;
    const char *scenario, *origin, *dest, *opool = NULL, *dpool = NULL;
    struct transfer_fields f = {0};
    char otype[64], dtype[64];
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "transfer", &t)) ||
        (err = ek_json_opt_string(t, "transfer", "scenario", "replica", &scenario)) ||
        (err = ek_json_req_string(t, "transfer", "origin_endpoint_id", &origin)) ||
        (err = ek_json_req_string(t, "transfer", "destination_endpoint_id", &dest)) ||
        (err = ek_json_req_array(t, "transfer", "instances", &instances)) ||
        (err = ek_json_opt_string(t, "transfer", "origin_minion_pool_id", NULL, &opool)) ||
        (err = ek_json_opt_string(t, "transfer", "destination_minion_pool_id", NULL, &dpool)))
        EK_RESP_RETURN_ERR(resp, err);
    if (strcmp(scenario, "replica") && strcmp(scenario, "live_migration"))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "transfer.scenario must be replica or live_migration"));
    if ((err = check_instances(instances, (size_t)req->app->max_transfer_instances)))
        EK_RESP_RETURN_ERR(resp, err);
    if ((err = endpoint_type(req, "origin_endpoint_id", origin, otype, sizeof(otype))) ||
        (err = endpoint_type(req, "destination_endpoint_id", dest, dtype, sizeof(dtype))))
        EK_RESP_RETURN_ERR(resp, err);
    const ek_provider_info_t *op = ek_provider_find(otype), *dp = ek_provider_find(dtype);
    if (!op || !(op->capabilities & EK_CAP_TRANSFER_EXPORT))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "transfer.origin_endpoint_id: provider '%s' cannot be "
                                            "a source",
                                            otype));
    if (!dp || !(dp->capabilities & EK_CAP_TRANSFER_IMPORT))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "transfer.destination_endpoint_id: provider '%s' "
                                            "cannot be a destination",
                                            dtype));
    if ((err = read_fields(t, otype, dtype, &f, false)) ||
        (err = check_pool(req, "origin_minion_pool_id", opool)) ||
        (err = check_pool(req, "destination_minion_pool_id", dpool)))
        EK_RESP_RETURN_ERR(resp, err);

    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    err = ek_db_query(
        req->db, NULL,
        "INSERT INTO transfers (id, project_id, user_id, scenario, origin_endpoint_id, "
        "destination_endpoint_id, instances, source_environment, destination_environment, "
        "network_map, storage_mappings, user_scripts, origin_minion_pool_id, "
        "destination_minion_pool_id, instance_osmorphing_minion_pool_mappings, clone_disks, "
        "skip_os_morphing, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
        "$14, $15, $16, $17, $18)",
        18,
        (const char *[]){id, req->project_id, req->user_id, scenario, origin, dest,
                         json_object_to_json_string(instances), json_or(f.src_env, "{}"),
                         json_or(f.dst_env, "{}"), json_or(f.network_map, "{}"),
                         json_or(f.storage_mappings, "{}"), json_or(f.user_scripts, "{}"), opool,
                         dpool, json_or(f.pool_map, "{}"), f.clone_disks ? "true" : "false",
                         f.skip_os_morphing ? "true" : "false", f.notes});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_log_kv(EK_LOG_INFO, "transfer created", "transfer_id", id, "project_id", req->project_id,
              NULL);
    json_object *doc;
    if ((err = load_transfer(req, id, &doc)))
        EK_RESP_RETURN_ERR(resp, err);
    shape_info(req, doc);
    ek_resp_wrap(resp, 201, "transfer", doc);
}

void r_transfers_show(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = load_transfer(req, req->arg[0], &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    shape_info(req, doc);
    ek_resp_wrap(resp, 200, "transfer", doc);
}

/* An update, as Coriolis answers it: the execution that applies it. Ekman
 * writes the new values at once; when an environment or a mapping changed and
 * replicas exist (an instance has export_info), an update execution tells the
 * providers (the engine's transfer_update tasks). Otherwise there is nothing
 * for a worker to do and the update is recorded as a transfer_update
 * execution without tasks, COMPLETED when the values were written: the same
 * transaction, after checking that nothing runs on the transfer. */
struct update_args {
    const char *id;
    const char *const *params; /* the UPDATE's 14 parameters */
    bool env_changed;
    bool needs_tasks; /* out: the engine makes the execution */
    char *exec_id;    /* out: the execution recorded here */
};

static ek_err_t *record_update(PGconn *db, const char *transfer_id, char *exec_id)
{
    ek_uuid_generate(exec_id);
    ek_err_t *err = ek_db_query(
        db, NULL,
        "INSERT INTO executions (id, project_id, action_id, action_type, type, number, status, "
        "updated_at, finished_at) SELECT $1, t.project_id, t.id, 'transfer', 'transfer_update', "
        "coalesce((SELECT max(number) FROM executions WHERE action_id = t.id), 0) + 1, "
        "'COMPLETED', now(), now() FROM transfers t WHERE t.id = $2",
        2, (const char *[]){exec_id, transfer_id});
    if (!err)
        err = ek_db_query(db, NULL,
                          "UPDATE transfers SET last_execution_status = 'COMPLETED' WHERE id = $1",
                          1, (const char *[]){transfer_id});
    return err;
}

static ek_err_t *update_tx(PGconn *db, void *arg)
{
    struct update_args *a = arg;
    PGresult *res;
    a->needs_tasks = false;
    a->exec_id[0] = '\0';
    ek_err_t *err = ek_db_query(db, &res,
                                "SELECT 1 FROM transfers WHERE id = $1 AND deleted_at IS NULL "
                                "FOR UPDATE",
                                1, (const char *[]){a->id});
    if (err)
        return err;
    int found = PQntuples(res);
    PQclear(res);
    if (!found)
        return ek_err_not_found("transfer", a->id); /* deleted meanwhile */
    err = ek_db_query(
        db, &res,
        "SELECT e.id FROM executions e WHERE e.action_id = $1 AND e.finished_at IS NULL "
        "AND e.deleted_at IS NULL UNION ALL SELECT e.id FROM executions e JOIN deployments d "
        "ON d.id = e.action_id WHERE d.transfer_id = $1 AND e.finished_at IS NULL AND "
        "e.deleted_at IS NULL LIMIT 1",
        1, (const char *[]){a->id});
    if (err)
        return err;
    if (PQntuples(res)) {
        err = ek_err_new(EK_E_CONFLICT,
                         "transfer %s has execution %s running: wait for it to end or cancel it",
                         a->id, PQgetvalue(res, 0, 0));
        PQclear(res);
        return err;
    }
    PQclear(res);
    err = ek_db_query(
        db, NULL,
        "UPDATE transfers SET source_environment = coalesce($2::jsonb, source_environment), "
        "destination_environment = coalesce($3::jsonb, destination_environment), "
        "network_map = coalesce($4::jsonb, network_map), "
        "storage_mappings = coalesce($5::jsonb, storage_mappings), "
        "user_scripts = coalesce($6::jsonb, user_scripts), "
        "instance_osmorphing_minion_pool_mappings = coalesce($7::jsonb, "
        "instance_osmorphing_minion_pool_mappings), notes = coalesce($8, notes), "
        "clone_disks = coalesce($9::bool, clone_disks), "
        "skip_os_morphing = coalesce($10::bool, skip_os_morphing), "
        "origin_minion_pool_id = CASE WHEN $11::bool THEN $12::uuid ELSE origin_minion_pool_id "
        "END, destination_minion_pool_id = CASE WHEN $13::bool THEN $14::uuid ELSE "
        "destination_minion_pool_id END, updated_at = now() WHERE id = $1",
        14, a->params);
    if (!err && a->env_changed) {
        /* the engine's transfer_update tasks are for the instances with export_info */
        err = ek_db_query(db, &res,
                          "SELECT 1 FROM transfers t, jsonb_array_elements_text(t.instances) n "
                          "WHERE t.id = $1 AND (t.info -> n.value) ? 'export_info' LIMIT 1",
                          1, (const char *[]){a->id});
        if (!err) {
            a->needs_tasks = PQntuples(res) > 0;
            PQclear(res);
        }
    }
    if (!err && !a->needs_tasks)
        err = record_update(db, a->id, a->exec_id);
    return err;
}

/* key is in t and not null */
static bool present(json_object *t, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(t, key, &v) && !json_object_is_type(v, json_type_null);
}

/* A minion pool id to set: absent (*set false), null (unset) or a pool of the
 * caller's. */
static ek_err_t *read_pool_update(ek_req_t *req, json_object *t, const char *field, bool *set,
                                  const char **id)
{
    json_object *v;
    *set = json_object_object_get_ex(t, field, &v);
    *id = NULL;
    if (!*set || json_object_is_type(v, json_type_null))
        return NULL;
    ek_err_t *err = ek_json_opt_string(t, "transfer", field, NULL, id);
    return err ? err : check_pool(req, field, *id);
}

void r_transfers_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc, *t;
    ek_err_t *err = load_transfer(req, req->arg[0], &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    char otype[64], dtype[64];
    err = endpoint_type(req, "origin_endpoint_id",
                        json_object_get_string(json_object_object_get(doc, "origin_endpoint_id")),
                        otype, sizeof(otype));
    if (!err)
        err = endpoint_type(
            req, "destination_endpoint_id",
            json_object_get_string(json_object_object_get(doc, "destination_endpoint_id")), dtype,
            sizeof(dtype));
    json_object_put(doc);
    struct transfer_fields f = {0};
    json_object *has;
    bool set_opool = false, set_dpool = false;
    const char *opool = NULL, *dpool = NULL;
    if (!err)
        err = ek_req_body_object(req, "transfer", &t);
    if (!err)
        err = read_fields(t, otype, dtype, &f, true);
    if (!err)
        err = read_pool_update(req, t, "origin_minion_pool_id", &set_opool, &opool);
    if (!err)
        err = read_pool_update(req, t, "destination_minion_pool_id", &set_dpool, &dpool);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    static const char *const immutable[] = {"instances", "origin_endpoint_id",
                                            "destination_endpoint_id", "scenario"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(immutable); i++)
        if (json_object_object_get_ex(t, immutable[i], &has))
            EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                                "transfer.%s cannot be changed: create a new "
                                                "transfer",
                                                immutable[i]));
    bool has_clone = present(t, "clone_disks"), has_skip = present(t, "skip_os_morphing");
    bool env_changed = f.src_env || f.dst_env || f.network_map || f.storage_mappings;
    if (!env_changed && !f.user_scripts && !f.pool_map && !f.notes && !has_clone && !has_skip &&
        !set_opool && !set_dpool)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "transfer: nothing to update (give notes, "
                                            "source_environment, destination_environment, "
                                            "network_map, storage_mappings, user_scripts, "
                                            "origin_minion_pool_id, destination_minion_pool_id, "
                                            "instance_osmorphing_minion_pool_mappings, "
                                            "clone_disks or skip_os_morphing)"));
    ek_id_t exec_id = "";
    struct update_args a = {
        .id = req->arg[0],
        .params = (const char *[]){req->arg[0], json_or(f.src_env, NULL), json_or(f.dst_env, NULL),
                                   json_or(f.network_map, NULL), json_or(f.storage_mappings, NULL),
                                   json_or(f.user_scripts, NULL), json_or(f.pool_map, NULL),
                                   f.notes, has_clone ? (f.clone_disks ? "true" : "false") : NULL,
                                   has_skip ? (f.skip_os_morphing ? "true" : "false") : NULL,
                                   set_opool ? "true" : "false", opool,
                                   set_dpool ? "true" : "false", dpool},
        .env_changed = env_changed,
        .exec_id = exec_id};
    if ((err = ek_db_tx(req->db, 5, update_tx, &a)))
        EK_RESP_RETURN_ERR(resp, err);
    if (a.needs_tasks) {
        /* the replicas are told about the new environment */
        err = ek_engine_update_transfer(req->db, req->arg[0], ek_req_scope(req), exec_id);
        if (err && err->code == EK_E_CONFLICT && strstr(err->message, "not been executed")) {
            /* the replicas went away since the check: nothing to tell */
            ek_err_free(err);
            err = record_update(req->db, req->arg[0], exec_id);
        } else if (!err) {
            ek_app_wake(req->app);
        }
        if (err)
            EK_RESP_RETURN_ERR(resp, err);
    }
    ek_log_kv(EK_LOG_INFO, "transfer updated", "transfer_id", req->arg[0], "execution_id", exec_id,
              NULL);
    if (!(err = ek_engine_execution_json(req->db, exec_id, true, &doc)) && !doc)
        err = ek_err_not_found("execution", exec_id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "execution", doc);
}

void r_transfers_delete(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = load_transfer(req, req->arg[0], &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object_put(doc);
    PGresult *res;
    err = ek_db_query(req->db, &res,
                      "UPDATE transfers t SET deleted_at = now() WHERE t.id = $1 AND NOT EXISTS "
                      "(SELECT 1 FROM executions e WHERE e.action_id = t.id AND e.finished_at IS "
                      "NULL AND e.deleted_at IS NULL)",
                      1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool done = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!done)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_CONFLICT,
                                            "transfer %s has an execution running: cancel it "
                                            "first",
                                            req->arg[0]));
    ek_err_free(ek_db_query(req->db, NULL,
                            "UPDATE transfer_schedules SET deleted_at = now() WHERE transfer_id = "
                            "$1 AND deleted_at IS NULL",
                            1, (const char *[]){req->arg[0]}));
    ek_resp_json(resp, 204, NULL);
}

void r_transfers_action(ek_req_t *req, ek_resp_t *resp)
{
    json_object *v;
    if (!req->body || !json_object_is_type(req->body, json_type_object) ||
        !json_object_object_get_ex(req->body, "delete-disks", &v))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID, "unknown action: the body must be "
                                                          "{\"delete-disks\": null}"));
    ek_id_t exec_id;
    ek_err_t *err = ek_engine_delete_disks(req->db, req->arg[0], ek_req_scope(req), exec_id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_app_wake(req->app);
    json_object *doc;
    if ((err = ek_engine_execution_json(req->db, exec_id, true, &doc)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 202, "execution", doc);
}

/* ---- schedules ---------------------------------------------------------------------- */

#define SCHEDULE_JSON                                                                              \
    "jsonb_build_object('id', s.id, 'transfer_id', s.transfer_id, 'schedule', s.schedule, "        \
    "'enabled', s.enabled, 'expiration_date', s.expiration_date, 'shutdown_instance', "            \
    "s.shutdown_instance, 'auto_deploy', s.auto_deploy, 'last_fired_at', s.last_fired_at, "        \
    "'created_at', s.created_at, 'updated_at', s.updated_at)"

static ek_err_t *check_transfer(ek_req_t *req)
{
    json_object *doc;
    ek_err_t *err = load_transfer(req, req->arg[0], &doc);
    json_object_put(doc);
    return err;
}

static ek_err_t *read_expiration(json_object *body, const char **out)
{
    ek_err_t *err = ek_json_opt_string(body, NULL, "expiration_date", NULL, out);
    if (err || !*out)
        return err;
    struct tm tm = {0};
    const char *end = strptime(*out, "%Y-%m-%dT%H:%M", &tm);
    if (!end)
        end = strptime(*out, "%Y-%m-%d", &tm);
    if (!end)
        return ek_err_new(EK_E_INVALID, "expiration_date must be an ISO 8601 date "
                                        "(2027-01-31T00:00:00Z)");
    if (timegm(&tm) <= time(NULL))
        return ek_err_new(EK_E_INVALID, "expiration_date must be in the future");
    return NULL;
}

void r_schedules_list(ek_req_t *req, ek_resp_t *resp)
{
    ek_err_t *err = check_transfer(req);
    json_object *list;
    /* show_expired=false (Coriolis's): without the schedules past their expiration_date */
    const char *q = ek_req_query(req, "show_expired");
    bool hide = q && (strcasecmp(q, "false") == 0 || strcmp(q, "0") == 0);
    if (!err && q && !hide && strcasecmp(q, "true") && strcmp(q, "1"))
        err = ek_err_new(EK_E_INVALID, "show_expired must be true or false");
    if (!err)
        err =
            ek_db_query_json(req->db, &list,
                             "SELECT coalesce(jsonb_agg(" SCHEDULE_JSON
                             " ORDER BY s.created_at), '[]') FROM transfer_schedules s "
                             "WHERE s.transfer_id = $1 AND s.deleted_at IS NULL AND (NOT $2::bool "
                             "OR s.expiration_date IS NULL OR s.expiration_date > now())",
                             2, (const char *[]){req->arg[0], hide ? "true" : "false"});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "schedules", list);
}

static void show_schedule(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc = NULL;
    ek_err_t *err = ek_uuid_is_valid(id)
                        ? ek_db_query_json(req->db, &doc,
                                           "SELECT " SCHEDULE_JSON " FROM transfer_schedules s "
                                           "WHERE s.id = $1 AND s.transfer_id = $2 AND "
                                           "s.deleted_at IS NULL",
                                           2, (const char *[]){id, req->arg[0]})
                        : NULL;
    if (!err && !doc)
        err = ek_err_not_found("schedule", id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, status, "schedule", doc);
}

void r_schedules_create(ek_req_t *req, ek_resp_t *resp)
{
    ek_err_t *err = check_transfer(req);
    json_object *schedule;
    const char *expiration = NULL;
    bool enabled, shutdown, auto_deploy;
    ek_cron_t cron;
    if (!err && (!req->body || !json_object_is_type(req->body, json_type_object)))
        err = ek_err_new(EK_E_INVALID, "the request needs a JSON body {\"schedule\": {minute, "
                                       "hour, dom, month, dow}, ...}");
    if (err || (err = ek_json_req_object(req->body, NULL, "schedule", &schedule)) ||
        (err = ek_cron_from_json(schedule, "schedule", &cron)) ||
        (err = ek_json_opt_bool(req->body, NULL, "enabled", true, &enabled)) ||
        (err = ek_json_opt_bool(req->body, NULL, "shutdown_instance", false, &shutdown)) ||
        (err = ek_json_opt_bool(req->body, NULL, "auto_deploy", false, &auto_deploy)) ||
        (err = read_expiration(req->body, &expiration)))
        EK_RESP_RETURN_ERR(resp, err);
    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    err = ek_db_query(req->db, NULL,
                      "INSERT INTO transfer_schedules (id, project_id, user_id, transfer_id, "
                      "schedule, expiration_date, enabled, shutdown_instance, auto_deploy) "
                      "SELECT $1, t.project_id, $2, t.id, $4, $5, $6, $7, $8 FROM transfers t "
                      "WHERE t.id = $3",
                      8,
                      (const char *[]){id, req->user_id, req->arg[0],
                                       json_object_to_json_string(schedule), expiration,
                                       enabled ? "true" : "false", shutdown ? "true" : "false",
                                       auto_deploy ? "true" : "false"});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    show_schedule(req, resp, id, 201);
}

void r_schedules_show(ek_req_t *req, ek_resp_t *resp)
{
    ek_err_t *err = check_transfer(req);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    show_schedule(req, resp, req->arg[1], 200);
}

void r_schedules_update(ek_req_t *req, ek_resp_t *resp)
{
    ek_err_t *err = check_transfer(req);
    json_object *schedule = NULL, *has;
    const char *expiration = NULL;
    bool enabled, shutdown, auto_deploy;
    ek_cron_t cron;
    if (!err && (!req->body || !json_object_is_type(req->body, json_type_object)))
        err = ek_err_new(EK_E_INVALID, "the request needs a JSON body");
    if (err || (err = ek_json_opt_object(req->body, NULL, "schedule", &schedule)) ||
        (schedule && (err = ek_cron_from_json(schedule, "schedule", &cron))) ||
        (err = ek_json_opt_bool(req->body, NULL, "enabled", true, &enabled)) ||
        (err = ek_json_opt_bool(req->body, NULL, "shutdown_instance", false, &shutdown)) ||
        (err = ek_json_opt_bool(req->body, NULL, "auto_deploy", false, &auto_deploy)) ||
        (err = read_expiration(req->body, &expiration)))
        EK_RESP_RETURN_ERR(resp, err);
    bool has_en = json_object_object_get_ex(req->body, "enabled", &has);
    bool has_sh = json_object_object_get_ex(req->body, "shutdown_instance", &has);
    bool has_ad = json_object_object_get_ex(req->body, "auto_deploy", &has);
    /* "expiration_date": null takes the expiration away */
    bool has_exp = json_object_object_get_ex(req->body, "expiration_date", &has);
    PGresult *res;
    err = ek_db_query(
        req->db, &res,
        "UPDATE transfer_schedules SET schedule = coalesce($3::jsonb, schedule), "
        "expiration_date = CASE WHEN $8::bool THEN $4::timestamptz ELSE expiration_date END, "
        "enabled = coalesce($5::bool, enabled), "
        "shutdown_instance = coalesce($6::bool, shutdown_instance), "
        "auto_deploy = coalesce($7::bool, auto_deploy), updated_at = now() "
        "WHERE id = $1 AND transfer_id = $2 AND deleted_at IS NULL",
        8,
        (const char *[]){
            ek_uuid_is_valid(req->arg[1]) ? req->arg[1] : "00000000-0000-0000-0000-000000000000",
            req->arg[0], schedule ? json_object_to_json_string(schedule) : NULL, expiration,
            has_en ? (enabled ? "true" : "false") : NULL,
            has_sh ? (shutdown ? "true" : "false") : NULL,
            has_ad ? (auto_deploy ? "true" : "false") : NULL, has_exp ? "true" : "false"});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("schedule", req->arg[1]));
    show_schedule(req, resp, req->arg[1], 200);
}

void r_schedules_delete(ek_req_t *req, ek_resp_t *resp)
{
    ek_err_t *err = check_transfer(req);
    PGresult *res;
    if (!err && !ek_uuid_is_valid(req->arg[1]))
        err = ek_err_not_found("schedule", req->arg[1]);
    if (!err)
        err = ek_db_query(req->db, &res,
                          "UPDATE transfer_schedules SET deleted_at = now() WHERE id = $1 AND "
                          "transfer_id = $2 AND deleted_at IS NULL",
                          2, (const char *[]){req->arg[1], req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("schedule", req->arg[1]));
    ek_resp_json(resp, 204, NULL);
}
