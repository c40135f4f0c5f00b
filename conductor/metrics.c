/* metrics.c - GET /metrics in the Prometheus text format: this conductor's
 * counters, and gauges of executions, tasks and services read from the database. */
#include <stdio.h>
#include "common/db.h"
#include "common/strbuf.h"
#include "conductor/routes.h"

static void gauge_rows(ek_strbuf_t *out, PGconn *db, const char *name, const char *help,
                       const char *sql)
{
    PGresult *res;
    ek_strbuf_addf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    ek_err_t *err = ek_db_query(db, &res, sql, 0, NULL);
    if (err) {
        ek_err_free(err);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        ek_strbuf_addf(out, "%s{status=\"%s\"} %s\n", name, PQgetvalue(res, i, 0),
                       PQgetvalue(res, i, 1));
    PQclear(res);
}

void r_metrics(ek_req_t *req, ek_resp_t *resp)
{
    ek_app_t *app = req->app;
    ek_strbuf_t out = EK_STRBUF_INIT;
    ek_strbuf_adds(&out, "# HELP ekman_http_requests_total API requests answered, by status "
                         "class.\n# TYPE ekman_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        ek_strbuf_addf(&out, "ekman_http_requests_total{code=\"%dxx\"} %lu\n", c,
                       atomic_load(&app->http_requests[c]));
    ek_strbuf_addf(&out,
                   "# HELP ekman_tasks_dispatched_total Tasks published to workers.\n"
                   "# TYPE ekman_tasks_dispatched_total counter\nekman_tasks_dispatched_total "
                   "%lu\n"
                   "# HELP ekman_reports_handled_total Worker reports applied.\n"
                   "# TYPE ekman_reports_handled_total counter\nekman_reports_handled_total %lu\n"
                   "# HELP ekman_messages_dead_lettered_total Malformed messages dead-lettered.\n"
                   "# TYPE ekman_messages_dead_lettered_total counter\n"
                   "ekman_messages_dead_lettered_total %lu\n",
                   atomic_load(&app->tasks_dispatched), atomic_load(&app->reports_handled),
                   atomic_load(&app->messages_dead_lettered));
    gauge_rows(&out, req->db, "ekman_executions", "Executions by status.",
               "SELECT status, count(*) FROM executions WHERE deleted_at IS NULL GROUP BY status");
    gauge_rows(&out, req->db, "ekman_tasks", "Tasks of unfinished executions by status.",
               "SELECT t.status, count(*) FROM tasks t JOIN executions e ON e.id = t.execution_id "
               "WHERE e.finished_at IS NULL GROUP BY t.status");
    gauge_rows(&out, req->db, "ekman_services", "Registered services by status.",
               "SELECT status, count(*) FROM services WHERE deleted_at IS NULL GROUP BY status");
    resp->status = 200;
    resp->text = ek_strbuf_detach(&out);
}
