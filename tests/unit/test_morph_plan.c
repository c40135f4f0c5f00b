/* test_morph_plan.c - OS detection and morphing plans on the fixture trees of
 * tests/fixtures/morph/<distro>/ (just the files each step looks at). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/mem.h"
#include "worker/morph/detect.h"
#include "worker/morph/plan.h"

#define FIX EK_FIXTURES "/morph/"

/* the guest's sda2/sda3/sdb1 exist on the attached disks; sdc1 does not */
static const char *resolve(void *ud, const char *dev)
{
    (void)ud;
    if (!strcmp(dev, "/dev/sda1"))
        return "aaaa-0001";
    if (!strcmp(dev, "/dev/sda2"))
        return "aaaa-0002";
    if (!strcmp(dev, "/dev/sda3"))
        return "aaaa-0003";
    if (!strcmp(dev, "/dev/sdb1"))
        return "bbbb-0001";
    return NULL;
}

typedef struct built {
    ek_morph_os_t *os;
    ek_morph_plan_t *plan;
    ek_morph_opts_t *opts;
    ek_strbuf_t desc;
    ek_strv_t installed;
} built_t;

static void build(built_t *b, const char *distro, const char *opts_json,
                  const char *const *installed)
{
    memset(b, 0, sizeof(*b));
    _cleanup_free_ char *root = ek_xasprintf(FIX "%s", distro);
    ek_err_t *err = ek_morph_os_detect(root, &b->os);
    if (err)
        fail_msg("%s: %s", distro, err->message);
    err = ek_morph_opts_parse(opts_json, strlen(opts_json), &b->opts);
    assert_null(err);
    if (installed) {
        for (size_t i = 0; installed[i]; i++)
            ek_strv_add(&b->installed, installed[i]);
    } else {
        assert_null(ek_morph_dpkg_installed(root, &b->installed));
    }
    ek_morph_plan_in_t in = {
        .root = root, .os = b->os, .opts = b->opts, .installed = &b->installed, .resolve = resolve};
    err = ek_morph_plan_build(&in, &b->plan);
    if (err)
        fail_msg("%s: %s", distro, err->message);
    ek_morph_plan_describe(b->plan, &b->desc);
}

static void unbuild(built_t *b)
{
    ek_morph_os_free(b->os);
    ek_morph_plan_free(b->plan);
    ek_morph_opts_free(b->opts);
    ek_strbuf_release(&b->desc);
    ek_strv_clear(&b->installed);
}

static const ek_morph_action_t *find_write(const built_t *b, const char *path)
{
    for (size_t i = 0; i < b->plan->n; i++)
        if (b->plan->a[i].kind == EK_ACT_WRITE && !strcmp(b->plan->a[i].path, path))
            return &b->plan->a[i];
    fail_msg("no write of %s in the plan:\n%s", path, b->desc.buf);
    return NULL;
}

static void has(const built_t *b, const char *line)
{
    if (!strstr(b->desc.buf, line))
        fail_msg("the plan has no \"%s\":\n%s", line, b->desc.buf);
}

static void has_not(const built_t *b, const char *line)
{
    if (strstr(b->desc.buf, line))
        fail_msg("the plan has \"%s\":\n%s", line, b->desc.buf);
}

static void contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("\"%s\" not in:\n%s", needle, text);
}

