/* test_local_tracked.c - the local provider's reader wrapper (tracked.c):
 * change tracking by 64 KiB block hashes over a reader without its own
 * (here a reader of a memory buffer, driven the way the transfer engine
 * drives one), the map kept only on commit, a map shared with the raw file
 * reader, and cancellation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/mem.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/providers/local/local.h"

#define BS EK_HASHMAP_BLOCK

/* ---- a reader of a memory buffer: 64 KiB blocks of zeros are ZERO ---- */

typedef struct mem_reader {
    uint8_t *buf;
    uint64_t size;
} mem_reader_t;

static ek_err_t *mem_extents(void *h, uint64_t off, uint64_t len, ek_extents_t *out)
{
    mem_reader_t *m = h;
    for (uint64_t p = off; p < off + len;) {
        uint64_t n = EK_MIN((uint64_t)BS - p % BS, off + len - p);
        bool zero = true;
        for (uint64_t i = 0; i < n && zero; i++)
            zero = m->buf[p + i] == 0;
        ek_extents_push(out, p, n, zero ? EK_EXTENT_ZERO : EK_EXTENT_DATA);
        p += n;
    }
    return NULL;
}

static ek_err_t *mem_pread(void *h, void *buf, size_t len, uint64_t off)
{
    mem_reader_t *m = h;
    memcpy(buf, m->buf + off, len);
    return NULL;
}

static void mem_close(void *h)
{
    (void)h; /* the test owns it */
}

static const ek_reader_ops_t mem_ops = {
    .name = "mem",
    .extents = mem_extents,
    .pread = mem_pread,
    .close = mem_close,
};

/* One sync as the engine does it: extents of the whole disk, then changes()
 * of every data range. kinds[b] gets 'D' (sent), 'Z' (sent as zeros) or
 * 'U' (unchanged) per 64 KiB block. */
static void sync_pass(const ek_reader_ops_t *ops, void *r, uint64_t size, char *kinds)
{
    ek_extents_t x = {0}, refined = {0};
    assert_null(ops->extents(r, 0, size, &x));
    uint8_t *buf = ek_xmalloc(size);
    for (size_t i = 0; i < x.n; i++) {
        if (x.v[i].kind != EK_EXTENT_DATA) {
            ek_extents_push(&refined, x.v[i].offset, x.v[i].length, x.v[i].kind);
            continue;
        }
        assert_int_equal(x.v[i].offset % BS, 0); /* changes() gets aligned ranges */
        assert_null(ops->pread(r, buf, x.v[i].length, x.v[i].offset));
        assert_null(ops->changes(r, buf, x.v[i].offset, x.v[i].length, &refined));
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < refined.n; i++) {
        assert_int_equal(refined.v[i].offset, pos);
        pos += refined.v[i].length;
        for (uint64_t o = refined.v[i].offset; o < pos; o += BS)
            kinds[o / BS] = refined.v[i].kind == EK_EXTENT_DATA   ? 'D'
                            : refined.v[i].kind == EK_EXTENT_ZERO ? 'Z'
                                                                  : 'U';
    }
    assert_int_equal(pos, size);
    kinds[(size + BS - 1) / BS] = 0;
    free(buf);
    ek_extents_release(&x);
    ek_extents_release(&refined);
}

/* A sync through the wrapper; commits when asked. Returns the kinds. */
static char *tracked_pass(mem_reader_t *m, const char *map, bool commit)
{
    ek_local_tracked_t *t;
    assert_null(ek_local_tracked_open(&mem_ops, m, m->size, map, NULL, &t));
    char *kinds = ek_xcalloc(1, m->size / BS + 2);
    sync_pass(&ek_local_tracked_ops, t, m->size, kinds);
    if (commit)
        assert_null(ek_local_tracked_ops.commit(t));
    ek_local_tracked_close(t);
    return kinds;
}

