/* storage.c - disks, partitions, LVM, filesystems, root and mounts
 * (storage.h). */
#include "worker/morph/storage.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/morph/fstab.h"
#include "worker/morph/runner.h"
#ifdef EK_HAVE_WINDOWS
#include "worker/morph/windows/windows.h"
#endif

void ek_morph_storage_free(ek_morph_storage_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_fs; i++) {
        ek_morph_fs_t *f = &st->fs[i];
        free(f->dev);
        free(f->lvpath);
        free(f->mapper);
        free(f->type);
        free(f->uuid);
        free(f->label);
        free(f->partuuid);
    }
    free(st->fs);
    ek_strv_clear(&st->disks);
    free(st->lvm_filter);
    free(st);
}

/* ---- disks ---- */

static char *read_sys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[256];
    char *s = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!s)
        return NULL;
    buf[strcspn(buf, "\n")] = '\0';
    return ek_xstrdup(buf);
}

static ek_err_t *resolve_disk(const char *name, size_t idx, char **out)
{
    _cleanup_free_ char *path = NULL;
    if (strncmp(name, "serial:", 7) == 0) {
        const char *serial = name + 7;
        _cleanup_free_ char *byid = ek_xasprintf("/dev/disk/by-id/virtio-%s", serial);
        if (access(byid, F_OK) == 0) {
            path = EK_STEAL(byid);
        } else {
            DIR *d = opendir("/sys/block");
            struct dirent *de;
            while (d && (de = readdir(d)) && !path) {
                if (de->d_name[0] == '.')
                    continue;
                _cleanup_free_ char *sp = ek_xasprintf("/sys/block/%s/serial", de->d_name);
                _cleanup_free_ char *s = read_sys(sp);
                if (!s) {
                    free(sp);
                    sp = ek_xasprintf("/sys/block/%s/device/serial", de->d_name);
                    s = read_sys(sp);
                }
                if (s && strcmp(s, serial) == 0)
                    path = ek_xasprintf("/dev/%s", de->d_name);
            }
            if (d)
                closedir(d);
        }
        if (!path)
            return ek_err_new(
                EK_E_NOTFOUND,
                "options.disks[%zu]: no disk with serial \"%s\" is attached to the "
                "worker (neither /dev/disk/by-id/virtio-%s nor a /sys/block/*/serial)",
                idx, serial, serial);
    } else {
        path = ek_xstrdup(name);
    }
    char real[PATH_MAX];
    if (!realpath(path, real))
        return ek_err_errno(errno, "options.disks[%zu]: %s", idx, path);
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISBLK(st.st_mode))
        return ek_err_new(EK_E_INVALID, "options.disks[%zu]: %s is not a block device", idx, real);
    *out = ek_xstrdup(real);
    return NULL;
}

/* partitions of /dev/<name>: "name\tpartno" entries */
static void list_partitions(const char *name, ek_strv_t *parts, ek_strv_t *nums)
{
    _cleanup_free_ char *dir = ek_xasprintf("/sys/block/%s", name);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, name, strlen(name)) != 0)
            continue;
        _cleanup_free_ char *pf = ek_xasprintf("%s/%s/partition", dir, de->d_name);
        _cleanup_free_ char *num = read_sys(pf);
        if (!num)
            continue;
        ek_strv_add(parts, de->d_name);
        ek_strv_add(nums, num);
    }
    closedir(d);
}

