/* test_dataplane.c - the data plane without the network: frame encoding and
 * strict decoding, the writer's HTTP request parser, byte-range sets, the
 * raw-file reader, a writer session driven frame by frame over a socket pair
 * (checksums, truncated and oversized frames, zeros, hashes), mutual TLS
 * with the per-transfer certificates, and Ekman's TLS 1.3 record layer
 * against OpenSSL's (every suite, key updates, close_notify, a flipped bit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/ssl.h>
#include "common/log.h"
#include "proto/dataplane.h"
#include "worker/transfer/pki.h"
#include "worker/transfer/ranges.h"
#include "worker/transfer/reader.h"
#include "worker/transfer/tls.h"
#include "worker/writer/writer.h"

/* ---- frames ---- */

static void test_header_roundtrip(void **state)
{
    uint8_t buf[EK_DP_HEADER_SIZE];
    ek_dp_header_t h = {.type = EK_DP_FLUSH, .id = 0x1122334455667788ULL}, out;
    ek_dp_header_encode(buf, &h);
    assert_memory_equal(buf, "EKDP\x01\x03\x00\x00\x88\x77\x66\x55\x44\x33\x22\x11", 16);
    assert_int_equal(ek_dp_header_decode(buf, &out), EK_DP_OK);
    assert_int_equal(out.type, EK_DP_FLUSH);
    assert_true(out.id == h.id);
    assert_int_equal(out.length, 0);
}

static void test_header_rejects(void **state)
{
    uint8_t buf[EK_DP_HEADER_SIZE];
    ek_dp_header_t h;
    ek_dp_simple_encode(buf, EK_DP_FLUSH, 7);
    buf[0] = 'X';
    assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_MALFORMED);
    assert_int_equal(h.id, 7); /* an error can still name the request */
    ek_dp_simple_encode(buf, EK_DP_FLUSH, 7);
    buf[4] = 2;
    assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_VERSION);
    ek_dp_simple_encode(buf, 0x42, 7);
    assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_TYPE);
    ek_dp_simple_encode(buf, EK_DP_FLUSH, 7);
    buf[20] = 1; /* reserved */
    assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_MALFORMED);
    /* lengths beyond each type's bound: rejected from the header alone */
    uint8_t types[] = {EK_DP_OPEN,  EK_DP_WRITE,   EK_DP_FLUSH,  EK_DP_HASH,
                       EK_DP_CLOSE, EK_DP_OPEN_OK, EK_DP_HASHES, EK_DP_ERROR};
    for (size_t i = 0; i < sizeof(types); i++) {
        uint32_t lo, hi;
        assert_true(ek_dp_type_bounds(types[i], &lo, &hi));
        ek_dp_header_t big = {.type = types[i], .id = 1, .length = hi + 1};
        ek_dp_header_encode(buf, &big);
        assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_TOO_LARGE);
        big.length = 0xffffffffu;
        ek_dp_header_encode(buf, &big);
        assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_TOO_LARGE);
    }
    ek_dp_header_t small = {.type = EK_DP_WRITE, .id = 1, .length = 3};
    ek_dp_header_encode(buf, &small);
    assert_int_equal(ek_dp_header_decode(buf, &h), EK_DP_E_MALFORMED);
}

static ek_dp_errcode_t decode(const uint8_t *frame, ek_dp_frame_t *f, const char **why)
{
    ek_dp_header_t h;
    ek_dp_errcode_t rc = ek_dp_header_decode(frame, &h);
    if (rc)
        return rc;
    return ek_dp_frame_decode(&h, frame + EK_DP_HEADER_SIZE, f, why);
}

