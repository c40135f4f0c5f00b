/* secret.c - AES-256-GCM sealing, scrypt password hashes, API tokens. */
#include "common/secret.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "common/base64.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define NONCE_LEN   12
#define TAG_LEN     16
#define SEAL_PREFIX "v1:"

static void random_bytes(unsigned char *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        fprintf(stderr, "ekman: the random number generator failed\n");
        abort();
    }
}

ek_err_t *ek_secret_key_load(const ek_config_t *cfg, unsigned char key[EK_SECRET_KEY_LEN])
{
    const char *text = ek_config_get_string(cfg, "DEFAULT", "encryption_key");
    const char *file = ek_config_get_string(cfg, "DEFAULT", "encryption_key_file");
    char *from_file = NULL;
    if (!*text && *file) {
        FILE *f = fopen(file, "re");
        if (!f)
            return ek_err_errno(errno, "could not read [DEFAULT] encryption_key_file \"%s\"", file);
        char buf[256];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        from_file = ek_xstrdup(buf);
        OPENSSL_cleanse(buf, sizeof(buf));
        text = from_file;
    }
    if (!*text) {
        free(from_file);
        return ek_err_new(EK_E_INVALID,
                          "no encryption key: set [DEFAULT] encryption_key (or "
                          "encryption_key_file) to the output of 'openssl rand -base64 32'");
    }
    unsigned char *raw = NULL;
    size_t len = 0;
    ek_err_t *err = ek_base64_decode(text, &raw, &len);
    ek_free_secret(from_file);
    if (!err && len != EK_SECRET_KEY_LEN)
        err = ek_err_new(EK_E_INVALID, "the encryption key must be 32 bytes, not %zu", len);
    if (!err)
        memcpy(key, raw, EK_SECRET_KEY_LEN);
    if (raw)
        OPENSSL_cleanse(raw, len);
    free(raw);
    return err ? ek_err_prefix(err, "[DEFAULT] encryption_key") : NULL;
}

char *ek_secret_seal(const unsigned char key[EK_SECRET_KEY_LEN], const char *aad,
                     const char *plaintext)
{
    size_t n = strlen(plaintext);
    unsigned char *buf = ek_xmalloc(NONCE_LEN + n + TAG_LEN);
    random_bytes(buf, NONCE_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) != 1 ||
        (aad &&
         EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1) ||
        EVP_EncryptUpdate(ctx, buf + NONCE_LEN, &len, (const unsigned char *)plaintext, (int)n) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + n) != 1) {
        fprintf(stderr, "ekman: AES-256-GCM encryption failed\n");
        abort();
    }
    EVP_CIPHER_CTX_free(ctx);
    char *b64 = ek_base64_encode(buf, NONCE_LEN + n + TAG_LEN);
    char *out = ek_xasprintf(SEAL_PREFIX "%s", b64);
    free(b64);
    free(buf);
    return out;
}

ek_err_t *ek_secret_open(const unsigned char key[EK_SECRET_KEY_LEN], const char *aad,
                         const char *sealed, char **plaintext)
{
    *plaintext = NULL;
    if (strncmp(sealed, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0)
        return ek_err_new(EK_E_INVALID, "sealed secret has an unknown format");
    unsigned char *raw = NULL;
    size_t len = 0;
    ek_err_t *err = ek_base64_decode(sealed + strlen(SEAL_PREFIX), &raw, &len);
    if (err)
        return ek_err_prefix(err, "sealed secret");
    if (len < NONCE_LEN + TAG_LEN) {
        free(raw);
        return ek_err_new(EK_E_INVALID, "sealed secret is truncated");
    }
    size_t n = len - NONCE_LEN - TAG_LEN;
    char *out = ek_xmalloc(n + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, fin = 0;
    bool ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
              (!aad || EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad,
                                         (int)strlen(aad)) == 1) &&
              EVP_DecryptUpdate(ctx, (unsigned char *)out, &outl, raw + NONCE_LEN, (int)n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + n) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)out + outl, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok) {
        OPENSSL_cleanse(out, n);
        free(out);
        return ek_err_new(EK_E_INVALID, "sealed secret does not decrypt: wrong encryption key "
                                        "or tampered data");
    }
    out[n] = '\0';
    *plaintext = out;
    return NULL;
}

/* ---- passwords ------------------------------------------------------------ */

