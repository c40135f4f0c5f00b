/* engine.c - the transfer engine (see engine.h for what it does).
 *
 * Threads: per connection a sender (connects, takes work, reads, hashes,
 * compresses and writes every frame of that connection: only it writes to
 * the stream, so a stream is never freed under a writer) and a reader (takes
 * replies). The caller's thread plans nothing; it waits, verifies and
 * closes, asking senders to send its requests (FLUSH, HASH, CLOSE). One
 * mutex guards the shared state; nothing slow runs under it.
 *
 * Work items: a block of the disk with data (read and sent in pieces: data,
 * zeros found in it), a run of blocks that read as zeros (one zero frame per
 * GiB), a run of unchanged blocks (nothing, or hashed for a full check), or
 * a range to send again. */
#include "worker/transfer/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "proto/dataplane.h"
#include "worker/transfer/ranges.h"

#define ZERO_GRAIN   (64u * 1024)        /* zero detection granularity */
#define MAX_ZERO_RUN (UINT64_C(1) << 30) /* largest zero frame */
#define PLAN_WINDOW  (UINT64_C(1) << 30) /* extents asked for at once */
#define CTRL_SLOTS   8
#define MAX_BLOCKS   (UINT64_C(2) << 20) /* bound on the hash array (16 MiB) */
#define VERIFY_REQ   256                 /* blocks per HASH request */
#define FRAME_SMALL  64
#define CTL_TICK     200000000u /* compression re-decided this often (ns) */
#define CTL_HIST     5          /* ticks of history: the rate before a trial */
#define TRIAL_NS     1000000000u
#define HOLD_MIN_NS  2000000000u
#define HOLD_MAX_NS  30000000000u

typedef struct slot {
    uint64_t id;
    uint8_t type; /* request type, 0: free */
    bool zero, queued, done, waited;
    unsigned attempts;
    uint64_t off, len;
    uint8_t frame[FRAME_SMALL]; /* control request to send */
    size_t frame_len;
    uint8_t *reply; /* control reply body */
    size_t reply_len;
    ek_err_t *err;
    ek_ranges_t *snapshot; /* FLUSH of a state save */
} slot_t;

typedef struct send {
    uint64_t off, len;
    bool zero;
} send_t;

typedef struct sends {
    send_t *v;
    size_t n, alloc;
} sends_t;

typedef struct retry {
    uint64_t off, len;
    bool zero;
    unsigned attempts;
    struct retry *next;
} retry_t;

enum { WK_DATA = 1, WK_ZERO, WK_SKIP, WK_RETRY };

typedef struct work {
    int kind;
    uint64_t off, len;
    ek_extents_t ext; /* WK_DATA */
    bool zero;        /* WK_RETRY */
    unsigned attempts;
} work_t;

struct engine;

typedef struct conn {
    struct engine *e;
    unsigned idx;
    pthread_t sender, reader;
    bool sender_started, reader_running;
    ek_stream_t *s;
    bool broken, dead;
    unsigned failures;
    slot_t *slots;
    unsigned nslots, inflight;
    pthread_cond_t wcond; /* its sender waits here for room in the window */
    ZSTD_CCtx *cctx;
    uint8_t *buf, *cbuf;
    size_t cbuf_cap;
    uint64_t stall_ns;
    uint64_t wire_out, wire_in; /* of closed streams */
    sends_t sends, final;
    ek_extents_t refined;
} conn_t;

typedef struct engine {
    const ek_reader_ops_t *ops;
    void *reader;
    uint64_t size;
    ek_xfer_params_t p;
    uint32_t V, chunk_max;
    uint64_t nblocks;
    uint64_t *hashes;
    uint8_t *touched; /* bitmap of blocks to verify */
    uint64_t zero_hash, zero_hash_tail;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* planning */
    ek_extents_t win;
    size_t win_i;
    uint64_t plan_pos, cur;
    bool planning, plan_done;
    unsigned busy;
    retry_t *rq_head, *rq_tail;
    /* acknowledgements and state */
    ek_ranges_t acked, prior;
    uint64_t since_flush, last_save_ns;
    bool flush_wanted, flush_pending, opened;
    uint64_t started_ns; /* for first_open_wait_ms */
    pthread_mutex_t save_lock;
    /* life */
    ek_err_t *fatal;
    char last_conn_error[512];
    bool stop, closing;
    conn_t *conns;
    unsigned nconns, alive;
    uint64_t next_id;
    uint64_t data_frames;
    uint64_t zero_from; /* the target reads as zeros from here (a new file) */
    ek_xfer_stats_t st;
    /* adaptive compression */
    bool compress_now;
    uint64_t ctl_last_ns, ctl_stall, cpu_idle, cpu_total;
    uint64_t ctl_t[CTL_HIST], ctl_data[CTL_HIST]; /* last ticks: time, data acknowledged, */
    uint64_t ctl_wait[CTL_HIST], ctl_idle[CTL_HIST], ctl_cpu[CTL_HIST]; /* waits, CPU idle/total */
    unsigned ctl_n;
    uint64_t ctl_t0, ctl_data0; /* the first tick */
    bool trial;                 /* compression on, its gain not yet measured */
    uint64_t trial_t0, trial_data0;
    double trial_ref;             /* data rate (B/s) just before the trial */
    uint64_t hold_until, hold_ns; /* no trial before hold_until */
    uint64_t throttle_ns;         /* time the senders slept for --bandwidth */
    /* bandwidth */
    pthread_mutex_t bw_lock;
    double vt;
    uint64_t t0_ns;
} engine_t;

#define STAT_ADD(e, field, v) __atomic_add_fetch(&(e)->st.field, (v), __ATOMIC_RELAXED)

static uint64_t now_ns(void)
{
    return ek_stream_now_ns();
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void cond_wait_ms(engine_t *e, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&e->cond, &e->lock, &ts);
}

/* ---- small helpers (lock held where it matters) ---- */

static void fatal_set(engine_t *e, ek_err_t *err)
{
    if (!e->fatal)
        e->fatal = err;
    else
        ek_err_free(err);
    pthread_cond_broadcast(&e->cond);
    for (unsigned i = 0; e->conns && i < e->nconns; i++)
        pthread_cond_broadcast(&e->conns[i].wcond);
}

static void push_retry(engine_t *e, uint64_t off, uint64_t len, bool zero, unsigned attempts)
{
    retry_t *r = ek_xcalloc(1, sizeof(*r));
    r->off = off;
    r->len = len;
    r->zero = zero;
    r->attempts = attempts;
    if (e->rq_tail)
        e->rq_tail->next = r;
    else
        e->rq_head = r;
    e->rq_tail = r;
    pthread_cond_broadcast(&e->cond);
}

static void conn_fail(conn_t *c, const char *msg)
{
    engine_t *e = c->e;
    if (!c->broken && !e->closing) {
        ek_log_kv(EK_LOG_WARNING, "data connection lost", "disk", e->p.disk_name, "error", msg,
                  NULL);
        snprintf(e->last_conn_error, sizeof(e->last_conn_error), "%s", msg);
    }
    c->broken = true;
    if (c->s)
        ek_stream_shutdown(c->s);
    pthread_cond_broadcast(&e->cond);
    pthread_cond_broadcast(&c->wcond);
}

static slot_t *slot_find(conn_t *c, uint64_t id)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (c->slots[i].type && c->slots[i].id == id)
            return &c->slots[i];
    return NULL;
}

static slot_t *slot_free_one(conn_t *c)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (!c->slots[i].type)
            return &c->slots[i];
    return NULL;
}

static void slot_clear(slot_t *s)
{
    free(s->reply);
    ek_err_free(s->err);
    if (s->snapshot) {
        ek_ranges_clear(s->snapshot);
        free(s->snapshot);
    }
    memset(s, 0, sizeof(*s));
}

static void sends_push(sends_t *s, uint64_t off, uint64_t len, bool zero)
{
    if (!len)
        return;
    if (s->n && s->v[s->n - 1].zero == zero && s->v[s->n - 1].off + s->v[s->n - 1].len == off) {
        s->v[s->n - 1].len += len;
        return;
    }
    if (s->n == s->alloc) {
        s->alloc = s->alloc ? s->alloc * 2 : 16;
        s->v = ek_xrealloc(s->v, s->alloc * sizeof(*s->v));
    }
    s->v[s->n++] = (send_t){off, len, zero};
}

static uint64_t block_zero_hash(engine_t *e, uint64_t b)
{
    return b == e->nblocks - 1 ? e->zero_hash_tail : e->zero_hash;
}

