/* r_system.c - providers and their schemas, regions, services, minion pools
 * and diagnostics. Regions and services are global: anyone reads them, only
 * an admin changes them. */
#include <amqp.h>
#include <arpa/inet.h>
#include <gnu/libc-version.h>
#include <ifaddrs.h>
#include <json-c/json_c_version.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "common/db.h"
#include "common/json.h"
#include "common/mem.h"
#include "conductor/routes.h"
#include "proto/providers.h"

static ek_err_t *need_admin(const ek_req_t *req)
{
    return req->is_admin ? NULL : ek_err_new(EK_E_FORBIDDEN, "only an admin may change that");
}

void r_providers_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *out = json_object_new_object();
    for (const ek_provider_info_t *p = ek_providers; p->name; p++) {
        json_object *o = json_object_new_object();
        json_object *types = json_object_new_array();
        for (unsigned bit = 1; bit; bit <<= 1)
            if (p->capabilities & bit)
                json_object_array_add(types, json_object_new_int((int)bit));
        json_object_object_add(o, "types", types);
        json_object_object_add(o, "description", json_object_new_string(p->description));
        json_object_object_add(out, p->name, o);
    }
    ek_resp_wrap(resp, 200, "providers", out);
}

void r_provider_schema(ek_req_t *req, ek_resp_t *resp)
{
    char *end;
    unsigned long type = strtoul(req->arg[1], &end, 10);
    bool ok = false;
    ek_schema_kind_t kind = ek_provider_schema_kind_for_type((unsigned)type, &ok);
    if (!ek_provider_find(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("provider", req->arg[0]));
    if (!*end && (type == EK_CAP_SOURCE_MINION_POOL || type == EK_CAP_DESTINATION_MINION_POOL))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND,
                                            "provider %s has no schema of type %s: Ekman's "
                                            "providers have no minion pool operations",
                                            req->arg[0], req->arg[1]));
    if (*end || !ok)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND,
                                            "schema type %s not found (16: connection info, 8: "
                                            "source environment, 4: destination environment)",
                                            req->arg[1]));
    json_object *schema = ek_provider_schema(req->arg[0], kind);
    if (!schema)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND, "provider %s has no schema of type %s",
                                            req->arg[0], req->arg[1]));
    /* Coriolis's key per schema type (coriolis/worker/rpc/server.py) */
    static const char *const keys[] = {
        [EK_SCHEMA_CONNECTION] = "connection_info_schema",
        [EK_SCHEMA_SOURCE_ENVIRONMENT] = "source_environment_schema",
        [EK_SCHEMA_DESTINATION_ENVIRONMENT] = "destination_environment_schema",
    };
    json_object *out = json_object_new_object();
    json_object_object_add(out, keys[kind], json_object_get(schema));
    ek_resp_wrap(resp, 200, "schemas", out);
}

/* ---- regions --------------------------------------------------------------------- */

/* SCOPE: the query parameter of the caller's project (NULL for an admin):
 * mapped_endpoints lists the endpoints of that project only. */
#define REGION_JSON(SCOPE)                                                                         \
    "jsonb_build_object('id', r.id, 'name', r.name, 'description', r.description, 'enabled', "     \
    "r.enabled, 'created_at', r.created_at, 'updated_at', r.updated_at, 'mapped_endpoints', "      \
    "coalesce((SELECT jsonb_agg(er.endpoint_id ORDER BY e.created_at) FROM endpoint_regions er "   \
    "JOIN endpoints e ON e.id = er.endpoint_id WHERE er.region_id = r.id AND e.deleted_at IS "     \
    "NULL AND (" SCOPE "::uuid IS NULL OR e.project_id = " SCOPE ")), '[]'), 'mapped_services', "  \
    "coalesce((SELECT jsonb_agg(sr.service_id ORDER BY s.host, s.binary_name) FROM "               \
    "service_regions sr JOIN services s ON s.id = sr.service_id WHERE sr.region_id = r.id AND "    \
    "s.deleted_at IS NULL), '[]'))"

static void region_show(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc = NULL;
    ek_err_t *err =
        ek_uuid_is_valid(id)
            ? ek_db_query_json(req->db, &doc,
                               "SELECT " REGION_JSON("$2") " FROM regions r WHERE "
                                                           "r.id = $1 AND r.deleted_at IS NULL",
                               2, (const char *[]){id, ek_req_scope(req)})
            : NULL;
    if (!err && !doc)
        err = ek_err_not_found("region", id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, status, "region", doc);
}

