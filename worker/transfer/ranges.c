/* ranges.c - sorted, merged byte intervals (see ranges.h). */
#include "worker/transfer/ranges.h"

#include <string.h>
#include "common/mem.h"

/* Index of the first interval whose end is >= start (binary search). */
static size_t lower(const ek_ranges_t *r, uint64_t start)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid].end < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void ek_ranges_add(ek_ranges_t *r, uint64_t start, uint64_t len)
{
    if (!len)
        return;
    uint64_t end = start + len;
    size_t i = lower(r, start);
    /* Intervals i..j-1 touch or overlap [start, end): merge them into one. */
    size_t j = i;
    while (j < r->n && r->v[j].start <= end) {
        if (r->v[j].start < start)
            start = r->v[j].start;
        if (r->v[j].end > end)
            end = r->v[j].end;
        j++;
    }
    if (j > i) {
        r->v[i].start = start;
        r->v[i].end = end;
        memmove(&r->v[i + 1], &r->v[j], (r->n - j) * sizeof(ek_range_t));
        r->n -= j - i - 1;
        return;
    }
    if (r->n == r->alloc) {
        r->alloc = r->alloc ? r->alloc * 2 : 16;
        r->v = ek_xrealloc(r->v, r->alloc * sizeof(ek_range_t));
    }
    memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(ek_range_t));
    r->v[i].start = start;
    r->v[i].end = end;
    r->n++;
}

void ek_ranges_clear(ek_ranges_t *r)
{
    free(r->v);
    r->v = NULL;
    r->n = r->alloc = 0;
}

void ek_ranges_copy(ek_ranges_t *dst, const ek_ranges_t *src)
{
    if (dst->alloc < src->n) {
        dst->alloc = src->n;
        dst->v = ek_xrealloc(dst->v, dst->alloc * sizeof(ek_range_t));
    }
    if (src->n)
        memcpy(dst->v, src->v, src->n * sizeof(ek_range_t));
    dst->n = src->n;
}

bool ek_ranges_contains(const ek_ranges_t *r, uint64_t start, uint64_t len)
{
    size_t i = lower(r, start + 1);
    return i < r->n && r->v[i].start <= start && r->v[i].end >= start + len;
}

bool ek_ranges_intersects(const ek_ranges_t *r, uint64_t start, uint64_t len)
{
    size_t i = lower(r, start + 1);
    return i < r->n && r->v[i].start < start + len;
}

uint64_t ek_ranges_total(const ek_ranges_t *r)
{
    uint64_t t = 0;
    for (size_t i = 0; i < r->n; i++)
        t += r->v[i].end - r->v[i].start;
    return t;
}

void ek_ranges_each_gap(const ek_ranges_t *r, uint64_t start, uint64_t len,
                        void (*fn)(uint64_t start, uint64_t len, void *opaque), void *opaque)
{
    uint64_t pos = start, end = start + len;
    for (size_t i = lower(r, start + 1); i < r->n && pos < end; i++) {
        if (r->v[i].start >= end)
            break;
        if (r->v[i].start > pos)
            fn(pos, r->v[i].start - pos, opaque);
        if (r->v[i].end > pos)
            pos = r->v[i].end;
    }
    if (pos < end)
        fn(pos, end - pos, opaque);
}

json_object *ek_ranges_to_json(const ek_ranges_t *r)
{
    json_object *arr = json_object_new_array_ext((int)r->n);
    for (size_t i = 0; i < r->n; i++) {
        json_object *pair = json_object_new_array_ext(2);
        json_object_array_add(pair, json_object_new_int64((int64_t)r->v[i].start));
        json_object_array_add(pair, json_object_new_int64((int64_t)(r->v[i].end - r->v[i].start)));
        json_object_array_add(arr, pair);
    }
    return arr;
}

ek_err_t *ek_ranges_from_json(json_object *arr, uint64_t limit, ek_ranges_t *out)
{
    if (!json_object_is_type(arr, json_type_array))
        return ek_err_new(EK_E_INVALID, "ranges must be an array of [offset, length]");
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *pair = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2 ||
            !json_object_is_type(json_object_array_get_idx(pair, 0), json_type_int) ||
            !json_object_is_type(json_object_array_get_idx(pair, 1), json_type_int))
            return ek_err_new(EK_E_INVALID, "ranges[%zu] must be [offset, length]", i);
        int64_t s = json_object_get_int64(json_object_array_get_idx(pair, 0));
        int64_t l = json_object_get_int64(json_object_array_get_idx(pair, 1));
        if (s < 0 || l <= 0 || (uint64_t)s > limit || (uint64_t)l > limit - (uint64_t)s)
            return ek_err_new(EK_E_INVALID, "ranges[%zu] = [%lld, %lld] is outside the disk", i,
                              (long long)s, (long long)l);
        ek_ranges_add(out, (uint64_t)s, (uint64_t)l);
    }
    return NULL;
}
