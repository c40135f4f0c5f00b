/* opts.c - the options of [ovirt_migration_provider] as one transfer sees
 * them (destination_environment beats the configuration file), and the
 * lookups of the oVirt objects they name (by name or id), each failing
 * with an error that names the object and the option it came from. */
#include "worker/providers/ovirt/ovirt.h"

#include <string.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define SECTION "ovirt_migration_provider"

static json_object *env_value(const ek_endpoint_t *ep, const char *name)
{
    json_object *v;
    if (!ep || !ep->environment || !json_object_is_type(ep->environment, json_type_object) ||
        !json_object_object_get_ex(ep->environment, name, &v) || !v)
        return NULL;
    return v;
}

const char *ek_ovirt_opt_str(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name)
{
    json_object *v = env_value(ep, name);
    if (v && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return ek_config_get_string(ek_task_config(ctx), SECTION, name);
}

bool ek_ovirt_opt_bool(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name)
{
    json_object *v = env_value(ep, name);
    if (v && json_object_is_type(v, json_type_boolean))
        return json_object_get_boolean(v);
    return ek_config_get_bool(ek_task_config(ctx), SECTION, name);
}

int64_t ek_ovirt_opt_int(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name)
{
    json_object *v = env_value(ep, name);
    if (v && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return ek_config_get_int(ek_task_config(ctx), SECTION, name);
}

const char *ek_ovirt_opt_map(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name,
                             const char *key)
{
    json_object *v = env_value(ep, name), *x;
    if (v && json_object_is_type(v, json_type_object))
        return json_object_object_get_ex(v, key, &x) && json_object_is_type(x, json_type_string)
                   ? json_object_get_string(x)
                   : NULL;
    return ek_strmap_get(ek_config_get_map(ek_task_config(ctx), SECTION, name), key);
}

ek_err_t *ek_ovirt_env_check(const ek_endpoint_t *ep)
{
    json_object *env = ep->environment;
    if (!env || json_object_is_type(env, json_type_null))
        return NULL;
    if (!json_object_is_type(env, json_type_object))
        return ek_err_new(EK_E_INVALID, "the destination environment must be an object");
    json_object_object_foreach(env, key, val)
    {
        const ek_opt_def_t *d = ek_config_find_option(SECTION, key);
        if (!d)
            return ek_err_new(EK_E_INVALID,
                              "destination_environment.%s is not an option of the ovirt provider "
                              "(see [%s] in docs/provider-ovirt.md)",
                              key, SECTION);
        json_type want = d->type == EK_OPT_BOOL  ? json_type_boolean
                         : d->type == EK_OPT_MAP ? json_type_object
                         : d->type == EK_OPT_INT ? json_type_int
                                                 : json_type_string;
        if (!json_object_is_type(val, want))
            return ek_err_new(EK_E_INVALID, "destination_environment.%s must be %s, not %s", key,
                              want == json_type_boolean  ? "a boolean"
                              : want == json_type_object ? "an object of strings"
                              : want == json_type_int    ? "an integer"
                                                         : "a string",
                              ek_json_type_name(val));
    }
    return NULL;
}

const char *ek_ovirt_main_cluster(ek_task_ctx_t *ctx, const ek_endpoint_t *ep)
{
    return ek_ovirt_opt_str(ctx, ep, "default_cluster");
}

const char *ek_ovirt_minion_cluster(ek_task_ctx_t *ctx, const ek_endpoint_t *ep)
{
    const char *s = ek_ovirt_opt_str(ctx, ep, "default_migr_minion_cluster");
    return s && *s ? s : ek_ovirt_main_cluster(ctx, ep);
}

/* ---- lookups ---------------------------------------------------------------------------- */

static ek_err_t *lookup(ek_ovirt_t *c, const char *coll, const char *singular, const char *label,
                        const char *name, const char *option, json_object **out)
{
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID,
                          "no %s is configured: set %s in [%s] or in the "
                          "transfer's destination_environment",
                          label, option, SECTION);
    ek_err_t *err = ek_ovirt_find(c, coll, singular, name, out);
    if (err)
        return err;
    if (!*out)
        return ek_err_new(EK_E_NOTFOUND,
                          "%s '%s' (option %s) does not exist on oVirt endpoint '%s': name an "
                          "existing one",
                          label, name, option, ek_ovirt_name(c));
    return NULL;
}

ek_err_t *ek_ovirt_cluster(ek_ovirt_t *c, const char *name, const char *option, json_object **out)
{
    return lookup(c, "clusters", "cluster", "cluster", name, option, out);
}

ek_err_t *ek_ovirt_template(ek_ovirt_t *c, const char *name, const char *option, json_object **out)
{
    return lookup(c, "templates", "template", "template", name, option, out);
}

ek_err_t *ek_ovirt_storage_domain(ek_ovirt_t *c, const char *name, const char *option,
                                  json_object **out)
{
    ek_err_t *err =
        lookup(c, "storagedomains", "storage_domain", "storage domain", name, option, out);
    if (err)
        return err;
    const char *type = ek_ovirt_str(*out, "type");
    if (type && strcmp(type, "data") != 0 && strcmp(type, "managed_block_storage") != 0) {
        err = ek_err_new(EK_E_INVALID,
                         "storage domain '%s' (option %s) is of type '%s': disks need a 'data' or "
                         "'managed block storage' domain",
                         name, option, type);
        json_object_put(*out);
        *out = NULL;
    }
    return err;
}

/* The profiles of network `net_id`; the one named `profile` (or named like
 * the network, or the only one). */
static json_object *pick_profile(json_object *profiles, const char *net_id, const char *net_name,
                                 const char *profile, size_t *n_found)
{
    json_object *a = ek_ovirt_list(profiles, "vnic_profile"), *only = NULL, *named = NULL;
    *n_found = 0;
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *p = json_object_array_get_idx(a, i);
        const char *nid = ek_ovirt_ref(p, "network", "id"), *pn = ek_ovirt_str(p, "name");
        if (!nid || strcmp(nid, net_id) != 0)
            continue;
        (*n_found)++;
        only = p;
        if (pn && strcmp(pn, profile ? profile : net_name) == 0)
            named = p;
    }
    if (named)
        return named;
    return !profile && *n_found == 1 ? only : NULL;
}

