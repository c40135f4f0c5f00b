/* plan.c - building the morphing plan of a Linux guest (plan.h): the family's
 * steps as actions, from the tree below the root and the options alone. */
#include "worker/morph/plan.h"

#include <dirent.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <string.h>
#include "common/mem.h"
#include "worker/morph/netcfg.h"

const char *const ek_morph_virtio_modules[] = {"virtio_blk", "virtio_scsi",    "virtio_net",
                                               "virtio_pci", "virtio_console", NULL};

/* ---- building blocks ---- */

static ek_morph_action_t *act(ek_morph_plan_t *p, ek_morph_act_kind_t kind, const char *path)
{
    if (p->n == p->alloc) {
        p->alloc = p->alloc ? p->alloc * 2 : 32;
        p->a = ek_xrealloc(p->a, p->alloc * sizeof(ek_morph_action_t));
    }
    ek_morph_action_t *a = &p->a[p->n++];
    *a = (ek_morph_action_t){.kind = kind, .path = path ? ek_xstrdup(path) : NULL};
    return a;
}

static void step(ek_morph_plan_t *p, const char *name)
{
    act(p, EK_ACT_STEP, name);
}

/* A step inserted at mark when the actions after mark exist (a step that
 * would do nothing is not reported). */
static void step_if_any(ek_morph_plan_t *p, size_t mark, const char *name)
{
    if (p->n == mark)
        return;
    act(p, EK_ACT_STEP, name);
    ek_morph_action_t s = p->a[p->n - 1];
    memmove(&p->a[mark + 1], &p->a[mark], (p->n - 1 - mark) * sizeof(s));
    p->a[mark] = s;
}

static void event(ek_morph_plan_t *p, const char *level, const char *fmt, ...) EK_PRINTF(3, 4);
static void event(ek_morph_plan_t *p, const char *level, const char *fmt, ...)
{
    ek_morph_action_t *a = act(p, EK_ACT_EVENT, level);
    va_list ap;
    va_start(ap, fmt);
    a->text = ek_xvasprintf(fmt, ap);
    va_end(ap);
}

static ek_morph_action_t *write_file(ek_morph_plan_t *p, const char *path, char *text,
                                     unsigned mode, const char *change)
{
    ek_morph_action_t *a = act(p, EK_ACT_WRITE, path);
    a->text = text;
    a->mode = mode;
    a->change = change ? ek_xstrdup(change) : NULL;
    return a;
}

/* argv given as a NULL-terminated list */
static ek_morph_action_t *run(ek_morph_plan_t *p, ek_morph_on_fail_t on_fail, const char *change,
                              const char *arg0, ...)
{
    ek_morph_action_t *a = act(p, EK_ACT_RUN, NULL);
    ek_strv_add(&a->argv, arg0);
    va_list ap;
    va_start(ap, arg0);
    for (const char *s; (s = va_arg(ap, const char *));)
        ek_strv_add(&a->argv, s);
    va_end(ap);
    a->on_fail = on_fail;
    a->timeout_s = 600;
    a->change = change ? ek_xstrdup(change) : NULL;
    return a;
}

static bool any_exists(const char *root, const char *const *paths, const char **which)
{
    for (size_t i = 0; paths[i]; i++)
        if (ek_morph_exists(root, paths[i])) {
            if (which)
                *which = paths[i];
            return true;
        }
    return false;
}

/* sorted names of dir entries matching pattern */
static void list_dir(const char *root, const char *rel, const char *pattern, ek_strv_t *out)
{
    _cleanup_free_ char *dir = ek_morph_path(root, rel);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && fnmatch(pattern, de->d_name, 0) == 0)
            ek_strv_add(out, de->d_name);
    closedir(d);
    ek_strv_sort_versions(out);
}

/* ---- the steps ---- */

static const char *const unwanted[] = {
    "open-vm-tools*",
    "vmware-tools*",
    "VMwareTools",
    "kmod-vmware-tools*",
    "hyperv-daemons*",
    "hypervkvpd",
    "hypervvssd",
    "hypervfcopyd",
    "hyperv-tools",
    "virtualbox-guest-*",
    "VirtualBox-guest-*",
    "virtualbox-guest-additions*",
    NULL,
};

