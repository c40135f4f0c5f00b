/* db.h - PostgreSQL access (libpq) for the conductor and the scheduler.
 *
 * Connections come from a fixed pool; queries are always parameterised. A
 * failed statement becomes an ek_err_t whose code says what kind of failure it
 * was (EK_E_CONFLICT for a unique violation, EK_E_UNAVAILABLE for a lost
 * connection, ...). Connecting retries with back-off until [database]
 * connect_timeout, because a service started together with its database must
 * not die in the race. */
#ifndef EK_DB_H
#define EK_DB_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "common/config.h"
#include "common/error.h"

/* Connects to uri, retrying for up to timeout_s seconds. */
EK_ERR_CHECK ek_db_connect(const char *uri, int timeout_s, PGconn **out);
/* Connects with [database] connection and connect_timeout. */
EK_ERR_CHECK ek_db_connect_config(const ek_config_t *cfg, PGconn **out);
/* Runs a statement without parameters; rows, if any, are dropped. */
EK_ERR_CHECK ek_db_exec(PGconn *conn, const char *sql);
/* Runs a parameterised statement (text parameters, NULL is SQL NULL). On
 * success *res holds the result (caller PQclear()s it; res may be NULL). */
EK_ERR_CHECK ek_db_query(PGconn *conn, PGresult **res, const char *sql, int n,
                         const char *const *params);
/* Runs a statement that returns one row with one json/jsonb column (or no row:
 * *out is then NULL) and parses it. */
EK_ERR_CHECK ek_db_query_json(PGconn *conn, json_object **out, const char *sql, int n,
                              const char *const *params);
/* A transaction's body: what it does in the database through db. */
typedef ek_err_t *(*ek_db_tx_fn)(PGconn *db, void *arg);
/* Runs fn(db, arg) between BEGIN and COMMIT; an error of fn or of the COMMIT
 * rolls back and is returned. When PostgreSQL reports a deadlock or a
 * serialization failure (EK_E_RETRY) the whole transaction runs again, up to
 * retries more times: only for bodies whose effects are all in the database
 * (pass 0 for one that publishes or answers while it runs). The one way
 * Ekman opens a transaction. */
EK_ERR_CHECK ek_db_tx(PGconn *db, int retries, ek_db_tx_fn fn, void *arg);
/* The server's version string ("15.20"), newly allocated. */
char *ek_db_server_version(PGconn *conn);

/* A fixed set of connections shared by threads. */
typedef struct ek_dbpool ek_dbpool_t;
EK_ERR_CHECK ek_dbpool_new(const ek_config_t *cfg, int size, ek_dbpool_t **out);
/* Blocks until a connection is free. A connection that broke is re-opened. */
EK_ERR_CHECK ek_dbpool_get(ek_dbpool_t *pool, PGconn **out);
/* Returns a connection; one left inside a transaction is rolled back. */
void ek_dbpool_put(ek_dbpool_t *pool, PGconn *conn);
void ek_dbpool_free(ek_dbpool_t *pool);

#endif
