/* r_executions.c - transfer executions and deployments: create (the engine
 * builds the task graph), list, show with tasks, events and progress, cancel,
 * delete. */
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/redact.h"
#include "engine/store.h"
#include "conductor/routes.h"
#include "proto/status.h"

/* The transfer must be the caller's: 404 otherwise. */
static ek_err_t *check_transfer(ek_req_t *req)
{
    PGresult *res;
    if (!ek_uuid_is_valid(req->arg[0]))
        return ek_err_not_found("transfer", req->arg[0]);
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT 1 FROM transfers WHERE id = $1 AND deleted_at IS NULL "
                                "AND ($2::uuid IS NULL OR project_id = $2)",
                                2, (const char *[]){req->arg[0], ek_req_scope(req)});
    if (err)
        return err;
    int n = PQntuples(res);
    PQclear(res);
    return n ? NULL : ek_err_not_found("transfer", req->arg[0]);
}

/* Loads an execution of the transfer (or deployment) action_id. */
static ek_err_t *load_execution(ek_req_t *req, const char *action_id, const char *exec_id,
                                bool tasks, json_object **out)
{
    *out = NULL;
    PGresult *res;
    if (!ek_uuid_is_valid(exec_id))
        return ek_err_not_found("execution", exec_id);
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT 1 FROM executions WHERE id = $1 AND action_id = $2 AND "
                                "deleted_at IS NULL",
                                2, (const char *[]){exec_id, action_id});
    if (err)
        return err;
    int n = PQntuples(res);
    PQclear(res);
    if (!n)
        return ek_err_not_found("execution", exec_id);
    return ek_engine_execution_json(req->db, exec_id, tasks, out);
}

void r_executions_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = check_transfer(req);
    if (!err)
        err = ek_db_query_json(req->db, &list,
                               "SELECT coalesce(jsonb_agg(jsonb_build_object('id', e.id, "
                               "'action_id', e.action_id, 'type', e.type, 'number', e.number, "
                               "'status', e.status, 'shutdown_instances', e.shutdown_instances, "
                               "'auto_deploy', e.auto_deploy, 'created_at', e.created_at, "
                               "'updated_at', e.updated_at) ORDER BY e.number), '[]') "
                               "FROM executions e WHERE e.action_id = $1 AND e.deleted_at IS NULL",
                               1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "executions", list);
}

