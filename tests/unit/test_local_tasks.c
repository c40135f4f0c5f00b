/* test_local_tasks.c - the local provider's table, its task functions one
 * by one (result keys exactly as proto/tasks.c declares; replicas created,
 * grown, re-created and removed; snapshots made, restored and dropped;
 * deployment and its cleanup; the errors users see), its endpoint calls,
 * and the sparse copy. The data plane runs in the integration test
 * (tests/integration/local/). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "proto/providers.h"
#include "proto/tasks.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/providers/local/local.h"

typedef struct fx {
    char *dir, *src, *dst, *inst;
    ek_endpoint_t origin, dest;
    json_object *info; /* the instance's task info */
    bool clone;
    ek_task_ctx_t *last; /* context of the last task run (events, steps) */
    ek_config_t *cfg;    /* [local] allowed_roots = dir (issue #17) */
} fx_t;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    if (err)
        fail_msg("%s: %s", text, err->message);
    return o;
}

static const char *const VM_XML =
    "<domain type='kvm'><name>vm</name><memory unit='MiB'>256</memory><vcpu>2</vcpu>"
    "<devices><disk type='file' device='disk'><driver type='raw'/><source file='vm.img'/>"
    "<target dev='vda' bus='virtio'/></disk>"
    "<interface type='network'><mac address='52:54:00:00:00:aa'/><source network='default'/>"
    "</interface></devices></domain>";

static int setup(void **state)
{
    fx_t *f = ek_xcalloc(1, sizeof(*f));
    f->dir = ek_xstrdup("/tmp/ek-test-ltasks-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cfg = ek_config_new();
    _cleanup_free_ char *conf = ek_xasprintf("[local]\nallowed_roots = %s\n", f->dir);
    assert_null(ek_config_load_string(f->cfg, conf, "test.conf"));
    f->src = ek_xasprintf("%s/src", f->dir);
    f->dst = ek_xasprintf("%s/dst", f->dir);
    f->inst = ek_xasprintf("%s/vm", f->dst);
    assert_int_equal(mkdir(f->src, 0700), 0);
    assert_int_equal(mkdir(f->dst, 0700), 0);
    _cleanup_free_ char *xml = ek_xasprintf("%s/vm.xml", f->src);
    _cleanup_free_ char *img = ek_xasprintf("%s/vm.img", f->src);
    write_file(xml, VM_XML);
    write_file(img, "boot sector");
    assert_int_equal(truncate(img, 1 << 20), 0);
    json_object *sc = json_object_new_object(), *dc = json_object_new_object();
    json_object_object_add(sc, "path", json_object_new_string(f->src));
    json_object_object_add(dc, "path", json_object_new_string(f->dst));
    f->origin = (ek_endpoint_t){"o", "src", "local", sc, json_object_new_object(), NULL, NULL};
    f->dest = (ek_endpoint_t){"d",
                              "dst",
                              "local",
                              dc,
                              json_object_new_object(),
                              parse("{\"default\": \"lan\"}"),
                              json_object_new_object()};
    f->info = json_object_new_object();
    f->clone = true;
    setenv("EKMAN_WRITER", "/bin/true", 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    _cleanup_free_ char *cmd = ek_xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    json_object_put(f->origin.connection_info);
    json_object_put(f->origin.environment);
    json_object_put(f->dest.connection_info);
    json_object_put(f->dest.environment);
    json_object_put(f->dest.network_map);
    json_object_put(f->dest.storage_mappings);
    json_object_put(f->info);
    ek_test_ctx_free(f->last);
    ek_config_free(f->cfg);
    free(f->dir);
    free(f->src);
    free(f->dst);
    free(f->inst);
    free(f);
    return 0;
}

static ek_task_fn task_fn(const char *type)
{
    for (const ek_task_impl_t *t = ek_provider_local.tasks; t->task_type; t++)
        if (strcmp(t->task_type, type) == 0)
            return t->run;
    fail_msg("no %s", type);
    return NULL;
}

/* Runs a task; on success checks the result's keys and merges it into the
 * task info. Returns the error (NULL on success). */
static ek_err_t *run(fx_t *f, const char *type, const char *params)
{
    ek_test_ctx_free(f->last);
    f->last = ek_test_ctx_new(f->cfg, NULL, type);
    json_object *p = params ? parse(params) : NULL, *result = json_object_new_object();
    ek_task_input_t in = {
        .task_id = "t",
        .execution_id = "e",
        .task_type = type,
        .instance = "vm",
        .params = p,
        .task_info = f->info,
        .clone_disks = f->clone,
        .skip_os_morphing = true,
        .origin = &f->origin,
        .destination = &f->dest,
    };
    ek_err_t *err = task_fn(type)(f->last, &in, result);
    if (!err) {
        const ek_task_type_t *t = ek_task_type_find(type);
        size_t n = 0;
        for (const char *const *k = t->provides; *k; k++, n++)
            if (!json_object_object_get_ex(result, *k, NULL))
                fail_msg("%s did not return %s", type, *k);
        assert_int_equal(json_object_object_length(result), n);
        json_object_object_foreach(result, key, val)
            json_object_object_add(f->info, key, json_object_get(val));
    }
    json_object_put(result);
    json_object_put(p);
    return err;
}

static void run_ok(fx_t *f, const char *type, const char *params)
{
    ek_err_t *err = run(f, type, params);
    if (err)
        fail_msg("%s: %s", type, err->message);
}

static void run_fails(fx_t *f, const char *type, const char *fragment)
{
    ek_err_t *err = run(f, type, NULL);
    if (!err)
        fail_msg("%s succeeded", type);
    if (!strstr(err->message, fragment))
        fail_msg("%s: \"%s\" does not say \"%s\"", type, err->message, fragment);
    ek_err_free(err);
}

static bool exists(const char *dir, const char *name)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static long long file_size(const char *dir, const char *name)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static void touch(const char *dir, const char *name)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, name);
    write_file(p, "x");
}

