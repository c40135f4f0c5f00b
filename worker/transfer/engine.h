/* engine.h - the transfer engine: copies one disk from a source reader to an
 * ekman-writer over N parallel connections.
 *
 * Per connection, a sender thread takes the next block of the disk (1 MiB by
 * default), reads it, finds zeros (before anything else), asks the reader
 * what changed, hashes it for the final check, compresses what pays and
 * sends the frames, keeping up to `window` requests in flight; a reader
 * thread takes the acknowledgements as they come. Ranges that read as zeros
 * cost one small frame, never data. Acknowledged ranges are recorded; after
 * each flush the writer confirmed, the state (JSON, below) goes to the
 * caller's save_state, and a later run given that state sends only what was
 * not acknowledged. A failed connection is re-opened with backoff and its
 * unacknowledged requests re-sent; a chunk the writer rejects (checksum) is
 * re-sent. At the end the writer's block hashes are compared with the
 * source's; a differing block is re-sent once, then it is an error naming
 * the disk and the offset.
 *
 * State document (one disk):
 *   {"version": 1, "disk": "vda", "target": "/dev/vdb", "size": N,
 *    "block_size": 1048576, "acked": [[offset, length], ...],
 *    "complete": false}
 * A complete state starts a new sync (an incremental, with change tracking). */
#ifndef EK_TRANSFER_ENGINE_H
#define EK_TRANSFER_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "worker/transfer/connect.h"
#include "worker/transfer/reader.h"

typedef enum ek_verify {
    EK_VERIFY_SENT = 0, /* blocks this sync wrote (incl. zeros) */
    EK_VERIFY_FULL,     /* every block of the disk */
    EK_VERIFY_OFF,
} ek_verify_t;

typedef enum ek_compress {
    EK_COMPRESS_AUTO = 0, /* when the network, not the CPU, is what we wait for */
    EK_COMPRESS_ALWAYS,   /* every chunk whose sample compresses */
    EK_COMPRESS_OFF,
} ek_compress_t;

typedef struct ek_xfer_stats {
    uint64_t size;               /* virtual size of the disk */
    uint64_t read_bytes;         /* read from the source */
    uint64_t data_bytes;         /* acknowledged data, uncompressed */
    uint64_t payload_bytes;      /* their payload as sent (compressed or not) */
    uint64_t zero_bytes;         /* acknowledged zero ranges */
    uint64_t skipped_zero_bytes; /* zero ranges not sent: the target was new (reads zeros) */
    uint64_t unchanged_bytes;    /* not sent: unchanged since the last sync */
    uint64_t resumed_bytes;      /* not sent: acknowledged by an earlier run */
    uint64_t resent_bytes;       /* sent again (rejected, lost connection, verification) */
    uint64_t wire_out, wire_in;  /* network bytes, TLS/SSH and TCP payload included */
    uint64_t frames, compressed_frames;
    uint64_t checksum_errors; /* chunks the writer refused for their checksum */
    uint64_t reconnects;
    uint64_t verified_blocks, verify_mismatches;
    unsigned connections;
    double seconds, verify_seconds;
    bool complete;
} ek_xfer_stats_t;

typedef struct ek_xfer_params {
    const char *disk_name;   /* for messages and the state ("vda") */
    const char *target_path; /* disk path on the writer */
    uint32_t open_flags;     /* EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE */
    ek_connect_fn connect;
    void *connect_target;
    unsigned connections; /* 0: from the CPU count */
    unsigned window;      /* requests in flight per connection (0: 64) */
    int level;            /* zstd level (0: no compression) */
    ek_compress_t compress;
    uint64_t bandwidth;  /* bytes per second on the wire (0: no limit) */
    uint32_t block_size; /* unit of reading, hashing, verifying (0: 1 MiB) */
    ek_verify_t verify;
    unsigned retries; /* re-opened connections, re-sent chunks (0: 5) */
    /* A worker VM may report its address before its writer listens (the
     * guest agent starts before cloud-init's final stage): until the disk is
     * first opened, an unreachable writer is retried for this long, however
     * many attempts that takes (0: 120 s). */
    int first_open_wait_ms;
    const char *resume; /* state JSON of an earlier run, or NULL */
    ek_err_t *(*save_state)(void *opaque, const char *json);
    void *state_opaque;
    uint64_t state_every_bytes; /* flush + save after this much (0: 256 MiB) */
    int state_every_ms;         /* ... or this long (0: 10 s) */
    void (*progress)(void *opaque, const ek_xfer_stats_t *st); /* about once a second */
    void *progress_opaque;
    /* Optional, polled every 200 ms: true stops the transfer (EK_E_CANCELED);
     * what was saved in the state so far stays valid for a resume. */
    bool (*should_stop)(void *opaque);
    void *stop_opaque;
    unsigned corrupt_frame; /* tests: flip a bit in data frame #N after its checksum */
} ek_xfer_params_t;

/* Copies the disk; stats (may be NULL) are filled in also on failure. */
EK_ERR_CHECK ek_xfer_run(const ek_reader_ops_t *ops, void *reader, uint64_t size,
                         const ek_xfer_params_t *params, ek_xfer_stats_t *stats);

#endif