void r_regions_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(
        req->db, &list,
        "SELECT coalesce(jsonb_agg(" REGION_JSON("$1") " ORDER BY r.name), '[]') FROM regions r "
                                                       "WHERE r.deleted_at IS NULL",
        1, (const char *[]){ek_req_scope(req)});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "regions", list);
}

void r_regions_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *r;
    const char *name, *description;
    bool enabled;
    ek_err_t *err;
    if ((err = need_admin(req)) || (err = ek_req_body_object(req, "region", &r)) ||
        (err = ek_json_req_string(r, "region", "name", &name)) ||
        (err = ek_json_opt_string(r, "region", "description", "", &description)) ||
        (err = ek_json_opt_bool(r, "region", "enabled", true, &enabled)))
        EK_RESP_RETURN_ERR(resp, err);
    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    err = ek_db_query(req->db, NULL,
                      "INSERT INTO regions (id, name, description, enabled) VALUES ($1, $2, $3, "
                      "$4)",
                      4, (const char *[]){id, name, description, enabled ? "true" : "false"});
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        err = ek_err_new(EK_E_CONFLICT, "a region named '%s' already exists", name);
    }
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    region_show(req, resp, id, 201);
}

void r_regions_show(ek_req_t *req, ek_resp_t *resp)
{
    region_show(req, resp, req->arg[0], 200);
}

void r_regions_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *r, *has;
    const char *name = NULL, *description = NULL;
    bool enabled;
    ek_err_t *err;
    if ((err = need_admin(req)) || (err = ek_req_body_object(req, "region", &r)) ||
        (err = ek_json_opt_string(r, "region", "name", NULL, &name)) ||
        (err = ek_json_opt_string(r, "region", "description", NULL, &description)) ||
        (err = ek_json_opt_bool(r, "region", "enabled", true, &enabled)))
        EK_RESP_RETURN_ERR(resp, err);
    bool has_enabled = json_object_object_get_ex(r, "enabled", &has);
    PGresult *res;
    err = ek_db_query(
        req->db, &res,
        "UPDATE regions SET name = coalesce($2, name), description = coalesce($3, "
        "description), enabled = coalesce($4::bool, enabled), updated_at = now() "
        "WHERE id = $1 AND deleted_at IS NULL",
        4,
        (const char *[]){ek_uuid_is_valid(req->arg[0]) ? req->arg[0]
                                                       : "00000000-0000-0000-0000-000000000000",
                         name, description, has_enabled ? (enabled ? "true" : "false") : NULL});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("region", req->arg[0]));
    region_show(req, resp, req->arg[0], 200);
}

/* Soft-deletes a row of a global table by id; 404 when there is none. */
static void soft_delete(ek_req_t *req, ek_resp_t *resp, const char *sql, const char *what)
{
    ek_err_t *err = need_admin(req);
    PGresult *res;
    if (!err && !ek_uuid_is_valid(req->arg[0]))
        err = ek_err_not_found(what, req->arg[0]);
    if (!err)
        err = ek_db_query(req->db, &res, sql, 1, (const char *[]){req->arg[0]});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_not_found(what, req->arg[0]));
    ek_resp_json(resp, 204, NULL);
}

void r_regions_delete(ek_req_t *req, ek_resp_t *resp)
{
    soft_delete(req, resp,
                "UPDATE regions SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
                "region");
}

/* ---- services ---------------------------------------------------------------------- */

#define SERVICE_JSON                                                                               \
    "jsonb_build_object('id', s.id, 'host', s.host, 'binary', s.binary_name, 'topic', s.topic, "   \
    "'enabled', s.enabled, 'status', s.status, 'providers', s.providers, 'specs', s.specs, "       \
    "'capacity', s.capacity, 'running_tasks', s.running_tasks, 'last_heartbeat', "                 \
    "s.last_heartbeat, 'mapped_regions', coalesce((SELECT jsonb_agg(m.region_id) FROM "            \
    "service_regions m WHERE m.service_id = s.id), '[]'), 'created_at', s.created_at, "            \
    "'updated_at', s.updated_at)"