static bool has_event(fx_t *f, const char *fragment)
{
    json_object *ev = ek_test_ctx_events(f->last);
    for (size_t i = 0; i < json_object_array_length(ev); i++)
        if (strstr(json_object_get_string(
                       json_object_object_get(json_object_array_get_idx(ev, i), "message")),
                   fragment))
            return true;
    return false;
}

/* export_info with disks {id, size} (replacing the one of the task info). */
static void set_disks(fx_t *f, const char *disks_json)
{
    json_object *ei = json_object_new_object();
    json_object_object_add(ei, "name", json_object_new_string("vm"));
    json_object_object_add(ei, "disks", parse(disks_json));
    json_object_object_add(f->info, "export_info", ei);
}

/* ---- tests ---- */

static void test_table(void **state)
{
    const ek_provider_t *p = &ek_provider_local;
    assert_string_equal(p->name, "local");
    assert_int_equal(p->capabilities, ek_provider_find("local")->capabilities);
    assert_non_null(p->validate_connection);
    assert_non_null(p->list_instances);
    assert_non_null(p->get_instance);
    assert_non_null(p->list_networks);
    assert_non_null(p->list_storage);
    assert_non_null(p->source_options);
    assert_non_null(p->destination_options);
    size_t n = 0;
    for (const ek_task_impl_t *t = p->tasks; t->task_type; t++, n++) {
        assert_non_null(ek_task_type_find(t->task_type));
        assert_non_null(t->run);
    }
    size_t all = 0;
    for (const ek_task_type_t *t = ek_task_types; t->name; t++, all++)
        task_fn(t->name); /* every task type of the protocol */
    assert_int_equal(n, all);
}

