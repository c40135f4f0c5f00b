/* conninfo.h - the checks of an endpoint's connection_info that a JSON schema
 * cannot express, run at create and update so that a bad value is a 400 then
 * rather than a failed task later on a worker:
 *  - private_key (any provider): base64 of an SSH or PEM private key file;
 *  - url (any provider): an http:// or https:// URL with a host. */
#ifndef EK_CONDUCTOR_CONNINFO_H
#define EK_CONDUCTOR_CONNINFO_H

#include <json-c/json.h>
#include "common/error.h"

/* info was validated against the provider's schema; path prefixes field
 * names in the message ("endpoint.connection_info"). */
EK_ERR_CHECK ek_conninfo_check(json_object *info, const char *path);

#endif
