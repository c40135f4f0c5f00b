/* migrate.h - numbered SQL schema migrations (engine/migrations/NNN_*.sql),
 * embedded in the binary and applied at start-up under an advisory lock, so
 * that several conductors starting at once apply each migration exactly once. */
#ifndef EK_ENGINE_MIGRATE_H
#define EK_ENGINE_MIGRATE_H

#include <libpq-fe.h>
#include "common/error.h"

typedef struct ek_migration {
    int version;
    const char *name;
    const char *sql;
} ek_migration_t;

extern const ek_migration_t ek_migrations[];

/* Applies the migrations the database lacks; returns how many in *applied. */
EK_ERR_CHECK ek_migrate(PGconn *conn, int *applied);

#endif
