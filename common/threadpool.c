/* threadpool.c - fixed-size worker threads over a bounded FIFO of jobs. */
#include "common/threadpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include "common/mem.h"

struct job {
    ek_job_fn fn;
    void *arg;
    struct job *next;
};

struct ek_threadpool {
    pthread_mutex_t lock;
    pthread_cond_t has_job;  /* a job was queued, or stopping */
    pthread_cond_t has_room; /* the queue shrank */
    pthread_cond_t idle;     /* nothing queued and nothing running */
    struct job *head, *tail;
    size_t queued, max_queued, running, n_threads;
    bool stopping;
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    ek_threadpool_t *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->has_job, &pool->lock);
        if (!pool->head && pool->stopping)
            break;
        struct job *job = pool->head;
        pool->head = job->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        pool->running++;
        pthread_cond_signal(&pool->has_room);
        pthread_mutex_unlock(&pool->lock);
        job->fn(job->arg);
        free(job);
        pthread_mutex_lock(&pool->lock);
        pool->running--;
        if (!pool->head && !pool->running)
            pthread_cond_broadcast(&pool->idle);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

ek_threadpool_t *ek_threadpool_new(size_t threads, size_t max_queued)
{
    ek_threadpool_t *pool = ek_xcalloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->has_job, NULL);
    pthread_cond_init(&pool->has_room, NULL);
    pthread_cond_init(&pool->idle, NULL);
    pool->max_queued = max_queued;
    pool->n_threads = threads ? threads : 1;
    pool->threads = ek_xcalloc(pool->n_threads, sizeof(pthread_t));
    for (size_t i = 0; i < pool->n_threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            abort(); /* no threads left on the machine: nothing sensible to do */
    }
    return pool;
}

void ek_threadpool_submit(ek_threadpool_t *pool, ek_job_fn fn, void *arg)
{
    struct job *job = ek_xmalloc(sizeof(*job));
    job->fn = fn;
    job->arg = arg;
    job->next = NULL;
    pthread_mutex_lock(&pool->lock);
    while (pool->max_queued && pool->queued >= pool->max_queued)
        pthread_cond_wait(&pool->has_room, &pool->lock);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pthread_cond_signal(&pool->has_job);
    pthread_mutex_unlock(&pool->lock);
}

void ek_threadpool_wait(ek_threadpool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (pool->head || pool->running)
        pthread_cond_wait(&pool->idle, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void ek_threadpool_free(ek_threadpool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->has_job);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->has_job);
    pthread_cond_destroy(&pool->has_room);
    pthread_cond_destroy(&pool->idle);
    free(pool->threads);
    free(pool);
}

size_t ek_threadpool_size(const ek_threadpool_t *pool)
{
    return pool->n_threads;
}
