/* dataplane.c - encoding and strict decoding of the data-plane frames
 * (layout in proto/dataplane.md). Decoders check every field before anyone
 * acts on it; nothing here allocates. */
#include "proto/dataplane.h"

#include <string.h>
/* XXH3 on x86-64: the default build uses SSE2 (~5 GB/s here); every byte of
 * a transfer is hashed on both ends, so the AVX2 and AVX-512 kernels that
 * xxhash.h holds are compiled too (for those functions only) and chosen at
 * run time from what the CPU offers. Same hash, whichever runs. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EK_XXH_DISPATCH 1
#include <immintrin.h>
#define XXH_X86DISPATCH
#define XXH_DISPATCH_AVX2   1
#define XXH_DISPATCH_AVX512 1
#define XXH_TARGET_AVX2     __attribute__((__target__("avx2")))
#define XXH_TARGET_AVX512   __attribute__((__target__("avx512f")))
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

static const uint8_t magic[4] = {'E', 'K', 'D', 'P'};

bool ek_dp_type_bounds(uint8_t type, uint32_t *min_len, uint32_t *max_len)
{
    uint32_t lo, hi;
    switch (type) {
    case EK_DP_OPEN:
        lo = EK_DP_OPEN_FIXED + 1;
        hi = EK_DP_OPEN_FIXED + EK_DP_MAX_PATH;
        break;
    case EK_DP_WRITE:
        lo = EK_DP_WRITE_FIXED;
        hi = EK_DP_WRITE_FIXED + EK_DP_MAX_DATA;
        break;
    case EK_DP_HASH:
        lo = hi = EK_DP_HASH_FIXED;
        break;
    case EK_DP_OPEN_OK:
        lo = hi = EK_DP_OPEN_OK_SIZE;
        break;
    case EK_DP_HASHES:
        lo = EK_DP_HASHES_FIXED;
        hi = EK_DP_HASHES_FIXED + EK_DP_HASH_SIZE * EK_DP_MAX_HASH_BLOCKS;
        break;
    case EK_DP_ERROR:
        lo = EK_DP_ERROR_FIXED;
        hi = EK_DP_ERROR_FIXED + EK_DP_MAX_MESSAGE;
        break;
    case EK_DP_FLUSH:
    case EK_DP_CLOSE:
    case EK_DP_WRITE_OK:
    case EK_DP_FLUSH_OK:
    case EK_DP_CLOSE_OK:
        lo = hi = 0;
        break;
    default:
        return false;
    }
    if (min_len)
        *min_len = lo;
    if (max_len)
        *max_len = hi;
    return true;
}

const char *ek_dp_type_name(uint8_t type)
{
    switch (type) {
    case EK_DP_OPEN:
        return "OPEN";
    case EK_DP_WRITE:
        return "WRITE";
    case EK_DP_FLUSH:
        return "FLUSH";
    case EK_DP_HASH:
        return "HASH";
    case EK_DP_CLOSE:
        return "CLOSE";
    case EK_DP_OPEN_OK:
        return "OPEN_OK";
    case EK_DP_WRITE_OK:
        return "WRITE_OK";
    case EK_DP_FLUSH_OK:
        return "FLUSH_OK";
    case EK_DP_HASHES:
        return "HASHES";
    case EK_DP_CLOSE_OK:
        return "CLOSE_OK";
    case EK_DP_ERROR:
        return "ERROR";
    default:
        return "unknown";
    }
}

ek_dp_errcode_t ek_dp_header_decode(const uint8_t buf[EK_DP_HEADER_SIZE], ek_dp_header_t *h)
{
    memset(h, 0, sizeof(*h));
    h->id = ek_dp_get64(buf + 8);
    if (memcmp(buf, magic, sizeof(magic)) != 0)
        return EK_DP_E_MALFORMED;
    h->version = buf[4];
    h->type = buf[5];
    h->flags = ek_dp_get16(buf + 6);
    h->length = ek_dp_get32(buf + 16);
    if (h->version != EK_DP_VERSION)
        return EK_DP_E_VERSION;
    if (ek_dp_get32(buf + 20) != 0)
        return EK_DP_E_MALFORMED;
    uint32_t lo, hi;
    if (!ek_dp_type_bounds(h->type, &lo, &hi))
        return EK_DP_E_TYPE;
    if (h->length > hi)
        return EK_DP_E_TOO_LARGE;
    if (h->length < lo)
        return EK_DP_E_MALFORMED;
    return EK_DP_OK;
}

void ek_dp_header_encode(uint8_t buf[EK_DP_HEADER_SIZE], const ek_dp_header_t *h)
{
    memcpy(buf, magic, sizeof(magic));
    buf[4] = EK_DP_VERSION;
    buf[5] = h->type;
    ek_dp_put16(buf + 6, h->flags);
    ek_dp_put64(buf + 8, h->id);
    ek_dp_put32(buf + 16, h->length);
    ek_dp_put32(buf + 20, 0);
}

#define BAD(msg)                                                                                   \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return EK_DP_E_MALFORMED;                                                                  \
    } while (0)

static bool is_pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

ek_dp_errcode_t ek_dp_frame_decode(const ek_dp_header_t *h, const uint8_t *body, ek_dp_frame_t *out,
                                   const char **why)
{
    static const char *unused;
    if (!why)
        why = &unused;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    out->h = *h;
    uint32_t lo, hi;
    if (!ek_dp_type_bounds(h->type, &lo, &hi)) {
        *why = "unknown frame type";
        return EK_DP_E_TYPE;
    }
    if (h->length > hi) {
        *why = "frame longer than its type allows";
        return EK_DP_E_TOO_LARGE;
    }
    if (h->length < lo)
        BAD("frame shorter than its type requires");
    if (h->type != EK_DP_WRITE && h->flags != 0)
        BAD("flags set on a frame type without flags");

    switch (h->type) {
    case EK_DP_OPEN: {
        out->u.open.size = ek_dp_get64(body);
        out->u.open.flags = ek_dp_get32(body + 8);
        out->u.open.path_len = ek_dp_get16(body + 12);
        out->u.open.path = (const char *)body + EK_DP_OPEN_FIXED;
        if (ek_dp_get16(body + 14) != 0)
            BAD("OPEN reserved field is not zero");
        if (out->u.open.flags & ~(EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE))
            BAD("OPEN has unknown flags");
        if ((uint32_t)out->u.open.path_len + EK_DP_OPEN_FIXED != h->length)
            BAD("OPEN path length does not match the frame length");
        if (memchr(out->u.open.path, 0, out->u.open.path_len))
            BAD("OPEN path contains a NUL byte");
        if (out->u.open.size == 0 || out->u.open.size > (UINT64_C(1) << 62))
            BAD("OPEN size out of range");
        break;
    }
    case EK_DP_WRITE: {
        uint64_t off = ek_dp_get64(body), len = ek_dp_get64(body + 8);
        out->u.write.offset = off;
        out->u.write.length = len;
        out->u.write.checksum = ek_dp_get64(body + 16);
        out->u.write.zero = (h->flags & EK_DP_WRITE_ZERO) != 0;
        out->u.write.compression = h->flags & EK_DP_WRITE_COMP_MASK;
        out->u.write.payload = body + EK_DP_WRITE_FIXED;
        out->u.write.payload_len = h->length - EK_DP_WRITE_FIXED;
        if (h->flags & ~(EK_DP_WRITE_ZERO | EK_DP_WRITE_COMP_MASK))
            BAD("WRITE has unknown flags");
        if (len == 0)
            BAD("WRITE of zero bytes");
        if (off > (UINT64_C(1) << 62) || len > (UINT64_C(1) << 62))
            BAD("WRITE offset or length out of range");
        if (out->u.write.zero) {
            if (out->u.write.payload_len != 0 || out->u.write.compression != 0 ||
                out->u.write.checksum != 0)
                BAD("zero WRITE with payload, compression or checksum");
        } else if (len > EK_DP_MAX_DATA) {
            *why = "WRITE data chunk larger than the protocol allows";
            return EK_DP_E_TOO_LARGE;
        } else if (out->u.write.compression == EK_DP_WRITE_COMP_NONE) {
            if (out->u.write.payload_len != len)
                BAD("uncompressed WRITE payload length differs from its length field");
        } else if (out->u.write.compression == EK_DP_WRITE_COMP_ZSTD) {
            if (out->u.write.payload_len == 0 || out->u.write.payload_len > len)
                BAD("compressed WRITE payload empty or larger than the data");
        } else {
            BAD("WRITE uses an unknown compression");
        }
        break;
    }
    case EK_DP_HASH: {
        uint64_t off = ek_dp_get64(body), len = ek_dp_get64(body + 8);
        uint32_t bs = ek_dp_get32(body + 16);
        out->u.hash.offset = off;
        out->u.hash.length = len;
        out->u.hash.block_size = bs;
        out->u.hash.algorithm = ek_dp_get32(body + 20);
        if (out->u.hash.algorithm != EK_DP_HASH_XXH3_64)
            BAD("HASH asks for an unknown algorithm");
        if (!is_pow2(bs) || bs < EK_DP_MIN_HASH_BLOCK || bs > EK_DP_MAX_HASH_BLOCK)
            BAD("HASH block size is not a power of two in range");
        if (len == 0 || off > (UINT64_C(1) << 62) || len > (UINT64_C(1) << 62))
            BAD("HASH offset or length out of range");
        if (off % bs)
            BAD("HASH offset is not a multiple of the block size");
        if (ek_dp_block_count(len, bs) > EK_DP_MAX_HASH_BLOCKS) {
            *why = "HASH asks for too many blocks";
            return EK_DP_E_TOO_LARGE;
        }
        break;
    }
    case EK_DP_OPEN_OK:
        out->u.open_ok.size = ek_dp_get64(body);
        out->u.open_ok.max_data = ek_dp_get32(body + 8);
        out->u.open_ok.features = ek_dp_get32(body + 12);
        out->u.open_ok.zero_from = ek_dp_get64(body + 16);
        if (out->u.open_ok.max_data == 0 || out->u.open_ok.max_data > EK_DP_MAX_DATA)
            BAD("OPEN_OK max_data out of range");
        if (out->u.open_ok.zero_from > out->u.open_ok.size)
            BAD("OPEN_OK zero_from beyond the disk");
        break;
    case EK_DP_HASHES: {
        out->u.hashes.offset = ek_dp_get64(body);
        out->u.hashes.block_size = ek_dp_get32(body + 8);
        out->u.hashes.count = ek_dp_get32(body + 12);
        out->u.hashes.hashes = body + EK_DP_HASHES_FIXED;
        if (out->u.hashes.count > EK_DP_MAX_HASH_BLOCKS ||
            (uint64_t)out->u.hashes.count * EK_DP_HASH_SIZE + EK_DP_HASHES_FIXED != h->length)
            BAD("HASHES count does not match the frame length");
        if (!is_pow2(out->u.hashes.block_size))
            BAD("HASHES block size is not a power of two");
        break;
    }
    case EK_DP_ERROR:
        out->u.error.code = ek_dp_get32(body);
        out->u.error.message_len = ek_dp_get16(body + 4);
        out->u.error.message = (const char *)body + EK_DP_ERROR_FIXED;
        if (ek_dp_get16(body + 6) != 0)
            BAD("ERROR reserved field is not zero");
        if ((uint32_t)out->u.error.message_len + EK_DP_ERROR_FIXED != h->length)
            BAD("ERROR message length does not match the frame length");
        break;
    default: /* header-only frames: the bounds check above said length 0 */
        break;
    }
    return EK_DP_OK;
}

