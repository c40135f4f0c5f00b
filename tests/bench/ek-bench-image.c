/* ek-bench-image.c - makes the disk images of the transfer benchmark and tests.
 *
 *   ek-bench-image create FILE SIZE [SEED]   mixed image: ~50% random data,
 *       ~25% compressible text, ~25% zeros (half of them holes, half written
 *       zeros), in segments of 64 KiB to 8 MiB whose kinds follow a seeded PRNG
 *   ek-bench-image change FILE PERCENT [SEED] [BLOCK]   rewrites PERCENT % of
 *       the BLOCK-sized blocks (default 64 KiB, the dirty-bitmap granularity of
 *       QEMU) with new random data, at positions chosen without repetition
 *   ek-bench-image text FILE SIZE   compressible text only (to measure zstd)
 *
 * Both print one JSON line of what they did (bytes per kind, changed bytes).
 * The text is made of slices of a pool of Zipf-distributed pseudo-words, so
 * that it compresses about like prose or logs do (zstd -1: ratio ~3). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG_UNIT   (64 * 1024)
#define TEXT_POOL  (32u << 20)
#define WRITE_SIZE (8u << 20)

static uint64_t rng_s[4];

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

static void rng_seed(uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        rng_s[i] = z ^ (z >> 31);
    }
}

static void fill_random(unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rng_next();
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] = (unsigned char)rng_next();
}

static unsigned char *text_pool;

/* Word salad with a Zipf distribution over 4096 pseudo-words. */
static void make_text_pool(void)
{
    enum { NWORDS = 4096 };
    static char words[NWORDS][12];
    static double cdf[NWORDS];
    double sum = 0;
    for (int i = 0; i < NWORDS; i++) {
        int len = 2 + (int)(rng_next() % 9);
        for (int j = 0; j < len; j++)
            words[i][j] = (char)('a' + rng_next() % 26);
        words[i][len] = 0;
        sum += 1.0 / (i + 1);
        cdf[i] = sum;
    }
    text_pool = malloc(TEXT_POOL);
    if (!text_pool)
        abort();
    size_t pos = 0, line = 0;
    while (pos < TEXT_POOL - 16) {
        double u = (double)(rng_next() >> 11) / 9007199254740992.0 * sum;
        int lo = 0, hi = NWORDS - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t n = strlen(words[lo]);
        memcpy(text_pool + pos, words[lo], n);
        pos += n;
        line += n + 1;
        if (line > 60 + rng_next() % 20) {
            text_pool[pos++] = (rng_next() % 4) ? '.' : ',';
            text_pool[pos++] = '\n';
            line = 0;
        } else {
            text_pool[pos++] = ' ';
        }
    }
    memset(text_pool + pos, '\n', TEXT_POOL - pos);
}

static void fill_text(unsigned char *p, size_t n)
{
    while (n) {
        size_t len = 4096 + rng_next() % (60 * 1024);
        if (len > n)
            len = n;
        size_t off = rng_next() % (TEXT_POOL - len);
        memcpy(p, text_pool + off, len);
        p += len;
        n -= len;
    }
}

