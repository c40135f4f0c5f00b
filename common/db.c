/* db.c - libpq connection set-up with retries and readable errors. */
#include "common/db.h"

#include <string.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/redact.h"

/* libpq messages end with a newline; errors read better without it. */
static char *pq_message(PGconn *conn)
{
    char *m = ek_xstrdup(conn ? PQerrorMessage(conn) : "out of memory");
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        m[--n] = '\0';
    return m;
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
            free(shown);
            *out = conn;
            return NULL;
        }
        char *msg = pq_message(conn);
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

ek_err_t *ek_db_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    ek_err_t *err = NULL;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char *msg = pq_message(conn);
        err = ek_err_new(EK_E_INTERNAL, "database statement failed: %s", msg);
        free(msg);
    }
    PQclear(res);
    return err;
}

char *ek_db_server_version(PGconn *conn)
{
    int v = PQserverVersion(conn);
    return ek_xasprintf("%d.%d", v / 10000, v % 10000);
}
