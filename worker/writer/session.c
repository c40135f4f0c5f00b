/* session.c - one client session of ekman-writer: reads frames, hands chunks
 * to the pool (decompress, verify the checksum, write) and answers each
 * request, in whatever order the chunks finish.
 *
 * The header of a frame is checked before its body is read or any memory
 * reserved for it; a header that cannot be trusted ends the session (the
 * stream is out of step), a body that is wrong only fails its request. A
 * chunk is written only after its checksum matched, and acknowledged only
 * after it was written. CLOSE waits for the session's chunks; FLUSH waits
 * for those received before it, in a thread of its own, so that the chunks
 * after it go on being read and written while the disk flushes. */
#include "worker/writer/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/threadpool.h"

/* A buffer kept for reuse: fresh memory costs a page fault per 4 KiB, which
 * for 1 MiB chunks at GB/s is much of the writer's time. The header takes
 * the first page; the data page-aligned after it, so that a chunk can go to
 * the disk with O_DIRECT. buf_get(w, len, skew) returns data - skew: a frame
 * body read there has its payload, skew bytes in, on the page boundary. */
typedef struct buf {
    struct buf *next;
    size_t cap; /* bytes from data */
} buf_t;

#define BUF_HEAD EK_WRITER_ALIGN
_Static_assert(sizeof(buf_t) + EK_DP_WRITE_FIXED <= BUF_HEAD, "the header page holds the skew");

static uint8_t *buf_data(buf_t *b)
{
    return (uint8_t *)b + BUF_HEAD;
}

struct ek_writer {
    ek_writer_opts_t opts;
    ek_threadpool_t *pool;
    pthread_mutex_t mem_lock;
    pthread_cond_t mem_cond;
    size_t mem_used;
    buf_t *free_bufs;
    size_t free_bytes;
    pthread_key_t dctx_key;
};

static uint8_t *buf_get(ek_writer_t *w, size_t len, size_t skew)
{
    len = len > skew ? len - skew : 0; /* bytes needed from the aligned data */
    pthread_mutex_lock(&w->mem_lock);
    for (buf_t **pp = &w->free_bufs; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= len) {
            buf_t *b = *pp;
            *pp = b->next;
            w->free_bytes -= b->cap;
            pthread_mutex_unlock(&w->mem_lock);
            return buf_data(b) - skew;
        }
    }
    pthread_mutex_unlock(&w->mem_lock);
    size_t cap = len < (1u << 20) ? (1u << 20) : len;
    cap = (cap + EK_WRITER_ALIGN - 1) & ~(size_t)(EK_WRITER_ALIGN - 1);
    void *mem = NULL;
    if (posix_memalign(&mem, EK_WRITER_ALIGN, BUF_HEAD + cap) != 0)
        abort();
    buf_t *b = mem;
    b->cap = cap;
    return buf_data(b) - skew;
}

static void buf_put(ek_writer_t *w, uint8_t *data)
{
    if (!data)
        return;
    /* data is in the header page (skewed) or at the start of the data. */
    buf_t *b = (buf_t *)(((uintptr_t)data - 1) & ~(uintptr_t)(EK_WRITER_ALIGN - 1));
    pthread_mutex_lock(&w->mem_lock);
    if (w->free_bytes + b->cap <= w->opts.max_memory) {
        b->next = w->free_bufs;
        w->free_bufs = b;
        w->free_bytes += b->cap;
        b = NULL;
    }
    pthread_mutex_unlock(&w->mem_lock);
    free(b);
}

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

ek_writer_t *ek_writer_new(const ek_writer_opts_t *opts)
{
    ek_writer_t *w = ek_xcalloc(1, sizeof(*w));
    w->opts = *opts;
    if (!w->opts.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        w->opts.threads = n > 0 ? (size_t)n : 2;
    }
    if (!w->opts.max_memory)
        w->opts.max_memory = 128u << 20;
    if (!w->opts.max_data || w->opts.max_data > EK_DP_MAX_DATA)
        w->opts.max_data = EK_DP_MAX_DATA;
    if (!w->opts.timeout_ms)
        w->opts.timeout_ms = 10 * 60 * 1000;
    pthread_mutex_init(&w->mem_lock, NULL);
    pthread_cond_init(&w->mem_cond, NULL);
    pthread_key_create(&w->dctx_key, dctx_free);
    w->pool = ek_threadpool_new(w->opts.threads, w->opts.threads * 2);
    return w;
}

