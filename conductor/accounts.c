/* accounts.c - projects, users and tokens in PostgreSQL. */
#include "conductor/accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/mem.h"
#include "common/secret.h"
#include "common/uuid.h"

ek_err_t *ek_project_ensure(PGconn *db, const char *name_or_id, bool create, char *out)
{
    PGresult *res;
    bool is_id = ek_uuid_is_valid(name_or_id);
    ek_err_t *err = ek_db_query(db, &res,
                                is_id ? "SELECT id FROM projects WHERE id = $1"
                                      : "SELECT id FROM projects WHERE name = $1",
                                1, (const char *[]){name_or_id});
    if (err)
        return err;
    if (PQntuples(res) == 1) {
        snprintf(out, EK_UUID_STRLEN + 1, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    if (!create || is_id)
        return ek_err_new(EK_E_NOTFOUND, "project %s not found", name_or_id);
    char id[EK_UUID_STRLEN + 1];
    ek_uuid_generate(id);
    err = ek_db_query(db, NULL,
                      "INSERT INTO projects (id, name) VALUES ($1, $2) "
                      "ON CONFLICT (name) DO NOTHING",
                      2, (const char *[]){id, name_or_id});
    if (err)
        return err;
    return ek_project_ensure(db, name_or_id, false, out); /* whoever won the race */
}

ek_err_t *ek_user_check(const char *name, const char *password, const char *role)
{
    if (!*name || strlen(name) > 255)
        return ek_err_new(EK_E_INVALID, "the user name must have 1 to 255 characters");
    if (strlen(password) < 8 || strlen(password) > 1024)
        return ek_err_new(EK_E_INVALID, "the password must have 8 to 1024 characters");
    if (strcmp(role, "admin") && strcmp(role, "member"))
        return ek_err_new(EK_E_INVALID, "role must be admin or member, not '%s'", role);
    return NULL;
}

ek_err_t *ek_user_create_hashed(PGconn *db, const char *name, const char *hash, const char *project,
                                const char *role, char *out_id)
{
    char project_id[EK_UUID_STRLEN + 1];
    ek_err_t *err = ek_project_ensure(db, project, true, project_id);
    if (err)
        return err;
    ek_uuid_generate(out_id);
    err = ek_db_query(db, NULL,
                      "INSERT INTO users (id, name, password_hash, project_id, role) "
                      "VALUES ($1, $2, $3, $4, $5)",
                      5, (const char *[]){out_id, name, hash, project_id, role});
    if (err && err->code == EK_E_CONFLICT) {
        ek_err_free(err);
        return ek_err_new(EK_E_CONFLICT, "a user named '%s' already exists", name);
    }
    return err;
}

ek_err_t *ek_user_create(PGconn *db, const char *name, const char *password, const char *project,
                         const char *role, char *out_id)
{
    ek_err_t *err = ek_user_check(name, password, role);
    if (err)
        return err;
    char *hash = ek_password_hash(password);
    err = ek_user_create_hashed(db, name, hash, project, role, out_id);
    free(hash);
    return err;
}

void ek_account_free(ek_account_t *acc)
{
    if (!acc)
        return;
    free(acc->name);
    free(acc->project_name);
    free(acc->role);
    ek_free_secret(acc->password_hash);
    free(acc);
}

/* The enabled user whose column (name or id) is key. */
static ek_err_t *account_by(PGconn *db, bool by_id, const char *key, ek_account_t **out)
{
    *out = NULL;
    if (by_id && !ek_uuid_is_valid(key))
        return NULL;
    PGresult *res;
    ek_err_t *err =
        ek_db_query(db, &res,
                    by_id ? "SELECT u.id, u.password_hash, u.project_id, u.role, p.name, "
                            "u.name FROM users u JOIN projects p ON p.id = u.project_id "
                            "WHERE u.id = $1 AND u.enabled"
                          : "SELECT u.id, u.password_hash, u.project_id, u.role, p.name, "
                            "u.name FROM users u JOIN projects p ON p.id = u.project_id "
                            "WHERE u.name = $1 AND u.enabled",
                    1, (const char *[]){key});
    if (err)
        return err;
    if (PQntuples(res) == 1) {
        ek_account_t *acc = ek_xcalloc(1, sizeof(*acc));
        snprintf(acc->id, sizeof(acc->id), "%s", PQgetvalue(res, 0, 0));
        acc->password_hash = ek_xstrdup(PQgetvalue(res, 0, 1));
        snprintf(acc->project_id, sizeof(acc->project_id), "%s", PQgetvalue(res, 0, 2));
        acc->role = ek_xstrdup(PQgetvalue(res, 0, 3));
        acc->project_name = ek_xstrdup(PQgetvalue(res, 0, 4));
        acc->name = ek_xstrdup(PQgetvalue(res, 0, 5));
        *out = acc;
    }
    PQclear(res);
    return NULL;
}

ek_err_t *ek_account_find(PGconn *db, const char *username, ek_account_t **out)
{
    return account_by(db, false, username, out);
}

ek_err_t *ek_account_find_id(PGconn *db, const char *user_id, ek_account_t **out)
{
    return account_by(db, true, user_id, out);
}

ek_err_t *ek_project_find(PGconn *db, const char *id, const char *name, bool *found, char *out_id,
                          char **out_name)
{
    *found = false;
    *out_name = NULL;
    if (id && !ek_uuid_is_valid(id))
        return NULL;
    PGresult *res;
    ek_err_t *err = ek_db_query(db, &res,
                                id ? "SELECT id, name FROM projects WHERE id = $1"
                                   : "SELECT id, name FROM projects WHERE name = $1",
                                1, (const char *[]){id ? id : name});
    if (err)
        return err;
    if (PQntuples(res) == 1) {
        *found = true;
        snprintf(out_id, EK_UUID_STRLEN + 1, "%s", PQgetvalue(res, 0, 0));
        *out_name = ek_xstrdup(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return NULL;
}

ek_err_t *ek_token_issue(PGconn *db, const ek_account_t *acc, int lifetime_s,
                         json_object **token_doc, char **token)
{
    *token = NULL;
    *token_doc = NULL;
    char *tok = ek_token_new();
    char digest[65], lifetime[32];
    ek_token_digest(tok, digest);
    snprintf(lifetime, sizeof(lifetime), "%d", lifetime_s);
    bool admin = strcmp(acc->role, "admin") == 0;
    json_object *doc = NULL;
    ek_err_t *err = ek_db_query_json(
        db, &doc,
        "INSERT INTO tokens (token_hash, user_id, project_id, is_admin, expires_at) "
        "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int)) "
        "RETURNING jsonb_build_object('expires_at', expires_at, 'issued_at', created_at, "
        "'user', jsonb_build_object('id', user_id, 'name', $6::text), "
        "'project', jsonb_build_object('id', project_id, 'name', $7::text), "
        "'roles', jsonb_build_array($8::text))",
        8,
        (const char *[]){digest, acc->id, acc->project_id, admin ? "true" : "false", lifetime,
                         acc->name, acc->project_name, acc->role});
    /* expired tokens are swept now and then */
    if (!err)
        ek_err_free(
            ek_db_exec(db, "DELETE FROM tokens WHERE expires_at < now() - interval '1 day'"));
    if (err) {
        ek_free_secret(tok);
        return err;
    }
    json_object_object_add(doc, "id", json_object_new_string(tok));
    *token_doc = doc;
    *token = tok;
    return NULL;
}

/* ---- tokens as the Keystone v3 facade sees them ------------------------------ */

#define ISO_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

void ek_token_info_release(ek_token_info_t *info)
{
    free(info->user_name);
    free(info->project_name);
    info->user_name = info->project_name = NULL;
}

static void audit_of(const char *digest, ek_token_info_t *info)
{
    /* a piece of the token's SHA-256: names it in logs and answers, and
     * the token cannot be had from it */
    snprintf(info->audit_id, sizeof(info->audit_id), "%.22s", digest);
}

ek_err_t *ek_token_grant(PGconn *db, const ek_account_t *acc, bool scoped, const char *expires_at,
                         int lifetime_s, char **token, ek_token_info_t *info)
{
    *token = NULL;
    memset(info, 0, sizeof(*info));
    char *tok = ek_token_new();
    char digest[65], lifetime[32];
    ek_token_digest(tok, digest);
    snprintf(lifetime, sizeof(lifetime), "%d", lifetime_s);
    bool user_admin = strcmp(acc->role, "admin") == 0;
    bool admin = scoped && user_admin;
    PGresult *res;
    ek_err_t *err = ek_db_query(
        db, &res,
        "INSERT INTO tokens (token_hash, user_id, project_id, is_admin, scoped, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, "
        "now() + make_interval(secs => $7::int))) "
        "RETURNING " ISO_UTC("created_at") ", " ISO_UTC("expires_at"),
        7,
        (const char *[]){digest, acc->id, acc->project_id, admin ? "true" : "false",
                         scoped ? "true" : "false", expires_at, lifetime});
    if (err) {
        ek_free_secret(tok);
        return err;
    }
    snprintf(info->issued_at, sizeof(info->issued_at), "%s", PQgetvalue(res, 0, 0));
    snprintf(info->expires_at, sizeof(info->expires_at), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    ek_err_free(ek_db_exec(db, "DELETE FROM tokens WHERE expires_at < now() - interval '1 day'"));
    snprintf(info->user_id, sizeof(info->user_id), "%s", acc->id);
    snprintf(info->project_id, sizeof(info->project_id), "%s", acc->project_id);
    info->user_name = ek_xstrdup(acc->name);
    info->project_name = ek_xstrdup(acc->project_name);
    info->is_admin = admin;
    info->user_admin = user_admin;
    info->scoped = scoped;
    audit_of(digest, info);
    *token = tok;
    return NULL;
}

ek_err_t *ek_token_lookup(PGconn *db, const char *token, ek_token_info_t *info)
{
    memset(info, 0, sizeof(*info));
    char digest[65];
    ek_token_digest(token, digest);
    PGresult *res;
    ek_err_t *err = ek_db_query(
        db, &res,
        "SELECT t.user_id, u.name, t.project_id, p.name, t.is_admin, u.role = 'admin', "
        "t.scoped, " ISO_UTC("t.created_at") ", " ISO_UTC(
            "t.expires_at") " FROM tokens t "
                            "JOIN users u ON u.id = t.user_id JOIN projects p ON p.id = "
                            "t.project_id "
                            "WHERE t.token_hash = $1 AND t.expires_at > now() AND u.enabled",
        1, (const char *[]){digest});
    if (err)
        return err;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ek_err_new(EK_E_NOTFOUND, "the token is invalid or has expired");
    }
    snprintf(info->user_id, sizeof(info->user_id), "%s", PQgetvalue(res, 0, 0));
    info->user_name = ek_xstrdup(PQgetvalue(res, 0, 1));
    snprintf(info->project_id, sizeof(info->project_id), "%s", PQgetvalue(res, 0, 2));
    info->project_name = ek_xstrdup(PQgetvalue(res, 0, 3));
    info->is_admin = PQgetvalue(res, 0, 4)[0] == 't';
    info->user_admin = PQgetvalue(res, 0, 5)[0] == 't';
    info->scoped = PQgetvalue(res, 0, 6)[0] == 't';
    snprintf(info->issued_at, sizeof(info->issued_at), "%s", PQgetvalue(res, 0, 7));
    snprintf(info->expires_at, sizeof(info->expires_at), "%s", PQgetvalue(res, 0, 8));
    audit_of(digest, info);
    PQclear(res);
    return NULL;
}

ek_err_t *ek_token_revoke(PGconn *db, const char *token, bool *found)
{
    char digest[65];
    ek_token_digest(token, digest);
    PGresult *res;
    *found = false;
    ek_err_t *err =
        ek_db_query(db, &res, "DELETE FROM tokens WHERE token_hash = $1 AND expires_at > now()", 1,
                    (const char *[]){digest});
    if (err)
        return err;
    *found = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    return NULL;
}
