/* pki.c - generation of the per-transfer CA and the writer/worker certificates
 * with OpenSSL's EVP and X509 APIs (ECDSA P-256, SHA-256 signatures).
 *
 * Fixed extensions are given as OpenSSL's configuration text (constants
 * here); the server's subjectAltName, which holds names a caller passes
 * (addresses of a VM, names from an endpoint), is built as GENERAL_NAME
 * values instead, so that no name can add entries of its own (",DNS:..."),
 * and a name that is neither an IP address nor a DNS name is refused. */
#include "worker/transfer/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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
                           const char *const exts[][2], GENERAL_NAMES *san, int valid_hours,
                           X509 **out)
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
         X509_gmtime_adj(X509_getm_notBefore(cert), -EK_PKI_CLOCK_SKEW) &&
         X509_gmtime_adj(X509_getm_notAfter(cert), (long)valid_hours * 3600) &&
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
    if (san && X509_add1_ext_i2d(cert, NID_subject_alt_name, san, 0, X509V3_ADD_APPEND) != 1) {
        err = ossl_err("subjectAltName");
        goto out;
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

/* An IP address in binary (4 or 16 bytes into buf), or 0. */
static int ip_bytes(const char *s, unsigned char buf[16])
{
    if (inet_pton(AF_INET, s, buf) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, buf) == 1)
        return 16;
    return 0;
}

/* A DNS name as certificates carry it: labels of letters, digits and '-'
 * (not at either end), 1-63 bytes each, 253 in all; "*." may lead. */
static bool dns_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    for (;;) {
        size_t len = 0;
        for (; s[len] && s[len] != '.'; len++) {
            char c = s[len];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return false;
        }
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
            return false;
        if (!s[len])
            return true;
        s += len + 1;
    }
}

/* Appends one name to a subjectAltName: an IP entry for an address, else a
 * DNS entry. */
static ek_err_t *san_add(GENERAL_NAMES *gens, const char *name)
{
    unsigned char ip[16];
    int iplen = ip_bytes(name, ip);
    if (!iplen && !dns_name_valid(name))
        return ek_err_new(EK_E_INVALID,
                          "certificate name \"%.100s\" is neither an IP address nor a DNS name "
                          "(letters, digits, '-' and '.'): give the writer's address or host name",
                          name);
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *v = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    if (!g || !v || !ASN1_STRING_set(v, iplen ? (const void *)ip : name, iplen ? iplen : -1)) {
        GENERAL_NAME_free(g);
        ASN1_STRING_free(v);
        return ossl_err("subjectAltName entry");
    }
    GENERAL_NAME_set0_value(g, iplen ? GEN_IPADD : GEN_DNS, v);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return ossl_err("subjectAltName entry");
    }
    return NULL;
}

/* The server certificate's subjectAltName: EK_PKI_SERVER_NAME and extra_names. */
static ek_err_t *san_build(const char *const *extra_names, GENERAL_NAMES **out)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens)
        return ossl_err("subjectAltName");
    ek_err_t *err = san_add(gens, EK_PKI_SERVER_NAME);
    for (size_t i = 0; !err && extra_names && extra_names[i]; i++)
        err = san_add(gens, extra_names[i]);
    if (err) {
        GENERAL_NAMES_free(gens);
        return err;
    }
    *out = gens;
    return NULL;
}

ek_err_t *ek_pki_generate(const char *dir, const char *const *extra_names, int valid_hours)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *srv_key = EVP_EC_gen("P-256"),
             *cli_key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *srv = NULL, *cli = NULL;
    ek_err_t *err = NULL;
    GENERAL_NAMES *san = NULL;
    if (!ca_key || !srv_key || !cli_key) {
        err = ossl_err("cannot generate P-256 keys");
        goto out;
    }
    if (valid_hours <= 0)
        valid_hours = EK_PKI_VALID_HOURS;
    if (valid_hours > EK_PKI_MAX_VALID_HOURS) {
        err = ek_err_new(EK_E_INVALID,
                         "transfer certificates valid for %d hours: at most %d (%d days) are "
                         "allowed; a transfer's certificates are made for that transfer",
                         valid_hours, EK_PKI_MAX_VALID_HOURS, EK_PKI_MAX_VALID_HOURS / 24);
        goto out;
    }
    if ((err = san_build(extra_names, &san)))
        goto out;

    const char *const ca_exts[][2] = {
        {"basicConstraints", "critical,CA:TRUE,pathlen:0"},
        {"keyUsage", "critical,keyCertSign,cRLSign"},
        {"subjectKeyIdentifier", "hash"},
        {NULL, NULL},
    };
    const char *const srv_exts[][2] = {
        {"basicConstraints", "critical,CA:FALSE"},
        {"keyUsage", "critical,digitalSignature"},
        {"extendedKeyUsage", "serverAuth"},
        {"authorityKeyIdentifier", "keyid"},
        {NULL, NULL},
    };
    const char *const cli_exts[][2] = {
        {"basicConstraints", "critical,CA:FALSE"},
        {"keyUsage", "critical,digitalSignature"},
        {"extendedKeyUsage", "clientAuth"},
        {"authorityKeyIdentifier", "keyid"},
        {NULL, NULL},
    };
    if ((err = make_cert(ca_key, "Ekman transfer CA", NULL, ca_key, ca_exts, NULL, valid_hours,
                         &ca)) ||
        (err = make_cert(srv_key, EK_PKI_SERVER_NAME, ca, ca_key, srv_exts, san, valid_hours,
                         &srv)) ||
        (err = make_cert(cli_key, "ekman-worker", ca, ca_key, cli_exts, NULL, valid_hours, &cli)) ||
        (err = write_pem(dir, "ca.pem", ca, NULL)) ||
        (err = write_pem(dir, "server.pem", srv, NULL)) ||
        (err = write_pem(dir, "server.key", NULL, srv_key)) ||
        (err = write_pem(dir, "client.pem", cli, NULL)) ||
        (err = write_pem(dir, "client.key", NULL, cli_key)))
        goto out;
out:
    GENERAL_NAMES_free(san);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    return err;
}