/* blkid -p -o export: KEY=VALUE lines */
static void probe(ek_morph_storage_t *st, const char *dev, int disk, int partno, const char *lvpath,
                  const char *mapper)
{
    const char *argv[] = {"blkid", "-p", "-o", "export", dev, NULL};
    _cleanup_free_ char *out = NULL;
    ek_err_t *err = ek_morph_run_host(argv, &out);
    ek_err_free(err); /* exit 2: nothing found */
    st->fs = ek_xrealloc(st->fs, (st->n_fs + 1) * sizeof(ek_morph_fs_t));
    ek_morph_fs_t *f = &st->fs[st->n_fs++];
    *f = (ek_morph_fs_t){.dev = ek_xstrdup(dev), .disk = disk, .partno = partno};
    f->lvpath = lvpath ? ek_xstrdup(lvpath) : NULL;
    f->mapper = mapper ? ek_xstrdup(mapper) : NULL;
    f->type = out ? ek_morph_shvar(out, "TYPE") : NULL;
    f->uuid = out ? ek_morph_shvar(out, "UUID") : NULL;
    f->label = out ? ek_morph_shvar(out, "LABEL") : NULL;
    f->partuuid = out ? ek_morph_shvar(out, "PART_ENTRY_UUID") : NULL;
    if (!f->type)
        f->type = ek_xstrdup("");
    if (!f->uuid)
        f->uuid = ek_xstrdup("");
    if (!f->label)
        f->label = ek_xstrdup("");
    if (!f->partuuid)
        f->partuuid = ek_xstrdup("");
}

/* ---- LVM ---- */

static char *lvm_config(const char *filter)
{
    return ek_xasprintf("devices{filter=%s use_devicesfile=0} "
                        "activation{udev_sync=0 udev_rules=0}",
                        filter);
}

/* "a|^/dev/vdb2$|", ... "r|.*|" */
static char *make_filter(const ek_strv_t *pvs)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_addch(&sb, '[');
    for (size_t i = 0; i < pvs->n; i++) {
        ek_strbuf_adds(&sb, "\"a|^");
        for (const char *c = pvs->v[i]; *c; c++) {
            if (strchr(".+*?()[]{}^$\\|", *c))
                ek_strbuf_addch(&sb, '\\');
            ek_strbuf_addch(&sb, *c);
        }
        ek_strbuf_adds(&sb, "$|\",");
    }
    ek_strbuf_adds(&sb, "\"r|.*|\"]");
    return ek_strbuf_detach(&sb);
}

static char *field(const char *line, int n)
{
    const char *s = line;
    while (*s == ' ')
        s++;
    for (int i = 0; i < n && s; i++) {
        s = strchr(s, '|');
        if (s)
            s++;
    }
    if (!s)
        return ek_xstrdup("");
    size_t len = strcspn(s, "|\n");
    while (len && s[len - 1] == ' ')
        len--;
    return ek_xstrndup(s, len);
}

/* /dev/mapper name: "-" doubled in both parts */
static char *mapper_path(const char *vg, const char *lv)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_adds(&sb, "/dev/mapper/");
    for (const char *c = vg; *c; c++) {
        if (*c == '-')
            ek_strbuf_addch(&sb, '-');
        ek_strbuf_addch(&sb, *c);
    }
    ek_strbuf_addch(&sb, '-');
    for (const char *c = lv; *c; c++) {
        if (*c == '-')
            ek_strbuf_addch(&sb, '-');
        ek_strbuf_addch(&sb, *c);
    }
    return ek_strbuf_detach(&sb);
}

/* Whether the kernel has device-mapper (LVs can be activated). Its module
 * is loaded first when it is not: without udev or kmod's static nodes,
 * nothing else would load it (the worker image loads drivers by modalias). */