static void test_debian12(void **state)
{
    (void)state;
    built_t b;
    build(&b, "debian12",
          "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true,"
          "\"nics\":[{\"mac\":\"00:50:56:01:02:03\",\"model\":\"vmxnet3\"}]}",
          NULL);
    assert_int_equal(b.os->family, EK_FAMILY_DEBIAN);
    assert_string_equal(b.os->id, "debian");
    assert_string_equal(b.os->version, "12");
    assert_string_equal(b.os->name, "Debian GNU/Linux 12 (bookworm)");
    assert_int_equal(b.os->kernels.n, 2);
    assert_string_equal(b.os->kernels.v[0], "6.1.0-18-amd64");
    assert_string_equal(b.os->kernels.v[1], "6.1.0-21-amd64");
    assert_string_equal(
        b.desc.buf,
        "step: Removing VMware, Hyper-V and VirtualBox guest tools\n"
        "run: dpkg --force-unsafe-io --purge open-vm-tools\n"
        "step: Adding the virtio drivers to the initramfs\n"
        "write /etc/initramfs-tools/modules\n"
        "run: update-initramfs -u -k 6.1.0-18-amd64\n"
        "run: update-initramfs -c -k 6.1.0-21-amd64\n"
        "step: Rewriting device names in fstab and the bootloader configuration\n"
        "write /etc/fstab\n"
        "write /etc/default/grub\n"
        "run: update-grub\n"
        "step: Configuring the network for the new NICs\n"
        "write /etc/systemd/network/10-ekman-ens192.link\n"
        "write /etc/network/interfaces\n"
        "step: Installing qemu-guest-agent and cloud-init\n"
        "write /usr/sbin/policy-rc.d\n"
        "run: apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=20 update\n"
        "run: apt-get -q -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o "
        "Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io install cloud-init\n"
        "remove /usr/sbin/policy-rc.d\n"
        "run: systemctl enable qemu-guest-agent cloud-init-local cloud-init cloud-config "
        "cloud-final\n"
        "write /etc/cloud/cloud.cfg.d/99-ekman-retain-credentials.cfg\n");
    /* virtio_net was listed already: not twice */
    const ek_morph_action_t *m = find_write(&b, "/etc/initramfs-tools/modules");
    contains(m->text, "vmw_pvscsi\nvirtio_net\n# added by ekman-morph");
    contains(m->text, "virtio_blk\nvirtio_scsi\nvirtio_pci\nvirtio_console\n");
    assert_null(strstr(strstr(m->text, "# added"), "virtio_net"));
    const ek_morph_action_t *f = find_write(&b, "/etc/fstab");
    contains(f->text, "# /dev/sda2              /boot ext4 defaults 0 2\n"
                      "UUID=aaaa-0002              /boot ext4 defaults 0 2\n");
    contains(f->text, "UUID=bbbb-0001              /srv  xfs");
    contains(f->text, "/dev/mapper/ekguest-root /     ext4");
    contains(f->text, "\n/dev/sr0 "); /* a CD-ROM is not a disk of the VM */
    contains(f->change,
             "/etc/fstab: /dev/sda2 -> UUID=aaaa-0002\n/etc/fstab: /dev/sdb1 -> UUID=bbbb-0001");
    const ek_morph_action_t *g = find_write(&b, "/etc/default/grub");
    contains(g->text, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=UUID=aaaa-0003\"");
    /* root= changed: a failing update-grub fails the morphing */
    for (size_t i = 0; i < b.plan->n; i++)
        if (b.plan->a[i].kind == EK_ACT_RUN && !strcmp(b.plan->a[i].argv.v[0], "update-grub"))
            assert_int_equal(b.plan->a[i].on_fail, EK_FAIL_ERROR);
    const ek_morph_action_t *l = find_write(&b, "/etc/systemd/network/10-ekman-ens192.link");
    contains(l->text, "[Match]\nMACAddress=00:50:56:01:02:03\n\n[Link]\nName=ens192\n");
    const ek_morph_action_t *n = find_write(&b, "/etc/network/interfaces");
    contains(n->text, "iface ens192 inet dhcp\n    dns-nameservers 192.168.10.1\n");
    assert_null(strstr(n->text, "address 192.168.10.20"));
    assert_null(strstr(n->text, "gateway"));
    contains(n->text, "iface lo inet loopback\n");
    const ek_morph_action_t *c =
        find_write(&b, "/etc/cloud/cloud.cfg.d/99-ekman-retain-credentials.cfg");
    contains(c->text, "ssh_deletekeys: false\ndisable_root: false\n");
    unbuild(&b);
}

static void test_debian12_packages_dir_and_script(void **state)
{
    (void)state;
    built_t b;
    build(&b, "debian12",
          "{\"disks\":[\"/dev/vdb\"],\"retain_user_credentials\":false,"
          "\"packages_dir\":\"" FIX "packages\",\"user_script\":\"echo hi\"}",
          NULL);
    /* qemu-guest-agent is installed already: only cloud-init is copied */
    has(&b, "copy /tmp/ekman-packages/cloud-init_22.4.2-1_all.deb\n"
            "run: /bin/sh -c for pass in 1 2 3 4 5 6; do dpkg --force-unsafe-io -i "
            "--skip-same-version \"$@\" && break; ");
    /* a later pass takes only what is not unpacked yet; the rest is
     * configured once at the end */
    has(&b, "st=$(dpkg-query -W -f='${Package} ${db:Status-Status}\\n' $names");
    has(&b, "done; dpkg --force-unsafe-io --configure -a && test -z \"$(dpkg --audit)\" "
            "ekman-install /tmp/ekman-packages/cloud-init_22.4.2-1_all.deb\n"
            "remove /tmp/ekman-packages\n");
    has_not(&b, "update\n");    /* no repository access when the files are there */
    has_not(&b, "cloud.cfg.d"); /* retain_user_credentials false */
    has_not(&b, "network");     /* no NIC given, no DHCP */
    has(&b, "step: Running the user script\nwrite /tmp/ekman-user-script\n"
            "run: /bin/sh /tmp/ekman-user-script\nremove /tmp/ekman-user-script\n");
    unbuild(&b);
}

