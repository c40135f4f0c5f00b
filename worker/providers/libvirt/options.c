/* options.c - the [libvirt_migration_provider] options as one destination
 * task sees them: the worker's configuration file, each option overridden
 * by the value of the same name in the transfer's destination environment
 * (docs/provider-libvirt.md has the table), checked so that an error names
 * the option and says what it should be. Also where a disk's volume goes
 * (storage_mappings, default_storage_pool). */
#include "worker/providers/libvirt/libvirt.h"

#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"

#define SECTION "libvirt_migration_provider"

static void strmap_release(ek_strmap_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static void strlist_release(ek_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

void ek_lv_opts_release(ek_lv_opts_t *o)
{
    if (!o)
        return;
    char **strs[] = {&o->default_storage_pool,
                     &o->worker_network,
                     &o->data_transfer_mechanism,
                     &o->console_log_dir,
                     &o->vnc_listen_address,
                     &o->windows_virtio_iso_url,
                     &o->windows_virtio_iso_sha256,
                     &o->cpu_mode,
                     &o->iface_addr_src,
                     &o->ssh_key_path,
                     &o->sqlite_database_file,
                     &o->domain_type};
    for (size_t i = 0; i < EK_ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    strmap_release(&o->image_map);
    strlist_release(&o->cpu_features);
}

/* The override of option `name` in env as a JSON value of the option's
 * type (new reference), or NULL when env does not set it. */
static ek_err_t * override(json_object *env, const char *name, json_object **out)
{
    json_object *v;
    *out = NULL;
    if (!env || !json_object_object_get_ex(env, name, &v) || !v)
        return NULL;
    const ek_opt_def_t *def = ek_config_find_option(SECTION, name);
    if (!def)
        return ek_err_new(EK_E_INTERNAL, "option %s is not in the catalogue", name);
    json_type want;
    switch (def->type) {
    case EK_OPT_STRING:
        want = json_type_string;
        break;
    case EK_OPT_INT:
        want = json_type_int;
        break;
    case EK_OPT_BOOL:
        want = json_type_boolean;
        break;
    case EK_OPT_LIST:
        want = json_type_array;
        break;
    default:
        want = json_type_object;
        break;
    }
    if (json_object_is_type(v, want)) {
        *out = json_object_get(v);
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string))
        return ek_err_new(EK_E_INVALID, "destination environment: option '%s' must be a %s, not %s",
                          name, json_type_to_name(want), ek_json_type_name(v));
    ek_err_t *err = ek_config_parse_value(def, json_object_get_string(v), out);
    return err ? ek_err_prefix(err, "destination environment: option '%s'", name) : NULL;
}

static ek_err_t *get_string(const ek_config_t *cfg, json_object *env, const char *name, char **out)
{
    json_object *v;
    ek_err_t *err = override(env, name, &v);
    if (err)
        return err;
    const char *s = v ? json_object_get_string(v) : ek_config_get_string(cfg, SECTION, name);
    *out = ek_xstrdup(s ? s : "");
    /* "" in the file is an empty string; the seed writes `option =` */
    json_object_put(v);
    return NULL;
}

static ek_err_t *get_int(const ek_config_t *cfg, json_object *env, const char *name, int64_t *out)
{
    json_object *v;
    ek_err_t *err = override(env, name, &v);
    if (err)
        return err;
    *out = v ? json_object_get_int64(v) : ek_config_get_int(cfg, SECTION, name);
    json_object_put(v);
    const ek_opt_def_t *def = ek_config_find_option(SECTION, name);
    if (def && def->min < def->max && (*out < def->min || *out > def->max))
        return ek_err_new(EK_E_INVALID, "option '%s' = %lld is out of range (%lld to %lld)", name,
                          (long long)*out, (long long)def->min, (long long)def->max);
    return NULL;
}

static ek_err_t *get_bool(const ek_config_t *cfg, json_object *env, const char *name, bool *out)
{
    json_object *v;
    ek_err_t *err = override(env, name, &v);
    if (err)
        return err;
    *out = v ? json_object_get_boolean(v) : ek_config_get_bool(cfg, SECTION, name);
    json_object_put(v);
    return NULL;
}

static ek_err_t *get_list(const ek_config_t *cfg, json_object *env, const char *name,
                          ek_strlist_t *out)
{
    json_object *v;
    ek_err_t *err = override(env, name, &v);
    if (err)
        return err;
    memset(out, 0, sizeof(*out));
    if (v) {
        size_t n = json_object_array_length(v);
        out->items = ek_xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            json_object *x = json_object_array_get_idx(v, i);
            if (!json_object_is_type(x, json_type_string)) {
                json_object_put(v);
                return ek_err_new(EK_E_INVALID, "option '%s': item %zu is not a string", name,
                                  i + 1);
            }
            out->items[out->n++] = ek_xstrdup(json_object_get_string(x));
        }
        json_object_put(v);
        return NULL;
    }
    const ek_strlist_t *l = cfg ? ek_config_get_list(cfg, SECTION, name) : NULL;
    size_t n = l ? l->n : 0;
    out->items = ek_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out->items[out->n++] = ek_xstrdup(l->items[i]);
    return NULL;
}

static ek_err_t *get_map(const ek_config_t *cfg, json_object *env, const char *name,
                         ek_strmap_t *out)
{
    json_object *v;
    ek_err_t *err = override(env, name, &v);
    if (err)
        return err;
    memset(out, 0, sizeof(*out));
    if (v) {
        size_t n = (size_t)json_object_object_length(v);
        out->keys = ek_xcalloc(n ? n : 1, sizeof(char *));
        out->values = ek_xcalloc(n ? n : 1, sizeof(char *));
        json_object_object_foreach(v, k, x)
        {
            if (!json_object_is_type(x, json_type_string)) {
                json_object_put(v);
                return ek_err_new(EK_E_INVALID, "option '%s': the value of '%s' is not a string",
                                  name, k);
            }
            out->keys[out->n] = ek_xstrdup(k);
            out->values[out->n++] = ek_xstrdup(json_object_get_string(x));
        }
        json_object_put(v);
        return NULL;
    }
    const ek_strmap_t *m = cfg ? ek_config_get_map(cfg, SECTION, name) : NULL;
    size_t n = m ? m->n : 0;
    out->keys = ek_xcalloc(n ? n : 1, sizeof(char *));
    out->values = ek_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        out->keys[out->n] = ek_xstrdup(m->keys[i]);
        out->values[out->n++] = ek_xstrdup(m->values[i]);
    }
    return NULL;
}