static void touch(engine_t *e, uint64_t b, uint64_t hash)
{
    e->hashes[b] = hash;
    __atomic_or_fetch(&e->touched[b / 8], (uint8_t)(1u << (b % 8)), __ATOMIC_RELAXED);
}

static bool is_touched(const engine_t *e, uint64_t b)
{
    return e->touched[b / 8] & (1u << (b % 8));
}

/* ---- state ---- */

static char *state_json(engine_t *e, const ek_ranges_t *acked, bool complete)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "disk", json_object_new_string(e->p.disk_name));
    json_object_object_add(o, "target", json_object_new_string(e->p.target_path));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)e->size));
    json_object_object_add(o, "block_size", json_object_new_int64(e->V));
    json_object_object_add(o, "acked",
                           complete ? json_object_new_array() : ek_ranges_to_json(acked));
    json_object_object_add(o, "complete", json_object_new_boolean(complete));
    char *s = ek_json_dump(o, false);
    json_object_put(o);
    return s;
}

static void save_state(engine_t *e, const ek_ranges_t *acked, bool complete)
{
    if (!e->p.save_state)
        return;
    char *json = state_json(e, acked, complete);
    pthread_mutex_lock(&e->save_lock);
    ek_err_t *err = e->p.save_state(e->p.state_opaque, json);
    pthread_mutex_unlock(&e->save_lock);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "could not save the transfer state", "disk", e->p.disk_name,
                  "error", err->message, NULL);
        ek_err_free(err);
    }
    free(json);
}

static ek_err_t *load_resume(engine_t *e)
{
    if (!e->p.resume || !*e->p.resume)
        return NULL;
    _cleanup_json_ json_object *o = NULL;
    ek_err_t *err = ek_json_parse(e->p.resume, strlen(e->p.resume), &o);
    if (err)
        return ek_err_prefix(err, "transfer state of disk '%s'", e->p.disk_name);
    bool complete;
    int64_t size;
    const char *target;
    json_object *acked;
    if ((err = ek_json_opt_bool(o, "state", "complete", false, &complete)) ||
        (err = ek_json_opt_int(o, "state", "size", 0, &size)) ||
        (err = ek_json_opt_string(o, "state", "target", "", &target)) ||
        (err = ek_json_req_array(o, "state", "acked", &acked)))
        return ek_err_prefix(err, "transfer state of disk '%s'", e->p.disk_name);
    if (complete)
        return NULL; /* the last sync finished: this is a new one */
    if ((uint64_t)size != e->size)
        return ek_err_new(EK_E_CONFLICT,
                          "transfer state of disk '%s' is for %lld bytes, the source has %llu: "
                          "drop the state to start over",
                          e->p.disk_name, (long long)size, (unsigned long long)e->size);
    if (strcmp(target, e->p.target_path) != 0)
        return ek_err_new(EK_E_CONFLICT,
                          "transfer state of disk '%s' is for target \"%s\", not \"%s\"",
                          e->p.disk_name, target, e->p.target_path);
    if ((err = ek_ranges_from_json(acked, e->size, &e->prior)))
        return ek_err_prefix(err, "transfer state of disk '%s'", e->p.disk_name);
    ek_ranges_copy(&e->acked, &e->prior);
    if (e->prior.n)
        ek_log_kv(EK_LOG_INFO, "resuming: acknowledged ranges will not be sent again", "disk",
                  e->p.disk_name, NULL);
    return NULL;
}

/* ---- adaptive compression ---- */

static bool read_cpu(uint64_t *idle, uint64_t *total)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return false;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5)
        return false;
    *idle = v[3] + v[4];
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    return true;
}

/* Compression trades CPU for bytes on the wire: it pays when the senders
 * wait for the network (or the bandwidth limit) and the CPU has time to
 * spare, and costs time otherwise. Re-decided every 200 ms from those two
 * measures. Waiting senders do not tell a slow network from a slow writer
 * (its disk flushing, say), where compression cannot help: so compression
 * starts as a one-second trial, and stays only if the data went faster
 * than before it (in the second before, and on average since the start: a
 * writer that paused just before would flatter the trial); if not, it is
 * off for a while (2 s, doubling to 30 s while trials keep failing). Lock
 * held. A trial starts when the senders waited more than a quarter of the
 * time, in the last tick and over the last second, and the CPU was idle
 * more than a fifth of the last tick and a third of the last second: a
 * moment of idle CPU (the writer waiting for its disk) starts no trial, a
 * slow link, which leaves the CPU idle all along, does. */
static void compress_decide(engine_t *e, uint64_t now, double frac, double idle_frac, uint64_t wait,
                            uint64_t idle, uint64_t cpu)
{
    uint64_t data = __atomic_load_n(&e->st.data_bytes, __ATOMIC_RELAXED);
    unsigned k = e->ctl_n % CTL_HIST; /* the oldest tick kept, about to be replaced */
    bool have_ref = e->ctl_n >= CTL_HIST && now > e->ctl_t[k] && cpu > e->ctl_cpu[k];
    double ref = have_ref ? (double)(data - e->ctl_data[k]) * 1e9 / (double)(now - e->ctl_t[k]) : 0;
    /* A trial starts on the last second's measures, not one tick's: a
     * moment of idle CPU (the writer waiting for its disk) is no reason. */
    double wfrac = have_ref ? (double)(wait - e->ctl_wait[k]) /
                                  ((double)(now - e->ctl_t[k]) * (e->alive ? e->alive : 1))
                            : 0;
    double widle = have_ref ? (double)(idle - e->ctl_idle[k]) / (double)(cpu - e->ctl_cpu[k]) : 0;
    e->ctl_wait[k] = wait;
    e->ctl_idle[k] = idle;
    e->ctl_cpu[k] = cpu;
    if (!e->ctl_n) {
        e->ctl_t0 = now;
        e->ctl_data0 = data;
    } else if (now > e->ctl_t0) {
        ref = EK_MAX(ref, (double)(data - e->ctl_data0) * 1e9 / (double)(now - e->ctl_t0));
    }
    e->ctl_t[k] = now;
    e->ctl_data[k] = data;
    e->ctl_n++;
    if (e->trial) {
        if (now - e->trial_t0 < TRIAL_NS)
            return;
        double rate = (double)(data - e->trial_data0) * 1e9 / (double)(now - e->trial_t0);
        e->trial = false;
        if (rate > e->trial_ref * 1.1) {
            e->hold_ns = 0;
            return; /* it pays: stays on while the senders wait */
        }
        e->compress_now = false;
        e->hold_ns = e->hold_ns ? EK_MIN(e->hold_ns * 2, (uint64_t)HOLD_MAX_NS) : HOLD_MIN_NS;
        e->hold_until = now + e->hold_ns;
        ek_log_kv(EK_LOG_DEBUG, "compression did not speed the copy up: off for now", "disk",
                  e->p.disk_name, NULL);
        return;
    }
    if (!e->compress_now) {
        if (have_ref && wfrac > 0.25 && widle > 0.35 && frac > 0.25 && idle_frac > 0.2 &&
            now >= e->hold_until) {
            e->compress_now = e->trial = true;
            e->trial_t0 = now;
            e->trial_data0 = data;
            e->trial_ref = ref;
        }
    } else if (frac < 0.1 || idle_frac < 0.1) {
        e->compress_now = false;
    }
}

