/* r_endpoints.c - endpoints: CRUD with connection info sealed at rest
 * (AES-256-GCM, the endpoint id as associated data) and masked on the way out;
 * validate-connection and the listing calls go to a worker. */
#include <string.h>
#include "common/base64.h"
#include "common/db.h"
#include "common/json.h"
#include "common/jsonschema.h"
#include "conductor/conninfo.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/secret.h"
#include "common/strbuf.h"
#include "conductor/routes.h"
#include "conductor/rpc.h"
#include "proto/providers.h"

#define ENDPOINT_JSON                                                                              \
    "jsonb_build_object('id', e.id, 'name', e.name, 'description', e.description, 'type', "        \
    "e.type, 'project_id', e.project_id, 'user_id', e.user_id, 'created_at', e.created_at, "       \
    "'updated_at', e.updated_at, 'mapped_regions', coalesce((SELECT jsonb_agg(r.region_id) "       \
    "FROM endpoint_regions r WHERE r.endpoint_id = e.id), '[]'))"

/* Loads an endpoint of the caller's scope: its public JSON and sealed info. */
static ek_err_t *load(ek_req_t *req, const char *id, json_object **doc, char **sealed)
{
    *doc = NULL;
    if (sealed)
        *sealed = NULL;
    if (!ek_uuid_is_valid(id))
        return ek_err_not_found("endpoint", id);
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT " ENDPOINT_JSON ", e.connection_info FROM endpoints e "
                                "WHERE e.id = $1 AND e.deleted_at IS NULL "
                                "AND ($2::uuid IS NULL OR e.project_id = $2)",
                                2, (const char *[]){id, ek_req_scope(req)});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_not_found("endpoint", id);
    }
    const char *text = PQgetvalue(res, 0, 0);
    err = ek_json_parse(text, strlen(text), doc);
    if (!err && sealed)
        *sealed = ek_xstrdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    return err;
}

/* The stored connection info of an endpoint, unsealed (new reference). */
static ek_err_t *open_info(ek_req_t *req, const char *id, const char *sealed, json_object **info)
{
    char *plain = NULL;
    *info = NULL;
    ek_err_t *err = ek_secret_open(req->app->key, id, sealed, &plain);
    if (err)
        return ek_err_prefix(err, "endpoint %s: connection_info", id);
    err = ek_json_parse(plain, strlen(plain), info);
    ek_free_secret(plain);
    return err;
}

/* Adds the masked connection info to an endpoint document. */
static ek_err_t *add_masked_info(ek_req_t *req, json_object *doc, const char *sealed)
{
    json_object *info = NULL;
    ek_err_t *err =
        open_info(req, json_object_get_string(json_object_object_get(doc, "id")), sealed, &info);
    if (err)
        return err;
    json_object_object_add(doc, "connection_info", ek_redact_json(info));
    json_object_put(info);
    return NULL;
}

static ek_err_t *check_regions(ek_req_t *req, json_object *regions)
{
    size_t n = regions ? json_object_array_length(regions) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(regions, i);
        const char *rid = json_object_get_string(r);
        if (!json_object_is_type(r, json_type_string) || !ek_uuid_is_valid(rid))
            return ek_err_new(EK_E_INVALID, "endpoint.mapped_regions[%zu] must be a region id", i);
        PGresult *res;
        ek_err_t *err =
            ek_db_query(req->db, &res, "SELECT 1 FROM regions WHERE id = $1 AND deleted_at IS NULL",
                        1, (const char *[]){rid});
        if (err)
            return err;
        int found = PQntuples(res);
        PQclear(res);
        if (!found)
            return ek_err_new(EK_E_INVALID, "endpoint.mapped_regions[%zu]: region %s not found", i,
                              rid);
    }
    return NULL;
}

static ek_err_t *set_regions(ek_req_t *req, const char *id, json_object *regions)
{
    ek_err_t *err =
        ek_db_query(req->db, NULL, "DELETE FROM endpoint_regions WHERE endpoint_id = $1", 1,
                    (const char *[]){id});
    size_t n = regions ? json_object_array_length(regions) : 0;
    for (size_t i = 0; !err && i < n; i++)
        err = ek_db_query(
            req->db, NULL, "INSERT INTO endpoint_regions (endpoint_id, region_id) VALUES ($1, $2)",
            2, (const char *[]){id, json_object_get_string(json_object_array_get_idx(regions, i))});
    return err;
}

/* One endpoint's row and regions: created (type set) or updated (NULL
 * columns keep their value; regions only when set_regions). */
struct endpoint_tx {
    ek_req_t *req;
    const char *id, *name, *description, *type, *sealed;
    json_object *regions;
    bool set_regions;
};

