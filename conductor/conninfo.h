/* conninfo.h - the checks of an endpoint's connection_info that a JSON schema
 * cannot express, run at create and update so that a bad value is a 400 then
 * rather than a failed task later on a worker:
 *  - private_key (any provider): base64 of an SSH or PEM private key file;
 *  - url (any provider): an http:// or https:// URL with a host.
 * And, at update, the secrets a client sends back masked. */
#ifndef EK_CONDUCTOR_CONNINFO_H
#define EK_CONDUCTOR_CONNINFO_H

#include <json-c/json.h>
#include "common/error.h"

/* info was validated against the provider's schema; path prefixes field
 * names in the message ("endpoint.connection_info"). */
EK_ERR_CHECK ek_conninfo_check(json_object *info, const char *path);

/* An update's connection_info may carry back the mask ("***") that GET
 * shows for a secret (a key ek_redact_is_secret_key names, at any depth,
 * or a value of a map of secrets): each such value is replaced by the one
 * stored (the endpoint's current connection_info), so that a client that
 * edits what it read does not overwrite the secret with "***". A masked
 * value with nothing stored is a 400 naming the field. */
EK_ERR_CHECK ek_conninfo_keep_secrets(json_object *info, json_object *stored, const char *path);

#endif