static bool compress_wanted(engine_t *e)
{
    uint64_t now = now_ns();
    pthread_mutex_lock(&e->lock);
    bool on = e->compress_now;
    if (now - e->ctl_last_ns < CTL_TICK) {
        pthread_mutex_unlock(&e->lock);
        return on;
    }
    uint64_t last = e->ctl_last_ns, stall = 0, idle = 0, total = 0;
    e->ctl_last_ns = now; /* this thread decides; the others go on */
    stall = __atomic_load_n(&e->throttle_ns, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < e->nconns; i++) {
        stall += e->conns[i].stall_ns;
        if (e->conns[i].s)
            stall += __atomic_load_n(&e->conns[i].s->write_wait_ns, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&e->lock);
    bool have_cpu = read_cpu(&idle, &total); /* file I/O: outside the lock */
    pthread_mutex_lock(&e->lock);
    if (have_cpu && last && total > e->cpu_total) {
        double dt = (double)(now - last) * (e->alive ? e->alive : 1);
        double frac = stall > e->ctl_stall ? (double)(stall - e->ctl_stall) / dt : 0;
        double idle_frac = (double)(idle - e->cpu_idle) / (double)(total - e->cpu_total);
        compress_decide(e, now, frac, idle_frac, stall, idle, total);
    }
    e->ctl_stall = stall;
    e->cpu_idle = idle;
    e->cpu_total = total;
    on = e->compress_now;
    pthread_mutex_unlock(&e->lock);
    return on;
}

/* Returns the compressed size in c->cbuf, or 0 to send the bytes as they are. */
static size_t maybe_compress(conn_t *c, const uint8_t *data, size_t len)
{
    engine_t *e = c->e;
    if (e->p.level == 0 || e->p.compress == EK_COMPRESS_OFF || len < 4096)
        return 0;
    if (e->p.compress == EK_COMPRESS_AUTO && !compress_wanted(e))
        return 0;
    /* A sample first: random data costs almost nothing to give up on. */
    size_t sl = len < 16384 ? len : 16384;
    size_t r = ZSTD_compressCCtx(c->cctx, c->cbuf, c->cbuf_cap, data, sl, e->p.level);
    if (ZSTD_isError(r) || r > sl - sl / 8)
        return 0;
    r = ZSTD_compressCCtx(c->cctx, c->cbuf, c->cbuf_cap, data, len, e->p.level);
    if (ZSTD_isError(r) || r >= len - len / 16)
        return 0;
    return r;
}

static void throttle(engine_t *e, size_t bytes)
{
    if (!e->p.bandwidth)
        return;
    pthread_mutex_lock(&e->bw_lock);
    double now = (double)now_ns() / 1e9;
    if (e->vt < now - 0.05)
        e->vt = now - 0.05; /* at most 50 ms of burst */
    e->vt += (double)bytes / (double)e->p.bandwidth;
    double wait = e->vt - now;
    pthread_mutex_unlock(&e->bw_lock);
    if (wait > 0) {
        /* Waiting for the bandwidth budget is waiting for the network. */
        uint64_t t0 = now_ns();
        sleep_ms((unsigned)(wait * 1000) + 1);
        __atomic_add_fetch(&e->throttle_ns, now_ns() - t0, __ATOMIC_RELAXED);
    }
}

/* ---- sending ---- */

/* Sends one WRITE. Returns false when the connection broke before the
 * request was registered (the caller keeps the range); once registered, a
 * lost connection re-queues it. data may be NULL for zeros; sum, when not
 * NULL, is the checksum already computed. */
static bool send_write(conn_t *c, const send_t *sd, uint8_t *data, const uint64_t *sum,
                       unsigned attempts)
{
    engine_t *e = c->e;
    uint16_t flags = 0;
    uint64_t checksum = 0;
    const uint8_t *payload = NULL;
    uint32_t plen = 0;
    if (sd->zero) {
        flags = EK_DP_WRITE_ZERO;
    } else {
        checksum = sum ? *sum : ek_dp_checksum(data, sd->len);
        if (e->p.corrupt_frame &&
            __atomic_add_fetch(&e->data_frames, 1, __ATOMIC_RELAXED) == e->p.corrupt_frame) {
            data[0] ^= 0x10; /* tests: the writer must refuse this chunk */
            ek_log_kv(EK_LOG_WARNING, "test: corrupted a data frame", "disk", e->p.disk_name, NULL);
        }
        size_t cl = maybe_compress(c, data, sd->len);
        if (cl) {
            payload = c->cbuf;
            plen = (uint32_t)cl;
            flags |= EK_DP_WRITE_COMP_ZSTD;
        } else {
            payload = data;
            plen = (uint32_t)sd->len;
        }
    }
    pthread_mutex_lock(&e->lock);
    uint64_t t0 = now_ns();
    while (c->inflight >= e->p.window && !c->broken && !e->fatal)
        pthread_cond_wait(&c->wcond, &e->lock);
    c->stall_ns += now_ns() - t0;
    if (c->broken || e->fatal) {
        pthread_mutex_unlock(&e->lock);
        return false;
    }
    slot_t *s = slot_free_one(c);
    s->id = ++e->next_id;
    s->type = EK_DP_WRITE;
    s->off = sd->off;
    s->len = sd->len;
    s->zero = sd->zero;
    s->attempts = attempts;
    c->inflight++;
    uint64_t id = s->id;
    pthread_mutex_unlock(&e->lock);

    throttle(e, EK_DP_WRITE_PREFIX + plen);
    uint8_t hdr[EK_DP_WRITE_PREFIX];
    ek_dp_write_encode(hdr, id, flags, sd->off, sd->len, checksum, plen);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, plen}};
    ek_err_t *err = ek_stream_writev(c->s, iov, plen ? 2 : 1);
    STAT_ADD(e, frames, 1);
    if (flags & EK_DP_WRITE_COMP_ZSTD)
        STAT_ADD(e, compressed_frames, 1);
    if (!sd->zero)
        STAT_ADD(e, payload_bytes, plen);
    if (err) {
        pthread_mutex_lock(&e->lock);
        conn_fail(c, err->message);
        pthread_mutex_unlock(&e->lock);
        ek_err_free(err);
    }
    return true;
}

/* Sends c->final (ranges inside buf, which starts at base); what could not
 * be sent goes back to the queue. */
static void send_all(conn_t *c, uint64_t base, uint8_t *buf, const uint64_t *whole_sum,
                     unsigned attempts)
{
    engine_t *e = c->e;
    for (size_t i = 0; i < c->final.n; i++) {
        send_t sd = c->final.v[i];
        uint64_t step = sd.zero ? MAX_ZERO_RUN : e->chunk_max;
        for (uint64_t o = sd.off; o < sd.off + sd.len;) {
            send_t piece = {o, EK_MIN(step, sd.off + sd.len - o), sd.zero};
            const uint64_t *sum =
                whole_sum && c->final.n == 1 && piece.len == sd.len ? whole_sum : NULL;
            if (!send_write(c, &piece, sd.zero ? NULL : buf + (o - base), sum, attempts)) {
                pthread_mutex_lock(&e->lock);
                push_retry(e, o, sd.off + sd.len - o, sd.zero, attempts);
                for (size_t j = i + 1; j < c->final.n; j++)
                    push_retry(e, c->final.v[j].off, c->final.v[j].len, c->final.v[j].zero,
                               attempts);
                pthread_mutex_unlock(&e->lock);
                return;
            }
            o += piece.len;
        }
    }
}

static void gap_to_final(uint64_t off, uint64_t len, void *opaque)
{
    void **a = opaque;
    sends_push(a[0], off, len, *(bool *)a[1]);
}

/* c->sends minus what an earlier run had acknowledged, into c->final. */
static void subtract_prior(conn_t *c)
{
    engine_t *e = c->e;
    c->final.n = 0;
    for (size_t i = 0; i < c->sends.n; i++) {
        send_t *sd = &c->sends.v[i];
        if (!e->prior.n) {
            sends_push(&c->final, sd->off, sd->len, sd->zero);
            continue;
        }
        size_t before = c->final.n;
        uint64_t sent = 0;
        void *a[2] = {&c->final, &sd->zero};
        ek_ranges_each_gap(&e->prior, sd->off, sd->len, gap_to_final, a);
        for (size_t j = before; j < c->final.n; j++)
            sent += c->final.v[j].len;
        STAT_ADD(e, resumed_bytes, sd->len - sent);
    }
}

/* Drops from c->final the zero ranges of a target that already reads as
 * zeros there (a file the writer created or grew for this sync), the way
 * qemu-img and nbdcopy skip zeros on a new target. They count as done. */
static void skip_known_zeros(conn_t *c)
{
    engine_t *e = c->e;
    size_t k = 0;
    uint64_t skipped = 0;
    for (size_t i = 0; i < c->final.n; i++) {
        send_t sd = c->final.v[i];
        if (sd.zero && sd.off + sd.len > e->zero_from) {
            uint64_t cut = EK_MAX(sd.off, e->zero_from);
            pthread_mutex_lock(&e->lock);
            ek_ranges_add(&e->acked, cut, sd.off + sd.len - cut);
            pthread_mutex_unlock(&e->lock);
            skipped += sd.off + sd.len - cut;
            sd.len = cut - sd.off;
            if (!sd.len)
                continue;
        }
        c->final.v[k++] = sd;
    }
    c->final.n = k;
    if (skipped) {
        STAT_ADD(e, skipped_zero_bytes, skipped);
        STAT_ADD(e, zero_bytes, skipped);
    }
}

/* Splits a data range of buf into data and zero pieces (64 KiB grain,
 * aligned on base) appended to c->sends. */
static void split_zeros(conn_t *c, uint64_t base, const uint8_t *buf, uint64_t off, uint64_t len)
{
    for (uint64_t x = off; x < off + len;) {
        uint64_t next = base + ((x - base) / ZERO_GRAIN + 1) * ZERO_GRAIN;
        uint64_t end = EK_MIN(next, off + len);
        sends_push(&c->sends, x, end - x, ek_dp_is_zero(buf + (x - base), end - x));
        x = end;
    }
}

