/* test_libvirt_domain_xml.c - the libvirt destination's generated domain
 * XML (deployed VMs and worker VMs), its option handling (config file,
 * destination environment overrides, errors that name the option), volume
 * serials and names, and the libvirt calls the test:///default driver
 * supports (define the generated XML and read it back, pools, volumes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <libvirt/virterror.h>
#include "common/config.h"
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/taskutil.h"
#include "worker/providers/libvirt/libvirt.h"

static const char *const SEED_SECTION = "[libvirt_migration_provider]\n"
                                        "default_storage_pool =\n"
                                        "migr_image_map =\n"
                                        "migr_worker_volume_size = 25\n"
                                        "migr_worker_memory = 4096\n"
                                        "migr_worker_vcpus = 2\n"
                                        "migr_worker_network =\n"
                                        "data_transfer_mechanism = https\n"
                                        "enable_vm_console_log = true\n"
                                        "vm_console_log_dir = /var/log/libvirt/qemu\n"
                                        "enable_vm_vnc_console = false\n"
                                        "vnc_listen_address = 0.0.0.0\n"
                                        "set_dhcp = true\n"
                                        "use_config_drive = false\n"
                                        "retain_user_credentials = true\n"
                                        "cpu_mode = host-passthrough\n"
                                        "cpu_migratable = true\n"
                                        "cpu_features = rdtscp,invtsc,x2apic\n"
                                        "migr_worker_iface_addr_src = agent\n"
                                        "ssh_key_path =\n"
                                        "add_tpm_device = true\n";

static ek_config_t *seed_config(const char *extra)
{
    ek_config_t *cfg = ek_config_new();
    char *text = ek_xasprintf("%s%s", SEED_SECTION, extra ? extra : "");
    ek_err_t *err = ek_config_load_string(cfg, text, "test.conf");
    free(text);
    assert_null(err);
    return cfg;
}

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    ek_err_t *err = ek_json_parse(text, strlen(text), &o);
    assert_null(err);
    return o;
}

/* Loads options and expects an error whose message holds `needle`. */
static void expect_opts_error(const ek_config_t *cfg, const char *env_text, const char *needle)
{
    json_object *env = env_text ? parse(env_text) : NULL;
    ek_lv_opts_t o;
    ek_err_t *err = ek_lv_opts_load(cfg, env, &o);
    assert_non_null(err);
    if (!strstr(err->message, needle))
        fail_msg("error \"%s\" does not name \"%s\"", err->message, needle);
    ek_err_free(err);
    json_object_put(env);
}

/* ---- options ------------------------------------------------------------------------- */

static void test_options_seed_defaults(void **state)
{
    (void)state;
    ek_config_t *cfg = seed_config(NULL);
    ek_lv_opts_t o;
    assert_null(ek_lv_opts_load(cfg, NULL, &o));
    assert_string_equal(o.default_storage_pool, "");
    assert_int_equal(o.worker_volume_size_gb, 25);
    assert_int_equal(o.worker_memory_mb, 4096);
    assert_int_equal(o.worker_vcpus, 2);
    assert_string_equal(o.data_transfer_mechanism, "https");
    assert_true(o.console_log);
    assert_string_equal(o.console_log_dir, "/var/log/libvirt/qemu");
    assert_false(o.vnc);
    assert_string_equal(o.cpu_mode, "host-passthrough");
    assert_true(o.cpu_migratable);
    assert_int_equal(o.cpu_features.n, 3);
    assert_string_equal(o.cpu_features.items[1], "invtsc");
    assert_string_equal(o.iface_addr_src, "agent");
    assert_true(o.add_tpm);
    assert_true(o.set_dhcp);
    assert_false(o.use_config_drive);
    assert_true(o.retain_user_credentials);
    assert_string_equal(o.domain_type, "auto");
    assert_string_equal(o.sqlite_database_file, "/opt/coriolis/libvirt_provider_db.sqlite");
    ek_lv_opts_release(&o);
    ek_config_free(cfg);
}