static bool have_dm(void)
{
    static int loaded;
    if (!loaded && access("/dev/mapper/control", F_OK) != 0) {
        loaded = 1;
        const char *const argv[] = {"modprobe", "dm_mod", NULL};
        ek_err_free(ek_morph_run_host(argv, NULL));
    }
    int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Without device-mapper (a kernel without dm_mod), a VG's linear LVs are
 * read through loop devices over the part of their PV they occupy. */
static ek_err_t *scan_vg_loops(ek_morph_storage_t *st, const char *uuid, const char *config,
                               ek_morph_journal_t *j, ek_morph_report_t *r)
{
    _cleanup_free_ char *sel = ek_xasprintf("vg_uuid=%s", uuid);
    const char *pvs_argv[] = {
        "lvm",      "pvs", "--noheadings", "--separator", "|",
        "--units",  "b",   "--nosuffix",   "-o",          "pv_name,pe_start,vg_extent_size",
        "--select", sel,   "--config",     config,        NULL};
    const char *lvs_argv[] = {"lvm",
                              "lvs",
                              "--noheadings",
                              "--separator",
                              "|",
                              "-o",
                              "vg_name,lv_name,segtype,seg_pe_ranges",
                              "--select",
                              sel,
                              "--config",
                              config,
                              NULL};
    _cleanup_free_ char *pvs = NULL, *lvs = NULL;
    ek_err_t *err = ek_morph_run_host(pvs_argv, &pvs);
    if (!err)
        err = ek_morph_run_host(lvs_argv, &lvs);
    if (err)
        return ek_err_prefix(err, "reading the layout of volume group %s", uuid);
    ek_morph_event(r, "WARNING",
                   "the worker's kernel has no device-mapper: the linear logical volumes of "
                   "volume group %s are read through loop devices",
                   uuid);
    for (char *line = lvs; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        _cleanup_free_ char *vg = field(line, 0), *lv = field(line, 1), *type = field(line, 2),
                            *ranges = field(line, 3);
        line = end ? end + 1 : NULL;
        /* "/dev/vdb3:0-690"; one segment only */
        char *colon = strrchr(ranges, ':');
        unsigned long long a = 0, b = 0;
        if (!*lv || strcmp(type, "linear") != 0 || !colon || strchr(ranges, ' ') ||
            sscanf(colon + 1, "%llu-%llu", &a, &b) != 2 || b < a) {
            if (*lv)
                ek_morph_event(r, "WARNING",
                               "logical volume %s/%s (%s %s) cannot be read "
                               "without device-mapper: skipped",
                               vg, lv, type, ranges);
            continue;
        }
        *colon = '\0';
        unsigned long long pe_start = 0, extent = 0;
        for (char *pl = pvs; pl && *pl;) {
            char *pend = strchr(pl, '\n');
            _cleanup_free_ char *name = field(pl, 0), *ps = field(pl, 1), *ext = field(pl, 2);
            if (!strcmp(name, ranges)) {
                pe_start = strtoull(ps, NULL, 10);
                extent = strtoull(ext, NULL, 10);
            }
            pl = pend ? pend + 1 : NULL;
        }
        if (!extent)
            continue;
        _cleanup_free_ char *loop = NULL;
        if ((err = ek_morph_journal_loop_add(j, ranges, pe_start + a * extent, (b - a + 1) * extent,
                                             &loop)))
            return ek_err_prefix(err, "logical volume %s/%s", vg, lv);
        _cleanup_free_ char *mapper = mapper_path(vg, lv);
        _cleanup_free_ char *lvpath = ek_xasprintf("/dev/%s/%s", vg, lv);
        ek_morph_event(r, "INFO", "%s is %s", lvpath, loop);
        probe(st, loop, -1, 0, lvpath, mapper);
    }
    return NULL;
}

/* A VG of the same name already active on the worker (its own, or another
 * guest's) would share /dev/<vg>: refuse, never rename. */
static ek_err_t *check_clash(const ek_strv_t *names_, const ek_strv_t *uuids_)
{
    const ek_strv_t names = *names_, uuids = *uuids_;
    ek_err_t *err;
    const char *all_argv[] = {"lvm",
                              "lvs",
                              "--noheadings",
                              "--separator",
                              "|",
                              "-o",
                              "vg_name,vg_uuid,lv_active",
                              "--config",
                              "devices{use_devicesfile=0}",
                              NULL};
    _cleanup_free_ char *all = NULL;
    err = ek_morph_run_host(all_argv, &all);
    ek_err_free(err); /* duplicate VG names make lvm complain; the rows still come */
    for (char *line = all; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        _cleanup_free_ char *vg = field(line, 0), *uuid = field(line, 1), *act = field(line, 2);
        for (size_t i = 0; i < names.n; i++)
            if (strcmp(vg, names.v[i]) == 0 && strcmp(uuid, uuids.v[i]) != 0 &&
                strcmp(act, "active") == 0)
                return ek_err_new(EK_E_CONFLICT,
                                  "the guest's volume group \"%s\" (UUID %s) has the name of a "
                                  "volume group already active on the worker (UUID %s); nothing "
                                  "was changed: deactivate the other one (vgchange -an) or "
                                  "morph this guest on another worker",
                                  vg, uuids.v[i], uuid);
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static ek_err_t *scan_lvm(ek_morph_storage_t *st, const ek_strv_t *pvs, ek_morph_journal_t *j,
                          ek_morph_report_t *r)
{
    st->lvm_filter = make_filter(pvs);
    _cleanup_free_ char *config = lvm_config(st->lvm_filter);
    const char *pvs_argv[] = {"lvm",
                              "pvs",
                              "--noheadings",
                              "--separator",
                              "|",
                              "-o",
                              "pv_name,vg_name,vg_uuid",
                              "--config",
                              config,
                              NULL};
    _cleanup_free_ char *out = NULL;
    ek_err_t *err = ek_morph_run_host(pvs_argv, &out);
    if (err)
        return ek_err_prefix(err, "listing the LVM physical volumes of the disks");
    _cleanup_strv_ ek_strv_t names = {0}, uuids = {0};
    for (char *line = out; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        _cleanup_free_ char *vg = field(line, 1), *uuid = field(line, 2);
        if (*uuid && !ek_strv_has(&uuids, uuid)) {
            ek_strv_add(&names, vg);
            ek_strv_add(&uuids, uuid);
        }
        line = end ? end + 1 : NULL;
    }
    if (!uuids.n)
        return NULL;
    if (have_dm() && (err = check_clash(&names, &uuids)))
        return err;
    bool dm = have_dm();
    for (size_t i = 0; i < uuids.n; i++) {
        if (!dm) {
            if ((err = scan_vg_loops(st, uuids.v[i], config, j, r)))
                return err;
            continue;
        }
        ek_morph_event(r, "INFO", "activating volume group %s (UUID %s)", names.v[i], uuids.v[i]);
        if ((err = ek_morph_journal_vg_activate(j, uuids.v[i], st->lvm_filter)))
            return err;
        _cleanup_free_ char *sel = ek_xasprintf("vg_uuid=%s", uuids.v[i]);
        const char *lvs_argv[] = {
            "lvm",      "lvs", "--noheadings", "--separator", "|", "-o", "vg_name,lv_name",
            "--select", sel,   "--config",     config,        NULL};
        _cleanup_free_ char *lvs = NULL;
        if ((err = ek_morph_run_host(lvs_argv, &lvs)))
            return ek_err_prefix(err, "listing the logical volumes of %s", names.v[i]);
        for (char *line = lvs; line && *line;) {
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            _cleanup_free_ char *vg = field(line, 0), *lv = field(line, 1);
            _cleanup_free_ char *dev = mapper_path(vg, lv);
            _cleanup_free_ char *lvpath = ek_xasprintf("/dev/%s/%s", vg, lv);
            if (*lv && access(dev, F_OK) == 0)
                probe(st, dev, -1, 0, lvpath, dev);
            line = end ? end + 1 : NULL;
        }
    }
    return NULL;
}

ek_err_t *ek_morph_storage_scan(const ek_morph_opts_t *o, ek_morph_journal_t *j,
                                ek_morph_report_t *r, ek_morph_storage_t **out)
{
    _cleanup_(ek_morph_storage_freep) ek_morph_storage_t *st = ek_xcalloc(1, sizeof(*st));
    ek_err_t *err = NULL;
    for (size_t i = 0; i < o->n_disks; i++) {
        char *path = NULL;
        if ((err = resolve_disk(o->disks[i], i, &path)))
            return err;
        if (ek_strv_has(&st->disks, path)) {
            free(path);
            return ek_err_new(EK_E_INVALID, "options.disks[%zu] names %s a second time", i,
                              o->disks[i]);
        }
        ek_strv_take(&st->disks, path);
    }
    _cleanup_strv_ ek_strv_t pvs = {0};
    for (size_t i = 0; i < st->disks.n; i++) {
        const char *disk = st->disks.v[i];
        const char *name = strrchr(disk, '/') + 1;
        _cleanup_strv_ ek_strv_t parts = {0}, nums = {0};
        list_partitions(name, &parts, &nums);
        if (!parts.n) {
            const char *pt[] = {"blkid", "-p", "-o", "value", "-s", "PTTYPE", disk, NULL};
            _cleanup_free_ char *pttype = NULL;
            ek_err_t *e = ek_morph_run_host(pt, &pttype);
            ek_err_free(e);
            if (pttype && *pttype && *pttype != '\n') {
                ek_morph_event(r, "INFO", "reading the partition table of %s", disk);
                if ((err = ek_morph_journal_parts_add(j, disk)))
                    return ek_err_prefix(err, "%s", disk);
                list_partitions(name, &parts, &nums);
            }
        }
        if (!parts.n) {
            probe(st, disk, (int)i, 0, NULL, NULL);
        }
        for (size_t k = 0; k < parts.n; k++) {
            _cleanup_free_ char *dev = ek_xasprintf("/dev/%s", parts.v[k]);
            probe(st, dev, (int)i, atoi(nums.v[k]), NULL, NULL);
        }
    }
    for (size_t i = 0; i < st->n_fs; i++)
        if (strcmp(st->fs[i].type, "LVM2_member") == 0)
            ek_strv_add(&pvs, st->fs[i].dev);
    if (pvs.n && (err = scan_lvm(st, &pvs, j, r)))
        return err;
    for (size_t i = 0; i < st->n_fs; i++)
        if (*st->fs[i].type)
            ek_morph_event(r, "INFO", "%s: %s%s%s", st->fs[i].dev, st->fs[i].type,
                           *st->fs[i].label ? " labelled " : "", st->fs[i].label);
    *out = EK_STEAL(st);
    return NULL;
}

/* ---- roots ---- */

static bool is_linux_fs(const char *t)
{
    return !strcmp(t, "ext2") || !strcmp(t, "ext3") || !strcmp(t, "ext4") || !strcmp(t, "xfs") ||
           !strcmp(t, "btrfs");
}

/* libguestfs: /etc a directory, /bin a directory (or a link to usr/bin),
 * and /etc/fstab or /etc/hosts */
static bool is_linux_root(const char *dir)
{
    return ek_morph_is_dir(dir, "/etc") &&
           (ek_morph_is_dir(dir, "/bin") || ek_morph_exists(dir, "/bin")) &&
           (ek_morph_exists(dir, "/etc/fstab") || ek_morph_exists(dir, "/etc/hosts"));
}

static bool is_windows_root(const char *dir)
{
#ifdef EK_HAVE_WINDOWS
    return ek_win_is_root(dir);
#else
    /* without the Windows part only the shape is recognised, to say so */
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    while (d && (de = readdir(d)) && !found)
        found = strcasecmp(de->d_name, "windows") == 0;
    if (d)
        closedir(d);
    return found;
#endif
}

static const char *probe_data(const char *type)
{
    if (!strcmp(type, "ext3") || !strcmp(type, "ext4"))
        return "noload";
    if (!strcmp(type, "xfs"))
        return "norecovery";
    return "";
}

static ek_err_t *probe_fs(ek_morph_storage_t *st, size_t i, ek_morph_journal_t *j, const char *dir,
                          ek_morph_root_t *roots, size_t *n_roots, ek_morph_report_t *r)
{
    ek_morph_fs_t *f = &st->fs[i];
    bool ntfs = strcmp(f->type, "ntfs") == 0;
    if (!ntfs && !is_linux_fs(f->type))
        return NULL;
    size_t mark = ek_morph_journal_count(j);
    ek_err_t *err =
        ntfs ? ek_morph_journal_mount(j, f->dev, dir, "ntfs-3g", 0, "ro")
             : ek_morph_journal_mount(j, f->dev, dir, f->type, MS_RDONLY, probe_data(f->type));
    if (err) {
        ek_morph_event(r, "WARNING", "%s: not inspected: %s", f->dev, err->message);
        ek_err_free(err);
        return NULL;
    }
    if (ntfs && is_windows_root(dir)) {
        roots[(*n_roots)++] = (ek_morph_root_t){.fs = (int)i, .windows = true};
    } else if (!ntfs && is_linux_root(dir)) {
        roots[(*n_roots)++] = (ek_morph_root_t){.fs = (int)i};
    } else if (!strcmp(f->type, "btrfs")) {
        /* the top level holds the subvolumes as directories (inode 256) */
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)) && *n_roots < 8) {
            if (de->d_name[0] == '.')
                continue;
            _cleanup_free_ char *sub = ek_morph_path(dir, de->d_name);
            struct stat sst;
            if (stat(sub, &sst) == 0 && S_ISDIR(sst.st_mode) && sst.st_ino == 256 &&
                is_linux_root(sub))
                roots[(*n_roots)++] =
                    (ek_morph_root_t){.fs = (int)i, .subvol = ek_xstrdup(de->d_name)};
        }
        if (d)
            closedir(d);
    }
    return ek_morph_journal_unwind_to(j, mark);
}