static void test_bodies(void **state)
{
    uint8_t buf[4096];
    ek_dp_frame_t f;
    const char *why;
    ek_dp_open_encode(buf, 1, 1 << 20, EK_DP_OPEN_CREATE, "/dev/vdb", 8);
    assert_int_equal(decode(buf, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.open.size, 1 << 20);
    assert_int_equal(f.u.open.path_len, 8);
    assert_memory_equal(f.u.open.path, "/dev/vdb", 8);
    buf[EK_DP_HEADER_SIZE + 12] = 9; /* path length lies */
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_open_encode(buf, 1, 1 << 20, 0, "/dev\0vdb", 8);
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_open_encode(buf, 1, 1 << 20, 0x80, "/x", 2);
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);

    /* WRITE: data, zero, compressed */
    uint8_t *w = buf;
    size_t n = ek_dp_write_encode(w, 2, 0, 4096, 100, 42, 100);
    memset(w + n, 'a', 100);
    assert_int_equal(decode(w, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.write.offset, 4096);
    assert_int_equal(f.u.write.length, 100);
    assert_int_equal(f.u.write.checksum, 42);
    assert_false(f.u.write.zero);
    assert_int_equal(f.u.write.payload_len, 100);
    ek_dp_write_encode(w, 2, 0, 0, 101, 42, 100); /* payload shorter than length */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_write_encode(w, 2, EK_DP_WRITE_ZERO, 0, 1 << 30, 0, 0);
    assert_int_equal(decode(w, &f, &why), EK_DP_OK);
    assert_true(f.u.write.zero);
    ek_dp_write_encode(w, 2, EK_DP_WRITE_ZERO, 0, 10, 0, 10); /* zero with payload */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_write_encode(w, 2, EK_DP_WRITE_COMP_ZSTD, 0, 50, 1, 60); /* grew */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_write_encode(w, 2, EK_DP_WRITE_COMP_ZSTD, 0, 500, 1, 60);
    assert_int_equal(decode(w, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.write.compression, EK_DP_WRITE_COMP_ZSTD);
    ek_dp_write_encode(w, 2, 0x0020, 0, 60, 1, 60); /* unknown compression */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_write_encode(w, 2, 0, 0, 0, 0, 0); /* empty */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_write_encode(w, 2, EK_DP_WRITE_ZERO, UINT64_MAX - 5, 10, 0, 0); /* overflow */
    assert_int_equal(decode(w, &f, &why), EK_DP_E_MALFORMED);

    /* HASH */
    ek_dp_hash_encode(buf, 3, 1 << 20, 64 << 20, 1 << 20);
    assert_int_equal(decode(buf, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.hash.block_size, 1 << 20);
    ek_dp_hash_encode(buf, 3, 1 << 20, 64 << 20, 3000);
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_hash_encode(buf, 3, 4096, 64 << 20, 1 << 20); /* misaligned */
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);
    ek_dp_hash_encode(buf, 3, 0, (uint64_t)(EK_DP_MAX_HASH_BLOCKS + 1) * 4096, 4096);
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_TOO_LARGE);

    /* replies */
    ek_dp_open_ok_encode(buf, 4, 123456, 1 << 20, EK_DP_FEAT_PUNCH, 4096);
    assert_int_equal(decode(buf, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.open_ok.size, 123456);
    assert_int_equal(f.u.open_ok.zero_from, 4096);
    ek_dp_open_ok_encode(buf, 4, 123456, 1 << 20, 0, 123457);
    assert_int_equal(decode(buf, &f, &why), EK_DP_E_MALFORMED);
    n = ek_dp_hashes_encode(buf, 5, 0, 65536, 2);
    ek_dp_hash_put(buf + n, 0x0102030405060708ULL);
    ek_dp_hash_put(buf + n + 8, 9);
    assert_int_equal(decode(buf, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.hashes.count, 2);
    assert_true(ek_dp_hash_get(f.u.hashes.hashes) == 0x0102030405060708ULL);
    assert_int_equal(buf[n], 1); /* big-endian canonical form */
    n = ek_dp_error_encode(buf, 6, EK_DP_E_CHECKSUM, "bad");
    assert_int_equal(n, EK_DP_HEADER_SIZE + EK_DP_ERROR_FIXED + 3);
    assert_int_equal(decode(buf, &f, &why), EK_DP_OK);
    assert_int_equal(f.u.error.code, EK_DP_E_CHECKSUM);
    assert_memory_equal(f.u.error.message, "bad", 3);
    assert_string_equal(ek_dp_error_name(EK_DP_E_CHECKSUM), "checksum");
}

static void test_checksum_and_zero(void **state)
{
    static uint8_t z[1 << 16];
    assert_true(ek_dp_is_zero(z, sizeof(z)));
    assert_true(ek_dp_is_zero(z, 3));
    assert_true(ek_dp_is_zero(z, 0));
    z[40000] = 1;
    assert_false(ek_dp_is_zero(z, sizeof(z)));
    assert_true(ek_dp_is_zero(z, 40000));
    z[40000] = 0;
    z[5] = 1;
    assert_false(ek_dp_is_zero(z, 16));
    z[5] = 0;
    /* XXH3-64 of the empty input (reference value from the xxHash spec) */
    assert_true(ek_dp_checksum("", 0) == 0x2D06800538D394C2ULL);
    assert_true(ek_dp_checksum("a", 1) != ek_dp_checksum("b", 1));
}

/* ---- ranges ---- */

static void gap_cb(uint64_t s, uint64_t l, void *o)
{
    ek_ranges_add(o, s, l);
}

static void test_ranges(void **state)
{
    ek_ranges_t r = EK_RANGES_INIT;
    ek_ranges_add(&r, 100, 50);
    ek_ranges_add(&r, 300, 50);
    ek_ranges_add(&r, 0, 10);
    assert_int_equal(r.n, 3);
    ek_ranges_add(&r, 150, 150); /* bridges 100-150 and 300-350 */
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[1].start, 100);
    assert_int_equal(r.v[1].end, 350);
    ek_ranges_add(&r, 10, 90); /* touches both sides */
    assert_int_equal(r.n, 1);
    assert_int_equal(ek_ranges_total(&r), 350);
    assert_true(ek_ranges_contains(&r, 0, 350));
    assert_false(ek_ranges_contains(&r, 300, 51));
    assert_true(ek_ranges_intersects(&r, 349, 10));
    assert_false(ek_ranges_intersects(&r, 350, 10));
    ek_ranges_t gaps = EK_RANGES_INIT;
    ek_ranges_add(&r, 500, 100);
    ek_ranges_each_gap(&r, 200, 500, gap_cb, &gaps);
    assert_int_equal(gaps.n, 2);
    assert_int_equal(gaps.v[0].start, 350);
    assert_int_equal(gaps.v[0].end, 500);
    assert_int_equal(gaps.v[1].start, 600);
    assert_int_equal(gaps.v[1].end, 700);
    json_object *j = ek_ranges_to_json(&r);
    ek_ranges_t back = EK_RANGES_INIT;
    assert_null(ek_ranges_from_json(j, 1000, &back));
    assert_int_equal(back.n, r.n);
    assert_memory_equal(back.v, r.v, r.n * sizeof(ek_range_t));
    ek_ranges_t bad = EK_RANGES_INIT;
    ek_err_t *err = ek_ranges_from_json(j, 599, &bad); /* beyond the disk */
    assert_non_null(err);
    ek_err_free(err);
    json_object_put(j);
    ek_ranges_clear(&r);
    ek_ranges_clear(&gaps);
    ek_ranges_clear(&back);
    ek_ranges_clear(&bad);
}

/* ---- HTTP ---- */

static int parse(const char *s, ek_http_request_t *req)
{
    return ek_http_request_parse(s, strlen(s), req);
}

static void test_http_parse(void **state)
{
    ek_http_request_t r;
    assert_int_equal(parse("POST /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: ekman-writer/1\r\n"
                           "Connection: keep-alive, Upgrade\r\nContent-Length: 0\r\n\r\n",
                           &r),
                     1);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/v1/stream");
    assert_true(r.upgrade);
    assert_true(r.conn_upgrade);
    assert_false(r.has_body);
    assert_int_equal(parse("POST /v1/stream HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", &r), 1);
    assert_false(r.upgrade);
    assert_int_equal(parse("GET /v1/health HTTP/1.1\r\nHost: x\r\n", &r), 0); /* incomplete */
    assert_int_equal(parse("GET /v1/health\r\n\r\n", &r), -400);
    assert_int_equal(parse("get /v1/health HTTP/1.1\r\n\r\n", &r), -400);
    /* found by the fuzzer: a NUL inside the target once ended the check */
    assert_int_equal(ek_http_request_parse("GET /a\0b HTTP/1.1\r\n\r\n", 23, &r), -400);
    assert_int_equal(parse("GET /v1/health HTTP/2.0\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET /v1/health HTTP/1.1\r\nNoColon\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET /v1/health HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &r), -400);
    assert_int_equal(parse("POST /v1/stream HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &r), 1);
    assert_true(r.has_body);
    assert_int_equal(parse("POST /v1/stream HTTP/1.1\r\nContent-Length: -5\r\n\r\n", &r), -400);
    char big[EK_HTTP_MAX_HEAD + 64];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(ek_http_request_parse(big, sizeof(big), &r), -431);
}

/* ---- a writer session over a socket pair ---- */

typedef struct wsess {
    ek_writer_t *w;
    ek_stream_t *s;
    ek_err_t *err;
    pthread_t th;
} wsess_t;

static void *session_thread(void *arg)
{
    wsess_t *ws = arg;
    ws->err = ek_writer_session_run(ws->w, ws->s, "test");
    return NULL;
}

static char tmpdir[64];
static ek_writer_opts_t wopts;
static char *allow[1];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ekdp-unit.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    allow[0] = tmpdir;
    wopts = (ek_writer_opts_t){.allow = allow, .n_allow = 1, .threads = 2};
    ek_log_set_level(EK_LOG_ERROR);
    return 0;
}

static int teardown_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Starts a session; *fd is the client's end. */
static wsess_t *session_start(int *fd)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    wsess_t *ws = calloc(1, sizeof(*ws));
    ws->w = ek_writer_new(&wopts);
    ws->s = ek_stream_fd_new(sv[1], sv[1], true);
    ek_stream_set_timeout(ws->s, 5000);
    assert_int_equal(pthread_create(&ws->th, NULL, session_thread, ws), 0);
    *fd = sv[0];
    return ws;
}

static ek_err_t *session_end(wsess_t *ws, int fd)
{
    close(fd);
    if (ws->th)
        pthread_join(ws->th, NULL);
    ek_err_t *err = ws->err;
    ek_stream_free(ws->s);
    ek_writer_free(ws->w);
    free(ws);
    return err;
}

static void send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Reads one reply; returns its type and fills f (body kept in body). */
static uint8_t reply(int fd, ek_dp_frame_t *f, uint8_t *body)
{
    uint8_t hb[EK_DP_HEADER_SIZE];
    size_t got = 0;
    while (got < sizeof(hb)) {
        ssize_t n = read(fd, hb + got, sizeof(hb) - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    ek_dp_header_t h;
    assert_int_equal(ek_dp_header_decode(hb, &h), EK_DP_OK);
    for (got = 0; got < h.length;) {
        ssize_t n = read(fd, body + got, h.length - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(ek_dp_frame_decode(&h, body, f, NULL), EK_DP_OK);
    return h.type;
}

static void open_disk(int fd, const char *path, uint64_t size, uint32_t flags, uint8_t expect)
{
    uint8_t buf[256], body[2048];
    ek_dp_frame_t f;
    send_all(fd, buf, ek_dp_open_encode(buf, 1, size, flags, path, (uint16_t)strlen(path)));
    assert_int_equal(reply(fd, &f, body), expect);
}

static void file_read(const char *path, uint8_t *buf, size_t n, off_t off)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, n, off), (ssize_t)n);
    close(fd);
}

static void test_session_write_and_hash(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/disk.img", tmpdir);
    int fd;
    wsess_t *ws = session_start(&fd);
    ek_dp_frame_t f;
    uint8_t *body = malloc(1 << 20);
    open_disk(fd, path, 1 << 20, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, EK_DP_OPEN_OK);

    /* a data chunk, acknowledged after it is written */
    uint8_t data[8192], hdr[EK_DP_WRITE_PREFIX];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    ek_dp_write_encode(hdr, 10, 0, 65536, sizeof(data), ek_dp_checksum(data, sizeof(data)),
                       sizeof(data));
    send_all(fd, hdr, sizeof(hdr));
    send_all(fd, data, sizeof(data));
    assert_int_equal(reply(fd, &f, body), EK_DP_WRITE_OK);
    assert_int_equal(f.h.id, 10);
    uint8_t back[8192];
    file_read(path, back, sizeof(back), 65536);
    assert_memory_equal(back, data, sizeof(data));

    /* a flipped bit: refused by the checksum, never written */
    uint8_t bad[8192];
    memset(bad, 0x5a, sizeof(bad));
    uint64_t sum = ek_dp_checksum(bad, sizeof(bad));
    bad[100] ^= 0x01;
    ek_dp_write_encode(hdr, 11, 0, 0, sizeof(bad), sum, sizeof(bad));
    send_all(fd, hdr, sizeof(hdr));
    send_all(fd, bad, sizeof(bad));
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.h.id, 11);
    assert_int_equal(f.u.error.code, EK_DP_E_CHECKSUM);
    file_read(path, back, sizeof(back), 0);
    static const uint8_t zeros[8192];
    assert_memory_equal(back, zeros, sizeof(back));

    /* beyond the disk */
    ek_dp_write_encode(hdr, 12, EK_DP_WRITE_ZERO, (1 << 20) - 10, 20, 0, 0);
    send_all(fd, hdr, sizeof(hdr));
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.u.error.code, EK_DP_E_RANGE);

    /* zeros over the data */
    ek_dp_write_encode(hdr, 13, EK_DP_WRITE_ZERO, 65536, 4096, 0, 0);
    send_all(fd, hdr, sizeof(hdr));
    assert_int_equal(reply(fd, &f, body), EK_DP_WRITE_OK);
    file_read(path, back, 4096, 65536);
    assert_memory_equal(back, zeros, 4096);

    /* flush, then hashes of the 16 blocks of 64 KiB */
    uint8_t small[64];
    send_all(fd, small, ek_dp_simple_encode(small, EK_DP_FLUSH, 14));
    assert_int_equal(reply(fd, &f, body), EK_DP_FLUSH_OK);
    send_all(fd, small, ek_dp_hash_encode(small, 15, 0, 1 << 20, 65536));
    assert_int_equal(reply(fd, &f, body), EK_DP_HASHES);
    assert_int_equal(f.u.hashes.count, 16);
    uint8_t *blk = calloc(1, 65536);
    uint64_t zero_hash = ek_dp_checksum(blk, 65536);
    file_read(path, blk, 65536, 65536);
    assert_true(ek_dp_hash_get(f.u.hashes.hashes + 8) == ek_dp_checksum(blk, 65536));
    assert_true(ek_dp_hash_get(f.u.hashes.hashes) == zero_hash);
    assert_true(ek_dp_hash_get(f.u.hashes.hashes + 15 * 8) == zero_hash);
    free(blk);

    send_all(fd, small, ek_dp_simple_encode(small, EK_DP_CLOSE, 16));
    assert_int_equal(reply(fd, &f, body), EK_DP_CLOSE_OK);
    send_all(fd, small, ek_dp_simple_encode(small, EK_DP_FLUSH, 17));
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.u.error.code, EK_DP_E_NOT_OPEN);
    assert_null(session_end(ws, fd));
    free(body);
}

static void test_session_refuses_paths(void **state)
{
    int fd;
    wsess_t *ws = session_start(&fd);
    uint8_t body[2048];
    open_disk(fd, "/etc/passwd", 10, 0, EK_DP_ERROR);
    char path[160];
    snprintf(path, sizeof(path), "%s/../escape.img", tmpdir);
    open_disk(fd, path, 10, EK_DP_OPEN_CREATE, EK_DP_ERROR);
    snprintf(path, sizeof(path), "%s/missing.img", tmpdir);
    open_disk(fd, path, 10, 0, EK_DP_ERROR);
    open_disk(fd, "relative.img", 10, 0, EK_DP_ERROR);
    (void)body;
    assert_null(session_end(ws, fd));
    snprintf(path, sizeof(path), "%s/../escape.img", tmpdir);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_session_truncated_frame(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/trunc.img", tmpdir);
    int fd;
    wsess_t *ws = session_start(&fd);
    ek_dp_frame_t f;
    uint8_t body[2048];
    open_disk(fd, path, 1 << 20, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, EK_DP_OPEN_OK);
    /* a WRITE that announces 64 KiB and carries 1000 bytes before the end */
    uint8_t hdr[EK_DP_WRITE_PREFIX], data[1000];
    memset(data, 0x77, sizeof(data));
    ek_dp_write_encode(hdr, 20, 0, 0, 65536, 0, 65536);
    send_all(fd, hdr, sizeof(hdr));
    send_all(fd, data, sizeof(data));
    shutdown(fd, SHUT_WR);
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.h.id, 20);
    assert_int_equal(f.u.error.code, EK_DP_E_TRUNCATED);
    ek_err_t *err = session_end(ws, fd);
    assert_non_null(err);
    ek_err_free(err);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_blocks, 0); /* nothing written */
}

static void test_session_oversized_frame(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/big.img", tmpdir);
    int fd;
    wsess_t *ws = session_start(&fd);
    ek_dp_frame_t f;
    uint8_t body[2048];
    open_disk(fd, path, 1 << 20, EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE, EK_DP_OPEN_OK);
    /* a header claiming 4 GiB: refused before anything is read or reserved */
    ek_dp_header_t h = {.type = EK_DP_WRITE, .id = 30, .length = 0xfffffff0u};
    uint8_t hb[EK_DP_HEADER_SIZE];
    ek_dp_header_encode(hb, &h);
    send_all(fd, hb, sizeof(hb));
    send_all(fd, "junk", 4);
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.h.id, 30);
    assert_int_equal(f.u.error.code, EK_DP_E_TOO_LARGE);
    /* the session is over (the stream cannot be trusted any more) while the
     * client still holds its end open */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    assert_int_equal(pthread_timedjoin_np(ws->th, NULL, &ts), 0);
    ws->th = 0;
    ek_err_t *err = session_end(ws, fd);
    assert_non_null(err);
    ek_err_free(err);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_blocks, 0);
}

