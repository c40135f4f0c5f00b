/* base64.c - base64 over OpenSSL's EVP block codec. */
#include "common/base64.h"

#include <ctype.h>
#include <string.h>
#include <openssl/evp.h>
#include "common/mem.h"

char *ek_base64_encode(const void *data, size_t len)
{
    char *out = ek_xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

ek_err_t *ek_base64_decode(const char *text, unsigned char **out, size_t *out_len)
{
    size_t n = strlen(text);
    char *clean = ek_xmalloc(n + 4);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (isspace((unsigned char)c))
            continue;
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '=')
            break;
        else if (!isalnum((unsigned char)c) && c != '+' && c != '/') {
            free(clean);
            return ek_err_new(EK_E_INVALID, "not valid base64: unexpected character at offset %zu",
                              i);
        }
        clean[m++] = c;
    }
    if (m % 4 == 1) {
        free(clean);
        return ek_err_new(EK_E_INVALID, "not valid base64: truncated input");
    }
    size_t pad = (4 - m % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        clean[m++] = '=';
    clean[m] = '\0';
    unsigned char *buf = ek_xmalloc(m / 4 * 3 + 1);
    int got = EVP_DecodeBlock(buf, (unsigned char *)clean, (int)m);
    free(clean);
    if (got < 0) {
        free(buf);
        return ek_err_new(EK_E_INVALID, "not valid base64");
    }
    size_t len = (size_t)got - pad; /* EVP_DecodeBlock counts padding as zero bytes */
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return NULL;
}
