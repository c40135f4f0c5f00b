/* keystone.c - the Keystone v3 facade's bodies and documents (keystone.h). */
#include "conductor/keystone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"

bool ek_ks_domain_is_default(const char *s)
{
    return s && (strcmp(s, EK_KS_DOMAIN_ID) == 0 || strcmp(s, EK_KS_DOMAIN_NAME) == 0);
}

/* An optional {"id"|"name": D} at path.key: absent, or Ekman's one domain. */
static ek_err_t *check_domain(json_object *parent, const char *path, const char *hint)
{
    json_object *dom;
    ek_err_t *err = ek_json_opt_object(parent, path, "domain", &dom);
    if (err || !dom)
        return err;
    const char *id, *name;
    char *where = ek_xasprintf("%s.domain", path);
    if ((err = ek_json_opt_string(dom, where, "id", NULL, &id)) ||
        (err = ek_json_opt_string(dom, where, "name", NULL, &name))) {
        free(where);
        return err;
    }
    if (!id && !name)
        err = ek_err_new(EK_E_INVALID, "%s needs an \"id\" or a \"name\"", where);
    else if ((id && !ek_ks_domain_is_default(id)) || (name && !ek_ks_domain_is_default(name)))
        err = ek_err_new(EK_E_AUTH,
                         "%s: Ekman has one domain, \"Default\" (id \"default\"), and no domain "
                         "\"%s\": set %s=Default",
                         where, id && !ek_ks_domain_is_default(id) ? id : name, hint);
    free(where);
    return err;
}

static ek_err_t *parse_password(json_object *identity, ek_ks_auth_t *out)
{
    json_object *pw, *user;
    const char *id, *name;
    ek_err_t *err;
    if ((err = ek_json_req_object(identity, "auth.identity", "password", &pw)) ||
        (err = ek_json_req_object(pw, "auth.identity.password", "user", &user)) ||
        (err = ek_json_opt_string(user, "auth.identity.password.user", "id", NULL, &id)) ||
        (err = ek_json_opt_string(user, "auth.identity.password.user", "name", NULL, &name)))
        return err;
    if (id && *id) {
        out->user = id;
        out->user_by_id = true;
    } else if (name && *name) {
        out->user = name;
        if ((err = check_domain(user, "auth.identity.password.user", "OS_USER_DOMAIN_NAME")))
            return err;
    } else {
        return ek_err_new(EK_E_INVALID,
                          "auth.identity.password.user needs a \"name\" (OS_USERNAME) or an "
                          "\"id\" (OS_USER_ID)");
    }
    json_object *p;
    if (!json_object_object_get_ex(user, "password", &p) ||
        !json_object_is_type(p, json_type_string))
        return ek_err_new(EK_E_INVALID, "auth.identity.password.user.password is required: "
                                        "a string (OS_PASSWORD)");
    out->password = json_object_get_string(p);
    return NULL;
}

static ek_err_t *parse_scope(json_object *auth, ek_ks_auth_t *out)
{
    json_object *scope, *project;
    ek_err_t *err = ek_json_opt_object(auth, "auth", "scope", &scope);
    if (err || !scope)
        return err; /* unscoped */
    static const char *const other[] = {"domain", "system", "OS-TRUST:trust"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(other); i++)
        if (json_object_object_get_ex(scope, other[i], NULL))
            return ek_err_new(EK_E_AUTH,
                              "auth.scope.%s: Ekman has no %s scope; scope to a project "
                              "(auth.scope.project: OS_PROJECT_NAME or OS_PROJECT_ID)",
                              other[i], strcmp(other[i], "OS-TRUST:trust") ? other[i] : "trust");
    if ((err = ek_json_req_object(scope, "auth.scope", "project", &project)))
        return err;
    const char *id, *name;
    if ((err = ek_json_opt_string(project, "auth.scope.project", "id", NULL, &id)) ||
        (err = ek_json_opt_string(project, "auth.scope.project", "name", NULL, &name)))
        return err;
    if (id && *id) {
        out->project = id;
        out->project_by_id = true;
        return NULL;
    }
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "auth.scope.project needs a \"name\" (OS_PROJECT_NAME) "
                                        "or an \"id\" (OS_PROJECT_ID)");
    out->project = name;
    return check_domain(project, "auth.scope.project", "OS_PROJECT_DOMAIN_NAME");
}

