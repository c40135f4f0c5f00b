/* backoff.c - a bounded table of failure counters with exponential waits. */
#include "common/backoff.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include "common/mem.h"

#define BUCKET 8 /* slots searched for a key */

struct slot {
    unsigned char id[32]; /* SHA-256 of the key; all zero when free */
    unsigned failures;
    int64_t last_failure;
    int64_t blocked_until;
};

struct ek_backoff {
    pthread_mutex_t lock;
    ek_backoff_policy_t policy;
    unsigned nslots;
    struct slot *slots;
};

ek_backoff_t *ek_backoff_new(const ek_backoff_policy_t *policy, unsigned slots)
{
    ek_backoff_t *b = ek_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    b->policy = *policy;
    b->nslots = slots < BUCKET ? BUCKET : slots;
    b->slots = ek_xcalloc(b->nslots, sizeof(*b->slots));
    return b;
}

void ek_backoff_free(ek_backoff_t *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b->slots);
    free(b);
}

int64_t ek_backoff_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static void key_id(const char *key, unsigned char id[32])
{
    unsigned int len = 0;
    EVP_Digest(key, strlen(key), id, &len, EVP_sha256(), NULL);
    id[0] |= 1; /* never all zero: that marks a free slot */
}

static bool slot_free(const struct slot *s)
{
    static const unsigned char zero[32];
    return memcmp(s->id, zero, sizeof(zero)) == 0;
}

/* The slot of key, or (create) a free or the stalest one of its bucket. */
static struct slot *find(ek_backoff_t *b, const char *key, bool create, int64_t now)
{
    unsigned char id[32];
    key_id(key, id);
    uint32_t h;
    memcpy(&h, id + 4, sizeof(h));
    struct slot *victim = NULL;
    for (unsigned i = 0; i < BUCKET; i++) {
        struct slot *s = &b->slots[(h + i) % b->nslots];
        if (memcmp(s->id, id, sizeof(id)) == 0) {
            if (now - s->last_failure > (int64_t)b->policy.forget_after && now >= s->blocked_until)
                s->failures = 0; /* quiet long enough: forgotten */
            return s;
        }
        if (slot_free(s)) {
            if (!victim || !slot_free(victim))
                victim = s;
        } else if (!victim || (!slot_free(victim) && s->last_failure < victim->last_failure)) {
            victim = s;
        }
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->id, id, sizeof(id));
    return victim;
}

unsigned ek_backoff_wait(ek_backoff_t *b, const char *key, int64_t now)
{
    pthread_mutex_lock(&b->lock);
    struct slot *s = find(b, key, false, now);
    unsigned wait = s && s->blocked_until > now ? (unsigned)(s->blocked_until - now) : 0;
    pthread_mutex_unlock(&b->lock);
    return wait;
}

void ek_backoff_fail(ek_backoff_t *b, const char *key, int64_t now)
{
    pthread_mutex_lock(&b->lock);
    struct slot *s = find(b, key, true, now);
    s->failures++;
    s->last_failure = now;
    if (s->failures > b->policy.free_failures) {
        unsigned over = s->failures - b->policy.free_failures - 1;
        uint64_t wait = over >= 20 ? b->policy.max_wait : (uint64_t)1 << over;
        if (wait > b->policy.max_wait)
            wait = b->policy.max_wait;
        s->blocked_until = now + (int64_t)wait;
    }
    pthread_mutex_unlock(&b->lock);
}

void ek_backoff_reset(ek_backoff_t *b, const char *key)
{
    pthread_mutex_lock(&b->lock);
    struct slot *s = find(b, key, false, 0);
    if (s)
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&b->lock);
}