static size_t put_header(uint8_t *buf, uint8_t type, uint16_t flags, uint64_t id, uint32_t length)
{
    ek_dp_header_t h = {
        .version = EK_DP_VERSION, .type = type, .flags = flags, .id = id, .length = length};
    ek_dp_header_encode(buf, &h);
    return EK_DP_HEADER_SIZE;
}

size_t ek_dp_open_encode(uint8_t *buf, uint64_t id, uint64_t size, uint32_t flags, const char *path,
                         uint16_t path_len)
{
    size_t n = put_header(buf, EK_DP_OPEN, 0, id, EK_DP_OPEN_FIXED + path_len);
    ek_dp_put64(buf + n, size);
    ek_dp_put32(buf + n + 8, flags);
    ek_dp_put16(buf + n + 12, path_len);
    ek_dp_put16(buf + n + 14, 0);
    memcpy(buf + n + EK_DP_OPEN_FIXED, path, path_len);
    return n + EK_DP_OPEN_FIXED + path_len;
}

size_t ek_dp_write_encode(uint8_t buf[EK_DP_WRITE_PREFIX], uint64_t id, uint16_t flags,
                          uint64_t offset, uint64_t length, uint64_t checksum, uint32_t payload_len)
{
    size_t n = put_header(buf, EK_DP_WRITE, flags, id, EK_DP_WRITE_FIXED + payload_len);
    ek_dp_put64(buf + n, offset);
    ek_dp_put64(buf + n + 8, length);
    ek_dp_put64(buf + n + 16, checksum);
    return n + EK_DP_WRITE_FIXED;
}