ek_err_t *ek_morph_storage_find_root(ek_morph_storage_t *st, ek_morph_journal_t *j,
                                     const char *probe_dir, ek_morph_report_t *r,
                                     ek_morph_root_t *out)
{
    mkdir(probe_dir, 0700);
    ek_morph_root_t roots[8] = {0};
    size_t n = 0;
    ek_err_t *err = NULL;
    for (size_t i = 0; i < st->n_fs && n < 8 && !err; i++)
        err = probe_fs(st, i, j, probe_dir, roots, &n, r);
    if (!err && n == 0) {
        ek_strbuf_t sb = EK_STRBUF_INIT;
        for (size_t i = 0; i < st->disks.n; i++)
            ek_strbuf_addf(&sb, "%s%s", i ? ", " : "", st->disks.v[i]);
        err = ek_err_new(EK_E_NOTFOUND,
                         "no operating system found on disks %s: no filesystem holds a Linux "
                         "root (/etc, /bin and /etc/fstab) or a Windows system root; are all "
                         "of the VM's disks attached?",
                         sb.buf);
        ek_strbuf_release(&sb);
    } else if (!err && n > 1) {
        ek_strbuf_t sb = EK_STRBUF_INIT;
        for (size_t i = 0; i < n; i++)
            ek_strbuf_addf(&sb, "%s%s%s%s", i ? " and " : "", st->fs[roots[i].fs].dev,
                           roots[i].subvol ? " subvolume " : "",
                           roots[i].subvol ? roots[i].subvol : "");
        err = ek_err_new(EK_E_CONFLICT,
                         "the disks hold more than one operating system (%s): OS morphing "
                         "needs exactly one; attach only the disks of one VM",
                         sb.buf);
        ek_strbuf_release(&sb);
    }
    if (err || n != 1) {
        for (size_t i = 0; i < n; i++)
            free(roots[i].subvol);
        return err;
    }
    *out = roots[0];
    return NULL;
}

