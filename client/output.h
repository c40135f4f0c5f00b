/* output.h - what `ekman` prints: aligned tables for people, JSON for
 * scripts. The table and cell functions are pure (tests/unit/test_client_output.c). */
#ifndef EK_CLI_OUTPUT_H
#define EK_CLI_OUTPUT_H

#include <json-c/json.h>
#include <stddef.h>
#include "common/strbuf.h"

typedef struct ek_cli_table ek_cli_table_t;

/* A table of ncols columns under the given headers (copied). */
ek_cli_table_t *ek_cli_table_new(size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (copied; NULL is an empty cell). */
void ek_cli_table_add(ek_cli_table_t *t, const char *const *cells);
size_t ek_cli_table_rows(const ek_cli_table_t *t);
/* Columns padded to their widest cell (in characters, UTF-8 aware), two
 * spaces apart, no trailing blanks; new lines and tabs in a cell become spaces. */
void ek_cli_table_render(const ek_cli_table_t *t, ek_strbuf_t *out);
void ek_cli_table_free(ek_cli_table_t *t);

/* The display width of a UTF-8 string (code points). */
size_t ek_cli_text_width(const char *s);

/* A JSON value as a cell: "" for null or absent, timestamps in local time
 * ("2026-11-22 08:52:28"), other strings as they are, arrays
 * of scalars joined with ", ", objects and other arrays as compact JSON.
 * The caller frees the result. */
char *ek_cli_cell(json_object *v);
/* The value at a dotted path ("token.project.id"), or NULL. */
json_object *ek_cli_json_path(json_object *obj, const char *path);

/* A column of a list: its header and the dotted path of its value. */
typedef struct ek_cli_col {
    const char *header;
    const char *path;
} ek_cli_col_t;

/* Renders an array of objects as a table of the columns (ending with {NULL}). */
void ek_cli_render_list(json_object *array, const ek_cli_col_t *cols, ek_strbuf_t *out);
/* Renders an object as a two-column Field/Value table: the fields listed
 * (NULL: all of them, in order). */
void ek_cli_render_object(json_object *obj, const char *const *fields, ek_strbuf_t *out);

#endif