void ek_writer_free(ek_writer_t *w)
{
    if (!w)
        return;
    ek_threadpool_free(w->pool);
    while (w->free_bufs) {
        buf_t *b = w->free_bufs;
        w->free_bufs = b->next;
        free(b);
    }
    pthread_key_delete(w->dctx_key);
    pthread_mutex_destroy(&w->mem_lock);
    pthread_cond_destroy(&w->mem_cond);
    free(w);
}

const ek_writer_opts_t *ek_writer_opts(const ek_writer_t *w)
{
    return &w->opts;
}

/* Waits for n bytes of the memory budget. A frame larger than the whole
 * budget still goes through, alone. */
static void mem_acquire(ek_writer_t *w, size_t n)
{
    pthread_mutex_lock(&w->mem_lock);
    while (w->mem_used && w->mem_used + n > w->opts.max_memory)
        pthread_cond_wait(&w->mem_cond, &w->mem_lock);
    w->mem_used += n;
    pthread_mutex_unlock(&w->mem_lock);
}

static void mem_release(ek_writer_t *w, size_t n)
{
    pthread_mutex_lock(&w->mem_lock);
    w->mem_used -= n;
    pthread_cond_broadcast(&w->mem_cond);
    pthread_mutex_unlock(&w->mem_lock);
}

/* Generations of requests: each FLUSH starts a new one, and waits for the
 * jobs of its own and of the earlier ones. Counters are kept for the last
 * FLUSH_GENS; a client with more flushes waiting than that is made to wait. */
#define FLUSH_GENS 8

typedef struct session {
    ek_writer_t *w;
    ek_stream_t *s;
    const char *peer;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t inflight;
    uint64_t gen;                /* generation of the requests read now */
    size_t gen_jobs[FLUSH_GENS]; /* jobs in flight, by generation % FLUSH_GENS */
    bool broken;                 /* a reply could not be sent */
    ek_writer_disk_t *disk;
    uint64_t written, zeroed, rejected;
    uint64_t hashed, hashed_recorded; /* blocks hashed, of which from the record */
    uint64_t direct, buffered;        /* bytes written with O_DIRECT, through the cache */
} session_t;

typedef struct job {
    session_t *ss;
    ek_dp_frame_t f;
    uint8_t *body;
    size_t reserved; /* memory budget held */
    uint64_t gen;    /* session generation it counts in */
} job_t;

static void send_reply(session_t *ss, const uint8_t *buf, size_t len, const uint8_t *extra,
                       size_t extra_len)
{
    struct iovec iov[2] = {{(void *)buf, len}, {(void *)extra, extra_len}};
    ek_err_t *err = ek_stream_writev(ss->s, iov, extra_len ? 2 : 1);
    if (err) {
        pthread_mutex_lock(&ss->lock);
        if (!ss->broken)
            ek_log_kv(EK_LOG_WARNING, "cannot answer the client", "peer", ss->peer, "error",
                      err->message, NULL);
        ss->broken = true;
        pthread_mutex_unlock(&ss->lock);
        ek_stream_shutdown(ss->s);
        ek_err_free(err);
    }
}

static void send_error(session_t *ss, uint64_t id, uint32_t code, const char *fmt, ...)
    EK_PRINTF(4, 5);
static void send_error(session_t *ss, uint64_t id, uint32_t code, const char *fmt, ...)
{
    char msg[EK_DP_MAX_MESSAGE + 1];
    uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_ERROR_FIXED + EK_DP_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ek_log_kv(code == EK_DP_E_CHECKSUM ? EK_LOG_WARNING : EK_LOG_INFO, "request refused", "peer",
              ss->peer, "code", ek_dp_error_name(code), "error", msg, NULL);
    send_reply(ss, buf, ek_dp_error_encode(buf, id, code, msg), NULL, 0);
}

