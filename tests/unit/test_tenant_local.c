/* test_tenant_local.c - the local provider is the operator's to enable and
 * reads only beneath the operator's [local] allowed_roots (issue #17):
 * no roots, no provider; a project cannot list or read a directory outside
 * the roots, nor reach one through a symbolic link or a disk path in its
 * domain XML; a qcow2 naming a worker file as its backing file, and a
 * <target dev='../x'>, are refused. Needs qemu-img. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "tests/unit/testsh.h"
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/integration/local/task_ctx.h"
#include "worker/providers/local/local.h"

static char *top;  /* /tmp/ek-test-tlocal-XXXXXX */
static char *root; /* top/root: the operator's root */
static ek_config_t *cfg;

#define DOMAIN(name, dev, src, fmt)                                                                \
    "<domain type='kvm'><name>" name "</name><memory unit='MiB'>64</memory><devices>"              \
    "<disk type='file' device='disk'><driver type='" fmt "'/><source file='" src "'/>"             \
    "<target dev='" dev "' bus='virtio'/></disk></devices></domain>"

static void write_text(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    top = ek_xstrdup("/tmp/ek-test-tlocal-XXXXXX");
    if (!mkdtemp(top))
        return -1;
    root = ek_xasprintf("%s/root", top);
    /* outside: another project's directory and a worker secret */
    sh("mkdir -p %s/outside %s/vms && printf 'EKMAN-SECRET\\n' > %s/outside/ekman.conf && "
       "truncate -s 1M %s/outside/other.img",
       top, root, top, top);
    write_text(top, "outside/other.xml", DOMAIN("other", "vda", "other.img", "raw"));
    sh("truncate -s 1M %s/vms/ok.img && ln -s %s/outside %s/link && ln -s / %s/vms/up && "
       "ln -s %s/outside/other.xml %s/vms/linked.xml",
       root, top, root, root, top, root);
    sh("qemu-img create -q -f qcow2 -b %s/outside/ekman.conf -F raw -u %s/vms/evil.qcow2 1M", top,
       root);
    write_text(root, "vms/ok.xml", DOMAIN("ok", "vda", "ok.img", "raw"));
    _cleanup_free_ char *abs =
        ek_xasprintf(DOMAIN("abs", "vda", "%s/outside/other.img", "raw"), top);
    write_text(root, "vms/abs.xml", abs);
    write_text(root, "vms/viaup.xml", DOMAIN("viaup", "vda", "up/etc/passwd", "raw"));
    write_text(root, "vms/evil.xml", DOMAIN("evil", "vda", "evil.qcow2", "qcow2"));
    write_text(root, "vms/dots.xml", DOMAIN("dots", "../x", "ok.img", "raw"));
    cfg = ek_config_new();
    _cleanup_free_ char *conf = ek_xasprintf("[local]\nallowed_roots = %s\n", root);
    return ek_config_load_string(cfg, conf, "test.conf") ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", top);
    ek_config_free(cfg);
    free(root);
    free(top);
    return 0;
}

/* Calls an endpoint function on {"path": path} with the given config;
 * returns the error (the output is dropped). */
static ek_err_t *call(ek_endpoint_fn fn, const ek_config_t *c, const char *path, const char *args,
                      json_object **out)
{
    json_object *ci = json_object_new_object();
    json_object_object_add(ci, "path", json_object_new_string(path));
    ek_endpoint_t ep = {"e", "projb-src", "local", ci, NULL, NULL, NULL};
    json_object *a = NULL;
    if (args)
        assert_null(ek_json_parse(args, strlen(args), &a));
    ek_task_ctx_t *ctx = ek_test_ctx_new(c, NULL, "t");
    json_object *o = NULL;
    ek_err_t *err = fn(ctx, &ep, a, &o);
    ek_test_ctx_free(ctx);
    json_object_put(a);
    json_object_put(ci);
    if (out)
        *out = o;
    else
        json_object_put(o);
    return err;
}

static void expect(ek_err_t *err, const char *fragment)
{
    if (!err)
        fail_msg("accepted; expected an error saying \"%s\"", fragment);
    if (!strstr(err->message, fragment))
        fail_msg("\"%s\" does not say \"%s\"", err->message, fragment);
    ek_err_free(err);
}