static void test_ubuntu2204(void **state)
{
    (void)state;
    built_t b;
    build(&b, "ubuntu2204",
          "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true,\"nics\":[{\"model\":\"vmxnet3\"}]}", NULL);
    assert_int_equal(b.os->family, EK_FAMILY_DEBIAN);
    assert_string_equal(b.os->id, "ubuntu");
    assert_string_equal(b.os->version, "22.04");
    /* ubuntu-server depends on open-vm-tools: kept, and said so */
    has(&b, "event INFO: open-vm-tools is kept");
    has_not(&b, "dpkg --purge");
    has(&b, "run: update-initramfs -u -k 5.15.0-105-generic\n");
    has(&b, "write /etc/fstab\n");
    has_not(&b, "update-grub"); /* no grub.cfg in the fixture */
    /* no MAC: the first virtio NIC keeps the first configured name */
    const ek_morph_action_t *l = find_write(&b, "/etc/systemd/network/10-ekman-ens160.link");
    contains(l->text, "Driver=virtio_net\nOriginalName=eth0\n");
    const ek_morph_action_t *n = find_write(&b, "/etc/netplan/00-installer-config.yaml");
    assert_string_equal(n->text, "# This is the network config written by subiquity\n"
                                 "network:\n"
                                 "  ethernets:\n"
                                 "    ens160:\n"
                                 "      dhcp4: true\n"
                                 "      nameservers:\n"
                                 "        addresses:\n"
                                 "        - 10.1.2.1\n"
                                 "        search: []\n"
                                 "    ens192:\n"
                                 "      dhcp4: true\n"
                                 "  version: 2\n");
    assert_string_equal(n->change, "/etc/netplan/00-installer-config.yaml: ens160 uses DHCP\n"
                                   "/etc/netplan/00-installer-config.yaml: ens192 uses DHCP");
    /* cloud-init installed already: only the agent */
    has(&b, "install qemu-guest-agent\n");
    unbuild(&b);
}

static const char *const rhel_installed[] = {
    "bash", "open-vm-tools", "open-vm-tools-desktop", "hyperv-daemons", "kernel", NULL};

static void test_rhel9(void **state)
{
    (void)state;
    built_t b;
    build(&b, "rhel9",
          "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true,"
          "\"nics\":[{\"mac\":\"00:50:56:aa:bb:cc\"}]}",
          rhel_installed);
    assert_int_equal(b.os->family, EK_FAMILY_RHEL);
    assert_string_equal(b.os->id, "rhel");
    assert_string_equal(b.os->version, "9.3");
    assert_int_equal(b.os->major, 9);
    assert_string_equal(
        b.desc.buf,
        "step: Removing VMware, Hyper-V and VirtualBox guest tools\n"
        "run: rpm -e --nodeps open-vm-tools open-vm-tools-desktop hyperv-daemons\n"
        "step: Adding the virtio drivers to the initramfs\n"
        "write /etc/dracut.conf.d/ekman-virtio.conf\n"
        "run: dracut -f --kver 5.14.0-362.8.1.el9_3.x86_64\n"
        "step: Rewriting device names in fstab and the bootloader configuration\n"
        "remove /etc/lvm/devices/system.devices\n"
        "run: grub2-mkconfig -o /boot/grub2/grub.cfg\n"
        "step: Configuring the network for the new NICs\n"
        "write /etc/systemd/network/10-ekman-ens192.link\n"
        "write /etc/NetworkManager/system-connections/ens192.nmconnection\n"
        "step: Installing qemu-guest-agent and cloud-init\n"
        "run: dnf -y --disableplugin=subscription-manager --setopt=timeout=20 "
        "--setopt=retries=0 install qemu-guest-agent cloud-init\n"
        "run: systemctl enable qemu-guest-agent cloud-init-local cloud-init cloud-config "
        "cloud-final\n"
        "write /etc/cloud/cloud.cfg.d/99-ekman-retain-credentials.cfg\n"
        "step: Relabelling SELinux contexts at first boot\n"
        "write /.autorelabel\n");
    const ek_morph_action_t *d = find_write(&b, "/etc/dracut.conf.d/ekman-virtio.conf");
    contains(d->text, "add_drivers+=\" virtio_blk virtio_scsi virtio_net virtio_pci "
                      "virtio_console \"\n");
    const ek_morph_action_t *k =
        find_write(&b, "/etc/NetworkManager/system-connections/ens192.nmconnection");
    contains(k->text, "[ipv4]\ndns=192.168.122.1;\nmethod=auto\n\n[ipv6]\naddr-gen-mode=eui64\n"
                      "method=auto\n");
    assert_null(strstr(k->text, "address1"));
    assert_int_equal(k->mode, 0600);
    /* the install is one group: an unreachable repository skips the enable */
    const ek_morph_action_t *dnf = NULL, *en = NULL;
    for (size_t i = 0; i < b.plan->n; i++)
        if (b.plan->a[i].kind == EK_ACT_RUN) {
            if (!strcmp(b.plan->a[i].argv.v[0], "dnf"))
                dnf = &b.plan->a[i];
            if (!strcmp(b.plan->a[i].argv.v[0], "systemctl"))
                en = &b.plan->a[i];
        }
    assert_non_null(dnf);
    assert_non_null(en);
    assert_true(dnf->online);
    assert_int_equal(dnf->on_fail, EK_FAIL_WARN);
    assert_true(dnf->group != 0 && dnf->group == en->group);
    contains(dnf->fail_hint, "qemu-guest-agent, cloud-init not installed");
    contains(dnf->fail_hint, "osmorphing_packages_dir");
    contains(dnf->fail_hint, ".rpm");
    unbuild(&b);
}

