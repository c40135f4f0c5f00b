/* providers.h - what every process knows about the providers: their names,
 * capability bits (the values of research/coriolis.md section 5, so that
 * Coriolis automation reads them unchanged) and the JSON schemas of their
 * connection info and environments. The provider code itself lives in
 * worker/providers/<name>/; this table is what the conductor validates against. */
#ifndef EK_PROTO_PROVIDERS_H
#define EK_PROTO_PROVIDERS_H

#include <json-c/json.h>
#include <stdbool.h>

enum {
    EK_CAP_TRANSFER_IMPORT = 4,
    EK_CAP_TRANSFER_EXPORT = 8,
    EK_CAP_ENDPOINT = 16,
    EK_CAP_ENDPOINT_INSTANCES = 32,
    EK_CAP_OS_MORPHING = 64,
    EK_CAP_ENDPOINT_NETWORKS = 128,
    EK_CAP_INSTANCE_FLAVOR = 256,
    EK_CAP_DESTINATION_ENDPOINT_OPTIONS = 512,
    EK_CAP_SETUP_LIBS = 1024,
    EK_CAP_VALIDATE_TRANSFER_EXPORT = 4096,
    EK_CAP_VALIDATE_TRANSFER_IMPORT = 16384,
    EK_CAP_ENDPOINT_STORAGE = 32768,
    EK_CAP_SOURCE_TRANSFER_UPDATE = 65536,
    EK_CAP_SOURCE_ENDPOINT_OPTIONS = 131072,
    EK_CAP_DESTINATION_TRANSFER_UPDATE = 262144,
    EK_CAP_SOURCE_MINION_POOL = 524288,
    EK_CAP_DESTINATION_MINION_POOL = 1048576,
    EK_CAP_ENDPOINT_INVENTORY_EXPORT = 2097152,
};

typedef enum ek_schema_kind {
    EK_SCHEMA_CONNECTION,
    EK_SCHEMA_SOURCE_ENVIRONMENT,
    EK_SCHEMA_DESTINATION_ENVIRONMENT,
} ek_schema_kind_t;

typedef struct ek_provider_info {
    const char *name;
    const char *description;
    unsigned capabilities;
} ek_provider_info_t;

/* All known providers, ending with {NULL}. */
extern const ek_provider_info_t ek_providers[];
const ek_provider_info_t *ek_provider_find(const char *name);
/* The schema (borrowed, built once) or NULL when the provider has none of
 * that kind. Destination environments accept every option of the provider's
 * configuration section, so each can be overridden per transfer. */
json_object *ek_provider_schema(const char *name, ek_schema_kind_t kind);
/* The capability a schema-type number of the API names (Coriolis's
 * providers/{platform}/schemas/{type}); 0 when unknown. */
ek_schema_kind_t ek_provider_schema_kind_for_type(unsigned type, bool *ok);

#endif
