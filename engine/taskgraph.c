/* taskgraph.c - building and checking execution task graphs. */
#include "engine/taskgraph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

void ek_taskgraph_init(ek_taskgraph_t *g)
{
    g->tasks = NULL;
    g->n = 0;
}

void ek_taskgraph_free(ek_taskgraph_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->tasks[i].instance);
        json_object_put(g->tasks[i].params);
    }
    free(g->tasks);
    ek_taskgraph_init(g);
}

int ek_taskgraph_add(ek_taskgraph_t *g, const char *instance, const char *type, int on_error,
                     int on_error_only, ...)
{
    const ek_task_type_t *t = ek_task_type_find(type);
    if (!t) {
        fprintf(stderr, "ekman: bug: unknown task type %s\n", type);
        abort();
    }
    g->tasks = ek_xrealloc(g->tasks, (g->n + 1) * sizeof(*g->tasks));
    ek_tg_task_t *task = &g->tasks[g->n];
    memset(task, 0, sizeof(*task));
    ek_uuid_generate(task->id);
    task->instance = ek_xstrdup(instance);
    task->type = t;
    task->on_error = on_error;
    task->on_error_only = on_error_only;
    task->params = json_object_new_object();
    va_list ap;
    va_start(ap, on_error_only);
    for (int d; (d = va_arg(ap, int)) >= 0;) {
        if (task->n_deps == EK_TG_MAX_DEPS || (size_t)d >= g->n)
            abort(); /* a graph definition bug */
        task->deps[task->n_deps++] = d;
    }
    va_end(ap);
    return (int)g->n++;
}

#define ADD(type, ...)          ek_taskgraph_add(g, inst, type, false, false, __VA_ARGS__, -1)
#define ADD_ON_ERROR(type, ...) ek_taskgraph_add(g, inst, type, true, false, __VA_ARGS__, -1)
#define ADD_ROLLBACK(type, ...) ek_taskgraph_add(g, inst, type, false, true, __VA_ARGS__, -1)
#define ROOT(type)              ek_taskgraph_add(g, inst, type, false, false, -1)

void ek_taskgraph_transfer(ek_taskgraph_t *g, const char *inst, const ek_transfer_opts_t *o)
{
    int vsrc = ROOT("VALIDATE_TRANSFER_SOURCE_INPUTS");
    int info = ROOT("GET_INSTANCE_INFO");
    int vdst = ADD("VALIDATE_TRANSFER_DESTINATION_INPUTS", info);
    int disks = ADD("DEPLOY_TRANSFER_DISKS", vsrc, vdst);
    int sres = ADD("DEPLOY_TRANSFER_SOURCE_RESOURCES", disks);
    int tres = ADD("DEPLOY_TRANSFER_TARGET_RESOURCES", disks);
    int repl;
    if (o->shutdown_instances) {
        int shut = ADD("SHUTDOWN_INSTANCE", sres, tres);
        repl = ADD("REPLICATE_DISKS", shut);
    } else {
        repl = ADD("REPLICATE_DISKS", sres, tres);
    }
    json_object_object_add(g->tasks[repl].params, "incremental",
                           json_object_new_boolean(o->incremental));
    ADD_ON_ERROR("DELETE_TRANSFER_SOURCE_RESOURCES", sres, repl);
    ADD_ON_ERROR("DELETE_TRANSFER_TARGET_RESOURCES", tres, repl);
}

void ek_taskgraph_deployment(ek_taskgraph_t *g, const char *inst, const ek_deployment_opts_t *o)
{
    int valid = ROOT("VALIDATE_DEPLOYMENT_INPUTS");
    int snap = ADD("CREATE_TRANSFER_DISK_SNAPSHOTS", valid);
    int res = ADD("DEPLOY_INSTANCE_RESOURCES", snap);
    int fin;
    if (!o->skip_os_morphing) {
        int omres = ADD("DEPLOY_OS_MORPHING_RESOURCES", res);
        int morph = ADD("OS_MORPHING", omres);
        int omdel = ADD_ON_ERROR("DELETE_OS_MORPHING_RESOURCES", omres, morph);
        fin = ADD("FINALIZE_INSTANCE_DEPLOYMENT", morph, omdel);
    } else {
        fin = ADD("FINALIZE_INSTANCE_DEPLOYMENT", res);
    }
    /* With clone_disks the "snapshots" are the deployment's own copies: they go
     * whatever happens. Without, the snapshots of the replica disks are dropped
     * on success and restored (rollback) on failure. */
    if (o->clone_disks)
        json_object_object_add(g->tasks[snap].params, "clone_disks", json_object_new_boolean(1));
    ek_taskgraph_add(g, inst, "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", o->clone_disks, false, snap,
                     fin, -1);
    int cleanup = ADD_ROLLBACK("CLEANUP_FAILED_INSTANCE_DEPLOYMENT", res, fin);
    if (!o->clone_disks)
        ADD_ROLLBACK("RESTORE_TRANSFER_DISK_SNAPSHOTS", snap, cleanup);
}