static char *tmpdir(void)
{
    char *t = ek_xstrdup("/tmp/ek-test-tracked-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

#define SIZE (16 * BS + 100) /* a partial last block */

static void fill(mem_reader_t *m, uint64_t block, uint8_t v)
{
    uint64_t off = block * BS, len = EK_MIN((uint64_t)BS, m->size - off);
    memset(m->buf + off, v, len);
}

static void test_tracking(void **state)
{
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *map = ek_xasprintf("%s/d.hashmap", dir);
    _cleanup_free_ char *pending = ek_xasprintf("%s/d.hashmap.new", dir);
    mem_reader_t m = {ek_xcalloc(1, SIZE), SIZE};
    fill(&m, 0, 1);
    fill(&m, 5, 2);
    m.buf[9 * BS + 7] = 3; /* one byte makes the block data */
    fill(&m, 16, 4);       /* the tail */

    char *k = tracked_pass(&m, map, true);
    assert_string_equal(k, "DZZZZDZZZDZZZZZZD"); /* first sync: no map */
    free(k);
    assert_int_equal(access(map, F_OK), 0);
    assert_int_not_equal(access(pending, F_OK), 0);

    k = tracked_pass(&m, map, true);
    assert_string_equal(k, "UUUUUUUUUUUUUUUUU"); /* nothing changed */
    free(k);

    fill(&m, 2, 9); /* zeros -> data */
    fill(&m, 5, 7); /* data -> other data */
    fill(&m, 0, 0); /* data -> zeros */
    m.buf[16 * BS + 99] = 5;
    k = tracked_pass(&m, map, false); /* not committed: the map stays */
    assert_string_equal(k, "ZUDUUDUUUUUUUUUUD");
    free(k);
    assert_int_not_equal(access(pending, F_OK), 0);
    k = tracked_pass(&m, map, true);
    assert_string_equal(k, "ZUDUUDUUUUUUUUUUD");
    free(k);
    k = tracked_pass(&m, map, true);
    assert_string_equal(k, "UUUUUUUUUUUUUUUUU");
    free(k);

    /* a map for another size is not used */
    mem_reader_t big = {ek_xcalloc(1, SIZE + BS), SIZE + BS};
    memcpy(big.buf, m.buf, SIZE);
    k = tracked_pass(&big, map, true);
    assert_string_equal(k, "ZZDZZDZZZDZZZZZZDZ");
    free(k);
    free(big.buf);

    free(m.buf);
    unlink(map);
    rmdir(dir);
}

/* The raw file reader and the wrapper read each other's maps. */
static void test_same_map_format(void **state)
{
    _cleanup_free_ char *dir = tmpdir();
    _cleanup_free_ char *map = ek_xasprintf("%s/d.hashmap", dir);
    _cleanup_free_ char *img = ek_xasprintf("%s/d.img", dir);
    mem_reader_t m = {ek_xcalloc(1, SIZE), SIZE};
    fill(&m, 1, 1);
    fill(&m, 8, 2);
    fill(&m, 16, 3);
    FILE *f = fopen(img, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(m.buf, 1, SIZE, f), SIZE);
    assert_int_equal(fclose(f), 0);

    free(tracked_pass(&m, map, true));
    ek_reader_params_t p = {.hash_map = map};
    void *r;
    uint64_t size;
    assert_null(ek_reader_file.open(img, &p, &r, &size));
    assert_int_equal(size, SIZE);
    char kinds[32];
    sync_pass(&ek_reader_file, r, size, kinds);
    assert_string_equal(kinds, "UUUUUUUUUUUUUUUUU");
    assert_null(ek_reader_file.commit(r));
    ek_reader_file.close(r);

    fill(&m, 3, 4);
    char *k = tracked_pass(&m, map, false); /* the file reader's map, read by the wrapper */
    assert_string_equal(k, "UUUDUUUUUUUUUUUUU");
    free(k);

    free(m.buf);
    unlink(img);
    unlink(map);
    rmdir(dir);
}

static void test_forward_and_cancel(void **state)
{
    mem_reader_t m = {ek_xcalloc(1, SIZE), SIZE};
    fill(&m, 3, 1);
    ek_task_ctx_t *ctx = ek_test_ctx_new(NULL, NULL, "test");
    ek_local_tracked_t *t;
    assert_null(ek_local_tracked_open(&mem_ops, &m, m.size, NULL, ctx, &t));
    char kinds[32];
    sync_pass(&ek_local_tracked_ops, t, m.size, kinds);
    assert_string_equal(kinds, "ZZZDZZZZZZZZZZZZZ"); /* no map: as the inner reader says */
    uint64_t h[2];
    assert_null(ek_local_tracked_ops.block_hashes(t, 0, 2 * BS, BS, h));
    assert_int_equal(h[0], h[1]); /* two zero blocks */
    ek_test_ctx_cancel(ctx);
    uint8_t b[16];
    ek_err_t *err = ek_local_tracked_ops.pread(t, b, sizeof(b), 0);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_CANCELED);
    ek_err_free(err);
    ek_extents_t x = {0};
    err = ek_local_tracked_ops.extents(t, 0, BS, &x);
    assert_int_equal(err->code, EK_E_CANCELED);
    ek_err_free(err);
    ek_extents_release(&x);
    assert_null(ek_local_tracked_ops.commit(t)); /* nothing to keep */
    ek_local_tracked_close(t);
    ek_test_ctx_free(ctx);
    free(m.buf);

    /* a map that cannot be created is an error, and the inner reader is the caller's */
    err = ek_local_tracked_open(&mem_ops, &m, SIZE, "/nonexistent/dir/map", NULL, &t);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "could not create hash map"));
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tracking),
        cmocka_unit_test(test_same_map_format),
        cmocka_unit_test(test_forward_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
