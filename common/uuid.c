/* uuid.c - UUID v4 from OpenSSL's CSPRNG. */
#include "common/uuid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "common/mem.h"

void ek_uuid_generate(char out[EK_UUID_STRLEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        fprintf(stderr, "ekman: the random number generator failed\n");
        abort();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, EK_UUID_STRLEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

char *ek_uuid_new(void)
{
    char *s = ek_xmalloc(EK_UUID_STRLEN + 1);
    ek_uuid_generate(s);
    return s;
}

bool ek_uuid_is_valid(const char *s)
{
    if (!s || strlen(s) != EK_UUID_STRLEN)
        return false;
    for (int i = 0; i < EK_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}