/* Every key of env must be an option of the section (the API checks the
 * schema too; a task may come from elsewhere). */
static ek_err_t *check_env_keys(json_object *env)
{
    if (!env || json_object_is_type(env, json_type_null))
        return NULL;
    if (!json_object_is_type(env, json_type_object))
        return ek_err_new(EK_E_INVALID, "the destination environment must be an object");
    /* Options that name the worker's files or grant the operator's
     * credentials: the operator's alone (ekman.conf), never a tenant's. */
    static const char *const operator_only[] = {"ssh_key_path", "operator_key_uris",
                                                "osmorphing_packages_dir", "sqlite_database_file",
                                                NULL};
    json_object_object_foreach(env, key, val)
    {
        (void)val;
        for (size_t i = 0; operator_only[i]; i++)
            if (strcmp(key, operator_only[i]) == 0)
                return ek_err_new(EK_E_FORBIDDEN,
                                  "destination environment: '%s' can only be set by the "
                                  "operator, in the workers' ekman.conf ([" SECTION "]): remove "
                                  "it from the environment",
                                  key);
        if (!ek_config_find_option(SECTION, key))
            return ek_err_new(EK_E_INVALID,
                              "destination environment: '%s' is not an option of "
                              "[" SECTION "] (docs/provider-libvirt.md lists them)",
                              key);
    }
    return NULL;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* Names that go into XML attributes or file names unchecked elsewhere. */
static bool plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || strchr("'\"<>&", *s))
            return false;
    return true;
}

