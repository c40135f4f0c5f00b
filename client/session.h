/* session.h - authentication of `ekman` and calls to the REST API: the token
 * cached per API URL and user in a file only its owner reads
 * ($XDG_CACHE_HOME/ekman or ~/.cache/ekman, directory 0700, files 0600),
 * a new login when it expired, the project of the calls. */
#ifndef EK_CLI_SESSION_H
#define EK_CLI_SESSION_H

#include <json-c/json.h>
#include "client/cli.h"

/* Logs in with the user's password (asked on a terminal when none was
 * given) and caches the token. Returns an exit code; messages printed. */
int ek_cli_login(ek_cli_t *cli);
/* Makes sure cli holds a token (the cached one, else a new login) and the
 * project of --project. */
int ek_cli_auth(ek_cli_t *cli);
/* Calls the API. A path starting with "/" is used as it is; any other is
 * relative to /v1/{project_id}/. *out receives the answer's JSON (NULL for an
 * empty answer); an error answer is printed and mapped to an exit code. A
 * token refused as expired is renewed once, transparently. */
int ek_cli_call(ek_cli_t *cli, const char *method, const char *path, json_object *body,
                json_object **out);
/* Removes the cached token of the user (`ekman logout`). */
int ek_cli_logout(ek_cli_t *cli);
void ek_cli_session_free(ek_cli_t *cli);
/* Reads a line from the terminal (/dev/tty) without echo; NULL without a
 * terminal. The caller frees it with ek_free_secret(). */
char *ek_cli_prompt_secret(const char *prompt);

#endif
