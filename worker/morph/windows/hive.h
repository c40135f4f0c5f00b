/* hive.h - a thin layer over hivex for the Windows morphing code: open a
 * hive file in memory, walk and create backslash-separated key paths, read
 * and write typed values (strings converted between UTF-8 and UTF-16LE), and
 * save in two phases so that two hives change together or not at all.
 *
 * Nothing reaches the file before ek_win_hive_stage() + ek_win_hive_install():
 * hivex keeps every edit in memory, ek_win_hive_stage() writes the edited hive
 * beside the original ("SYSTEM.ekman-new") and ek_win_hive_install() renames it
 * over the original. ek_win_hive_free() removes a staged file that was not
 * installed. Internal to worker/morph/windows. */
#ifndef EK_MORPH_WINDOWS_HIVE_H
#define EK_MORPH_WINDOWS_HIVE_H

#include <hivex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

typedef struct ek_win_hive {
    hive_h *h;
    char *path;   /* the hive file */
    char *name;   /* for messages: "SYSTEM" */
    char *staged; /* path of the staged copy, or NULL */
} ek_win_hive_t;

/* Opens path (read-only unless write). name is used in messages. *out is
 * owned by the caller (ek_win_hive_free). */
EK_ERR_CHECK ek_win_hive_open(const char *path, const char *name, bool write, ek_win_hive_t **out);
void ek_win_hive_free(ek_win_hive_t *hv);
EK_DEFINE_CLEANUP(ek_win_hive_t, ek_win_hive_free)

/* The node at path ("Microsoft\\Windows NT\\CurrentVersion", matched
 * case-insensitively) below from (0: the root); 0 when it does not exist. */
hive_node_h ek_win_hive_lookup(ek_win_hive_t *hv, hive_node_h from, const char *path);
/* Like lookup, creating the missing keys; *created tells whether the last
 * key was new (may be NULL). */
EK_ERR_CHECK ek_win_hive_mkpath(ek_win_hive_t *hv, hive_node_h from, const char *path,
                                hive_node_h *out, bool *created);

/* A string value (REG_SZ, REG_EXPAND_SZ) as UTF-8; *out is NULL when the
 * value is absent. Another type is an error. */
EK_ERR_CHECK ek_win_hive_get_string(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                    char **out);
/* A REG_DWORD; false when the value is absent or of another type. */
bool ek_win_hive_get_dword(ek_win_hive_t *hv, hive_node_h node, const char *name, uint32_t *out);

/* Setters: each replaces one value and leaves the node's others alone. */
EK_ERR_CHECK ek_win_hive_set_raw(ek_win_hive_t *hv, hive_node_h node, const char *name, hive_type t,
                                 const void *data, size_t len);
/* REG_SZ or REG_EXPAND_SZ (t), value UTF-8, stored UTF-16LE with its NUL. */
EK_ERR_CHECK ek_win_hive_set_string(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                    hive_type t, const char *value);
EK_ERR_CHECK ek_win_hive_set_dword(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                   uint32_t value);
/* REG_MULTI_SZ from a NULL-terminated list. */
EK_ERR_CHECK ek_win_hive_set_multi(ek_win_hive_t *hv, hive_node_h node, const char *name,
                                   const char *const *values);

/* Writes the edited hive to "<path>.ekman-new". */
EK_ERR_CHECK ek_win_hive_stage(ek_win_hive_t *hv);
/* Renames the staged copy over the hive. */
EK_ERR_CHECK ek_win_hive_install(ek_win_hive_t *hv);

/* UTF-8 -> UTF-16LE with a 2-byte NUL; *len counts it. An invalid UTF-8
 * sequence is an error (EK_E_INVALID). */
EK_ERR_CHECK ek_win_utf16le(const char *s, char **out, size_t *len);

#endif
