/* http.c - the HTTP transport of `ekman` (see http.h). */
#include "client/http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    ek_strbuf_add(userdata, data, size * nmemb);
    return size * nmemb;
}

static const char *hint(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        return "check the host name in --url or EKMAN_URL";
    case CURLE_OPERATION_TIMEDOUT:
        return "the API did not answer in time: check that the conductor is running and not "
               "overloaded (deploy/services.sh status)";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return "check the TLS certificate of the API, the CA given with --ca-file or "
               "EKMAN_CA_FILE, and the scheme (http/https) of the URL";
    default:
        return "check that the conductor is running (deploy/services.sh status) and that "
               "--url or EKMAN_URL points to its [api] address and port";
    }
}

int ek_cli_http(ek_cli_t *cli, const char *method, const char *path, const char *token,
                const char *body, ek_cli_resp_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (!cli->curl)
        cli->curl = curl_easy_init();
    CURL *c = cli->curl;
    curl_easy_reset(c);
    char *url = ek_xasprintf("%s%s", cli->url, path);
    ek_strbuf_t out = EK_STRBUF_INIT;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    char *auth = token ? ek_xasprintf("X-Auth-Token: %s", token) : NULL;
    if (auth)
        headers = curl_slist_append(headers, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* https: the certificate and host name are always checked */
    if (cli->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cli->ca_file);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") && strcmp(method, "DELETE")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (cli->verbose)
        fprintf(stderr, "> %s %s\n", method, url);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (auth)
        ek_free_secret(auth);
    int ret = EK_CLI_OK;
    if (rc != CURLE_OK) {
        ret = ek_cli_fail(EK_CLI_UNREACHABLE, "cannot reach the Ekman API at %s: %s; %s", cli->url,
                          curl_easy_strerror(rc), hint(rc));
        ek_strbuf_release(&out);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->len = out.len;
        resp->body = ek_strbuf_detach(&out);
        if (cli->verbose)
            fprintf(stderr, "< HTTP %ld (%zu bytes)\n", resp->status, resp->len);
    }
    free(url);
    return ret;
}

void ek_cli_resp_release(ek_cli_resp_t *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

void ek_cli_http_cleanup(ek_cli_t *cli)
{
    if (cli->curl)
        curl_easy_cleanup(cli->curl);
    cli->curl = NULL;
}

char *ek_cli_escape(const char *s)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            ek_strbuf_addch(&sb, (char)*p);
        else
            ek_strbuf_addf(&sb, "%%%02X", *p);
    }
    return ek_strbuf_detach(&sb);
}
