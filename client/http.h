/* http.h - the HTTP transport of `ekman` (libcurl): one request, its status
 * and body. An API that does not answer is reported here, with the URL and
 * what to check. */
#ifndef EK_CLI_HTTP_H
#define EK_CLI_HTTP_H

#include "client/cli.h"

typedef struct ek_cli_resp {
    long status;
    char *body; /* NUL-terminated, owned */
    size_t len;
} ek_cli_resp_t;

/* Sends METHOD url+path with an optional token and JSON body. Returns
 * EK_CLI_OK with *resp filled (any HTTP status), or EK_CLI_UNREACHABLE after
 * printing why. */
int ek_cli_http(ek_cli_t *cli, const char *method, const char *path, const char *token,
                const char *body, ek_cli_resp_t *resp);
void ek_cli_resp_release(ek_cli_resp_t *resp);
void ek_cli_http_cleanup(ek_cli_t *cli);
/* Percent-encodes a path segment or query value; the caller frees it. */
char *ek_cli_escape(const char *s);

#endif