size_t ek_dp_simple_encode(uint8_t buf[EK_DP_HEADER_SIZE], uint8_t type, uint64_t id)
{
    return put_header(buf, type, 0, id, 0);
}

size_t ek_dp_hash_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_HASH_FIXED], uint64_t id,
                         uint64_t offset, uint64_t length, uint32_t block_size)
{
    size_t n = put_header(buf, EK_DP_HASH, 0, id, EK_DP_HASH_FIXED);
    ek_dp_put64(buf + n, offset);
    ek_dp_put64(buf + n + 8, length);
    ek_dp_put32(buf + n + 16, block_size);
    ek_dp_put32(buf + n + 20, EK_DP_HASH_XXH3_64);
    return n + EK_DP_HASH_FIXED;
}

size_t ek_dp_open_ok_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_OPEN_OK_SIZE], uint64_t id,
                            uint64_t size, uint32_t max_data, uint32_t features, uint64_t zero_from)
{
    size_t n = put_header(buf, EK_DP_OPEN_OK, 0, id, EK_DP_OPEN_OK_SIZE);
    ek_dp_put64(buf + n, size);
    ek_dp_put32(buf + n + 8, max_data);
    ek_dp_put32(buf + n + 12, features);
    ek_dp_put64(buf + n + 16, zero_from);
    return n + EK_DP_OPEN_OK_SIZE;
}