static int write_all(int fd, const unsigned char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

static int cmd_create(const char *path, uint64_t size, uint64_t seed)
{
    rng_seed(seed);
    make_text_pool();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
        fprintf(stderr, "ek-bench-image: %s: %s\n", path, strerror(errno));
        return 1;
    }
    unsigned char *buf = malloc(WRITE_SIZE);
    if (!buf)
        abort();
    uint64_t bytes[4] = {0}; /* random, text, written zeros, holes */
    memset(buf, 0, WRITE_SIZE);
    for (uint64_t off = 0; off < size;) {
        uint64_t len = (1 + rng_next() % 128) * SEG_UNIT;
        if (len > size - off)
            len = size - off;
        unsigned r = (unsigned)(rng_next() % 8);
        int kind = r < 4 ? 0 : r < 6 ? 1 : r == 6 ? 2 : 3;
        bytes[kind] += len;
        for (uint64_t done = 0; done < len && kind != 3;) {
            size_t n = (size_t)(len - done < WRITE_SIZE ? len - done : WRITE_SIZE);
            if (kind == 0)
                fill_random(buf, n);
            else if (kind == 1)
                fill_text(buf, n);
            else
                memset(buf, 0, n);
            if (write_all(fd, buf, n, (off_t)(off + done)) != 0) {
                fprintf(stderr, "ek-bench-image: write %s: %s\n", path, strerror(errno));
                return 1;
            }
            done += n;
        }
        off += len;
    }
    free(buf);
    free(text_pool);
    if (fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "ek-bench-image: %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("{\"size\":%llu,\"random\":%llu,\"text\":%llu,\"zero_written\":%llu,\"hole\":%llu}\n",
           (unsigned long long)size, (unsigned long long)bytes[0], (unsigned long long)bytes[1],
           (unsigned long long)bytes[2], (unsigned long long)bytes[3]);
    return 0;
}

static int cmd_change(const char *path, double percent, uint64_t seed, uint64_t block)
{
    rng_seed(seed);
    int fd = open(path, O_RDWR);
    off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
    if (fd < 0 || size < 0) {
        fprintf(stderr, "ek-bench-image: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint64_t nblocks = (uint64_t)size / block;
    uint64_t n = (uint64_t)llround((double)nblocks * percent / 100.0);
    unsigned char *picked = calloc(nblocks ? nblocks : 1, 1);
    unsigned char *buf = malloc(block);
    if (!picked || !buf)
        abort();
    for (uint64_t i = 0; i < n;) {
        uint64_t b = rng_next() % nblocks;
        if (picked[b])
            continue;
        picked[b] = 1;
        fill_random(buf, block);
        if (write_all(fd, buf, block, (off_t)(b * block)) != 0) {
            fprintf(stderr, "ek-bench-image: write %s: %s\n", path, strerror(errno));
            return 1;
        }
        i++;
    }
    free(picked);
    free(buf);
    if (fsync(fd) != 0 || close(fd) != 0)
        return 1;
    printf("{\"blocks\":%llu,\"block_size\":%llu,\"changed_bytes\":%llu}\n", (unsigned long long)n,
           (unsigned long long)block, (unsigned long long)(n * block));
    return 0;
}

/* Text only: to measure what compression does on the text part. */
static int cmd_text(const char *path, uint64_t size)
{
    rng_seed(3);
    make_text_pool();
    FILE *f = fopen(path, "w");
    unsigned char *buf = malloc(WRITE_SIZE);
    if (!f || !buf)
        return 1;
    for (uint64_t off = 0; off < size; off += WRITE_SIZE) {
        size_t n = (size_t)(size - off < WRITE_SIZE ? size - off : WRITE_SIZE);
        fill_text(buf, n);
        if (fwrite(buf, 1, n, f) != n)
            return 1;
    }
    free(buf);
    free(text_pool);
    return fclose(f) != 0;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'G':
    case 'g':
        v *= 1024; /* fall through */
    case 'M':
    case 'm':
        v *= 1024; /* fall through */
    case 'K':
    case 'k':
        v *= 1024;
        break;
    default:
        break;
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "create") == 0)
        return cmd_create(argv[2], parse_size(argv[3]), argc > 4 ? strtoull(argv[4], NULL, 10) : 1);
    if (argc >= 4 && strcmp(argv[1], "change") == 0)
        return cmd_change(argv[2], strtod(argv[3], NULL),
                          argc > 4 ? strtoull(argv[4], NULL, 10) : 2,
                          argc > 5 ? parse_size(argv[5]) : 65536);
    if (argc >= 4 && strcmp(argv[1], "text") == 0)
        return cmd_text(argv[2], parse_size(argv[3]));
    fprintf(stderr, "usage: ek-bench-image create FILE SIZE [SEED]\n"
                    "       ek-bench-image change FILE PERCENT [SEED] [BLOCK]\n");
    return 2;
}
