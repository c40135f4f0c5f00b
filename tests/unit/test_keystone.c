/* test_keystone.c - the Keystone v3 facade's pure half (conductor/keystone.c):
 * what POST /v3/auth/tokens bodies it reads (password by user name or id, a
 * token to re-scope, a project by id or by name, unscoped), what it refuses
 * and how (400 naming the field; 401 for what Ekman does not do: another
 * domain, a domain or system scope, other methods), and the token, catalog
 * and version documents the Coriolis client reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/mem.h"
#include "conductor/keystone.h"

static json_object *parse_json(const char *text)
{
    json_object *doc;
    ek_err_t *err = ek_json_parse(text, strlen(text), &doc);
    assert_null(err);
    return doc;
}

/* Parses text into a; returns the error (caller frees) or NULL. doc keeps the
 * strings a points to. */
static ek_err_t *parse(const char *text, json_object **doc, ek_ks_auth_t *a)
{
    *doc = parse_json(text);
    return ek_ks_auth_parse(*doc, a);
}

#define PW(user, scope)                                                                            \
    "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": " user       \
    "}}" scope "}}"

static void test_password_by_name(void **state)
{
    (void)state;
    json_object *doc;
    ek_ks_auth_t a;
    ek_err_t *err =
        parse(PW("{\"name\": \"alice\", \"domain\": {\"name\": \"Default\"}, \"password\": \"pw\"}",
                 ", \"scope\": {\"project\": {\"name\": \"p1\", \"domain\": {\"id\": "
                 "\"default\"}}}"),
              &doc, &a);
    assert_null(err);
    assert_int_equal(a.method, EK_KS_PASSWORD);
    assert_string_equal(a.user, "alice");
    assert_false(a.user_by_id);
    assert_string_equal(a.password, "pw");
    assert_string_equal(a.project, "p1");
    assert_false(a.project_by_id);
    json_object_put(doc);
}

static void test_password_by_id_unscoped(void **state)
{
    (void)state;
    json_object *doc;
    ek_ks_auth_t a;
    assert_null(parse(PW("{\"id\": \"0b6f3e2e-1111-4a4a-8b8b-000000000001\", \"password\": "
                         "\"pw\"}",
                         ""),
                      &doc, &a));
    assert_true(a.user_by_id);
    assert_string_equal(a.user, "0b6f3e2e-1111-4a4a-8b8b-000000000001");
    assert_null(a.project);
    json_object_put(doc);
    /* a user name without a domain is taken (Default) */
    assert_null(parse(PW("{\"name\": \"bob\", \"password\": \"pw\"}",
                         ", \"scope\": {\"project\": {\"id\": \"abc\"}}"),
                      &doc, &a));
    assert_string_equal(a.user, "bob");
    assert_string_equal(a.project, "abc");
    assert_true(a.project_by_id);
    json_object_put(doc);
}

static void test_token_method(void **state)
{
    (void)state;
    json_object *doc;
    ek_ks_auth_t a;
    assert_null(parse("{\"auth\": {\"identity\": {\"methods\": [\"token\"], \"token\": {\"id\": "
                      "\"T0K\"}}, \"scope\": {\"project\": {\"id\": \"p\"}}}}",
                      &doc, &a));
    assert_int_equal(a.method, EK_KS_TOKEN);
    assert_string_equal(a.token, "T0K");
    assert_string_equal(a.project, "p");
    json_object_put(doc);
}

/* The body is refused with code and a message holding needle. */
static void expect_refused(const char *text, ek_errcode_t code, const char *needle)
{
    json_object *doc;
    ek_ks_auth_t a;
    ek_err_t *err = parse(text, &doc, &a);
    json_object_put(doc);
    if (!err || err->code != code || !strstr(err->message, needle)) {
        print_error("body %s\n  got  %s\n  want a message with %s\n", text,
                    err ? err->message : "(accepted)", needle);
        ek_err_free(err);
        fail();
    }
    ek_err_free(err);
}