static void send_simple(session_t *ss, uint8_t type, uint64_t id)
{
    uint8_t buf[EK_DP_HEADER_SIZE];
    send_reply(ss, buf, ek_dp_simple_encode(buf, type, id), NULL, 0);
}

static ZSTD_DCtx *thread_dctx(ek_writer_t *w)
{
    ZSTD_DCtx *d = pthread_getspecific(w->dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (!d)
            abort();
        pthread_setspecific(w->dctx_key, d);
    }
    return d;
}

static void job_done(job_t *job)
{
    session_t *ss = job->ss;
    buf_put(ss->w, job->body);
    mem_release(ss->w, job->reserved);
    pthread_mutex_lock(&ss->lock);
    ss->inflight--;
    ss->gen_jobs[job->gen % FLUSH_GENS]--;
    pthread_cond_broadcast(&ss->cond);
    pthread_mutex_unlock(&ss->lock);
    free(job);
}

static void job_write(void *arg)
{
    job_t *job = arg;
    session_t *ss = job->ss;
    const ek_dp_frame_t *f = &job->f;
    uint64_t id = f->h.id, off = f->u.write.offset, len = f->u.write.length;
    int rc;
    if (f->u.write.zero) {
        rc = ek_writer_disk_zero(ss->disk, off, len);
        if (rc)
            send_error(ss, id, EK_DP_E_IO, "could not zero %llu bytes at offset %llu of \"%s\": %s",
                       (unsigned long long)len, (unsigned long long)off, ss->disk->path,
                       strerror(rc));
        else
            send_simple(ss, EK_DP_WRITE_OK, id);
        __atomic_add_fetch(&ss->zeroed, len, __ATOMIC_RELAXED);
        job_done(job);
        return;
    }
    const uint8_t *data = f->u.write.payload;
    uint8_t *plain = NULL;
    if (f->u.write.compression == EK_DP_WRITE_COMP_ZSTD) {
        plain = buf_get(ss->w, len, 0);
        size_t r =
            ZSTD_decompressDCtx(thread_dctx(ss->w), plain, len, data, f->u.write.payload_len);
        if (ZSTD_isError(r) || r != len) {
            send_error(ss, id, EK_DP_E_DECOMPRESS,
                       "chunk at offset %llu does not decompress to %llu bytes: %s",
                       (unsigned long long)off, (unsigned long long)len,
                       ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
            goto out;
        }
        data = plain;
    }
    uint64_t sum = ek_dp_checksum(data, len);
    if (sum != f->u.write.checksum) {
        __atomic_add_fetch(&ss->rejected, 1, __ATOMIC_RELAXED);
        send_error(ss, id, EK_DP_E_CHECKSUM,
                   "chunk of %llu bytes at offset %llu fails its checksum (%016llx, expected "
                   "%016llx): not written",
                   (unsigned long long)len, (unsigned long long)off, (unsigned long long)sum,
                   (unsigned long long)f->u.write.checksum);
        goto out;
    }
    rc = ek_writer_disk_write(ss->disk, data, len, off, &sum);
    if (rc) {
        send_error(ss, id, EK_DP_E_IO, "could not write %llu bytes at offset %llu of \"%s\": %s",
                   (unsigned long long)len, (unsigned long long)off, ss->disk->path, strerror(rc));
        goto out;
    }
    __atomic_add_fetch(&ss->written, len, __ATOMIC_RELAXED);
    send_simple(ss, EK_DP_WRITE_OK, id);
out:
    buf_put(ss->w, plain);
    job_done(job);
}

static void job_hash(void *arg)
{
    job_t *job = arg;
    session_t *ss = job->ss;
    const ek_dp_frame_t *f = &job->f;
    uint32_t bs = f->u.hash.block_size;
    uint32_t count = (uint32_t)ek_dp_block_count(f->u.hash.length, bs);
    uint8_t *out =
        ek_xmalloc(EK_DP_HEADER_SIZE + EK_DP_HASHES_FIXED + (size_t)count * EK_DP_HASH_SIZE);
    uint8_t *buf = buf_get(ss->w, bs, 0);
    size_t hl = ek_dp_hashes_encode(out, f->h.id, f->u.hash.offset, bs, count);
    uint64_t recorded = 0;
    int rc = ek_writer_disk_hash(ss->disk, f->u.hash.offset, f->u.hash.length, bs, out + hl, buf,
                                 &recorded);
    __atomic_add_fetch(&ss->hashed, count, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ss->hashed_recorded, recorded, __ATOMIC_RELAXED);
    if (rc)
        send_error(ss, f->h.id, EK_DP_E_IO, "could not read \"%s\" to hash it: %s", ss->disk->path,
                   strerror(rc));
    else
        send_reply(ss, out, hl + (size_t)count * EK_DP_HASH_SIZE, NULL, 0);
    buf_put(ss->w, buf);
    free(out);
    job_done(job);
}

/* True when no job of generation g or of an earlier one is in flight (lock
 * held). The counters hold the last FLUSH_GENS generations, up to ss->gen
 * (those after g are jobs and flushes that came later); the ones before
 * them are done: a generation starts only once the counter it takes over
 * is back to zero. */
static bool gens_done(const session_t *ss, uint64_t g)
{
    uint64_t oldest = ss->gen >= FLUSH_GENS - 1 ? ss->gen - (FLUSH_GENS - 1) : 0;
    for (uint64_t j = g + 1; j-- > oldest;)
        if (ss->gen_jobs[j % FLUSH_GENS])
            return false;
    return true;
}

/* FLUSH of generation job->gen - 1: waits for the chunks received before it
 * (and for the FLUSH before it), then fsyncs. */
static void *job_flush(void *arg)
{
    job_t *job = arg;
    session_t *ss = job->ss;
    pthread_mutex_lock(&ss->lock);
    while (!gens_done(ss, job->gen - 1))
        pthread_cond_wait(&ss->cond, &ss->lock);
    pthread_mutex_unlock(&ss->lock);
    int rc = ek_writer_disk_flush(ss->disk);
    if (rc)
        send_error(ss, job->f.h.id, EK_DP_E_IO, "could not flush \"%s\": %s", ss->disk->path,
                   strerror(rc));
    else
        send_simple(ss, EK_DP_FLUSH_OK, job->f.h.id);
    job_done(job);
    return NULL;
}

/* Starts a FLUSH: the requests read from now on are of a new generation. */
static void start_flush(session_t *ss, job_t *job)
{
    pthread_mutex_lock(&ss->lock);
    /* The counter the new generation takes must be free: that of the
     * generation FLUSH_GENS back, whose flush is the oldest still waiting. */
    while (ss->gen_jobs[(ss->gen + 1) % FLUSH_GENS])
        pthread_cond_wait(&ss->cond, &ss->lock);
    ss->gen++;
    job->gen = ss->gen; /* the FLUSH counts in the new one: the next FLUSH waits for it */
    ss->gen_jobs[job->gen % FLUSH_GENS]++;
    ss->inflight++;
    pthread_mutex_unlock(&ss->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_flush, job) != 0)
        job_flush(job); /* no thread: flush here (the jobs it waits for are the pool's) */
    pthread_attr_destroy(&attr);
}