static void test_transfer_tasks(void **state)
{
    fx_t *f = *state;
    run_ok(f, "VALIDATE_TRANSFER_SOURCE_INPUTS", NULL);
    run_ok(f, "GET_INSTANCE_INFO", NULL);
    json_object *ei = json_object_object_get(f->info, "export_info");
    json_object *d0 = json_object_array_get_idx(json_object_object_get(ei, "disks"), 0);
    assert_int_equal(json_object_get_int64(json_object_object_get(d0, "size_bytes")), 1 << 20);
    run_ok(f, "VALIDATE_TRANSFER_DESTINATION_INPUTS", NULL);
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    assert_int_equal(file_size(f->inst, "disk-vda.img"), 1 << 20);
    run_ok(f, "DEPLOY_TRANSFER_SOURCE_RESOURCES", NULL);
    run_ok(f, "DEPLOY_TRANSFER_TARGET_RESOURCES", NULL);
    json_object *tci = json_object_object_get(f->info, "target_resources_connection_info");
    /* the worker runs its own writer: the message names only the directory */
    assert_string_equal(json_object_get_string(json_object_object_get(tci, "kind")), "exec");
    assert_string_equal(json_object_get_string(json_object_object_get(tci, "allow_path")), f->inst);
    assert_null(json_object_object_get(tci, "command"));
    run_ok(f, "SHUTDOWN_INSTANCE", NULL);
    assert_true(has_event(f, "nothing runs"));
    run_ok(f, "DELETE_TRANSFER_SOURCE_RESOURCES", NULL);
    run_ok(f, "DELETE_TRANSFER_TARGET_RESOURCES", NULL);
    run_ok(f, "UPDATE_SOURCE_TRANSFER", NULL);
    run_ok(f, "UPDATE_DESTINATION_TRANSFER", NULL);
    run_ok(f, "DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", NULL);
    run_ok(f, "DELETE_TRANSFER_DISKS", NULL);
    assert_false(exists(f->dst, "vm"));
    assert_int_equal(json_object_array_length(json_object_object_get(f->info, "volumes_info")), 0);
}

static void test_disks_follow_the_source(void **state)
{
    fx_t *f = *state;
    set_disks(f, "[{\"id\": \"vda\", \"size_bytes\": 1048576},"
                 " {\"id\": \"vdb\", \"size_bytes\": 2097152}]");
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    assert_int_equal(file_size(f->inst, "disk-vda.img"), 1 << 20);
    assert_int_equal(file_size(f->inst, "disk-vdb.img"), 2 << 20);
    touch(f->inst, "disk-vda.hashmap");
    touch(f->inst, "disk-vdb.hashmap");
    /* the same disks: replicas and maps as they were */
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    assert_true(exists(f->inst, "disk-vda.hashmap"));
    assert_true(exists(f->inst, "disk-vdb.hashmap"));
    /* vda grew, vdb left, vdc came */
    set_disks(f, "[{\"id\": \"vda\", \"size_bytes\": 3145728},"
                 " {\"id\": \"vdc\", \"size_bytes\": 1048576}]");
    touch(f->inst, "disk-vdc.hashmap"); /* stale: vdc is new */
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    assert_int_equal(file_size(f->inst, "disk-vda.img"), 3 << 20);
    assert_false(exists(f->inst, "disk-vda.hashmap"));
    assert_false(exists(f->inst, "disk-vdb.img"));
    assert_false(exists(f->inst, "disk-vdb.hashmap"));
    assert_int_equal(file_size(f->inst, "disk-vdc.img"), 1 << 20);
    assert_false(exists(f->inst, "disk-vdc.hashmap"));
    assert_true(has_event(f, "grew"));
    assert_true(has_event(f, "no longer on the source"));
    json_object *vols = json_object_object_get(f->info, "volumes_info");
    assert_int_equal(json_object_array_length(vols), 2);
    json_object *v0 = json_object_array_get_idx(vols, 0);
    _cleanup_free_ char *map = ek_xasprintf("%s/disk-vda.hashmap", f->inst);
    assert_string_equal(json_object_get_string(json_object_object_get(v0, "hash_map")), map);
    /* vda shrank: re-created */
    set_disks(f, "[{\"id\": \"vda\", \"size_bytes\": 1048576},"
                 " {\"id\": \"vdc\", \"size_bytes\": 1048576}]");
    touch(f->inst, "disk-vda.hashmap");
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    assert_int_equal(file_size(f->inst, "disk-vda.img"), 1 << 20);
    assert_false(exists(f->inst, "disk-vda.hashmap"));
    assert_true(has_event(f, "shrank"));
    /* a bad disk id never reaches the file system */
    set_disks(f, "[{\"id\": \"../x\", \"size_bytes\": 1048576}]");
    run_fails(f, "DEPLOY_TRANSFER_DISKS", "cannot be used");
}

