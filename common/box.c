/* box.c - sealing secrets for one key pair: X25519 + HKDF-SHA256 +
 * AES-256-GCM, all OpenSSL (see box.h). */
#include "common/box.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include "common/base64.h"
#include "common/mem.h"
#include "common/redact.h"

#define BOX_PREFIX "b1:"
#define RAW_LEN    32
#define MAX_KEYS   2

typedef struct box_key {
    EVP_PKEY *pkey;
    unsigned char pub[RAW_LEN];
    char pub_b64[64];
    char kid[EK_BOX_KID_LEN + 1];
} box_key_t;

struct ek_box_ring {
    box_key_t keys[MAX_KEYS]; /* [0] current */
    int n;
};

static bool hkdf(const unsigned char *ikm, size_t ikm_len, const unsigned char *salt,
                 size_t salt_len, const char *info, unsigned char out[RAW_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    bool ok = ctx && EVP_KDF_derive(ctx, out, RAW_LEN, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok;
}

static void kid_of(const unsigned char pub[RAW_LEN], char kid[EK_BOX_KID_LEN + 1])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(pub, RAW_LEN, d);
    for (int i = 0; i < EK_BOX_KID_LEN / 2; i++)
        snprintf(kid + 2 * i, 3, "%02x", d[i]);
}

/* Fills k from pkey (which it takes). */
static ek_err_t *key_set(box_key_t *k, EVP_PKEY *pkey, const char *what)
{
    size_t len = RAW_LEN;
    if (!EVP_PKEY_is_a(pkey, "X25519") || EVP_PKEY_get_raw_public_key(pkey, k->pub, &len) != 1 ||
        len != RAW_LEN) {
        EVP_PKEY_free(pkey);
        return ek_err_new(EK_E_INVALID, "%s is not an X25519 private key", what);
    }
    k->pkey = pkey;
    char *b64 = ek_base64_encode(k->pub, RAW_LEN);
    snprintf(k->pub_b64, sizeof(k->pub_b64), "%s", b64);
    free(b64);
    kid_of(k->pub, k->kid);
    return NULL;
}

static ek_err_t *key_read(const char *path, EVP_PKEY **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ek_err_errno(errno, "cannot open the key file \"%s\"", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ek_err_new(EK_E_INVALID, "the key file \"%s\" is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return ek_err_new(EK_E_INVALID,
                          "the key file \"%s\" can be read by others (mode %04o): "
                          "chmod 600 it (and rotate the key if others may have read it)",
                          path, (unsigned)(st.st_mode & 07777));
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return ek_err_errno(errno, "cannot read the key file \"%s\"", path);
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey)
        return ek_err_new(EK_E_INVALID, "the key file \"%s\" holds no PEM private key", path);
    *out = pkey;
    return NULL;
}

static ek_err_t *key_write_new(const char *path, EVP_PKEY **out)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (!pkey)
        return ek_err_new(EK_E_INTERNAL, "cannot generate an X25519 key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        EVP_PKEY_free(pkey);
        return ek_err_errno(errno, "cannot create the key file \"%s\"", path);
    }
    FILE *f = fdopen(fd, "w");
    bool ok = f && PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    ok = (f ? fflush(f) == 0 && fsync(fileno(f)) == 0 : false) && ok;
    if (f)
        fclose(f);
    else
        close(fd);
    if (!ok) {
        unlink(path);
        EVP_PKEY_free(pkey);
        return ek_err_new(EK_E_IO, "cannot write the key file \"%s\"", path);
    }
    *out = pkey;
    return NULL;
}

ek_err_t *ek_box_ring_load(const char *path, bool create, ek_box_ring_t **out)
{
    *out = NULL;
    ek_box_ring_t *r = ek_xcalloc(1, sizeof(*r));
    EVP_PKEY *pkey = NULL;
    ek_err_t *err = key_read(path, &pkey);
    if (err && create && err->sys_errno == ENOENT) {
        ek_err_free(err);
        err = key_write_new(path, &pkey);
    }
    if (!err && !(err = key_set(&r->keys[0], pkey, path)))
        r->n = 1;
    if (!err) {
        _cleanup_free_ char *prev = ek_xasprintf("%s.prev", path);
        if (access(prev, F_OK) == 0 && !(err = key_read(prev, &pkey)) &&
            !(err = key_set(&r->keys[1], pkey, prev)))
            r->n = 2;
    }
    if (err) {
        ek_box_ring_free(r);
        return err;
    }
    *out = r;
    return NULL;
}