static void test_options_environment_overrides(void **state)
{
    (void)state;
    ek_config_t *cfg =
        seed_config("default_storage_pool = base\n"
                    "migr_image_map = linux: worker.qcow2, windows: imgs/win.qcow2\n");
    json_object *env = parse("{\"migr_worker_memory\": 256, \"enable_vm_vnc_console\": true,"
                             " \"vnc_listen_address\": \"127.0.0.1\","
                             " \"cpu_features\": [\"x2apic\"], \"cpu_migratable\": \"false\","
                             " \"data_transfer_mechanism\": \"ssh\", \"domain_type\": \"qemu\","
                             " \"migr_worker_iface_addr_src\": \"lease\"}");
    ek_lv_opts_t o;
    assert_null(ek_lv_opts_load(cfg, env, &o));
    assert_int_equal(o.worker_memory_mb, 256);
    assert_int_equal(o.worker_vcpus, 2); /* from the file */
    assert_true(o.vnc);
    assert_string_equal(o.vnc_listen_address, "127.0.0.1");
    assert_int_equal(o.cpu_features.n, 1);
    assert_false(o.cpu_migratable); /* a string, read as the file would */
    assert_string_equal(o.data_transfer_mechanism, "ssh");
    assert_string_equal(o.domain_type, "qemu");
    assert_string_equal(o.iface_addr_src, "lease");
    char *pool = NULL, *vol = NULL;
    assert_null(ek_lv_opts_image(NULL, &o, "linux", &pool, &vol));
    assert_string_equal(pool, "base");
    assert_string_equal(vol, "worker.qcow2");
    free(pool);
    free(vol);
    assert_null(ek_lv_opts_image(NULL, &o, "windows", &pool, &vol));
    assert_string_equal(pool, "imgs");
    assert_string_equal(vol, "win.qcow2");
    free(pool);
    free(vol);
    ek_lv_opts_release(&o);
    json_object_put(env);

    /* an environment map replaces the file's */
    env = parse("{\"migr_image_map\": {\"linux\": \"p2/w2\"}, \"default_storage_pool\": \"\"}");
    assert_null(ek_lv_opts_load(cfg, env, &o));
    ek_err_t *err = ek_lv_opts_image(NULL, &o, "windows", &pool, &vol);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "migr_image_map"));
    ek_err_free(err);
    ek_lv_opts_release(&o);
    json_object_put(env);
    ek_config_free(cfg);
}

static void test_options_errors_name_the_option(void **state)
{
    (void)state;
    ek_config_t *cfg = seed_config(NULL);
    expect_opts_error(cfg, "{\"cpu_mode\": \"host-magic\"}", "cpu_mode");
    expect_opts_error(cfg, "{\"no_such_option\": 1}", "no_such_option");
    expect_opts_error(cfg, "{\"migr_worker_memory\": [1]}", "migr_worker_memory");
    expect_opts_error(cfg, "{\"migr_worker_memory\": 1}", "migr_worker_memory");
    expect_opts_error(cfg, "{\"migr_worker_memory\": \"lots\"}", "migr_worker_memory");
    expect_opts_error(cfg, "{\"data_transfer_mechanism\": \"ftp\"}", "data_transfer_mechanism");
    expect_opts_error(cfg, "{\"migr_worker_iface_addr_src\": \"dns\"}",
                      "migr_worker_iface_addr_src");
    expect_opts_error(cfg, "{\"migr_image_map\": {\"solaris\": \"x\"}}", "migr_image_map");
    expect_opts_error(cfg, "{\"migr_image_map\": {\"linux\": \"a/b/c\"}}", "migr_image_map");
    expect_opts_error(cfg, "{\"vm_console_log_dir\": \"relative/dir\"}", "vm_console_log_dir");
    expect_opts_error(cfg, "{\"cpu_features\": [\"x2apic\", \"bad feature\"]}", "cpu_features");
    expect_opts_error(cfg, "{\"domain_type\": \"xen\"}", "domain_type");
    expect_opts_error(cfg, "{\"enable_vm_vnc_console\": true, \"vnc_listen_address\": \"\"}",
                      "vnc_listen_address");
    ek_config_free(cfg);
}