static void close_disk(session_t *ss)
{
    ss->direct += ss->disk->direct_bytes;
    ss->buffered += ss->disk->buffered_bytes;
    ek_writer_disk_close(ss->disk);
    ss->disk = NULL;
}

static void wait_idle(session_t *ss)
{
    pthread_mutex_lock(&ss->lock);
    while (ss->inflight)
        pthread_cond_wait(&ss->cond, &ss->lock);
    pthread_mutex_unlock(&ss->lock);
}

static void submit(session_t *ss, job_t *job, ek_job_fn fn)
{
    pthread_mutex_lock(&ss->lock);
    ss->inflight++;
    job->gen = ss->gen;
    ss->gen_jobs[job->gen % FLUSH_GENS]++;
    pthread_mutex_unlock(&ss->lock);
    ek_threadpool_submit(ss->w->pool, fn, job);
}

static bool in_range(session_t *ss, uint64_t id, uint64_t off, uint64_t len)
{
    if (off + len <= ss->disk->size)
        return true;
    send_error(ss, id, EK_DP_E_RANGE, "range %llu+%llu is beyond the end of \"%s\" (%llu bytes)",
               (unsigned long long)off, (unsigned long long)len, ss->disk->path,
               (unsigned long long)ss->disk->size);
    return false;
}

