/* db.c - libpq connections, parameterised queries, a connection pool. */
#include "common/db.h"

#include <pthread.h>
#include <string.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/redact.h"

/* libpq messages end with a newline; errors read better without it. */
static char *pq_message(const char *m)
{
    char *s = ek_xstrdup(m ? m : "out of memory");
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    return s;
}

/* Server notices ("relation already exists, skipping") go to the debug log. */
static void on_notice(void *arg, const char *message)
{
    char *m = pq_message(message);
    ek_debug("database notice: %s", m);
    free(m);
}

ek_err_t *ek_db_connect(const char *uri, int timeout_s, PGconn **out)
{
    char *shown = ek_redact_url(uri);
    int delay_ms = 100;
    int waited_ms = 0;
    *out = NULL;
    for (;;) {
        PGconn *conn = PQconnectdb(uri);
        if (conn && PQstatus(conn) == CONNECTION_OK) {
            PQsetNoticeProcessor(conn, on_notice, NULL);
            free(shown);
            *out = conn;
            return NULL;
        }
        char *msg = pq_message(conn ? PQerrorMessage(conn) : NULL);
        PQfinish(conn);
        /* a refused password will not get better by waiting */
        bool fatal = strstr(msg, "password authentication failed") ||
                     strstr(msg, "does not exist") || strstr(msg, "invalid");
        if (fatal || waited_ms >= timeout_s * 1000 || ek_stop_requested()) {
            ek_err_t *err = ek_err_new(EK_E_UNAVAILABLE,
                                       "could not connect to the database %s: %s (check "
                                       "[database] connection)",
                                       shown, msg);
            free(msg);
            free(shown);
            return err;
        }
        ek_debug("database not ready, retrying in %d ms: %s", delay_ms, msg);
        free(msg);
        if (ek_stop_wait(delay_ms))
            continue;
        waited_ms += delay_ms;
        delay_ms = delay_ms < 2000 ? delay_ms * 2 : 2000;
    }
}

ek_err_t *ek_db_connect_config(const ek_config_t *cfg, PGconn **out)
{
    return ek_db_connect(ek_config_get_string(cfg, "database", "connection"),
                         (int)ek_config_get_int(cfg, "database", "connect_timeout"), out);
}

/* Turns a failed result into an error classified by its SQLSTATE. */
static ek_err_t *result_error(PGconn *conn, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *msg = pq_message(res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                             : PQerrorMessage(conn));
    ek_errcode_t code = EK_E_INTERNAL;
    if (PQstatus(conn) != CONNECTION_OK)
        code = EK_E_UNAVAILABLE;
    else if (state && strcmp(state, "23505") == 0)
        code = EK_E_CONFLICT; /* unique_violation */
    else if (state && (strcmp(state, "23503") == 0 || strcmp(state, "22P02") == 0 ||
                       strcmp(state, "23514") == 0))
        code = EK_E_INVALID; /* foreign key, bad text representation, check */
    else if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        code = EK_E_RETRY; /* serialization failure, deadlock */
    ek_err_t *err = ek_err_new(code, "database: %s", msg);
    free(msg);
    return err;
}

ek_err_t *ek_db_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    ek_err_t *err = NULL;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = result_error(conn, res);
    PQclear(res);
    return err;
}

ek_err_t *ek_db_query(PGconn *conn, PGresult **out, const char *sql, int n,
                      const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ek_err_t *err = result_error(conn, res);
        PQclear(res);
        if (out)
            *out = NULL;
        return err;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return NULL;
}

ek_err_t *ek_db_query_json(PGconn *conn, json_object **out, const char *sql, int n,
                           const char *const *params)
{
    PGresult *res;
    *out = NULL;
    ek_err_t *err = ek_db_query(conn, &res, sql, n, params);
    if (err)
        return err;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        const char *v = PQgetvalue(res, 0, 0);
        err = ek_json_parse(v, strlen(v), out);
    }
    PQclear(res);
    return err;
}

char *ek_db_server_version(PGconn *conn)
{
    int v = PQserverVersion(conn);
    return ek_xasprintf("%d.%d", v / 10000, v % 10000);
}

/* ---- pool ------------------------------------------------------------------ */

struct ek_dbpool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *uri;
    int timeout_s;
    int size, n_free;
    PGconn **free_conns;
};

ek_err_t *ek_dbpool_new(const ek_config_t *cfg, int size, ek_dbpool_t **out)
{
    ek_dbpool_t *pool = ek_xcalloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    pool->uri = ek_xstrdup(ek_config_get_string(cfg, "database", "connection"));
    pool->timeout_s = (int)ek_config_get_int(cfg, "database", "connect_timeout");
    pool->size = size;
    pool->free_conns = ek_xcalloc((size_t)size, sizeof(PGconn *));
    for (int i = 0; i < size; i++) {
        PGconn *c;
        ek_err_t *err = ek_db_connect(pool->uri, pool->timeout_s, &c);
        if (err) {
            ek_dbpool_free(pool);
            return err;
        }
        pool->free_conns[pool->n_free++] = c;
    }
    *out = pool;
    return NULL;
}

ek_err_t *ek_dbpool_get(ek_dbpool_t *pool, PGconn **out)
{
    pthread_mutex_lock(&pool->lock);
    while (pool->n_free == 0)
        pthread_cond_wait(&pool->freed, &pool->lock);
    PGconn *c = pool->free_conns[--pool->n_free];
    pthread_mutex_unlock(&pool->lock);
    if (PQstatus(c) != CONNECTION_OK) {
        PQreset(c);
        if (PQstatus(c) != CONNECTION_OK) {
            char *msg = pq_message(PQerrorMessage(c));
            ek_err_t *err = ek_err_new(EK_E_UNAVAILABLE, "the database is unreachable: %s", msg);
            free(msg);
            ek_dbpool_put(pool, c);
            return err;
        }
    }
    *out = c;
    return NULL;
}

void ek_dbpool_put(ek_dbpool_t *pool, PGconn *conn)
{
    if (!conn)
        return;
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        ek_err_free(ek_db_exec(conn, "ROLLBACK"));
    pthread_mutex_lock(&pool->lock);
    pool->free_conns[pool->n_free++] = conn;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

void ek_dbpool_free(ek_dbpool_t *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->n_free; i++)
        PQfinish(pool->free_conns[i]);
    free(pool->free_conns);
    free(pool->uri);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool);
}

ek_err_t *ek_db_tx(PGconn *db, int retries, ek_db_tx_fn fn, void *arg)
{
    for (int attempt = 0;; attempt++) {
        ek_err_t *err = ek_db_exec(db, "BEGIN");
        if (!err)
            err = fn(db, arg);
        if (!err)
            err = ek_db_exec(db, "COMMIT");
        if (!err)
            return NULL;
        if (PQstatus(db) == CONNECTION_OK && PQtransactionStatus(db) != PQTRANS_IDLE)
            ek_err_free(ek_db_exec(db, "ROLLBACK"));
        if (err->code != EK_E_RETRY || attempt >= retries)
            return err;
        ek_err_free(err);
    }
}
