/* hashpool.c - bounded, per-source fair hand-off of password hashing. */
#include "conductor/hashpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "common/mem.h"
#include "common/threadpool.h"

struct source {
    char name[64];
    unsigned jobs; /* 0: the slot is free */
};

struct ek_hashpool {
    ek_threadpool_t *threads;
    pthread_mutex_t lock;
    unsigned max_pending, max_per_source, pending;
    bool closed;
    struct source *sources; /* max_pending slots: never more sources than jobs */
};

struct job {
    ek_hashpool_t *pool;
    struct source *source;
    ek_hashpool_fn fn;
    void *arg;
};

ek_hashpool_t *ek_hashpool_new(unsigned threads, unsigned max_pending, unsigned max_per_source)
{
    ek_hashpool_t *pool = ek_xcalloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pool->max_pending = max_pending ? max_pending : 1;
    pool->max_per_source = max_per_source ? max_per_source : 1;
    pool->sources = ek_xcalloc(pool->max_pending, sizeof(*pool->sources));
    pool->threads = ek_threadpool_new(threads ? threads : 1, 0);
    return pool;
}

void ek_hashpool_drain(ek_hashpool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->closed = true;
    pthread_mutex_unlock(&pool->lock);
    ek_threadpool_wait(pool->threads);
}

void ek_hashpool_free(ek_hashpool_t *pool)
{
    if (!pool)
        return;
    ek_threadpool_free(pool->threads);
    pthread_mutex_destroy(&pool->lock);
    free(pool->sources);
    free(pool);
}

static void run(void *arg)
{
    struct job *job = arg;
    ek_hashpool_t *pool = job->pool;
    job->fn(job->arg);
    pthread_mutex_lock(&pool->lock);
    job->source->jobs--;
    pool->pending--;
    pthread_mutex_unlock(&pool->lock);
    free(job);
}

ek_err_t *ek_hashpool_submit(ek_hashpool_t *pool, const char *source, ek_hashpool_fn fn, void *arg)
{
    char name[64];
    snprintf(name, sizeof(name), "%s", source ? source : "");
    pthread_mutex_lock(&pool->lock);
    struct source *slot = NULL, *free_slot = NULL;
    for (unsigned i = 0; i < pool->max_pending && !slot; i++) {
        if (pool->sources[i].jobs && strcmp(pool->sources[i].name, name) == 0)
            slot = &pool->sources[i];
        else if (!pool->sources[i].jobs && !free_slot)
            free_slot = &pool->sources[i];
    }
    if (pool->closed) {
        pthread_mutex_unlock(&pool->lock);
        return ek_err_new(EK_E_UNAVAILABLE, "the conductor is stopping: try again in a moment");
    }
    if (pool->pending >= pool->max_pending || (slot && slot->jobs >= pool->max_per_source)) {
        bool busy = pool->pending >= pool->max_pending;
        pthread_mutex_unlock(&pool->lock);
        return ek_err_new(EK_E_UNAVAILABLE,
                          busy ? "too many logins are being checked: try again in a moment"
                               : "too many logins from your address are being checked: wait for "
                                 "them to finish");
    }
    if (!slot) {
        slot = free_slot; /* pending < max_pending, so a slot is free */
        memcpy(slot->name, name, sizeof(name));
    }
    slot->jobs++;
    pool->pending++;
    pthread_mutex_unlock(&pool->lock);
    struct job *job = ek_xcalloc(1, sizeof(*job));
    *job = (struct job){pool, slot, fn, arg};
    ek_threadpool_submit(pool->threads, run, job);
    return NULL;
}

unsigned ek_hashpool_pending(ek_hashpool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    unsigned n = pool->pending;
    pthread_mutex_unlock(&pool->lock);
    return n;
}
