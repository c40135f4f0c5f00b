/* redact.c - masking of secrets in text, URLs and JSON documents. */
#include "common/redact.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/mem.h"
#include "common/strbuf.h"

static const char *const secret_words[] = {
    "password",      "passwd",   "passphrase", "secret",  "token",  "private_key",
    "privatekey",    "priv_key", "key_pem",    "api_key", "apikey", "encryption_key",
    "authorization", "cookie",   "credential", "ticket", /* imageio's ticket URLs: whoever holds one
                                                            writes the disk */
};

/* A registered secret; until 0 means for the life of the process. */
struct registered {
    char *secret;
    time_t until;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registered *registered;
static size_t n_registered;

static const char *strcasestr_n(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

bool ek_redact_is_secret_key(const char *name)
{
    if (!name)
        return false;
    for (size_t i = 0; i < EK_ARRAY_SIZE(secret_words); i++)
        if (strcasestr_n(name, secret_words[i]))
            return true;
    /* "..._key" names key material (ssh_key, encryption key); "..._key_path"
     * and "public_key" do not end that way or are not secret. */
    size_t n = strlen(name);
    if (n >= 3 && strcasecmp(name + n - 3, "key") == 0 && !strcasestr_n(name, "public"))
        return true;
    return false;
}

/* Drops secrets whose time has passed; called with reg_lock held. */
static void drop_expired(time_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < n_registered; i++) {
        if (registered[i].until && registered[i].until <= now)
            ek_free_secret(registered[i].secret);
        else
            registered[kept++] = registered[i];
    }
    n_registered = kept;
}

void ek_redact_register_until(const char *secret, time_t until)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&reg_lock);
    drop_expired(time(NULL));
    for (size_t i = 0; i < n_registered; i++) {
        if (strcmp(registered[i].secret, secret) == 0) {
            if (!until || (registered[i].until && until > registered[i].until))
                registered[i].until = until;
            pthread_mutex_unlock(&reg_lock);
            return;
        }
    }
    if (until && n_registered >= EK_REDACT_MAX_EXPIRING) {
        /* full: the secret closest to its end makes room (never a permanent one) */
        size_t victim = n_registered;
        for (size_t i = 0; i < n_registered; i++)
            if (registered[i].until &&
                (victim == n_registered || registered[i].until < registered[victim].until))
                victim = i;
        if (victim < n_registered) {
            ek_free_secret(registered[victim].secret);
            registered[victim] = registered[--n_registered];
        }
    }
    registered = ek_xrealloc(registered, (n_registered + 1) * sizeof(*registered));
    registered[n_registered++] = (struct registered){ek_xstrdup(secret), until};
    pthread_mutex_unlock(&reg_lock);
}

void ek_redact_register(const char *secret)
{
    ek_redact_register_until(secret, 0);
}

size_t ek_redact_registered_count(void)
{
    pthread_mutex_lock(&reg_lock);
    drop_expired(time(NULL));
    size_t n = n_registered;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

void ek_redact_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_registered; i++)
        ek_free_secret(registered[i].secret);
    free(registered);
    registered = NULL;
    n_registered = 0;
    pthread_mutex_unlock(&reg_lock);
}