ek_err_t *ek_box_ring_derive(const unsigned char secret[EK_SECRET_KEY_LEN], const char *label,
                             ek_box_ring_t **out)
{
    unsigned char raw[RAW_LEN];
    static const unsigned char salt[] = "ekman-box-ring";
    *out = NULL;
    if (!hkdf(secret, EK_SECRET_KEY_LEN, salt, sizeof(salt) - 1, label, raw))
        return ek_err_new(EK_E_INTERNAL, "HKDF failed");
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, raw, RAW_LEN);
    OPENSSL_cleanse(raw, sizeof(raw));
    if (!pkey)
        return ek_err_new(EK_E_INTERNAL, "cannot make an X25519 key");
    ek_box_ring_t *r = ek_xcalloc(1, sizeof(*r));
    ek_err_t *err = key_set(&r->keys[0], pkey, label);
    if (err) {
        free(r);
        return err;
    }
    r->n = 1;
    *out = r;
    return NULL;
}

void ek_box_ring_free(ek_box_ring_t *ring)
{
    if (!ring)
        return;
    for (int i = 0; i < ring->n; i++)
        EVP_PKEY_free(ring->keys[i].pkey);
    free(ring);
}

const char *ek_box_ring_public(const ek_box_ring_t *ring)
{
    return ring->keys[0].pub_b64;
}

const char *ek_box_ring_kid(const ek_box_ring_t *ring)
{
    return ring->keys[0].kid;
}

ek_err_t *ek_box_rotate(const char *path, char kid_out[EK_BOX_KID_LEN + 1])
{
    _cleanup_free_ char *tmp = ek_xasprintf("%s.new", path);
    _cleanup_free_ char *prev = ek_xasprintf("%s.prev", path);
    EVP_PKEY *pkey = NULL;
    unlink(tmp); /* a rotation that died half-way */
    ek_err_t *err = key_write_new(tmp, &pkey);
    if (err)
        return err;
    box_key_t k = {0};
    if ((err = key_set(&k, pkey, tmp))) {
        unlink(tmp);
        return err;
    }
    if ((access(path, F_OK) == 0 && rename(path, prev) != 0) || rename(tmp, path) != 0) {
        err = ek_err_errno(errno, "cannot put the new key in place of \"%s\"", path);
        unlink(tmp);
    } else {
        memcpy(kid_out, k.kid, sizeof(k.kid));
    }
    EVP_PKEY_free(k.pkey);
    return err;
}

/* The AES key of one box: HKDF over the X25519 shared secret, salted with
 * both public keys. */
static ek_err_t *box_key(EVP_PKEY *mine, const unsigned char peer_pub[RAW_LEN],
                         const unsigned char eph_pub[RAW_LEN],
                         const unsigned char rcpt_pub[RAW_LEN], unsigned char key[RAW_LEN])
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, RAW_LEN);
    EVP_PKEY_CTX *ctx = peer ? EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL) : NULL;
    unsigned char shared[RAW_LEN], salt[2 * RAW_LEN];
    size_t len = sizeof(shared);
    bool ok = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
              EVP_PKEY_derive(ctx, shared, &len) == 1 && len == RAW_LEN;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    if (ok) {
        memcpy(salt, eph_pub, RAW_LEN);
        memcpy(salt + RAW_LEN, rcpt_pub, RAW_LEN);
        ok = hkdf(shared, RAW_LEN, salt, sizeof(salt), "ekman-box-v1", key);
    }
    OPENSSL_cleanse(shared, sizeof(shared));
    /* X25519 refuses points of small order (an all-zero shared secret) */
    return ok ? NULL
              : ek_err_new(EK_E_INVALID, "key agreement failed (not a valid X25519 "
                                         "public key)");
}

static ek_err_t *decode_pub(const char *b64, unsigned char pub[RAW_LEN], const char *what)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    ek_err_t *err = ek_base64_decode(b64, &raw, &len);
    if (!err && len != RAW_LEN)
        err = ek_err_new(EK_E_INVALID, "%s must be 32 bytes, not %zu", what, len);
    if (!err)
        memcpy(pub, raw, RAW_LEN);
    free(raw);
    return err ? ek_err_prefix(err, "%s", what) : NULL;
}

ek_err_t *ek_box_seal(const char *public_b64, const char *aad, const char *plaintext, char **out)
{
    *out = NULL;
    unsigned char rcpt[RAW_LEN], eph_pub[RAW_LEN], key[RAW_LEN];
    ek_err_t *err = decode_pub(public_b64, rcpt, "the recipient's public key");
    if (err)
        return err;
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    size_t len = RAW_LEN;
    if (!eph || EVP_PKEY_get_raw_public_key(eph, eph_pub, &len) != 1) {
        EVP_PKEY_free(eph);
        return ek_err_new(EK_E_INTERNAL, "cannot generate an X25519 key");
    }
    err = box_key(eph, rcpt, eph_pub, rcpt, key);
    EVP_PKEY_free(eph);
    if (err)
        return err;
    char kid[EK_BOX_KID_LEN + 1];
    kid_of(rcpt, kid);
    char *inner = ek_secret_seal(key, aad, plaintext);
    OPENSSL_cleanse(key, sizeof(key));
    char *eph_b64 = ek_base64_encode(eph_pub, RAW_LEN);
    *out = ek_xasprintf(BOX_PREFIX "%s:%s:%s", kid, eph_b64, inner);
    free(eph_b64);
    free(inner);
    return NULL;
}