static void test_refused(void **state)
{
    (void)state;
    expect_refused("[]", EK_E_INVALID, "needs a JSON body");
    expect_refused("{}", EK_E_INVALID, "auth is required");
    expect_refused("{\"auth\": {}}", EK_E_INVALID, "auth.identity is required");
    expect_refused("{\"auth\": {\"identity\": {}}}", EK_E_INVALID,
                   "auth.identity.methods is required");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": []}}}", EK_E_INVALID,
                   "auth.identity.methods is empty");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": [\"password\", \"token\"]}}}",
                   EK_E_INVALID, "one method at a time");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": [7]}}}", EK_E_INVALID,
                   "auth.identity.methods[0] must be a string");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": [\"totp\"]}}}", EK_E_AUTH,
                   "does not do the \"totp\" method");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": [\"password\"]}}}", EK_E_INVALID,
                   "auth.identity.password is required");
    expect_refused(PW("{\"password\": \"x\"}", ""), EK_E_INVALID,
                   "auth.identity.password.user needs a \"name\"");
    expect_refused(PW("{\"name\": \"a\"}", ""), EK_E_INVALID,
                   "auth.identity.password.user.password is required");
    expect_refused(PW("{\"name\": 5, \"password\": \"x\"}", ""), EK_E_INVALID,
                   "auth.identity.password.user.name must be a string");
    expect_refused(
        PW("{\"name\": \"a\", \"domain\": {\"name\": \"Other\"}, \"password\": \"x\"}", ""),
        EK_E_AUTH,
        "Ekman has one domain, \"Default\" (id \"default\"), and no domain "
        "\"Other\": set OS_USER_DOMAIN_NAME=Default");
    expect_refused(PW("{\"name\": \"a\", \"domain\": {}, \"password\": \"x\"}", ""), EK_E_INVALID,
                   "auth.identity.password.user.domain needs an \"id\" or a \"name\"");
    expect_refused(PW("{\"name\": \"a\", \"password\": \"x\"}",
                      ", \"scope\": {\"project\": {\"name\": \"p\", \"domain\": {\"id\": "
                      "\"d2\"}}}"),
                   EK_E_AUTH, "set OS_PROJECT_DOMAIN_NAME=Default");
    expect_refused(PW("{\"name\": \"a\", \"password\": \"x\"}",
                      ", \"scope\": {\"domain\": {\"id\": \"default\"}}"),
                   EK_E_AUTH, "Ekman has no domain scope");
    expect_refused(
        PW("{\"name\": \"a\", \"password\": \"x\"}", ", \"scope\": {\"system\": {\"all\": true}}"),
        EK_E_AUTH, "Ekman has no system scope");
    expect_refused(PW("{\"name\": \"a\", \"password\": \"x\"}", ", \"scope\": {}"), EK_E_INVALID,
                   "auth.scope.project is required");
    expect_refused(PW("{\"name\": \"a\", \"password\": \"x\"}", ", \"scope\": {\"project\": {}}"),
                   EK_E_INVALID, "auth.scope.project needs a \"name\"");
    expect_refused("{\"auth\": {\"identity\": {\"methods\": [\"token\"], \"token\": {}}}}",
                   EK_E_INVALID, "auth.identity.token.id is required");
}

static void test_domain(void **state)
{
    (void)state;
    assert_true(ek_ks_domain_is_default("default"));
    assert_true(ek_ks_domain_is_default("Default"));
    assert_false(ek_ks_domain_is_default("DEFAULT"));
    assert_false(ek_ks_domain_is_default(""));
    assert_false(ek_ks_domain_is_default(NULL));
}

static const char *get(json_object *doc, const char *path)
{
    /* a/b/0/c: members and array indexes */
    static char buf[256];
    json_object *o = doc;
    char *p = ek_xstrdup(path), *save = NULL;
    for (char *tok = strtok_r(p, "/", &save); tok && o; tok = strtok_r(NULL, "/", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(o, tok, &o))
            o = NULL;
    }
    free(p);
    if (!o)
        return NULL;
    snprintf(buf, sizeof(buf), "%s", json_object_get_string(o));
    return buf;
}

static ek_token_info_t info(bool scoped, bool admin)
{
    ek_token_info_t t = {.user_id = "u-1",
                         .project_id = "p-1",
                         .user_name = "alice",
                         .project_name = "proj",
                         .is_admin = admin,
                         .user_admin = admin,
                         .scoped = scoped,
                         .issued_at = "2026-01-02T03:04:05.123456Z",
                         .expires_at = "2026-01-02T04:04:05.123456Z",
                         .audit_id = "0123456789abcdef012345"};
    return t;
}

