/* migrate.c - applies the embedded schema migrations, each in its own
 * transaction, under a PostgreSQL advisory lock. */
#include "conductor/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include "common/db.h"
#include "common/log.h"

/* An arbitrary constant: "ekman" in ASCII. */
#define MIGRATION_LOCK_ID "435325468014"

ek_err_t *ek_migrate(PGconn *conn, int *applied)
{
    ek_err_t *err;
    *applied = 0;
    if ((err = ek_db_exec(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_ID ")")))
        return err;
    err = ek_db_exec(conn, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version integer PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())");
    for (const ek_migration_t *m = ek_migrations; !err && m->sql; m++) {
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        PGresult *res = NULL;
        err = ek_db_query(conn, &res, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                          (const char *[]){version});
        bool done = !err && PQntuples(res) > 0;
        PQclear(res);
        if (err || done)
            continue;
        if ((err = ek_db_exec(conn, "BEGIN")))
            break;
        err = ek_db_exec(conn, m->sql);
        if (!err)
            err = ek_db_query(conn, &res,
                              "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                              (const char *[]){version, m->name});
        PQclear(res);
        if (err) {
            ek_err_free(ek_db_exec(conn, "ROLLBACK"));
            err = ek_err_prefix(err, "schema migration %03d_%s", m->version, m->name);
            break;
        }
        if ((err = ek_db_exec(conn, "COMMIT")))
            break;
        ek_info("applied schema migration %03d_%s", m->version, m->name);
        (*applied)++;
    }
    ek_err_t *unlock = ek_db_exec(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_ID ")");
    if (err) {
        ek_err_free(unlock);
        return err;
    }
    return unlock;
}