/* ---- mounting ---- */

const char *ek_morph_storage_resolve(void *storage, const char *dev)
{
    ek_morph_storage_t *st = storage;
    const char *p = dev + 5; /* after /dev/ */
    size_t pre = strncmp(p, "xvd", 3) == 0 ? 3 : 2;
    p += pre;
    int disk = 0, partno = 0;
    /* sda..sdz, sdaa.. */
    if (!islower((unsigned char)*p))
        return NULL;
    disk = *p++ - 'a';
    if (islower((unsigned char)*p))
        disk = (disk + 1) * 26 + (*p++ - 'a');
    if (*p) {
        if (!isdigit((unsigned char)*p))
            return NULL;
        partno = atoi(p);
    }
    for (size_t i = 0; i < st->n_fs; i++)
        if (st->fs[i].disk == disk && st->fs[i].partno == partno && *st->fs[i].uuid)
            return st->fs[i].uuid;
    return NULL;
}

static const ek_morph_fs_t *resolve_spec(ek_morph_storage_t *st, const char *spec)
{
    for (size_t i = 0; i < st->n_fs; i++) {
        const ek_morph_fs_t *f = &st->fs[i];
        if ((!strncmp(spec, "UUID=", 5) && *f->uuid && !strcasecmp(spec + 5, f->uuid)) ||
            (!strncmp(spec, "LABEL=", 6) && *f->label && !strcmp(spec + 6, f->label)) ||
            (!strncmp(spec, "PARTUUID=", 9) && *f->partuuid &&
             !strcasecmp(spec + 9, f->partuuid)) ||
            (!strncmp(spec, "/dev/disk/by-uuid/", 18) && *f->uuid &&
             !strcasecmp(spec + 18, f->uuid)) ||
            (!strncmp(spec, "/dev/disk/by-label/", 19) && *f->label &&
             !strcmp(spec + 19, f->label)) ||
            !strcmp(spec, f->dev) || (f->lvpath && !strcmp(spec, f->lvpath)) ||
            (f->mapper && !strcmp(spec, f->mapper)))
            return f;
    }
    if (ek_morph_dev_is_unstable(spec)) {
        const char *uuid = ek_morph_storage_resolve(st, spec);
        for (size_t i = 0; uuid && i < st->n_fs; i++)
            if (!strcmp(st->fs[i].uuid, uuid))
                return &st->fs[i];
    }
    return NULL;
}