/* Acts on one decoded request. Takes ownership of job (and its body). */
static void dispatch(session_t *ss, job_t *job)
{
    const ek_dp_frame_t *f = &job->f;
    uint64_t id = f->h.id;
    const ek_writer_opts_t *o = &ss->w->opts;
    switch (f->h.type) {
    case EK_DP_OPEN: {
        char path[EK_DP_MAX_PATH + 1], msg[EK_DP_MAX_MESSAGE];
        memcpy(path, f->u.open.path, f->u.open.path_len);
        path[f->u.open.path_len] = 0;
        if (ss->disk) {
            send_error(ss, id, EK_DP_E_ALREADY_OPEN, "a disk (\"%s\") is already open",
                       ss->disk->path);
            break;
        }
        ek_dp_errcode_t rc = ek_writer_disk_open(o, path, f->u.open.size, f->u.open.flags,
                                                 &ss->disk, msg, sizeof(msg));
        if (rc) {
            send_error(ss, id, rc, "%s", msg);
            break;
        }
        uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_OPEN_OK_SIZE];
        uint32_t feat = (ss->disk->blockdev ? EK_DP_FEAT_BLOCKDEV : EK_DP_FEAT_PUNCH);
        send_reply(ss, buf,
                   ek_dp_open_ok_encode(buf, id, ss->disk->real_size, o->max_data, feat,
                                        ss->disk->zero_from),
                   NULL, 0);
        ek_log_kv(EK_LOG_INFO, "disk opened", "peer", ss->peer, "disk", ss->disk->path, NULL);
        break;
    }
    case EK_DP_WRITE:
        if (!ss->disk) {
            send_error(ss, id, EK_DP_E_NOT_OPEN, "WRITE before OPEN");
        } else if (!f->u.write.zero && f->u.write.length > o->max_data) {
            send_error(ss, id, EK_DP_E_TOO_LARGE, "chunk of %llu bytes: this writer takes %u",
                       (unsigned long long)f->u.write.length, o->max_data);
        } else if (in_range(ss, id, f->u.write.offset, f->u.write.length)) {
            submit(ss, job, job_write);
            return;
        }
        break;
    case EK_DP_HASH:
        if (!ss->disk) {
            send_error(ss, id, EK_DP_E_NOT_OPEN, "HASH before OPEN");
        } else if (in_range(ss, id, f->u.hash.offset, f->u.hash.length)) {
            submit(ss, job, job_hash);
            return;
        }
        break;
    case EK_DP_FLUSH:
        if (!ss->disk) {
            send_error(ss, id, EK_DP_E_NOT_OPEN, "FLUSH before OPEN");
        } else {
            start_flush(ss, job);
            return;
        }
        break;
    case EK_DP_CLOSE:
        wait_idle(ss);
        if (!ss->disk) {
            send_error(ss, id, EK_DP_E_NOT_OPEN, "CLOSE before OPEN");
        } else {
            close_disk(ss);
            send_simple(ss, EK_DP_CLOSE_OK, id);
        }
        break;
    default:
        send_error(ss, id, EK_DP_E_TYPE, "%s is not a request", ek_dp_type_name(f->h.type));
        break;
    }
    buf_put(ss->w, job->body);
    mem_release(ss->w, job->reserved);
    free(job);
}