void r_executions_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *e = NULL;
    bool shutdown = false, auto_deploy = false;
    ek_err_t *err = NULL;
    if (req->body && (!json_object_is_type(req->body, json_type_object) ||
                      (err = ek_json_opt_object(req->body, NULL, "execution", &e))))
        EK_RESP_RETURN_ERR(resp, err ? err
                                     : ek_err_new(EK_E_INVALID,
                                                  "the request body must be {\"execution\": "
                                                  "{...}}"));
    if ((err = ek_json_opt_bool(e, "execution", "shutdown_instances", false, &shutdown)) ||
        (err = ek_json_opt_bool(e, "execution", "auto_deploy", false, &auto_deploy)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_id_t exec_id;
    if ((err = ek_engine_execute_transfer(req->db, req->arg[0], ek_req_scope(req), shutdown,
                                          auto_deploy, exec_id)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_app_wake(req->app);
    json_object *doc;
    if ((err = ek_engine_execution_json(req->db, exec_id, true, &doc)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 201, "execution", doc);
}

void r_executions_show(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = check_transfer(req);
    if (!err)
        err = load_execution(req, req->arg[0], req->arg[1], true, &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "execution", doc);
}

void r_executions_delete(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = check_transfer(req);
    if (!err)
        err = load_execution(req, req->arg[0], req->arg[1], false, &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    const char *status = json_object_get_string(json_object_object_get(doc, "status"));
    ek_exec_status_t es;
    if (!ek_exec_status_parse(status, &es) || !ek_exec_status_final(es)) {
        err = ek_err_new(EK_E_CONFLICT, "execution %s is %s: cancel it before deleting it",
                         req->arg[1], status);
        json_object_put(doc);
        EK_RESP_RETURN_ERR(resp, err);
    }
    json_object_put(doc);
    if ((err = ek_db_query(req->db, NULL, "UPDATE executions SET deleted_at = now() WHERE id = $1",
                           1, (const char *[]){req->arg[1]})))
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_json(resp, 204, NULL);
}

/* {"cancel": {"force": bool}} or {"cancel": null} */
static ek_err_t *read_cancel(const ek_req_t *req, bool *force)
{
    json_object *c = NULL;
    *force = false;
    if (!req->body || !json_object_is_type(req->body, json_type_object) ||
        !json_object_object_get_ex(req->body, "cancel", &c))
        return ek_err_new(EK_E_INVALID, "unknown action: the body must be {\"cancel\": "
                                        "{\"force\": false}}");
    if (c && !json_object_is_type(c, json_type_object))
        return ek_err_new(EK_E_INVALID, "cancel must be an object or null");
    return ek_json_opt_bool(c, "cancel", "force", false, force);
}

void r_executions_action(ek_req_t *req, ek_resp_t *resp)
{
    bool force;
    json_object *doc;
    ek_err_t *err = check_transfer(req);
    if (!err)
        err = read_cancel(req, &force);
    if (!err)
        err = load_execution(req, req->arg[0], req->arg[1], false, &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object_put(doc);
    if ((err = ek_engine_cancel(req->db, req->arg[1], ek_req_scope(req), force)))
        EK_RESP_RETURN_ERR(resp, err);
    ek_app_wake(req->app);
    ek_resp_json(resp, 204, NULL);
}

/* ---- deployments ------------------------------------------------------------------- */

#define DEPLOYMENT_JSON                                                                            \
    "jsonb_build_object('id', d.id, 'transfer_id', d.transfer_id, 'origin_endpoint_id', "          \
    "d.origin_endpoint_id, 'destination_endpoint_id', d.destination_endpoint_id, 'instances', "    \
    "d.instances, 'source_environment', d.source_environment, 'destination_environment', "         \
    "d.destination_environment, 'network_map', d.network_map, 'storage_mappings', "                \
    "d.storage_mappings, 'user_scripts', d.user_scripts, "                                         \
    "'instance_osmorphing_minion_pool_mappings', d.instance_osmorphing_minion_pool_mappings, "     \
    "'clone_disks', d.clone_disks, 'skip_os_morphing', d.skip_os_morphing, "                       \
    "'transfer_result', d.transfer_result, 'last_execution_status', d.last_execution_status, "     \
    "'project_id', d.project_id, 'user_id', d.user_id, 'created_at', d.created_at, "               \
    "'updated_at', d.updated_at, 'notes', d.notes, 'transfer_scenario_type', (SELECT t.scenario "  \
    "FROM transfers t WHERE t.id = d.transfer_id), 'reservation_id', NULL, "                       \
    "'origin_minion_pool_id', NULL, 'destination_minion_pool_id', NULL)"

static ek_err_t *load_deployment(ek_req_t *req, const char *id, json_object **out)
{
    *out = NULL;
    if (!ek_uuid_is_valid(id))
        return ek_err_not_found("deployment", id);
    ek_err_t *err = ek_db_query_json(req->db, out,
                                     "SELECT " DEPLOYMENT_JSON
                                     " || jsonb_build_object('execution_id', (SELECT e.id FROM "
                                     "executions e WHERE e.action_id = d.id ORDER BY e.number "
                                     "DESC LIMIT 1)) FROM deployments d WHERE d.id = $1 AND "
                                     "d.deleted_at IS NULL AND ($2::uuid IS NULL OR "
                                     "d.project_id = $2)",
                                     2, (const char *[]){id, ek_req_scope(req)});
    if (!err && !*out)
        err = ek_err_not_found("deployment", id);
    return err;
}

/* A deployment as Coriolis shows it: its fields plus its execution's tasks. */
static void show_deployment(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc, *exec = NULL;
    ek_err_t *err = load_deployment(req, id, &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    const char *exec_id = json_object_get_string(json_object_object_get(doc, "execution_id"));
    if (exec_id && (err = ek_engine_execution_json(req->db, exec_id, true, &exec))) {
        json_object_put(doc);
        EK_RESP_RETURN_ERR(resp, err);
    }
    if (exec) {
        json_object_object_add(doc, "tasks",
                               json_object_get(json_object_object_get(exec, "tasks")));
        json_object_object_add(doc, "status",
                               json_object_get(json_object_object_get(exec, "status")));
        json_object_put(exec);
    }
    ek_resp_wrap(resp, status, "deployment", doc);
}

void r_deployments_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(req->db, &list,
                                     "SELECT coalesce(jsonb_agg(" DEPLOYMENT_JSON
                                     " ORDER BY d.created_at), '[]') FROM deployments d "
                                     "WHERE d.deleted_at IS NULL "
                                     "AND ($1::uuid IS NULL OR d.project_id = $1)",
                                     1, (const char *[]){ek_req_scope(req)});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "deployments", list);
}

void r_deployments_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *d, *scripts = NULL, *pools = NULL;
    const char *transfer_id;
    ek_deploy_opts_t o = {0};
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "deployment", &d)) ||
        (err = ek_json_req_string(d, "deployment", "transfer_id", &transfer_id)) ||
        (err = ek_json_opt_bool(d, "deployment", "clone_disks", true, &o.clone_disks)) ||
        (err = ek_json_opt_bool(d, "deployment", "force", false, &o.force)) ||
        (err = ek_json_opt_bool(d, "deployment", "skip_os_morphing", false, &o.skip_os_morphing)) ||
        (err = ek_json_opt_object(d, "deployment", "user_scripts", &scripts)) ||
        (err = ek_json_opt_object(d, "deployment", "instance_osmorphing_minion_pool_mappings",
                                  &pools)))
        EK_RESP_RETURN_ERR(resp, err);
    if (!ek_uuid_is_valid(transfer_id))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "deployment.transfer_id must be a transfer id"));
    o.user_scripts = scripts;
    o.instance_osmorphing_minion_pool_mappings = pools;
    ek_id_t dep_id, exec_id;
    err = ek_engine_deploy(req->db, transfer_id, ek_req_scope(req), req->user_id, &o, dep_id,
                           exec_id);
    if (err && err->code == EK_E_NOTFOUND) {
        ek_err_free(err);
        err =
            ek_err_new(EK_E_INVALID, "deployment.transfer_id: transfer %s not found", transfer_id);
    }
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_app_wake(req->app);
    show_deployment(req, resp, dep_id, 201);
}