static void service_show(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc = NULL;
    ek_err_t *err = ek_uuid_is_valid(id)
                        ? ek_db_query_json(req->db, &doc,
                                           "SELECT " SERVICE_JSON " FROM services s WHERE s.id = "
                                           "$1 AND s.deleted_at IS NULL",
                                           1, (const char *[]){id})
                        : NULL;
    if (!err && !doc)
        err = ek_err_not_found("service", id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, status, "service", doc);
}

void r_services_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(req->db, &list,
                                     "SELECT coalesce(jsonb_agg(" SERVICE_JSON
                                     " ORDER BY s.host, s.binary_name), '[]') FROM services s "
                                     "WHERE s.deleted_at IS NULL",
                                     0, NULL);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "services", list);
}

static ek_err_t *set_service_regions(ek_req_t *req, const char *id, json_object *regions)
{
    ek_err_t *err = ek_db_query(req->db, NULL, "DELETE FROM service_regions WHERE service_id = $1",
                                1, (const char *[]){id});
    size_t n = regions ? json_object_array_length(regions) : 0;
    for (size_t i = 0; !err && i < n; i++) {
        const char *rid = json_object_get_string(json_object_array_get_idx(regions, i));
        if (!ek_uuid_is_valid(rid))
            return ek_err_new(EK_E_INVALID, "service.mapped_regions[%zu] must be a region id", i);
        err = ek_db_query(req->db, NULL,
                          "INSERT INTO service_regions (service_id, region_id) SELECT $1, id "
                          "FROM regions WHERE id = $2 AND deleted_at IS NULL",
                          2, (const char *[]){id, rid});
    }
    return err;
}

/* A service's row and regions, created or updated (a NULL enabled keeps it). */
struct service_tx {
    ek_req_t *req;
    const char *id, *host, *binary, *topic, *enabled;
    json_object *providers, *regions;
    bool set_regions;
};

static ek_err_t *service_create_tx(PGconn *db, void *arg)
{
    struct service_tx *t = arg;
    ek_err_t *err = ek_db_query(
        db, NULL,
        "INSERT INTO services (id, host, binary_name, topic, enabled, providers) VALUES ($1, $2, "
        "$3, $4, $5, $6)",
        6,
        (const char *[]){t->id, t->host, t->binary, t->topic, t->enabled,
                         t->providers ? json_object_to_json_string(t->providers) : "{}"});
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        return ek_err_new(EK_E_CONFLICT, "service %s on %s already exists", t->binary, t->host);
    }
    return err ? err : set_service_regions(t->req, t->id, t->regions);
}

static ek_err_t *service_update_tx(PGconn *db, void *arg)
{
    struct service_tx *t = arg;
    PGresult *res;
    ek_err_t *err = ek_db_query(db, &res,
                                "UPDATE services SET enabled = coalesce($2::bool, enabled), "
                                "updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
                                2, (const char *[]){t->id, t->enabled});
    if (err)
        return err;
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        return ek_err_not_found("service", t->id);
    return t->set_regions ? set_service_regions(t->req, t->id, t->regions) : NULL;
}

void r_services_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *s, *regions = NULL, *providers = NULL;
    const char *host, *binary, *topic;
    bool enabled;
    ek_err_t *err;
    if ((err = need_admin(req)) || (err = ek_req_body_object(req, "service", &s)) ||
        (err = ek_json_req_string(s, "service", "host", &host)) ||
        (err = ek_json_req_string(s, "service", "binary", &binary)) ||
        (err = ek_json_req_string(s, "service", "topic", &topic)) ||
        (err = ek_json_opt_bool(s, "service", "enabled", true, &enabled)) ||
        (err = ek_json_opt_array(s, "service", "mapped_regions", &regions)) ||
        (err = ek_json_opt_object(s, "service", "providers", &providers)))
        EK_RESP_RETURN_ERR(resp, err);
    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    struct service_tx t = {req,       id,      host, binary, topic, enabled ? "true" : "false",
                           providers, regions, true};
    if ((err = ek_db_tx(req->db, 0, service_create_tx, &t)))
        EK_RESP_RETURN_ERR(resp, err);
    service_show(req, resp, id, 201);
}

void r_services_show(ek_req_t *req, ek_resp_t *resp)
{
    service_show(req, resp, req->arg[0], 200);
}