static void write_at(const char *path, long long off, const char *text)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, text, strlen(text), off), (ssize_t)strlen(text));
    close(fd);
}

static bool content_is(const char *path, long long off, const char *text)
{
    char buf[64] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = pread(fd, buf, strlen(text), off);
    close(fd);
    return n == (ssize_t)strlen(text) && memcmp(buf, text, strlen(text)) == 0;
}

static void test_snapshots(void **state)
{
    fx_t *f = *state;
    set_disks(f, "[{\"id\": \"vda\", \"size_bytes\": 4194304}]");
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    _cleanup_free_ char *img = ek_xasprintf("%s/disk-vda.img", f->inst);
    _cleanup_free_ char *snap = ek_xasprintf("%s/disk-vda.snap.img", f->inst);
    write_at(img, 3 << 20, "synced");
    f->clone = false;
    run_ok(f, "CREATE_TRANSFER_DISK_SNAPSHOTS", NULL);
    assert_true(content_is(snap, 3 << 20, "synced"));
    json_object *v0 = json_object_array_get_idx(json_object_object_get(f->info, "volumes_info"), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(v0, "snapshot_path")), snap);
    write_at(img, 3 << 20, "morphed");
    run_ok(f, "RESTORE_TRANSFER_DISK_SNAPSHOTS", NULL);
    assert_true(content_is(img, 3 << 20, "synced"));
    assert_false(exists(f->inst, "disk-vda.snap.img"));
    v0 = json_object_array_get_idx(json_object_object_get(f->info, "volumes_info"), 0);
    assert_false(json_object_object_get_ex(v0, "snapshot_path", NULL));
    run_ok(f, "CREATE_TRANSFER_DISK_SNAPSHOTS", "{\"clone_disks\": true}");
    assert_true(has_event(f, "clone"));
    run_ok(f, "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", NULL);
    assert_false(exists(f->inst, "disk-vda.snap.img"));
    assert_true(content_is(img, 3 << 20, "synced"));
}

static void deploy_until_finalize(fx_t *f)
{
    run_ok(f, "GET_INSTANCE_INFO", NULL);
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    run_ok(f, "VALIDATE_DEPLOYMENT_INPUTS", NULL);
    run_ok(f, "CREATE_TRANSFER_DISK_SNAPSHOTS", NULL);
    run_ok(f, "DEPLOY_INSTANCE_RESOURCES", NULL);
}

static void test_deployment(void **state)
{
    fx_t *f = *state;
    _cleanup_free_ char *deployed = ek_xasprintf("%s/deployed", f->inst);
    /* with clones, rolled back */
    deploy_until_finalize(f);
    assert_true(exists(deployed, "disk-vda.img"));
    assert_true(exists(f->inst, "disk-vda.img"));
    run_ok(f, "FINALIZE_INSTANCE_DEPLOYMENT", NULL);
    assert_true(exists(f->inst, "vm.xml"));
    json_object *tr = json_object_object_get(f->info, "transfer_result");
    _cleanup_free_ char *xml = ek_xasprintf("%s/vm.xml", f->inst);
    assert_string_equal(json_object_get_string(json_object_object_get(tr, "xml_path")), xml);
    run_fails(f, "VALIDATE_DEPLOYMENT_INPUTS", "already deployed");
    run_fails(f, "FINALIZE_INSTANCE_DEPLOYMENT", "already exists");
    run_ok(f, "CLEANUP_FAILED_INSTANCE_DEPLOYMENT", NULL);
    assert_false(exists(f->inst, "vm.xml"));
    assert_false(exists(f->inst, "deployed"));
    assert_true(exists(f->inst, "disk-vda.img"));
    run_ok(f, "DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", NULL);

    /* the replicas themselves, rolled back: they come back */
    f->clone = false;
    json_object_object_del(f->info, "instance_deployment_info");
    deploy_until_finalize(f);
    assert_true(exists(deployed, "disk-vda.img"));
    assert_false(exists(f->inst, "disk-vda.img"));
    run_ok(f, "DEPLOY_OS_MORPHING_RESOURCES", NULL);
    run_fails(f, "OS_MORPHING",
              "OS morphing is not available for the local provider yet: "
              "deploy with skip_os_morphing");
    run_ok(f, "DELETE_OS_MORPHING_RESOURCES", NULL);
    run_ok(f, "CLEANUP_FAILED_INSTANCE_DEPLOYMENT", NULL);
    assert_true(exists(f->inst, "disk-vda.img"));
    assert_false(exists(f->inst, "deployed"));
    run_ok(f, "RESTORE_TRANSFER_DISK_SNAPSHOTS", NULL);
    assert_true(exists(f->inst, "disk-vda.img"));
    assert_false(exists(f->inst, "disk-vda.snap.img"));

    /* nothing deployed: nothing to clean */
    json_object_object_del(f->info, "instance_deployment_info");
    run_ok(f, "CLEANUP_FAILED_INSTANCE_DEPLOYMENT", NULL);
    assert_true(has_event(f, "no deployed resources"));
}

