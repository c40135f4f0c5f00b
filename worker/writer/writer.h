/* writer.h - the parts of ekman-writer: target disks (disk.c), the frame
 * session that writes chunks (session.c) and the HTTP/1.1 upgrade in front
 * of it (http.c). main.c wires them to a TLS listener or to stdin/stdout.
 *
 * One ek_writer_t holds what sessions share: the options, the thread pool
 * that decompresses, verifies and writes chunks (so that reading the socket
 * never waits for the disk), and a memory budget that bounds the bytes of
 * all frames in flight whatever the clients send. */
#ifndef EK_WRITER_H
#define EK_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "proto/dataplane.h"
#include "worker/transfer/stream.h"

/* Default --cache-limit: written data a disk keeps in the page cache. */
#define EK_WRITER_CACHE_LIMIT_MIB 64

typedef struct ek_writer_opts {
    char **allow; /* canonical path prefixes a disk must be under */
    size_t n_allow;
    size_t threads;        /* pool threads (0: CPU count) */
    size_t max_memory;     /* bytes of frames in flight, all sessions (0: 128 MiB) */
    uint32_t max_data;     /* largest data chunk accepted (0: EK_DP_MAX_DATA) */
    int timeout_ms;        /* idle limit of a connection (0: 10 min) */
    bool direct;           /* --direct: data written with O_DIRECT */
    bool no_direct;        /* --no-direct: no O_DIRECT at all (neither writes nor read-back) */
    bool verify_readback;  /* --verify-readback: HASH always reads the disk back */
    uint64_t cache_limit;  /* bytes of a disk's writes kept in the page cache (0: no limit) */
    const char *by_id_dir; /* where "serial:S" disks are looked up (NULL: /dev/disk/by-id) */
} ek_writer_opts_t;

typedef struct ek_writer ek_writer_t;

/* Takes the options as they are (the allow list is borrowed). */
ek_writer_t *ek_writer_new(const ek_writer_opts_t *opts);
void ek_writer_free(ek_writer_t *w);
const ek_writer_opts_t *ek_writer_opts(const ek_writer_t *w);

/* Serves frames on s until the client ends the session (end of stream at a
 * frame boundary: NULL) or something breaks it (the error). peer names the
 * client in logs. Waits for the session's chunks to be written before it
 * returns; the caller still owns s. */
EK_ERR_CHECK ek_writer_session_run(ek_writer_t *w, ek_stream_t *s, const char *peer);

/* ---- disk.c ---- */

typedef struct ek_writer_record ek_writer_record_t;

typedef struct ek_writer_disk {
    int fd;            /* buffered: unaligned heads and tails, zeroing, flush */
    int dfd;           /* O_DIRECT (-1: none, or the filesystem refused it) */
    uint32_t align;    /* offset, length and memory alignment of O_DIRECT I/O */
    bool direct_off;   /* the filesystem refused O_DIRECT I/O on dfd */
    bool write_direct; /* data goes through dfd (--direct) */
    bool readback;     /* HASH reads back even what the record knows */
    char *path;        /* as the client named it (a serial: the node it resolved to) */
    uint64_t size;     /* what the client asked for (the device may be larger) */
    uint64_t real_size;
    uint64_t zero_from; /* this open created or grew the file: it reads zeros from here */
    bool blockdev;
    int zero_mode;              /* 0 punch hole, 1 zero range, 2 write zeros (what worked last) */
    struct ek_disk_lock *wlock; /* shared by every session writing this inode */
    ek_writer_record_t *record; /* what this process wrote (wlock's, shared too) */
    uint64_t direct_bytes, buffered_bytes; /* written with O_DIRECT, through the cache */
    uint64_t cache_limit;                  /* written bytes kept cached (0: as the kernel likes) */
    int wb_error; /* a write-back error seen while dropping cached ranges */
} ek_writer_disk_t;

/* Opens path beneath the --allow-path directory that holds it (no "." or
 * ".." component, no symbolic link at its last component, none leading out
 * of that directory), creating (mode 0600) or growing a regular file when
 * flags say so, and checks it holds size bytes. On failure returns the
 * protocol error code and a message in msg. */
