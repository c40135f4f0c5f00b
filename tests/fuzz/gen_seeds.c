/* gen_seeds.c - writes the seed corpus of fuzz_dataplane into a directory:
 * valid frames of every type and valid HTTP requests, made with the real
 * encoders so that the seeds follow the protocol as it changes.
 * Usage: ek-fuzz-seeds DIR */
#include <stdio.h>
#include <string.h>
#include "proto/dataplane.h"

static int put(const char *dir, const char *name, const void *a, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    static uint8_t b[1 << 16];
    size_t n = 0;
    int rc = 0;

    /* a session: OPEN, data, zeros, compressed, FLUSH, HASH, CLOSE */
    b[n++] = 0;
    n += ek_dp_open_encode(b + n, 1, 1 << 20, EK_DP_OPEN_CREATE, "/var/tmp/disk.img", 17);
    uint8_t data[100];
    memset(data, 'x', sizeof(data));
    n += ek_dp_write_encode(b + n, 2, 0, 4096, sizeof(data), ek_dp_checksum(data, sizeof(data)),
                            sizeof(data));
    memcpy(b + n, data, sizeof(data));
    n += sizeof(data);
    n += ek_dp_write_encode(b + n, 3, EK_DP_WRITE_ZERO, 8192, 1 << 16, 0, 0);
    n += ek_dp_write_encode(b + n, 4, EK_DP_WRITE_COMP_ZSTD, 0, 1000, 7, 16);
    memcpy(b + n,
           "\x28\xb5\x2f\xfd"
           "0123456789ab",
           16);
    n += 16;
    n += ek_dp_simple_encode(b + n, EK_DP_FLUSH, 5);
    n += ek_dp_hash_encode(b + n, 6, 0, 1 << 20, 65536);
    n += ek_dp_simple_encode(b + n, EK_DP_CLOSE, 7);
    rc |= put(dir, "session", b, n);

    /* replies */
    n = 0;
    b[n++] = 0;
    n += ek_dp_open_ok_encode(b + n, 1, 1 << 20, 1 << 20, EK_DP_FEAT_PUNCH, 0);
    n += ek_dp_simple_encode(b + n, EK_DP_WRITE_OK, 2);
    n += ek_dp_hashes_encode(b + n, 6, 0, 65536, 2);
    memset(b + n, 0xab, 16);
    n += 16;
    n += ek_dp_error_encode(b + n, 4, EK_DP_E_CHECKSUM, "chunk fails its checksum");
    rc |= put(dir, "replies", b, n);

    static const char up[] = "\x01POST /v1/stream HTTP/1.1\r\nHost: 10.0.0.5:5566\r\n"
                             "Upgrade: ekman-writer/1\r\nConnection: Upgrade\r\n"
                             "Content-Length: 0\r\n\r\n";
    rc |= put(dir, "http-upgrade", up, sizeof(up) - 1);
    static const char health[] = "\x01GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
    rc |= put(dir, "http-health", health, sizeof(health) - 1);
    return rc;
}