static void test_disk_pool_mappings(void **state)
{
    (void)state;
    ek_config_t *cfg = seed_config("default_storage_pool = fallback\n");
    ek_lv_opts_t o;
    assert_null(ek_lv_opts_load(cfg, NULL, &o));
    json_object *sm =
        parse("{\"default\": \"dflt\","
              " \"backend_mappings\": [{\"source\": \"fast\", \"destination\": \"ssd\"}],"
              " \"disk_mappings\": [{\"disk_id\": \"vdb\", \"destination\": \"big\"}]}");
    json_object *vda = parse("{\"id\": \"vda\", \"storage_backend\": \"fast\"}");
    json_object *vdb = parse("{\"id\": \"vdb\", \"storage_backend\": \"fast\"}");
    json_object *vdc = parse("{\"id\": \"vdc\", \"pool\": \"slow\"}");
    const char *p;
    assert_null(ek_lv_disk_pool(&o, sm, vda, &p));
    assert_string_equal(p, "ssd");
    assert_null(ek_lv_disk_pool(&o, sm, vdb, &p));
    assert_string_equal(p, "big");
    assert_null(ek_lv_disk_pool(&o, sm, vdc, &p));
    assert_string_equal(p, "dflt");
    assert_null(ek_lv_disk_pool(&o, NULL, vdc, &p));
    assert_string_equal(p, "fallback");
    ek_lv_opts_release(&o);
    ek_config_free(cfg);
    cfg = seed_config(NULL);
    assert_null(ek_lv_opts_load(cfg, NULL, &o));
    ek_err_t *err = ek_lv_disk_pool(&o, NULL, vdc, &p);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "default_storage_pool"));
    assert_non_null(strstr(err->message, "vdc"));
    ek_err_free(err);
    ek_lv_opts_release(&o);
    ek_config_free(cfg);
    json_object_put(sm);
    json_object_put(vda);
    json_object_put(vdb);
    json_object_put(vdc);
}

/* ---- names and serials ---------------------------------------------------------------- */

static void test_names_and_serials(void **state)
{
    (void)state;
    char a[21], b[21], c[21];
    ek_lv_volume_serial("pool", "ekman-web-vda.img", a);
    ek_lv_volume_serial("pool", "ekman-web-vda.img", b);
    ek_lv_volume_serial("pool", "ekman-web-vdb.img", c);
    assert_true(strlen(a) <= 20);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    char *s = ek_lv_safe_name("../we b/01");
    assert_string_equal(s, "_._we_b_01");
    free(s);
    assert_string_equal(ek_lv_machine_family("pc-q35-7.2"), "q35");
    assert_string_equal(ek_lv_machine_family("pc-i440fx-7.2"), "pc");
    assert_null(ek_lv_machine_family("virt"));
    bool bridge;
    json_object *map =
        parse("{\"lan\": \"default\", \"dmz\": \"bridge:br0\", \"x\": {\"id\": \"n2\"}}");
    assert_string_equal(ek_network_map_lookup(map, "lan", &bridge), "default");
    assert_false(bridge);
    assert_string_equal(ek_network_map_lookup(map, "dmz", &bridge), "br0");
    assert_true(bridge);
    assert_string_equal(ek_network_map_lookup(map, "x", &bridge), "n2");
    assert_null(ek_network_map_lookup(map, "wan", &bridge));
    json_object_put(map);
}

/* ---- domain XML ------------------------------------------------------------------------ */

static const ek_strlist_t *features(void)
{
    static char *items[] = {"rdtscp", "invtsc", "x2apic"};
    static const ek_strlist_t l = {3, items};
    return &l;
}

static ek_lv_vm_t deployed_vm(const ek_lv_vm_disk_t *disks, size_t n, const ek_lv_vm_nic_t *nics,
                              size_t nn)
{
    return (ek_lv_vm_t){.name = "web'01<&>",
                        .domain_type = "kvm",
                        .machine = "q35",
                        .efi = true,
                        .vcpus = 4,
                        .memory_mb = 2048,
                        .disks = disks,
                        .n_disks = n,
                        .nics = nics,
                        .n_nics = nn,
                        .cpu_options = true,
                        .tpm = true,
                        .console_log = "/var/log/libvirt/qemu/web01-serial.log",
                        .vnc = true,
                        .vnc_listen = "0.0.0.0",
                        .vnc_password = "Pw3xample",
                        .cpu_mode = "host-passthrough",
                        .cpu_migratable = true,
                        .cpu_features = features()};
}

#define HAS(xml, s)                                                                                \
    do {                                                                                           \
        if (!strstr((xml), (s)))                                                                   \
            fail_msg("the XML lacks %s:\n%s", (s), (xml));                                         \
    } while (0)

