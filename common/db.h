/* db.h - PostgreSQL connections (libpq) for the conductor and the scheduler.
 *
 * Connecting retries with back-off until [database] connect_timeout, because a
 * service started together with its database must not die in the race. */
#ifndef EK_DB_H
#define EK_DB_H

#include <libpq-fe.h>
#include "common/config.h"
#include "common/error.h"

/* Connects to uri, retrying for up to timeout_s seconds. */
EK_ERR_CHECK ek_db_connect(const char *uri, int timeout_s, PGconn **out);
/* Connects with [database] connection and connect_timeout. */
EK_ERR_CHECK ek_db_connect_config(const ek_config_t *cfg, PGconn **out);
/* Runs a statement that returns no rows. */
EK_ERR_CHECK ek_db_exec(PGconn *conn, const char *sql);
/* The server's version string ("15.20"), newly allocated. */
char *ek_db_server_version(PGconn *conn);

#endif
