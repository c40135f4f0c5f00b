/* fuzz_dataplane.c - libFuzzer target for what ekman-writer parses from the
 * network before anything else: the data-plane frames (proto/dataplane.c)
 * and the HTTP/1.1 request head in front of them (http_parse.c).
 *
 * The first input byte picks the parser; the rest is read as the writer
 * reads a stream: a header, refused or trusted for its length, then the
 * body, decoded strictly, frame after frame. Whatever a decoder accepts must
 * lie inside the bytes it was given (ASan checks every access). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proto/dataplane.h"
#include "worker/writer/writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const ek_dp_frame_t *f, const uint8_t *body)
{
    const uint8_t *end = body + f->h.length;
    volatile uint8_t sink = 0;
    switch (f->h.type) {
    case EK_DP_OPEN:
        if ((const uint8_t *)f->u.open.path + f->u.open.path_len > end)
            abort();
        for (uint16_t i = 0; i < f->u.open.path_len; i++)
            sink ^= (uint8_t)f->u.open.path[i];
        break;
    case EK_DP_WRITE:
        if (f->u.write.payload + f->u.write.payload_len > end)
            abort();
        if (!f->u.write.zero && f->u.write.compression == EK_DP_WRITE_COMP_NONE &&
            f->u.write.payload_len != f->u.write.length)
            abort();
        if (f->u.write.payload_len)
            sink ^= (uint8_t)ek_dp_checksum(f->u.write.payload, f->u.write.payload_len);
        break;
    case EK_DP_HASHES:
        if (f->u.hashes.hashes + (size_t)f->u.hashes.count * EK_DP_HASH_SIZE > end)
            abort();
        for (uint32_t i = 0; i < f->u.hashes.count; i++)
            sink ^= (uint8_t)ek_dp_hash_get(f->u.hashes.hashes + i * EK_DP_HASH_SIZE);
        break;
    case EK_DP_ERROR:
        if ((const uint8_t *)f->u.error.message + f->u.error.message_len > end)
            abort();
        break;
    case EK_DP_HASH:
        if (ek_dp_block_count(f->u.hash.length, f->u.hash.block_size) > EK_DP_MAX_HASH_BLOCKS)
            abort();
        break;
    default:
        break;
    }
    (void)sink;
}

static void frames(const uint8_t *p, size_t n)
{
    while (n >= EK_DP_HEADER_SIZE) {
        ek_dp_header_t h;
        if (ek_dp_header_decode(p, &h) != EK_DP_OK)
            return; /* the writer answers and ends the session */
        uint32_t lo, hi;
        if (!ek_dp_type_bounds(h.type, &lo, &hi) || h.length > hi || h.length < lo)
            abort(); /* the header check let through a length out of bounds */
        p += EK_DP_HEADER_SIZE;
        n -= EK_DP_HEADER_SIZE;
        if (h.length > n)
            return; /* truncated */
        /* The body in a buffer of exactly its size, as the writer allocates it. */
        uint8_t *body = malloc(h.length ? h.length : 1);
        memcpy(body, p, h.length);
        ek_dp_frame_t f;
        const char *why = NULL;
        if (ek_dp_frame_decode(&h, body, &f, &why) == EK_DP_OK)
            check_frame(&f, body);
        else if (!why)
            abort(); /* every refusal says why */
        free(body);
        p += h.length;
        n -= h.length;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        ek_http_request_t req;
        char *copy = malloc(size - 1 ? size - 1 : 1);
        memcpy(copy, data + 1, size - 1);
        int rc = ek_http_request_parse(copy, size - 1, &req);
        if (rc == 1 && (req.head_len > size - 1 || !req.method[0] || req.path[0] == 0))
            abort();
        free(copy);
    } else {
        frames(data + 1, size - 1);
    }
    return 0;
}