static ek_err_t *endpoint_write_tx(PGconn *db, void *arg)
{
    struct endpoint_tx *t = arg;
    ek_err_t *err;
    if (t->type)
        err = ek_db_query(db, NULL,
                          "INSERT INTO endpoints (id, project_id, user_id, name, description, "
                          "type, connection_info) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                          7,
                          (const char *[]){t->id, t->req->project_id, t->req->user_id, t->name,
                                           t->description, t->type, t->sealed});
    else
        err = ek_db_query(db, NULL,
                          "UPDATE endpoints SET name = coalesce($2, name), "
                          "description = coalesce($3, description), "
                          "connection_info = coalesce($4, connection_info), updated_at = now() "
                          "WHERE id = $1",
                          4, (const char *[]){t->id, t->name, t->description, t->sealed});
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        return ek_err_new(EK_E_CONFLICT, "an endpoint named '%s' already exists", t->name);
    }
    if (!err && t->set_regions)
        err = set_regions(t->req, t->id, t->regions);
    return err;
}

static ek_err_t *check_connection_info(const char *type, json_object *info)
{
    ek_err_t *err = ek_jsonschema_validate(ek_provider_schema(type, EK_SCHEMA_CONNECTION), info,
                                           "endpoint.connection_info");
    return err ? err : ek_conninfo_check(info, "endpoint.connection_info");
}

/* Each item carries its connection_info, masked as in show (coriolis-web
 * reads it from the list); one that cannot be unsealed is null, with a
 * warning in the log. */
void r_endpoints_list(ek_req_t *req, ek_resp_t *resp)
{
    PGresult *res;
    ek_err_t *err = ek_db_query(req->db, &res,
                                "SELECT " ENDPOINT_JSON ", e.connection_info FROM endpoints e "
                                "WHERE e.deleted_at IS NULL "
                                "AND ($1::uuid IS NULL OR e.project_id = $1) "
                                "ORDER BY e.created_at",
                                1, (const char *[]){ek_req_scope(req)});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object *list = json_object_new_array();
    for (int i = 0; i < PQntuples(res) && !err; i++) {
        const char *text = PQgetvalue(res, i, 0);
        json_object *doc = NULL;
        if ((err = ek_json_parse(text, strlen(text), &doc)))
            break;
        ek_err_t *e = add_masked_info(req, doc, PQgetvalue(res, i, 1));
        if (e) {
            ek_log_kv(EK_LOG_WARNING, "endpoint list: connection_info not shown", "endpoint_id",
                      json_object_get_string(json_object_object_get(doc, "id")), "error",
                      e->message, NULL);
            ek_err_free(e);
            json_object_object_add(doc, "connection_info", NULL);
        }
        json_object_array_add(list, doc);
    }
    PQclear(res);
    if (err) {
        json_object_put(list);
        EK_RESP_RETURN_ERR(resp, err);
    }
    ek_resp_wrap(resp, 200, "endpoints", list);
}

void r_endpoints_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *e, *info, *regions;
    const char *name, *type, *description;
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "endpoint", &e)) ||
        (err = ek_json_req_string(e, "endpoint", "name", &name)) ||
        (err = ek_json_req_string(e, "endpoint", "type", &type)) ||
        (err = ek_json_opt_string(e, "endpoint", "description", "", &description)) ||
        (err = ek_json_req_object(e, "endpoint", "connection_info", &info)) ||
        (err = ek_json_opt_array(e, "endpoint", "mapped_regions", &regions)))
        EK_RESP_RETURN_ERR(resp, err);
    if (!ek_provider_find(type))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "endpoint.type '%s' is not a provider (GET "
                                            "/v1/{project_id}/providers lists them)",
                                            type));
    if ((err = check_connection_info(type, info)) || (err = check_regions(req, regions)))
        EK_RESP_RETURN_ERR(resp, err);

    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    char *sealed = ek_secret_seal(req->app->key, id, json_object_to_json_string(info));
    struct endpoint_tx t = {req, id, name, description, type, sealed, regions, true};
    err = ek_db_tx(req->db, 0, endpoint_write_tx, &t);
    free(sealed);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_log_kv(EK_LOG_INFO, "endpoint created", "endpoint_id", id, "name", name, "type", type,
              "project_id", req->project_id, NULL);
    r_endpoints_show_id(req, resp, id, 201);
}

void r_endpoints_show_id(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc;
    char *sealed;
    ek_err_t *err = load(req, id, &doc, &sealed);
    if (!err)
        err = add_masked_info(req, doc, sealed);
    free(sealed);
    if (err) {
        json_object_put(doc);
        EK_RESP_RETURN_ERR(resp, err);
    }
    ek_resp_wrap(resp, status, "endpoint", doc);
}

