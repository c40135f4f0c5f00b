/* devices.c - disks named by serial. A destination attaches each replica
 * volume to the disk-copy VM with a serial number it chooses (virtio
 * <serial>, oVirt: the first 20 characters of the disk id) and asks the
 * writer for "serial:S": the device node's name (vdb, sdc) depends on the
 * order of hot-plugs, the serial does not. Resolution order:
 *   <by-id dir>/virtio-S, <by-id dir>/scsi-0QEMU_QEMU_HARDDISK_S, <by-id dir>/S
 *   (udev's or mdev's links, default /dev/disk/by-id), then
 *   /sys/block/X/serial == S (virtio-blk without links) -> /dev/X.
 * A link found there is resolved to the node it names (the by-id directory
 * is udev's, not a client's): disk.c opens the node itself beneath an
 * --allow-path directory, and never follows a link at the last component.
 * A disk hot-plugged a moment ago may not be there yet: resolution waits
 * for it up to a few seconds. */
#include "worker/writer/writer.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/mem.h"

#define SERIAL_MAX 64
#define WAIT_MS    10000
#define POLL_MS    100

static bool serial_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SERIAL_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

/* The first line of a small sysfs file, without its newline. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\r\n")] = 0;
    return ok;
}

static char *find_in_sysfs(const char *serial)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], value[SERIAL_MAX + 2];
        snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
        if (read_line(path, value, sizeof(value)) && strcmp(value, serial) == 0)
            found = ek_xasprintf("/dev/%s", e->d_name);
    }
    closedir(d);
    return found;
}

static char *find_once(const char *by_id_dir, const char *serial)
{
    static const char *const prefixes[] = {"virtio-", "scsi-0QEMU_QEMU_HARDDISK_", ""};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        _cleanup_free_ char *p = ek_xasprintf("%s/%s%s", by_id_dir, prefixes[i], serial);
        char node[PATH_MAX];
        if (realpath(p, node))
            return ek_xstrdup(node);
    }
    return find_in_sysfs(serial);
}

char *ek_writer_resolve_serial(const ek_writer_opts_t *opts, const char *serial, char *msg,
                               size_t msglen)
{
    if (!serial_valid(serial)) {
        snprintf(msg, msglen,
                 "disk serial \"%.80s\" is not valid (1-%d letters, digits, '-', '_' or '.')",
                 serial, SERIAL_MAX);
        return NULL;
    }
    const char *dir = opts->by_id_dir ? opts->by_id_dir : "/dev/disk/by-id";
    for (int waited = 0;; waited += POLL_MS) {
        char *p = find_once(dir, serial);
        if (p || waited >= WAIT_MS) {
            if (!p)
                snprintf(msg, msglen,
                         "no disk with serial \"%s\" is attached to this machine (looked in %s "
                         "and /sys/block for %d s): check that the volume was attached",
                         serial, dir, WAIT_MS / 1000);
            return p;
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}
