/* config.c - the INI reader, typed values and the effective-configuration dump. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "common/base64.h"
#include "common/mem.h"
#include "common/redact.h"
#include "common/strbuf.h"

struct optval {
    const ek_opt_def_t *def;
    json_object *value; /* typed: string, int, boolean, array of strings, object of strings */
    bool set;
    int line; /* where the file set it */
    ek_strlist_t list;
    ek_strmap_t map;
};

struct ek_config {
    size_t n_opts;
    struct optval *opts;
    char *path;
    ek_strlist_t warnings;
};

/* ---- small string helpers ------------------------------------------------ */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Strips one pair of matching quotes in place. */
static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

static void strlist_add(ek_strlist_t *l, const char *s)
{
    l->items = ek_xrealloc(l->items, (l->n + 1) * sizeof(char *));
    l->items[l->n++] = ek_xstrdup(s);
}

static void strlist_clear(ek_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void strmap_clear(ek_strmap_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    m->keys = m->values = NULL;
    m->n = 0;
}

const char *ek_strmap_get(const ek_strmap_t *map, const char *key)
{
    for (size_t i = 0; map && i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->values[i];
    return NULL;
}

bool ek_strlist_contains(const ek_strlist_t *list, const char *item)
{
    for (size_t i = 0; list && i < list->n; i++)
        if (strcmp(list->items[i], item) == 0)
            return true;
    return false;
}

/* ---- values ---------------------------------------------------------------- */

const ek_opt_def_t *ek_config_find_option(const char *section, const char *name)
{
    for (const ek_opt_def_t *d = ek_options; d->section; d++)
        if (strcmp(d->section, section) == 0 && strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static bool section_known(const char *section)
{
    for (const ek_opt_def_t *d = ek_options; d->section; d++)
        if (strcmp(d->section, section) == 0)
            return true;
    return false;
}

static ek_err_t *parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return NULL;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return NULL;
        }
    }
    return ek_err_new(EK_E_INVALID, "'%s' is not a boolean (use true or false)", s);
}

ek_err_t *ek_config_parse_value(const ek_opt_def_t *def, const char *text, json_object **out)
{
    char *copy = ek_xstrdup(text);
    char *s = unquote(trim(copy));
    ek_err_t *err = NULL;
    *out = NULL;

    switch (def->type) {
    case EK_OPT_STRING:
        if (def->choices && *s) {
            bool ok = false;
            const char *c = def->choices;
            while (*c && !ok) {
                size_t n = strcspn(c, "|");
                ok = strlen(s) == n && strncmp(c, s, n) == 0;
                c += n + (c[n] == '|');
            }
            if (!ok) {
                err = ek_err_new(EK_E_INVALID, "'%s' is not one of %s", s, def->choices);
                break;
            }
        } else if (def->choices && !*s) {
            err = ek_err_new(EK_E_INVALID, "an empty value is not one of %s", def->choices);
            break;
        }
        *out = json_object_new_string(s);
        break;
    case EK_OPT_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno) {
            err = ek_err_new(EK_E_INVALID, "'%s' is not an integer", s);
            break;
        }
        if (def->min < def->max && (v < def->min || v > def->max)) {
            err = ek_err_new(EK_E_INVALID, "%lld is out of range (%lld to %lld)", v,
                             (long long)def->min, (long long)def->max);
            break;
        }
        *out = json_object_new_int64(v);
        break;
    }
    case EK_OPT_BOOL: {
        bool b = false;
        err = parse_bool(s, &b);
        if (!err)
            *out = json_object_new_boolean(b);
        break;
    }
    case EK_OPT_LIST: {
        json_object *arr = json_object_new_array();
        char *save = NULL;
        for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *item = unquote(trim(tok));
            if (*item)
                json_object_array_add(arr, json_object_new_string(item));
        }
        *out = arr;
        break;
    }
    case EK_OPT_MAP: {
        json_object *obj = json_object_new_object();
        char *save = NULL;
        for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *item = trim(tok);
            if (!*item)
                continue;
            char *colon = strchr(item, ':');
            if (!colon) {
                err =
                    ek_err_new(EK_E_INVALID,
                               "map entry '%s' has no ':' (expected key:value,key2:value2)", item);
                break;
            }
            *colon = '\0';
            char *k = unquote(trim(item));
            char *v = unquote(trim(colon + 1));
            if (!*k) {
                err = ek_err_new(EK_E_INVALID, "map entry ':%s' has an empty key", v);
                break;
            }
            json_object_object_add(obj, k, json_object_new_string(v));
        }
        if (err)
            json_object_put(obj);
        else
            *out = obj;
        break;
    }
    }
    free(copy);
    return err;
}

