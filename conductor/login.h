/* login.h - THE password check of the conductor: every login, whether by
 * POST /v1/auth/tokens or by the Keystone v3 facade (POST /v3/auth/tokens),
 * goes through ek_login_begin.
 *
 * The check (scrypt) runs on the hash pool, not on an API thread. An unknown
 * user is checked against a dummy hash of the same cost, so that the answer's
 * timing does not tell whether a user exists. Failures back off per user and
 * per client address (429 with Retry-After); a client overflowing its share
 * of the pool counts as failing. */
#ifndef EK_CONDUCTOR_LOGIN_H
#define EK_CONDUCTOR_LOGIN_H

#include <stdbool.h>
#include "conductor/accounts.h"
#include "conductor/api.h"

#define EK_LOGIN_MAX_USERNAME 255
#define EK_LOGIN_MAX_PASSWORD 1024

/* Called on an API thread (with req->db) once the password matched: sets the
 * response. acc is the caller's to keep until ctx_free runs (it may change
 * acc's project, e.g. to scope a token). */
typedef void (*ek_login_ok_fn)(ek_req_t *req, ek_resp_t *resp, ek_account_t *acc, void *ctx);

typedef struct ek_login_spec {
    const char *user; /* a user name, or an id when by_id */
    bool by_id;
    const char *password;
    ek_login_ok_fn ok;
    void *ctx;                   /* handed to ok; owned by the login from here on */
    void (*ctx_free)(void *ctx); /* frees ctx in every case (may be NULL) */
} ek_login_spec_t;

/* Starts a login: answers 400 (too long), 429 (backing off), or defers the
 * password check to the hash pool; a wrong user or password then answers
 * 401 "wrong user name or password", a right one calls spec->ok. The strings
 * of spec are copied. */
void ek_login_begin(ek_req_t *req, ek_resp_t *resp, const ek_login_spec_t *spec);

#endif