/* The VM network named `name` in data center dc (any when dc is NULL). */
static ek_err_t *find_network(ek_ovirt_t *c, const char *name, const char *dc, json_object **out)
{
    json_object *nets;
    *out = NULL;
    ek_err_t *err = ek_ovirt_call(c, "GET", "/networks", NULL, "listing networks", &nets);
    if (err)
        return err;
    json_object *a = ek_ovirt_list(nets, "network");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i);
        const char *nn = ek_ovirt_str(n, "name"), *nd = ek_ovirt_ref(n, "data_center", "id");
        const char *id = ek_ovirt_str(n, "id");
        if ((nn && strcmp(nn, name) == 0) || (id && strcmp(id, name) == 0)) {
            if (dc && nd && strcmp(dc, nd) != 0)
                continue;
            *out = json_object_get(n);
            break;
        }
    }
    json_object_put(nets);
    return NULL;
}

ek_err_t *ek_ovirt_vnic_profile(ek_ovirt_t *c, json_object *cluster, json_object *mapped,
                                const char *source, json_object **out)
{
    const char *net = NULL, *profile = NULL;
    _cleanup_free_ char *buf = NULL;
    if (mapped && json_object_is_type(mapped, json_type_object)) {
        net = ek_ovirt_str(mapped, "network");
        if (!net)
            net = ek_ovirt_str(mapped, "name");
        profile = ek_ovirt_str(mapped, "vnic_profile");
    } else if (mapped && json_object_is_type(mapped, json_type_string)) {
        buf = ek_xstrdup(json_object_get_string(mapped));
        char *slash = strchr(buf, '/');
        if (slash) {
            *slash = 0;
            profile = slash + 1;
        }
        net = buf;
    }
    if (!net || !*net)
        return ek_err_new(EK_E_INVALID,
                          "network '%s' is not in the transfer's network_map: map it to an oVirt "
                          "VM network (\"NETWORK\" or \"NETWORK/VNIC_PROFILE\")",
                          source);
    json_object *n, *profiles;
    const char *dc = ek_ovirt_ref(cluster, "data_center", "id");
    ek_err_t *err = find_network(c, net, dc, &n);
    if (err)
        return err;
    if (!n)
        return ek_err_new(EK_E_NOTFOUND,
                          "network_map: '%s' -> VM network '%s', which does not exist in the data "
                          "center of cluster '%s' on oVirt endpoint '%s'",
                          source, net, ek_ovirt_str(cluster, "name"), ek_ovirt_name(c));
    /* only networks whose usages hold "vm" carry VM NICs (and have vNIC
     * profiles); management, display, migration, gluster... networks do not */
    json_object *usages = NULL, *list = NULL;
    if (json_object_object_get_ex(n, "usages", &usages) &&
        json_object_object_get_ex(usages, "usage", &list) &&
        json_object_is_type(list, json_type_array)) {
        bool vm = false;
        ek_strbuf_t u = EK_STRBUF_INIT;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(list, i));
            vm = vm || (s && strcmp(s, "vm") == 0);
            ek_strbuf_addf(&u, "%s%s", i ? ", " : "", s ? s : "?");
        }
        if (!vm) {
            err = ek_err_new(EK_E_INVALID,
                             "network_map: '%s' -> network '%s', which is not a VM network on "
                             "oVirt endpoint '%s' (its usages: %s): map it to a network that "
                             "carries VMs",
                             source, net, ek_ovirt_name(c), u.len ? u.buf : "none");
            ek_strbuf_release(&u);
            json_object_put(n);
            return err;
        }
        ek_strbuf_release(&u);
    }
    if ((err =
             ek_ovirt_call(c, "GET", "/vnicprofiles", NULL, "listing vNIC profiles", &profiles))) {
        json_object_put(n);
        return err;
    }
    size_t found;
    json_object *p = pick_profile(profiles, ek_ovirt_str(n, "id"), net, profile, &found);
    if (p)
        *out = json_object_get(p);
    else if (profile)
        err = ek_err_new(EK_E_NOTFOUND, "network_map: VM network '%s' has no vNIC profile '%s'",
                         net, profile);
    else
        err = ek_err_new(EK_E_INVALID,
                         "network_map: VM network '%s' has %zu vNIC profiles and none is named "
                         "like it: map '%s' to \"%s/PROFILE\"",
                         net, found, source, net);
    json_object_put(profiles);
    json_object_put(n);
    return err;
}

