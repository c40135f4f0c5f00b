/* api.c - a small client of the oVirt REST API v4 on libcurl and json-c.
 *
 * Authentication is the engine's SSO: a form POST to
 * /ovirt-engine/sso/oauth/token gives a bearer token; there is no refresh,
 * so a 401 on a call means the token expired: the client logs in again once
 * and re-sends the call. TLS is verified against the system CAs (or
 * $CURL_CA_BUNDLE, as the curl tool reads it); with allow_untrusted it is
 * not verified at all, which is warned about once per session.
 *
 * Real engines serialise integers and booleans as strings ("4096",
 * "true"); the getters below read either form. Faults ({"reason","detail"})
 * become errors that say what was being done and quote the detail. */
#include "worker/providers/ovirt/ovirt.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"

struct ek_ovirt {
    CURL *h;
    char *name;    /* endpoint name */
    char *base;    /* API URL without a trailing '/' */
    char *sso_url; /* token endpoint */
    char *username;
    char *password; /* secret */
    char *token;    /* secret */
    bool insecure;
    bool uncancellable; /* cleanups run to the end even after a cancel */
    long status;
    ek_task_ctx_t *ctx;
    int version[3]; /* the engine's major, minor, build once read (0.0.0: not yet) */
    char *full_version;
};

const char *ek_ovirt_name(const ek_ovirt_t *c)
{
    return c->name;
}

long ek_ovirt_last_status(const ek_ovirt_t *c)
{
    return c->status;
}

void ek_ovirt_set_cancellable(ek_ovirt_t *c, bool on)
{
    c->uncancellable = !on;
}

bool ek_ovirt_cancelled(const ek_ovirt_t *c)
{
    return !c->uncancellable && c->ctx && ek_task_cancelled(c->ctx);
}

void ek_ovirt_drop_token(ek_ovirt_t *c)
{
    ek_free_secret(c->token);
    c->token = NULL;
}

/* ---- JSON with string scalars -------------------------------------------------------- */

const char *ek_ovirt_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !v || json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
        return NULL;
    return json_object_get_string(v);
}

bool ek_ovirt_int(json_object *o, const char *key, int64_t *out)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return false;
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return true;
    }
    if (json_object_is_type(v, json_type_double)) {
        *out = (int64_t)json_object_get_double(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = n;
    return true;
}

bool ek_ovirt_bool(json_object *o, const char *key, bool def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return def;
    if (json_object_is_type(v, json_type_boolean))
        return json_object_get_boolean(v);
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        if (strcasecmp(s, "true") == 0)
            return true;
        if (strcasecmp(s, "false") == 0)
            return false;
    }
    return def;
}

const char *ek_ovirt_ref(json_object *o, const char *key, const char *sub)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return ek_ovirt_str(v, sub);
}

json_object *ek_ovirt_list(json_object *o, const char *singular)
{
    json_object *v;
    if (!o || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, singular, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

size_t ek_ovirt_count(json_object *o, const char *singular)
{
    json_object *a = ek_ovirt_list(o, singular);
    return a ? json_object_array_length(a) : 0;
}

char *ek_ovirt_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = ek_xmalloc(strlen(s) * 3 + 1), *p = out;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
            strchr("-_.~", *q)) {
            *p++ = (char)*q;
        } else {
            *p++ = '%';
            *p++ = hex[*q >> 4];
            *p++ = hex[*q & 15];
        }
    }
    *p = 0;
    return out;
}

/* ---- faults -------------------------------------------------------------------------- */

static ek_errcode_t code_for(long status)
{
    switch (status) {
    case 400:
        return EK_E_INVALID;
    case 401:
        return EK_E_AUTH;
    case 403:
        return EK_E_FORBIDDEN;
    case 404:
        return EK_E_NOTFOUND;
    case 409:
        return EK_E_CONFLICT;
    default:
        return status >= 500 ? EK_E_UNAVAILABLE : EK_E_PROTOCOL;
    }
}

