/* main.c - ekman: the command-line client of Ekman's REST API. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/strbuf.h"

static const ek_program_info_t info = {
    .name = "ekman",
    .config_optional = true,
    .summary = "Command-line client of the Ekman REST API.",
    .usage = "Client options:\n"
             "  --url URL         API address (default: $EKMAN_URL, else http://127.0.0.1:7667)\n"
             "\nCommands:\n"
             "  status            check that the API answers (GET /healthz)\n",
};

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    ek_strbuf_add(userdata, data, size * nmemb);
    return size * nmemb;
}

static int cmd_status(const char *url)
{
    char *full = ek_xasprintf("%s/healthz", url);
    ek_strbuf_t body = EK_STRBUF_INIT;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int ret = 0;
    json_object *doc = NULL;
    if (rc != CURLE_OK) {
        fprintf(stderr, "ekman: cannot reach the API at %s: %s (is the conductor running? set "
                        "--url or EKMAN_URL)\n",
                url, curl_easy_strerror(rc));
        ret = 1;
    } else if (status != 200) {
        fprintf(stderr, "ekman: the API at %s answered HTTP %ld: %s\n", url, status, body.buf);
        ret = 1;
    } else {
        ek_err_t *err = ek_json_parse(body.buf, body.len, &doc);
        if (err) {
            fprintf(stderr, "ekman: the API at %s sent an invalid answer: %s\n", url,
                    err->message);
            ek_err_free(err);
            ret = 1;
        } else {
            json_object *st = NULL, *ver = NULL;
            json_object_object_get_ex(doc, "status", &st);
            json_object_object_get_ex(doc, "version", &ver);
            printf("API %s: %s (version %s)\n", url, st ? json_object_get_string(st) : "?",
                   ver ? json_object_get_string(ver) : "?");
        }
    }
    json_object_put(doc);
    ek_strbuf_release(&body);
    free(full);
    return ret;
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    ek_config_free(cfg);
    const char *url = getenv("EKMAN_URL") && *getenv("EKMAN_URL") ? getenv("EKMAN_URL")
                                                                  : "http://127.0.0.1:7667";
    const char *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strncmp(argv[i], "--url=", 6) == 0) {
            url = argv[i] + 6;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ekman: unknown option '%s' (see ekman --help)\n", argv[i]);
            return 2;
        } else if (!cmd) {
            cmd = argv[i];
        } else {
            fprintf(stderr, "ekman: unexpected argument '%s' (see ekman --help)\n", argv[i]);
            return 2;
        }
    }
    if (!cmd) {
        fprintf(stderr, "ekman: no command given (see ekman --help)\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int ret;
    if (strcmp(cmd, "status") == 0) {
        ret = cmd_status(url);
    } else {
        fprintf(stderr, "ekman: unknown command '%s' (see ekman --help)\n", cmd);
        ret = 2;
    }
    curl_global_cleanup();
    ek_log_shutdown();
    return ret;
}
