/* providers.c - the provider table and the schemas of their inputs. */
#include "proto/providers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"

#define ENDPOINT_CAPS                                                                              \
    (EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |                      \
     EK_CAP_ENDPOINT_STORAGE)

const ek_provider_info_t ek_providers[] = {
    {"local", "Libvirt domain XML files and their images in a directory (source and destination)",
     ENDPOINT_CAPS | EK_CAP_TRANSFER_EXPORT | EK_CAP_TRANSFER_IMPORT |
         EK_CAP_VALIDATE_TRANSFER_EXPORT | EK_CAP_VALIDATE_TRANSFER_IMPORT |
         EK_CAP_SOURCE_ENDPOINT_OPTIONS | EK_CAP_DESTINATION_ENDPOINT_OPTIONS},
    {"libvirt", "KVM hosts managed by libvirt, reached over SSH (source and destination)",
     ENDPOINT_CAPS | EK_CAP_TRANSFER_EXPORT | EK_CAP_TRANSFER_IMPORT | EK_CAP_OS_MORPHING |
         EK_CAP_VALIDATE_TRANSFER_EXPORT | EK_CAP_VALIDATE_TRANSFER_IMPORT |
         EK_CAP_SOURCE_ENDPOINT_OPTIONS | EK_CAP_DESTINATION_ENDPOINT_OPTIONS},
    {"ovirt", "oVirt / OLVM / RHV through the REST API v4 (destination)",
     ENDPOINT_CAPS | EK_CAP_TRANSFER_IMPORT | EK_CAP_OS_MORPHING | EK_CAP_VALIDATE_TRANSFER_IMPORT |
         EK_CAP_DESTINATION_ENDPOINT_OPTIONS},
    {"ova", "OVA archives and unpacked OVF descriptors in a directory (source)",
     EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |
         EK_CAP_TRANSFER_EXPORT | EK_CAP_VALIDATE_TRANSFER_EXPORT},
    {0},
};

static const char *const connection_schemas[][2] = {
    {"local", "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"path\"],"
              "\"properties\":{\"path\":{\"type\":\"string\",\"minLength\":1,"
              "\"description\":\"Directory of domain XML files (source) or of replicas "
              "(destination)\"}}}"},
    {"libvirt",
     "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"host\",\"username\"],"
     "\"properties\":{"
     "\"host\":{\"type\":\"string\",\"minLength\":1},"
     "\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535},"
     "\"username\":{\"type\":\"string\",\"minLength\":1},"
     "\"private_key\":{\"type\":\"string\",\"minLength\":1,"
     "\"description\":\"The SSH private key, base64-encoded (base64 -w0 KEYFILE)\"},"
     "\"known_hosts\":{\"type\":\"string\",\"description\":\"known_hosts line(s) of the host\"},"
     "\"host_key_fingerprint\":{\"type\":\"string\",\"description\":\"SHA256:... of the host "
     "key\"},"
     "\"uri_path\":{\"type\":\"string\",\"description\":\"libvirt URI path, default system\"}}}"},
    {"ovirt", "{\"type\":\"object\",\"additionalProperties\":false,"
              "\"required\":[\"url\",\"username\",\"password\"],\"properties\":{"
              "\"url\":{\"type\":\"string\",\"minLength\":1},"
              "\"username\":{\"type\":\"string\",\"minLength\":1},"
              "\"password\":{\"type\":\"string\"},"
              "\"allow_untrusted\":{\"type\":\"boolean\"}}}"},
    {"ova", "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"path\"],"
            "\"properties\":{\"path\":{\"type\":\"string\",\"minLength\":1,"
            "\"description\":\"Directory of .ova files or unpacked .ovf descriptors, under one "
            "of the [ova] allowed_roots of the workers\"}}}"},
};

/* The properties of a source environment, per provider (the others take
 * none). libvirt: worker/providers/libvirt/source.c, ek_lv_source_env. */