static ek_err_t *check(ek_lv_opts_t *o)
{
    static const char *const modes[] = {"", "host-passthrough", "host-model", "maximum", NULL};
    static const char *const dtypes[] = {"auto", "kvm", "qemu", NULL};
    static const char *const srcs[] = {"agent", "lease", "arp", NULL};
    static const char *const mechs[] = {"https", "ssh", NULL};
    if (!one_of(o->cpu_mode, modes))
        return ek_err_new(EK_E_INVALID,
                          "option 'cpu_mode' = '%s': use host-passthrough, host-model, maximum "
                          "or leave it empty (libvirt's default)%s",
                          o->cpu_mode,
                          strcmp(o->cpu_mode, "custom") == 0
                              ? "; 'custom' needs a CPU model, which no option names"
                              : "");
    if (!one_of(o->domain_type, dtypes))
        return ek_err_new(EK_E_INVALID, "option 'domain_type' = '%s': use auto, kvm or qemu",
                          o->domain_type);
    if (!one_of(o->iface_addr_src, srcs))
        return ek_err_new(EK_E_INVALID,
                          "option 'migr_worker_iface_addr_src' = '%s': use agent, lease or arp",
                          o->iface_addr_src);
    if (!one_of(o->data_transfer_mechanism, mechs))
        return ek_err_new(EK_E_INVALID, "option 'data_transfer_mechanism' = '%s': use https or ssh",
                          o->data_transfer_mechanism);
    if (o->console_log && (o->console_log_dir[0] != '/' || !plain(o->console_log_dir)))
        return ek_err_new(EK_E_INVALID,
                          "option 'vm_console_log_dir' = '%s' must be an absolute directory "
                          "on the libvirt host (enable_vm_console_log is on)",
                          o->console_log_dir);
    if (o->vnc && (!o->vnc_listen_address[0] || !plain(o->vnc_listen_address)))
        return ek_err_new(EK_E_INVALID,
                          "option 'vnc_listen_address' = '%s' is not an address "
                          "(enable_vm_vnc_console is on)",
                          o->vnc_listen_address);
    /* features are added to a CPU model: libvirt's default CPU (no <cpu>
     * mode) has none to add them to, and refuses a feature list alone */
    if (!o->cpu_mode[0] && o->cpu_features.n)
        return ek_err_new(EK_E_INVALID,
                          "option 'cpu_features' (%s%s) needs a CPU mode to add the features to, "
                          "and option 'cpu_mode' is empty (libvirt's default CPU): set cpu_mode "
                          "to host-model, host-passthrough or maximum, or empty cpu_features",
                          o->cpu_features.items[0], o->cpu_features.n > 1 ? ", ..." : "");
    for (size_t i = 0; i < o->cpu_features.n; i++) {
        const char *f = o->cpu_features.items[i];
        if (!*f || strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != strlen(f))
            return ek_err_new(EK_E_INVALID,
                              "option 'cpu_features': '%s' is not a CPU feature name (e.g. "
                              "x2apic)",
                              f);
    }
    for (size_t i = 0; i < o->image_map.n; i++) {
        const char *k = o->image_map.keys[i], *v = o->image_map.values[i];
        if (strcmp(k, "linux") != 0 && strcmp(k, "windows") != 0)
            return ek_err_new(EK_E_INVALID,
                              "option 'migr_image_map': key '%s' is not an OS type (linux, "
                              "windows)",
                              k);
        const char *slash = strchr(v, '/');
        bool path = v[0] == '/' && v[1] && !strstr(v, "/../") && !strstr(v, "/./") &&
                    v[strlen(v) - 1] != '/' && plain(v);
        if (!*v || (!path && slash && (slash == v || !slash[1] || strchr(slash + 1, '/'))))
            return ek_err_new(EK_E_INVALID,
                              "option 'migr_image_map': '%s: %s' must name a volume "
                              "(\"volume\" in default_storage_pool, \"pool/volume\", or the "
                              "absolute path of a volume of a 'dir' pool)",
                              k, v);
    }
    if (o->worker_network[0] && !plain(o->worker_network))
        return ek_err_new(EK_E_INVALID, "option 'migr_worker_network' = '%s' is not a name",
                          o->worker_network);
    return NULL;
}