static bool reader_failed(engine_t *e, ek_err_t *err)
{
    if (!err)
        return false;
    pthread_mutex_lock(&e->lock);
    fatal_set(e, ek_err_prefix(err, "disk '%s'", e->p.disk_name));
    pthread_mutex_unlock(&e->lock);
    return true;
}

static void do_data_unit(conn_t *c, work_t *w)
{
    engine_t *e = c->e;
    bool hashing = e->p.verify != EK_VERIFY_OFF;
    uint8_t *buf = c->buf;
    for (size_t i = 0; i < w->ext.n; i++) {
        ek_extent_t *x = &w->ext.v[i];
        uint8_t *p = buf + (x->offset - w->off);
        if (x->kind == EK_EXTENT_DATA || (x->kind == EK_EXTENT_UNCHANGED && hashing)) {
            if (reader_failed(e, e->ops->pread(e->reader, p, x->length, x->offset)))
                return;
            STAT_ADD(e, read_bytes, x->length);
        } else {
            memset(p, 0, x->length);
        }
    }
    c->refined.n = 0;
    for (size_t i = 0; i < w->ext.n; i++) {
        ek_extent_t *x = &w->ext.v[i];
        if (x->kind == EK_EXTENT_DATA && e->ops->changes) {
            if (reader_failed(e, e->ops->changes(e->reader, buf + (x->offset - w->off), x->offset,
                                                 x->length, &c->refined)))
                return;
        } else {
            ek_extents_push(&c->refined, x->offset, x->length, x->kind);
        }
    }
    c->sends.n = 0;
    for (size_t i = 0; i < c->refined.n; i++) {
        ek_extent_t *x = &c->refined.v[i];
        if (x->kind == EK_EXTENT_UNCHANGED)
            STAT_ADD(e, unchanged_bytes, x->length);
        else if (x->kind == EK_EXTENT_ZERO)
            sends_push(&c->sends, x->offset, x->length, true);
        else
            split_zeros(c, w->off, buf, x->offset, x->length);
    }
    subtract_prior(c);
    skip_known_zeros(c);
    bool touched = c->final.n || ek_ranges_intersects(&e->prior, w->off, w->len) ||
                   e->p.verify == EK_VERIFY_FULL;
    uint64_t hash = 0;
    if (hashing && touched) {
        hash = ek_dp_checksum(buf, w->len);
        touch(e, w->off / e->V, hash);
    }
    bool whole = hashing && touched && c->final.n == 1 && !c->final.v[0].zero &&
                 c->final.v[0].off == w->off && c->final.v[0].len == w->len;
    send_all(c, w->off, buf, whole ? &hash : NULL, 0);
}

static void do_zero_run(conn_t *c, work_t *w)
{
    engine_t *e = c->e;
    c->sends.n = 0;
    sends_push(&c->sends, w->off, w->len, true);
    subtract_prior(c);
    skip_known_zeros(c);
    bool touched = c->final.n || ek_ranges_intersects(&e->prior, w->off, w->len) ||
                   e->p.verify == EK_VERIFY_FULL;
    if (e->p.verify != EK_VERIFY_OFF && touched)
        for (uint64_t b = w->off / e->V; b < ek_dp_block_count(w->off + w->len, e->V); b++)
            touch(e, b, block_zero_hash(e, b));
    send_all(c, w->off, NULL, NULL, 0);
}

static void do_skip_run(conn_t *c, work_t *w)
{
    engine_t *e = c->e;
    STAT_ADD(e, unchanged_bytes, w->len);
    if (e->p.verify != EK_VERIFY_FULL)
        return;
    /* A full check needs the source's hash of blocks this sync leaves alone. */
    for (uint64_t off = w->off; off < w->off + w->len; off += e->V) {
        uint64_t b = off / e->V, len = EK_MIN((uint64_t)e->V, e->size - off), h;
        if (e->ops->block_hashes) {
            if (reader_failed(e, e->ops->block_hashes(e->reader, off, len, e->V, &h)))
                return;
        } else {
            if (reader_failed(e, e->ops->pread(e->reader, c->buf, len, off)))
                return;
            STAT_ADD(e, read_bytes, len);
            h = ek_dp_checksum(c->buf, len);
        }
        touch(e, b, h);
    }
}

static void do_retry(conn_t *c, work_t *w)
{
    engine_t *e = c->e;
    STAT_ADD(e, resent_bytes, w->len);
    c->final.n = 0;
    if (w->zero) {
        sends_push(&c->final, w->off, w->len, true);
        send_all(c, w->off, NULL, NULL, w->attempts);
        return;
    }
    /* Data goes back in pieces of at most a block. */
    for (uint64_t off = w->off; off < w->off + w->len; off += e->V) {
        uint64_t len = EK_MIN((uint64_t)e->V, w->off + w->len - off);
        if (reader_failed(e, e->ops->pread(e->reader, c->buf, len, off)))
            return;
        STAT_ADD(e, read_bytes, len);
        c->sends.n = 0;
        split_zeros(c, off, c->buf, off, len);
        c->final.n = 0;
        for (size_t i = 0; i < c->sends.n; i++)
            sends_push(&c->final, c->sends.v[i].off, c->sends.v[i].len, c->sends.v[i].zero);
        send_all(c, off, c->buf, NULL, w->attempts);
    }
}

/* ---- planning (lock held) ---- */

/* The kind of the extents from i that start before end; *mixed when they differ. */
static ek_extent_kind_t unit_kind(const ek_extents_t *x, size_t i, uint64_t end, bool *mixed)
{
    ek_extent_kind_t k = x->v[i].kind;
    *mixed = false;
    for (; i < x->n && x->v[i].offset < end; i++)
        if (x->v[i].kind != k)
            *mixed = true;
    return k;
}

/* Fetches the next window of extents (drops the lock meanwhile). */
static bool plan_window(engine_t *e)
{
    if (e->plan_pos >= e->size) {
        e->plan_done = true;
        pthread_cond_broadcast(&e->cond);
        return false;
    }
    uint64_t start = e->plan_pos, len = EK_MIN(PLAN_WINDOW, e->size - start);
    e->planning = true;
    pthread_mutex_unlock(&e->lock);
    ek_extents_t x = {0};
    ek_err_t *err = e->ops->extents(e->reader, start, len, &x);
    if (!err) {
        uint64_t pos = start;
        for (size_t i = 0; i < x.n && !err; i++) {
            if (x.v[i].offset != pos || !x.v[i].length)
                err = ek_err_new(EK_E_INTERNAL, "source reader '%s' returned extents with a gap",
                                 e->ops->name);
            pos += x.v[i].length;
        }
        if (!err && pos != start + len)
            err = ek_err_new(EK_E_INTERNAL, "source reader '%s' did not cover the range asked",
                             e->ops->name);
    }
    pthread_mutex_lock(&e->lock);
    e->planning = false;
    pthread_cond_broadcast(&e->cond);
    if (err) {
        ek_extents_release(&x);
        fatal_set(e, ek_err_prefix(err, "disk '%s'", e->p.disk_name));
        return false;
    }
    ek_extents_release(&e->win);
    e->win = x;
    e->win_i = 0;
    e->cur = start;
    e->plan_pos = start + len;
    return true;
}