ek_err_t *ek_ks_auth_parse(json_object *body, ek_ks_auth_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!body || !json_object_is_type(body, json_type_object))
        return ek_err_new(EK_E_INVALID, "the request needs a JSON body {\"auth\": {\"identity\": "
                                        "{...}, \"scope\": {...}}}");
    json_object *auth, *identity, *methods;
    ek_err_t *err;
    if ((err = ek_json_req_object(body, NULL, "auth", &auth)) ||
        (err = ek_json_req_object(auth, "auth", "identity", &identity)) ||
        (err = ek_json_req_array(identity, "auth.identity", "methods", &methods)))
        return err;
    size_t n = json_object_array_length(methods);
    if (n == 0)
        return ek_err_new(EK_E_INVALID, "auth.identity.methods is empty: send [\"password\"] or "
                                        "[\"token\"]");
    if (n > 1)
        return ek_err_new(EK_E_INVALID, "auth.identity.methods: Ekman takes one method at a time, "
                                        "[\"password\"] or [\"token\"]");
    json_object *m = json_object_array_get_idx(methods, 0);
    if (!json_object_is_type(m, json_type_string))
        return ek_err_new(EK_E_INVALID, "auth.identity.methods[0] must be a string, not %s",
                          ek_json_type_name(m));
    const char *method = json_object_get_string(m);
    if (strcmp(method, "password") == 0) {
        out->method = EK_KS_PASSWORD;
        err = parse_password(identity, out);
    } else if (strcmp(method, "token") == 0) {
        json_object *tok;
        out->method = EK_KS_TOKEN;
        if (!(err = ek_json_req_object(identity, "auth.identity", "token", &tok)))
            err = ek_json_req_string(tok, "auth.identity.token", "id", &out->token);
    } else {
        return ek_err_new(EK_E_AUTH,
                          "auth.identity.methods: Ekman does not do the \"%s\" method; log in "
                          "with \"password\" (or \"token\" to re-scope a token)",
                          method);
    }
    if (err)
        return err;
    return parse_scope(auth, out);
}

/* ---- documents --------------------------------------------------------------- */

static json_object *str(const char *s)
{
    return json_object_new_string(s);
}

static json_object *domain_ref(void)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "id", str(EK_KS_DOMAIN_ID));
    json_object_object_add(d, "name", str(EK_KS_DOMAIN_NAME));
    return d;
}

/* {"self": base_url + path + id} */
static json_object *self_link(const ek_ks_site_t *site, const char *path, const char *id)
{
    char *href = ek_xasprintf("%s%s%s", site->base_url, path, id);
    json_object *l = json_object_new_object();
    json_object_object_add(l, "self", str(href));
    free(href);
    return l;
}

json_object *ek_ks_links(const ek_ks_site_t *site, const char *path)
{
    json_object *l = self_link(site, path, "");
    json_object_object_add(l, "previous", NULL);
    json_object_object_add(l, "next", NULL);
    return l;
}

json_object *ek_ks_catalog(const char *project_id, const ek_ks_site_t *site)
{
    static const char *const interfaces[] = {"public", "internal", "admin"};
    char *url = ek_xasprintf("%s/v1/%s", site->base_url, project_id);
    json_object *eps = json_object_new_array();
    for (size_t i = 0; i < EK_ARRAY_SIZE(interfaces); i++) {
        char id[48];
        snprintf(id, sizeof(id), "ekman-migration-%s", interfaces[i]);
        json_object *ep = json_object_new_object();
        json_object_object_add(ep, "id", str(id));
        json_object_object_add(ep, "interface", str(interfaces[i]));
        json_object_object_add(ep, "region", str(site->region));
        json_object_object_add(ep, "region_id", str(site->region));
        json_object_object_add(ep, "url", str(url));
        json_object_array_add(eps, ep);
    }
    free(url);
    json_object *svc = json_object_new_object();
    json_object_object_add(svc, "endpoints", eps);
    json_object_object_add(svc, "id", str("ekman-migration"));
    json_object_object_add(svc, "type", str("migration"));
    json_object_object_add(svc, "name", str("coriolis"));
    json_object *catalog = json_object_new_array();
    json_object_array_add(catalog, svc);
    return catalog;
}

static json_object *role(bool admin)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "id", str(admin ? "admin" : "member"));
    json_object_object_add(r, "name", str(admin ? "admin" : "member"));
    return r;
}

