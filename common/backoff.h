/* backoff.h - failure back-off per key (a user name, a client address): after
 * a few failures a key must wait, twice as long after each further failure, up
 * to a ceiling; a success or a quiet period forgets it. Used to slow password
 * guessing on POST /v1/auth/tokens.
 *
 * The table has a fixed number of slots, so that a flood of distinct keys
 * cannot grow memory: a new key takes a free slot or the least recently used
 * one of its bucket. Keys are compared by SHA-256, never stored. Thread-safe.
 * Times are in seconds of a monotonic clock, passed in (tests choose them). */
#ifndef EK_BACKOFF_H
#define EK_BACKOFF_H

#include <stdint.h>

typedef struct ek_backoff ek_backoff_t;

typedef struct ek_backoff_policy {
    unsigned free_failures; /* failures allowed before any wait */
    unsigned max_wait;      /* ceiling of a wait, seconds */
    unsigned forget_after;  /* seconds without failure that reset a key */
} ek_backoff_policy_t;

/* slots: the most keys remembered at once. */
ek_backoff_t *ek_backoff_new(const ek_backoff_policy_t *policy, unsigned slots);
void ek_backoff_free(ek_backoff_t *b);
/* Seconds key must still wait at time now (0: it may try). */
unsigned ek_backoff_wait(ek_backoff_t *b, const char *key, int64_t now);
/* Records a failure of key at time now. */
void ek_backoff_fail(ek_backoff_t *b, const char *key, int64_t now);
/* Forgets key's failures (a successful login). */
void ek_backoff_reset(ek_backoff_t *b, const char *key);
/* The monotonic clock in seconds. */
int64_t ek_backoff_now(void);

#endif