static void test_off_without_roots(void **state)
{
    (void)state;
    ek_config_t *none = ek_config_new();
    _cleanup_free_ char *vms = ek_xasprintf("%s/vms", root);
    expect(call(ek_provider_local.validate_connection, none, vms, NULL, NULL),
           "[local] allowed_roots");
    expect(call(ek_provider_local.list_instances, none, vms, NULL, NULL), "allowed_roots");
    expect(call(ek_provider_local.validate_connection, NULL, vms, NULL, NULL), "allowed_roots");
    ek_config_free(none);
}

static void test_outside_roots(void **state)
{
    (void)state;
    _cleanup_free_ char *outside = ek_xasprintf("%s/outside", top);
    expect(call(ek_provider_local.list_instances, cfg, outside, NULL, NULL), "not under any");
    expect(call(ek_provider_local.list_instances, cfg, "/etc", NULL, NULL), "not under any");
    _cleanup_free_ char *dotdot = ek_xasprintf("%s/../outside", root);
    expect(call(ek_provider_local.list_instances, cfg, dotdot, NULL, NULL), "..");
    /* a link inside the root that leads out of it */
    _cleanup_free_ char *link = ek_xasprintf("%s/link", root);
    expect(call(ek_provider_local.list_instances, cfg, link, NULL, NULL), "leads out");
    _cleanup_free_ char *up = ek_xasprintf("%s/vms/up/etc", root);
    expect(call(ek_provider_local.validate_connection, cfg, up, NULL, NULL), "leads out");
}

static void test_inside_roots(void **state)
{
    (void)state;
    _cleanup_free_ char *vms = ek_xasprintf("%s/vms", root);
    json_object *o = NULL;
    assert_null(call(ek_provider_local.list_instances, cfg, vms, NULL, &o));
    /* linked.xml leads out of the root: not read, so "other" is not listed */
    for (size_t i = 0; i < json_object_array_length(o); i++) {
        const char *n =
            json_object_get_string(json_object_object_get(json_object_array_get_idx(o, i), "name"));
        assert_string_not_equal(n, "other");
        assert_string_not_equal(n, "dots");
    }
    json_object_put(o);
    assert_null(call(ek_provider_local.get_instance, cfg, vms, "{\"name\": \"ok\"}", &o));
    json_object_put(o);
    expect(call(ek_provider_local.get_instance, cfg, vms, "{\"name\": \"other\"}", NULL),
           "no domain XML");
}

/* GET_INSTANCE_INFO of instance `name` in root/vms. */
static ek_err_t *instance_info(const char *name)
{
    _cleanup_free_ char *vms = ek_xasprintf("%s/vms", root);
    json_object *ci = json_object_new_object();
    json_object_object_add(ci, "path", json_object_new_string(vms));
    ek_endpoint_t ep = {"e", "projb-src", "local", ci, NULL, NULL, NULL};
    ek_task_input_t in = {.task_id = "t",
                          .execution_id = "x",
                          .task_type = "GET_INSTANCE_INFO",
                          .instance = name,
                          .origin = &ep};
    ek_task_fn fn = NULL;
    for (const ek_task_impl_t *t = ek_provider_local.tasks; t->task_type; t++)
        if (strcmp(t->task_type, "GET_INSTANCE_INFO") == 0)
            fn = t->run;
    assert_non_null(fn);
    ek_task_ctx_t *ctx = ek_test_ctx_new(cfg, NULL, "t");
    json_object *result = json_object_new_object();
    ek_err_t *err = fn(ctx, &in, result);
    json_object_put(result);
    ek_test_ctx_free(ctx);
    json_object_put(ci);
    return err;
}

static void test_disk_paths(void **state)
{
    (void)state;
    assert_null(instance_info("ok"));
    expect(instance_info("abs"), "not under any");
    expect(instance_info("viaup"), "leads out");
    expect(instance_info("evil"), "backing file");
    expect(instance_info("dots"), "no domain XML"); /* its XML does not parse */
    /* the XML itself is refused with the reason */
    _cleanup_free_ char *dots = ek_xasprintf("%s/vms/dots.xml", root);
    ek_local_scope_t sc = {cfg, "projb-src"};
    ek_local_domain_t *d = NULL;
    expect(ek_local_domain_load(&sc, dots, false, &d), "'../x' cannot be used");
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_without_roots),
        cmocka_unit_test(test_outside_roots),
        cmocka_unit_test(test_inside_roots),
        cmocka_unit_test(test_disk_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