/* The fault of a body: {"reason","detail"}, {"fault":{...}} (failed
 * actions) or the SSO's {"error","error_code"}. Borrowed strings. */
static void fault_text(json_object *o, const char **reason, const char **detail)
{
    json_object *f;
    if (json_object_object_get_ex(o, "fault", &f) && json_object_is_type(f, json_type_object))
        o = f;
    *reason = ek_ovirt_str(o, "reason");
    *detail = ek_ovirt_str(o, "detail");
    if (!*detail)
        *detail = ek_ovirt_str(o, "error");
    if (!*reason)
        *reason = ek_ovirt_str(o, "error_code");
}

ek_err_t *ek_ovirt_fault(long status, const char *body, size_t len, const char *what)
{
    json_object *o = NULL;
    const char *reason = NULL, *detail = NULL;
    ek_err_t *perr = len ? ek_json_parse(body, len, &o) : NULL;
    if (perr)
        ek_err_free(perr);
    if (o && json_object_is_type(o, json_type_object))
        fault_text(o, &reason, &detail);
    ek_err_t *err;
    if (detail)
        err = ek_err_new(code_for(status), "%s: %s (HTTP %ld%s%s)", what, detail, status,
                         reason ? ", " : "", reason ? reason : "");
    else if (status == 404)
        err = ek_err_new(EK_E_NOTFOUND, "%s: not found (HTTP 404)", what);
    else if (status == 401)
        err = ek_err_new(EK_E_AUTH, "%s: the engine refused the session token (HTTP 401)", what);
    else
        err = ek_err_new(code_for(status), "%s: HTTP %ld%s%s", what, status, reason ? " " : "",
                         reason ? reason : "");
    json_object_put(o);
    return err;
}

/* ---- transport ------------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
    ek_strbuf_add(opaque, data, size * n);
    return size * n;
}

static int on_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    ek_ovirt_t *o = opaque;
    (void)a, (void)b, (void)c, (void)d;
    return ek_ovirt_cancelled(o) ? 1 : 0;
}

static ek_err_t *curl_error(ek_ovirt_t *c, CURLcode rc, const char *errbuf, const char *url)
{
    const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_ABORTED_BY_CALLBACK:
        return ek_err_new(EK_E_CANCELED, "cancelled while talking to oVirt endpoint '%s'", c->name);
    case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
    case CURLE_SSL_CACERT:
#endif
        return ek_err_new(EK_E_AUTH,
                          "oVirt endpoint '%s': the TLS certificate of %s is not trusted (%s): "
                          "add the engine's CA to the worker's system CA store, or set "
                          "allow_untrusted in the endpoint's connection info",
                          c->name, url, msg);
    case CURLE_OPERATION_TIMEDOUT:
        return ek_err_new(EK_E_TIMEOUT, "oVirt endpoint '%s': %s did not answer in time (%s)",
                          c->name, url, msg);
    default:
        return ek_err_new(EK_E_UNAVAILABLE, "oVirt endpoint '%s': cannot reach %s: %s", c->name,
                          url, msg);
    }
}

/* Sends one request; *status and the body in sb. */
static ek_err_t *http(ek_ovirt_t *c, const char *method, const char *url,
                      struct curl_slist *headers, const char *body, ek_strbuf_t *sb)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = c->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sb);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)ek_ovirt_timeout("REQUEST", 300));
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        const char *bundle = getenv("CURL_CA_BUNDLE");
        if (bundle && *bundle)
            curl_easy_setopt(h, CURLOPT_CAINFO, bundle);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        return curl_error(c, rc, errbuf, url);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    return NULL;
}

