/* accounts.h - Ekman's built-in accounts: projects, users (scrypt password
 * hashes) and bearer tokens (only their SHA-256 is stored). */
#ifndef EK_CONDUCTOR_ACCOUNTS_H
#define EK_CONDUCTOR_ACCOUNTS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include "common/error.h"
#include "common/uuid.h"

/* Finds a project by id or name, creating it (by name) when create is set.
 * out receives the id (37 bytes). */
EK_ERR_CHECK ek_project_ensure(PGconn *db, const char *name_or_id, bool create, char *out);
/* Checks a new user's name (1-255 bytes), password (8-1024) and role. */
EK_ERR_CHECK ek_user_check(const char *name, const char *password, const char *role);
/* Creates a user whose password the caller hashed (ek_password_hash, off the
 * API threads); the arguments were checked with ek_user_check. */
EK_ERR_CHECK ek_user_create_hashed(PGconn *db, const char *name, const char *hash,
                                   const char *project, const char *role, char *out_id);
/* Creates a user (role "admin" or "member") in a project (id or name, created
 * if missing); out_id receives the new id. A taken name is EK_E_CONFLICT.
 * Hashes the password here (0.4 s): for the command line. */
EK_ERR_CHECK ek_user_create(PGconn *db, const char *name, const char *password, const char *project,
                            const char *role, char *out_id);
/* An enabled user as a login needs it. */
typedef struct ek_account {
    char id[EK_UUID_STRLEN + 1];
    char project_id[EK_UUID_STRLEN + 1];
    char *name, *project_name, *role;
    char *password_hash; /* "scrypt$N$r$p$salt$hash" */
} ek_account_t;

/* Finds an enabled user by name; *out is NULL (and no error) when there is
 * none. The caller frees *out with ek_account_free. */
EK_ERR_CHECK ek_account_find(PGconn *db, const char *username, ek_account_t **out);
/* The same by user id (any text: one that is not a UUID finds nobody). */
EK_ERR_CHECK ek_account_find_id(PGconn *db, const char *user_id, ek_account_t **out);
void ek_account_free(ek_account_t *acc);
/* Issues a token valid for lifetime_s seconds to acc, whose password the
 * caller checked. token_doc is the API's view; *token the secret (caller
 * frees both). */
EK_ERR_CHECK ek_token_issue(PGconn *db, const ek_account_t *acc, int lifetime_s,
                            json_object **token_doc, char **token);

/* Finds a project by id (id != NULL) or by name; *found false when there is
 * none. out_id receives the id (37 bytes), *out_name the name (caller frees). */
EK_ERR_CHECK ek_project_find(PGconn *db, const char *id, const char *name, bool *found,
                             char *out_id, char **out_name);

/* What a token grants, as the Keystone v3 facade shows it. */
typedef struct ek_token_info {
    char user_id[EK_UUID_STRLEN + 1];
    char project_id[EK_UUID_STRLEN + 1]; /* the user's own project when unscoped */
    char *user_name, *project_name;
    bool is_admin;   /* the token's: false when unscoped */
    bool user_admin; /* the user's role is admin */
    bool scoped;
    char issued_at[32], expires_at[32]; /* UTC, "2024-05-01T10:00:00.000000Z" */
    char audit_id[23];                  /* names the token without revealing it */
} ek_token_info_t;

void ek_token_info_release(ek_token_info_t *info);
/* Issues a token of acc's user for acc->project_id (the caller may have set it
 * to another project an admin scoped to), scoped or not (unscoped tokens carry
 * no admin right and reach no project route). It ends expires_at (a re-scoped
 * token keeps its parent's end; ISO 8601) or, when NULL, after lifetime_s. */
EK_ERR_CHECK ek_token_grant(PGconn *db, const ek_account_t *acc, bool scoped,
                            const char *expires_at, int lifetime_s, char **token,
                            ek_token_info_t *info);
/* Looks a token up: EK_E_NOTFOUND when it is unknown, expired or its user is
 * disabled. */
EK_ERR_CHECK ek_token_lookup(PGconn *db, const char *token, ek_token_info_t *info);
/* Revokes a token; *found false when it was not valid. */
EK_ERR_CHECK ek_token_revoke(PGconn *db, const char *token, bool *found);

#endif