ek_err_t *ek_writer_session_run(ek_writer_t *w, ek_stream_t *s, const char *peer)
{
    session_t ss = {.w = w, .s = s, .peer = peer ? peer : "client"};
    pthread_mutex_init(&ss.lock, NULL);
    pthread_cond_init(&ss.cond, NULL);
    ek_stream_set_timeout(s, w->opts.timeout_ms);
    ek_err_t *err = NULL;
    for (;;) {
        uint8_t hb[EK_DP_HEADER_SIZE];
        bool eof;
        if ((err = ek_stream_read_full(s, hb, sizeof(hb), &eof)))
            break;
        if (eof || ss.broken)
            break;
        ek_dp_header_t h;
        ek_dp_errcode_t rc = ek_dp_header_decode(hb, &h);
        if (rc) {
            /* The length cannot be trusted: answer and end the session. */
            send_error(&ss, h.id, rc, "bad frame header (%s%s%s): closing the session",
                       ek_dp_error_name(rc), rc == EK_DP_E_TOO_LARGE ? ", length " : "",
                       rc == EK_DP_E_TOO_LARGE ? "beyond the bound of its type" : "");
            err = ek_err_new(EK_E_PROTOCOL, "bad frame header from %s: %s", ss.peer,
                             ek_dp_error_name(rc));
            break;
        }
        /* Room for the body, and for the decompressed chunk when there is one:
         * its size is in the fixed fields, read first. */
        uint8_t fixed[EK_DP_WRITE_FIXED];
        size_t have = 0, reserve = h.length;
        if (h.type == EK_DP_WRITE && (h.flags & EK_DP_WRITE_COMP_MASK)) {
            if ((err = ek_stream_read_full(s, fixed, sizeof(fixed), NULL)))
                break;
            have = sizeof(fixed);
            uint64_t dlen = ek_dp_get64(fixed + 8);
            if (dlen <= w->opts.max_data)
                reserve += dlen;
        }
        mem_acquire(w, reserve);
        job_t *job = ek_xcalloc(1, sizeof(*job));
        job->ss = &ss;
        job->reserved = reserve;
        /* The payload of an uncompressed WRITE lands page-aligned (O_DIRECT). */
        job->body = buf_get(w, h.length, h.type == EK_DP_WRITE ? EK_DP_WRITE_FIXED : 0);
        memcpy(job->body, fixed, have);
        if ((err = ek_stream_read_full(s, job->body + have, h.length - have, NULL))) {
            /* Truncated: nothing of this frame is acted on. */
            send_error(&ss, h.id, EK_DP_E_TRUNCATED, "the stream ended inside a %s frame",
                       ek_dp_type_name(h.type));
            buf_put(w, job->body);
            mem_release(w, reserve);
            free(job);
            break;
        }
        const char *why = NULL;
        rc = ek_dp_frame_decode(&h, job->body, &job->f, &why);
        if (rc) {
            send_error(&ss, h.id, rc, "bad %s frame: %s", ek_dp_type_name(h.type), why);
            buf_put(w, job->body);
            mem_release(w, reserve);
            free(job);
            continue;
        }
        dispatch(&ss, job);
    }
    wait_idle(&ss);
    if (ss.disk)
        close_disk(&ss);
    char wr[32], zr[32], hb[32], hr[32], db[32], bb[32];
    snprintf(db, sizeof(db), "%llu", (unsigned long long)ss.direct);
    snprintf(bb, sizeof(bb), "%llu", (unsigned long long)ss.buffered);
    snprintf(wr, sizeof(wr), "%llu", (unsigned long long)ss.written);
    snprintf(zr, sizeof(zr), "%llu", (unsigned long long)ss.zeroed);
    snprintf(hb, sizeof(hb), "%llu", (unsigned long long)ss.hashed);
    snprintf(hr, sizeof(hr), "%llu", (unsigned long long)ss.hashed_recorded);
    ek_log_kv(EK_LOG_INFO, "session ended", "peer", ss.peer, "written_bytes", wr, "zeroed_bytes",
              zr, "direct_bytes", db, "buffered_bytes", bb, "hashed_blocks", hb,
              "hashed_from_record", hr, NULL);
    if (ss.broken && !err)
        err = ek_err_new(EK_E_IO, "the connection to %s broke", ss.peer);
    pthread_cond_destroy(&ss.cond);
    pthread_mutex_destroy(&ss.lock);
    return err;
}