static ek_err_t *login(ek_ovirt_t *c)
{
    _cleanup_free_ char *user = ek_ovirt_escape(c->username);
    char *pass = ek_ovirt_escape(c->password);
    char *form =
        ek_xasprintf("grant_type=password&scope=ovirt-app-api&username=%s&password=%s", user, pass);
    ek_free_secret(pass);
    struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
    hd = curl_slist_append(hd, "Content-Type: application/x-www-form-urlencoded");
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_err_t *err = http(c, "POST", c->sso_url, hd, form, &sb);
    ek_free_secret(form);
    curl_slist_free_all(hd);
    json_object *o = NULL;
    if (!err && c->status != 200) {
        _cleanup_free_ char *what =
            ek_xasprintf("oVirt endpoint '%s': logging in as '%s'", c->name, c->username);
        err = ek_ovirt_fault(c->status, sb.buf, sb.len, what);
        if (c->status == 400 || c->status == 401 || c->status == 403)
            err->code = EK_E_AUTH;
    } else if (!err && !(err = ek_json_parse(sb.buf, sb.len, &o))) {
        const char *t = ek_ovirt_str(o, "access_token");
        if (!t || !*t)
            err = ek_err_new(EK_E_PROTOCOL,
                             "oVirt endpoint '%s': the SSO answer has no access_token", c->name);
        else {
            ek_free_secret(c->token);
            c->token = ek_xstrdup(t);
        }
    }
    json_object_put(o);
    ek_strbuf_release(&sb);
    return err;
}

/* The token endpoint beside the API: https://H/ovirt-engine/api ->
 * https://H/ovirt-engine/sso/oauth/token. */
static char *sso_url_of(const char *base)
{
    const char *p = strstr(base, "/ovirt-engine");
    if (p)
        return ek_xasprintf("%.*s/ovirt-engine/sso/oauth/token", (int)(p - base), base);
    const char *slash = strchr(strstr(base, "://") ? strstr(base, "://") + 3 : base, '/');
    int n = slash ? (int)(slash - base) : (int)strlen(base);
    return ek_xasprintf("%.*s/ovirt-engine/sso/oauth/token", n, base);
}

static ek_err_t *read_connection(ek_ovirt_t *c, json_object *ci)
{
    const char *url, *user, *pass;
    bool untrusted;
    const char *p = "connection_info";
    ek_err_t *err;
    if (!ci || !json_object_is_type(ci, json_type_object))
        return ek_err_new(EK_E_INVALID, "oVirt endpoint '%s': connection_info must be an object",
                          c->name);
    if ((err = ek_json_req_string(ci, p, "url", &url)) ||
        (err = ek_json_req_string(ci, p, "username", &user)) ||
        (err = ek_json_req_string(ci, p, "password", &pass)) ||
        (err = ek_json_opt_bool(ci, p, "allow_untrusted", false, &untrusted)))
        return ek_err_prefix(err, "oVirt endpoint '%s'", c->name);
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
        return ek_err_new(EK_E_INVALID,
                          "oVirt endpoint '%s': connection_info.url must be an https:// URL "
                          "such as https://engine.example.com/ovirt-engine/api",
                          c->name);
    c->base = ek_xstrdup(url);
    for (size_t n = strlen(c->base); n > 0 && c->base[n - 1] == '/'; n--)
        c->base[n - 1] = 0;
    c->sso_url = sso_url_of(c->base);
    c->username = ek_xstrdup(user);
    c->password = ek_xstrdup(pass);
    c->insecure = untrusted;
    return NULL;
}