static void optval_assign(struct optval *ov, json_object *value)
{
    json_object_put(ov->value);
    ov->value = value;
    strlist_clear(&ov->list);
    strmap_clear(&ov->map);
    if (ov->def->type == EK_OPT_LIST) {
        size_t n = json_object_array_length(value);
        for (size_t i = 0; i < n; i++)
            strlist_add(&ov->list, json_object_get_string(json_object_array_get_idx(value, i)));
    } else if (ov->def->type == EK_OPT_MAP) {
        json_object_object_foreach(value, k, v)
        {
            ov->map.keys = ek_xrealloc(ov->map.keys, (ov->map.n + 1) * sizeof(char *));
            ov->map.values = ek_xrealloc(ov->map.values, (ov->map.n + 1) * sizeof(char *));
            ov->map.keys[ov->map.n] = ek_xstrdup(k);
            ov->map.values[ov->map.n] = ek_xstrdup(json_object_get_string(v));
            ov->map.n++;
        }
    }
}

/* Makes sure a secret value can never reach a log line. */
static void register_secrets(const struct optval *ov)
{
    if (ov->def->flags & EK_OPT_SECRET) {
        if (ov->def->type == EK_OPT_MAP) {
            for (size_t i = 0; i < ov->map.n; i++)
                ek_redact_register(ov->map.values[i]);
        } else if (ov->def->type == EK_OPT_STRING) {
            ek_redact_register(json_object_get_string(ov->value));
        }
    } else if (ov->def->flags & EK_OPT_URL_SECRET) {
        /* scheme://user:PASSWORD@host */
        const char *url = json_object_get_string(ov->value);
        const char *auth = strstr(url, "://");
        if (!auth)
            return;
        auth += 3;
        size_t span = strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', span);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            char *pw = ek_xstrndup(colon + 1, (size_t)(at - colon - 1));
            ek_redact_register(pw);
            ek_free_secret(pw);
        }
    }
}

ek_config_t *ek_config_new(void)
{
    ek_config_t *cfg = ek_xcalloc(1, sizeof(*cfg));
    for (const ek_opt_def_t *d = ek_options; d->section; d++)
        cfg->n_opts++;
    cfg->opts = ek_xcalloc(cfg->n_opts, sizeof(struct optval));
    for (size_t i = 0; i < cfg->n_opts; i++) {
        struct optval *ov = &cfg->opts[i];
        ov->def = &ek_options[i];
        json_object *v = NULL;
        ek_err_t *err = ek_config_parse_value(ov->def, ov->def->def, &v);
        if (err) {
            fprintf(stderr, "ekman: bad built-in default for [%s] %s: %s\n", ov->def->section,
                    ov->def->name, err->message);
            abort();
        }
        optval_assign(ov, v);
    }
    return cfg;
}

void ek_config_free(ek_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_opts; i++) {
        json_object_put(cfg->opts[i].value);
        strlist_clear(&cfg->opts[i].list);
        strmap_clear(&cfg->opts[i].map);
    }
    free(cfg->opts);
    free(cfg->path);
    strlist_clear(&cfg->warnings);
    free(cfg);
}

static struct optval *find_val(const ek_config_t *cfg, const char *section, const char *name)
{
    for (size_t i = 0; i < cfg->n_opts; i++)
        if (strcmp(cfg->opts[i].def->section, section) == 0 &&
            strcmp(cfg->opts[i].def->name, name) == 0)
            return &cfg->opts[i];
    return NULL;
}

/* ---- the INI reader ----------------------------------------------------------- */

struct pending {
    struct optval *ov;
    json_object *value;
    int line;
};

static void add_warning(ek_config_t *cfg, const char *fmt, ...) EK_PRINTF(2, 3);
static void add_warning(ek_config_t *cfg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *w = ek_xvasprintf(fmt, ap);
    va_end(ap);
    strlist_add(&cfg->warnings, w);
    free(w);
}

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-.", *s))
            return false;
    return true;
}

/* Checks that need more than one value's type: formats of URLs and keys,
 * options that only make sense together. */
