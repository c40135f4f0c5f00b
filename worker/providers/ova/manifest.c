/* manifest.c - the .mf of an OVF package: one "ALGO(name)= hex" line per
 * file (SHA1 or SHA256, as VMware and ovftool write them; a CR before the
 * newline is accepted, names may hold a subfolder), and the digests that
 * check it, computed with OpenSSL EVP while streaming over the file or tar
 * member, never loading it whole. */
#include "worker/providers/ova/ova.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/mem.h"

#define CHUNK (1u << 20)

void ek_ova_manifest_release(ek_ova_manifest_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].algo);
        free(m->v[i].name);
        free(m->v[i].hex);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static size_t hex_len(const char *algo)
{
    return strcmp(algo, "SHA1") == 0 ? 40 : strcmp(algo, "SHA256") == 0 ? 64 : 0;
}

ek_err_t *ek_ova_manifest_parse(const char *text, size_t len, const char *what,
                                ek_ova_manifest_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t alloc = 0;
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        if (n == 0)
            continue;
        /* ALGO(name)= hex ; the name may hold ')' so the last ")=" ends it */
        const char *open = memchr(line, '(', n);
        const char *close = NULL;
        for (const char *p = line; p + 1 < line + n; p++)
            if (p[0] == ')' && p[1] == '=')
                close = p;
        if (!open || !close || close < open) {
            ek_ova_manifest_release(out);
            return ek_err_new(EK_E_INVALID,
                              "\"%s\" line %d is not of the form SHA256(file)= digest", what,
                              lineno);
        }
        char *algo = ek_xstrndup(line, (size_t)(open - line));
        for (char *a = algo; *a; a++)
            *a = (char)toupper((unsigned char)*a);
        const char *h = close + 2;
        while (h < line + n && (*h == ' ' || *h == '\t'))
            h++;
        char *hex = ek_xstrndup(h, (size_t)(line + n - h));
        for (char *a = hex; *a; a++)
            *a = (char)tolower((unsigned char)*a);
        size_t want = hex_len(algo);
        bool ok = want != 0 && strlen(hex) == want && strspn(hex, "0123456789abcdef") == want;
        if (!ok) {
            ek_err_t *err = ek_err_new(EK_E_INVALID,
                                       want == 0 ? "\"%s\" line %d: digest %s is not supported "
                                                   "(SHA1 or SHA256)"
                                                 : "\"%s\" line %d: the %s digest is malformed",
                                       what, lineno, algo);
            free(algo);
            free(hex);
            ek_ova_manifest_release(out);
            return err;
        }
        if (out->n == alloc) {
            alloc = alloc ? alloc * 2 : 8;
            out->v = ek_xrealloc(out->v, alloc * sizeof(*out->v));
        }
        out->v[out->n++] =
            (ek_ova_mf_entry_t){algo, ek_xstrndup(open + 1, (size_t)(close - open - 1)), hex};
    }
    return NULL;
}

ek_err_t *ek_ova_digest(int fd, uint64_t offset, uint64_t size, const char *algo,
                        const ek_task_ctx_t *ctx, char **hex)
{
    const EVP_MD *md = strcmp(algo, "SHA1") == 0     ? EVP_sha1()
                       : strcmp(algo, "SHA256") == 0 ? EVP_sha256()
                                                     : NULL;
    if (!md)
        return ek_err_new(EK_E_INVALID, "digest %s is not supported", algo);
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestInit_ex(mc, md, NULL) != 1) {
        EVP_MD_CTX_free(mc);
        return ek_err_new(EK_E_INTERNAL, "OpenSSL could not start a %s digest", algo);
    }
    unsigned char *buf = ek_xmalloc(CHUNK);
    ek_err_t *err = NULL;
    for (uint64_t done = 0; done < size && !err;) {
        if (ctx && ek_task_cancelled(ctx)) {
            err = ek_err_new(EK_E_CANCELED, "cancelled while checking the manifest");
            break;
        }
        size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = ek_err_errno(errno, "read failed");
        else if (n == 0)
            err = ek_err_new(EK_E_IO, "the file ends early");
        else if (EVP_DigestUpdate(mc, buf, (size_t)n) != 1)
            err = ek_err_new(EK_E_INTERNAL, "OpenSSL digest failed");
        else
            done += (uint64_t)n;
    }
    free(buf);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!err && EVP_DigestFinal_ex(mc, out, &len) != 1)
        err = ek_err_new(EK_E_INTERNAL, "OpenSSL digest failed");
    EVP_MD_CTX_free(mc);
    if (err)
        return err;
    char *h = ek_xmalloc(2 * len + 1);
    for (unsigned int i = 0; i < len; i++)
        snprintf(h + 2 * i, 3, "%02x", out[i]);
    *hex = h;
    return NULL;
}
