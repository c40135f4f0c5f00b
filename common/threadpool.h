/* threadpool.h - a fixed set of threads running submitted jobs in FIFO order.
 *
 * Used by the API server and the transfer engine. The queue is bounded:
 * ek_threadpool_submit() blocks while `max_queued` jobs wait, which is the
 * back-pressure a producer reading a disk faster than it can be sent needs. */
#ifndef EK_THREADPOOL_H
#define EK_THREADPOOL_H

#include <stddef.h>

typedef struct ek_threadpool ek_threadpool_t;
typedef void (*ek_job_fn)(void *arg);

/* max_queued 0 means unbounded. */
ek_threadpool_t *ek_threadpool_new(size_t threads, size_t max_queued);
void ek_threadpool_submit(ek_threadpool_t *pool, ek_job_fn fn, void *arg);
/* Waits until the queue is empty and no job runs. */
void ek_threadpool_wait(ek_threadpool_t *pool);
/* Runs the queued jobs, stops the threads and frees the pool. NULL is fine. */
void ek_threadpool_free(ek_threadpool_t *pool);
size_t ek_threadpool_size(const ek_threadpool_t *pool);

#endif