static void test_rocky8(void **state)
{
    (void)state;
    built_t b;
    build(&b, "rocky8",
          "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true,"
          "\"nics\":[{\"mac\":\"52:54:00:00:00:01\"},{\"mac\":\"00:50:56:aa:bb:cc\"}]}",
          rhel_installed);
    assert_string_equal(b.os->id, "rocky");
    assert_string_equal(b.os->version, "8.9");
    has(&b, "run: dracut -f --kver 4.18.0-513.5.1.el8_9.x86_64\n");
    has(&b, "write /etc/fstab\n");
    has(&b, "run: yum -y");
    has(&b, "write /.autorelabel\n"); /* permissive */
    /* the NIC whose MAC the ifcfg names gets its name; the other none */
    const ek_morph_action_t *l = find_write(&b, "/etc/systemd/network/10-ekman-ens192.link");
    contains(l->text, "MACAddress=00:50:56:aa:bb:cc");
    has_not(&b, "ifcfg-lo");
    const ek_morph_action_t *c = find_write(&b, "/etc/sysconfig/network-scripts/ifcfg-ens192");
    assert_string_equal(c->text, "TYPE=Ethernet\nBOOTPROTO=dhcp\nNAME=ens192\nDEVICE=ens192\n"
                                 "ONBOOT=yes\nHWADDR=00:50:56:AA:BB:CC\n");
    unbuild(&b);
}

static void test_ol8(void **state)
{
    (void)state;
    built_t b;
    build(&b, "ol8", "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true}", rhel_installed);
    /* ID=ol reads /etc/oracle-release, not the redhat-release next to it */
    assert_int_equal(b.os->family, EK_FAMILY_RHEL);
    assert_string_equal(b.os->id, "ol");
    assert_string_equal(b.os->version, "8.9");
    assert_string_equal(b.os->name, "Oracle Linux Server release 8.9");
    assert_int_equal(b.os->kernels.n, 2);
    has(&b, "run: dracut -f --kver 4.18.0-513.9.1.el8_9.x86_64\n"
            "run: dracut -f --kver 5.15.0-200.131.27.el8uek.x86_64\n");
    has(&b, "run: dnf -y");
    has_not(&b, "write /etc/sysconfig/network-scripts/ifcfg-eth0"); /* DHCP already */
    has_not(&b, "grub2-mkconfig");                                  /* no grub in the fixture */
    has_not(&b, "systemctl");                                       /* nor systemctl */
    has_not(&b, "autorelabel");
    unbuild(&b);
}

