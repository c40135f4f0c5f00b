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

typedef struct ek_writer_opts {
    char **allow; /* canonical path prefixes a disk must be under */
    size_t n_allow;
    size_t threads;    /* pool threads (0: CPU count) */
    size_t max_memory; /* bytes of frames in flight, all sessions (0: 128 MiB) */
    uint32_t max_data; /* largest data chunk accepted (0: EK_DP_MAX_DATA) */
    int timeout_ms;    /* idle limit of a connection (0: 10 min) */
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

typedef struct ek_writer_disk {
    int fd;
    char *path;    /* canonical */
    uint64_t size; /* what the client asked for (the device may be larger) */
    uint64_t real_size;
    uint64_t zero_from; /* this open created or grew the file: it reads zeros from here */
    bool blockdev;
    int zero_mode;              /* 0 punch hole, 1 zero range, 2 write zeros (what worked last) */
    struct ek_disk_lock *wlock; /* shared by every session writing this inode */
} ek_writer_disk_t;

/* Checks path against the allow list, opens it (creating or growing a
 * regular file when flags say so) and checks it holds size bytes. On
 * failure returns the protocol error code and a message in msg. */
ek_dp_errcode_t ek_writer_disk_open(const ek_writer_opts_t *opts, const char *path, uint64_t size,
                                    uint32_t flags, ek_writer_disk_t **out, char *msg,
                                    size_t msglen);
/* 0 or an errno value. */
int ek_writer_disk_write(ek_writer_disk_t *d, const void *buf, size_t len, uint64_t offset);
int ek_writer_disk_zero(ek_writer_disk_t *d, uint64_t offset, uint64_t len);
int ek_writer_disk_flush(ek_writer_disk_t *d);
/* XXH3-64 of each block of [offset, offset+len) into out (EK_DP_HASH_SIZE
 * bytes each); unallocated blocks are hashed without reading. buf holds
 * block_size bytes. */
int ek_writer_disk_hash(ek_writer_disk_t *d, uint64_t offset, uint64_t len, uint32_t block_size,
                        uint8_t *out, uint8_t *buf);
void ek_writer_disk_close(ek_writer_disk_t *d);
/* Canonical form of an --allow-path prefix (realpath when it exists). */
char *ek_writer_allow_canonical(const char *prefix);

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
