/* taskutil.h - helpers every provider's task functions use: reading what
 * earlier tasks left in the task info, finding a disk's volume, sizes for
 * people. */
#ifndef EK_PROVIDERS_TASKUTIL_H
#define EK_PROVIDERS_TASKUTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/strbuf.h" /* ek_human_size */
#include <stdint.h>
#include "common/error.h"
#include "worker/provider.h"

/* task_info.<key> of the given JSON type, or an error naming the task that
 * should have produced it. Borrowed. */
EK_ERR_CHECK ek_task_info_get(const ek_task_input_t *in, const char *key, json_type type,
                              json_object **out);
/* The entry of volumes_info whose "disk_id" is disk_id (borrowed), or NULL. */
json_object *ek_volumes_find(json_object *volumes_info, const char *disk_id);
/* The destination network that network_map gives a source network: a
 * string value, or an object's "id" or "name"; "bridge:NAME" sets *bridge
 * and returns NAME. NULL when unmapped. */
const char *ek_network_map_lookup(json_object *network_map, const char *source, bool *bridge);

#endif