/* destination of the first entry of arr whose `key` equals value. */
static const char *mapping_lookup(json_object *arr, const char *key, const char *value)
{
    for (size_t i = 0; value && arr && json_object_is_type(arr, json_type_array) &&
                       i < json_object_array_length(arr);
         i++) {
        json_object *m = json_object_array_get_idx(arr, i);
        const char *k = ek_ovirt_str(m, key);
        if (k && strcmp(k, value) == 0)
            return ek_ovirt_str(m, "destination");
    }
    return NULL;
}

ek_err_t *ek_ovirt_disk_domain_name(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *disk,
                                    const char **out)
{
    json_object *sm = ep->storage_mappings, *a;
    const char *name = NULL;
    if (sm && json_object_is_type(sm, json_type_object)) {
        if (json_object_object_get_ex(sm, "disk_mappings", &a))
            name = mapping_lookup(a, "disk_id", ek_ovirt_str(disk, "id"));
        if (!name && json_object_object_get_ex(sm, "backend_mappings", &a))
            name = mapping_lookup(a, "source", ek_ovirt_str(disk, "storage_backend"));
        if (!name)
            name = ek_ovirt_str(sm, "default");
    }
    if (!name || !*name)
        name = ek_ovirt_opt_str(ctx, ep, "default_storage_domain");
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID,
                          "disk '%s': no storage domain: set storage_mappings (default, "
                          "backend_mappings or disk_mappings) or default_storage_domain",
                          ek_ovirt_str(disk, "id"));
    *out = name;
    return NULL;
}