static void test_errors(void **state)
{
    fx_t *f = *state;
    run_fails(f, "DEPLOY_TRANSFER_DISKS", "GET_INSTANCE_INFO must run first");
    run_fails(f, "REPLICATE_DISKS", "GET_INSTANCE_INFO must run first");
    run_ok(f, "GET_INSTANCE_INFO", NULL);
    run_ok(f, "DEPLOY_TRANSFER_DISKS", NULL);
    json_object_object_add(f->info, "source_resources_connection_info", parse("{}"));
    json_object_object_add(f->info, "target_resources_connection_info",
                           parse("{\"kind\": \"https\"}"));
    run_fails(f, "REPLICATE_DISKS", "target_resources_connection_info.host");
    json_object *vols = json_object_get(json_object_object_get(f->info, "volumes_info"));
    json_object_object_del(f->info, "volumes_info");
    run_fails(f, "VALIDATE_DEPLOYMENT_INPUTS", "execute the transfer");
    json_object_object_add(f->info, "volumes_info", vols);
    json_object_object_del(f->dest.network_map, "default");
    run_fails(f, "VALIDATE_TRANSFER_DESTINATION_INPUTS",
              "network 'default' (NIC 52:54:00:00:00:aa) is not in the transfer's network_map");
    json_object_object_add(f->dest.network_map, "default", json_object_new_string("lan"));
    json_object_object_add(f->dest.environment, "pool", json_object_new_string("x"));
    run_fails(f, "VALIDATE_TRANSFER_DESTINATION_INPUTS", "no destination environment options");
    json_object_object_del(f->dest.environment, "pool");
    json_object_object_add(f->origin.connection_info, "path", json_object_new_string("rel/dir"));
    run_fails(f, "GET_INSTANCE_INFO", "must be an absolute path");
    _cleanup_free_ char *gone = ek_xasprintf("%s/none", f->dir);
    json_object_object_add(f->origin.connection_info, "path", json_object_new_string(gone));
    run_fails(f, "VALIDATE_TRANSFER_SOURCE_INPUTS", "No such file or directory");
    json_object_object_add(f->origin.connection_info, "path", json_object_new_string(f->src));
    _cleanup_free_ char *img = ek_xasprintf("%s/vm.img", f->src);
    unlink(img);
    run_fails(f, "GET_INSTANCE_INFO", "disk 'vda': endpoint 'src': cannot open");
}

static json_object *query(fx_t *f, ek_endpoint_fn fn, const char *args, const char *fails)
{
    json_object *a = args ? parse(args) : NULL, *out = NULL;
    ek_task_ctx_t *ctx = ek_test_ctx_new(f->cfg, NULL, "query");
    ek_err_t *err = fn(ctx, &f->origin, a, &out);
    ek_test_ctx_free(ctx);
    json_object_put(a);
    if (fails) {
        if (!err || !strstr(err->message, fails))
            fail_msg("expected an error saying \"%s\", got %s", fails, err ? err->message : "none");
        ek_err_free(err);
        return NULL;
    }
    if (err)
        fail_msg("%s", err->message);
    return out;
}