ek_err_t *ek_ovirt_open(const ek_endpoint_t *ep, ek_task_ctx_t *ctx, ek_ovirt_t **out)
{
    static bool global;
    if (!global) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global = true;
    }
    ek_ovirt_t *c = ek_xcalloc(1, sizeof(*c));
    c->name = ek_xstrdup(ep->name ? ep->name : ep->id);
    c->ctx = ctx;
    ek_err_t *err = read_connection(c, ep->connection_info);
    if (!err && !(c->h = curl_easy_init()))
        err = ek_err_new(EK_E_INTERNAL, "could not initialise libcurl");
    if (!err && c->insecure) {
        ek_warn("oVirt endpoint '%s': allow_untrusted is set: the engine's TLS certificate is "
                "NOT verified (insecure)",
                c->name);
        if (ctx)
            ek_task_event(ctx, "WARNING",
                          "oVirt endpoint '%s': allow_untrusted is set: the engine's TLS "
                          "certificate is not verified (insecure)",
                          c->name);
    }
    if (!err)
        err = login(c);
    if (err) {
        ek_ovirt_close(c);
        return err;
    }
    *out = c;
    return NULL;
}

void ek_ovirt_close(ek_ovirt_t *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c->name);
    free(c->base);
    free(c->sso_url);
    free(c->username);
    ek_free_secret(c->password);
    ek_free_secret(c->token);
    free(c->full_version);
    free(c);
}

/* ---- calls ---------------------------------------------------------------------------- */

static ek_err_t *call_once(ek_ovirt_t *c, const char *method, const char *url, const char *body,
                           ek_strbuf_t *sb)
{
    struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
    hd = curl_slist_append(hd, "Version: 4");
    if (body)
        hd = curl_slist_append(hd, "Content-Type: application/json");
    char *auth = ek_xasprintf("Authorization: Bearer %s", c->token ? c->token : "");
    hd = curl_slist_append(hd, auth);
    ek_free_secret(auth);
    ek_err_t *err = http(c, method, url, hd, body, sb);
    curl_slist_free_all(hd);
    return err;
}

static ek_err_t *call(ek_ovirt_t *c, const char *method, const char *path, json_object *body,
                      const char *what, bool missing_ok, json_object **out)
{
    _cleanup_free_ char *url = ek_xasprintf("%s%s", c->base, path);
    const char *text = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_err_t *err = c->token ? call_once(c, method, url, text, &sb) : NULL;
    if (!err && (!c->token || c->status == 401)) {
        /* the token expired (or was never had): one new login, one retry */
        ek_debug("oVirt endpoint '%s': %s: new SSO token", c->name, path);
        ek_strbuf_reset(&sb);
        if (!(err = login(c)))
            err = call_once(c, method, url, text, &sb);
    }
    if (out)
        *out = NULL;
    if (!err && missing_ok && c->status == 404) {
        ek_strbuf_release(&sb);
        return NULL;
    }
    if (!err && (c->status < 200 || c->status > 299))
        err = ek_ovirt_fault(c->status, sb.buf, sb.len, what);
    json_object *o = NULL;
    if (!err) {
        ek_strbuf_trim(&sb);
        if (sb.len == 0)
            o = json_object_new_object();
        else if ((err = ek_json_parse(sb.buf, sb.len, &o)))
            err = ek_err_prefix(err, "%s: the engine's answer is not JSON", what);
    }
    /* a failed action answers 200 with {"status":"failed","fault":{..}} */
    const char *st = o ? ek_ovirt_str(o, "status") : NULL;
    if (!err && st && strcmp(st, "failed") == 0 && json_object_object_get_ex(o, "fault", NULL)) {
        const char *r, *d;
        fault_text(o, &r, &d);
        err = ek_err_new(EK_E_CONFLICT, "%s: %s (%s)", what, d ? d : "failed", r ? r : "failed");
    }
    ek_strbuf_release(&sb);
    if (err) {
        json_object_put(o);
        return err;
    }
    if (out)
        *out = o;
    else
        json_object_put(o);
    return NULL;
}

ek_err_t *ek_ovirt_call(ek_ovirt_t *c, const char *method, const char *path, json_object *body,
                        const char *what, json_object **out)
{
    return call(c, method, path, body, what, false, out);
}

bool ek_ovirt_insecure(const ek_ovirt_t *c)
{
    return c->insecure;
}

