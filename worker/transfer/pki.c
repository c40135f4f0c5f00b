/* pki.c - generation of the per-transfer CA and the writer/worker certificates
 * with OpenSSL's EVP and X509 APIs (ECDSA P-256, SHA-256 signatures). */
#include "worker/transfer/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "common/mem.h"
#include "common/strbuf.h"

static ek_err_t *ossl_err(const char *what)
{
    char eb[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, eb, sizeof(eb));
    ERR_clear_error();
    return ek_err_new(EK_E_INTERNAL, "certificate generation: %s: %s", what,
                      e ? eb : "no details from OpenSSL");
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static ek_err_t *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                           const char *const exts[][2], int valid_days, X509 **out)
{
    X509 *cert = X509_new();
    unsigned char serial[16];
    ek_err_t *err = NULL;
    if (!cert || RAND_bytes(serial, sizeof(serial)) != 1) {
        err = ossl_err("no certificate or random serial");
        goto out;
    }
    serial[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    ASN1_INTEGER *sn = X509_get_serialNumber(cert);
    bool ok = bn && BN_to_ASN1_INTEGER(bn, sn);
    BN_free(bn);
    X509_NAME *name = X509_get_subject_name(cert);
    ok = ok && X509_set_version(cert, 2) &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Ekman", -1, -1,
                                    0) &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) &&
         X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) &&
         X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(cert), (long)valid_days * 86400) &&
         X509_set_pubkey(cert, key);
    if (!ok) {
        err = ossl_err("cannot fill in the certificate");
        goto out;
    }
    for (size_t i = 0; exts[i][0]; i++) {
        int nid = OBJ_txt2nid(exts[i][0]);
        if (!add_ext(cert, issuer ? issuer : cert, nid, exts[i][1])) {
            err = ossl_err(exts[i][0]);
            goto out;
        }
    }
    if (!X509_sign(cert, issuer_key, EVP_sha256())) {
        err = ossl_err("cannot sign");
        goto out;
    }
    *out = cert;
    return NULL;
out:
    X509_free(cert);
    return err;
}

static ek_err_t *write_pem(const char *dir, const char *file, X509 *cert, EVP_PKEY *key)
{
    _cleanup_free_ char *path = ek_xasprintf("%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, key ? 0600 : 0644);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", path);
    if (key)
        fchmod(fd, 0600); /* also when the file existed with other modes */
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return ek_err_errno(errno, "could not open \"%s\"", path);
    }
    bool ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fclose(f) != 0 || !ok)
        return ek_err_new(EK_E_IO, "could not write \"%s\"", path);
    return NULL;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

ek_err_t *ek_pki_generate(const char *dir, const char *const *extra_names, int valid_days)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *srv_key = EVP_EC_gen("P-256"),
             *cli_key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *srv = NULL, *cli = NULL;
    ek_err_t *err = NULL;
    ek_strbuf_t san = EK_STRBUF_INIT;
    if (!ca_key || !srv_key || !cli_key) {
        err = ossl_err("cannot generate P-256 keys");
        goto out;
    }
    if (valid_days <= 0)
        valid_days = 30;
    ek_strbuf_adds(&san, "DNS:" EK_PKI_SERVER_NAME);
    for (size_t i = 0; extra_names && extra_names[i]; i++)
        ek_strbuf_addf(&san, ",%s:%s", is_ip(extra_names[i]) ? "IP" : "DNS", extra_names[i]);

    const char *const ca_exts[][2] = {
        {"basicConstraints", "critical,CA:TRUE,pathlen:0"},
        {"keyUsage", "critical,keyCertSign,cRLSign"},
        {"subjectKeyIdentifier", "hash"},
        {NULL, NULL},
    };
    const char *const srv_exts[][2] = {
        {"basicConstraints", "critical,CA:FALSE"}, {"keyUsage", "critical,digitalSignature"},
        {"extendedKeyUsage", "serverAuth"},        {"subjectAltName", san.buf},
        {"authorityKeyIdentifier", "keyid"},       {NULL, NULL},
    };
    const char *const cli_exts[][2] = {
        {"basicConstraints", "critical,CA:FALSE"},
        {"keyUsage", "critical,digitalSignature"},
        {"extendedKeyUsage", "clientAuth"},
        {"authorityKeyIdentifier", "keyid"},
        {NULL, NULL},
    };
    if ((err = make_cert(ca_key, "Ekman transfer CA", NULL, ca_key, ca_exts, valid_days, &ca)) ||
        (err = make_cert(srv_key, EK_PKI_SERVER_NAME, ca, ca_key, srv_exts, valid_days, &srv)) ||
        (err = make_cert(cli_key, "ekman-worker", ca, ca_key, cli_exts, valid_days, &cli)) ||
        (err = write_pem(dir, "ca.pem", ca, NULL)) ||
        (err = write_pem(dir, "server.pem", srv, NULL)) ||
        (err = write_pem(dir, "server.key", NULL, srv_key)) ||
        (err = write_pem(dir, "client.pem", cli, NULL)) ||
        (err = write_pem(dir, "client.key", NULL, cli_key)))
        goto out;
out:
    ek_strbuf_release(&san);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    return err;
}
