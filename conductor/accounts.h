/* accounts.h - Ekman's built-in accounts: projects, users (scrypt password
 * hashes) and bearer tokens (only their SHA-256 is stored). */
#ifndef EK_CONDUCTOR_ACCOUNTS_H
#define EK_CONDUCTOR_ACCOUNTS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "common/error.h"

/* Finds a project by id or name, creating it (by name) when create is set.
 * out receives the id (37 bytes). */
EK_ERR_CHECK ek_project_ensure(PGconn *db, const char *name_or_id, bool create, char *out);
/* Creates a user (role "admin" or "member") in a project (id or name, created
 * if missing); out_id receives the new id. A taken name is EK_E_CONFLICT. */
EK_ERR_CHECK ek_user_create(PGconn *db, const char *name, const char *password,
                            const char *project, const char *role, char *out_id);
/* Checks a password and issues a token valid for lifetime_s seconds. */
EK_ERR_CHECK ek_token_issue(PGconn *db, const char *username, const char *password,
                            int lifetime_s, json_object **token_doc, char **token);

#endif