static void check(ek_strbuf_t *errors, const char *file, const struct optval *ov, const char *what)
{
    if (ov->set)
        ek_strbuf_addf(errors, "%s:%d: [%s] %s: %s\n", file, ov->line, ov->def->section,
                       ov->def->name, what);
    else
        ek_strbuf_addf(errors, "%s: [%s] %s: %s\n", file, ov->def->section, ov->def->name, what);
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static ek_err_t *validate(const ek_config_t *cfg, const char *file)
{
    ek_strbuf_t errors = EK_STRBUF_INIT;
    const struct optval *ov;

    ov = find_val(cfg, "database", "connection");
    const char *db = json_object_get_string(ov->value);
    if (!has_prefix(db, "postgresql://") && !has_prefix(db, "postgres://"))
        check(&errors, file, ov, "must be a postgresql:// URI");
    ov = find_val(cfg, "messaging", "transport_url");
    const char *mq = json_object_get_string(ov->value);
    if (!has_prefix(mq, "amqp://") && !has_prefix(mq, "amqps://"))
        check(&errors, file, ov, "must be an amqp:// or amqps:// URL");
    ov = find_val(cfg, "DEFAULT", "encryption_key");
    const char *key = json_object_get_string(ov->value);
    if (*key) {
        unsigned char *raw = NULL;
        size_t len = 0;
        ek_err_t *err = ek_base64_decode(key, &raw, &len);
        if (err || len != 32)
            check(&errors, file, ov,
                  "must be the base64 encoding of exactly 32 bytes (generate one with "
                  "'openssl rand -base64 32')");
        ek_err_free(err);
        if (raw)
            OPENSSL_cleanse(raw, len);
        free(raw);
    }
    const struct optval *cert = find_val(cfg, "api", "tls_cert_file");
    const struct optval *tkey = find_val(cfg, "api", "tls_key_file");
    if (!*json_object_get_string(cert->value) != !*json_object_get_string(tkey->value))
        check(&errors, file, *json_object_get_string(cert->value) ? tkey : cert,
              "tls_cert_file and tls_key_file must be set together");

    if (!errors.len)
        return NULL;
    errors.buf[--errors.len] = '\0';
    ek_err_t *err = ek_err_new(EK_E_INVALID, "%s", errors.buf);
    ek_strbuf_release(&errors);
    return err;
}

ek_err_t *ek_config_load_string(ek_config_t *cfg, const char *text, const char *name)
{
    ek_strbuf_t errors = EK_STRBUF_INIT;
    struct pending *pend = NULL;
    size_t n_pend = 0;
    char *section = NULL;
    bool section_is_known = false;
    int lineno = 0;
    const char *p = text;

    while (*p) {
        size_t len = strcspn(p, "\n");
        char *raw = ek_xstrndup(p, len);
        p += len + (p[len] == '\n');
        lineno++;
        char *line = trim(raw);

        if (!*line || *line == '#' || *line == ';') {
            free(raw);
            continue;
        }
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (!close || close[1] != '\0') {
                ek_strbuf_addf(&errors, "%s:%d: malformed section header '%s' (expected [name])\n",
                               name, lineno, line);
            } else {
                *close = '\0';
                char *sec = trim(line + 1);
                if (!valid_name(sec)) {
                    ek_strbuf_addf(&errors, "%s:%d: invalid section name '%s'\n", name, lineno,
                                   sec);
                } else {
                    free(section);
                    section = ek_xstrdup(sec);
                    section_is_known = section_known(section);
                    if (!section_is_known)
                        add_warning(cfg, "%s:%d: unknown section [%s] is ignored", name, lineno,
                                    section);
                }
            }
            free(raw);
            continue;
        }
        /* key = value, or key: value; the first delimiter wins */
        size_t klen = strcspn(line, "=:");
        if (!line[klen]) {
            ek_strbuf_addf(&errors,
                           "%s:%d: malformed line '%s' (expected 'key = value', '[section]' or a "
                           "'#' comment)\n",
                           name, lineno, line);
            free(raw);
            continue;
        }
        line[klen] = '\0';
        char *key = trim(line);
        char *value = line + klen + 1;
        if (!valid_name(key)) {
            ek_strbuf_addf(&errors, "%s:%d: invalid option name '%s'\n", name, lineno, key);
        } else if (!section) {
            ek_strbuf_addf(&errors, "%s:%d: option '%s' appears before any [section] header\n",
                           name, lineno, key);
        } else if (section_is_known) {
            struct optval *ov = find_val(cfg, section, key);
            if (!ov) {
                add_warning(cfg, "%s:%d: unknown option '%s' in [%s] is ignored", name, lineno, key,
                            section);
            } else {
                json_object *v = NULL;
                ek_err_t *err = ek_config_parse_value(ov->def, value, &v);
                if (err) {
                    ek_strbuf_addf(&errors, "%s:%d: [%s] %s: %s\n", name, lineno, section, key,
                                   err->message);
                    ek_err_free(err);
                } else {
                    for (size_t i = 0; i < n_pend; i++) {
                        if (pend[i].ov == ov) {
                            add_warning(cfg, "%s:%d: [%s] %s is set again (line %d is overridden)",
                                        name, lineno, section, key, pend[i].line);
                        }
                    }
                    pend = ek_xrealloc(pend, (n_pend + 1) * sizeof(*pend));
                    pend[n_pend++] = (struct pending){ov, v, lineno};
                }
            }
        }
        free(raw);
    }
    free(section);

    ek_err_t *result = NULL;
    if (errors.len) {
        errors.buf[--errors.len] = '\0'; /* drop the last newline */
        result = ek_err_new(EK_E_INVALID, "%s", errors.buf);
        for (size_t i = 0; i < n_pend; i++)
            json_object_put(pend[i].value);
    } else {
        for (size_t i = 0; i < n_pend; i++) {
            optval_assign(pend[i].ov, pend[i].value);
            pend[i].ov->set = true;
            pend[i].ov->line = pend[i].line;
            register_secrets(pend[i].ov);
        }
        result = validate(cfg, name);
    }
    free(pend);
    ek_strbuf_release(&errors);
    return result;
}

