/* paging.h - paging and sorting of the API's lists, as Coriolis's API does it.
 *
 * A list route answers {"<key>": [...]}; the query parameters
 *   sort_key  a field of the items (repeatable: the first sorts first)
 *   sort_dir  asc or desc (repeatable, one per sort_key at most, or without
 *             sort_key one each for created_at and id; keys without one take
 *             the first sort_dir, else desc)
 *   marker    the id of the last item of the previous page: the page starts
 *             after it (in the sort order)
 *   limit     the most items to answer (a non-negative integer)
 * then reorder and cut the list. created_at then id are always appended as
 * tie-breakers (unless named), so the default order is the newest first.
 * Values compare by type: numbers as numbers, strings bytewise (timestamps
 * are ISO 8601 in one time zone), false < true; a missing or null value sorts
 * after every other one (as NULL in PostgreSQL). The sort is stable.
 *
 * Errors: a malformed limit or sort_dir, more sort_dir than sort_key, or a
 * sort_key that no item has (or whose values are objects/arrays) are 400
 * (EK_E_INVALID) naming the parameter; a marker that is no item's id is 404
 * (EK_E_NOTFOUND), as Coriolis's MarkerNotFound. */
#ifndef EK_CONDUCTOR_PAGING_H
#define EK_CONDUCTOR_PAGING_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/error.h"

/* The most sort_key (and sort_dir) parameters of one request. */
#define EK_PAGE_MAX_KEYS 8

typedef struct ek_page {
    const char *marker; /* NULL or "": from the first item */
    long long limit;    /* -1: no limit */
    /* the parameters as given (pointers into the request) */
    const char *req_keys[EK_PAGE_MAX_KEYS];
    const char *req_dirs[EK_PAGE_MAX_KEYS];
    int nreq_keys, nreq_dirs;
    bool too_many_keys, too_many_dirs;
    const char *limit_text;
    /* made by ek_page_finish: the requested keys, then the tie-breakers */
    const char *keys[EK_PAGE_MAX_KEYS + 2];
    bool desc[EK_PAGE_MAX_KEYS + 2];
    int nkeys;
} ek_page_t;

void ek_page_init(ek_page_t *p);
/* Takes one query parameter (key=value); parameters other than marker,
 * limit, sort_key and sort_dir are ignored. value may be NULL (a bare key). */
void ek_page_param(ek_page_t *p, const char *key, const char *value);
/* Checks what ek_page_param took and settles the sort order: 400 on a
 * malformed parameter. Call before ek_page_apply. */
EK_ERR_CHECK ek_page_finish(ek_page_t *p);
/* Sorts and cuts list (a JSON array of objects) into a new array in *out
 * (the items are shared, not copied). */
EK_ERR_CHECK ek_page_apply(const ek_page_t *p, json_object *list, json_object **out);

#endif