void r_services_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *s, *regions = NULL, *has;
    bool enabled;
    ek_err_t *err;
    if ((err = need_admin(req)) || (err = ek_req_body_object(req, "service", &s)) ||
        (err = ek_json_opt_bool(s, "service", "enabled", true, &enabled)) ||
        (err = ek_json_opt_array(s, "service", "mapped_regions", &regions)))
        EK_RESP_RETURN_ERR(resp, err);
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("service", req->arg[0]));
    bool has_enabled = json_object_object_get_ex(s, "enabled", &has);
    struct service_tx t = {.req = req,
                           .id = req->arg[0],
                           .enabled = has_enabled ? (enabled ? "true" : "false") : NULL,
                           .regions = regions,
                           .set_regions = json_object_object_get_ex(s, "mapped_regions", &has)};
    if ((err = ek_db_tx(req->db, 0, service_update_tx, &t)))
        EK_RESP_RETURN_ERR(resp, err);
    service_show(req, resp, req->arg[0], 200);
}

void r_services_delete(ek_req_t *req, ek_resp_t *resp)
{
    soft_delete(req, resp,
                "UPDATE services SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
                "service");
}

/* ---- minion pools --------------------------------------------------------------------- */

#define POOL_JSON                                                                                  \
    "jsonb_build_object('id', p.id, 'name', p.name, 'endpoint_id', p.endpoint_id, 'platform', "    \
    "p.platform, 'os_type', p.os_type, 'environment_options', p.environment_options, "             \
    "'minimum_minions', p.minimum_minions, 'maximum_minions', p.maximum_minions, "                 \
    "'minion_max_idle_time', p.minion_max_idle_time, 'minion_retention_strategy', "                \
    "p.minion_retention_strategy, 'notes', p.notes, 'status', p.status, 'project_id', "            \
    "p.project_id, 'user_id', p.user_id, 'created_at', p.created_at, 'updated_at', "               \
    "p.updated_at, 'shared_resources', p.shared_resources, 'maintenance_trust_id', NULL, "         \
    "'events', '[]'::jsonb, 'progress_updates', '[]'::jsonb, 'minion_machines', "                  \
    "coalesce((SELECT jsonb_agg(jsonb_build_object('id', m.id, 'pool_id', m.pool_id, "             \
    "'allocation_status', m.allocation_status, 'allocated_action', m.allocated_action, "           \
    "'power_status', m.power_status, 'last_used_at', m.last_used_at, 'created_at', "               \
    "m.created_at, 'updated_at', m.updated_at) ORDER BY m.created_at) FROM minion_machines m "     \
    "WHERE m.pool_id = p.id AND m.deleted_at IS NULL), '[]'))"

static void pool_show(ek_req_t *req, ek_resp_t *resp, const char *id, unsigned status)
{
    json_object *doc = NULL;
    ek_err_t *err = ek_uuid_is_valid(id)
                        ? ek_db_query_json(req->db, &doc,
                                           "SELECT " POOL_JSON " FROM minion_pools p WHERE p.id = "
                                           "$1 AND p.deleted_at IS NULL AND ($2::uuid IS NULL OR "
                                           "p.project_id = $2)",
                                           2, (const char *[]){id, ek_req_scope(req)})
                        : NULL;
    if (!err && !doc)
        err = ek_err_not_found("minion pool", id);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, status, "minion_pool", doc);
}

void r_pools_list(ek_req_t *req, ek_resp_t *resp)
{
    json_object *list;
    ek_err_t *err = ek_db_query_json(req->db, &list,
                                     "SELECT coalesce(jsonb_agg(" POOL_JSON
                                     " ORDER BY p.created_at), '[]') FROM minion_pools p "
                                     "WHERE p.deleted_at IS NULL AND ($1::uuid IS NULL OR "
                                     "p.project_id = $1)",
                                     1, (const char *[]){ek_req_scope(req)});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    ek_resp_wrap(resp, 200, "minion_pools", list);
}

struct pool_fields {
    const char *name, *os_type, *retention, *notes;
    json_object *env;
    int64_t min, max, idle;
};