void r_deployments_show(ek_req_t *req, ek_resp_t *resp)
{
    show_deployment(req, resp, req->arg[0], 200);
}

void r_deployments_delete(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = load_deployment(req, req->arg[0], &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object_put(doc);
    PGresult *res;
    err = ek_db_query(req->db, &res,
                      "UPDATE deployments d SET deleted_at = now() WHERE d.id = $1 AND NOT EXISTS "
                      "(SELECT 1 FROM executions e WHERE e.action_id = d.id AND e.finished_at IS "
                      "NULL)",
                      1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool done = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!done)
        EK_RESP_RETURN_ERR(
            resp,
            ek_err_new(EK_E_CONFLICT, "deployment %s is running: cancel it first", req->arg[0]));
    ek_resp_json(resp, 204, NULL);
}

void r_deployments_action(ek_req_t *req, ek_resp_t *resp)
{
    bool force;
    json_object *doc;
    ek_err_t *err = read_cancel(req, &force);
    if (!err)
        err = load_deployment(req, req->arg[0], &doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    const char *exec_id = json_object_get_string(json_object_object_get(doc, "execution_id"));
    err = exec_id ? ek_engine_cancel(req->db, exec_id, ek_req_scope(req), force)
                  : ek_err_new(EK_E_CONFLICT, "deployment %s has no execution", req->arg[0]);
    json_object_put(doc);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_app_wake(req->app);
    ek_resp_json(resp, 204, NULL);
}