void ek_taskgraph_delete_disks(ek_taskgraph_t *g, const char *inst)
{
    int snaps = ROOT("DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS");
    ADD("DELETE_TRANSFER_DISKS", snaps);
}

void ek_taskgraph_update(ek_taskgraph_t *g, const char *inst)
{
    int info = ROOT("GET_INSTANCE_INFO");
    int src = ROOT("UPDATE_SOURCE_TRANSFER");
    ADD("UPDATE_DESTINATION_TRANSFER", info, src);
}

/* ---- checking ----------------------------------------------------------------- */

struct keyset {
    const char **keys;
    size_t n;
};

static bool keyset_has(const struct keyset *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], k) == 0)
            return true;
    return false;
}

static void keyset_add(struct keyset *s, const char *k)
{
    if (keyset_has(s, k))
        return;
    s->keys = ek_xrealloc(s->keys, (s->n + 1) * sizeof(char *));
    s->keys[s->n++] = k;
}

ek_err_t *ek_taskgraph_check(const ek_taskgraph_t *g, json_object *info)
{
    bool *done = ek_xcalloc(g->n + 1, sizeof(bool));
    int *wave = ek_xcalloc(g->n + 1, sizeof(int));
    /* keys available per task's instance: start from the current task info */
    struct keyset *avail = ek_xcalloc(g->n + 1, sizeof(struct keyset));
    for (size_t i = 0; i < g->n; i++) {
        json_object *inst = NULL;
        if (info && json_object_object_get_ex(info, g->tasks[i].instance, &inst)) {
            json_object_object_foreach(inst, k, v)
            {
                (void)v;
                keyset_add(&avail[i], k);
            }
        }
    }
    ek_err_t *err = NULL;
    size_t n_done = 0;
    while (!err && n_done < g->n) {
        size_t n_wave = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (done[i])
                continue;
            bool ready = true;
            for (int d = 0; d < g->tasks[i].n_deps; d++)
                ready = ready && done[g->tasks[i].deps[d]];
            if (ready)
                wave[n_wave++] = (int)i;
        }
        if (!n_wave) {
            err = ek_err_new(EK_E_INTERNAL, "the task graph has a cycle");
            break;
        }
        for (size_t a = 0; a < n_wave && !err; a++) {
            const ek_tg_task_t *t = &g->tasks[wave[a]];
            for (const char *const *k = t->type->requires; *k && !err; k++) {
                /* a key reaches a task from its ancestors: merged into avail below */
                if (!keyset_has(&avail[wave[a]], *k))
                    err = ek_err_new(EK_E_INVALID,
                                     "instance '%s': task %s needs '%s', which no earlier task "
                                     "provides and the task info does not hold",
                                     t->instance, t->type->name, *k);
            }
            for (size_t b = a + 1; b < n_wave && !err; b++) {
                const ek_tg_task_t *u = &g->tasks[wave[b]];
                if (strcmp(t->instance, u->instance) != 0)
                    continue;
                for (const char *const *k = t->type->provides; *k && !err; k++)
                    for (const char *const *l = u->type->provides; *l && !err; l++)
                        if (strcmp(*k, *l) == 0)
                            err = ek_err_new(EK_E_INTERNAL,
                                             "tasks %s and %s may run at once and both write "
                                             "'%s'",
                                             t->type->name, u->type->name, *k);
            }
        }
        /* what a task provides becomes available to its descendants */
        for (size_t a = 0; a < n_wave; a++) {
            done[wave[a]] = true;
            n_done++;
        }
        for (size_t i = 0; i < g->n; i++) {
            if (done[i])
                continue;
            for (int d = 0; d < g->tasks[i].n_deps; d++) {
                int p = g->tasks[i].deps[d];
                for (size_t k = 0; k < avail[p].n; k++)
                    keyset_add(&avail[i], avail[p].keys[k]);
                for (const char *const *k = g->tasks[p].type->provides; *k; k++)
                    keyset_add(&avail[i], *k);
            }
        }
    }
    for (size_t i = 0; i < g->n; i++)
        free(avail[i].keys);
    free(avail);
    free(wave);
    free(done);
    return err;
}