/* The engine's CA, which signs its hosts' certificates (vdsm, imageio):
 * GET /ovirt-engine/services/pki-resource?resource=ca-certificate&format=
 * X509-PEM-CA (ovirt-engine PKIResourceServlet; no login needed), read over
 * this session's verified TLS. */
ek_err_t *ek_ovirt_engine_ca(ek_ovirt_t *c, char **pem)
{
    const char *p = strstr(c->base, "/ovirt-engine");
    const char *host_end =
        strchr(strstr(c->base, "://") ? strstr(c->base, "://") + 3 : c->base, '/');
    int n = p ? (int)(p - c->base) : host_end ? (int)(host_end - c->base) : (int)strlen(c->base);
    _cleanup_free_ char *url = ek_xasprintf(
        "%.*s/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA", n,
        c->base);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_err_t *err = http(c, "GET", url, NULL, NULL, &sb);
    if (!err && c->status != 200)
        err = ek_err_new(EK_E_PROTOCOL,
                         "oVirt endpoint '%s': the engine's CA certificate (pki-resource) "
                         "answered HTTP %ld",
                         c->name, c->status);
    if (!err && !strstr(sb.buf, "-----BEGIN CERTIFICATE-----"))
        err = ek_err_new(EK_E_PROTOCOL,
                         "oVirt endpoint '%s': pki-resource did not answer a PEM certificate",
                         c->name);
    if (err) {
        ek_strbuf_release(&sb);
        return err;
    }
    *pem = ek_strbuf_detach(&sb);
    return NULL;
}

ek_err_t *ek_ovirt_get_opt(ek_ovirt_t *c, const char *path, const char *what, json_object **out)
{
    return call(c, "GET", path, NULL, what, true, out);
}

ek_err_t *ek_ovirt_engine_at_least(ek_ovirt_t *c, int major, int minor, int build, bool *yes,
                                   const char **full)
{
    if (!c->version[0]) {
        /* GET /ovirt-engine/api: product_info.version, its numbers as
         * strings (ovirt-engine BackendApiResource.addSystemVersion) */
        json_object *api = NULL;
        ek_err_t *err = ek_ovirt_call(c, "GET", "", NULL, "reading the engine's version", &api);
        if (err)
            return err;
        json_object *v =
            json_object_object_get(json_object_object_get(api, "product_info"), "version");
        int64_t n[3] = {0, 0, 0};
        static const char *const keys[] = {"major", "minor", "build"};
        for (size_t i = 0; i < 3; i++)
            ek_ovirt_int(v, keys[i], &n[i]);
        const char *fv = ek_ovirt_str(v, "full_version");
        if (n[0] <= 0 || n[0] > 1000 || n[1] < 0 || n[1] > 1000 || n[2] < 0 || n[2] > 100000) {
            json_object_put(api);
            return ek_err_new(EK_E_INVALID,
                              "oVirt endpoint '%s': the engine reports no usable version "
                              "(product_info.version of GET /ovirt-engine/api)",
                              c->name);
        }
        for (size_t i = 0; i < 3; i++)
            c->version[i] = (int)n[i];
        free(c->full_version);
        c->full_version =
            fv ? ek_xstrdup(fv)
               : ek_xasprintf("%d.%d.%d", c->version[0], c->version[1], c->version[2]);
        json_object_put(api);
    }
    int want[3] = {major, minor, build};
    int cmp = 0;
    for (size_t i = 0; i < 3 && !cmp; i++)
        cmp = (c->version[i] > want[i]) - (c->version[i] < want[i]);
    *yes = cmp >= 0;
    if (full)
        *full = c->full_version;
    return NULL;
}