static void plan_remove_tools(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    _cleanup_strv_ ek_strv_t found = {0};
    bool keep_ovt = false;
    for (size_t i = 0; in->installed && i < in->installed->n; i++) {
        const char *name = in->installed->v[i];
        for (size_t k = 0; unwanted[k]; k++) {
            if (fnmatch(unwanted[k], name, 0) != 0)
                continue;
            /* Ubuntu's ubuntu-server metapackage depends on open-vm-tools */
            if (strcmp(name, "open-vm-tools") == 0 && strcmp(in->os->id, "ubuntu") == 0 &&
                ek_strv_has(in->installed, "ubuntu-server")) {
                keep_ovt = true;
                break;
            }
            ek_strv_add(&found, name);
            break;
        }
    }
    bool tarball = ek_morph_exists(in->root, "/usr/bin/vmware-uninstall-tools.pl");
    if (!found.n && !tarball && !keep_ovt)
        return;
    step(p, "Removing VMware, Hyper-V and VirtualBox guest tools");
    if (keep_ovt)
        event(p, "INFO",
              "open-vm-tools is kept: the ubuntu-server metapackage depends on it (it stays "
              "idle on KVM)");
    if (tarball) {
        _cleanup_free_ char *loc = NULL;
        ek_err_t *err = ek_morph_read(in->root, "/etc/vmware-tools/locations", &loc);
        ek_err_free(err);
        if (loc) {
            /* the uninstaller must leave the initrds alone: they are rebuilt below */
            char *text = ek_xasprintf("%s%sremove_answer RESTORE_RAMDISK_CMD\n"
                                      "remove_answer RESTORE_RAMDISK_KERNELS\n"
                                      "remove_answer RESTORE_RAMDISK_ONECOPY\n",
                                      loc, *loc && loc[strlen(loc) - 1] != '\n' ? "\n" : "");
            write_file(p, "/etc/vmware-tools/locations", text, 0644, NULL);
        }
        ek_morph_action_t *a = run(p, EK_FAIL_WARN,
                                   "ran vmware-uninstall-tools.pl (VMware Tools "
                                   "installed from the tarball)",
                                   "/usr/bin/vmware-uninstall-tools.pl", NULL);
        a->fail_hint = ek_xstrdup("the VMware Tools tarball uninstaller failed; the tools stay "
                                  "installed but idle on KVM");
        if (in->os->family == EK_FAMILY_SUSE)
            ek_strv_add(&a->env, "rootdev=/");
    }
    if (!found.n)
        return;
    ek_morph_action_t *a;
    if (in->os->family == EK_FAMILY_DEBIAN)
        /* --force-unsafe-io: no fsync per file (each costs a round trip to the
         * replica's storage); the unmount at the end writes everything back */
        a = run(p, EK_FAIL_WARN, NULL, "dpkg", "--force-unsafe-io", "--purge", NULL);
    else if (in->os->family == EK_FAMILY_SUSE)
        a = run(p, EK_FAIL_WARN, NULL, "zypper", "-n", "rm", NULL);
    else
        a = run(p, EK_FAIL_WARN, NULL, "rpm", "-e", "--nodeps", NULL);
    ek_strbuf_t changes = EK_STRBUF_INIT;
    for (size_t i = 0; i < found.n; i++) {
        ek_strv_add(&a->argv, found.v[i]);
        ek_strbuf_addf(&changes, "%sremoved package %s", i ? "\n" : "", found.v[i]);
    }
    a->change = ek_strbuf_detach(&changes);
    a->fail_hint = ek_xstrdup("the guest tools could not be removed; they stay installed but "
                              "idle on KVM");
}

