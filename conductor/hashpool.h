/* hashpool.h - the conductor's password hashing threads. scrypt costs about
 * 0.4 s of a core and 128 MiB, so it never runs on an API thread: a login is
 * handed to this pool and the API thread serves other connections meanwhile.
 *
 * The pool is bounded twice: at most max_pending jobs wait or run in all, and
 * at most max_per_source of them come from one source (a client address), so
 * that one client flooding logins cannot queue ahead of everyone else. A job
 * beyond either bound is refused at once (the API answers 503 Retry-After). */
#ifndef EK_CONDUCTOR_HASHPOOL_H
#define EK_CONDUCTOR_HASHPOOL_H

#include "common/error.h"

typedef struct ek_hashpool ek_hashpool_t;
typedef void (*ek_hashpool_fn)(void *arg);

ek_hashpool_t *ek_hashpool_new(unsigned threads, unsigned max_pending, unsigned max_per_source);
/* Refuses new jobs from now on and waits for those queued. NULL is fine. */
void ek_hashpool_drain(ek_hashpool_t *pool);
/* Finishes the jobs already queued, then stops the threads. NULL is fine. */
void ek_hashpool_free(ek_hashpool_t *pool);
/* Runs fn(arg) on a pool thread; arg stays the caller's. EK_E_UNAVAILABLE
 * when a bound is reached (fn is then not called). */
EK_ERR_CHECK ek_hashpool_submit(ek_hashpool_t *pool, const char *source, ek_hashpool_fn fn,
                                void *arg);
/* Jobs waiting or running now. */
unsigned ek_hashpool_pending(ek_hashpool_t *pool);

#endif