void r_endpoints_show(ek_req_t *req, ek_resp_t *resp)
{
    r_endpoints_show_id(req, resp, req->arg[0], 200);
}

void r_endpoints_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc, *e, *info = NULL, *regions = NULL, *has_regions = NULL, *stored = NULL;
    const char *name = NULL, *description = NULL;
    char *sealed_now = NULL;
    ek_err_t *err;
    if ((err = load(req, req->arg[0], &doc, &sealed_now)))
        EK_RESP_RETURN_ERR(resp, err);
    const char *id = req->arg[0];
    char *type = ek_xstrdup(json_object_get_string(json_object_object_get(doc, "type")));
    json_object_put(doc);
    if ((err = ek_req_body_object(req, "endpoint", &e)) ||
        (err = ek_json_opt_string(e, "endpoint", "name", NULL, &name)) ||
        (err = ek_json_opt_string(e, "endpoint", "description", NULL, &description)) ||
        (err = ek_json_opt_object(e, "endpoint", "connection_info", &info)) ||
        (err = ek_json_opt_array(e, "endpoint", "mapped_regions", &regions)) ||
        /* a secret sent back masked ("***", as GET shows it) keeps its stored value */
        (info && (err = open_info(req, id, sealed_now, &stored))) ||
        (info && (err = ek_conninfo_keep_secrets(info, stored, "endpoint.connection_info"))) ||
        (info && (err = check_connection_info(type, info))) ||
        (err = check_regions(req, regions))) {
        free(type);
        free(sealed_now);
        json_object_put(stored);
        EK_RESP_RETURN_ERR(resp, err);
    }
    free(type);
    free(sealed_now);
    json_object_put(stored); /* info holds its own references to what it took */
    json_object_object_get_ex(e, "mapped_regions", &has_regions);
    if (name && !*name)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID, "endpoint.name must not be empty"));
    char *sealed =
        info ? ek_secret_seal(req->app->key, id, json_object_to_json_string(info)) : NULL;
    struct endpoint_tx t = {req, id, name, description, NULL, sealed, regions, has_regions};
    err = ek_db_tx(req->db, 0, endpoint_write_tx, &t);
    free(sealed);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    r_endpoints_show_id(req, resp, id, 200);
}