static int depth(const char *p)
{
    int d = 0;
    for (; *p; p++)
        d += *p == '/';
    return d;
}

static int by_depth(const void *a, const void *b)
{
    const ek_morph_fstab_entry_t *x = a, *y = b;
    int dx = depth(x->file), dy = depth(y->file);
    if (dx != dy)
        return dx - dy;
    return strcmp(x->file, y->file);
}

/* "subvol=@home" out of an fstab options string */
static char *btrfs_data(const char *opts)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    _cleanup_free_ char *copy = ek_xstrdup(opts ? opts : "");
    char *save = NULL;
    for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
        if (!strncmp(o, "subvol=", 7) || !strncmp(o, "subvolid=", 9))
            ek_strbuf_addf(&sb, "%s%s", sb.len ? "," : "", o);
    return ek_strbuf_detach(&sb);
}

static ek_err_t *mount_fstab(ek_morph_storage_t *st, ek_morph_journal_t *j, const char *dir,
                             ek_morph_report_t *r)
{
    _cleanup_free_ char *text = NULL;
    ek_err_t *err = ek_morph_read(dir, "/etc/fstab", &text);
    if (err || !text)
        return err;
    ek_morph_fstab_t fstab;
    ek_morph_fstab_parse(text, &fstab);
    qsort(fstab.e, fstab.n, sizeof(fstab.e[0]), by_depth);
    for (size_t i = 0; i < fstab.n && !err; i++) {
        const ek_morph_fstab_entry_t *e = &fstab.e[i];
        if (e->file[0] != '/' || !strcmp(e->file, "/") || strstr(e->file, "..") ||
            !strcmp(e->vfstype, "swap") || strstr(e->opts, "noauto") ||
            !strcmp(e->vfstype, "none") || !strcmp(e->vfstype, "tmpfs") ||
            !strcmp(e->vfstype, "proc") || !strcmp(e->vfstype, "sysfs") ||
            !strcmp(e->vfstype, "nfs") || !strcmp(e->vfstype, "nfs4") ||
            !strcmp(e->vfstype, "cifs") || strstr(e->opts, "bind"))
            continue;
        const ek_morph_fs_t *f = resolve_spec(st, e->spec);
        if (!f) {
            ek_morph_event(r, strstr(e->opts, "nofail") ? "INFO" : "WARNING",
                           "fstab: %s (%s) is not on the attached disks: not mounted", e->spec,
                           e->file);
            continue;
        }
        _cleanup_free_ char *target = ek_morph_path(dir, e->file);
        mkdir(target, 0755);
        const char *type = f->type;
        _cleanup_free_ char *data =
            strcmp(type, "btrfs") == 0 ? btrfs_data(e->opts) : ek_xstrdup("");
        if (!strcmp(type, "vfat") || !strcmp(type, "ext2") || !strcmp(type, "ext3") ||
            !strcmp(type, "ext4") || !strcmp(type, "xfs") || !strcmp(type, "btrfs")) {
            ek_err_t *e2 = ek_morph_journal_mount(j, f->dev, target, type, 0, data);
            if (e2) {
                ek_morph_event(r, "WARNING", "fstab: %s", e2->message);
                ek_err_free(e2);
            } else {
                ek_morph_event(r, "INFO", "mounted %s on %s", f->dev, e->file);
            }
        } else {
            ek_morph_event(r, "INFO", "fstab: %s (%s, %s) left unmounted", e->spec, e->file, type);
        }
    }
    ek_morph_fstab_clear(&fstab);
    return err;
}

