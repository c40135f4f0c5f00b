/* task_ctx.c - the task context of task_ctx.h: the functions of
 * worker/provider.h that worker/child.c implements in the worker, here
 * recording into JSON instead of writing to the worker. */
#include "tests/integration/local/task_ctx.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include "common/mem.h"

struct ek_task_ctx {
    const ek_config_t *cfg;
    FILE *log;
    char *prefix;
    pthread_mutex_t lock;
    json_object *steps, *events, *state;
    int saves, cancel_after_saves;
    long checks, cancel_after_checks;
    volatile int cancelled;
};

ek_task_ctx_t *ek_test_ctx_new(const ek_config_t *cfg, FILE *log, const char *prefix)
{
    ek_task_ctx_t *c = ek_xcalloc(1, sizeof(*c));
    c->cfg = cfg;
    c->log = log;
    c->prefix = ek_xstrdup(prefix ? prefix : "task");
    pthread_mutex_init(&c->lock, NULL);
    c->steps = json_object_new_array();
    c->events = json_object_new_array();
    return c;
}

void ek_test_ctx_free(ek_task_ctx_t *c)
{
    if (!c)
        return;
    json_object_put(c->steps);
    json_object_put(c->events);
    json_object_put(c->state);
    pthread_mutex_destroy(&c->lock);
    free(c->prefix);
    free(c);
}

json_object *ek_test_ctx_steps(ek_task_ctx_t *c)
{
    return c->steps;
}

json_object *ek_test_ctx_events(ek_task_ctx_t *c)
{
    return c->events;
}

json_object *ek_test_ctx_state(ek_task_ctx_t *c)
{
    return c->state;
}

int ek_test_ctx_saves(ek_task_ctx_t *c)
{
    return c->saves;
}

void ek_test_ctx_cancel(ek_task_ctx_t *c)
{
    c->cancelled = 1;
}

void ek_test_ctx_cancel_after_saves(ek_task_ctx_t *c, int n)
{
    c->cancel_after_saves = n;
}

void ek_test_ctx_cancel_after_checks(ek_task_ctx_t *c, long n)
{
    c->cancel_after_checks = n;
}

int ek_task_step(ek_task_ctx_t *c, uint64_t total, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    json_object *s = json_object_new_object();
    json_object_object_add(s, "message", json_object_new_string(msg));
    json_object_object_add(s, "total", json_object_new_int64((int64_t)total));
    json_object_object_add(s, "current", json_object_new_int64(0));
    json_object_object_add(s, "updates", json_object_new_int(0));
    json_object_array_add(c->steps, s);
    int idx = (int)json_object_array_length(c->steps) - 1;
    if (c->log)
        fprintf(c->log, "[%s] step %d: %s\n", c->prefix, idx, msg);
    pthread_mutex_unlock(&c->lock);
    free(msg);
    return idx;
}

void ek_task_step_update(ek_task_ctx_t *c, int step, uint64_t current)
{
    pthread_mutex_lock(&c->lock);
    json_object *s = json_object_array_get_idx(c->steps, (size_t)step);
    if (s) {
        int64_t total = json_object_get_int64(json_object_object_get(s, "total"));
        int updates = json_object_get_int(json_object_object_get(s, "updates"));
        int64_t before = json_object_get_int64(json_object_object_get(s, "current"));
        json_object_object_add(s, "current", json_object_new_int64((int64_t)current));
        json_object_object_add(s, "updates", json_object_new_int(updates + 1));
        /* printed as the worker reports: when the percentage grows */
        int pct = total > 0 ? (int)((double)current * 100.0 / (double)total) : 100;
        int was = total > 0 ? (int)((double)before * 100.0 / (double)total) : 100;
        if (c->log && (pct > was || updates == 0))
            fprintf(c->log, "[%s] step %d: %llu/%lld (%d%%)\n", c->prefix, step,
                    (unsigned long long)current, (long long)total, pct);
    }
    pthread_mutex_unlock(&c->lock);
}

void ek_task_event(ek_task_ctx_t *c, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "level", json_object_new_string(level));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_array_add(c->events, e);
    if (c->log)
        fprintf(c->log, "[%s] %s %s\n", c->prefix, level, msg);
    pthread_mutex_unlock(&c->lock);
    free(msg);
}

void ek_task_save_state(ek_task_ctx_t *c, json_object *state)
{
    pthread_mutex_lock(&c->lock);
    json_object *copy = NULL;
    json_object_deep_copy(state, &copy, NULL);
    json_object_put(c->state);
    c->state = copy;
    c->saves++;
    if (c->cancel_after_saves > 0 && c->saves >= c->cancel_after_saves)
        c->cancelled = 1;
    pthread_mutex_unlock(&c->lock);
}

bool ek_task_cancelled(const ek_task_ctx_t *c)
{
    if (c->cancel_after_checks > 0) {
        /* the provider asks as it reads: count the questions */
        long n = __atomic_add_fetch(&((ek_task_ctx_t *)c)->checks, 1, __ATOMIC_RELAXED);
        if (n > c->cancel_after_checks)
            ((ek_task_ctx_t *)c)->cancelled = 1;
    }
    return c->cancelled != 0;
}

const ek_config_t *ek_task_config(const ek_task_ctx_t *c)
{
    return c->cfg;
}