ek_err_t *ek_lv_opts_load(const ek_config_t *cfg, json_object *env, ek_lv_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    ek_config_t *own = NULL;
    if (!cfg)
        cfg = own = ek_config_new();
    ek_err_t *err;
    if ((err = check_env_keys(env)) ||
        (err = get_string(cfg, env, "default_storage_pool", &o->default_storage_pool)) ||
        (err = get_map(cfg, env, "migr_image_map", &o->image_map)) ||
        (err = get_int(cfg, env, "migr_worker_volume_size", &o->worker_volume_size_gb)) ||
        (err = get_int(cfg, env, "migr_worker_memory", &o->worker_memory_mb)) ||
        (err = get_int(cfg, env, "migr_worker_vcpus", &o->worker_vcpus)) ||
        (err = get_string(cfg, env, "migr_worker_network", &o->worker_network)) ||
        (err = get_string(cfg, env, "data_transfer_mechanism", &o->data_transfer_mechanism)) ||
        (err = get_bool(cfg, env, "enable_vm_console_log", &o->console_log)) ||
        (err = get_string(cfg, env, "vm_console_log_dir", &o->console_log_dir)) ||
        (err = get_bool(cfg, env, "enable_vm_vnc_console", &o->vnc)) ||
        (err = get_string(cfg, env, "vnc_listen_address", &o->vnc_listen_address)) ||
        (err = get_string(cfg, env, "windows_virtio_iso_url", &o->windows_virtio_iso_url)) ||
        (err = get_string(cfg, env, "windows_virtio_iso_sha256", &o->windows_virtio_iso_sha256)) ||
        (err = get_bool(cfg, env, "set_dhcp", &o->set_dhcp)) ||
        (err = get_bool(cfg, env, "use_config_drive", &o->use_config_drive)) ||
        (err = get_bool(cfg, env, "retain_user_credentials", &o->retain_user_credentials)) ||
        (err = get_string(cfg, env, "cpu_mode", &o->cpu_mode)) ||
        (err = get_bool(cfg, env, "cpu_migratable", &o->cpu_migratable)) ||
        (err = get_list(cfg, env, "cpu_features", &o->cpu_features)) ||
        (err = get_string(cfg, env, "migr_worker_iface_addr_src", &o->iface_addr_src)) ||
        (err = get_string(cfg, env, "ssh_key_path", &o->ssh_key_path)) ||
        (err = get_string(cfg, env, "sqlite_database_file", &o->sqlite_database_file)) ||
        (err = get_bool(cfg, env, "add_tpm_device", &o->add_tpm)) ||
        (err = get_string(cfg, env, "domain_type", &o->domain_type)) ||
        (err = get_int(cfg, env, "migr_worker_boot_timeout", &o->worker_boot_timeout)) ||
        (err = check(o)))
        ek_lv_opts_release(o);
    ek_config_free(own);
    return err;
}

char *ek_lv_opts_warning(const ek_lv_opts_t *o)
{
    for (size_t i = 0; o->cpu_migratable && i < o->cpu_features.n; i++)
        if (strcmp(o->cpu_features.items[i], "invtsc") == 0)
            return ek_xstrdup(
                "cpu_features requires invtsc while cpu_migratable is on: QEMU blocks the live "
                "migration of a domain with invtsc, so the deployed VM will not be migratable; "
                "drop invtsc from cpu_features to keep it migratable, or set cpu_migratable off "
                "to say it need not be");
    return NULL;
}

