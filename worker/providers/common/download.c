/* download.c - fetching a file from a URL an endpoint may name, within the
 * operator's limits (see download.h). libcurl moves the bytes; OpenSSL
 * hashes them as they arrive. */
#include "worker/providers/common/download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include "common/mem.h"
#include "common/strbuf.h"

typedef struct dl {
    int fd;
    uint64_t got, max;
    EVP_MD_CTX *md;
    bool too_big, write_failed;
} dl_t;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    dl_t *d = ud;
    size_t n = size * nmemb;
    if (d->got + n > d->max) {
        d->too_big = true;
        return 0;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(d->fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            d->write_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(d->md, p, n);
    d->got += n;
    return n;
}

/* NULL if the operator allows url's scheme, else an error; allowed gets the
 * allowed schemes, comma-separated (libcurl's protocol list). */
static ek_err_t *check_scheme(const ek_config_t *cfg, const char *option, const char *url,
                              ek_strbuf_t *allowed)
{
    const char *colon = strstr(url, "://");
    const ek_strlist_t *schemes = ek_config_get_list(cfg, "worker", "download_schemes");
    for (size_t i = 0; schemes && i < schemes->n; i++) {
        if (i)
            ek_strbuf_adds(allowed, ",");
        ek_strbuf_adds(allowed, schemes->items[i]);
    }
    if (colon) {
        size_t len = (size_t)(colon - url);
        for (size_t i = 0; schemes && i < schemes->n; i++)
            if (strlen(schemes->items[i]) == len && strncasecmp(url, schemes->items[i], len) == 0)
                return NULL;
    }
    return ek_err_new(EK_E_FORBIDDEN,
                      "%s '%s': workers download only with the URL schemes [worker] "
                      "download_schemes allows (%s): use an https:// URL, or the operator may "
                      "allow another scheme on a trusted network",
                      option, url, allowed->len ? allowed->buf : "none");
}

ek_err_t *ek_download(ek_task_ctx_t *ctx, const char *option, const char *url, const char *sha256,
                      const char *path, uint64_t *size)
{
    const ek_config_t *cfg = ek_task_config(ctx);
    if (size)
        *size = 0;
    ek_strbuf_t allowed = EK_STRBUF_INIT;
    ek_err_t *err = check_scheme(cfg, option, url, &allowed);
    if (err) {
        ek_strbuf_release(&allowed);
        return err;
    }
    if (sha256 && *sha256) {
        bool hex = strlen(sha256) == 64;
        for (size_t i = 0; hex && i < 64; i++)
            hex = isxdigit((unsigned char)sha256[i]) != 0;
        if (!hex) {
            ek_strbuf_release(&allowed);
            return ek_err_new(EK_E_INVALID, "the SHA-256 given for %s must be 64 hex digits",
                              option);
        }
    }
    dl_t d = {.max = (uint64_t)ek_config_get_int(cfg, "worker", "download_max_mb") << 20};
    d.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d.fd < 0) {
        ek_strbuf_release(&allowed);
        return ek_err_errno(errno, "cannot create \"%s\"", path);
    }
    d.md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
    CURL *c = curl_easy_init();
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* what the operator allows, and a redirect only to https */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, allowed.buf);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    ek_task_event(ctx, "INFO", "downloading %s from %s", option, url);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    ek_strbuf_release(&allowed);
    bool closed = close(d.fd) == 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_DigestFinal_ex(d.md, md, &md_len);
    EVP_MD_CTX_free(d.md);
    if (d.too_big)
        err =
            ek_err_new(EK_E_INVALID, "%s '%s' is larger than %lld MiB ([worker] download_max_mb)",
                       option, url, (long long)ek_config_get_int(cfg, "worker", "download_max_mb"));
    else if (d.write_failed || !closed)
        err = ek_err_new(EK_E_IO, "%s: cannot write \"%s\" (is the disk full?)", option, path);
    else if (rc != CURLE_OK)
        err = ek_err_new(EK_E_UNAVAILABLE,
                         "cannot download %s '%s': %s (check the URL in the environment or "
                         "ekman.conf)",
                         option, url, *cerr ? cerr : curl_easy_strerror(rc));
    if (!err && sha256 && *sha256) {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned i = 0; i < md_len; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        if (strcasecmp(hex, sha256) != 0)
            err = ek_err_new(EK_E_INVALID,
                             "%s '%s': the file's SHA-256 is %s, not the %s given: refused "
                             "(a changed or corrupted file, or the wrong digest)",
                             option, url, hex, sha256);
    }
    if (err) {
        unlink(path);
        return err;
    }
    if (size)
        *size = d.got;
    return NULL;
}
