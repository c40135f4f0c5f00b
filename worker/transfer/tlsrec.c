/* tlsrec.c - TLS 1.3 record protection (see tlsrec.h). */
#include "worker/transfer/tlsrec.h"

#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

/* HKDF-Expand-Label(secret, label, "", len) of §7.1. */
static int expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
                        const char *label, uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 255 + 1];
    size_t ll = strlen(label), n = 0;
    if (6 + ll > 255)
        return -1;
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */

    int rc = -1;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx) {
        int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md),
                                             0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_KDF_derive(kctx, out, len, params) == 1)
            rc = 0;
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* Derives key and IV from r->secret and loads them. */
static int load_keys(ek_tlsrec_t *r)
{
    uint8_t key[32];
    int rc = -1;
    if (expand_label(r->md, r->secret, r->secret_len, "key", key, r->key_len) == 0 &&
        expand_label(r->md, r->secret, r->secret_len, "iv", r->iv, sizeof(r->iv)) == 0 &&
        EVP_CipherInit_ex(r->ctx, NULL, NULL, key, NULL, r->enc) == 1)
        rc = 0;
    OPENSSL_cleanse(key, sizeof(key));
    r->seq = 0;
    return rc;
}

int ek_tlsrec_init(ek_tlsrec_t *r, uint16_t suite, bool enc, const uint8_t *secret,
                   size_t secret_len)
{
    memset(r, 0, sizeof(*r));
    switch (suite) {
    case 0x1301:
        r->cipher = EVP_aes_128_gcm();
        r->md = EVP_sha256();
        r->key_len = 16;
        break;
    case 0x1302:
        r->cipher = EVP_aes_256_gcm();
        r->md = EVP_sha384();
        r->key_len = 32;
        break;
    case 0x1303:
        r->cipher = EVP_chacha20_poly1305();
        r->md = EVP_sha256();
        r->key_len = 32;
        break;
    default:
        return -1;
    }
    if (secret_len != (size_t)EVP_MD_get_size(r->md) || secret_len > sizeof(r->secret))
        return -1;
    r->enc = enc;
    memcpy(r->secret, secret, secret_len);
    r->secret_len = secret_len;
    r->ctx = EVP_CIPHER_CTX_new();
    if (!r->ctx || EVP_CipherInit_ex(r->ctx, r->cipher, NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_SET_IVLEN, sizeof(r->iv), NULL) != 1 ||
        load_keys(r) != 0) {
        ek_tlsrec_free(r);
        return -1;
    }
    return 0;
}

int ek_tlsrec_update(ek_tlsrec_t *r)
{
    uint8_t next[EVP_MAX_MD_SIZE];
    if (expand_label(r->md, r->secret, r->secret_len, "traffic upd", next, r->secret_len) != 0)
        return -1;
    memcpy(r->secret, next, r->secret_len);
    OPENSSL_cleanse(next, sizeof(next));
    return load_keys(r);
}

void ek_tlsrec_free(ek_tlsrec_t *r)
{
    EVP_CIPHER_CTX_free(r->ctx); /* wipes the key schedule */
    OPENSSL_cleanse(r, sizeof(*r));
}

/* Per-record nonce (§5.3): the IV XOR the 64-bit sequence number. */
static int start_record(ek_tlsrec_t *r, const uint8_t hdr[EK_TLSREC_HEADER])
{
    uint8_t nonce[12];
    memcpy(nonce, r->iv, sizeof(nonce));
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(r->seq >> (8 * i));
    int outl;
    if (EVP_CipherInit_ex(r->ctx, NULL, NULL, NULL, nonce, r->enc) != 1 ||
        EVP_CipherUpdate(r->ctx, NULL, &outl, hdr, EK_TLSREC_HEADER) != 1) /* AAD */
        return -1;
    r->seq++;
    return 0;
}

long ek_tlsrec_seal(ek_tlsrec_t *r, uint8_t type, const void *in, size_t len, uint8_t *out)
{
    if (len > EK_TLSREC_MAX_PLAIN)
        return -1;
    size_t body = len + 1 + EK_TLSREC_TAG;
    uint8_t *ct = out + EK_TLSREC_HEADER;
    int outl, fl;
    out[0] = EK_TLSREC_APPDATA; /* outer type of every protected record */
    out[1] = 0x03;
    out[2] = 0x03;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    if (start_record(r, out) != 0 ||
        (len && (EVP_CipherUpdate(r->ctx, ct, &outl, in, (int)len) != 1 || (size_t)outl != len)) ||
        EVP_CipherUpdate(r->ctx, ct + len, &outl, &type, 1) != 1 || outl != 1 ||
        EVP_CipherFinal_ex(r->ctx, ct + len + 1, &fl) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_GET_TAG, EK_TLSREC_TAG, ct + len + 1) != 1)
        return -1;
    return (long)(EK_TLSREC_HEADER + body);
}

long ek_tlsrec_header(const uint8_t hdr[EK_TLSREC_HEADER])
{
    size_t body = (size_t)hdr[3] << 8 | hdr[4];
    if (hdr[0] != EK_TLSREC_APPDATA || hdr[1] != 0x03 || hdr[2] != 0x03 ||
        body < EK_TLSREC_TAG + 1 || body > EK_TLSREC_MAX_BODY)
        return -1;
    return (long)body;
}

int ek_tlsrec_open(ek_tlsrec_t *r, const uint8_t *rec, size_t body_len, uint8_t *out,
                   uint8_t *type, size_t *len)
{
    const uint8_t *body = rec + EK_TLSREC_HEADER;
    size_t plen = body_len - EK_TLSREC_TAG; /* >= 1: ek_tlsrec_header() checked */
    uint8_t tail[2], last; /* tail: the type byte, and room for Final's (no) output */
    int outl, fl;
    if (start_record(r, rec) != 0 ||
        (plen > 1 && (EVP_CipherUpdate(r->ctx, out, &outl, body, (int)(plen - 1)) != 1 ||
                      (size_t)outl != plen - 1)) ||
        EVP_CipherUpdate(r->ctx, tail, &outl, body + plen - 1, 1) != 1 || outl != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_SET_TAG, EK_TLSREC_TAG,
                            (void *)(body + plen)) != 1 ||
        EVP_CipherFinal_ex(r->ctx, tail + 1, &fl) != 1)
        return -1;
    last = tail[0];
    /* The content type is the last non-zero byte; zeros after it are padding. */
    size_t n = plen - 1;
    if (last) {
        *type = last;
    } else {
        while (n > 0 && out[n - 1] == 0)
            n--;
        if (n == 0)
            return -1;
        *type = out[--n];
    }
    *len = n;
    return 0;
}
