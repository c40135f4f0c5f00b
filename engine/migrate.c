/* migrate.c - applies the embedded schema migrations, each in its own
 * transaction, under a PostgreSQL advisory lock. */
#include "engine/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include "common/db.h"
#include "common/log.h"

/* An arbitrary constant: "ekman" in ASCII. */
#define MIGRATION_LOCK_ID "435325468014"

/* One migration and its row in schema_migrations, together. */
struct migration_tx {
    const ek_migration_t *m;
    const char *version;
};

static ek_err_t *migration_tx(PGconn *db, void *arg)
{
    struct migration_tx *t = arg;
    ek_err_t *err = ek_db_exec(db, t->m->sql);
    return err ? err
               : ek_db_query(db, NULL,
                             "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                             (const char *[]){t->version, t->m->name});
}

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
        struct migration_tx t = {m, version};
        if ((err = ek_db_tx(conn, 0, migration_tx, &t))) {
            err = ek_err_prefix(err, "schema migration %03d_%s", m->version, m->name);
            break;
        }
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