static ek_err_t *pool_fields(json_object *p, struct pool_fields *f, bool update)
{
    ek_err_t *err;
    if ((err = ek_json_opt_string(p, "minion_pool", "name", NULL, &f->name)) ||
        (err = ek_json_opt_string(p, "minion_pool", "os_type", update ? NULL : "linux",
                                  &f->os_type)) ||
        (err = ek_json_opt_string(p, "minion_pool", "minion_retention_strategy",
                                  update ? NULL : "delete", &f->retention)) ||
        (err = ek_json_opt_string(p, "minion_pool", "notes", update ? NULL : "", &f->notes)) ||
        (err = ek_json_opt_object(p, "minion_pool", "environment_options", &f->env)) ||
        (err = ek_json_opt_int(p, "minion_pool", "minimum_minions", update ? -1 : 1, &f->min)) ||
        (err = ek_json_opt_int(p, "minion_pool", "maximum_minions", update ? -1 : 1, &f->max)) ||
        (err = ek_json_opt_int(p, "minion_pool", "minion_max_idle_time", update ? -1 : 3600,
                               &f->idle)))
        return err;
    if (f->os_type && strcmp(f->os_type, "linux") && strcmp(f->os_type, "windows"))
        return ek_err_new(EK_E_INVALID, "minion_pool.os_type must be linux or windows");
    if (f->retention && strcmp(f->retention, "delete") && strcmp(f->retention, "poweroff"))
        return ek_err_new(EK_E_INVALID,
                          "minion_pool.minion_retention_strategy must be delete or poweroff");
    if ((f->min < 0 && f->min != -1) || (f->max < 1 && f->max != -1) ||
        (f->min >= 0 && f->max >= 0 && f->min > f->max))
        return ek_err_new(EK_E_INVALID, "minion_pool.minimum_minions must be between 0 and "
                                        "maximum_minions (at least 1)");
    if (f->idle < -1)
        return ek_err_new(EK_E_INVALID, "minion_pool.minion_max_idle_time must not be negative");
    return NULL;
}

void r_pools_create(ek_req_t *req, ek_resp_t *resp)
{
    json_object *p;
    const char *endpoint, *platform;
    struct pool_fields f = {0};
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "minion_pool", &p)) ||
        (err = ek_json_req_string(p, "minion_pool", "name", &f.name)) ||
        (err = ek_json_req_string(p, "minion_pool", "endpoint_id", &endpoint)) ||
        (err = ek_json_req_string(p, "minion_pool", "platform", &platform)) ||
        (err = pool_fields(p, &f, false)))
        EK_RESP_RETURN_ERR(resp, err);
    if (strcmp(platform, "source") && strcmp(platform, "destination"))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "minion_pool.platform must be source or destination"));
    if (!strcmp(platform, "source") && strcmp(f.os_type, "linux"))
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID, "minion_pool.os_type: source pools "
                                                          "must be linux"));
    PGresult *res;
    if (!ek_uuid_is_valid(endpoint))
        EK_RESP_RETURN_ERR(
            resp, ek_err_new(EK_E_INVALID, "minion_pool.endpoint_id must be an endpoint id"));
    if ((err = ek_db_query(req->db, &res,
                           "SELECT 1 FROM endpoints WHERE id = $1 AND deleted_at IS NULL AND "
                           "($2::uuid IS NULL OR project_id = $2)",
                           2, (const char *[]){endpoint, ek_req_scope(req)})))
        EK_RESP_RETURN_ERR(resp, err);
    int n = PQntuples(res);
    PQclear(res);
    if (!n)
        EK_RESP_RETURN_ERR(
            resp,
            ek_err_new(EK_E_INVALID, "minion_pool.endpoint_id: endpoint %s not found", endpoint));
    char id[EK_UUID_STRLEN + 1], min[24], max[24], idle[24];
    ek_uuid_generate(id);
    snprintf(min, sizeof(min), "%lld", (long long)f.min);
    snprintf(max, sizeof(max), "%lld", (long long)f.max);
    snprintf(idle, sizeof(idle), "%lld", (long long)f.idle);
    err =
        ek_db_query(req->db, NULL,
                    "INSERT INTO minion_pools (id, project_id, user_id, name, endpoint_id, "
                    "platform, os_type, environment_options, minimum_minions, maximum_minions, "
                    "minion_max_idle_time, minion_retention_strategy, notes) VALUES ($1, $2, "
                    "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    13,
                    (const char *[]){id, req->project_id, req->user_id, f.name, endpoint, platform,
                                     f.os_type, f.env ? json_object_to_json_string(f.env) : "{}",
                                     min, max, idle, f.retention, f.notes});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    pool_show(req, resp, id, 201);
}

void r_pools_show(ek_req_t *req, ek_resp_t *resp)
{
    pool_show(req, resp, req->arg[0], 200);
}

