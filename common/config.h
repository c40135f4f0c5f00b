/* config.h - Ekman's configuration: one INI file, `ekman.conf`.
 *
 * The format is the seeds' (oslo.config style): `[section]` headers,
 * `key = value` (or `key: value`) lines, `#` and `;` comments on their own
 * lines. Every option has a declared type (options.c is the catalogue):
 *   string  quoted or not; `""` is the empty string
 *   int     decimal, with a range
 *   bool    true/false/True/False (also yes/no/on/off/1/0)
 *   list    a,b,c
 *   map     `linux: Bionic-passworded, windows: WS2016` (key:value,key2:value2)
 * A malformed line or a value of the wrong type is an error naming the file
 * and line; an unknown key or section is a warning. Getters return the value
 * from the file, or the option's default. */
#ifndef EK_CONFIG_H
#define EK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "common/error.h"

typedef enum ek_opt_type {
    EK_OPT_STRING,
    EK_OPT_INT,
    EK_OPT_BOOL,
    EK_OPT_LIST,
    EK_OPT_MAP,
} ek_opt_type_t;

enum {
    EK_OPT_SECRET = 1 << 0,     /* the whole value (or every map value) is a secret */
    EK_OPT_URL_SECRET = 1 << 1, /* a URL whose user-info password is a secret */
};

typedef struct ek_opt_def {
    const char *section;
    const char *name;
    ek_opt_type_t type;
    const char *def;     /* default, written as it would be in the file */
    unsigned flags;      /* EK_OPT_SECRET, EK_OPT_URL_SECRET */
    const char *choices; /* "a|b|c" for strings with a fixed set of values, or NULL */
    int64_t min, max;    /* range of an int */
    const char *help;
} ek_opt_def_t;

/* The catalogue of every option Ekman knows, ending with a {NULL} entry. */
extern const ek_opt_def_t ek_options[];

typedef struct ek_strlist {
    size_t n;
    char **items;
} ek_strlist_t;

typedef struct ek_strmap {
    size_t n;
    char **keys;
    char **values;
} ek_strmap_t;

const char *ek_strmap_get(const ek_strmap_t *map, const char *key);
bool ek_strlist_contains(const ek_strlist_t *list, const char *item);

typedef struct ek_config ek_config_t;

/* A configuration holding every option at its default. */
ek_config_t *ek_config_new(void);
void ek_config_free(ek_config_t *cfg);
/* Reads a file over the current values. On error the message lists every
 * problem, one "file:line: ..." per line; a line that failed to parse changes
 * nothing, but a configuration whose load failed must not be used. */
EK_ERR_CHECK ek_config_load_file(ek_config_t *cfg, const char *path);
/* The same for text already in memory; name is used in messages. */
EK_ERR_CHECK ek_config_load_string(ek_config_t *cfg, const char *text, const char *name);

size_t ek_config_warning_count(const ek_config_t *cfg);
const char *ek_config_warning(const ek_config_t *cfg, size_t i);
/* The file the configuration came from, or NULL for defaults only. */
const char *ek_config_path(const ek_config_t *cfg);

/* Typed getters. Asking for an option that is not in the catalogue, or with
 * the wrong type, is a programming error and aborts. */
const char *ek_config_get_string(const ek_config_t *cfg, const char *section, const char *name);
int64_t ek_config_get_int(const ek_config_t *cfg, const char *section, const char *name);
bool ek_config_get_bool(const ek_config_t *cfg, const char *section, const char *name);
const ek_strlist_t *ek_config_get_list(const ek_config_t *cfg, const char *section,
                                       const char *name);
const ek_strmap_t *ek_config_get_map(const ek_config_t *cfg, const char *section, const char *name);
/* True when the file set the option (as opposed to its default). */
bool ek_config_is_set(const ek_config_t *cfg, const char *section, const char *name);

/* The effective configuration as {section: {name: typed value}}; with
 * mask_secrets, secret values read "***" (URL passwords only, map values only). */
json_object *ek_config_to_json(const ek_config_t *cfg, bool mask_secrets);

/* Parses one value as the option would be read from a file (used for
 * per-transfer overrides too). Returns a JSON value (new reference). */
EK_ERR_CHECK ek_config_parse_value(const ek_opt_def_t *def, const char *text, json_object **out);
const ek_opt_def_t *ek_config_find_option(const char *section, const char *name);

#endif
