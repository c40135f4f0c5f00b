/* tasks.c - the source tasks of the ova provider other than REPLICATE_DISKS
 * (replicate.c). An OVA is a file: nothing runs, nothing to shut down, no
 * snapshot, no source resources. The validation and GET_INSTANCE_INFO read
 * the descriptor, check the manifest and probe every disk, so that a bad
 * package stops the transfer before anything is written. */
#include "worker/providers/ova/ova.h"

#include <string.h>
#include <unistd.h>
#include "common/mem.h"
#include "worker/providers/common/taskutil.h"

static ek_err_t *environment_check(json_object *env)
{
    if (!env || json_object_is_type(env, json_type_null))
        return NULL;
    if (!json_object_is_type(env, json_type_object))
        return ek_err_new(EK_E_INVALID, "the source environment must be an object");
    json_object_object_foreach(env, key, val)
    {
        (void)val;
        return ek_err_new(EK_E_INVALID,
                          "the ova provider takes no source environment options; remove '%s'", key);
    }
    return NULL;
}

/* The task's instance, loaded, with the endpoint directory open. */
static ek_err_t *load(ek_task_ctx_t *ctx, const ek_task_input_t *in, int *dirfd,
                      ek_ova_instance_t **inst)
{
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), in->origin, dirfd);
    if (err)
        return err;
    if ((err = ek_ova_instance_find(*dirfd, in->instance, inst))) {
        close(*dirfd);
        return err;
    }
    return NULL;
}

/* Manifest, disks, export_info: everything a transfer needs to be sound. */
static ek_err_t *check_all(ek_task_ctx_t *ctx, const ek_task_input_t *in, json_object **info)
{
    int dirfd;
    ek_ova_instance_t *inst;
    ek_err_t *err = environment_check(in->origin->environment);
    if (err || (err = load(ctx, in, &dirfd, &inst)))
        return err;
    if (!(err = ek_ova_instance_verify(ctx, dirfd, inst)))
        err = ek_ova_instance_export_info(dirfd, inst, info);
    if (!err) {
        const ek_ova_vm_t *vm = inst->vm;
        uint64_t total = 0;
        for (size_t i = 0; i < vm->n_disks; i++)
            total += vm->disks[i].capacity;
        char sz[32];
        ek_task_event(ctx, "INFO",
                      "instance '%s' (\"%s\"): %d vCPU(s), %llu MiB, %s firmware, guest %s (%s), "
                      "%zu disk(s) of %s, %zu NIC(s)",
                      vm->name, inst->file, vm->vcpus, (unsigned long long)vm->memory_mb,
                      vm->firmware, vm->os_type, vm->vmw_ostype ? vm->vmw_ostype : "no osType",
                      vm->n_disks, ek_human_size(total, sz), vm->n_nics);
        for (size_t i = 0; i < vm->n_nics; i++)
            if (vm->nics[i].mac_generated)
                ek_task_event(ctx, "INFO",
                              "NIC #%zu has no MAC in the descriptor: it gets %s (stable for "
                              "this instance)",
                              i + 1, vm->nics[i].mac);
    }
    ek_ova_instance_free(inst);
    close(dirfd);
    return err;
}

ek_err_t *ek_ova_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result)
{
    json_object *info = NULL;
    (void)result;
    ek_err_t *err = check_all(ctx, in, &info);
    json_object_put(info);
    return err;
}

ek_err_t *ek_ova_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result)
{
    json_object *info = NULL;
    ek_err_t *err = check_all(ctx, in, &info);
    if (err)
        return err;
    json_object_object_add(result, "export_info", info);
    return NULL;
}

ek_err_t *ek_ova_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result)
{
    int dirfd;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), in->origin, &dirfd);
    if (err)
        return err;
    close(dirfd);
    json_object *conn = json_object_new_object();
    json_object_object_add(conn, "kind", json_object_new_string("local"));
    json_object_object_add(result, "source_resources", json_object_new_object());
    json_object_object_add(result, "source_resources_connection_info", conn);
    return NULL;
}

ek_err_t *ek_ova_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result)
{
    (void)ctx;
    (void)in;
    json_object_object_add(result, "source_resources", json_object_new_object());
    json_object_object_add(result, "source_resources_connection_info", json_object_new_object());
    return NULL;
}

ek_err_t *ek_ova_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result)
{
    int dirfd;
    ek_ova_instance_t *inst;
    (void)result;
    ek_err_t *err = load(ctx, in, &dirfd, &inst);
    if (err)
        return err;
    ek_task_event(ctx, "INFO",
                  "instance '%s' is an exported package (\"%s\"): nothing runs, "
                  "nothing to shut down",
                  inst->vm->name, inst->file);
    ek_ova_instance_free(inst);
    close(dirfd);
    return NULL;
}

ek_err_t *ek_ova_task_delete_source_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result)
{
    int dirfd;
    (void)result;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), in->origin, &dirfd);
    if (err)
        return err;
    close(dirfd);
    ek_task_event(ctx, "INFO", "an OVA source takes no snapshots: nothing to delete");
    return NULL;
}

ek_err_t *ek_ova_task_update_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result)
{
    int dirfd;
    (void)result;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), in->origin, &dirfd);
    if (err)
        return err;
    close(dirfd);
    return environment_check(in->origin->environment);
}