/* The next work item, or false when there is none now. */
static bool take_work(engine_t *e, work_t *w)
{
    memset(w, 0, sizeof(*w));
    if (e->rq_head) {
        retry_t *r = e->rq_head;
        e->rq_head = r->next;
        if (!e->rq_head)
            e->rq_tail = NULL;
        w->kind = WK_RETRY;
        w->off = r->off;
        w->len = r->len;
        w->zero = r->zero;
        w->attempts = r->attempts;
        free(r);
        return true;
    }
    while (e->planning)
        pthread_cond_wait(&e->cond, &e->lock);
    if (e->fatal || e->plan_done)
        return false;
    if (e->win_i >= e->win.n && !plan_window(e))
        return false;
    if (e->rq_head) /* arrived while the lock was dropped */
        return take_work(e, w);
    /* The block at e->cur; whole blocks of one kind extend into runs. */
    uint64_t win_end = e->plan_pos;
    uint64_t s = e->cur, end = EK_MIN(s + e->V, win_end);
    while (e->win_i < e->win.n && e->win.v[e->win_i].offset + e->win.v[e->win_i].length <= s)
        e->win_i++;
    bool mixed;
    ek_extent_kind_t k = unit_kind(&e->win, e->win_i, end, &mixed);
    if (!mixed && k != EK_EXTENT_DATA) {
        /* Extend over following blocks wholly of the same kind. */
        uint64_t run_end = end;
        size_t i = e->win_i;
        while (run_end < win_end && run_end - s < MAX_ZERO_RUN) {
            uint64_t nend = EK_MIN(run_end + e->V, win_end);
            while (i < e->win.n && e->win.v[i].offset + e->win.v[i].length <= run_end)
                i++;
            bool m;
            if (unit_kind(&e->win, i, nend, &m) != k || m)
                break;
            run_end = nend;
        }
        w->kind = k == EK_EXTENT_ZERO ? WK_ZERO : WK_SKIP;
        w->off = s;
        w->len = run_end - s;
        end = run_end;
    } else {
        w->kind = WK_DATA;
        w->off = s;
        w->len = end - s;
        for (size_t i = e->win_i; i < e->win.n && e->win.v[i].offset < end; i++) {
            uint64_t a = EK_MAX(e->win.v[i].offset, s);
            uint64_t b = EK_MIN(e->win.v[i].offset + e->win.v[i].length, end);
            ek_extents_push(&w->ext, a, b - a, e->win.v[i].kind);
        }
    }
    e->cur = end;
    while (e->win_i < e->win.n && e->win.v[e->win_i].offset + e->win.v[e->win_i].length <= end)
        e->win_i++;
    if (e->cur >= win_end && e->plan_pos >= e->size)
        e->plan_done = true;
    return true;
}

/* ---- replies ---- */

static bool retryable(uint32_t code)
{
    return code == EK_DP_E_CHECKSUM || code == EK_DP_E_DECOMPRESS || code == EK_DP_E_IO ||
           code == EK_DP_E_INTERNAL;
}

/* Handles one reply (lock held). Returns a snapshot to save, if any. */
static ek_ranges_t *handle_reply(conn_t *c, const ek_dp_frame_t *f, const uint8_t *body)
{
    engine_t *e = c->e;
    slot_t *s = slot_find(c, f->h.id);
    if (!s || (f->h.type != EK_DP_ERROR && f->h.type != (0x80 | s->type))) {
        char msg[128];
        snprintf(msg, sizeof(msg), "unexpected %s reply (id %" PRIu64 ") from the writer",
                 ek_dp_type_name(f->h.type), f->h.id);
        conn_fail(c, msg);
        return NULL;
    }
    /* A plain acknowledgement concerns only this connection's sender: waking
     * every thread of the engine for each one costs more than the ack. */
    bool plain_ack = s->type == EK_DP_WRITE && f->h.type == EK_DP_WRITE_OK;
    char emsg[EK_DP_MAX_MESSAGE + 1] = "";
    if (f->h.type == EK_DP_ERROR) {
        memcpy(emsg, f->u.error.message, f->u.error.message_len);
        emsg[f->u.error.message_len] = 0;
    }
    ek_ranges_t *save = NULL;
    if (s->type == EK_DP_WRITE) {
        if (f->h.type == EK_DP_WRITE_OK) {
            ek_ranges_add(&e->acked, s->off, s->len);
            if (s->zero)
                STAT_ADD(e, zero_bytes, s->len);
            else
                STAT_ADD(e, data_bytes, s->len);
            e->since_flush += s->len;
            c->failures = 0;
            uint64_t now = now_ns();
            if (e->p.save_state && !e->flush_pending &&
                (e->since_flush >= e->p.state_every_bytes ||
                 now - e->last_save_ns >= (uint64_t)e->p.state_every_ms * 1000000u))
                e->flush_wanted = true;
        } else {
            uint32_t code = f->u.error.code;
            if (code == EK_DP_E_CHECKSUM)
                e->st.checksum_errors++;
            if (!retryable(code))
                fatal_set(e, ek_err_new(EK_E_PROTOCOL,
                                        "disk '%s': the writer refused the chunk "
                                        "at offset %" PRIu64 ": %s",
                                        e->p.disk_name, s->off, emsg));
            else if (s->attempts + 1 > e->p.retries)
                fatal_set(e, ek_err_new(EK_E_IO,
                                        "disk '%s': the chunk at offset %" PRIu64
                                        " failed %u times, last: %s",
                                        e->p.disk_name, s->off, s->attempts + 1, emsg));
            else {
                ek_log_kv(EK_LOG_WARNING, "chunk refused, sending it again", "disk", e->p.disk_name,
                          "error", emsg, NULL);
                push_retry(e, s->off, s->len, s->zero, s->attempts + 1);
            }
        }
        slot_clear(s);
        c->inflight--;
        pthread_cond_signal(&c->wcond);
    } else {
        if (f->h.type == EK_DP_ERROR) {
            s->err = ek_err_new(EK_E_IO, "disk '%s': the writer answered %s with an error: %s",
                                e->p.disk_name, ek_dp_type_name(s->type), emsg);
        } else if (f->h.length) {
            s->reply = ek_xmalloc(f->h.length);
            s->reply_len = f->h.length;
            memcpy(s->reply, body, f->h.length);
        }
        s->done = true;
        if (s->snapshot) {
            if (!s->err) {
                save = s->snapshot;
                s->snapshot = NULL;
            }
            e->flush_pending = false;
            e->last_save_ns = now_ns();
        }
        if (!s->waited)
            slot_clear(s);
    }
    if (!plain_ack || c->inflight == 0 || e->flush_wanted)
        pthread_cond_broadcast(&e->cond);
    return save;
}

static void *reader_main(void *arg)
{
    conn_t *c = arg;
    engine_t *e = c->e;
    ek_stream_t *s = c->s;
    uint8_t *body = ek_xmalloc(EK_DP_HASHES_FIXED + EK_DP_HASH_SIZE * EK_DP_MAX_HASH_BLOCKS);
    for (;;) {
        uint8_t hb[EK_DP_HEADER_SIZE];
        bool eof;
        ek_err_t *err = ek_stream_read_full(s, hb, sizeof(hb), &eof);
        ek_dp_header_t h;
        ek_dp_frame_t f;
        const char *why = "frame";
        ek_dp_errcode_t rc = EK_DP_OK;
        if (!err && !eof) {
            rc = ek_dp_header_decode(hb, &h);
            if (!rc && !(h.type & 0x80))
                rc = EK_DP_E_TYPE;
            if (!rc && h.type == EK_DP_WRITE)
                rc = EK_DP_E_TYPE;
            if (!rc)
                err = ek_stream_read_full(s, body, h.length, NULL);
            if (!err && !rc)
                rc = ek_dp_frame_decode(&h, body, &f, &why);
        }
        pthread_mutex_lock(&e->lock);
        if (err || eof || rc) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%s",
                     err   ? err->message
                     : eof ? "the writer closed the connection"
                           : "the writer sent a malformed frame");
            conn_fail(c, msg);
            pthread_mutex_unlock(&e->lock);
            ek_err_free(err);
            break;
        }
        ek_ranges_t *snap = handle_reply(c, &f, body);
        pthread_mutex_unlock(&e->lock);
        if (snap) {
            save_state(e, snap, false);
            ek_ranges_clear(snap);
            free(snap);
        }
    }
    free(body);
    return NULL;
}

/* ---- connections ---- */

static ek_err_t *read_reply(ek_stream_t *s, uint8_t *body, size_t cap, ek_dp_frame_t *f)
{
    uint8_t hb[EK_DP_HEADER_SIZE];
    bool eof;
    ek_err_t *err = ek_stream_read_full(s, hb, sizeof(hb), &eof);
    if (err)
        return err;
    if (eof)
        return ek_err_new(EK_E_UNAVAILABLE, "the writer closed the connection");
    ek_dp_header_t h;
    const char *why = "header";
    ek_dp_errcode_t rc = ek_dp_header_decode(hb, &h);
    if (!rc && h.length > cap)
        rc = EK_DP_E_TOO_LARGE;
    if (!rc && (err = ek_stream_read_full(s, body, h.length, NULL)))
        return err;
    if (!rc)
        rc = ek_dp_frame_decode(&h, body, f, &why);
    if (rc)
        return ek_err_new(EK_E_PROTOCOL, "malformed reply from the writer (%s: %s)",
                          ek_dp_error_name(rc), why ? why : "");
    return NULL;
}