ek_err_t *ek_ovirt_find(ek_ovirt_t *c, const char *collection, const char *singular,
                        const char *name, json_object **out)
{
    *out = NULL;
    if (!name || !*name)
        return NULL;
    /* an id first (names may look like anything, ids are UUIDs) */
    bool uuid_like = strlen(name) == 36 && name[8] == '-' && name[13] == '-';
    if (uuid_like) {
        _cleanup_free_ char *path = ek_xasprintf("/%s/%s", collection, name);
        _cleanup_free_ char *what = ek_xasprintf("looking up %s '%s'", singular, name);
        json_object *o;
        ek_err_t *err = ek_ovirt_get_opt(c, path, what, &o);
        if (err || o) {
            *out = o;
            return err;
        }
    }
    _cleanup_free_ char *q = ek_xasprintf("name=%s", name);
    _cleanup_free_ char *eq = ek_ovirt_escape(q);
    _cleanup_free_ char *path = ek_xasprintf("/%s?search=%s", collection, eq);
    _cleanup_free_ char *what = ek_xasprintf("looking up %s '%s'", singular, name);
    json_object *o;
    ek_err_t *err = ek_ovirt_call(c, "GET", path, NULL, what, &o);
    if (err)
        return err;
    /* Every version of a template has the template's name: the search
     * answers them all, and the newest is the one meant (as the engine's
     * "latest" version). */
    bool versions = strcmp(singular, "template") == 0;
    int64_t best = -1;
    json_object *a = ek_ovirt_list(o, singular);
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *e = json_object_array_get_idx(a, i);
        const char *n = ek_ovirt_str(e, "name");
        if (!n || strcmp(n, name) != 0) /* search= is case-insensitive and globs */
            continue;
        int64_t v = 1;
        json_object *ver;
        if (versions && json_object_object_get_ex(e, "version", &ver))
            ek_ovirt_int(ver, "version_number", &v);
        if (v > best) {
            json_object_put(*out);
            *out = json_object_get(e);
            best = v;
        }
        if (!versions)
            break;
    }
    json_object_put(o);
    return NULL;
}

/* ---- polling -------------------------------------------------------------------------- */

unsigned ek_ovirt_poll_ms(void)
{
    const char *s = getenv("EKMAN_OVIRT_POLL_MS");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? (unsigned)v : 2000;
}

int ek_ovirt_timeout(const char *which, int def)
{
    char name[64];
    snprintf(name, sizeof(name), "EKMAN_OVIRT_TIMEOUT_%s", which);
    const char *s = getenv(name);
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? (int)v : def;
}

static bool in_set(const char *s, const char *set)
{
    size_t n = strlen(s);
    for (const char *p = set; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, s, n) == 0)
            return true;
        p += k + (p[k] == ',');
    }
    return false;
}

ek_err_t *ek_ovirt_wait(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *path, const char *key,
                        const char *want, const char *bad, int timeout_s, const char *what)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char last[64] = "unknown";
    for (;;) {
        json_object *o;
        ek_err_t *err = ek_ovirt_get_opt(c, path, what, &o);
        if (err)
            return err;
        if (!o) {
            if (in_set("gone", want))
                return NULL;
            return ek_err_new(EK_E_NOTFOUND, "%s: it disappeared from the engine (HTTP 404)", what);
        }
        const char *st = ek_ovirt_str(o, key);
        snprintf(last, sizeof(last), "%s", st ? st : "none");
        json_object_put(o); /* st is gone with it: last holds the state */
        if (st && in_set(last, want))
            return NULL;
        if (st && in_set(last, bad))
            return ek_err_new(EK_E_CONFLICT, "%s: the engine reports %s '%s'", what, key, last);
        (void)ctx;
        if (ek_ovirt_cancelled(c))
            return ek_err_new(EK_E_CANCELED, "%s: cancelled", what);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= timeout_s)
            return ek_err_new(EK_E_TIMEOUT,
                              "%s: still '%s' after %d s (waiting for %s '%s'); look at the "
                              "engine's events for the cause",
                              what, last, timeout_s, key, want);
        usleep(ek_ovirt_poll_ms() * 1000);
    }
}
