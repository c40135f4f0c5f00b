/* emptyhive.c - an empty Windows registry hive, for tests (emptyhive.h).
 * A 4 KiB base block ("regf", sequence numbers, version 1.3, root cell
 * offset, hive bins size, XOR checksum of its first 508 bytes) and one 4 KiB
 * hive bin ("hbin") holding the root key (an "nk" cell), its security
 * descriptor (an "sk" cell: new keys inherit it) and one free cell. Offsets
 * in cells are relative to the first hive bin. */
#include "tests/unit/emptyhive.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "common/fsutil.h"

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xff;
}

int ek_test_empty_hive_write(const char *path)
{
    static unsigned char f[8192];
    memset(f, 0, sizeof(f));
    unsigned char *b = f; /* base block */
    memcpy(b, "regf", 4);
    put32(b + 4, 1), put32(b + 8, 1);       /* sequence numbers, equal: clean */
    put32(b + 0x14, 1), put32(b + 0x18, 3); /* version 1.3 */
    put32(b + 0x1c, 0), put32(b + 0x20, 1); /* primary file, direct memory load */
    put32(b + 0x24, 0x20);                  /* root cell */
    put32(b + 0x28, 0x1000);                /* size of the hive bins */
    put32(b + 0x2c, 1);                     /* clustering factor */
    uint32_t sum = 0;
    for (int i = 0; i < 0x1fc; i += 4)
        sum ^= (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
               (uint32_t)b[i + 3] << 24;
    put32(b + 0x1fc, sum);

    unsigned char *h = f + 0x1000; /* the hive bin */
    memcpy(h, "hbin", 4);
    put32(h + 4, 0);      /* its offset */
    put32(h + 8, 0x1000); /* its size */

    unsigned char *nk = h + 0x20; /* root key: 0x50 bytes, the name, 8-aligned */
    put32(nk, (uint32_t)-0x58);
    memcpy(nk + 4, "nk", 2);
    put16(nk + 6, 0x2c);          /* root | no delete | ASCII name */
    put32(nk + 0x14, 0xffffffff); /* parent: none */
    put32(nk + 0x20, 0xffffffff); /* subkey list: none */
    put32(nk + 0x24, 0xffffffff); /* volatile subkey list: none */
    put32(nk + 0x2c, 0xffffffff); /* value list: none */
    put32(nk + 0x30, 0x78);       /* security cell */
    put32(nk + 0x34, 0xffffffff); /* class name: none */
    put16(nk + 0x4c, 4);          /* name length */
    memcpy(nk + 0x50, "ROOT", 4);

    unsigned char *sk = h + 0x78; /* security cell, 0x30 bytes */
    put32(sk, (uint32_t)-0x30);
    memcpy(sk + 4, "sk", 2);
    put32(sk + 8, 0x78), put32(sk + 12, 0x78); /* a list of one */
    put32(sk + 16, 1);                         /* reference count */
    put32(sk + 20, 20);                        /* descriptor size */
    unsigned char *sd = sk + 24;               /* self-relative, NULL DACL */
    sd[0] = 1;
    put16(sd + 2, 0x8004);

    unsigned char *fr = h + 0xa8; /* the rest: one free cell */
    put32(fr, 0x1000 - 0xa8);
    ek_err_t *err = ek_file_write(path, f, sizeof(f), 0644);
    if (err) {
        fprintf(stderr, "%s\n", err->message);
        ek_err_free(err);
        return -1;
    }
    return 0;
}