ek_err_t *ek_config_load_file(ek_config_t *cfg, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return ek_err_errno(errno, "could not open configuration file \"%s\"", path);
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr) {
        ek_strbuf_release(&sb);
        return ek_err_errno(rerr, "could not read configuration file \"%s\"", path);
    }
    if (memchr(sb.buf, '\0', sb.len)) {
        ek_strbuf_release(&sb);
        return ek_err_new(EK_E_INVALID, "%s: not a text file (contains NUL bytes)", path);
    }
    ek_err_t *err = ek_config_load_string(cfg, sb.buf, path);
    ek_strbuf_release(&sb);
    if (!err) {
        free(cfg->path);
        cfg->path = ek_xstrdup(path);
    }
    return err;
}

size_t ek_config_warning_count(const ek_config_t *cfg)
{
    return cfg->warnings.n;
}

const char *ek_config_warning(const ek_config_t *cfg, size_t i)
{
    return i < cfg->warnings.n ? cfg->warnings.items[i] : NULL;
}

const char *ek_config_path(const ek_config_t *cfg)
{
    return cfg->path;
}

/* ---- getters ------------------------------------------------------------------ */

static struct optval *must_find(const ek_config_t *cfg, const char *section, const char *name,
                                ek_opt_type_t type)
{
    struct optval *ov = find_val(cfg, section, name);
    if (!ov || ov->def->type != type) {
        fprintf(stderr, "ekman: bug: option [%s] %s is not declared with that type\n", section,
                name);
        abort();
    }
    return ov;
}

const char *ek_config_get_string(const ek_config_t *cfg, const char *section, const char *name)
{
    return json_object_get_string(must_find(cfg, section, name, EK_OPT_STRING)->value);
}

int64_t ek_config_get_int(const ek_config_t *cfg, const char *section, const char *name)
{
    return json_object_get_int64(must_find(cfg, section, name, EK_OPT_INT)->value);
}

bool ek_config_get_bool(const ek_config_t *cfg, const char *section, const char *name)
{
    return json_object_get_boolean(must_find(cfg, section, name, EK_OPT_BOOL)->value);
}

const ek_strlist_t *ek_config_get_list(const ek_config_t *cfg, const char *section,
                                       const char *name)
{
    return &must_find(cfg, section, name, EK_OPT_LIST)->list;
}

const ek_strmap_t *ek_config_get_map(const ek_config_t *cfg, const char *section, const char *name)
{
    return &must_find(cfg, section, name, EK_OPT_MAP)->map;
}

bool ek_config_is_set(const ek_config_t *cfg, const char *section, const char *name)
{
    struct optval *ov = find_val(cfg, section, name);
    return ov && ov->set;
}

/* ---- dump --------------------------------------------------------------------- */

static json_object *masked_value(const struct optval *ov)
{
    if (ov->def->flags & EK_OPT_URL_SECRET) {
        char *u = ek_redact_url(json_object_get_string(ov->value));
        json_object *v = json_object_new_string(u);
        free(u);
        return v;
    }
    if (!(ov->def->flags & EK_OPT_SECRET))
        return json_object_get(ov->value);
    if (ov->def->type == EK_OPT_MAP) {
        json_object *m = json_object_new_object();
        for (size_t i = 0; i < ov->map.n; i++)
            json_object_object_add(m, ov->map.keys[i], json_object_new_string(EK_REDACTED));
        return m;
    }
    if (ov->def->type == EK_OPT_STRING && !*json_object_get_string(ov->value))
        return json_object_get(ov->value); /* an unset secret stays visibly empty */
    return json_object_new_string(EK_REDACTED);
}

json_object *ek_config_to_json(const ek_config_t *cfg, bool mask_secrets)
{
    json_object *root = json_object_new_object();
    for (size_t i = 0; i < cfg->n_opts; i++) {
        const struct optval *ov = &cfg->opts[i];
        json_object *sec = NULL;
        if (!json_object_object_get_ex(root, ov->def->section, &sec)) {
            sec = json_object_new_object();
            json_object_object_add(root, ov->def->section, sec);
        }
        json_object_object_add(sec, ov->def->name,
                               mask_secrets ? masked_value(ov) : json_object_get(ov->value));
    }
    return root;
}
