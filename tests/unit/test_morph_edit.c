/* test_morph_edit.c - the text rewrites of the morphing engine: fstab and
 * /etc/default/grub device names, and the network configuration styles
 * (names found, static -> DHCP, name pinning files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "worker/morph/fstab.h"
#include "worker/morph/netcfg.h"

static const char *resolve(void *ud, const char *dev)
{
    (void)ud;
    if (!strcmp(dev, "/dev/sda1"))
        return "1111";
    if (!strcmp(dev, "/dev/hda2"))
        return "2222";
    if (!strcmp(dev, "/dev/xvdb"))
        return "3333";
    return NULL;
}

static void test_fstab(void **state)
{
    (void)state;
    const char *in = "# comment /dev/sda1\n"
                     "/dev/sda1\t/boot\text4\tdefaults\t0 2\n"
                     "  /dev/hda2 /home xfs defaults 0 0\n"
                     "/dev/xvdb none swap sw 0 0\n"
                     "/dev/sdc1 /data ext4 defaults 0 0\n"
                     "UUID=abcd / ext4 defaults 0 1\n"
                     "/dev/mapper/vg-lv /var ext4 defaults 0 0\n"
                     "/dev/sr0 /cdrom auto noauto 0 0";
    ek_strv_t ch = {0}, un = {0};
    char *out = ek_morph_fstab_rewrite(in, resolve, NULL, &ch, &un);
    assert_string_equal(out, "# comment /dev/sda1\n"
                             "# /dev/sda1\t/boot\text4\tdefaults\t0 2\n"
                             "UUID=1111\t/boot\text4\tdefaults\t0 2\n"
                             "#   /dev/hda2 /home xfs defaults 0 0\n"
                             "  UUID=2222 /home xfs defaults 0 0\n"
                             "# /dev/xvdb none swap sw 0 0\n"
                             "UUID=3333 none swap sw 0 0\n"
                             "/dev/sdc1 /data ext4 defaults 0 0\n"
                             "UUID=abcd / ext4 defaults 0 1\n"
                             "/dev/mapper/vg-lv /var ext4 defaults 0 0\n"
                             "/dev/sr0 /cdrom auto noauto 0 0");
    assert_int_equal(ch.n, 3);
    assert_string_equal(ch.v[0], "/etc/fstab: /dev/sda1 -> UUID=1111");
    assert_int_equal(un.n, 1);
    assert_string_equal(un.v[0], "/dev/sdc1");
    free(out);
    ek_strv_clear(&ch);
    ek_strv_clear(&un);

    ek_morph_fstab_t f;
    ek_morph_fstab_parse("# x\n/dev/sda1 /mnt/my\\040disk ext4\nbad line\n\nLABEL=r / xfs ro 0 0\n",
                         &f);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.e[0].file, "/mnt/my disk");
    assert_string_equal(f.e[0].opts, "defaults");
    assert_string_equal(f.e[1].spec, "LABEL=r");
    assert_string_equal(f.e[1].opts, "ro");
    ek_morph_fstab_clear(&f);

    assert_true(ek_morph_dev_is_unstable("/dev/sda"));
    assert_true(ek_morph_dev_is_unstable("/dev/xvda1"));
    assert_false(ek_morph_dev_is_unstable("/dev/sr0"));
    assert_false(ek_morph_dev_is_unstable("/dev/vda1"));
    assert_false(ek_morph_dev_is_unstable("/dev/mapper/x"));
}

static void test_grub(void **state)
{
    (void)state;
    const char *in = "GRUB_DEFAULT=0\n"
                     "GRUB_CMDLINE_LINUX=\"root=/dev/sda1 ro resume=/dev/sdq2 console=ttyS0\"\n"
                     "GRUB_CMDLINE_LINUX_DEFAULT='quiet resume=/dev/hda2'\n"
                     "#GRUB_CMDLINE_LINUX=\"root=/dev/sda1\"\n"
                     "GRUB_CMDLINE_XEN=\"root=/dev/sda1\"\n"
                     "GRUB_CMDLINE_LINUX_RECOVERY=\"noroot=/dev/sda1\"\n";
    ek_strv_t ch = {0}, un = {0};
    char *out = ek_morph_grub_default_rewrite(in, resolve, NULL, &ch, &un);
    assert_string_equal(out,
                        "GRUB_DEFAULT=0\n"
                        "GRUB_CMDLINE_LINUX=\"root=UUID=1111 ro resume=/dev/sdq2 console=ttyS0\"\n"
                        "GRUB_CMDLINE_LINUX_DEFAULT='quiet resume=UUID=2222'\n"
                        "#GRUB_CMDLINE_LINUX=\"root=/dev/sda1\"\n"
                        "GRUB_CMDLINE_XEN=\"root=/dev/sda1\"\n"
                        "GRUB_CMDLINE_LINUX_RECOVERY=\"noroot=/dev/sda1\"\n");
    assert_int_equal(ch.n, 2);
    assert_string_equal(ch.v[0], "/etc/default/grub: root=/dev/sda1 -> root=UUID=1111");
    assert_int_equal(un.n, 1);
    assert_string_equal(un.v[0], "/dev/sdq2");
    free(out);
    ek_strv_clear(&ch);
    ek_strv_clear(&un);
}

static void check_dhcp(ek_morph_netstyle_t style, const char *in, const char *file,
                       const char *want, const char *changed)
{
    ek_strv_t ch = {0};
    char *out = ek_morph_net_dhcp(style, in, file, &ch);
    assert_string_equal(out, want);
    if (changed) {
        assert_int_equal(ch.n, 1);
        assert_string_equal(ch.v[0], changed);
    } else {
        assert_int_equal(ch.n, 0);
    }
    free(out);
    ek_strv_clear(&ch);
}

static void test_ifupdown(void **state)
{
    (void)state;
    const char *in = "auto lo\niface lo inet loopback\n\n"
                     "auto ens192\niface ens192 inet static\n"
                     "\taddress 10.0.0.2\n\tnetmask 255.255.255.0\n\tgateway 10.0.0.1\n"
                     "\thwaddress ether 00:50:56:AA:00:01\n"
                     "iface ens192 inet6 static\n\taddress fd00::2/64\n\n"
                     "iface ens224 inet dhcp\n";
    check_dhcp(EK_NET_IFUPDOWN, in, "/etc/network/interfaces",
               "auto lo\niface lo inet loopback\n\n"
               "auto ens192\niface ens192 inet dhcp\n"
               "\thwaddress ether 00:50:56:AA:00:01\n"
               "iface ens192 inet6 auto\n\n"
               "iface ens224 inet dhcp\n",
               "ens192");
    ek_strv_t names = {0}, macs = {0};
    ek_morph_net_names(EK_NET_IFUPDOWN, in, NULL, &names, &macs);
    assert_int_equal(names.n, 2);
    assert_string_equal(names.v[0], "ens192");
    assert_string_equal(macs.v[0], "00:50:56:aa:00:01");
    assert_string_equal(names.v[1], "ens224");
    assert_string_equal(macs.v[1], "");
    ek_strv_clear(&names);
    ek_strv_clear(&macs);
}

static void test_netplan(void **state)
{
    (void)state;
    const char *in = "network:\n"
                     "    version: 2\n"
                     "    renderer: networkd\n"
                     "    ethernets:\n"
                     "        lan:\n"
                     "            match:\n"
                     "                macaddress: \"00:50:56:aa:00:02\"\n"
                     "            set-name: ens192\n"
                     "            addresses: [192.168.1.5/24, \"fd00::5/64\"]\n"
                     "            routes:\n"
                     "              - to: default\n"
                     "                via: 192.168.1.1\n"
                     "            mtu: 1500\n"
                     "    bridges:\n"
                     "        br0:\n"
                     "            addresses: [10.0.0.1/24]\n";
    check_dhcp(EK_NET_NETPLAN, in, NULL,
               "network:\n"
               "    version: 2\n"
               "    renderer: networkd\n"
               "    ethernets:\n"
               "        lan:\n"
               "            dhcp4: true\n"
               "            match:\n"
               "                macaddress: \"00:50:56:aa:00:02\"\n"
               "            set-name: ens192\n"
               "            mtu: 1500\n"
               "    bridges:\n"
               "        br0:\n"
               "            addresses: [10.0.0.1/24]\n",
               "lan");
    ek_strv_t names = {0}, macs = {0};
    ek_morph_net_names(EK_NET_NETPLAN, in, NULL, &names, &macs);
    assert_int_equal(names.n, 1);
    assert_string_equal(names.v[0], "ens192");
    assert_string_equal(macs.v[0], "00:50:56:aa:00:02");
    ek_strv_clear(&names);
    ek_strv_clear(&macs);
    /* the last interface of the file, with nothing after it */
    check_dhcp(EK_NET_NETPLAN, "network:\n  ethernets:\n    eth0:\n      addresses: [1.2.3.4/8]",
               NULL, "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n", "eth0");
}