static void test_deployed_domain_xml(void **state)
{
    (void)state;
    ek_lv_vm_disk_t disks[] = {
        {.dev = "vda", .bus = "virtio", .path = "/p/a.img", .format = "raw", .boot_order = 1},
        {.dev = "hdb", .bus = "ide", .path = "/p/b.img", .format = "raw"},
        {.dev = "sdc", .bus = "scsi", .path = "/p/c.img", .format = "qcow2"},
    };
    ek_lv_vm_nic_t nics[] = {
        {.mac = "52:54:00:aa:bb:01", .network = "default"},
        {.mac = "52:54:00:aa:bb:02", .network = "br0", .bridge = true, .model = "e1000"}};
    ek_lv_vm_t vm = deployed_vm(disks, 3, nics, 2);
    char *xml, *note;
    assert_null(ek_lv_vm_xml(&vm, &xml, &note));
    assert_null(note);
    HAS(xml, "<domain type=\"kvm\">");
    assert_null(strstr(xml, "error_policy")); /* a deployed VM pauses on a full disk */
    HAS(xml, "passwd=\"Pw3xample\"");         /* no console without a password */
    HAS(xml, "<name>web'01&lt;&amp;&gt;</name>");
    HAS(xml, "<memory unit=\"MiB\">2048</memory>");
    HAS(xml, ">4</vcpu>");
    HAS(xml, "<os firmware=\"efi\">");
    HAS(xml, "machine=\"q35\"");
    HAS(xml, "<cpu mode=\"host-passthrough\" check=\"none\" migratable=\"on\">");
    HAS(xml, "cores=\"4\"");
    HAS(xml, "<feature policy=\"require\" name=\"rdtscp\"/>");
    HAS(xml, "<feature policy=\"require\" name=\"invtsc\"/>");
    HAS(xml, "<feature policy=\"require\" name=\"x2apic\"/>");
    HAS(xml, "<tpm model=\"tpm-crb\">");
    HAS(xml, "<backend type=\"emulator\" version=\"2.0\" persistent_state=\"yes\"/>");
    HAS(xml, "<log file=\"/var/log/libvirt/qemu/web01-serial.log\" append=\"on\"/>");
    HAS(xml, "<graphics type=\"vnc\" port=\"-1\" autoport=\"yes\" listen=\"0.0.0.0\" "
             "passwd=\"Pw3xample\">");
    HAS(xml, "<mac address=\"52:54:00:aa:bb:01\"/>");
    HAS(xml, "<source network=\"default\"/>");
    HAS(xml, "<source bridge=\"br0\"/>");
    HAS(xml, "<model type=\"e1000\"/>");
    HAS(xml, "<target dev=\"hdb\" bus=\"sata\"/>"); /* q35 has no IDE */
    HAS(xml, "<controller type=\"scsi\" model=\"virtio-scsi\"/>");
    HAS(xml, "<boot order=\"1\"/>");
    /* disks in the source's order */
    const char *a = strstr(xml, "/p/a.img"), *b = strstr(xml, "/p/b.img"),
               *c = strstr(xml, "/p/c.img");
    assert_true(a && b && c && a < b && b < c);
    HAS(xml, "name=\"org.qemu.guest_agent.0\""); /* every domain has the agent channel */
    free(xml);

    /* TCG cannot pass the host CPU through: 'maximum', and the task says so */
    vm.domain_type = "qemu";
    vm.cpu_migratable = false;
    vm.tpm = false;
    vm.vnc = false;
    vm.console_log = NULL;
    vm.efi = false;
    assert_null(ek_lv_vm_xml(&vm, &xml, &note));
    assert_non_null(note);
    assert_non_null(strstr(note, "host-passthrough"));
    HAS(xml, "<domain type=\"qemu\">");
    HAS(xml, "<cpu mode=\"maximum\" check=\"none\" migratable=\"off\">");
    assert_null(strstr(xml, "<tpm"));
    assert_null(strstr(xml, "<graphics"));
    assert_null(strstr(xml, "<log "));
    assert_null(strstr(xml, "firmware="));
    free(xml);
    free(note);

    /* empty cpu_mode and no features: libvirt's default CPU */
    vm.cpu_mode = "";
    static const ek_strlist_t none = {0, NULL};
    vm.cpu_features = &none;
    assert_null(ek_lv_vm_xml(&vm, &xml, &note));
    assert_null(strstr(xml, "<cpu"));
    free(xml);

    vm.memory_mb = 0;
    ek_err_t *err = ek_lv_vm_xml(&vm, &xml, &note);
    assert_non_null(err);
    ek_err_free(err);
}