static void test_endpoint_calls(void **state)
{
    fx_t *f = *state;
    const ek_provider_t *p = &ek_provider_local;
    _cleanup_free_ char *xml2 = ek_xasprintf("%s/other.xml", f->src);
    write_file(xml2, "<domain><name>db</name><memory>1024</memory><devices><interface "
                     "type='bridge'><source bridge='br0'/></interface></devices></domain>");
    json_object *o = query(f, p->validate_connection, NULL, NULL);
    json_object_put(o);
    o = query(f, p->list_instances, NULL, NULL);
    assert_int_equal(json_object_array_length(o), 2);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(o, 0), "name")),
        "db");
    json_object_put(o);
    o = query(f, p->list_instances, "{\"limit\": \"1\", \"marker\": \"db\"}", NULL);
    assert_int_equal(json_object_array_length(o), 1);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(o, 0), "name")),
        "vm");
    json_object_put(o);
    o = query(f, p->list_instances, "{\"name\": \"V\"}", NULL);
    assert_int_equal(json_object_array_length(o), 1);
    json_object_put(o);
    o = query(f, p->get_instance, "{\"name\": \"vm\"}", NULL);
    json_object *d0 = json_object_array_get_idx(json_object_object_get(o, "disks"), 0);
    assert_int_equal(json_object_get_int64(json_object_object_get(d0, "size_bytes")), 1 << 20);
    json_object_put(o);
    query(f, p->get_instance, "{\"name\": \"nope\"}", "no domain XML");
    o = query(f, p->list_networks, NULL, NULL);
    assert_int_equal(json_object_array_length(o), 2);
    json_object_put(o);
    o = query(f, p->list_storage, NULL, NULL);
    assert_string_equal(json_object_get_string(json_object_object_get(o, "config_default")),
                        f->src);
    json_object_put(o);
    o = query(f, p->destination_options, NULL, NULL);
    assert_int_equal(json_object_array_length(o), 0);
    json_object_put(o);
    /* a missing image does not hide the instance */
    _cleanup_free_ char *img = ek_xasprintf("%s/vm.img", f->src);
    unlink(img);
    o = query(f, p->get_instance, "{\"name\": \"vm\"}", NULL);
    d0 = json_object_array_get_idx(json_object_object_get(o, "disks"), 0);
    assert_non_null(
        strstr(json_object_get_string(json_object_object_get(d0, "error")), "cannot open"));
    json_object_put(o);
    json_object_object_add(f->origin.connection_info, "path", json_object_new_string(img));
    query(f, p->validate_connection, NULL, "No such file or directory");
    json_object_object_del(f->origin.connection_info, "path");
    query(f, p->validate_connection, NULL, "connection_info.path");
}

static void test_sparse_copy(void **state)
{
    fx_t *f = *state;
    _cleanup_free_ char *a = ek_xasprintf("%s/a.img", f->dir);
    _cleanup_free_ char *b = ek_xasprintf("%s/b.img", f->dir);
    int fd = open(a, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    static char block[65536];
    memset(block, 0x5a, sizeof(block));
    assert_int_equal(pwrite(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
    memset(block, 0, sizeof(block)); /* written zeros: data that should become a hole */
    assert_int_equal(pwrite(fd, block, sizeof(block), 65536), (ssize_t)sizeof(block));
    assert_int_equal(pwrite(fd, "tail", 4, (3 << 20) + 5), 4);
    assert_int_equal(ftruncate(fd, 8 << 20), 0);
    close(fd);
    bool cloned;
    assert_null(ek_local_file_copy(a, b, NULL, NULL, &cloned));
    _cleanup_free_ char *cmd = ek_xasprintf("cmp -s '%s' '%s'", a, b);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(file_size(f->dir, "b.img"), 8 << 20);
    assert_false(exists(f->dir, "b.img.part"));
    if (!cloned) {
        fd = open(b, O_RDONLY);
        assert_int_equal(lseek(fd, 0, SEEK_HOLE), 65536);
        assert_int_equal(lseek(fd, 65536, SEEK_DATA), 3 << 20);
        close(fd);
    }
    _cleanup_free_ char *none = ek_xasprintf("%s/none.img", f->dir);
    ek_err_t *err = ek_local_file_copy(none, b, NULL, NULL, &cloned);
    assert_non_null(strstr(err->message, "could not open"));
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test_setup_teardown(test_transfer_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disks_follow_the_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