/* Connects, opens the disk, starts the reader thread. */
static ek_err_t *conn_open(conn_t *c)
{
    engine_t *e = c->e;
    ek_stream_t *s = NULL;
    ek_err_t *err = e->p.connect(e->p.connect_target, &s);
    if (err)
        return err;
    size_t plen = strlen(e->p.target_path);
    uint8_t *frame = ek_xmalloc(EK_DP_HEADER_SIZE + EK_DP_OPEN_FIXED + plen);
    pthread_mutex_lock(&e->lock);
    uint64_t id = ++e->next_id;
    pthread_mutex_unlock(&e->lock);
    size_t n =
        ek_dp_open_encode(frame, id, e->size, e->p.open_flags, e->p.target_path, (uint16_t)plen);
    err = ek_stream_write_all(s, frame, n);
    free(frame);
    uint8_t body[EK_DP_ERROR_FIXED + EK_DP_MAX_MESSAGE];
    ek_dp_frame_t f;
    if (!err)
        err = read_reply(s, body, sizeof(body), &f);
    if (!err && f.h.type == EK_DP_ERROR) {
        uint32_t code = f.u.error.code;
        bool permanent = code == EK_DP_E_FORBIDDEN || code == EK_DP_E_NOT_FOUND ||
                         code == EK_DP_E_SIZE || code == EK_DP_E_MALFORMED;
        err = ek_err_new(permanent ? EK_E_INVALID : EK_E_IO, "the writer cannot open \"%s\": %.*s",
                         e->p.target_path, (int)f.u.error.message_len, f.u.error.message);
    } else if (!err && (f.h.type != EK_DP_OPEN_OK || f.h.id != id)) {
        err = ek_err_new(EK_E_PROTOCOL, "unexpected %s reply to OPEN", ek_dp_type_name(f.h.type));
    }
    if (err) {
        ek_stream_free(s);
        return err;
    }
    pthread_mutex_lock(&e->lock);
    if (f.u.open_ok.max_data < e->chunk_max)
        e->chunk_max = f.u.open_ok.max_data;
    if (!e->opened && f.u.open_ok.zero_from < e->zero_from) {
        e->zero_from = f.u.open_ok.zero_from;
        ek_log_kv(EK_LOG_DEBUG, "the target is new: zero ranges need not be sent", "disk",
                  e->p.disk_name, NULL);
    }
    c->s = s;
    c->broken = false;
    e->opened = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0)
        abort();
    c->reader_running = true;
    return NULL;
}

/* Closes a broken (or finished) connection; its unanswered requests go back
 * to the queue. Runs in the sender thread. */
static void conn_teardown(conn_t *c, bool graceful)
{
    engine_t *e = c->e;
    ek_stream_t *s = c->s;
    if (!s)
        return;
    if (graceful) {
        /* Tell the writer we are done, and let its close end our reader. */
        ek_stream_finish(s);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        if (c->reader_running && pthread_timedjoin_np(c->reader, NULL, &ts) == 0)
            c->reader_running = false;
    }
    pthread_mutex_lock(&e->lock);
    c->broken = true;
    pthread_mutex_unlock(&e->lock);
    ek_stream_shutdown(s);
    if (c->reader_running)
        pthread_join(c->reader, NULL);
    c->reader_running = false;
    pthread_mutex_lock(&e->lock);
    for (unsigned i = 0; i < c->nslots; i++) {
        slot_t *sl = &c->slots[i];
        if (!sl->type)
            continue;
        if (sl->type == EK_DP_WRITE) {
            push_retry(e, sl->off, sl->len, sl->zero, sl->attempts);
            slot_clear(sl);
        } else if (!sl->done) {
            if (sl->snapshot)
                e->flush_pending = false;
            sl->err = ek_err_new(EK_E_UNAVAILABLE, "connection lost before the %s reply",
                                 ek_dp_type_name(sl->type));
            sl->done = true;
            if (!sl->waited)
                slot_clear(sl);
        }
    }
    c->inflight = 0;
    uint64_t wo = 0, wi = 0;
    ek_stream_wire_bytes(s, &wo, &wi);
    c->wire_out += wo;
    c->wire_in += wi;
    c->s = NULL;
    c->broken = false;
    if (!e->closing)
        e->st.reconnects++;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    ek_stream_free(s);
}

/* Sends queued control requests (lock held; dropped while writing). */
static bool send_ctrl(conn_t *c)
{
    engine_t *e = c->e;
    for (unsigned i = 0; i < c->nslots; i++) {
        slot_t *sl = &c->slots[i];
        if (!sl->type || !sl->queued)
            continue;
        sl->queued = false;
        uint8_t frame[FRAME_SMALL];
        size_t n = sl->frame_len;
        memcpy(frame, sl->frame, n);
        pthread_mutex_unlock(&e->lock);
        ek_err_t *err = ek_stream_write_all(c->s, frame, n);
        pthread_mutex_lock(&e->lock);
        if (err) {
            conn_fail(c, err->message);
            ek_err_free(err);
        }
        return true;
    }
    return false;
}

/* Queues a control request on c (lock held); returns its slot. */
static slot_t *ctrl_queue(conn_t *c, uint8_t type, bool waited)
{
    engine_t *e = c->e;
    slot_t *sl = slot_free_one(c);
    if (!sl)
        return NULL;
    sl->id = ++e->next_id;
    sl->type = type;
    sl->queued = true;
    sl->waited = waited;
    pthread_cond_broadcast(&e->cond);
    return sl;
}

static void queue_state_flush(conn_t *c)
{
    engine_t *e = c->e;
    slot_t *sl = ctrl_queue(c, EK_DP_FLUSH, false);
    if (!sl)
        return;
    sl->frame_len = ek_dp_simple_encode(sl->frame, EK_DP_FLUSH, sl->id);
    sl->snapshot = ek_xcalloc(1, sizeof(ek_ranges_t));
    ek_ranges_copy(sl->snapshot, &e->acked);
    e->flush_pending = true;
    e->flush_wanted = false;
    e->since_flush = 0;
}

static void *sender_main(void *arg)
{
    conn_t *c = arg;
    engine_t *e = c->e;
    pthread_mutex_lock(&e->lock);
    while (!e->stop && !e->fatal) {
        if (!c->s) {
            if (c->idx > 0 && !e->opened) {
                cond_wait_ms(e, 100); /* the first connection opens (and maybe creates) it */
                continue;
            }
            pthread_mutex_unlock(&e->lock);
            ek_err_t *err = conn_open(c);
            pthread_mutex_lock(&e->lock);
            if (!err)
                continue;
            c->failures++;
            snprintf(e->last_conn_error, sizeof(e->last_conn_error), "%s", err->message);
            bool permanent =
                err->code == EK_E_INVALID || err->code == EK_E_AUTH || err->code == EK_E_PROTOCOL;
            if (permanent) {
                fatal_set(e, ek_err_prefix(err, "disk '%s'", e->p.disk_name));
                break;
            }
            bool waiting =
                !e->opened && err->code == EK_E_UNAVAILABLE &&
                now_ns() - e->started_ns < (uint64_t)e->p.first_open_wait_ms * UINT64_C(1000000);
            if (!waiting || c->failures == 1)
                ek_log_kv(waiting ? EK_LOG_INFO : EK_LOG_WARNING,
                          waiting ? "the writer does not answer yet, waiting for it"
                                  : "cannot reach the writer, will retry",
                          "disk", e->p.disk_name, "error", err->message, NULL);
            ek_err_free(err);
            if (c->failures > e->p.retries && !waiting) {
                c->dead = true;
                if (!e->opened)
                    fatal_set(e, ek_err_new(EK_E_UNAVAILABLE,
                                            "disk '%s': cannot reach the writer (%u attempts in "
                                            "%.0f s): %s",
                                            e->p.disk_name, c->failures,
                                            (double)(now_ns() - e->started_ns) / 1e9,
                                            e->last_conn_error));
                else if (--e->alive == 0)
                    fatal_set(e, ek_err_new(EK_E_UNAVAILABLE,
                                            "disk '%s': every connection to the writer failed %u "
                                            "times; last error: %s",
                                            e->p.disk_name, e->p.retries + 1, e->last_conn_error));
                pthread_cond_broadcast(&e->cond);
                break;
            }
            unsigned ms = 100u << EK_MIN(c->failures, 6u);
            pthread_mutex_unlock(&e->lock);
            sleep_ms(EK_MIN(ms, 5000u));
            pthread_mutex_lock(&e->lock);
            continue;
        }
        if (c->broken) {
            pthread_mutex_unlock(&e->lock);
            conn_teardown(c, false);
            sleep_ms(100);
            pthread_mutex_lock(&e->lock);
            continue;
        }
        if (send_ctrl(c))
            continue;
        if (e->flush_wanted && !e->flush_pending) {
            queue_state_flush(c);
            continue;
        }
        work_t w;
        if (!take_work(e, &w)) {
            cond_wait_ms(e, 100);
            continue;
        }
        e->busy++;
        pthread_mutex_unlock(&e->lock);
        switch (w.kind) {
        case WK_DATA:
            do_data_unit(c, &w);
            break;
        case WK_ZERO:
            do_zero_run(c, &w);
            break;
        case WK_SKIP:
            do_skip_run(c, &w);
            break;
        case WK_RETRY:
            do_retry(c, &w);
            break;
        }
        ek_extents_release(&w.ext);
        pthread_mutex_lock(&e->lock);
        /* Only the end of the work is news (wait_idle): a wake-up per block
         * of every thread waiting on cond costs more than the block's acks. */
        if (--e->busy == 0 && e->plan_done)
            pthread_cond_broadcast(&e->cond);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* ---- the caller's side ---- */

static uint64_t total_inflight(engine_t *e)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < e->nconns; i++)
        n += e->conns[i].inflight;
    return n;
}

