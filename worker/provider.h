/* provider.h - what a provider plugin is and what it gets to work with.
 *
 * A provider is a const table of function pointers plus capability bits, one
 * per platform (like libvirt's drivers): endpoint calls (validate, list) and a
 * table of task functions keyed by task type. Unused slots are NULL. Every
 * task function runs in a child process of the worker, so a crash or a hang
 * cannot take the worker down; it talks to the world only through its
 * ek_task_ctx_t: progress steps, events, a state to resume from, and the
 * cancellation flag (set when the worker receives a cancel: SIGINT).
 *
 * A task function fills `result` with exactly the keys its type declares
 * (proto/tasks.c) and returns NULL, or returns an error whose message is
 * shown to the user. */
#ifndef EK_WORKER_PROVIDER_H
#define EK_WORKER_PROVIDER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/config.h"
#include "common/error.h"

typedef struct ek_task_ctx ek_task_ctx_t;

/* An endpoint with its connection info opened (decrypted) for the provider. */
typedef struct ek_endpoint {
    const char *id;
    const char *name;
    const char *type;
    json_object *connection_info; /* never log it */
    json_object *environment;     /* source or destination environment, {} if none */
    json_object *network_map;     /* destination only */
    json_object *storage_mappings;
} ek_endpoint_t;

typedef struct ek_task_input {
    const char *task_id;
    const char *execution_id;
    const char *task_type;
    const char *instance;
    json_object *params;    /* e.g. {"incremental": true} */
    json_object *task_info; /* the instance's task info so far */
    json_object *state;     /* what an earlier attempt saved (resume), or NULL */
    json_object *user_scripts;
    bool clone_disks;
    bool skip_os_morphing;
    const ek_endpoint_t *origin;
    const ek_endpoint_t *destination;
} ek_task_input_t;

typedef ek_err_t *(*ek_task_fn)(ek_task_ctx_t *ctx, const ek_task_input_t *in, json_object *result);

typedef struct ek_task_impl {
    const char *task_type;
    ek_task_fn run;
} ek_task_impl_t;

/* An endpoint call: args from the API (env, name, marker, limit...); *out is
 * the answer (new reference). */
typedef ek_err_t *(*ek_endpoint_fn)(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                    json_object **out);

typedef struct ek_provider {
    const char *name;      /* the endpoint type it serves: "local", "libvirt", "ovirt" */
    unsigned capabilities; /* EK_CAP_* of proto/providers.h */
    ek_endpoint_fn validate_connection;
    ek_endpoint_fn list_instances;
    ek_endpoint_fn get_instance;
    ek_endpoint_fn list_networks;
    ek_endpoint_fn list_storage;
    ek_endpoint_fn source_options;
    ek_endpoint_fn destination_options;
    const ek_task_impl_t *tasks; /* ends with {NULL} */
    /* As the destination of a disk copy that failed (REPLICATE_DISKS run by
     * the source's provider): may look at its side (a full storage pool...)
     * and return a new error that says so; takes err, returns err when it
     * finds nothing. NULL: no diagnosis. */
    ek_err_t *(*diagnose_copy_error)(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_err_t *err);
} ek_provider_t;

/* The providers built into this worker, ending with NULL. */
extern const ek_provider_t *const ek_worker_providers[];
const ek_provider_t *ek_provider_get(const char *name);
ek_task_fn ek_provider_task(const ek_provider_t *p, const char *task_type);

/* ---- the task context (child side) ------------------------------------------------ */

/* Adds a progress step ("Replicating disk vda", total units); returns its index. */
int ek_task_step(ek_task_ctx_t *ctx, uint64_t total, const char *fmt, ...) EK_PRINTF(3, 4);
/* Moves a step forward (reports are sent when the percentage grows). */
void ek_task_step_update(ek_task_ctx_t *ctx, int step, uint64_t current);
/* An event shown with the task: level is "INFO", "WARNING" or "ERROR". */
void ek_task_event(ek_task_ctx_t *ctx, const char *level, const char *fmt, ...) EK_PRINTF(3, 4);
/* Saves what a re-run of this task needs to resume (replaces the last save). */
void ek_task_save_state(ek_task_ctx_t *ctx, json_object *state);
/* True once a cancel arrived: the task should stop and return an
 * EK_E_CANCELED error. */
bool ek_task_cancelled(const ek_task_ctx_t *ctx);
/* The worker's configuration (provider sections included). */
const ek_config_t *ek_task_config(const ek_task_ctx_t *ctx);

#endif
