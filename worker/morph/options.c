/* options.c - parsing the JSON options of ekman-morph (options.h). */
#include "worker/morph/options.h"

#include <ctype.h>
#include <string.h>
#include "common/json.h"
#include "common/mem.h"

void ek_morph_opts_free(ek_morph_opts_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n_disks; i++)
        free(o->disks[i]);
    free(o->disks);
    for (size_t i = 0; i < o->n_nics; i++) {
        free(o->nics[i].mac);
        free(o->nics[i].model);
        free(o->nics[i].network_name);
    }
    free(o->nics);
    free(o->os_type);
    free(o->packages_dir);
    free(o->virtio_win_dir);
    free(o->user_script);
    free(o->state_dir);
    free(o);
}

static char *dup_or_null(const char *s)
{
    return s ? ek_xstrdup(s) : NULL;
}

static bool mac_valid(const char *s)
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':' && s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static ek_err_t *parse_disks(json_object *root, ek_morph_opts_t *o)
{
    json_object *arr = NULL;
    ek_err_t *err = ek_json_req_array(root, "options", "disks", &arr);
    if (err)
        return err;
    size_t n = json_object_array_length(arr);
    if (n == 0)
        return ek_err_new(EK_E_INVALID, "options.disks is empty: name at least one disk "
                                        "(\"/dev/vdb\" or \"serial:<serial>\")");
    o->disks = ek_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(v, json_type_string))
            return ek_err_new(EK_E_INVALID, "options.disks[%zu] must be a string, not %s", i,
                              ek_json_type_name(v));
        const char *s = json_object_get_string(v);
        bool ok = (s[0] == '/' && strlen(s) > 1) ||
                  (strncmp(s, "serial:", 7) == 0 && s[7] != '\0' && !strchr(s + 7, '/'));
        if (!ok)
            return ek_err_new(EK_E_INVALID,
                              "options.disks[%zu] must be a device path (\"/dev/vdb\") or "
                              "\"serial:<serial>\", not \"%s\"",
                              i, s);
        o->disks[i] = ek_xstrdup(s);
        o->n_disks++;
    }
    return NULL;
}

static ek_err_t *parse_nics(json_object *root, ek_morph_opts_t *o)
{
    json_object *arr = NULL;
    ek_err_t *err = ek_json_opt_array(root, "options", "nics", &arr);
    if (err || !arr)
        return err;
    size_t n = json_object_array_length(arr);
    o->nics = ek_xcalloc(n ? n : 1, sizeof(ek_morph_nic_t));
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        _cleanup_free_ char *path = ek_xasprintf("options.nics[%zu]", i);
        if (!json_object_is_type(v, json_type_object))
            return ek_err_new(EK_E_INVALID, "%s must be an object, not %s", path,
                              ek_json_type_name(v));
        const char *mac = NULL, *model = NULL, *net = NULL;
        if ((err = ek_json_opt_string(v, path, "mac", NULL, &mac)) ||
            (err = ek_json_opt_string(v, path, "model", NULL, &model)) ||
            (err = ek_json_opt_string(v, path, "network_name", NULL, &net)))
            return err;
        if (mac && *mac && !mac_valid(mac))
            return ek_err_new(EK_E_INVALID, "%s.mac must look like 52:54:00:12:34:56, not \"%s\"",
                              path, mac);
        ek_morph_nic_t *nic = &o->nics[o->n_nics++];
        if (mac && *mac) {
            nic->mac = ek_xstrdup(mac);
            for (char *p = nic->mac; *p; p++)
                *p = *p == '-' ? ':' : (char)tolower((unsigned char)*p);
        }
        nic->model = dup_or_null(model);
        nic->network_name = dup_or_null(net);
    }
    return NULL;
}

static ek_err_t *opt_abs_path(json_object *root, const char *key, char **out)
{
    const char *s = NULL;
    ek_err_t *err = ek_json_opt_string(root, "options", key, NULL, &s);
    if (err)
        return err;
    if (s && s[0] != '/')
        return ek_err_new(EK_E_INVALID, "options.%s must be an absolute path, not \"%s\"", key, s);
    *out = dup_or_null(s);
    return NULL;
}

ek_err_t *ek_morph_opts_parse(const char *text, size_t len, ek_morph_opts_t **out)
{
    _cleanup_json_ json_object *root = NULL;
    ek_err_t *err = ek_json_parse(text, len, &root);
    if (err)
        return ek_err_prefix(err, "options");
    if (!json_object_is_type(root, json_type_object))
        return ek_err_new(EK_E_INVALID, "options must be a JSON object, not %s",
                          ek_json_type_name(root));
    _cleanup_(ek_morph_opts_freep) ek_morph_opts_t *o = ek_xcalloc(1, sizeof(*o));
    if ((err = parse_disks(root, o)))
        return err;
    const char *os_type = NULL, *script = NULL;
    if ((err = ek_json_opt_string(root, "options", "os_type", NULL, &os_type)))
        return err;
    if (os_type && strcmp(os_type, "linux") != 0 && strcmp(os_type, "windows") != 0)
        return ek_err_new(EK_E_INVALID,
                          "options.os_type must be \"linux\", \"windows\" or null, not \"%s\"",
                          os_type);
    o->os_type = dup_or_null(os_type);
    if ((err = ek_json_opt_bool(root, "options", "set_dhcp", false, &o->set_dhcp)) ||
        (err = ek_json_opt_bool(root, "options", "retain_user_credentials", true,
                                &o->retain_user_credentials)) ||
        (err = parse_nics(root, o)) ||
        (err = opt_abs_path(root, "packages_dir", &o->packages_dir)) ||
        (err = opt_abs_path(root, "virtio_win_dir", &o->virtio_win_dir)) ||
        (err = opt_abs_path(root, "state_dir", &o->state_dir)) ||
        (err = ek_json_opt_string(root, "options", "user_script", NULL, &script)))
        return err;
    if (script && *script)
        o->user_script = ek_xstrdup(script);
    if (!o->state_dir)
        o->state_dir = ek_xstrdup("/run/ekman-morph");
    json_object_object_foreach(root, key, val)
    {
        (void)val;
        static const char *const known[] = {
            "disks",    "os_type",      "set_dhcp",       "retain_user_credentials",
            "nics",     "packages_dir", "virtio_win_dir", "user_script",
            "state_dir"};
        bool found = false;
        for (size_t i = 0; i < EK_ARRAY_SIZE(known); i++)
            found |= strcmp(known[i], key) == 0;
        if (!found)
            return ek_err_new(EK_E_INVALID, "options.%s is not a known option", key);
    }
    *out = EK_STEAL(o);
    return NULL;
}
