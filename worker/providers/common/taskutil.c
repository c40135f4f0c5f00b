/* taskutil.c - see taskutil.h. */
#include "worker/providers/common/taskutil.h"

#include <stdio.h>
#include <string.h>
#include "common/compiler.h"
#include "common/json.h"

static const char *producer(const char *key)
{
    static const char *const producers[][2] = {
        {"export_info", "GET_INSTANCE_INFO"},
        {"volumes_info", "DEPLOY_TRANSFER_DISKS"},
        {"source_resources", "DEPLOY_TRANSFER_SOURCE_RESOURCES"},
        {"source_resources_connection_info", "DEPLOY_TRANSFER_SOURCE_RESOURCES"},
        {"target_resources", "DEPLOY_TRANSFER_TARGET_RESOURCES"},
        {"target_resources_connection_info", "DEPLOY_TRANSFER_TARGET_RESOURCES"},
        {"instance_deployment_info", "DEPLOY_INSTANCE_RESOURCES"},
        {"os_morphing_resources", "DEPLOY_OS_MORPHING_RESOURCES"},
        {"osmorphing_info", "DEPLOY_OS_MORPHING_RESOURCES"},
        {"osmorphing_connection_info", "DEPLOY_OS_MORPHING_RESOURCES"},
    };
    for (size_t i = 0; i < EK_ARRAY_SIZE(producers); i++)
        if (strcmp(producers[i][0], key) == 0)
            return producers[i][1];
    return "an earlier task";
}

ek_err_t *ek_task_info_get(const ek_task_input_t *in, const char *key, json_type type,
                           json_object **out)
{
    json_object *v = NULL;
    if (!in->task_info || !json_object_object_get_ex(in->task_info, key, &v) || !v)
        return ek_err_new(EK_E_CONFLICT,
                          "instance '%s': the task info has no '%s' (%s must run first)",
                          in->instance, key, producer(key));
    if (!json_object_is_type(v, type))
        return ek_err_new(EK_E_INVALID, "instance '%s': task info '%s' is %s, not %s", in->instance,
                          key, ek_json_type_name(v),
                          type == json_type_array ? "an array" : "an object");
    *out = v;
    return NULL;
}

json_object *ek_volumes_find(json_object *vols, const char *disk_id)
{
    size_t n =
        vols && json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(vols, i), *id;
        if (json_object_is_type(v, json_type_object) &&
            json_object_object_get_ex(v, "disk_id", &id) &&
            json_object_is_type(id, json_type_string) &&
            strcmp(json_object_get_string(id), disk_id) == 0)
            return v;
    }
    return NULL;
}

const char *ek_network_map_lookup(json_object *map, const char *source, bool *bridge)
{
    json_object *v;
    *bridge = false;
    if (!map || !source || !json_object_is_type(map, json_type_object) ||
        !json_object_object_get_ex(map, source, &v) || !v)
        return NULL;
    const char *name = NULL;
    if (json_object_is_type(v, json_type_string)) {
        name = json_object_get_string(v);
    } else if (json_object_is_type(v, json_type_object)) {
        json_object *x;
        if ((json_object_object_get_ex(v, "id", &x) || json_object_object_get_ex(v, "name", &x)) &&
            json_object_is_type(x, json_type_string))
            name = json_object_get_string(x);
    }
    if (!name || !*name)
        return NULL;
    if (strncmp(name, "bridge:", 7) == 0 && name[7]) {
        *bridge = true;
        return name + 7;
    }
    return name;
}