static void test_sles15(void **state)
{
    (void)state;
    built_t b;
    static const char *const inst[] = {"open-vm-tools", "cloud-init", NULL};
    build(&b, "sles15", "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true}", inst);
    assert_int_equal(b.os->family, EK_FAMILY_SUSE);
    assert_string_equal(b.os->id, "sles");
    assert_string_equal(b.os->version, "15.5");
    has(&b, "write /etc/vmware-tools/locations\nrun: /usr/bin/vmware-uninstall-tools.pl\n"
            "run: zypper -n rm open-vm-tools\n");
    const ek_morph_action_t *loc = find_write(&b, "/etc/vmware-tools/locations");
    contains(loc->text, "answer BINDIR /usr/bin\nremove_answer RESTORE_RAMDISK_CMD\n");
    has(&b, "run: dracut -f --kver 5.14.21-150500.53-default\n");
    /* swap on /dev/sda3 in fstab and resume= in grub */
    const ek_morph_action_t *f = find_write(&b, "/etc/fstab");
    contains(f->text, "\nUUID=aaaa-0003 swap swap defaults 0 0\n");
    const ek_morph_action_t *g = find_write(&b, "/etc/default/grub");
    contains(g->text, "resume=UUID=aaaa-0003 quiet\"");
    has(&b, "run: grub2-mkconfig -o /boot/grub2/grub.cfg\n");
    const ek_morph_action_t *c = find_write(&b, "/etc/sysconfig/network/ifcfg-eth0");
    assert_string_equal(c->text, "BOOTPROTO='dhcp'\nSTARTMODE='auto'\n");
    has_not(&b, "ifcfg-lo");
    has(&b, "run: zypper -n --no-gpg-checks in -l qemu-guest-agent\n");
    unbuild(&b);
}

static void test_opensuse_leap(void **state)
{
    (void)state;
    built_t b;
    static const char *const inst[] = {"VirtualBox-guest-tools", "qemu-guest-agent", NULL};
    build(&b, "opensuse-leap", "{\"disks\":[\"/dev/vdb\"],\"set_dhcp\":true}", inst);
    assert_int_equal(b.os->family, EK_FAMILY_SUSE);
    assert_string_equal(b.os->id, "opensuse-leap");
    assert_string_equal(b.os->name, "openSUSE Leap 15.5");
    has(&b, "run: zypper -n rm VirtualBox-guest-tools\n");
    has(&b, "run: dracut -f --kver 5.14.21-150500.55.39-default\n");
    has(&b, "in -l cloud-init\n");
    has_not(&b, "ifcfg-eth0");
    unbuild(&b);
}

static void test_sles11_mkinitrd(void **state)
{
    (void)state;
    built_t b;
    build(&b, "sles11", "{\"disks\":[\"/dev/vdb\"]}", (const char *const[]){NULL});
    assert_int_equal(b.os->family, EK_FAMILY_SUSE);
    assert_string_equal(b.os->id, "sles");
    assert_string_equal(b.os->version, "11.4");
    has(&b, "run: mkinitrd -m virtio_blk virtio_scsi virtio_net virtio_pci virtio_console -k "
            "/boot/vmlinuz-3.0.101-63-default -i /boot/initrd-3.0.101-63-default\n");
    has(&b, "write /etc/fstab\n");
    unbuild(&b);
}

static void test_unknown(void **state)
{
    (void)state;
    ek_morph_os_t *os = NULL;
    ek_err_t *err = ek_morph_os_detect(FIX "unknown", &os);
    assert_non_null(err);
    assert_null(os);
    contains(err->message, "not one OS morphing supports");
    contains(err->message, "/etc/os-release says ID=arch");
    ek_err_free(err);
    /* no release file at all */
    err = ek_morph_os_detect(FIX "packages", &os);
    assert_non_null(err);
    contains(err->message, "has none of /etc/os-release");
    ek_err_free(err);
}

static void test_no_kernel(void **state)
{
    (void)state;
    /* a tree without /lib/modules/<v> + /boot/vmlinuz-<v> is a plan error
     * that says where to look */
    ek_morph_os_t fake = {.family = EK_FAMILY_DEBIAN, .id = "debian", .version = "12", .name = "x"};
    ek_morph_opts_t *o = NULL;
    assert_null(ek_morph_opts_parse("{\"disks\":[\"/dev/vdb\"]}", 22, &o));
    ek_morph_plan_in_t in = {.root = FIX "unknown", .os = &fake, .opts = o, .resolve = resolve};
    ek_morph_plan_t *p = NULL;
    ek_err_t *err = ek_morph_plan_build(&in, &p);
    assert_non_null(err);
    contains(err->message, "no installed kernel found");
    ek_err_free(err);
    ek_morph_opts_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debian12),
        cmocka_unit_test(test_debian12_packages_dir_and_script),
        cmocka_unit_test(test_ubuntu2204),
        cmocka_unit_test(test_rhel9),
        cmocka_unit_test(test_rocky8),
        cmocka_unit_test(test_ol8),
        cmocka_unit_test(test_sles15),
        cmocka_unit_test(test_opensuse_leap),
        cmocka_unit_test(test_sles11_mkinitrd),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_no_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
