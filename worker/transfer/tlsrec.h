/* tlsrec.h - record protection of TLS 1.3 (RFC 8446 §5.2-5.3, §7.1-7.3)
 * for the data plane's bulk path.
 *
 * OpenSSL runs the handshake (certificates, key exchange); the records of
 * the established connection are then sealed and opened here, with the
 * traffic secrets that handshake produced, the way kernel TLS takes over
 * from a user-space handshake. The bytes on the wire stay TLS 1.3 records
 * that any TLS 1.3 peer reads. What this gains over SSL_write/SSL_read is
 * the copies: a record is encrypted from the caller's buffer straight into
 * the socket batch and decrypted from the socket batch straight into the
 * caller's buffer (OpenSSL copies each side once more into its own record
 * buffer). Each direction has its own ek_tlsrec_t; it is not thread-safe. */
#ifndef EK_TRANSFER_TLSREC_H
#define EK_TRANSFER_TLSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#define EK_TLSREC_HEADER    5
#define EK_TLSREC_TAG       16
#define EK_TLSREC_MAX_PLAIN 16384                    /* content per record (2^14) */
/* The longest body a record may have with these suites: 2^14 bytes of
 * content, its type, the tag (§5.2 allows 2^14 + 256 of ciphertext, but the
 * plaintext is bounded by 2^14 + 1 and the AEADs here add 16 bytes). */
#define EK_TLSREC_MAX_BODY  (EK_TLSREC_MAX_PLAIN + 1 + EK_TLSREC_TAG)
/* The largest record this layer writes: header, content, type byte, tag. */
#define EK_TLSREC_MAX_SEALED (EK_TLSREC_HEADER + EK_TLSREC_MAX_PLAIN + 1 + EK_TLSREC_TAG)

/* Content types (§5.1) */
#define EK_TLSREC_ALERT     21
#define EK_TLSREC_HANDSHAKE 22
#define EK_TLSREC_APPDATA   23

typedef struct ek_tlsrec {
    EVP_CIPHER_CTX *ctx;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    bool enc;
    size_t key_len;
    uint8_t secret[EVP_MAX_MD_SIZE];
    size_t secret_len;
    uint8_t iv[12];
    uint64_t seq; /* records protected with the current key */
} ek_tlsrec_t;

/* Sets up one direction for cipher suite `suite` (0x1301 AES-128-GCM-SHA256,
 * 0x1302 AES-256-GCM-SHA384, 0x1303 CHACHA20-POLY1305-SHA256) from its
 * traffic secret (§7.3); enc: seal, else open. 0, or -1 (unknown suite,
 * wrong secret length, OpenSSL failure). */
int ek_tlsrec_init(ek_tlsrec_t *r, uint16_t suite, bool enc, const uint8_t *secret,
                   size_t secret_len);
/* Moves to the next traffic secret (§7.2, a KeyUpdate); seq restarts at 0. */
int ek_tlsrec_update(ek_tlsrec_t *r);
/* Wipes the secret and the key schedule. */
void ek_tlsrec_free(ek_tlsrec_t *r);

/* Seals one record of len <= EK_TLSREC_MAX_PLAIN content bytes of the given
 * type: out gets the header, the encrypted content and type byte, and the
 * tag (EK_TLSREC_HEADER + len + 1 + EK_TLSREC_TAG bytes, returned), or -1. */
long ek_tlsrec_seal(ek_tlsrec_t *r, uint8_t type, const void *in, size_t len, uint8_t *out);

/* Checks a record header: its body length, or -1 when it is not a
 * protected TLS 1.3 record (outer type application_data, version 0x0303)
 * or its length is out of bounds (17 .. EK_TLSREC_MAX_BODY). */
long ek_tlsrec_header(const uint8_t hdr[EK_TLSREC_HEADER]);
/* Opens one record (header + body of body_len bytes): out must have room
 * for body_len - EK_TLSREC_TAG - 1 bytes (it may be body itself); the last
 * plaintext byte goes elsewhere, so a record that carries exactly what the
 * caller asked for needs no bigger buffer. On success *type is the content
 * type, *len the content length (padding removed) and 0 is returned; -1
 * when the tag does not verify (nothing in out may then be used) or the
 * plaintext has no content type. */
int ek_tlsrec_open(ek_tlsrec_t *r, const uint8_t *rec, size_t body_len, uint8_t *out,
                   uint8_t *type, size_t *len);

#endif