ek_err_t *ek_morph_storage_mount_linux(ek_morph_storage_t *st, const ek_morph_root_t *root,
                                       ek_morph_journal_t *j, const char *dir, ek_morph_report_t *r)
{
    mkdir(dir, 0755);
    const ek_morph_fs_t *f = &st->fs[root->fs];
    _cleanup_free_ char *data =
        root->subvol ? ek_xasprintf("subvol=%s", root->subvol) : ek_xstrdup("");
    ek_err_t *err = ek_morph_journal_mount(j, f->dev, dir, f->type, 0, data);
    if (err)
        return ek_err_prefix(err, "mounting the guest root");
    /* ntfs-3g-style silent read-only fallbacks do not exist for these, but a
     * write test costs nothing and says it clearly */
    _cleanup_free_ char *test = ek_morph_path(dir, "/.ekman-write-test");
    FILE *t = fopen(test, "w");
    if (!t)
        return ek_err_errno(errno, "the guest root %s is not writable", f->dev);
    fclose(t);
    unlink(test);
    if ((err = mount_fstab(st, j, dir, r)))
        return err;
    /* grub-mkconfig names the root by UUID only when /dev/disk/by-uuid has
     * it; a worker without udev has none: link them (journaled) */
    mkdir("/dev/disk", 0755);
    mkdir("/dev/disk/by-uuid", 0755);
    for (size_t i = 0; i < st->n_fs; i++) {
        const ek_morph_fs_t *fs = &st->fs[i];
        if (!*fs->uuid || strchr(fs->uuid, '/'))
            continue;
        _cleanup_free_ char *link = ek_xasprintf("/dev/disk/by-uuid/%s", fs->uuid);
        struct stat lst;
        if (lstat(link, &lst) == 0)
            continue;
        if ((err = ek_morph_journal_file(j, link, "-")))
            return err;
        if (symlink(fs->dev, link) != 0)
            ek_morph_event(r, "WARNING", "cannot create %s: %s", link, strerror(errno));
    }
    static const char *const binds[] = {"/dev", "/proc", "/sys", "/run"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(binds); i++) {
        if (!ek_morph_is_dir(dir, binds[i]))
            continue;
        _cleanup_free_ char *target = ek_morph_path(dir, binds[i]);
        if ((err = ek_morph_journal_mount(j, binds[i], target, NULL, MS_BIND, NULL)))
            return err;
    }
    return NULL;
}
