/* ranges.h - a set of byte ranges kept as sorted, merged [start, end)
 * intervals: what a transfer has had acknowledged, so far. Adding a range
 * next to or over others merges them, so the set stays as small as the
 * number of gaps. Not thread-safe: the engine holds its own lock. */
#ifndef EK_TRANSFER_RANGES_H
#define EK_TRANSFER_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "common/error.h"

typedef struct ek_range {
    uint64_t start, end; /* end exclusive */
} ek_range_t;

typedef struct ek_ranges {
    ek_range_t *v;
    size_t n, alloc;
} ek_ranges_t;

#define EK_RANGES_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void ek_ranges_add(ek_ranges_t *r, uint64_t start, uint64_t len);
void ek_ranges_clear(ek_ranges_t *r);
void ek_ranges_copy(ek_ranges_t *dst, const ek_ranges_t *src);
/* True when [start, start+len) is wholly in the set. */
bool ek_ranges_contains(const ek_ranges_t *r, uint64_t start, uint64_t len);
/* True when some byte of [start, start+len) is in the set. */
bool ek_ranges_intersects(const ek_ranges_t *r, uint64_t start, uint64_t len);
/* Total bytes in the set. */
uint64_t ek_ranges_total(const ek_ranges_t *r);
/* Calls fn for each piece of [start, start+len) that is NOT in the set. */
void ek_ranges_each_gap(const ek_ranges_t *r, uint64_t start, uint64_t len,
                        void (*fn)(uint64_t start, uint64_t len, void *opaque), void *opaque);
/* [[start, length], ...] and back; the parser checks order and bounds. */
json_object *ek_ranges_to_json(const ek_ranges_t *r);
EK_ERR_CHECK ek_ranges_from_json(json_object *arr, uint64_t limit, ek_ranges_t *out);

#endif