ek_dp_errcode_t ek_writer_disk_open(const ek_writer_opts_t *opts, const char *path, uint64_t size,
                                    uint32_t flags, ek_writer_disk_t **out, char *msg,
                                    size_t msglen);
/* ---- devices.c ---- */

#define EK_WRITER_SERIAL_PREFIX "serial:"

/* The device of the disk with serial number serial (malloc'ed), or NULL
 * with the reason in msg. Waits a few seconds for a disk being hot-plugged. */
char *ek_writer_resolve_serial(const ek_writer_opts_t *opts, const char *serial, char *msg,
                               size_t msglen);

/* Memory alignment that lets a buffer go to the disk with O_DIRECT. */
#define EK_WRITER_ALIGN 4096

/* Writes len bytes at offset: with O_DIRECT for the aligned part when buf
 * is EK_WRITER_ALIGN-aligned, through the page cache for the rest. sum is
 * the verified XXH3-64 of the bytes (recorded for HASH), or NULL. 0 or an
 * errno value. */
int ek_writer_disk_write(ek_writer_disk_t *d, const void *buf, size_t len, uint64_t offset,
                         const uint64_t *sum);
int ek_writer_disk_zero(ek_writer_disk_t *d, uint64_t offset, uint64_t len);
int ek_writer_disk_flush(ek_writer_disk_t *d);
/* XXH3-64 of each block of [offset, offset+len) into out (EK_DP_HASH_SIZE
 * bytes each): from the record for blocks this process wrote as one
 * verified chunk (unless d->readback), else read back from the disk
 * (O_DIRECT when it can: the device, not the page cache); unallocated
 * blocks are hashed without reading. buf holds block_size bytes, aligned
 * to EK_WRITER_ALIGN. *recorded (may be NULL) counts the blocks answered
 * from the record. */
int ek_writer_disk_hash(ek_writer_disk_t *d, uint64_t offset, uint64_t len, uint32_t block_size,
                        uint8_t *out, uint8_t *buf, uint64_t *recorded);
void ek_writer_disk_close(ek_writer_disk_t *d);
/* Canonical form of an --allow-path prefix (realpath when it exists; the
 * prefix is the operator's). Disk paths are matched against prefixes as
 * written, not resolved: main.c keeps both forms when they differ. */
char *ek_writer_allow_canonical(const char *prefix);

/* ---- record.c ---- */

ek_writer_record_t *ek_writer_record_new(void);
void ek_writer_record_free(ek_writer_record_t *r);
/* [off, off+len) now holds bytes whose XXH3-64 is sum (replaces what overlaps). */
void ek_writer_record_data(ek_writer_record_t *r, uint64_t off, uint32_t len, uint64_t sum);
/* [off, off+len) was written otherwise (zeros, a failed write): forget it. */
void ek_writer_record_forget(ek_writer_record_t *r, uint64_t off, uint64_t len);
/* True with *sum when exactly [off, off+len) was recorded and not overwritten. */
bool ek_writer_record_lookup(ek_writer_record_t *r, uint64_t off, uint64_t len, uint64_t *sum);

/* ---- http.c ---- */

#define EK_HTTP_MAX_HEAD  8192
#define EK_WRITER_UPGRADE "ekman-writer/1"

typedef struct ek_http_request {
    char method[16];
    char path[256];
    bool upgrade;      /* Upgrade: ekman-writer/1 */
    bool conn_upgrade; /* Connection: ... upgrade ... */
    bool has_body;     /* Content-Length > 0 or Transfer-Encoding */
    size_t head_len;
} ek_http_request_t;

/* Parses an HTTP/1.1 request head in buf[0..len). Returns 1 when complete
 * (req filled), 0 when more bytes are needed, or a negative HTTP status for
 * a malformed (-400) or too large (-431) head. */
int ek_http_request_parse(const char *buf, size_t len, ek_http_request_t *req);

/* Reads the request on a fresh connection and answers it. Returns NULL with
 * *upgraded set when the client asked for the frame stream (101 sent: the
 * frames follow on s); for anything else sends the error response and
 * returns NULL with *upgraded false, or an error when the connection broke. */
EK_ERR_CHECK ek_http_serve(ek_stream_t *s, bool *upgraded);

#endif