static void test_session_garbage(void **state)
{
    int fd;
    wsess_t *ws = session_start(&fd);
    ek_dp_frame_t f;
    uint8_t body[2048];
    send_all(fd, "GET / HTTP/1.1\r\n\r\n12345", 24);
    assert_int_equal(reply(fd, &f, body), EK_DP_ERROR);
    assert_int_equal(f.u.error.code, EK_DP_E_MALFORMED);
    ek_err_t *err = session_end(ws, fd);
    assert_non_null(err);
    ek_err_free(err);
}

/* ---- the raw-file reader ---- */

static void test_file_reader(void **state)
{
    char path[128], map[160];
    snprintf(path, sizeof(path), "%s/src.img", tmpdir);
    snprintf(map, sizeof(map), "%s/src.map", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4 << 20), 0);
    uint8_t blk[65536];
    memset(blk, 0xab, sizeof(blk));
    assert_int_equal(pwrite(fd, blk, sizeof(blk), 1 << 20), (ssize_t)sizeof(blk));
    ek_reader_params_t rp = {.hash_map = map};
    void *r;
    uint64_t size;
    assert_null(ek_reader_file.open(path, &rp, &r, &size));
    assert_int_equal(size, 4 << 20);
    ek_extents_t x = {0};
    assert_null(ek_reader_file.extents(r, 0, size, &x));
    /* the hole before the data is ZERO (no previous map: not known unchanged) */
    assert_true(x.n >= 2);
    assert_int_equal(x.v[0].kind, EK_EXTENT_ZERO);
    bool found = false;
    for (size_t i = 0; i < x.n; i++)
        if (x.v[i].kind == EK_EXTENT_DATA && x.v[i].offset <= (1 << 20) &&
            x.v[i].offset + x.v[i].length >= (1 << 20) + 65536)
            found = true;
    assert_true(found);
    ek_extents_t c = {0};
    assert_null(ek_reader_file.changes(r, blk, 1 << 20, sizeof(blk), &c));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.v[0].kind, EK_EXTENT_DATA);
    assert_null(ek_reader_file.commit(r));
    ek_reader_file.close(r);
    ek_extents_release(&x);
    ek_extents_release(&c);

    /* second sync: the same block is unchanged, a changed one is data */
    assert_null(ek_reader_file.open(path, &rp, &r, &size));
    assert_null(ek_reader_file.extents(r, 0, size, &x));
    assert_int_equal(x.v[0].kind, EK_EXTENT_UNCHANGED); /* hole then, hole now */
    assert_null(ek_reader_file.changes(r, blk, 1 << 20, sizeof(blk), &c));
    assert_int_equal(c.v[0].kind, EK_EXTENT_UNCHANGED);
    blk[5] = 1;
    ek_extents_release(&c);
    assert_null(ek_reader_file.changes(r, blk, 1 << 20, sizeof(blk), &c));
    assert_int_equal(c.v[0].kind, EK_EXTENT_DATA);
    ek_reader_file.close(r);
    ek_extents_release(&x);
    ek_extents_release(&c);
    close(fd);
}