json_object *ek_ks_token_doc(const ek_token_info_t *t, const ek_ks_site_t *site)
{
    json_object *tok = json_object_new_object();
    json_object *methods = json_object_new_array();
    json_object_array_add(methods, str("password"));
    json_object_object_add(tok, "methods", methods);
    json_object_object_add(tok, "expires_at", str(t->expires_at));
    json_object_object_add(tok, "issued_at", str(t->issued_at));
    json_object *audit = json_object_new_array();
    json_object_array_add(audit, str(t->audit_id));
    json_object_object_add(tok, "audit_ids", audit);
    json_object *user = json_object_new_object();
    json_object_object_add(user, "id", str(t->user_id));
    json_object_object_add(user, "name", str(t->user_name));
    json_object_object_add(user, "domain", domain_ref());
    json_object_object_add(user, "password_expires_at", NULL);
    json_object_object_add(tok, "user", user);
    if (t->scoped) {
        json_object *p = json_object_new_object();
        json_object_object_add(p, "id", str(t->project_id));
        json_object_object_add(p, "name", str(t->project_name));
        json_object_object_add(p, "domain", domain_ref());
        json_object_object_add(tok, "project", p);
        json_object_object_add(tok, "is_domain", json_object_new_boolean(0));
        json_object *roles = json_object_new_array();
        json_object_array_add(roles, role(t->is_admin));
        json_object_object_add(tok, "roles", roles);
        json_object_object_add(tok, "catalog", ek_ks_catalog(t->project_id, site));
    }
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "token", tok);
    return doc;
}

json_object *ek_ks_version_doc(const ek_ks_site_t *site)
{
    json_object *v = json_object_new_object();
    json_object_object_add(v, "id", str("v3.14"));
    json_object_object_add(v, "status", str("stable"));
    json_object_object_add(v, "updated", str("2020-04-07T00:00:00Z"));
    json_object *links = json_object_new_array();
    json_object *self = json_object_new_object();
    char *href = ek_xasprintf("%s/v3/", site->base_url);
    json_object_object_add(self, "rel", str("self"));
    json_object_object_add(self, "href", str(href));
    free(href);
    json_object_array_add(links, self);
    json_object_object_add(v, "links", links);
    json_object *mt = json_object_new_array();
    json_object *j = json_object_new_object();
    json_object_object_add(j, "base", str("application/json"));
    json_object_object_add(j, "type", str("application/vnd.openstack.identity-v3+json"));
    json_object_array_add(mt, j);
    json_object_object_add(v, "media-types", mt);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "version", v);
    return doc;
}

json_object *ek_ks_project(const char *id, const char *name, const ek_ks_site_t *site)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "id", str(id));
    json_object_object_add(p, "name", str(name));
    json_object_object_add(p, "domain_id", str(EK_KS_DOMAIN_ID));
    json_object_object_add(p, "parent_id", str(EK_KS_DOMAIN_ID));
    json_object_object_add(p, "description", str(""));
    json_object_object_add(p, "enabled", json_object_new_boolean(1));
    json_object_object_add(p, "is_domain", json_object_new_boolean(0));
    json_object_object_add(p, "tags", json_object_new_array());
    json_object_object_add(p, "links", self_link(site, "/v3/projects/", id));
    return p;
}

json_object *ek_ks_user(const char *id, const char *name, const char *project_id,
                        const ek_ks_site_t *site)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "id", str(id));
    json_object_object_add(u, "name", str(name));
    json_object_object_add(u, "domain_id", str(EK_KS_DOMAIN_ID));
    json_object_object_add(u, "default_project_id", str(project_id));
    json_object_object_add(u, "enabled", json_object_new_boolean(1));
    json_object_object_add(u, "password_expires_at", NULL);
    json_object_object_add(u, "options", json_object_new_object());
    json_object_object_add(u, "links", self_link(site, "/v3/users/", id));
    return u;
}

json_object *ek_ks_role_assignment(const char *user_id, const char *user_name,
                                   const char *project_id, const char *project_name, bool admin,
                                   bool names, const ek_ks_site_t *site)
{
    json_object *r = role(admin);
    json_object *u = json_object_new_object();
    json_object_object_add(u, "id", str(user_id));
    json_object *p = json_object_new_object();
    json_object_object_add(p, "id", str(project_id));
    if (names) {
        json_object_object_add(r, "domain", NULL);
        json_object_object_add(u, "name", str(user_name));
        json_object_object_add(u, "domain", domain_ref());
        json_object_object_add(p, "name", str(project_name));
        json_object_object_add(p, "domain", domain_ref());
    }
    json_object *scope = json_object_new_object();
    json_object_object_add(scope, "project", p);
    char *path = ek_xasprintf("/v3/projects/%s/users/%s/roles/%s", project_id, user_id,
                              admin ? "admin" : "member");
    json_object *links = json_object_new_object();
    char *href = ek_xasprintf("%s%s", site->base_url, path);
    json_object_object_add(links, "assignment", str(href));
    free(href);
    free(path);
    json_object *a = json_object_new_object();
    json_object_object_add(a, "role", r);
    json_object_object_add(a, "user", u);
    json_object_object_add(a, "scope", scope);
    json_object_object_add(a, "links", links);
    return a;
}