static void test_keyfile(void **state)
{
    (void)state;
    const char *in = "[connection]\nid=Wired\ntype=ethernet\ninterface-name=ens192\n\n"
                     "[ethernet]\nmac-address=00:50:56:AA:00:03\n\n"
                     "[ipv4]\naddress1=10.1.1.1/24,10.1.1.254\nmethod=manual\ndns=1.1.1.1;\n\n"
                     "[ipv6]\nmethod=ignore\n";
    check_dhcp(EK_NET_NMKEYFILE, in, NULL,
               "[connection]\nid=Wired\ntype=ethernet\ninterface-name=ens192\n\n"
               "[ethernet]\nmac-address=00:50:56:AA:00:03\n\n"
               "[ipv4]\nmethod=auto\ndns=1.1.1.1;\n\n"
               "[ipv6]\nmethod=ignore\n",
               "ens192");
    ek_strv_t names = {0}, macs = {0};
    ek_morph_net_names(EK_NET_NMKEYFILE, in, NULL, &names, &macs);
    assert_string_equal(names.v[0], "ens192");
    assert_string_equal(macs.v[0], "00:50:56:aa:00:03");
    ek_strv_clear(&names);
    ek_strv_clear(&macs);
    /* a bridge profile names no NIC */
    ek_morph_net_names(EK_NET_NMKEYFILE, "[connection]\ntype=bridge\ninterface-name=br0\n", NULL,
                       &names, &macs);
    assert_int_equal(names.n, 0);
}