/* ---- mutual TLS with the per-transfer certificates ---- */

typedef struct hs {
    SSL_CTX *ctx;
    int fd;
    bool server;
    ek_stream_t *s;
    ek_err_t *err;
} hs_t;

static void *handshake_thread(void *arg)
{
    hs_t *h = arg;
    if (h->server) {
        h->err = ek_tls_accept(h->ctx, h->fd, 5000, &h->s, NULL);
        /* In TLS 1.3 the client learns of a refusal on its first read. */
        if (!h->err)
            ek_err_free(ek_stream_write_all(h->s, "ok", 2));
    } else {
        h->err = ek_tls_connect(h->ctx, h->fd, EK_PKI_SERVER_NAME, 5000, &h->s);
        char buf[2];
        bool eof;
        if (!h->err)
            h->err = ek_stream_read_full(h->s, buf, 2, &eof);
        if (!h->err && eof)
            h->err = ek_err_new(EK_E_AUTH, "closed");
    }
    return NULL;
}

static bool try_handshake(const char *srv_dir, const char *cli_dir, bool with_cert)
{
    char c1[256], k1[256], a1[256], c2[256], k2[256], a2[256];
    snprintf(c1, sizeof(c1), "%s/server.pem", srv_dir);
    snprintf(k1, sizeof(k1), "%s/server.key", srv_dir);
    snprintf(a1, sizeof(a1), "%s/ca.pem", srv_dir);
    snprintf(c2, sizeof(c2), "%s/client.pem", cli_dir);
    snprintf(k2, sizeof(k2), "%s/client.key", cli_dir);
    snprintf(a2, sizeof(a2), "%s/ca.pem", srv_dir); /* the client trusts the right CA */
    hs_t srv = {.server = true}, cli = {.server = false};
    assert_null(ek_tls_server_ctx_new(c1, k1, a1, &srv.ctx));
    if (with_cert) {
        assert_null(ek_tls_client_ctx_new(c2, k2, a2, &cli.ctx));
    } else {
        assert_null(ek_tls_client_ctx_new(NULL, NULL, a2, &cli.ctx));
    }
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv.fd = sv[0];
    cli.fd = sv[1];
    pthread_t a, b;
    pthread_create(&a, NULL, handshake_thread, &srv);
    pthread_create(&b, NULL, handshake_thread, &cli);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    bool ok = !srv.err && !cli.err;
    ek_err_free(srv.err);
    ek_err_free(cli.err);
    ek_stream_free(srv.s);
    ek_stream_free(cli.s);
    SSL_CTX_free(srv.ctx);
    SSL_CTX_free(cli.ctx);
    return ok;
}

