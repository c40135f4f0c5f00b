/* conninfo.c - connection_info checks beyond the provider schemas. */
#include "conductor/conninfo.h"

#include <string.h>
#include <strings.h>
#include "common/base64.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/utf8.h"

/* The worker (worker/providers/libvirt/conn.c) accepts what decodes to a
 * private key file; the same test here, a little stricter about the frame. */
static ek_err_t *check_private_key(const char *b64, const char *path)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    ek_err_t *err = ek_base64_decode(b64, &raw, &len);
    if (err) {
        ek_err_free(err);
        return ek_err_new(EK_E_INVALID,
                          "\"%s.private_key\": is not valid base64; encode the key file with "
                          "base64 -w0 KEYFILE",
                          path);
    }
    const char *text = (const char *)raw;
    const char *begin = len >= 32 ? memmem(raw, len, "-----BEGIN ", 11) : NULL;
    const char *kind =
        begin ? memmem(begin, len - (size_t)(begin - text), "PRIVATE KEY-----", 16) : NULL;
    const char *end = kind ? memmem(kind, len - (size_t)(kind - text), "-----END ", 9) : NULL;
    bool ok = end && ek_utf8_is_valid(text, len);
    memset(raw, 0, len);
    free(raw);
    if (!ok)
        return ek_err_new(EK_E_INVALID,
                          "\"%s.private_key\": does not decode to an SSH private key file "
                          "(\"-----BEGIN OPENSSH PRIVATE KEY-----\" ... \"-----END ...\"); "
                          "encode the key file itself with base64 -w0 KEYFILE",
                          path);
    return NULL;
}

static ek_err_t *check_url(const char *url, const char *path)
{
    const char *host = NULL;
    if (strncasecmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        host = url + 7;
    if (!host || !*host || strchr("/:?#", *host) || strpbrk(url, " \t\r\n"))
        return ek_err_new(EK_E_INVALID,
                          "\"%s.url\": must be an https:// URL with a host name, e.g. "
                          "https://engine.example.com/ovirt-engine/api",
                          path);
    return NULL;
}

ek_err_t *ek_conninfo_check(json_object *info, const char *path)
{
    json_object *v;
    if (json_object_object_get_ex(info, "private_key", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
        ek_err_t *err = check_private_key(json_object_get_string(v), path);
        if (err)
            return err;
    }
    if (json_object_object_get_ex(info, "url", &v) && json_object_is_type(v, json_type_string))
        return check_url(json_object_get_string(v), path);
    return NULL;
}

static bool is_mask(json_object *v)
{
    return json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), EK_REDACTED) == 0;
}

/* Replaces info[key] (the mask) by stored[key]; an error when none. */
static ek_err_t *restore_one(json_object *info, const char *key, json_object *stored,
                             const char *path)
{
    json_object *old = NULL;
    if (!stored || !json_object_is_type(stored, json_type_object) ||
        !json_object_object_get_ex(stored, key, &old) || !old || is_mask(old))
        return ek_err_new(EK_E_INVALID,
                          "%s.%s is \"" EK_REDACTED "\" (the mask of a secret) but the endpoint "
                          "has no such value stored: send the secret itself",
                          path, key);
    json_object_object_add(info, key, json_object_get(old));
    return NULL;
}

ek_err_t *ek_conninfo_keep_secrets(json_object *info, json_object *stored, const char *path)
{
    if (!info || !json_object_is_type(info, json_type_object))
        return NULL;
    ek_err_t *err = NULL;
    json_object_object_foreach(info, key, val)
    {
        json_object *old = NULL;
        if (stored && json_object_is_type(stored, json_type_object))
            json_object_object_get_ex(stored, key, &old);
        if (ek_redact_is_secret_key(key) && is_mask(val)) {
            err = restore_one(info, key, stored, path);
        } else if (json_object_is_type(val, json_type_object)) {
            char *sub = ek_xasprintf("%s.%s", path, key);
            if (ek_redact_is_secret_key(key)) {
                /* a map of secrets: each masked value of it */
                json_object_object_foreach(val, k2, v2)
                {
                    if (!err && is_mask(v2))
                        err = restore_one(val, k2, old, sub);
                }
            } else {
                err = ek_conninfo_keep_secrets(val, old, sub);
            }
            free(sub);
        }
        if (err)
            return err;
    }
    return NULL;
}