static ek_err_t *plan_initramfs(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    const ek_morph_os_t *os = in->os;
    if (!os->kernels.n)
        return ek_err_new(EK_E_INVALID,
                          "no installed kernel found in the guest (a /lib/modules/<version> "
                          "directory with a /boot/vmlinuz-<version>): is /boot on a disk that "
                          "was not attached?");
    step(p, "Adding the virtio drivers to the initramfs");
    if (os->family == EK_FAMILY_DEBIAN) {
        static const char *const tools[] = {"/usr/sbin/update-initramfs", "/sbin/update-initramfs",
                                            NULL};
        if (!any_exists(in->root, tools, NULL))
            return ek_err_new(EK_E_INVALID, "the guest has no update-initramfs (package "
                                            "initramfs-tools): its initramfs cannot be rebuilt");
        _cleanup_free_ char *mods = NULL;
        ek_err_t *err = ek_morph_read(in->root, "/etc/initramfs-tools/modules", &mods);
        if (err)
            return err;
        ek_strbuf_t text = EK_STRBUF_INIT;
        ek_strbuf_adds(&text, mods ? mods : "");
        if (text.len && text.buf[text.len - 1] != '\n')
            ek_strbuf_addch(&text, '\n');
        bool added = false;
        for (size_t i = 0; ek_morph_virtio_modules[i]; i++) {
            /* is it listed already (a line of its own)? */
            bool listed = false;
            const char *m = ek_morph_virtio_modules[i];
            for (const char *s = mods; s && (s = strstr(s, m)); s += strlen(m))
                if ((s == mods || s[-1] == '\n') &&
                    (s[strlen(m)] == '\n' || !s[strlen(m)] || s[strlen(m)] == ' '))
                    listed = true;
            if (listed)
                continue;
            if (!added)
                ek_strbuf_adds(&text, "# added by ekman-morph: boot on KVM (virtio)\n");
            ek_strbuf_addf(&text, "%s\n", m);
            added = true;
        }
        if (added)
            write_file(p, "/etc/initramfs-tools/modules", ek_strbuf_detach(&text), 0644,
                       "added the virtio modules to /etc/initramfs-tools/modules");
        else
            ek_strbuf_release(&text);
        for (size_t i = 0; i < os->kernels.n; i++) {
            const char *k = os->kernels.v[i];
            _cleanup_free_ char *initrd = ek_xasprintf("/boot/initrd.img-%s", k);
            _cleanup_free_ char *change =
                ek_xasprintf("rebuilt the initramfs of kernel %s with the virtio drivers", k);
            run(p, EK_FAIL_ERROR, change, "update-initramfs",
                ek_morph_exists(in->root, initrd) ? "-u" : "-c", "-k", k, NULL);
        }
        return NULL;
    }
    static const char *const dracut[] = {"/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut",
                                         NULL};
    static const char *const mkinitrd[] = {"/sbin/mkinitrd", "/usr/sbin/mkinitrd", NULL};
    if (any_exists(in->root, dracut, NULL)) {
        ek_strbuf_t conf = EK_STRBUF_INIT;
        ek_strbuf_adds(&conf, "# written by ekman-morph: boot on KVM (virtio); dracut leaves "
                              "these out in hostonly mode off QEMU\nadd_drivers+=\" ");
        for (size_t i = 0; ek_morph_virtio_modules[i]; i++)
            ek_strbuf_addf(&conf, "%s ", ek_morph_virtio_modules[i]);
        ek_strbuf_adds(&conf, "\"\n");
        write_file(p, "/etc/dracut.conf.d/ekman-virtio.conf", ek_strbuf_detach(&conf), 0644,
                   "added /etc/dracut.conf.d/ekman-virtio.conf (virtio drivers)");
        for (size_t i = 0; i < os->kernels.n; i++) {
            _cleanup_free_ char *change = ek_xasprintf(
                "rebuilt the initramfs of kernel %s with the virtio drivers", os->kernels.v[i]);
            run(p, EK_FAIL_ERROR, change, "dracut", "-f", "--kver", os->kernels.v[i], NULL);
        }
        return NULL;
    }
    if (os->family == EK_FAMILY_SUSE && any_exists(in->root, mkinitrd, NULL)) {
        ek_strbuf_t mods = EK_STRBUF_INIT;
        for (size_t i = 0; ek_morph_virtio_modules[i]; i++)
            ek_strbuf_addf(&mods, "%s%s", i ? " " : "", ek_morph_virtio_modules[i]);
        for (size_t i = 0; i < os->kernels.n; i++) {
            const char *k = os->kernels.v[i];
            _cleanup_free_ char *vmlinuz = ek_xasprintf("/boot/vmlinuz-%s", k);
            _cleanup_free_ char *initrd = ek_xasprintf("/boot/initrd-%s", k);
            _cleanup_free_ char *change =
                ek_xasprintf("rebuilt the initramfs of kernel %s with the virtio drivers", k);
            ek_morph_action_t *a = run(p, EK_FAIL_ERROR, change, "mkinitrd", "-m", mods.buf, "-k",
                                       vmlinuz, "-i", initrd, NULL);
            ek_strv_add(&a->env, "rootdev=/");
        }
        ek_strbuf_release(&mods);
        return NULL;
    }
    return ek_err_new(EK_E_INVALID, "the guest has neither dracut nor mkinitrd: its initramfs "
                                    "cannot be rebuilt with the virtio drivers");
}