void r_pools_update(ek_req_t *req, ek_resp_t *resp)
{
    json_object *p;
    struct pool_fields f = {0};
    ek_err_t *err;
    if ((err = ek_req_body_object(req, "minion_pool", &p)) || (err = pool_fields(p, &f, true)))
        EK_RESP_RETURN_ERR(resp, err);
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("minion pool", req->arg[0]));
    char min[24], max[24], idle[24];
    snprintf(min, sizeof(min), "%lld", (long long)f.min);
    snprintf(max, sizeof(max), "%lld", (long long)f.max);
    snprintf(idle, sizeof(idle), "%lld", (long long)f.idle);
    PGresult *res;
    err = ek_db_query(
        req->db, &res,
        "UPDATE minion_pools SET name = coalesce($3, name), os_type = coalesce($4, os_type), "
        "minion_retention_strategy = coalesce($5, minion_retention_strategy), notes = "
        "coalesce($6, notes), environment_options = coalesce($7::jsonb, environment_options), "
        "minimum_minions = CASE WHEN $8::int >= 0 THEN $8::int ELSE minimum_minions END, "
        "maximum_minions = CASE WHEN $9::int >= 0 THEN $9::int ELSE maximum_minions END, "
        "minion_max_idle_time = CASE WHEN $10::int >= 0 THEN $10::int ELSE minion_max_idle_time "
        "END, updated_at = now() WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR "
        "project_id = $2) AND (CASE WHEN $8::int >= 0 THEN $8::int ELSE minimum_minions END) <= "
        "(CASE WHEN $9::int >= 0 THEN $9::int ELSE maximum_minions END)",
        10,
        (const char *[]){req->arg[0], ek_req_scope(req), f.name, f.os_type, f.retention, f.notes,
                         f.env ? json_object_to_json_string(f.env) : NULL, min, max, idle});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND,
                                            "minion pool %s not found (or minimum_minions would "
                                            "exceed maximum_minions)",
                                            req->arg[0]));
    pool_show(req, resp, req->arg[0], 200);
}

void r_pools_delete(ek_req_t *req, ek_resp_t *resp)
{
    PGresult *res;
    if (!ek_uuid_is_valid(req->arg[0]))
        EK_RESP_RETURN_ERR(resp, ek_err_not_found("minion pool", req->arg[0]));
    ek_err_t *err = ek_db_query(
        req->db, &res,
        "UPDATE minion_pools p SET deleted_at = now() WHERE p.id = $1 AND p.deleted_at IS NULL "
        "AND ($2::uuid IS NULL OR p.project_id = $2) AND NOT EXISTS (SELECT 1 FROM transfers t "
        "WHERE t.deleted_at IS NULL AND (t.origin_minion_pool_id = p.id OR "
        "t.destination_minion_pool_id = p.id))",
        2, (const char *[]){req->arg[0], ek_req_scope(req)});
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    bool found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!found)
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_NOTFOUND,
                                            "minion pool %s not found (or a transfer uses it)",
                                            req->arg[0]));
    ek_resp_json(resp, 204, NULL);
}

/* ---- diagnostics ------------------------------------------------------------------------- */

/* The host's addresses as Coriolis lists them: [{"eth0": {"ipv4": [{"addr",
 * "netmask", "broadcast"}], "ipv6": [{"addr", "netmask"}]}}], without the
 * loopback interface; a family without address is null. */
