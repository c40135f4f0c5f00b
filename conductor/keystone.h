/* keystone.h - the pure half of the Keystone v3 identity facade (conductor/
 * r_keystone.c serves it under /v3): reading a POST /v3/auth/tokens body and
 * writing the documents Keystone answers with. No database, no HTTP: the unit
 * tests (tests/unit/test_keystone.c) drive it directly.
 *
 * Ekman has one Keystone domain, "Default" (id "default"), whose projects and
 * users are Ekman's own; one service in the catalog, "coriolis" of type
 * "migration", whose URL is <public base>/v1/<project id> as Coriolis's is. */
#ifndef EK_CONDUCTOR_KEYSTONE_H
#define EK_CONDUCTOR_KEYSTONE_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/error.h"
#include "conductor/accounts.h"

#define EK_KS_DOMAIN_ID   "default"
#define EK_KS_DOMAIN_NAME "Default"

enum ek_ks_method { EK_KS_PASSWORD, EK_KS_TOKEN };

/* A POST /v3/auth/tokens body; the strings point into the parsed body. */
typedef struct ek_ks_auth {
    enum ek_ks_method method;
    const char *user; /* password: the user's name, or id when user_by_id */
    bool user_by_id;
    const char *password;
    const char *token;   /* token: the token re-scoped */
    const char *project; /* NULL: unscoped; else a name, or an id when project_by_id */
    bool project_by_id;
} ek_ks_auth_t;

/* Reads body. A malformed body is EK_E_INVALID naming the field
 * ("auth.identity.password.user.name is required"); what Ekman does not do
 * (another domain, a domain or system scope, a method other than password and
 * token) is EK_E_AUTH saying so and what to send instead. */
EK_ERR_CHECK ek_ks_auth_parse(json_object *body, ek_ks_auth_t *out);
/* "default" or "Default" (as an id or a name). */
bool ek_ks_domain_is_default(const char *s);

/* Where the catalog points: base_url without a trailing slash. */
typedef struct ek_ks_site {
    const char *base_url;
    const char *region;
} ek_ks_site_t;

/* {"token": {...}}: methods, times, user, and when scoped the project, roles
 * and catalog. */
json_object *ek_ks_token_doc(const ek_token_info_t *t, const ek_ks_site_t *site);
/* The "catalog" array of a token scoped to project_id. */
json_object *ek_ks_catalog(const char *project_id, const ek_ks_site_t *site);
/* GET /v3: {"version": {...}}. */
json_object *ek_ks_version_doc(const ek_ks_site_t *site);
/* One project / user / role assignment as /v3 lists them. */
json_object *ek_ks_project(const char *id, const char *name, const ek_ks_site_t *site);
json_object *ek_ks_user(const char *id, const char *name, const char *project_id,
                        const ek_ks_site_t *site);
json_object *ek_ks_role_assignment(const char *user_id, const char *user_name,
                                   const char *project_id, const char *project_name, bool admin,
                                   bool names, const ek_ks_site_t *site);
/* {"self": url, "previous": null, "next": null} */
json_object *ek_ks_links(const ek_ks_site_t *site, const char *path);

#endif