bool ek_box_is_sealed(const char *text)
{
    return text && strncmp(text, BOX_PREFIX, strlen(BOX_PREFIX)) == 0;
}

ek_err_t *ek_box_open(const ek_box_ring_t *ring, const char *aad, const char *sealed,
                      char **plaintext)
{
    *plaintext = NULL;
    if (!ek_box_is_sealed(sealed))
        return ek_err_new(EK_E_INVALID, "not a sealed box (no \"" BOX_PREFIX "\" prefix)");
    const char *kid = sealed + strlen(BOX_PREFIX);
    const char *c1 = strchr(kid, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || c1 - kid != EK_BOX_KID_LEN || !c2 || c2 - c1 - 1 > 63)
        return ek_err_new(EK_E_INVALID, "a sealed box is malformed");
    const box_key_t *k = NULL;
    for (int i = 0; i < ring->n && !k; i++)
        if (strncmp(ring->keys[i].kid, kid, EK_BOX_KID_LEN) == 0)
            k = &ring->keys[i];
    if (!k)
        return ek_err_new(EK_E_AUTH,
                          "the secret was sealed for key %.*s, which is not held here (keys "
                          "held: %s%s%s): it was meant for another worker, or this worker's key "
                          "was rotated twice since",
                          EK_BOX_KID_LEN, kid, ring->keys[0].kid, ring->n > 1 ? ", " : "",
                          ring->n > 1 ? ring->keys[1].kid : "");
    char eph_b64[64];
    snprintf(eph_b64, sizeof(eph_b64), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    unsigned char eph[RAW_LEN], key[RAW_LEN];
    ek_err_t *err = decode_pub(eph_b64, eph, "the sealed box's ephemeral key");
    if (!err)
        err = box_key(k->pkey, eph, eph, k->pub, key);
    if (!err) {
        err = ek_secret_open(key, aad, c2 + 1, plaintext);
        OPENSSL_cleanse(key, sizeof(key));
    }
    return err ? ek_err_prefix(err, "sealed box") : NULL;
}

/* ---- secrets inside JSON ---- */

#define BOX_KEY "$box"

/* The sealed text of a {"$box": "..."} object, else NULL. */
static const char *boxed(json_object *v)
{
    json_object *b;
    if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 1 ||
        !json_object_object_get_ex(v, BOX_KEY, &b) || !json_object_is_type(b, json_type_string))
        return NULL;
    return json_object_get_string(b);
}

static ek_err_t *seal_value(json_object **slot, const char *public_b64, const char *aad)
{
    char *sealed = NULL;
    ek_err_t *err = ek_box_seal(public_b64, aad, json_object_get_string(*slot), &sealed);
    if (err)
        return err;
    json_object *o = json_object_new_object();
    json_object_object_add(o, BOX_KEY, json_object_new_string(sealed));
    free(sealed);
    *slot = o;
    return NULL;
}

ek_err_t *ek_box_json_seal(json_object *obj, const char *public_b64, const char *aad)
{
    ek_err_t *err = NULL;
    if (json_object_is_type(obj, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(obj) && !err; i++)
            err = ek_box_json_seal(json_object_array_get_idx(obj, i), public_b64, aad);
        return err;
    }
    if (!json_object_is_type(obj, json_type_object) || boxed(obj))
        return NULL;
    json_object_object_foreach(obj, key, val)
    {
        if (err)
            break;
        if (ek_redact_is_secret_key(key) && json_object_is_type(val, json_type_string)) {
            json_object *o = val;
            if (!(err = seal_value(&o, public_b64, aad)))
                json_object_object_add(obj, key, o); /* replaces (and puts) val */
        } else {
            err = ek_box_json_seal(val, public_b64, aad);
        }
    }
    return err;
}

ek_err_t *ek_box_json_open(json_object *obj, const ek_box_ring_t *ring, const char *aad)
{
    ek_err_t *err = NULL;
    if (json_object_is_type(obj, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(obj) && !err; i++) {
            json_object *v = json_object_array_get_idx(obj, i);
            const char *s = boxed(v);
            char *plain = NULL;
            if (!s)
                err = ek_box_json_open(v, ring, aad);
            else if (!(err = ek_box_open(ring, aad, s, &plain))) {
                json_object_array_put_idx(obj, i, json_object_new_string(plain));
                ek_free_secret(plain);
            }
        }
        return err;
    }
    if (!json_object_is_type(obj, json_type_object))
        return NULL;
    json_object_object_foreach(obj, key, val)
    {
        if (err)
            break;
        const char *s = boxed(val);
        char *plain = NULL;
        if (!s)
            err = ek_box_json_open(val, ring, aad);
        else if (!(err = ek_box_open(ring, aad, s, &plain))) {
            json_object_object_add(obj, key, json_object_new_string(plain));
            ek_free_secret(plain);
        }
        if (err)
            err = ek_err_prefix(err, "\"%s\"", key);
    }
    return err;
}