static ek_err_t *plan_devices(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    size_t mark = p->n;
    _cleanup_strv_ ek_strv_t changes = {0}, unresolved = {0};
    _cleanup_free_ char *fstab = NULL, *grub = NULL;
    ek_err_t *err = ek_morph_read(in->root, "/etc/fstab", &fstab);
    if (!err)
        err = ek_morph_read(in->root, "/etc/default/grub", &grub);
    if (err)
        return err;
    if (fstab) {
        size_t before = changes.n;
        char *text =
            ek_morph_fstab_rewrite(fstab, in->resolve, in->resolve_ud, &changes, &unresolved);
        if (changes.n > before) {
            ek_strbuf_t ch = EK_STRBUF_INIT;
            for (size_t i = before; i < changes.n; i++)
                ek_strbuf_addf(&ch, "%s%s", i > before ? "\n" : "", changes.v[i]);
            ek_morph_action_t *a = write_file(p, "/etc/fstab", text, 0644, NULL);
            a->change = ek_strbuf_detach(&ch);
        } else {
            free(text);
        }
    }
    bool grub_changed = false;
    if (grub) {
        size_t before = changes.n;
        char *text =
            ek_morph_grub_default_rewrite(grub, in->resolve, in->resolve_ud, &changes, &unresolved);
        if (changes.n > before) {
            ek_strbuf_t ch = EK_STRBUF_INIT;
            for (size_t i = before; i < changes.n; i++)
                ek_strbuf_addf(&ch, "%s%s", i > before ? "\n" : "", changes.v[i]);
            ek_morph_action_t *a = write_file(p, "/etc/default/grub", text, 0644, NULL);
            a->change = ek_strbuf_detach(&ch);
            grub_changed = true;
        } else {
            free(text);
        }
    }
    for (size_t i = 0; i < unresolved.n; i++)
        event(p, "WARNING",
              "%s is named in the guest's configuration but is not a partition of the attached "
              "disks: left as it is (it may not exist under virtio)",
              unresolved.v[i]);
    /* LVM device IDs change with the bus (RHEL 9 devices file) */
    static const char *const lvm_state[] = {"/etc/lvm/devices/system.devices",
                                            "/etc/lvm/cache/.cache"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(lvm_state); i++)
        if (ek_morph_exists(in->root, lvm_state[i])) {
            ek_morph_action_t *a = act(p, EK_ACT_REMOVE, lvm_state[i]);
            a->change =
                ek_xasprintf("removed %s (it names the disks by their VMware IDs)", lvm_state[i]);
        }
    /* the bootloader configuration, regenerated (root= and the new initrds) */
    ek_morph_on_fail_t how = grub_changed ? EK_FAIL_ERROR : EK_FAIL_WARN;
    ek_morph_action_t *a = NULL;
    if (in->os->family == EK_FAMILY_DEBIAN) {
        static const char *const ug[] = {"/usr/sbin/update-grub", "/sbin/update-grub", NULL};
        if (any_exists(in->root, ug, NULL) && ek_morph_exists(in->root, "/boot/grub/grub.cfg"))
            a = run(p, how, "regenerated /boot/grub/grub.cfg", "update-grub", NULL);
    } else {
        static const char *const mk[] = {"/usr/sbin/grub2-mkconfig", "/sbin/grub2-mkconfig", NULL};
        static const char *const cfgs[] = {"/boot/grub2/grub.cfg",
                                           "/boot/efi/EFI/redhat/grub.cfg",
                                           "/boot/efi/EFI/centos/grub.cfg",
                                           "/boot/efi/EFI/rocky/grub.cfg",
                                           "/boot/efi/EFI/almalinux/grub.cfg",
                                           "/boot/efi/EFI/fedora/grub.cfg",
                                           "/boot/efi/EFI/opensuse/grub.cfg",
                                           "/boot/efi/EFI/sles/grub.cfg",
                                           NULL};
        const char *cfg = NULL;
        if (any_exists(in->root, mk, NULL) && any_exists(in->root, cfgs, &cfg)) {
            _cleanup_free_ char *change = ek_xasprintf("regenerated %s", cfg);
            a = run(p, how, change, "grub2-mkconfig", "-o", cfg, NULL);
        }
    }
    if (a) {
        ek_strv_add(&a->env, "GRUB_DISABLE_OS_PROBER=true");
        a->fail_hint = ek_xstrdup("the bootloader configuration could not be regenerated");
    } else if (grub_changed) {
        event(p, "WARNING",
              "/etc/default/grub was changed but the guest has no grub "
              "configuration tool: regenerate grub.cfg in the guest");
    }
    step_if_any(p, mark, "Rewriting device names in fstab and the bootloader configuration");
    return NULL;
}

typedef struct netfile {
    ek_morph_netstyle_t style;
    char *rel;
} netfile_t;