void r_endpoints_delete(ek_req_t *req, ek_resp_t *resp)
{
    json_object *doc;
    ek_err_t *err = load(req, req->arg[0], &doc, NULL);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object_put(doc);
    PGresult *res;
    err = ek_db_query(req->db, &res,
                      "SELECT id FROM transfers WHERE deleted_at IS NULL AND "
                      "(origin_endpoint_id = $1 OR destination_endpoint_id = $1) LIMIT 1",
                      1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    if (PQntuples(res)) {
        err = ek_err_new(EK_E_CONFLICT,
                         "endpoint %s is used by transfer %s: delete the transfer "
                         "first",
                         req->arg[0], PQgetvalue(res, 0, 0));
        PQclear(res);
        EK_RESP_RETURN_ERR(resp, err);
    }
    PQclear(res);
    err = ek_db_query(req->db, NULL,
                      "UPDATE endpoints SET deleted_at = now(), name = name || '#' || id "
                      "WHERE id = $1",
                      1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_json(resp, 204, NULL);
}

/* Runs a query against the endpoint on a worker; wraps the answer in key. */
static void query(ek_req_t *req, ek_resp_t *resp, const char *what, json_object *args,
                  const char *key)
{
    json_object *doc;
    char *sealed;
    ek_err_t *err = load(req, req->arg[0], &doc, &sealed);
    if (err) {
        json_object_put(args);
        EK_RESP_RETURN_ERR(resp, err);
    }
    json_object *endpoint = json_object_new_object();
    json_object_object_add(endpoint, "id", json_object_get(json_object_object_get(doc, "id")));
    json_object_object_add(endpoint, "name", json_object_get(json_object_object_get(doc, "name")));
    json_object_object_add(endpoint, "type", json_object_get(json_object_object_get(doc, "type")));
    json_object_object_add(endpoint, "connection_info_sealed", json_object_new_string(sealed));
    free(sealed);
    json_object_put(doc);
    json_object *result = NULL;
    err = ek_rpc_endpoint_query(req->app, req->db, endpoint, what, args, &result);
    json_object_put(endpoint);
    json_object_put(args);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, key, result);
}

/* env= is base64url JSON in Coriolis's API; plain JSON is accepted too. */
static ek_err_t *env_arg(ek_req_t *req, json_object *args)
{
    const char *env = ek_req_query(req, "env");
    if (!env || !*env)
        return NULL;
    json_object *parsed = NULL;
    ek_err_t *err = ek_json_parse(env, strlen(env), &parsed);
    if (err) {
        ek_err_free(err);
        unsigned char *raw = NULL;
        size_t len = 0;
        if ((err = ek_base64_decode(env, &raw, &len)))
            return err;
        err = ek_json_parse((const char *)raw, len, &parsed);
        free(raw);
        if (err)
            return ek_err_prefix(err, "query argument env");
    }
    json_object_object_add(args, "env", parsed);
    return NULL;
}

static void list_query(ek_req_t *req, ek_resp_t *resp, const char *what, const char *key)
{
    json_object *args = json_object_new_object();
    ek_err_t *err = env_arg(req, args);
    if (err) {
        json_object_put(args);
        EK_RESP_RETURN_ERR(resp, err);
    }
    static const char *const passthrough[] = {"marker", "limit", "name", "refresh", "options"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(passthrough); i++) {
        const char *v = ek_req_query(req, passthrough[i]);
        if (v)
            json_object_object_add(args, passthrough[i], json_object_new_string(v));
    }
    query(req, resp, what, args, key);
}

void r_endpoints_action(ek_req_t *req, ek_resp_t *resp)
{
    json_object *v = NULL;
    if (!req->body || !json_object_is_type(req->body, json_type_object) ||
        !json_object_object_get_ex(req->body, "validate-connection", &v))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID, "unknown action: the body must be "
                                                          "{\"validate-connection\": null}"));
    json_object *doc;
    char *sealed;
    ek_err_t *err = load(req, req->arg[0], &doc, &sealed);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    json_object *endpoint = json_object_new_object();
    json_object_object_add(endpoint, "id", json_object_get(json_object_object_get(doc, "id")));
    json_object_object_add(endpoint, "name", json_object_get(json_object_object_get(doc, "name")));
    json_object_object_add(endpoint, "type", json_object_get(json_object_object_get(doc, "type")));
    json_object_object_add(endpoint, "connection_info_sealed", json_object_new_string(sealed));
    free(sealed);
    json_object_put(doc);
    json_object *result = NULL;
    err = ek_rpc_endpoint_query(req->app, req->db, endpoint, "validate_connection", NULL, &result);
    json_object_put(endpoint);
    json_object *out = json_object_new_object();
    if (err && err->code == EK_E_UNAVAILABLE && !strstr(err->message, "no worker answered")) {
        /* the provider answered: the connection is not valid, and why */
        json_object_object_add(out, "valid", json_object_new_boolean(false));
        json_object_object_add(out, "message", json_object_new_string(err->message));
        ek_err_free(err);
    } else if (err) {
        json_object_put(out);
        EK_RESP_RETURN_ERR(resp, err);
    } else {
        json_object_object_add(out, "valid", json_object_new_boolean(true));
        json_object_object_add(out, "message", json_object_new_string(""));
        json_object_put(result);
    }
    ek_resp_wrap(resp, 200, "validate-connection", out);
}

void r_endpoints_instances(ek_req_t *req, ek_resp_t *resp)
{
    list_query(req, resp, "instances", "instances");
}

void r_endpoints_instance(ek_req_t *req, ek_resp_t *resp)
{
    /* the name is base64url-encoded in the path (names may hold '/') */
    unsigned char *raw = NULL;
    size_t len = 0;
    ek_err_t *err = ek_base64_decode(req->arg[1], &raw, &len);
    if (err)
        EK_RESP_RETURN_ERR(resp, ek_err_prefix(err, "instance name in the path (base64url)"));
    json_object *args = json_object_new_object();
    json_object_object_add(args, "name", json_object_new_string_len((const char *)raw, (int)len));
    free(raw);
    if ((err = env_arg(req, args))) {
        json_object_put(args);
        EK_RESP_RETURN_ERR(resp, err);
    }
    query(req, resp, "instance", args, "instance");
}

void r_endpoints_networks(ek_req_t *req, ek_resp_t *resp)
{
    list_query(req, resp, "networks", "networks");
}

void r_endpoints_storage(ek_req_t *req, ek_resp_t *resp)
{
    list_query(req, resp, "storage", "storage");
}

void r_endpoints_dest_options(ek_req_t *req, ek_resp_t *resp)
{
    list_query(req, resp, "destination_options", "destination_options");
}

void r_endpoints_source_options(ek_req_t *req, ek_resp_t *resp)
{
    list_query(req, resp, "source_options", "source_options");
}
