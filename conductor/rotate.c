/* rotate.c - moving every sealed secret from one encryption key to another
 * (ekman-conductor --rotate-encryption-key, see rotate.h). */
#include "conductor/rotate.h"

#include <string.h>
#include "common/box.h"
#include "common/db.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/secret.h"
#include "conductor/seal.h"

/* Every endpoint's connection info: opened with the old key, sealed with the
 * new one (the endpoint id stays the associated data). */
static ek_err_t *rotate_endpoints(PGconn *db, const unsigned char *old_key,
                                  const unsigned char *new_key, int *count)
{
    PGresult *res = NULL;
    ek_err_t *err = ek_db_query(
        db, &res, "SELECT id, connection_info FROM endpoints ORDER BY id FOR UPDATE", 0, NULL);
    if (err)
        return err;
    for (int i = 0; i < PQntuples(res) && !err; i++) {
        const char *id = PQgetvalue(res, i, 0);
        char *plain = NULL;
        err = ek_secret_open(old_key, id, PQgetvalue(res, i, 1), &plain);
        if (err) {
            err = ek_err_prefix(err,
                                "endpoint %s does not open with the key in the "
                                "configuration (already rotated? then the configuration "
                                "must name the new key)",
                                id);
            break;
        }
        char *sealed = ek_secret_seal(new_key, id, plain);
        ek_free_secret(plain);
        err = ek_db_query(db, NULL, "UPDATE endpoints SET connection_info = $2 WHERE id = $1", 2,
                          (const char *[]){id, sealed});
        free(sealed);
        (*count)++;
    }
    PQclear(res);
    return err;
}

/* Secrets in a jsonb column (task info, saved task state): sealed for the
 * old key's conductor pair, or in clear (before sealing existed), sealed
 * for the new one. */
static ek_err_t *rotate_json(PGconn *db, const char *table, const char *column,
                             const ek_box_ring_t *old_ring, const ek_box_ring_t *new_ring,
                             int *count)
{
    _cleanup_free_ char *q = ek_xasprintf("SELECT id, %s::text FROM %s WHERE %s IS NOT NULL "
                                          "ORDER BY id FOR UPDATE",
                                          column, table, column);
    _cleanup_free_ char *u =
        ek_xasprintf("UPDATE %s SET %s = $2::jsonb WHERE id = $1", table, column);
    PGresult *res = NULL;
    ek_err_t *err = ek_db_query(db, &res, q, 0, NULL);
    if (err)
        return err;
    for (int i = 0; i < PQntuples(res) && !err; i++) {
        const char *id = PQgetvalue(res, i, 0), *text = PQgetvalue(res, i, 1);
        json_object *doc = NULL;
        if ((err = ek_json_parse(text, strlen(text), &doc)))
            break;
        json_object *before = NULL;
        if (json_object_deep_copy(doc, &before, NULL) != 0) {
            json_object_put(doc);
            err = ek_err_new(EK_E_INTERNAL, "out of memory");
            break;
        }
        if (!(err = ek_box_json_open(doc, old_ring, EK_BOX_TASK_INFO_AAD)) &&
            !(err = ek_box_json_seal(doc, ek_box_ring_public(new_ring), EK_BOX_TASK_INFO_AAD)) &&
            !json_object_equal(doc, before)) { /* it held secrets */
            err = ek_db_query(
                db, NULL, u, 2,
                (const char *[]){id, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN)});
            (*count)++;
        }
        json_object_put(before);
        json_object_put(doc);
        if (err)
            err = ek_err_prefix(err, "%s %s: %s", table, id, column);
    }
    PQclear(res);
    return err;
}

struct rotate_tx {
    const unsigned char *old_key, *new_key;
    ek_box_ring_t *old_ring, *new_ring;
    ek_rotate_stats_t *stats;
};

static ek_err_t *rotate_tx(PGconn *db, void *arg)
{
    struct rotate_tx *t = arg;
    ek_err_t *err = rotate_endpoints(db, t->old_key, t->new_key, &t->stats->endpoints);
    if (!err)
        err = rotate_json(db, "transfers", "info", t->old_ring, t->new_ring, &t->stats->task_infos);
    if (!err)
        err =
            rotate_json(db, "deployments", "info", t->old_ring, t->new_ring, &t->stats->task_infos);
    if (!err)
        err = rotate_json(db, "tasks", "state", t->old_ring, t->new_ring, &t->stats->task_states);
    return err;
}

ek_err_t *ek_rotate_encryption_key(PGconn *db, const unsigned char old_key[EK_SECRET_KEY_LEN],
                                   const unsigned char new_key[EK_SECRET_KEY_LEN],
                                   ek_rotate_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    if (memcmp(old_key, new_key, EK_SECRET_KEY_LEN) == 0)
        return ek_err_new(EK_E_INVALID, "the new encryption key is the one in the configuration: "
                                        "make a new one with 'openssl rand -base64 32'");
    ek_box_ring_t *old_ring = NULL, *new_ring = NULL;
    ek_err_t *err = ek_box_ring_derive(old_key, EK_SEAL_CONDUCTOR_LABEL, &old_ring);
    if (!err)
        err = ek_box_ring_derive(new_key, EK_SEAL_CONDUCTOR_LABEL, &new_ring);
    /* one transaction: every secret moves, or none */
    struct rotate_tx t = {old_key, new_key, old_ring, new_ring, stats};
    if (!err)
        err = ek_db_tx(db, 0, rotate_tx, &t);
    ek_box_ring_free(old_ring);
    ek_box_ring_free(new_ring);
    return err;
}