static void stats_snapshot(engine_t *e, ek_xfer_stats_t *out)
{
    *out = e->st;
    out->wire_out = out->wire_in = 0;
    for (unsigned i = 0; i < e->nconns; i++) {
        conn_t *c = &e->conns[i];
        out->wire_out += c->wire_out;
        out->wire_in += c->wire_in;
        if (c->s) {
            uint64_t o, in;
            ek_stream_wire_bytes(c->s, &o, &in);
            out->wire_out += o;
            out->wire_in += in;
        }
    }
    out->seconds = (double)(now_ns() - e->t0_ns) / 1e9;
}

static void report_progress(engine_t *e)
{
    if (!e->p.progress)
        return;
    ek_xfer_stats_t st;
    stats_snapshot(e, &st);
    pthread_mutex_unlock(&e->lock);
    e->p.progress(e->p.progress_opaque, &st);
    pthread_mutex_lock(&e->lock);
}

static void check_stop(engine_t *e)
{
    if (e->p.should_stop && !e->fatal && e->p.should_stop(e->p.stop_opaque))
        fatal_set(e, ek_err_new(EK_E_CANCELED, "disk '%s': transfer canceled", e->p.disk_name));
}

/* Waits until every block was handled and acknowledged (lock held). */
static void wait_idle(engine_t *e)
{
    uint64_t last = now_ns();
    while (!e->fatal && !(e->plan_done && !e->rq_head && !e->busy && !total_inflight(e))) {
        cond_wait_ms(e, 200);
        check_stop(e);
        if (now_ns() - last >= 1000000000u) {
            report_progress(e);
            last = now_ns();
        }
    }
}

static conn_t *live_conn(engine_t *e, unsigned hint)
{
    for (unsigned k = 0; k < e->nconns; k++) {
        conn_t *c = &e->conns[(hint + k) % e->nconns];
        if (c->s && !c->broken && !c->dead)
            return c;
    }
    return NULL;
}

/* Queues a control request on a live connection and waits for its answer
 * (lock held). body/len receive the reply body (caller frees). */
static ek_err_t *rpc(engine_t *e, unsigned hint, uint8_t type, uint64_t off, uint64_t len,
                     uint8_t **body, size_t *blen)
{
    for (unsigned attempt = 0;; attempt++) {
        conn_t *c;
        while (!(c = live_conn(e, hint)) && !e->fatal && e->alive)
            cond_wait_ms(e, 100);
        if (!c)
            return ek_err_new(EK_E_UNAVAILABLE, "disk '%s': no connection to the writer left",
                              e->p.disk_name);
        slot_t *sl = ctrl_queue(c, type, true);
        if (!sl) {
            cond_wait_ms(e, 50);
            continue;
        }
        uint64_t id = sl->id;
        if (type == EK_DP_HASH)
            sl->frame_len = ek_dp_hash_encode(sl->frame, id, off, len, e->V);
        else
            sl->frame_len = ek_dp_simple_encode(sl->frame, type, id);
        while (!sl->done && !e->fatal) {
            cond_wait_ms(e, 200);
            check_stop(e);
        }
        ek_err_t *err = sl->err;
        sl->err = NULL;
        if (!err && !sl->done)
            err = ek_err_new(EK_E_CANCELED, "transfer failed");
        if (body) {
            *body = sl->reply;
            *blen = sl->reply_len;
            sl->reply = NULL;
        }
        slot_clear(sl);
        if (err && err->code == EK_E_UNAVAILABLE && attempt < e->p.retries && !e->fatal) {
            ek_err_free(err);
            continue; /* the connection broke: ask again on another */
        }
        return err;
    }
}

/* Compares the writer's hashes of blocks [first, first+count) with ours;
 * appends the differing blocks to bad (lock held). */
static ek_err_t *verify_range(engine_t *e, unsigned hint, uint64_t first, uint64_t count,
                              uint64_t **bad, size_t *nbad)
{
    uint64_t off = first * e->V, len = EK_MIN(count * e->V, e->size - off);
    uint8_t *body = NULL;
    size_t blen = 0;
    ek_err_t *err = rpc(e, hint, EK_DP_HASH, off, len, &body, &blen);
    if (err)
        return err;
    ek_dp_header_t h = {.type = EK_DP_HASHES, .length = (uint32_t)blen};
    ek_dp_frame_t f;
    if (!body || ek_dp_frame_decode(&h, body, &f, NULL) || f.u.hashes.offset != off ||
        f.u.hashes.block_size != e->V || f.u.hashes.count != count) {
        free(body);
        return ek_err_new(EK_E_PROTOCOL, "disk '%s': the writer's hashes do not match the request",
                          e->p.disk_name);
    }
    for (uint64_t i = 0; i < count; i++) {
        if (ek_dp_hash_get(f.u.hashes.hashes + i * EK_DP_HASH_SIZE) != e->hashes[first + i]) {
            *bad = ek_xrealloc(*bad, (*nbad + 1) * sizeof(uint64_t));
            (*bad)[(*nbad)++] = first + i;
        }
    }
    e->st.verified_blocks += count;
    free(body);
    return NULL;
}

/* The blocks to check: touched runs of at most VERIFY_REQ blocks. Requests
 * go round the connections, so that the writer hashes in parallel. */
typedef struct vreq {
    uint64_t first, count;
} vreq_t;

typedef struct vjob {
    engine_t *e;
    vreq_t *reqs;
    size_t n, next;
    uint64_t *bad;
    size_t nbad;
    ek_err_t *err;
} vjob_t;

static void *verify_worker(void *arg)
{
    vjob_t *j = arg;
    engine_t *e = j->e;
    pthread_mutex_lock(&e->lock);
    while (j->next < j->n && !j->err && !e->fatal) {
        size_t k = j->next++;
        ek_err_t *err =
            verify_range(e, (unsigned)k, j->reqs[k].first, j->reqs[k].count, &j->bad, &j->nbad);
        if (err && !j->err)
            j->err = err;
        else
            ek_err_free(err);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static ek_err_t *verify_blocks(engine_t *e, const uint64_t *blocks, size_t nblocks_list,
                               bool all_touched, uint64_t **bad, size_t *nbad)
{
    vjob_t j = {.e = e};
    size_t alloc = 0;
    uint64_t b = 0, i = 0;
    for (;;) {
        uint64_t first;
        if (all_touched) {
            while (b < e->nblocks && !is_touched(e, b))
                b++;
            if (b >= e->nblocks)
                break;
            first = b;
            while (b < e->nblocks && is_touched(e, b) && b - first < VERIFY_REQ)
                b++;
        } else {
            if (i >= nblocks_list)
                break;
            first = blocks[i++];
            b = first + 1;
        }
        if (j.n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            j.reqs = ek_xrealloc(j.reqs, alloc * sizeof(vreq_t));
        }
        j.reqs[j.n++] = (vreq_t){first, b - first};
    }
    /* Requests in flight: two per connection, from helper threads. */
    unsigned nthreads = EK_MIN((unsigned)j.n, e->nconns * 2);
    pthread_t *th = ek_xcalloc(nthreads ? nthreads : 1, sizeof(pthread_t));
    pthread_mutex_unlock(&e->lock);
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, verify_worker, &j) != 0)
            abort();
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_lock(&e->lock);
    free(th);
    free(j.reqs);
    *bad = j.bad;
    *nbad = j.nbad;
    return j.err;
}

typedef struct flush_job {
    engine_t *e;
    ek_err_t *err;
} flush_job_t;

