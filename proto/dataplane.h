/* dataplane.h - the binary frames between the transfer engine and ekman-writer.
 *
 * A frame is a 24-byte header followed by `length` body bytes; all integers
 * are little-endian. Requests (engine -> writer) carry an id that the writer's
 * reply repeats; replies may come in any order. Every type has a fixed
 * minimum and maximum body length, checked by ek_dp_header_decode() before a
 * reader allocates or reads anything, so a frame that lies about its length
 * is rejected from its header alone. Byte-by-byte layout: proto/dataplane.md.
 *
 * This file is pure: no I/O, no allocation, no dependency but the C library
 * and xxhash (header-only), so that the fuzz target and both ends share it. */
#ifndef EK_PROTO_DATAPLANE_H
#define EK_PROTO_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EK_DP_VERSION     1
#define EK_DP_HEADER_SIZE 24

/* Bounds. A writer may accept less (it says so in its OPEN reply), never more. */
#define EK_DP_MAX_DATA        (16u << 20) /* bytes of one data chunk, uncompressed */
#define EK_DP_MAX_PATH        4096
#define EK_DP_MAX_MESSAGE     1024
#define EK_DP_MAX_HASH_BLOCKS 32768 /* block hashes in one HASH request */
#define EK_DP_MIN_HASH_BLOCK  (4u << 10)
#define EK_DP_MAX_HASH_BLOCK  (64u << 20)
#define EK_DP_HASH_SIZE       8 /* XXH3-64, big-endian canonical form */

/* Fixed body sizes. */
#define EK_DP_OPEN_FIXED   16
#define EK_DP_WRITE_FIXED  24
#define EK_DP_HASH_FIXED   24
#define EK_DP_OPEN_OK_SIZE 24
#define EK_DP_HASHES_FIXED 16
#define EK_DP_ERROR_FIXED  8
/* The largest frame of any type, header included. */
#define EK_DP_MAX_FRAME (EK_DP_HEADER_SIZE + EK_DP_WRITE_FIXED + EK_DP_MAX_DATA)

typedef enum ek_dp_type {
    EK_DP_OPEN = 0x01,
    EK_DP_WRITE = 0x02,
    EK_DP_FLUSH = 0x03,
    EK_DP_HASH = 0x04,
    EK_DP_CLOSE = 0x05,
    /* replies: 0x80 | request type on success, ERROR on failure */
    EK_DP_OPEN_OK = 0x81,
    EK_DP_WRITE_OK = 0x82,
    EK_DP_FLUSH_OK = 0x83,
    EK_DP_HASHES = 0x84,
    EK_DP_CLOSE_OK = 0x85,
    EK_DP_ERROR = 0xff,
} ek_dp_type_t;

/* OPEN flags */
#define EK_DP_OPEN_CREATE 0x1u /* create a regular file that does not exist */
#define EK_DP_OPEN_RESIZE 0x2u /* grow a regular file smaller than `size` */
/* WRITE flags (header flags field) */
#define EK_DP_WRITE_ZERO      0x0001u /* the range reads as zeros; no payload */
#define EK_DP_WRITE_COMP_MASK 0x00f0u
#define EK_DP_WRITE_COMP_NONE 0x0000u
#define EK_DP_WRITE_COMP_ZSTD 0x0010u
/* OPEN_OK features */
#define EK_DP_FEAT_BLOCKDEV 0x1u /* the target is a block device */
#define EK_DP_FEAT_PUNCH    0x2u /* zero ranges are punched (stay unallocated) */
/* HASH algorithms */
#define EK_DP_HASH_XXH3_64 1

/* Error codes of an ERROR reply (and of the decoders). 0 is success. */
typedef enum ek_dp_errcode {
    EK_DP_OK = 0,
    EK_DP_E_MALFORMED = 1, /* fields that cannot be right (sizes, flags, ranges) */
    EK_DP_E_VERSION = 2,   /* unknown protocol version */
    EK_DP_E_TYPE = 3,      /* unknown frame type */
    EK_DP_E_TOO_LARGE = 4, /* length beyond the bound of the type */
    EK_DP_E_CHECKSUM = 5,  /* the data does not match its checksum: not written */
    EK_DP_E_DECOMPRESS = 6,
    EK_DP_E_NOT_OPEN = 7,
    EK_DP_E_ALREADY_OPEN = 8,
    EK_DP_E_FORBIDDEN = 9, /* path outside the writer's --allow-path */
    EK_DP_E_NOT_FOUND = 10,
    EK_DP_E_SIZE = 11,  /* the disk is smaller than the size asked for */
    EK_DP_E_RANGE = 12, /* offset + length beyond the disk */
    EK_DP_E_IO = 13,
    EK_DP_E_TRUNCATED = 14, /* the stream ended inside a frame */
    EK_DP_E_INTERNAL = 15,
    EK_DP_E_MAX = EK_DP_E_INTERNAL,
} ek_dp_errcode_t;

typedef struct ek_dp_header {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint64_t id;
    uint32_t length; /* body bytes after the header */
} ek_dp_header_t;