static void test_mtls(void **state)
{
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/pki-a", tmpdir);
    snprintf(b, sizeof(b), "%s/pki-b", tmpdir);
    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(mkdir(b, 0700), 0);
    const char *sans[] = {"10.0.0.5", "writer.example", NULL};
    assert_null(ek_pki_generate(a, sans, 1));
    assert_null(ek_pki_generate(b, NULL, 1));
    char key[160];
    snprintf(key, sizeof(key), "%s/client.key", a);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(key, sizeof(key), "%s/ca.key", a);
    assert_int_equal(access(key, F_OK), -1); /* the CA key is never written */

    assert_true(try_handshake(a, a, true));
    assert_false(try_handshake(a, b, true));  /* a client of another transfer */
    assert_false(try_handshake(a, a, false)); /* no client certificate */
}

/* ---- TLS streams against OpenSSL used plainly (tls.c) ---- */

static uint8_t pattern_byte(size_t i, unsigned salt)
{
    return (uint8_t)((i * 2654435761u) >> 13 ^ salt);
}

typedef struct plain_peer {
    SSL_CTX *ctx;
    int fd;
    const char *suite;
    bool ok;
    char what[160];
} plain_peer_t;

static bool ssl_read_n(SSL *ssl, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int r = SSL_read(ssl, buf + got, (int)(n - got));
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

#define MSG1 (300 * 1024 + 7)
#define MSG2 (200 * 1024 + 3)
#define MSG3 (50 * 1024)

/* Reads message number salt (n bytes) and checks its pattern. */
static bool read_expect(SSL *ssl, uint8_t *buf, size_t n, unsigned salt, plain_peer_t *p)
{
    snprintf(p->what, sizeof(p->what), "reading message %u", salt);
    if (!ssl_read_n(ssl, buf, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(i, salt)) {
            snprintf(p->what, sizeof(p->what), "byte %zu of message %u differs", i, salt);
            return false;
        }
    return true;
}

/* The other end is OpenSSL used plainly (blocking, its own socket BIO):
 * what our stream writes it must read, KeyUpdates included (ours every 5
 * records, and one it asks for), and the other way round. */
static void *plain_server(void *arg)
{
    plain_peer_t *p = arg;
    SSL *ssl = SSL_new(p->ctx);
    uint8_t *buf = malloc(MSG1);
    SSL_set_fd(ssl, p->fd);
    SSL_set_ciphersuites(ssl, p->suite);
    snprintf(p->what, sizeof(p->what), "handshake");
    if (SSL_accept(ssl) != 1)
        goto out;
    if (!read_expect(ssl, buf, MSG1, 1, p))
        goto out;
    /* ask for the client's KeyUpdate, and change keys ourselves */
    snprintf(p->what, sizeof(p->what), "writing");
    if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1)
        goto out;
    for (size_t i = 0; i < MSG2; i++)
        buf[i] = pattern_byte(i, 2);
    for (size_t off = 0; off < MSG2;) {
        int w = SSL_write(ssl, buf + off, (int)(MSG2 - off));
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    if (!read_expect(ssl, buf, MSG3, 3, p))
        goto out;
    snprintf(p->what, sizeof(p->what), "close_notify");
    if (SSL_shutdown(ssl) < 0) /* ours to the client, which answers with its own */
        goto out;
    p->ok = SSL_read(ssl, buf, 1) == 0 && SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
out:
    SSL_free(ssl);
    free(buf);
    return NULL;
}

static void make_pki(const char *name, char dir[128])
{
    snprintf(dir, 128, "%s/%s", tmpdir, name);
    if (access(dir, F_OK) != 0) {
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_null(ek_pki_generate(dir, NULL, 1));
    }
}

static SSL_CTX *ctx_for(const char *dir, bool server)
{
    char c[160], k[160], a[160];
    SSL_CTX *ctx;
    snprintf(c, sizeof(c), "%s/%s.pem", dir, server ? "server" : "client");
    snprintf(k, sizeof(k), "%s/%s.key", dir, server ? "server" : "client");
    snprintf(a, sizeof(a), "%s/ca.pem", dir);
    assert_null(server ? ek_tls_server_ctx_new(c, k, a, &ctx)
                       : ek_tls_client_ctx_new(c, k, a, &ctx));
    return ctx;
}

static void test_tls_records(void **state)
{
    char dir[128];
    make_pki("pki-rec", dir);
    const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                            "TLS_CHACHA20_POLY1305_SHA256"};
    uint8_t *buf = malloc(MSG1);
    ek_tls_set_records_per_key(5); /* a KeyUpdate every 5 records: ~4 per message */
    for (int k = 0; k < 3; k++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        plain_peer_t p = {.ctx = ctx_for(dir, true), .fd = sv[0], .suite = suites[k]};
        SSL_CTX *cctx = ctx_for(dir, false);
        pthread_t th;
        pthread_create(&th, NULL, plain_server, &p);
        ek_stream_t *s = NULL;
        assert_null(ek_tls_connect(cctx, sv[1], NULL, 5000, &s));
        assert_string_equal(ek_tls_cipher(s), suites[k]);
        /* pieces of awkward sizes, each in records of its own */
        for (size_t i = 0; i < MSG1; i++)
            buf[i] = pattern_byte(i, 1);
        struct iovec iov[] = {{buf, 1},
                              {buf + 1, 47},
                              {buf + 48, 16384},
                              {buf + 48 + 16384, 16385},
                              {buf + 48 + 32769, MSG1 - 48 - 32769}};
        assert_null(ek_stream_writev(s, iov, 5));
        /* read in odd sizes: records partly into a small buffer, partly straight */
        size_t got = 0, step[] = {1, 5000, 16383, 70000, 3};
        for (int i = 0; got < MSG2; i++) {
            size_t n = step[i % 5] < MSG2 - got ? step[i % 5] : MSG2 - got;
            assert_null(ek_stream_read_full(s, buf + got, n, NULL));
            got += n;
        }
        for (size_t i = 0; i < MSG2; i++)
            if (buf[i] != pattern_byte(i, 2))
                fail_msg("%s: byte %zu from OpenSSL differs", suites[k], i);
        for (size_t i = 0; i < MSG3; i++)
            buf[i] = pattern_byte(i, 3);
        assert_null(ek_stream_write_all(s, buf, MSG3)); /* after our KeyUpdate */
        bool eof = false;
        assert_null(ek_stream_read_full(s, buf, 1, &eof));
        assert_true(eof); /* the server's close_notify */
        ek_stream_finish(s);
        pthread_join(th, NULL);
        if (!p.ok)
            fail_msg("%s: OpenSSL's side failed at: %s", suites[k], p.what);
        ek_stream_free(s);
        SSL_CTX_free(p.ctx);
        SSL_CTX_free(cctx);
        close(sv[0]);
    }
    ek_tls_set_records_per_key(0);
    free(buf);
}

/* A relay between the two ends that flips one bit of the client's bytes
 * after the handshake: the writer's end must refuse the record. */
typedef struct relay {
    int a, b; /* client side, server side */
    size_t flip_at;
} relay_t;

static void *relay_thread(void *arg)
{
    relay_t *r = arg;
    uint8_t buf[65536];
    size_t seen = 0;
    struct pollfd pf[2] = {{r->a, POLLIN, 0}, {r->b, POLLIN, 0}};
    for (;;) {
        if (poll(pf, 2, 5000) <= 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(pf[i].fd, buf, sizeof(buf));
            if (n <= 0)
                return NULL;
            if (i == 0 && seen <= r->flip_at && r->flip_at < seen + (size_t)n)
                buf[r->flip_at - seen] ^= 0x10;
            if (i == 0)
                seen += (size_t)n;
            if (write(pf[!i].fd, buf, (size_t)n) != n)
                return NULL;
        }
    }
    return NULL;
}

typedef struct acc {
    SSL_CTX *ctx;
    int fd;
    ek_err_t *err;
    ek_stream_t *s;
} acc_t;

static void *accept_thread(void *arg)
{
    acc_t *a = arg;
    static uint8_t buf[32768];
    a->err = ek_tls_accept(a->ctx, a->fd, 5000, &a->s, NULL);
    if (!a->err)
        a->err = ek_stream_read_full(a->s, buf, sizeof(buf), NULL);
    return NULL;
}

static void test_tls_tampered(void **state)
{
    char dir[128];
    make_pki("pki-rec", dir);
    int c[2], d[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, d), 0);
    /* the client's handshake is a few KiB; 20000 is inside its data */
    relay_t r = {.a = c[0], .b = d[0], .flip_at = 20000};
    acc_t a = {.ctx = ctx_for(dir, true), .fd = d[1]};
    SSL_CTX *cctx = ctx_for(dir, false);
    pthread_t rt, at;
    pthread_create(&rt, NULL, relay_thread, &r);
    pthread_create(&at, NULL, accept_thread, &a);
    ek_stream_t *s = NULL;
    assert_null(ek_tls_connect(cctx, c[1], NULL, 5000, &s));
    uint8_t data[32768] = {0};
    assert_null(ek_stream_write_all(s, data, sizeof(data)));
    pthread_join(at, NULL);
    assert_non_null(a.err);
    if (!strstr(a.err->message, "integrity check"))
        fail_msg("the tampered record was refused with \"%s\"", a.err->message);
    ek_err_free(a.err);
    ek_stream_free(a.s);
    ek_stream_free(s);
    pthread_join(rt, NULL);
    close(c[0]);
    close(d[0]);
    SSL_CTX_free(a.ctx);
    SSL_CTX_free(cctx);
}