static void *final_flush(void *arg)
{
    flush_job_t *j = arg;
    pthread_mutex_lock(&j->e->lock);
    j->err = rpc(j->e, 0, EK_DP_FLUSH, 0, 0, NULL, NULL);
    pthread_mutex_unlock(&j->e->lock);
    return NULL;
}

/* Every chunk is acknowledged: the final FLUSH makes them durable while the
 * hashes are compared (the writer answers those from its record of what
 * it wrote, or reads the blocks back with O_DIRECT, which sees the bytes
 * whether or not the device has flushed them). Lock held. */
static ek_err_t *verify(engine_t *e)
{
    uint64_t t0 = now_ns();
    uint64_t *bad = NULL, *bad2 = NULL;
    size_t nbad = 0, nbad2 = 0;
    flush_job_t fj = {.e = e};
    pthread_t ft;
    pthread_mutex_unlock(&e->lock);
    if (pthread_create(&ft, NULL, final_flush, &fj) != 0)
        abort();
    pthread_mutex_lock(&e->lock);
    ek_err_t *err = verify_blocks(e, NULL, 0, true, &bad, &nbad);
    pthread_mutex_unlock(&e->lock);
    pthread_join(ft, NULL);
    pthread_mutex_lock(&e->lock);
    if (!err)
        err = fj.err;
    else
        ek_err_free(fj.err);
    if (!err && nbad) {
        e->st.verify_mismatches += nbad;
        ek_log_kv(EK_LOG_WARNING, "blocks differ on the target: sending them again", "disk",
                  e->p.disk_name, NULL);
        for (size_t i = 0; i < nbad; i++) {
            uint64_t off = bad[i] * e->V;
            push_retry(e, off, EK_MIN((uint64_t)e->V, e->size - off), false, 0);
        }
        wait_idle(e);
        if (e->fatal)
            err = ek_err_new(EK_E_IO, "%s", e->fatal->message);
        if (!err)
            err = rpc(e, 0, EK_DP_FLUSH, 0, 0, NULL, NULL);
        if (!err)
            err = verify_blocks(e, bad, nbad, false, &bad2, &nbad2);
        if (!err && nbad2) {
            uint64_t off = bad2[0] * e->V;
            err = ek_err_new(EK_E_IO,
                             "disk '%s': block at offset %" PRIu64 " (%" PRIu64 " bytes) differs "
                             "on the target after it was sent again (%zu such blocks); the "
                             "source may be changing under the copy, or the target is failing",
                             e->p.disk_name, off, EK_MIN((uint64_t)e->V, e->size - off), nbad2);
        }
    }
    free(bad);
    free(bad2);
    e->st.verify_seconds = (double)(now_ns() - t0) / 1e9;
    return err;
}

static unsigned default_connections(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return (unsigned)EK_MIN(EK_MAX(n, 2), 8);
}

ek_err_t *ek_xfer_run(const ek_reader_ops_t *ops, void *reader, uint64_t size,
                      const ek_xfer_params_t *params, ek_xfer_stats_t *stats)
{
    engine_t *e = ek_xcalloc(1, sizeof(*e));
    e->ops = ops;
    e->reader = reader;
    e->size = size;
    e->p = *params;
    if (!e->p.disk_name)
        e->p.disk_name = "disk";
    if (!e->p.connections)
        e->p.connections = default_connections();
    if (!e->p.window)
        e->p.window = 64;
    if (!e->p.retries)
        e->p.retries = 5;
    if (!e->p.first_open_wait_ms)
        e->p.first_open_wait_ms = 120000;
    e->started_ns = now_ns();
    if (!e->p.state_every_bytes)
        e->p.state_every_bytes = UINT64_C(256) << 20;
    if (!e->p.state_every_ms)
        e->p.state_every_ms = 10000;
    e->V = e->p.block_size ? e->p.block_size : (1u << 20);
    ek_err_t *err = NULL;
    if (e->V < ZERO_GRAIN || e->V > (16u << 20) || (e->V & (e->V - 1))) {
        err = ek_err_new(EK_E_INVALID, "block size %u: use a power of two from 64 KiB to 16 MiB",
                         e->V);
        free(e);
        return err;
    }
    while (ek_dp_block_count(size, e->V) > MAX_BLOCKS && e->V < (16u << 20))
        e->V *= 2; /* bounded memory whatever the disk size */
    e->nblocks = ek_dp_block_count(size, e->V);
    e->chunk_max = e->V;
    e->zero_from = size;
    e->hashes = ek_xcalloc(e->nblocks, sizeof(uint64_t));
    e->touched = ek_xcalloc((e->nblocks + 7) / 8, 1);
    {
        uint8_t *z = ek_xcalloc(1, e->V);
        e->zero_hash = ek_dp_checksum(z, e->V);
        e->zero_hash_tail = size % e->V ? ek_dp_checksum(z, size % e->V) : e->zero_hash;
        free(z);
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    pthread_mutex_init(&e->save_lock, NULL);
    pthread_mutex_init(&e->bw_lock, NULL);
    e->st.size = size;
    e->t0_ns = now_ns();
    e->last_save_ns = e->t0_ns;
    if ((err = load_resume(e)))
        goto out_free;

    e->nconns = e->p.connections;
    e->alive = e->nconns;
    e->st.connections = e->nconns;
    e->conns = ek_xcalloc(e->nconns, sizeof(conn_t));
    for (unsigned i = 0; i < e->nconns; i++) {
        conn_t *c = &e->conns[i];
        c->e = e;
        c->idx = i;
        pthread_cond_init(&c->wcond, NULL);
        c->nslots = e->p.window + CTRL_SLOTS;
        c->slots = ek_xcalloc(c->nslots, sizeof(slot_t));
        c->buf = ek_xmalloc(e->V);
        if (e->p.level && e->p.compress != EK_COMPRESS_OFF) {
            c->cctx = ZSTD_createCCtx();
            c->cbuf_cap = ZSTD_compressBound(e->V);
            c->cbuf = ek_xmalloc(c->cbuf_cap);
        }
    }
    for (unsigned i = 0; i < e->nconns; i++) {
        if (pthread_create(&e->conns[i].sender, NULL, sender_main, &e->conns[i]) != 0)
            abort();
        e->conns[i].sender_started = true;
    }

    pthread_mutex_lock(&e->lock);
    wait_idle(e);
    if (!e->fatal && e->p.verify != EK_VERIFY_OFF)
        err = verify(e);
    else if (!e->fatal)
        err = rpc(e, 0, EK_DP_FLUSH, 0, 0, NULL, NULL);
    if (!err && e->fatal)
        err = ek_err_new(e->fatal->code, "%s", e->fatal->message);
    /* Close the disk on every connection, then the connections. */
    if (!err)
        for (unsigned i = 0; i < e->nconns; i++)
            if (e->conns[i].s && !e->conns[i].broken) {
                ek_err_t *cerr = rpc(e, i, EK_DP_CLOSE, 0, 0, NULL, NULL);
                ek_err_free(cerr);
            }
    e->closing = true;
    e->stop = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->nconns; i++)
        if (e->conns[i].sender_started)
            pthread_join(e->conns[i].sender, NULL);
    for (unsigned i = 0; i < e->nconns; i++)
        conn_teardown(&e->conns[i], !err);

    if (!err) {
        e->st.complete = true;
        save_state(e, NULL, true);
        if (ops->commit && (err = ops->commit(reader)))
            err = ek_err_prefix(err, "disk '%s'", e->p.disk_name);
    } else if (e->p.save_state) {
        ek_log_kv(EK_LOG_INFO, "transfer stopped; the state saved last lets it resume", "disk",
                  e->p.disk_name, NULL);
    }
out_free:
    pthread_mutex_lock(&e->lock);
    if (stats)
        stats_snapshot(e, stats);
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->nconns; i++) {
        conn_t *c = &e->conns[i];
        for (unsigned k = 0; k < c->nslots; k++)
            slot_clear(&c->slots[k]);
        free(c->slots);
        free(c->buf);
        free(c->cbuf);
        ZSTD_freeCCtx(c->cctx);
        free(c->sends.v);
        free(c->final.v);
        ek_extents_release(&c->refined);
        pthread_cond_destroy(&c->wcond);
    }
    free(e->conns);
    while (e->rq_head) {
        retry_t *r = e->rq_head;
        e->rq_head = r->next;
        free(r);
    }
    ek_extents_release(&e->win);
    ek_ranges_clear(&e->acked);
    ek_ranges_clear(&e->prior);
    ek_err_free(e->fatal);
    free(e->hashes);
    free(e->touched);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->save_lock);
    pthread_mutex_destroy(&e->bw_lock);
    free(e);
    return err;
}