/* A decoded body. Pointers point into the caller's body buffer. */
typedef struct ek_dp_frame {
    ek_dp_header_t h;
    union {
        struct {
            uint64_t size;
            uint32_t flags;
            const char *path; /* not NUL-terminated */
            uint16_t path_len;
        } open;
        struct {
            uint64_t offset;
            uint64_t length; /* uncompressed bytes */
            uint64_t checksum;
            bool zero;
            unsigned compression; /* EK_DP_WRITE_COMP_* */
            const uint8_t *payload;
            uint32_t payload_len;
        } write;
        struct {
            uint64_t offset;
            uint64_t length;
            uint32_t block_size;
            uint32_t algorithm;
        } hash;
        struct {
            uint64_t size;
            uint32_t max_data;
            uint32_t features;
            uint64_t zero_from; /* bytes from here on read as zeros (new or grown file) */
        } open_ok;
        struct {
            uint64_t offset;
            uint32_t block_size;
            uint32_t count;
            const uint8_t *hashes; /* count * EK_DP_HASH_SIZE bytes */
        } hashes;
        struct {
            uint32_t code;
            const char *message; /* not NUL-terminated */
            uint16_t message_len;
        } error;
    } u;
} ek_dp_frame_t;

/* Checks magic, version, type and the length bounds of the type. On error,
 * h->id is still set when the header was long enough to hold it (so that the
 * error can name the request). */
ek_dp_errcode_t ek_dp_header_decode(const uint8_t buf[EK_DP_HEADER_SIZE], ek_dp_header_t *h);
void ek_dp_header_encode(uint8_t buf[EK_DP_HEADER_SIZE], const ek_dp_header_t *h);
/* Bounds of the body of a frame type (false: unknown type). */
bool ek_dp_type_bounds(uint8_t type, uint32_t *min_len, uint32_t *max_len);
const char *ek_dp_type_name(uint8_t type);

/* Decodes and checks the body of a frame whose header decoded fine. On error
 * *why says which field is wrong (a static string). */
ek_dp_errcode_t ek_dp_frame_decode(const ek_dp_header_t *h, const uint8_t *body, ek_dp_frame_t *out,
                                   const char **why);

/* Encoders write header + fixed fields into buf and return the bytes written;
 * variable parts (path, payload, hashes, message) follow as said. */
#define EK_DP_WRITE_PREFIX (EK_DP_HEADER_SIZE + EK_DP_WRITE_FIXED)
/* Header + OPEN body including the path: buf must hold 40 + path_len bytes. */
size_t ek_dp_open_encode(uint8_t *buf, uint64_t id, uint64_t size, uint32_t flags, const char *path,
                         uint16_t path_len);
/* Header + fixed WRITE fields (EK_DP_WRITE_PREFIX bytes); payload_len bytes follow. */
size_t ek_dp_write_encode(uint8_t buf[EK_DP_WRITE_PREFIX], uint64_t id, uint16_t flags,
                          uint64_t offset, uint64_t length, uint64_t checksum,
                          uint32_t payload_len);
/* FLUSH, CLOSE, WRITE_OK, FLUSH_OK, CLOSE_OK: header only. */
size_t ek_dp_simple_encode(uint8_t buf[EK_DP_HEADER_SIZE], uint8_t type, uint64_t id);
size_t ek_dp_hash_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_HASH_FIXED], uint64_t id,
                         uint64_t offset, uint64_t length, uint32_t block_size);
size_t ek_dp_open_ok_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_OPEN_OK_SIZE], uint64_t id,
                            uint64_t size, uint32_t max_data, uint32_t features,
                            uint64_t zero_from);
/* Header + fixed HASHES fields; count * EK_DP_HASH_SIZE bytes follow. */
size_t ek_dp_hashes_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_HASHES_FIXED], uint64_t id,
                           uint64_t offset, uint32_t block_size, uint32_t count);
/* Header + the whole ERROR body; the message is cut at EK_DP_MAX_MESSAGE.
 * buf must hold EK_DP_HEADER_SIZE + EK_DP_ERROR_FIXED + EK_DP_MAX_MESSAGE bytes. */
size_t ek_dp_error_encode(uint8_t *buf, uint64_t id, uint32_t code, const char *message);
const char *ek_dp_error_name(uint32_t code);

/* Number of hash blocks covering length bytes. */
static inline uint64_t ek_dp_block_count(uint64_t length, uint32_t block_size)
{
    return length / block_size + (length % block_size != 0);
}

/* Checksum of the uncompressed bytes of a WRITE, and hash of one block. Both
 * are XXH3-64 (seed 0); hashes travel in the big-endian canonical form. */
uint64_t ek_dp_checksum(const void *data, size_t len);
void ek_dp_hash_put(uint8_t out[EK_DP_HASH_SIZE], uint64_t hash);
uint64_t ek_dp_hash_get(const uint8_t in[EK_DP_HASH_SIZE]);
/* True when every byte of buf is 0 (fast path for long runs). */
bool ek_dp_is_zero(const void *buf, size_t len);

/* Little-endian field access (shared by the encoders and tests). */
static inline void ek_dp_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ek_dp_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ek_dp_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ek_dp_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ek_dp_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t ek_dp_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