/* The writer's CPU picks the suite: ChaCha20-Poly1305 where it has no AES
 * instructions (an emulated worker VM), AES-128-GCM where it has them, whatever
 * order the client (the engine, on a host with AES-NI) prefers. */
static void test_tls_suite_by_cpu(void **state)
{
    (void)state;
    char dir[128];
    make_pki("pki-rec", dir);
    const struct {
        int aes;
        const char *want;
    } cases[] = {{0, "TLS_CHACHA20_POLY1305_SHA256"}, {1, "TLS_AES_128_GCM_SHA256"}};
    for (int k = 0; k < 2; k++) {
        ek_tls_set_aes_hint(cases[k].aes);
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        acc_t a = {.ctx = ctx_for(dir, true), .fd = sv[0]};
        SSL_CTX *cctx = ctx_for(dir, false);
        pthread_t at;
        pthread_create(&at, NULL, accept_thread, &a);
        ek_stream_t *s = NULL;
        assert_null(ek_tls_connect(cctx, sv[1], NULL, 5000, &s));
        assert_string_equal(ek_tls_cipher(s), cases[k].want);
        uint8_t data[32768] = {0};
        assert_null(ek_stream_write_all(s, data, sizeof(data)));
        pthread_join(at, NULL);
        assert_null(a.err);
        assert_string_equal(ek_tls_cipher(a.s), cases[k].want);
        ek_stream_free(a.s);
        ek_stream_free(s);
        SSL_CTX_free(a.ctx);
        SSL_CTX_free(cctx);
    }
    ek_tls_set_aes_hint(-1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in every Ekman program (common/program.c) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_checksum_and_zero),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test(test_session_write_and_hash),
        cmocka_unit_test(test_session_refuses_paths),
        cmocka_unit_test(test_session_truncated_frame),
        cmocka_unit_test(test_session_oversized_frame),
        cmocka_unit_test(test_session_garbage),
        cmocka_unit_test(test_file_reader),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_tls_records),
        cmocka_unit_test(test_tls_tampered),
        cmocka_unit_test(test_tls_suite_by_cpu),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