size_t ek_dp_hashes_encode(uint8_t buf[EK_DP_HEADER_SIZE + EK_DP_HASHES_FIXED], uint64_t id,
                           uint64_t offset, uint32_t block_size, uint32_t count)
{
    size_t n = put_header(buf, EK_DP_HASHES, 0, id,
                          EK_DP_HASHES_FIXED + count * (uint32_t)EK_DP_HASH_SIZE);
    ek_dp_put64(buf + n, offset);
    ek_dp_put32(buf + n + 8, block_size);
    ek_dp_put32(buf + n + 12, count);
    return n + EK_DP_HASHES_FIXED;
}

size_t ek_dp_error_encode(uint8_t *buf, uint64_t id, uint32_t code, const char *message)
{
    size_t len = message ? strlen(message) : 0;
    if (len > EK_DP_MAX_MESSAGE)
        len = EK_DP_MAX_MESSAGE;
    size_t n = put_header(buf, EK_DP_ERROR, 0, id, EK_DP_ERROR_FIXED + (uint32_t)len);
    ek_dp_put32(buf + n, code);
    ek_dp_put16(buf + n + 4, (uint16_t)len);
    ek_dp_put16(buf + n + 6, 0);
    if (len)
        memcpy(buf + n + EK_DP_ERROR_FIXED, message, len);
    return n + EK_DP_ERROR_FIXED + len;
}

const char *ek_dp_error_name(uint32_t code)
{
    static const char *const names[] = {
        "ok",         "malformed", "version",      "type",      "too_large", "checksum",
        "decompress", "not_open",  "already_open", "forbidden", "not_found", "size",
        "range",      "io",        "truncated",    "internal",
    };
    return code < sizeof(names) / sizeof(*names) ? names[code] : "unknown";
}

#if EK_XXH_DISPATCH
XXH_TARGET_AVX2 static uint64_t xxh3_long_avx2(const void *data, size_t len)
{
    return XXH3_hashLong_64b_internal(data, len, XXH3_kSecret, sizeof(XXH3_kSecret),
                                      XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2);
}

XXH_TARGET_AVX512 static uint64_t xxh3_long_avx512(const void *data, size_t len)
{
    return XXH3_hashLong_64b_internal(data, len, XXH3_kSecret, sizeof(XXH3_kSecret),
                                      XXH3_accumulate_512_avx512, XXH3_scrambleAcc_avx512);
}

/* 0 unknown, 1 default, 2 AVX2, 3 AVX-512 */
static int xxh3_kind;

static int xxh3_pick(void)
{
    __builtin_cpu_init();
    int k = __builtin_cpu_supports("avx512f") ? 3 : __builtin_cpu_supports("avx2") ? 2 : 1;
    __atomic_store_n(&xxh3_kind, k, __ATOMIC_RELAXED);
    return k;
}
#endif

uint64_t ek_dp_checksum(const void *data, size_t len)
{
#if EK_XXH_DISPATCH
    if (len > XXH3_MIDSIZE_MAX) { /* the long path, where the vector kernels run */
        int k = __atomic_load_n(&xxh3_kind, __ATOMIC_RELAXED);
        if (!k)
            k = xxh3_pick();
        if (k == 3)
            return xxh3_long_avx512(data, len);
        if (k == 2)
            return xxh3_long_avx2(data, len);
    }
#endif
    return XXH3_64bits(data, len);
}

void ek_dp_hash_put(uint8_t out[EK_DP_HASH_SIZE], uint64_t hash)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(hash >> (56 - 8 * i));
}

uint64_t ek_dp_hash_get(const uint8_t in[EK_DP_HASH_SIZE])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

bool ek_dp_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    /* Check a short head byte by byte, then compare the buffer with itself
     * shifted by 16 bytes: memcmp is vectorised, and a non-zero byte near
     * the start (the common case for data) ends it at once. */
    size_t head = len < 16 ? len : 16;
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return false;
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}