static json_object *ip_addresses(void)
{
    json_object *by_if = json_object_new_object(), *list = json_object_new_array();
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return list;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_name || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        json_object *fams;
        if (!json_object_object_get_ex(by_if, i->ifa_name, &fams)) {
            fams = json_object_new_object();
            json_object_object_add(fams, "ipv4", NULL);
            json_object_object_add(fams, "ipv6", NULL);
            json_object_object_add(by_if, i->ifa_name, fams);
        }
        int fam = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        char addr[INET6_ADDRSTRLEN] = "", mask[INET6_ADDRSTRLEN] = "", bcast[INET_ADDRSTRLEN] = "";
        const void *a = fam == AF_INET
                            ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        inet_ntop(fam, a, addr, sizeof(addr));
        if (i->ifa_netmask)
            inet_ntop(fam,
                      fam == AF_INET
                          ? (const void *)&((struct sockaddr_in *)i->ifa_netmask)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr,
                      mask, sizeof(mask));
        if (fam == AF_INET && (i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr)
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_broadaddr)->sin_addr, bcast,
                      sizeof(bcast));
        json_object *x = json_object_new_object();
        json_object_object_add(x, "addr", json_object_new_string(addr));
        if (*mask)
            json_object_object_add(x, "netmask", json_object_new_string(mask));
        if (*bcast)
            json_object_object_add(x, "broadcast", json_object_new_string(bcast));
        const char *key = fam == AF_INET ? "ipv4" : "ipv6";
        json_object *arr = json_object_object_get(fams, key);
        if (!arr) {
            arr = json_object_new_array();
            json_object_object_add(fams, key, arr);
        }
        json_object_array_add(arr, x);
    }
    freeifaddrs(ifs);
    json_object_object_foreach(by_if, name, fams)
    {
        json_object *one = json_object_new_object();
        json_object_object_add(one, name, json_object_get(fams));
        json_object_array_add(list, one);
    }
    json_object_put(by_if);
    return list;
}

static void add_package(json_object *list, const char *name, const char *version)
{
    char *s = ek_xasprintf("%s==%s", name, version && *version ? version : "unknown");
    json_object_array_add(list, json_object_new_string(s));
    free(s);
}

/* The versions of the conductor and of the libraries it runs with (the
 * loaded ones, not those it was built against), "name==version" as
 * Coriolis's pip freeze. */
static json_object *packages(const char *pg_server)
{
    json_object *list = json_object_new_array();
    char v[64];
    add_package(list, "ekman", EKMAN_VERSION);
    add_package(list, "glibc", gnu_get_libc_version());
    add_package(list, "json-c", json_c_version());
    int pq = PQlibVersion();
    snprintf(v, sizeof(v), "%d.%d", pq / 10000, pq % 10000);
    add_package(list, "libpq", v);
    add_package(list, "libmicrohttpd", MHD_get_version());
    add_package(list, "librabbitmq", amqp_version());
    add_package(list, "openssl", OpenSSL_version(OPENSSL_VERSION_STRING));
    add_package(list, "postgresql-server", pg_server);
    return list;
}

/* The lines of /etc/os-release (Coriolis's os_info), then the kernel's. */
static json_object *os_info(void)
{
    json_object *list = json_object_new_array();
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        f = fopen("/usr/lib/os-release", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (*line)
            json_object_array_add(list, json_object_new_string(line));
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0) {
        char *k =
            ek_xasprintf("KERNEL=\"%s %s %s %s\"", u.sysname, u.release, u.version, u.machine);
        json_object_array_add(list, json_object_new_string(k));
        free(k);
    }
    return list;
}

/* Host names and versions help an attacker: for admins (operators) only. */
void r_diagnostics(ek_req_t *req, ek_resp_t *resp)
{
    if (!req->is_admin) {
        ek_resp_fail(resp, 403, "only an admin may read diagnostics");
        return;
    }
    json_object *services = NULL;
    ek_err_t *err = ek_db_query_json(req->db, &services,
                                     "SELECT coalesce(jsonb_agg(jsonb_build_object('host', host, "
                                     "'binary', binary_name, 'status', status, 'last_heartbeat', "
                                     "last_heartbeat) ORDER BY host), '[]') FROM services WHERE "
                                     "deleted_at IS NULL",
                                     0, NULL);
    if (err)
        EK_RESP_RETURN_ERR(resp, err);
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "application", json_object_new_string("ekman-conductor"));
    json_object_object_add(d, "hostname", json_object_new_string(host));
    json_object_object_add(d, "pid", json_object_new_int((int)getpid()));
    json_object_object_add(d, "version", json_object_new_string(EKMAN_VERSION));
    json_object_object_add(d, "release_tag", json_object_new_string(EKMAN_VERSION));
    char *pgver = ek_db_server_version(req->db);
    json_object_object_add(d, "database_version", json_object_new_string(pgver));
    json_object_object_add(d, "ip_addresses", ip_addresses());
    json_object_object_add(d, "packages", packages(pgver));
    json_object_object_add(d, "os_info", os_info());
    free(pgver);
    json_object_object_add(d, "services", services);
    json_object *list = json_object_new_array();
    json_object_array_add(list, d);
    ek_resp_wrap(resp, 200, "diagnostics", list);
}