/* OWASP's password storage guidance for scrypt: N=2^17, r=8, p=1 (128 MiB,
 * about 0.4 s on one core). A stored hash carries its own parameters, so older
 * hashes (N=2^15) still verify; the limits below bound what a stored string
 * may ask for. */
#define SCRYPT_N     131072
#define SCRYPT_R     8
#define SCRYPT_P     1
#define SCRYPT_MAX_N (1u << 18)
#define SCRYPT_MAX_R 16
#define SCRYPT_MAX_P 4
#define SALT_LEN     16
#define HASH_LEN     32

static bool scrypt(const char *pw, const unsigned char *salt, size_t salt_len, uint64_t n,
                   uint64_t r, uint64_t p, unsigned char *out, size_t out_len)
{
    /* what scrypt needs (128 * r * (n + p) bytes) plus room for OpenSSL's checks */
    uint64_t maxmem = 128 * r * (n + p) + (1u << 20);
    return EVP_PBE_scrypt(pw, strlen(pw), salt, salt_len, n, r, p, maxmem, out, out_len) == 1;
}

static char *hash_with(const char *password, uint64_t n, uint64_t r, uint64_t p)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    random_bytes(salt, sizeof(salt));
    if (!scrypt(password, salt, sizeof(salt), n, r, p, hash, sizeof(hash))) {
        fprintf(stderr, "ekman: scrypt failed\n");
        abort();
    }
    char *s = ek_base64_encode(salt, sizeof(salt)), *h = ek_base64_encode(hash, sizeof(hash));
    char *out = ek_xasprintf("scrypt$%llu$%llu$%llu$%s$%s", (unsigned long long)n,
                             (unsigned long long)r, (unsigned long long)p, s, h);
    free(s);
    free(h);
    OPENSSL_cleanse(hash, sizeof(hash));
    return out;
}

char *ek_password_hash(const char *password)
{
    return hash_with(password, SCRYPT_N, SCRYPT_R, SCRYPT_P);
}

char *ek_password_hash_params(const char *password, unsigned log2_n, unsigned r, unsigned p)
{
    return hash_with(password, (uint64_t)1 << log2_n, r, p);
}

static char *dummy_hash;

static void dummy_hash_make(void)
{
    char *nobody = ek_token_new();
    dummy_hash = ek_password_hash(nobody);
    ek_free_secret(nobody);
}

const char *ek_password_dummy_hash(void)
{
    /* a hash at the current parameters of a password nobody knows: checking an
     * unknown user against it costs what checking a real one costs */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, dummy_hash_make);
    return dummy_hash;
}

bool ek_password_verify(const char *password, const char *stored)
{
    unsigned long long n, r, p;
    char salt_b64[64], hash_b64[128];
    if (sscanf(stored, "scrypt$%llu$%llu$%llu$%63[^$]$%127s", &n, &r, &p, salt_b64, hash_b64) != 5)
        return false;
    if (n < 2 || (n & (n - 1)) || n > SCRYPT_MAX_N || r < 1 || r > SCRYPT_MAX_R || p < 1 ||
        p > SCRYPT_MAX_P)
        return false;
    unsigned char *salt = NULL, *want = NULL;
    size_t salt_len = 0, want_len = 0;
    bool ok = false;
    ek_err_t *e1 = ek_base64_decode(salt_b64, &salt, &salt_len);
    ek_err_t *e2 = ek_base64_decode(hash_b64, &want, &want_len);
    if (!e1 && !e2 && want_len > 0 && want_len <= 64) {
        unsigned char got[64];
        ok = scrypt(password, salt, salt_len, n, r, p, got, want_len) &&
             CRYPTO_memcmp(got, want, want_len) == 0;
        OPENSSL_cleanse(got, sizeof(got));
    }
    ek_err_free(e1);
    ek_err_free(e2);
    free(salt);
    free(want);
    return ok;
}

/* ---- tokens --------------------------------------------------------------- */

char *ek_token_new(void)
{
    unsigned char raw[32];
    random_bytes(raw, sizeof(raw));
    char *b64 = ek_base64_encode(raw, sizeof(raw));
    /* base64url without padding: safe in headers and URLs */
    for (char *c = b64; *c; c++) {
        if (*c == '+')
            *c = '-';
        else if (*c == '/')
            *c = '_';
        else if (*c == '=')
            *c = '\0';
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return b64;
}

void ek_token_digest(const char *token, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