static void test_token_doc(void **state)
{
    (void)state;
    ek_ks_site_t site = {.base_url = "https://ekman.example:7667", .region = "RegionOne"};
    ek_token_info_t t = info(true, false);
    json_object *doc = ek_ks_token_doc(&t, &site);
    assert_string_equal(get(doc, "token/methods/0"), "password");
    assert_string_equal(get(doc, "token/expires_at"), "2026-01-02T04:04:05.123456Z");
    assert_string_equal(get(doc, "token/issued_at"), "2026-01-02T03:04:05.123456Z");
    assert_string_equal(get(doc, "token/audit_ids/0"), "0123456789abcdef012345");
    assert_string_equal(get(doc, "token/user/id"), "u-1");
    assert_string_equal(get(doc, "token/user/name"), "alice");
    assert_string_equal(get(doc, "token/user/domain/id"), "default");
    assert_string_equal(get(doc, "token/user/domain/name"), "Default");
    assert_string_equal(get(doc, "token/project/id"), "p-1");
    assert_string_equal(get(doc, "token/project/name"), "proj");
    assert_string_equal(get(doc, "token/project/domain/id"), "default");
    assert_string_equal(get(doc, "token/roles/0/name"), "member");
    assert_string_equal(get(doc, "token/catalog/0/type"), "migration");
    assert_string_equal(get(doc, "token/catalog/0/name"), "coriolis");
    const char *ifaces[] = {"public", "internal", "admin"};
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof(path), "token/catalog/0/endpoints/%d/interface", i);
        assert_string_equal(get(doc, path), ifaces[i]);
        snprintf(path, sizeof(path), "token/catalog/0/endpoints/%d/url", i);
        assert_string_equal(get(doc, path), "https://ekman.example:7667/v1/p-1");
        snprintf(path, sizeof(path), "token/catalog/0/endpoints/%d/region_id", i);
        assert_string_equal(get(doc, path), "RegionOne");
    }
    json_object_put(doc);

    t = info(true, true);
    doc = ek_ks_token_doc(&t, &site);
    assert_string_equal(get(doc, "token/roles/0/name"), "admin");
    assert_string_equal(get(doc, "token/roles/0/id"), "admin");
    json_object_put(doc);

    /* unscoped: no project, roles or catalog */
    t = info(false, false);
    doc = ek_ks_token_doc(&t, &site);
    assert_non_null(get(doc, "token/user/id"));
    assert_null(get(doc, "token/project"));
    assert_null(get(doc, "token/roles"));
    assert_null(get(doc, "token/catalog"));
    json_object_put(doc);
}

static void test_other_docs(void **state)
{
    (void)state;
    ek_ks_site_t site = {.base_url = "http://h:1", .region = "R"};
    json_object *v = ek_ks_version_doc(&site);
    assert_string_equal(get(v, "version/id"), "v3.14");
    assert_string_equal(get(v, "version/status"), "stable");
    assert_string_equal(get(v, "version/links/0/href"), "http://h:1/v3/");
    assert_string_equal(get(v, "version/media-types/0/type"),
                        "application/vnd.openstack.identity-v3+json");
    json_object_put(v);
    json_object *p = ek_ks_project("p-1", "proj", &site);
    assert_string_equal(get(p, "domain_id"), "default");
    assert_string_equal(get(p, "links/self"), "http://h:1/v3/projects/p-1");
    json_object_put(p);
    json_object *u = ek_ks_user("u-1", "alice", "p-1", &site);
    assert_string_equal(get(u, "default_project_id"), "p-1");
    assert_string_equal(get(u, "links/self"), "http://h:1/v3/users/u-1");
    json_object_put(u);
    json_object *a = ek_ks_role_assignment("u-1", "alice", "p-1", "proj", true, true, &site);
    assert_string_equal(get(a, "role/name"), "admin");
    assert_string_equal(get(a, "user/name"), "alice");
    assert_string_equal(get(a, "scope/project/name"), "proj");
    assert_string_equal(get(a, "links/assignment"),
                        "http://h:1/v3/projects/p-1/users/u-1/roles/admin");
    json_object_put(a);
    a = ek_ks_role_assignment("u-1", "alice", "p-1", "proj", false, false, &site);
    assert_null(get(a, "user/name"));
    assert_string_equal(get(a, "scope/project/id"), "p-1");
    json_object_put(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_by_name), cmocka_unit_test(test_password_by_id_unscoped),
        cmocka_unit_test(test_token_method),     cmocka_unit_test(test_refused),
        cmocka_unit_test(test_domain),           cmocka_unit_test(test_token_doc),
        cmocka_unit_test(test_other_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
