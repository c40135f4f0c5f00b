/* seal.h - a task's secrets for the one worker that runs it (issue #17).
 *
 * Endpoint connection info is kept sealed with the conductors' encryption
 * key ([DEFAULT] encryption_key), which no worker holds. A task's message
 * carries no connection info: the worker that claims the attempt names its
 * own public key (common/box.h) in the claim, and the grant brings the
 * task's secrets sealed for that key alone: both endpoints' connection info
 * and the task info with its secrets. An endpoint query goes to one
 * registered worker, sealed for the key it announced in its heartbeats.
 *
 * Secrets inside task info (worker VM keys, writer certificates' keys) come
 * back from workers sealed for the conductors' key pair, derived from the
 * encryption key; they stay sealed in the database and on the bus. */
#ifndef EK_CONDUCTOR_SEAL_H
#define EK_CONDUCTOR_SEAL_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include "common/box.h"
#include "common/error.h"

/* Associated data of the secrets workers return in task info, and the label
 * of the conductors' key pair derived from the encryption key. */
#define EK_SEAL_TASK_INFO_AAD   EK_BOX_TASK_INFO_AAD
#define EK_SEAL_CONDUCTOR_LABEL "ekman-conductor-box-v1"

/* The conductors' key pair (made on first use, kept for the life of the
 * process; NULL if OpenSSL fails). */
const ek_box_ring_t *ek_seal_conductor_ring(const unsigned char key[EK_SECRET_KEY_LEN]);

/* For a granted claim: {"origin": {"id", "connection_info_box"},
 * "destination": {...}, "task_info": {...}, "state": {...} (when saved)}
 * of the task, every secret sealed
 * for worker_pub (connection info with the endpoint id as associated data,
 * task info with the task id). */
EK_ERR_CHECK ek_seal_claim_secrets(PGconn *db, const unsigned char key[EK_SECRET_KEY_LEN],
                                   const char *task_id, const char *worker_pub, json_object **out);

/* An endpoint object of a job: its connection_info_sealed (for the
 * conductors) becomes connection_info_box (for worker_pub). */
EK_ERR_CHECK ek_seal_endpoint_for(const unsigned char key[EK_SECRET_KEY_LEN],
                                  const char *worker_pub, json_object *endpoint);

/* A worker that is up, has provider and announced a key: its host and key
 * (caller frees both); EK_E_NOTFOUND when there is none. */
EK_ERR_CHECK ek_seal_pick_worker(PGconn *db, const char *provider, int alive_s, char **host,
                                 char **worker_pub);

#endif