ek_err_t *ek_lv_opts_image(virConnectPtr c, const ek_lv_opts_t *o, const char *os_type, char **pool,
                           char **volume)
{
    const char *v = ek_strmap_get(&o->image_map, os_type ? os_type : "linux");
    if (v && v[0] == '/') {
        virStorageVolPtr vol = virStorageVolLookupByPath(c, v);
        virStoragePoolPtr p = vol ? virStoragePoolLookupByVolume(vol) : NULL;
        const char *pn = p ? virStoragePoolGetName(p) : NULL,
                   *vn = vol ? virStorageVolGetName(vol) : NULL;
        ek_err_t *err = NULL;
        if (pn && vn) {
            *pool = ek_xstrdup(pn);
            *volume = ek_xstrdup(vn);
        } else {
            err = ek_err_new(EK_E_NOTFOUND,
                             "worker image '%s' (migr_image_map, %s) is not a volume of any "
                             "libvirt storage pool on the destination: put it in the target "
                             "directory of a 'dir' pool and refresh it (virsh pool-refresh "
                             "POOL), or name it as \"POOL/VOLUME\"",
                             v, os_type ? os_type : "linux");
        }
        if (p)
            virStoragePoolFree(p);
        if (vol)
            virStorageVolFree(vol);
        return err;
    }
    if (!v || !*v)
        return ek_err_new(EK_E_INVALID,
                          "no worker image for %s instances: set migr_image_map (e.g. "
                          "\"%s: ekman-worker.qcow2\" or \"%s: POOL/VOLUME\")",
                          os_type ? os_type : "linux", os_type ? os_type : "linux",
                          os_type ? os_type : "linux");
    const char *slash = strchr(v, '/');
    if (slash) {
        *pool = ek_xstrndup(v, (size_t)(slash - v));
        *volume = ek_xstrdup(slash + 1);
        return NULL;
    }
    if (!o->default_storage_pool[0])
        return ek_err_new(EK_E_INVALID,
                          "migr_image_map names volume '%s' without a pool and "
                          "default_storage_pool is empty: write \"%s: POOL/%s\" or set "
                          "default_storage_pool",
                          v, os_type ? os_type : "linux", v);
    *pool = ek_xstrdup(o->default_storage_pool);
    *volume = ek_xstrdup(v);
    return NULL;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* The "destination" of the entry of array arr whose `key` is value. */
static const char *mapping_lookup(json_object *arr, const char *key, const char *value)
{
    if (!value || !arr || !json_object_is_type(arr, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *m = json_object_array_get_idx(arr, i);
        const char *k = str_of(m, key);
        if (k && strcmp(k, value) == 0)
            return str_of(m, "destination");
    }
    return NULL;
}

ek_err_t *ek_lv_disk_pool(const ek_lv_opts_t *o, json_object *sm, json_object *disk,
                          const char **out)
{
    const char *name = NULL, *id = str_of(disk, "id");
    if (sm && json_object_is_type(sm, json_type_object)) {
        json_object *a;
        if (json_object_object_get_ex(sm, "disk_mappings", &a))
            name = mapping_lookup(a, "disk_id", id);
        if (!name && json_object_object_get_ex(sm, "backend_mappings", &a)) {
            name = mapping_lookup(a, "source", str_of(disk, "storage_backend"));
            if (!name)
                name = mapping_lookup(a, "source", str_of(disk, "pool"));
        }
        if (!name)
            name = str_of(sm, "default");
    }
    if (!name || !*name)
        name = o->default_storage_pool;
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID,
                          "disk '%s': no storage pool: set storage_mappings (default, "
                          "backend_mappings or disk_mappings) or default_storage_pool",
                          id ? id : "?");
    *out = name;
    return NULL;
}