static void find_netfiles(const ek_morph_plan_in_t *in, netfile_t *files, size_t *n, size_t max)
{
    _cleanup_strv_ ek_strv_t l = {0};
    if (ek_morph_exists(in->root, "/etc/network/interfaces") && *n < max)
        files[(*n)++] = (netfile_t){EK_NET_IFUPDOWN, ek_xstrdup("/etc/network/interfaces")};
    list_dir(in->root, "/etc/network/interfaces.d", "*", &l);
    for (size_t i = 0; i < l.n && *n < max; i++)
        files[(*n)++] =
            (netfile_t){EK_NET_IFUPDOWN, ek_xasprintf("/etc/network/interfaces.d/%s", l.v[i])};
    ek_strv_clear(&l);
    list_dir(in->root, "/etc/netplan", "*.yaml", &l);
    for (size_t i = 0; i < l.n && *n < max; i++)
        files[(*n)++] = (netfile_t){EK_NET_NETPLAN, ek_xasprintf("/etc/netplan/%s", l.v[i])};
    ek_strv_clear(&l);
    list_dir(in->root, "/etc/NetworkManager/system-connections", "*", &l);
    for (size_t i = 0; i < l.n && *n < max; i++)
        files[(*n)++] = (netfile_t){
            EK_NET_NMKEYFILE, ek_xasprintf("/etc/NetworkManager/system-connections/%s", l.v[i])};
    ek_strv_clear(&l);
    const char *ifcfg_dir = in->os->family == EK_FAMILY_SUSE ? "/etc/sysconfig/network"
                                                             : "/etc/sysconfig/network-scripts";
    list_dir(in->root, ifcfg_dir, "ifcfg-*", &l);
    for (size_t i = 0; i < l.n && *n < max; i++)
        if (strcmp(l.v[i], "ifcfg-lo") != 0)
            files[(*n)++] = (netfile_t){EK_NET_IFCFG, ek_xasprintf("%s/%s", ifcfg_dir, l.v[i])};
}

static ek_err_t *plan_network(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    netfile_t files[64];
    size_t n = 0;
    find_netfiles(in, files, &n, EK_ARRAY_SIZE(files));
    _cleanup_strv_ ek_strv_t names = {0}, macs = {0};
    ek_err_t *err = NULL;
    char *texts[64] = {0};
    for (size_t i = 0; i < n && !err; i++) {
        err = ek_morph_read(in->root, files[i].rel, &texts[i]);
        if (!err && texts[i])
            ek_morph_net_names(files[i].style, texts[i], files[i].rel, &names, &macs);
    }
    const ek_morph_opts_t *o = in->opts;
    size_t mark = p->n;
    /* pin the names the configuration uses to the NICs: by MAC, else the
     * i-th virtio NIC */
    bool systemd = ek_morph_exists(in->root, "/lib/systemd/systemd") ||
                   ek_morph_exists(in->root, "/usr/lib/systemd/systemd");
    bool used[64] = {0};
    ek_strbuf_t udev = EK_STRBUF_INIT, udev_ch = EK_STRBUF_INIT;
    for (size_t k = 0; !err && k < o->n_nics; k++) {
        const ek_morph_nic_t *nic = &o->nics[k];
        size_t pick = names.n;
        for (size_t i = 0; nic->mac && i < names.n && i < 64; i++)
            if (!used[i] && strcmp(macs.v[i], nic->mac) == 0)
                pick = i;
        for (size_t i = 0; pick == names.n && i < names.n && i < 64; i++)
            if (!used[i] && !*macs.v[i])
                pick = i;
        if (pick == names.n)
            continue;
        used[pick] = true;
        const char *name = names.v[pick];
        if (systemd) {
            _cleanup_free_ char *rel = ek_xasprintf("/etc/systemd/network/10-ekman-%s.link", name);
            _cleanup_free_ char *ch =
                nic->mac
                    ? ek_xasprintf("%s: the NIC with MAC %s keeps the name %s", rel, nic->mac, name)
                    : ek_xasprintf("%s: virtio NIC eth%zu keeps the name %s", rel, k, name);
            write_file(p, rel, ek_morph_net_link_file(nic->mac, (int)k, name), 0644, ch);
        } else {
            _cleanup_free_ char *rule = ek_morph_net_udev_rule(nic->mac, (int)k, name);
            ek_strbuf_adds(&udev, rule);
            ek_strbuf_addf(&udev_ch, "%s/etc/udev/rules.d/70-ekman-net.rules: %s keeps the name %s",
                           udev_ch.len ? "\n" : "", nic->mac ? nic->mac : "virtio NIC", name);
        }
    }
    if (udev.len) {
        ek_morph_action_t *a = write_file(p, "/etc/udev/rules.d/70-ekman-net.rules",
                                          ek_strbuf_detach(&udev), 0644, NULL);
        a->change = ek_strbuf_detach(&udev_ch);
    }
    ek_strbuf_release(&udev);
    ek_strbuf_release(&udev_ch);
    for (size_t i = 0; !err && o->set_dhcp && i < n; i++) {
        if (!texts[i])
            continue;
        _cleanup_strv_ ek_strv_t changed = {0};
        char *text = ek_morph_net_dhcp(files[i].style, texts[i], files[i].rel, &changed);
        if (strcmp(text, texts[i]) == 0) {
            free(text);
            continue;
        }
        ek_strbuf_t ch = EK_STRBUF_INIT;
        for (size_t c = 0; c < changed.n; c++)
            ek_strbuf_addf(&ch, "%s%s: %s uses DHCP", c ? "\n" : "", files[i].rel, changed.v[c]);
        ek_morph_action_t *a = write_file(p, files[i].rel, text,
                                          files[i].style == EK_NET_NMKEYFILE ? 0600 : 0644, NULL);
        a->change = ek_strbuf_detach(&ch);
    }
    for (size_t i = 0; i < n; i++) {
        free(files[i].rel);
        free(texts[i]);
    }
    step_if_any(p, mark, "Configuring the network for the new NICs");
    return err;
}

