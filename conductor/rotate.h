/* rotate.h - rotating the conductors' encryption key ([DEFAULT]
 * encryption_key): every endpoint's connection info and every secret sealed
 * for the conductors in task info and saved task state (common/box.h) is
 * opened with the old key and sealed with the new one, in one transaction.
 *
 * Operator's procedure (docs/security.md): stop the conductors, run
 * `ekman-conductor --rotate-encryption-key NEW_KEY_FILE` with the old key in
 * the configuration, put the new key in every conductor's configuration,
 * start them. Workers hold no copy of it and need no change. */
#ifndef EK_CONDUCTOR_ROTATE_H
#define EK_CONDUCTOR_ROTATE_H

#include <libpq-fe.h>
#include "common/error.h"
#include "common/secret.h"

typedef struct ek_rotate_stats {
    int endpoints;   /* connection infos sealed again */
    int task_infos;  /* transfers' and deployments' task info rows changed */
    int task_states; /* tasks' saved states changed */
} ek_rotate_stats_t;

/* Nothing changes unless everything opens with old_key. */
EK_ERR_CHECK ek_rotate_encryption_key(PGconn *db, const unsigned char old_key[EK_SECRET_KEY_LEN],
                                      const unsigned char new_key[EK_SECRET_KEY_LEN],
                                      ek_rotate_stats_t *stats);

#endif