static void test_worker_vm_xml(void **state)
{
    (void)state;
    ek_lv_vm_disk_t disks[] = {
        {.dev = "vda",
         .bus = "virtio",
         .path = "/p/m-root.qcow2",
         .format = "qcow2",
         .boot_order = 1},
        {.dev = "hdc", .bus = "ide", .path = "/p/m-cidata.iso", .format = "raw", .cdrom = true},
    };
    ek_lv_vm_nic_t nic = {.network = "ekman-net"};
    ek_lv_vm_t vm = {.name = "ekman-minion-0123abcd",
                     .domain_type = "qemu",
                     .machine = "pc",
                     .vcpus = 1,
                     .memory_mb = 256,
                     .disks = disks,
                     .n_disks = 2,
                     .nics = &nic,
                     .n_nics = 1,
                     .minion = true,
                     .console_log = "/l/m-serial.log"};
    char *xml, *note;
    assert_null(ek_lv_vm_xml(&vm, &xml, &note));
    HAS(xml, "<channel type=\"unix\">");
    HAS(xml, "name=\"org.qemu.guest_agent.0\"");
    HAS(xml, "<rng model=\"virtio\">");
    HAS(xml, "device=\"cdrom\"");
    HAS(xml, "<target dev=\"hdc\" bus=\"ide\"/>");
    HAS(xml, "<readonly/>");
    HAS(xml, "<source network=\"ekman-net\"/>");
    assert_null(strstr(xml, "<cpu"));
    assert_null(strstr(xml, "<mac "));
    free(xml);

    ek_lv_vm_disk_t att = {.dev = "vdb",
                           .bus = "virtio",
                           .path = "/p/r.img",
                           .format = "raw",
                           .serial = "ek0123456789abcdef"};
    char *dx = ek_lv_disk_attach_xml(&att);
    assert_non_null(dx);
    HAS(dx, "<disk type=\"file\" device=\"disk\">");
    HAS(dx, "<serial>ek0123456789abcdef</serial>");
    HAS(dx, "<target dev=\"vdb\" bus=\"virtio\"/>");
    /* a full destination is an error the writer reports, not a paused VM */
    HAS(dx, "error_policy=\"report\" rerror_policy=\"report\"");
    assert_null(strstr(dx, "<devices"));
    free(dx);
}

/* ---- test:///default -------------------------------------------------------------------- */

static void quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void test_libvirt_test_driver(void **state)
{
    (void)state;
    virSetErrorFunc(NULL, quiet);
    virConnectPtr c = virConnectOpen("test:///default");
    assert_non_null(c);
    ek_lv_vm_disk_t disks[] = {
        {.dev = "vda", .bus = "virtio", .path = "/default-pool/a.img", .format = "raw"}};
    ek_lv_vm_nic_t nic = {.mac = "52:54:00:aa:bb:01", .network = "default"};
    ek_lv_vm_t vm = deployed_vm(disks, 1, &nic, 1);
    vm.name = "lvdst-unit";
    vm.machine = NULL;
    vm.efi = false;
    char *xml, *note;
    assert_null(ek_lv_vm_xml(&vm, &xml, &note));
    virDomainPtr d = virDomainDefineXML(c, xml);
    free(xml);
    if (!d)
        fail_msg("test driver refused the XML: %s", virGetLastErrorMessage());
    char *back = virDomainGetXMLDesc(d, 0);
    assert_non_null(back);
    HAS(back, "host-passthrough");
    HAS(back, "invtsc");
    HAS(back, "tpm");
    HAS(back, "vnc");
    HAS(back, "52:54:00:aa:bb:01");
    HAS(back, "web01-serial.log");
    free(back);
    assert_int_equal(virDomainUndefine(d), 0);
    virDomainFree(d);

    /* pools: a missing one is named */
    virStoragePoolPtr p = NULL;
    ek_err_t *err = ek_lv_pool_get(c, "lvdst-no-such-pool", "the pool of disk 'vda'", &p);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_NOTFOUND);
    assert_non_null(strstr(err->message, "lvdst-no-such-pool"));
    assert_non_null(strstr(err->message, "disk 'vda'"));
    ek_err_free(err);
    assert_null(ek_lv_pool_get(c, "default-pool", "test", &p));
    virStorageVolPtr v = NULL;
    assert_null(ek_lv_vol_find(p, "lvdst-vol.img", &v));
    assert_null(v);
    v = virStorageVolCreateXML(p,
                               "<volume><name>lvdst-vol.img</name><capacity>1048576</capacity>"
                               "</volume>",
                               0);
    assert_non_null(v);
    virStorageVolFree(v);
    assert_null(ek_lv_vol_find(p, "lvdst-vol.img", &v));
    assert_non_null(v);
    virStorageVolFree(v);
    assert_null(ek_lv_vol_delete(c, "default-pool", "lvdst-vol.img"));
    assert_null(ek_lv_vol_delete(c, "default-pool", "lvdst-vol.img")); /* gone is fine */
    assert_null(ek_lv_vol_find(p, "lvdst-vol.img", &v));
    assert_null(v);
    virStoragePoolFree(p);

    /* a worker VM's removal tolerates what is already gone */
    assert_null(ek_lv_minion_remove_by_name(NULL, c, "ekman-minion-00000000", "default-pool"));
    json_object *res = parse("{\"minion\": \"not-ours\"}");
    err = ek_lv_minion_remove(NULL, c, res);
    assert_non_null(err);
    ek_err_free(err);
    json_object_put(res);
    virConnectClose(c);
}