/* Replaces every occurrence of each registered secret in sb. */
static void mask_registered(ek_strbuf_t *sb)
{
    pthread_mutex_lock(&reg_lock);
    drop_expired(time(NULL));
    for (size_t i = 0; i < n_registered; i++) {
        const char *s = registered[i].secret;
        size_t slen = strlen(s);
        char *hit;
        size_t from = 0;
        while (from < sb->len && (hit = strstr(sb->buf + from, s))) {
            size_t at = (size_t)(hit - sb->buf);
            ek_strbuf_t out = EK_STRBUF_INIT;
            ek_strbuf_add(&out, sb->buf, at);
            ek_strbuf_adds(&out, EK_REDACTED);
            ek_strbuf_adds(&out, sb->buf + at + slen);
            ek_strbuf_release(sb);
            *sb = out;
            from = at + strlen(EK_REDACTED);
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

static bool is_scheme_char(char c)
{
    return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Masks "scheme://user:PASSWORD@" user-info passwords. */
static void mask_url_userinfo(ek_strbuf_t *sb)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    const char *p = sb->buf;
    bool changed = false;
    while (*p) {
        const char *sep = strstr(p, "://");
        if (!sep) {
            ek_strbuf_adds(&out, p);
            break;
        }
        /* copy up to and including "://" */
        ek_strbuf_add(&out, p, (size_t)(sep - p) + 3);
        const char *auth = sep + 3;
        size_t span = strcspn(auth, "/?# \t\n\"'<>");
        const char *at = memrchr(auth, '@', span);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (sep > p && is_scheme_char(sep[-1]) && at && colon) {
            ek_strbuf_add(&out, auth, (size_t)(colon - auth) + 1);
            ek_strbuf_adds(&out, EK_REDACTED);
            p = at;
            changed = true;
        } else {
            p = auth;
        }
    }
    if (changed) {
        ek_strbuf_release(sb);
        *sb = out;
    } else {
        ek_strbuf_release(&out);
    }
}

/* Masks the bodies of PEM private-key blocks, also a truncated one. */
static void mask_pem(ek_strbuf_t *sb)
{
    const char *begin;
    size_t from = 0;
    while ((begin = strstr(sb->buf + from, "-----BEGIN "))) {
        const char *eol = strstr(begin + 11, "-----");
        if (!eol)
            return;
        size_t hdr_end = (size_t)(eol - sb->buf) + 5;
        if (!memmem(begin, hdr_end - (size_t)(begin - sb->buf), "PRIVATE KEY", 11)) {
            from = hdr_end;
            continue;
        }
        const char *end = strstr(sb->buf + hdr_end, "-----END ");
        size_t tail;
        if (end) {
            const char *end_close = strstr(end + 9, "-----");
            tail = end_close ? (size_t)(end_close - sb->buf) + 5 : sb->len;
        } else {
            tail = sb->len;
        }
        ek_strbuf_t out = EK_STRBUF_INIT;
        ek_strbuf_add(&out, sb->buf, hdr_end);
        ek_strbuf_adds(&out, EK_REDACTED);
        size_t resume = out.len;
        ek_strbuf_adds(&out, sb->buf + tail);
        ek_strbuf_release(sb);
        *sb = out;
        from = resume;
    }
}

/* Masks values of `word=value`, `word: value` and `"word": "value"` where word
 * names a secret. The value ends at white space, a quote, ',', ';' or '&'. */
static void mask_pairs(ek_strbuf_t *sb)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    const char *p = sb->buf;
    bool changed = false;
    while (*p) {
        /* read one identifier-like word */
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-')) {
            ek_strbuf_addch(&out, *p++);
            continue;
        }
        const char *w = p;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-')
            p++;
        ek_strbuf_add(&out, w, (size_t)(p - w));
        char word[96];
        size_t wl = (size_t)(p - w) < sizeof(word) - 1 ? (size_t)(p - w) : sizeof(word) - 1;
        memcpy(word, w, wl);
        word[wl] = '\0';
        if (!ek_redact_is_secret_key(word))
            continue;
        const char *q = p;
        if (*q == '"' || *q == '\'')
            q++;
        while (*q == ' ')
            q++;
        if (*q != '=' && *q != ':')
            continue;
        q++;
        while (*q == ' ')
            q++;
        bool quoted = (*q == '"' || *q == '\'');
        char quote = *q;
        if (quoted)
            q++;
        if (strncasecmp(q, "Bearer ", 7) == 0 || strncasecmp(q, "Basic ", 6) == 0)
            q = strchr(q, ' ') + 1;
        const char *v = q;
        if (quoted) {
            while (*q && *q != quote)
                q++;
        } else {
            while (*q && !isspace((unsigned char)*q) && !strchr("\"',;&}", *q))
                q++;
        }
        if (q == v || (q - v == 3 && memcmp(v, EK_REDACTED, 3) == 0) || *v == '{' || *v == '[' ||
            strncmp(v, "null", 4) == 0)
            continue; /* nothing to hide, or a JSON structure handled by ek_redact_json */
        ek_strbuf_add(&out, p, (size_t)(v - p));
        ek_strbuf_adds(&out, EK_REDACTED);
        p = q;
        changed = true;
    }
    if (changed) {
        ek_strbuf_release(sb);
        *sb = out;
    } else {
        ek_strbuf_release(&out);
    }
}

char *ek_redact_text(const char *text)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, text ? text : "");
    mask_registered(&sb);
    mask_pem(&sb);
    mask_url_userinfo(&sb);
    mask_pairs(&sb);
    return ek_strbuf_detach(&sb);
}

char *ek_redact_url(const char *url)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, url ? url : "");
    mask_url_userinfo(&sb);
    return ek_strbuf_detach(&sb);
}

json_object *ek_redact_json(json_object *obj)
{
    if (!obj)
        return NULL;
    switch (json_object_get_type(obj)) {
    case json_type_object: {
        json_object *copy = json_object_new_object();
        json_object_object_foreach(obj, key, val)
        {
            if (ek_redact_is_secret_key(key) && val &&
                json_object_get_type(val) != json_type_null) {
                if (json_object_get_type(val) == json_type_object) {
                    /* a map of secrets ("password_map": {"linux": ...}) keeps its keys */
                    json_object *masked = json_object_new_object();
                    json_object_object_foreach(val, k2, v2)
                    {
                        (void)v2;
                        json_object_object_add(masked, k2, json_object_new_string(EK_REDACTED));
                    }
                    json_object_object_add(copy, key, masked);
                } else {
                    json_object_object_add(copy, key, json_object_new_string(EK_REDACTED));
                }
            } else {
                json_object_object_add(copy, key, ek_redact_json(val));
            }
        }
        return copy;
    }
    case json_type_array: {
        json_object *copy = json_object_new_array();
        size_t n = json_object_array_length(obj);
        for (size_t i = 0; i < n; i++)
            json_object_array_add(copy, ek_redact_json(json_object_array_get_idx(obj, i)));
        return copy;
    }
    case json_type_string: {
        char *s = ek_redact_text(json_object_get_string(obj));
        json_object *copy = json_object_new_string(s);
        free(s);
        return copy;
    }
    default:
        return json_object_get(obj);
    }
}