static void test_ifcfg(void **state)
{
    (void)state;
    /* RHEL network-scripts */
    check_dhcp(EK_NET_IFCFG,
               "DEVICE=ens192\nBOOTPROTO=static\nIPADDR=10.2.2.2\nNETMASK=255.0.0.0\n"
               "GATEWAY=10.0.0.1\nDNS1=10.0.0.1\nONBOOT=yes\n",
               "/etc/sysconfig/network-scripts/ifcfg-ens192",
               "DEVICE=ens192\nBOOTPROTO=dhcp\nDNS1=10.0.0.1\nONBOOT=yes\n", "ens192");
    /* no BOOTPROTO but an address: static; the name from the file name */
    check_dhcp(EK_NET_IFCFG, "IPADDR0=10.2.2.2\nPREFIX0=8\n",
               "/etc/sysconfig/network-scripts/ifcfg-eth1", "BOOTPROTO=dhcp\n", "eth1");
    /* SUSE wicked, quoted */
    check_dhcp(EK_NET_IFCFG, "BOOTPROTO='static'\nIPADDR='10.0.0.5/24'\nSTARTMODE='auto'\n",
               "/etc/sysconfig/network/ifcfg-eth0", "BOOTPROTO='dhcp'\nSTARTMODE='auto'\n", "eth0");
    /* DHCP already: untouched */
    check_dhcp(EK_NET_IFCFG, "BOOTPROTO=dhcp\nDEVICE=eth0\n", "ifcfg-eth0",
               "BOOTPROTO=dhcp\nDEVICE=eth0\n", NULL);
}

static void test_pin_files(void **state)
{
    (void)state;
    char *l = ek_morph_net_link_file("52:54:00:00:00:01", 0, "ens192");
    assert_non_null(strstr(l, "[Match]\nMACAddress=52:54:00:00:00:01\n\n[Link]\nName=ens192\n"));
    free(l);
    l = ek_morph_net_link_file(NULL, 2, "ens224");
    assert_non_null(
        strstr(l, "[Match]\nDriver=virtio_net\nOriginalName=eth2\n\n[Link]\nName=ens224\n"));
    free(l);
    l = ek_morph_net_udev_rule("52:54:00:00:00:01", 0, "eth0");
    assert_string_equal(
        l, "SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"52:54:00:00:00:01\", "
           "NAME=\"eth0\"\n");
    free(l);
    l = ek_morph_net_udev_rule(NULL, 1, "eth1");
    assert_string_equal(l, "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"virtio_net\", "
                           "KERNEL==\"eth1\", NAME=\"eth1\"\n");
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fstab),     cmocka_unit_test(test_grub),
        cmocka_unit_test(test_ifupdown),  cmocka_unit_test(test_netplan),
        cmocka_unit_test(test_keyfile),   cmocka_unit_test(test_ifcfg),
        cmocka_unit_test(test_pin_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