static const char *const source_environment_properties[][2] = {
    {"libvirt",
     "{\"changed_block_tracking\":{\"type\":\"boolean\",\"default\":true,"
     "\"description\":\"Running domains: keep a libvirt checkpoint (QEMU dirty bitmaps in "
     "the disk images) after each sync so that the next one reads only the blocks that "
     "changed (true, the default). false: no checkpoint is made and those of earlier syncs "
     "are deleted; every sync reads each disk in full and sends only the blocks that differ "
     "from the replica. Shut-off domains are always read in full.\"}}"},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static json_object *schemas[4][3]; /* [provider][kind] */

static int provider_index(const char *name)
{
    for (int i = 0; ek_providers[i].name; i++)
        if (strcmp(ek_providers[i].name, name) == 0)
            return i;
    return -1;
}

const ek_provider_info_t *ek_provider_find(const char *name)
{
    int i = name ? provider_index(name) : -1;
    return i < 0 ? NULL : &ek_providers[i];
}

/* A destination environment may override any option of the provider's
 * configuration section (for the local provider: none). */
static json_object *environment_schema(const char *provider, bool destination)
{
    json_object *schema = json_object_new_object();
    json_object *props = json_object_new_object();
    json_object_object_add(schema, "type", json_object_new_string("object"));
    json_object_object_add(schema, "additionalProperties", json_object_new_boolean(false));
    char section[96];
    snprintf(section, sizeof(section), "%s_migration_provider", provider);
    for (const ek_opt_def_t *d = ek_options; destination && d->section; d++) {
        if (strcmp(d->section, section) != 0)
            continue;
        json_object *p = json_object_new_object();
        switch (d->type) {
        case EK_OPT_STRING:
            json_object_object_add(p, "type", json_object_new_string("string"));
            if (d->choices) {
                json_object *e = json_object_new_array();
                for (const char *c = d->choices; *c;) {
                    size_t n = strcspn(c, "|");
                    char *v = ek_xstrndup(c, n);
                    json_object_array_add(e, json_object_new_string(v));
                    free(v);
                    c += n + (c[n] == '|');
                }
                json_object_object_add(p, "enum", e);
            }
            break;
        case EK_OPT_INT:
            json_object_object_add(p, "type", json_object_new_string("integer"));
            if (d->min < d->max) {
                json_object_object_add(p, "minimum", json_object_new_int64(d->min));
                json_object_object_add(p, "maximum", json_object_new_int64(d->max));
            }
            break;
        case EK_OPT_BOOL:
            json_object_object_add(p, "type", json_object_new_string("boolean"));
            break;
        case EK_OPT_LIST: {
            json_object_object_add(p, "type", json_object_new_string("array"));
            json_object *items = json_object_new_object();
            json_object_object_add(items, "type", json_object_new_string("string"));
            json_object_object_add(p, "items", items);
            break;
        }
        case EK_OPT_MAP: {
            json_object_object_add(p, "type", json_object_new_string("object"));
            json_object *addl = json_object_new_object();
            json_object_object_add(addl, "type", json_object_new_string("string"));
            json_object_object_add(p, "additionalProperties", addl);
            break;
        }
        }
        json_object_object_add(p, "description", json_object_new_string(d->help));
        json_object_object_add(props, d->name, p);
    }
    for (size_t i = 0; !destination && i < EK_ARRAY_SIZE(source_environment_properties); i++) {
        if (strcmp(source_environment_properties[i][0], provider) != 0)
            continue;
        const char *text = source_environment_properties[i][1];
        json_object *extra = NULL;
        ek_err_t *err = ek_json_parse(text, strlen(text), &extra);
        if (err) {
            fprintf(stderr, "ekman: bug: bad source environment schema for %s: %s\n", provider,
                    err->message);
            abort();
        }
        json_object_object_foreach(extra, key, val)
        {
            json_object_object_add(props, key, json_object_get(val));
        }
        json_object_put(extra);
    }
    json_object_object_add(schema, "properties", props);
    return schema;
}

static void build(void)
{
    for (int i = 0; ek_providers[i].name; i++) {
        for (size_t j = 0; j < EK_ARRAY_SIZE(connection_schemas); j++) {
            if (strcmp(connection_schemas[j][0], ek_providers[i].name) != 0)
                continue;
            const char *text = connection_schemas[j][1];
            ek_err_t *err = ek_json_parse(text, strlen(text), &schemas[i][EK_SCHEMA_CONNECTION]);
            if (err) {
                fprintf(stderr, "ekman: bug: bad schema for %s: %s\n", ek_providers[i].name,
                        err->message);
                abort();
            }
        }
        unsigned caps = ek_providers[i].capabilities;
        if (caps & EK_CAP_TRANSFER_EXPORT)
            schemas[i][EK_SCHEMA_SOURCE_ENVIRONMENT] =
                environment_schema(ek_providers[i].name, false);
        if (caps & EK_CAP_TRANSFER_IMPORT)
            schemas[i][EK_SCHEMA_DESTINATION_ENVIRONMENT] =
                environment_schema(ek_providers[i].name, true);
    }
}

json_object *ek_provider_schema(const char *name, ek_schema_kind_t kind)
{
    pthread_once(&once, build);
    int i = name ? provider_index(name) : -1;
    return i < 0 ? NULL : schemas[i][kind];
}

ek_schema_kind_t ek_provider_schema_kind_for_type(unsigned type, bool *ok)
{
    *ok = true;
    switch (type) {
    case EK_CAP_ENDPOINT:
        return EK_SCHEMA_CONNECTION;
    case EK_CAP_TRANSFER_EXPORT:
        return EK_SCHEMA_SOURCE_ENVIRONMENT;
    case EK_CAP_TRANSFER_IMPORT:
        return EK_SCHEMA_DESTINATION_ENVIRONMENT;
    }
    *ok = false;
    return EK_SCHEMA_CONNECTION;
}