/* Every cpu_mode the options accept, with and without cpu_features, on KVM
 * and TCG domains: either libvirt defines the XML, or the options refuse the
 * combination naming both options (issue #26). */
static void test_cpu_options_all_values(void **state)
{
    (void)state;
    virSetErrorFunc(NULL, quiet);
    virConnectPtr c = virConnectOpen("test:///default");
    assert_non_null(c);
    ek_config_t *cfg = seed_config(NULL);
    static const char *const modes[] = {"",        "host-passthrough", "host-model",
                                        "maximum", "custom",           "bogus"};
    static const char *const feats[] = {"[]", "[\"rdtscp\", \"invtsc\", \"x2apic\"]"};
    static const char *const dtypes[] = {"kvm", "qemu"};
    int defined = 0, refused = 0;
    for (size_t m = 0; m < 6; m++)
        for (size_t f = 0; f < 2; f++)
            for (size_t d = 0; d < 2; d++) {
                char env[256];
                snprintf(env, sizeof(env), "{\"cpu_mode\": \"%s\", \"cpu_features\": %s}", modes[m],
                         feats[f]);
                json_object *e = parse(env);
                ek_lv_opts_t o;
                ek_err_t *err = ek_lv_opts_load(cfg, e, &o);
                json_object_put(e);
                if (err) {
                    refused++;
                    bool both = strstr(err->message, "cpu_mode") != NULL &&
                                (m != 0 || strstr(err->message, "cpu_features") != NULL);
                    if (!both)
                        fail_msg("%s: \"%s\" does not name the options", env, err->message);
                    /* refused: features without a mode, custom (no model option), bogus */
                    assert_true((m == 0 && f == 1) || m >= 4);
                    ek_err_free(err);
                    continue;
                }
                assert_false((m == 0 && f == 1) || m >= 4);
                ek_lv_vm_t vm = deployed_vm(NULL, 0, NULL, 0);
                vm.name = "lvdst-cpu";
                vm.machine = NULL;
                vm.efi = false;
                vm.tpm = false;
                vm.domain_type = dtypes[d];
                vm.cpu_mode = o.cpu_mode;
                vm.cpu_migratable = o.cpu_migratable;
                vm.cpu_features = &o.cpu_features;
                char *xml = NULL, *note = NULL;
                assert_null(ek_lv_vm_xml(&vm, &xml, &note));
                free(note);
                virDomainPtr dom = virDomainDefineXML(c, xml);
                if (!dom)
                    fail_msg("%s on %s: libvirt refused the XML: %s\n%s", env, dtypes[d],
                             virGetLastErrorMessage(), xml);
                free(xml);
                defined++;
                assert_int_equal(virDomainUndefine(dom), 0);
                virDomainFree(dom);
                ek_lv_opts_release(&o);
            }
    /* invtsc with cpu_migratable (the seed's defaults): a warning, not a refusal */
    ek_lv_opts_t w;
    assert_null(ek_lv_opts_load(cfg, NULL, &w));
    char *warn = ek_lv_opts_warning(&w);
    assert_non_null(warn);
    assert_non_null(strstr(warn, "invtsc"));
    assert_non_null(strstr(warn, "cpu_migratable"));
    free(warn);
    ek_lv_opts_release(&w);
    json_object *we = parse("{\"cpu_migratable\": false}");
    assert_null(ek_lv_opts_load(cfg, we, &w));
    assert_null(ek_lv_opts_warning(&w));
    ek_lv_opts_release(&w);
    json_object_put(we);
    /* the worker image's pool must be a directory pool */
    virStoragePoolPtr fs = virStoragePoolDefineXML(
        c,
        "<pool type='fs'><name>lvdst-fs</name><source><device path='/dev/lvdst'/></source>"
        "<target><path>/lvdst-fs</path></target></pool>",
        0);
    assert_non_null(fs);
    assert_int_equal(virStoragePoolCreate(fs, 0), 0);
    virStorageVolFree(virStorageVolCreateXML(
        fs, "<volume><name>w.qcow2</name><capacity>1048576</capacity></volume>", 0));
    json_object *e = parse("{\"migr_image_map\": {\"linux\": \"lvdst-fs/w.qcow2\"}}");
    ek_lv_opts_t o;
    assert_null(ek_lv_opts_load(cfg, e, &o));
    ek_err_t *err = ek_lv_check_worker_image(c, &o, "linux");
    assert_non_null(err);
    if (!strstr(err->message, "'fs' pool") || !strstr(err->message, "directory ('dir') pool"))
        fail_msg("a worker image in an fs pool: \"%s\"", err->message);
    ek_err_free(err);
    ek_lv_opts_release(&o);
    json_object_put(e);
    e = parse("{\"migr_image_map\": {\"linux\": \"default-pool/lvdst-w.qcow2\"}}");
    assert_null(ek_lv_opts_load(cfg, e, &o));
    err = ek_lv_check_worker_image(c, &o, "linux"); /* a dir pool: only the image is missing */
    assert_non_null(err);
    assert_non_null(strstr(err->message, "is not in storage pool 'default-pool'"));
    ek_err_free(err);
    ek_lv_opts_release(&o);
    json_object_put(e);
    /* an absolute path (the seed's "image paths"): the volume of a pool there */
    virStoragePoolPtr dp = virStoragePoolLookupByName(c, "default-pool");
    virStorageVolFree(virStorageVolCreateXML(
        dp, "<volume><name>lvdst-w2.qcow2</name><capacity>1048576</capacity></volume>", 0));
    e = parse("{\"migr_image_map\": {\"linux\": \"/default-pool/lvdst-w2.qcow2\"}}");
    assert_null(ek_lv_opts_load(cfg, e, &o));
    char *pn = NULL, *vn = NULL;
    assert_null(ek_lv_opts_image(c, &o, "linux", &pn, &vn));
    assert_string_equal(pn, "default-pool");
    assert_string_equal(vn, "lvdst-w2.qcow2");
    free(pn);
    free(vn);
    assert_null(ek_lv_check_worker_image(c, &o, "linux"));
    ek_lv_opts_release(&o);
    json_object_put(e);
    e = parse("{\"migr_image_map\": {\"linux\": \"/nowhere/w.qcow2\"}}");
    assert_null(ek_lv_opts_load(cfg, e, &o));
    err = ek_lv_opts_image(c, &o, "linux", &pn, &vn);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "is not a volume of any libvirt storage pool"));
    ek_err_free(err);
    ek_lv_opts_release(&o);
    json_object_put(e);
    e = parse("{\"migr_image_map\": {\"linux\": \"/default-pool/../etc/x\"}}");
    err = ek_lv_opts_load(cfg, e, &o);
    assert_non_null(err);
    assert_non_null(strstr(err->message, "migr_image_map"));
    ek_err_free(err);
    json_object_put(e);
    virStorageVolPtr w2 = virStorageVolLookupByName(dp, "lvdst-w2.qcow2");
    virStorageVolDelete(w2, 0);
    virStorageVolFree(w2);
    virStoragePoolFree(dp);
    virStoragePoolDestroy(fs);
    virStoragePoolUndefine(fs);
    virStoragePoolFree(fs);
    assert_int_equal(defined + refused, 24);
    assert_int_equal(defined, 14);
    ek_config_free(cfg);
    virConnectClose(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_seed_defaults),
        cmocka_unit_test(test_options_environment_overrides),
        cmocka_unit_test(test_options_errors_name_the_option),
        cmocka_unit_test(test_disk_pool_mappings),
        cmocka_unit_test(test_names_and_serials),
        cmocka_unit_test(test_deployed_domain_xml),
        cmocka_unit_test(test_worker_vm_xml),
        cmocka_unit_test(test_libvirt_test_driver),
        cmocka_unit_test(test_cpu_options_all_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