static const char *const agent_pkgs[] = {"qemu-guest-agent", "cloud-init", NULL};

static void plan_packages(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    const ek_morph_os_t *os = in->os;
    const ek_morph_opts_t *o = in->opts;
    bool deb = os->family == EK_FAMILY_DEBIAN;
    _cleanup_strv_ ek_strv_t want = {0};
    for (size_t i = 0; agent_pkgs[i]; i++)
        if (!in->installed || !ek_strv_has(in->installed, agent_pkgs[i]))
            ek_strv_add(&want, agent_pkgs[i]);
    /* oVirt's own agent: EL7 and older, where qemu-guest-agent does not
     * report everything the engine shows */
    if (os->family == EK_FAMILY_RHEL && os->major > 0 && os->major <= 7 &&
        (!in->installed || !ek_strv_has(in->installed, "ovirt-guest-agent-common")))
        ek_strv_add(&want, "ovirt-guest-agent-common");
    bool cloud_init = !ek_strv_has(&want, "cloud-init");
    step(p, "Installing qemu-guest-agent and cloud-init");
    int group = ++p->next_group;
    _cleanup_strv_ ek_strv_t files = {0};
    if (o->packages_dir) {
        _cleanup_strv_ ek_strv_t all = {0};
        list_dir("/", o->packages_dir, deb ? "*.deb" : "*.rpm", &all);
        /* packages the guest has already (name_version_arch.deb) are left
         * alone: the install is for what is missing, not an upgrade */
        for (size_t i = 0; i < all.n; i++) {
            _cleanup_free_ char *name = ek_xstrndup(all.v[i], strcspn(all.v[i], "_"));
            if (!deb || !in->installed || !ek_strv_has(in->installed, name))
                ek_strv_add(&files, all.v[i]);
        }
    }
    bool policy = deb && !ek_morph_exists(in->root, "/usr/sbin/policy-rc.d");
    if (want.n && policy)
        /* package scripts must not start services in the chroot */
        write_file(p, "/usr/sbin/policy-rc.d", ek_xstrdup("#!/bin/sh\nexit 101\n"), 0755, NULL);
    if (want.n && files.n) {
        for (size_t i = 0; i < files.n; i++) {
            _cleanup_free_ char *dst = ek_xasprintf("/tmp/ekman-packages/%s", files.v[i]);
            ek_morph_action_t *c = act(p, EK_ACT_COPY_IN, dst);
            c->text = ek_morph_path(o->packages_dir, files.v[i]);
        }
        /* dpkg -i of them all at once unpacks, then configures: a package
         * whose Pre-Depends are among the files fails a pass and installs in
         * a later one, one link of a pre-dependency chain per pass (apt-get
         * with local files trips over the same case). A later pass takes only
         * the files whose package is not unpacked yet: unpacking the others
         * again cost ~20 s under emulation; a pass that unpacks nothing ends the
         * loop. What stayed unconfigured (its dependencies came in a later
         * pass) is configured at the end. */
        ek_morph_action_t *a =
            deb ? run(p, EK_FAIL_WARN, NULL, "/bin/sh", "-c",
                      "for pass in 1 2 3 4 5 6; do "
                      "dpkg --force-unsafe-io -i --skip-same-version \"$@\" && break; "
                      "before=$#; names=; for f; do n=${f##*/}; names=\"$names ${n%%_*}\"; done; "
                      "st=$(dpkg-query -W -f='${Package} ${db:Status-Status}\\n' $names "
                      "2>/dev/null); "
                      "for f; do shift; n=${f##*/}; n=${n%%_*}; case \"\n$st\n\" in "
                      "*\"\n$n unpacked\n\"*|*\"\n$n half-configured\n\"*|"
                      "*\"\n$n installed\n\"*) ;; *) set -- \"$@\" \"$f\";; esac; done; "
                      "[ $# -gt 0 ] && [ $# -lt $before ] || break; "
                      "done; dpkg --force-unsafe-io --configure -a && test -z \"$(dpkg --audit)\"",
                      "ekman-install", NULL)
                : run(p, EK_FAIL_WARN, NULL, "rpm", "-Uvh", "--replacepkgs", NULL);
        for (size_t i = 0; i < files.n; i++)
            ek_strv_take(&a->argv, ek_xasprintf("/tmp/ekman-packages/%s", files.v[i]));
        a->group = group;
        ek_strbuf_t ch = EK_STRBUF_INIT;
        ek_strbuf_addf(&ch, "installed %zu packages from %s:", files.n, o->packages_dir);
        for (size_t i = 0; i < files.n; i++)
            ek_strbuf_addf(&ch, " %s", files.v[i]);
        a->change = ek_strbuf_detach(&ch);
        a->fail_hint = ek_xasprintf("the packages of %s could not be installed", o->packages_dir);
        act(p, EK_ACT_REMOVE, "/tmp/ekman-packages");
        cloud_init = true;
    } else if (want.n) {
        _cleanup_free_ char *missing = NULL;
        ek_strbuf_t m = EK_STRBUF_INIT;
        for (size_t i = 0; i < want.n; i++)
            ek_strbuf_addf(&m, "%s%s", i ? ", " : "", want.v[i]);
        missing = ek_strbuf_detach(&m);
        char *hint = ek_xasprintf(
            "%s not installed: the guest's package repositories cannot be reached from the "
            "OS-morphing worker%s; to install them offline, put the guest's %s packages "
            "(with their dependencies) in the directory osmorphing_packages_dir names",
            missing, o->packages_dir ? " and the packages directory has none for this guest" : "",
            deb ? ".deb" : ".rpm");
        ek_morph_action_t *a;
        if (deb) {
            a = run(p, EK_FAIL_WARN, NULL, "apt-get", "-q", "-o", "Acquire::Retries=0", "-o",
                    "Acquire::http::Timeout=20", "update", NULL);
            a->timeout_s = 120;
            a->online = true;
            a->group = group;
            a->fail_hint = ek_xstrdup(hint);
            a = run(p, EK_FAIL_WARN, NULL, "apt-get", "-q", "-y", "--no-install-recommends", "-o",
                    "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                    "-o", "Dpkg::Options::=--force-unsafe-io", "install", NULL);
        } else if (os->family == EK_FAMILY_SUSE) {
            a = run(p, EK_FAIL_WARN, NULL, "zypper", "-n", "--no-gpg-checks", "in", "-l", NULL);
        } else if (ek_morph_exists(in->root, "/usr/bin/dnf")) {
            a = run(p, EK_FAIL_WARN, NULL, "dnf", "-y", "--disableplugin=subscription-manager",
                    "--setopt=timeout=20", "--setopt=retries=0", "install", NULL);
        } else {
            a = run(p, EK_FAIL_WARN, NULL, "yum", "-y", "--setopt=timeout=20", "--setopt=retries=0",
                    "install", NULL);
        }
        ek_strbuf_t ch = EK_STRBUF_INIT;
        for (size_t i = 0; i < want.n; i++) {
            ek_strv_add(&a->argv, want.v[i]);
            ek_strbuf_addf(&ch, "%sinstalled package %s", i ? "\n" : "", want.v[i]);
        }
        a->change = ek_strbuf_detach(&ch);
        a->online = true;
        a->group = group;
        a->timeout_s = 900;
        a->fail_hint = hint;
        cloud_init = true;
    }
    if (want.n && policy)
        act(p, EK_ACT_REMOVE, "/usr/sbin/policy-rc.d");
    if (ek_morph_exists(in->root, "/usr/bin/systemctl") ||
        ek_morph_exists(in->root, "/bin/systemctl")) {
        ek_morph_action_t *a =
            run(p, EK_FAIL_WARN, "enabled the qemu-guest-agent and cloud-init services",
                "systemctl", "enable", "qemu-guest-agent", "cloud-init-local", "cloud-init",
                "cloud-config", "cloud-final", NULL);
        if (ek_strv_has(&want, "ovirt-guest-agent-common"))
            ek_strv_add(&a->argv, "ovirt-guest-agent");
        a->group = group;
        a->fail_hint = ek_xstrdup("the guest agent services could not be enabled");
    }
    if (cloud_init && o->retain_user_credentials)
        write_file(p, "/etc/cloud/cloud.cfg.d/99-ekman-retain-credentials.cfg",
                   ek_xstrdup("# written by ekman-morph: the migrated guest keeps its users,\n"
                              "# passwords and SSH keys\n"
                              "ssh_deletekeys: false\n"
                              "disable_root: false\n"
                              "ssh_pwauth: true\n"
                              "chpasswd:\n  expire: false\n"),
                   0644, "cloud-init keeps the existing users, passwords and SSH keys");
}

static void plan_selinux(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    _cleanup_free_ char *cfg = NULL;
    ek_err_t *err = ek_morph_read(in->root, "/etc/selinux/config", &cfg);
    ek_err_free(err);
    _cleanup_free_ char *mode = cfg ? ek_morph_shvar(cfg, "SELINUX") : NULL;
    if (!mode || (strcmp(mode, "enforcing") != 0 && strcmp(mode, "permissive") != 0))
        return;
    step(p, "Relabelling SELinux contexts at first boot");
    write_file(p, "/.autorelabel", ek_xstrdup(""), 0644,
               "created /.autorelabel (SELinux relabels the files at first boot)");
}

static void plan_user_script(ek_morph_plan_t *p, const ek_morph_plan_in_t *in)
{
    if (!in->opts->user_script)
        return;
    step(p, "Running the user script");
    write_file(p, "/tmp/ekman-user-script", ek_xstrdup(in->opts->user_script), 0700, NULL);
    ek_morph_action_t *a =
        run(p, EK_FAIL_ERROR, "ran the user script", "/bin/sh", "/tmp/ekman-user-script", NULL);
    a->fail_hint = ek_xstrdup("the user script failed");
    act(p, EK_ACT_REMOVE, "/tmp/ekman-user-script");
}

ek_err_t *ek_morph_plan_build(const ek_morph_plan_in_t *in, ek_morph_plan_t **out)
{
    _cleanup_(ek_morph_plan_freep) ek_morph_plan_t *p = ek_xcalloc(1, sizeof(*p));
    plan_remove_tools(p, in);
    ek_err_t *err = plan_initramfs(p, in);
    if (!err)
        err = plan_devices(p, in);
    if (!err)
        err = plan_network(p, in);
    if (err)
        return err;
    plan_packages(p, in);
    plan_selinux(p, in);
    plan_user_script(p, in);
    *out = EK_STEAL(p);
    return NULL;
}

void ek_morph_plan_free(ek_morph_plan_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        ek_morph_action_t *a = &p->a[i];
        free(a->path);
        free(a->text);
        ek_strv_clear(&a->argv);
        ek_strv_clear(&a->env);
        free(a->change);
        free(a->fail_hint);
    }
    free(p->a);
    free(p);
}

void ek_morph_plan_describe(const ek_morph_plan_t *p, ek_strbuf_t *out)
{
    for (size_t i = 0; i < p->n; i++) {
        const ek_morph_action_t *a = &p->a[i];
        switch (a->kind) {
        case EK_ACT_STEP:
            ek_strbuf_addf(out, "step: %s\n", a->path);
            break;
        case EK_ACT_EVENT:
            ek_strbuf_addf(out, "event %s: %s\n", a->path, a->text);
            break;
        case EK_ACT_WRITE:
            ek_strbuf_addf(out, "write %s\n", a->path);
            break;
        case EK_ACT_REMOVE:
            ek_strbuf_addf(out, "remove %s\n", a->path);
            break;
        case EK_ACT_COPY_IN:
            ek_strbuf_addf(out, "copy %s\n", a->path);
            break;
        case EK_ACT_RUN:
            ek_strbuf_adds(out, "run:");
            for (size_t k = 0; k < a->argv.n; k++)
                ek_strbuf_addf(out, " %s", a->argv.v[k]);
            ek_strbuf_addch(out, '\n');
            break;
        }
    }
}
