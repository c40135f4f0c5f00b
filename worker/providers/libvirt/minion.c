/* minion.c - temporary worker VMs ("minions") on a libvirt destination: the
 * disk-copy worker of a transfer and the OS-morphing worker of a deployment.
 *
 * A minion "ekman-minion-<8 hex digits of the task id>" is made of:
 *   <name>-root.qcow2   a qcow2 overlay of the worker image volume that
 *                       migr_image_map names for the instance's OS type,
 *                       grown to migr_worker_volume_size GiB (the image
 *                       itself is never written);
 *   <name>-cidata.iso   its NoCloud config drive (worker/providers/common/
 *                       minion.h: SSH keys, writer certificates), built on
 *                       the worker and uploaded with virStorageVolUpload;
 *   the domain          migr_worker_memory MiB, migr_worker_vcpus, a NIC on
 *                       migr_worker_network, the qemu-ga channel, a serial
 *                       console logged to vm_console_log_dir (when
 *                       enable_vm_console_log), i440fx so that virtio disks
 *                       hot-plug without PCIe root ports.
 * Its address comes from migr_worker_iface_addr_src (the guest agent, the
 * network's DHCP leases or the host's ARP table, read over SSH when
 * libvirt's own ARP source fails); it is reachable once the writer (https)
 * or sshd (ssh) accepts a TCP connection there. The replica volumes are
 * then hot-attached as virtio disks with a <serial> (<= 20 characters), the
 * name the writer opens them by ("serial:S").
 *
 * Whatever fails or is cancelled while a minion is made removes all of it.
 * The removal (destroy, undefine, delete the two volumes) takes a
 * resources document and tolerates what is already gone, so that
 * DELETE_TRANSFER_TARGET_RESOURCES and DELETE_OS_MORPHING_RESOURCES can run
 * more than once; a task killed outright is cleaned up when it is retried
 * (same task, same name). Console logs are kept on the host for diagnosis. */
#include "worker/providers/libvirt/libvirt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include "common/json.h"
#include "common/mem.h"
#include "worker/providers/common/minion.h"

#define GIB (1024ULL * 1024 * 1024)

struct ek_lv_minion {
    virConnectPtr c;
    char *name, *pool, *root_vol, *iso_vol, *kind, *mac, *address, *console_log;
    ek_minion_boot_t *boot;
    json_object *attached; /* [{"serial","dev","pool","volume"}] */
    bool defined;
};

char *ek_lv_minion_name(const ek_task_input_t *in)
{
    char id[9] = {0};
    size_t n = 0;
    for (const char *p = in->task_id ? in->task_id : ""; *p && n < 8; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
            id[n++] = *p;
    while (n < 8)
        id[n++] = '0';
    return ek_xasprintf("ekman-minion-%s", id);
}

void ek_lv_minion_free(ek_lv_minion_t *m)
{
    if (!m)
        return;
    ek_minion_boot_free(m->boot);
    free(m->name);
    free(m->pool);
    free(m->root_vol);
    free(m->iso_vol);
    free(m->kind);
    free(m->mac);
    free(m->address);
    free(m->console_log);
    json_object_put(m->attached);
    free(m);
}

/* ---- removal --------------------------------------------------------------------------- */

static ek_err_t *domain_remove(ek_task_ctx_t *ctx, virConnectPtr c, const char *name)
{
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN)
            return NULL;
        return ek_lv_err(EK_E_UNAVAILABLE, "could not look up worker VM '%s'", name);
    }
    ek_err_t *err = NULL;
    if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0 && virDomainIsActive(d) == 1)
        err = ek_lv_err(EK_E_IO, "could not stop worker VM '%s'", name);
    if (!err && virDomainIsPersistent(d) == 1 &&
        virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                      VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0 &&
        virDomainUndefine(d) < 0)
        err = ek_lv_err(EK_E_IO, "could not undefine worker VM '%s'", name);
    virDomainFree(d);
    /* Trust only what libvirt shows afterwards: a worker VM left defined
     * holds its memory and name until someone notices. */
    if (!err && (d = virDomainLookupByName(c, name))) {
        int active = virDomainIsActive(d), persistent = virDomainIsPersistent(d);
        virDomainFree(d);
        err = ek_err_new(EK_E_IO,
                         "worker VM '%s' is still defined after it was stopped and undefined "
                         "(%s, %s): remove it with virsh destroy/undefine on the host",
                         name, active == 1 ? "running" : "shut off",
                         persistent == 1 ? "persistent" : "transient");
    }
    virResetLastError();
    if (!err && ctx)
        ek_task_event(ctx, "INFO", "worker VM '%s' stopped and deleted", name);
    return err;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

ek_err_t *ek_lv_minion_remove(ek_task_ctx_t *ctx, virConnectPtr c, json_object *res)
{
    const char *name = str_of(res, "minion"), *pool = str_of(res, "pool");
    if (!name) /* nothing was made */
        return NULL;
    if (strncmp(name, "ekman-minion-", 13) != 0)
        return ek_err_new(EK_E_INVALID, "'%s' is not a worker VM of Ekman: not removed", name);
    ek_err_t *err = domain_remove(ctx, c, name);
    json_object *vols;
    if (!err && pool && json_object_object_get_ex(res, "volumes", &vols) &&
        json_object_is_type(vols, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(vols) && !err; i++) {
            const char *v = json_object_get_string(json_object_array_get_idx(vols, i));
            if (v && strncmp(v, name, strlen(name)) == 0 && !strchr(v, '/'))
                err = ek_lv_vol_delete(c, pool, v);
        }
    }
    return err;
}

static json_object *resources_of(const char *name, const char *pool, const char *root,
                                 const char *iso)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "minion", json_object_new_string(name));
    json_object_object_add(r, "pool", json_object_new_string(pool));
    json_object *v = json_object_new_array();
    json_object_array_add(v, json_object_new_string(root));
    json_object_array_add(v, json_object_new_string(iso));
    json_object_object_add(r, "volumes", v);
    return r;
}

ek_err_t *ek_lv_minion_remove_by_name(ek_task_ctx_t *ctx, virConnectPtr c, const char *name,
                                      const char *pool)
{
    _cleanup_free_ char *root = ek_xasprintf("%s-root.qcow2", name);
    _cleanup_free_ char *iso = ek_xasprintf("%s-cidata.iso", name);
    json_object *r = resources_of(name, pool, root, iso);
    ek_err_t *err = ek_lv_minion_remove(ctx, c, r);
    json_object_put(r);
    return err;
}

json_object *ek_lv_minion_resources(const ek_lv_minion_t *m)
{
    json_object *r = resources_of(m->name, m->pool, m->root_vol, m->iso_vol);
    json_object_object_add(r, "attached", json_object_get(m->attached));
    if (m->address)
        json_object_object_add(r, "address", json_object_new_string(m->address));
    if (m->console_log)
        json_object_object_add(r, "console_log", json_object_new_string(m->console_log));
    return r;
}

json_object *ek_lv_minion_connection_info(const ek_lv_minion_t *m)
{
    return ek_minion_connection_info(m->boot, m->kind, m->address, 0);
}

const char *ek_lv_minion_address(const ek_lv_minion_t *m)
{
    return m->address;
}

/* ---- boot disk and config drive -------------------------------------------------------- */

/* Format (from the volume XML) of a volume; "raw" when it does not say. */
static char *vol_format(virStorageVolPtr v)
{
    char *xml = virStorageVolGetXMLDesc(v, 0);
    const char *f = xml ? strstr(xml, "<format type='") : NULL;
    char *out = NULL;
    if (f) {
        f += strlen("<format type='");
        out = ek_xstrndup(f, strcspn(f, "'"));
    }
    free(xml);
    return out ? out : ek_xstrdup("raw");
}

static ek_err_t *make_overlay(ek_lv_minion_t *m, virStoragePoolPtr pool, virStorageVolPtr image,
                              const ek_lv_opts_t *o)
{
    virStorageVolInfo info;
    if (virStorageVolGetInfo(image, &info) < 0)
        return ek_lv_err(EK_E_IO, "could not read the worker image volume");
    _cleanup_free_ char *path = virStorageVolGetPath(image);
    _cleanup_free_ char *fmt = vol_format(image);
    if (!path)
        return ek_lv_err(EK_E_IO, "the worker image volume has no path");
    uint64_t size = (uint64_t)o->worker_volume_size_gb * GIB;
    if (size < info.capacity)
        size = info.capacity;
    _cleanup_free_ char *xml =
        ek_xasprintf("<volume><name>%s</name><capacity unit='bytes'>%llu</capacity>"
                     "<target><format type='qcow2'/></target><backingStore><path>%s</path>"
                     "<format type='%s'/></backingStore></volume>",
                     m->root_vol, (unsigned long long)size, path, fmt);
    virStorageVolPtr v = virStorageVolCreateXML(pool, xml, 0);
    if (!v)
        return ek_lv_err(EK_E_IO,
                         "could not create the boot volume '%s' of worker VM '%s' "
                         "(an overlay of \"%s\")",
                         m->root_vol, m->name, path);
    virStorageVolFree(v);
    return NULL;
}

static int send_cb(virStreamPtr st, char *data, size_t n, void *opaque)
{
    (void)st;
    ssize_t r;
    do
        r = read(*(int *)opaque, data, n);
    while (r < 0 && errno == EINTR);
    return (int)r;
}

/* Uploads a local file into a new raw volume of its size. */
ek_err_t *ek_lv_upload_file(virStoragePoolPtr pool, const char *name, const char *file)
{
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ek_err_t *err = ek_err_errno(errno, "could not read \"%s\"", file);
        if (fd >= 0)
            close(fd);
        return err;
    }
    _cleanup_free_ char *xml =
        ek_xasprintf("<volume><name>%s</name><capacity unit='bytes'>%lld</capacity>"
                     "<target><format type='raw'/></target></volume>",
                     name, (long long)st.st_size);
    virStorageVolPtr v = virStorageVolCreateXML(pool, xml, 0);
    if (!v) {
        close(fd);
        return ek_lv_err(EK_E_IO, "could not create volume '%s'", name);
    }
    virStreamPtr s = virStreamNew(virStoragePoolGetConnect(pool), 0);
    ek_err_t *err = NULL;
    if (!s || virStorageVolUpload(v, s, 0, (unsigned long long)st.st_size, 0) < 0)
        err = ek_lv_err(EK_E_IO, "could not upload to volume '%s'", name);
    else if (virStreamSendAll(s, send_cb, &fd) < 0) {
        err = ek_lv_err(EK_E_IO, "could not upload to volume '%s'", name);
        virStreamAbort(s);
    } else if (virStreamFinish(s) < 0)
        err = ek_lv_err(EK_E_IO, "the upload to volume '%s' did not complete", name);
    if (s)
        virStreamFree(s);
    close(fd);
    virStorageVolFree(v);
    return err;
}

static ek_err_t *make_config_drive(ek_lv_minion_t *m, virStoragePoolPtr pool)
{
    _cleanup_free_ char *iso = ek_xasprintf("%s/cidata.iso", m->boot->dir);
    ek_err_t *err = ek_minion_nocloud_iso(m->boot, iso);
    if (!err)
        err = ek_lv_upload_file(pool, m->iso_vol, iso);
    unlink(iso);
    return err ? ek_err_prefix(err, "config drive of worker VM '%s'", m->name) : NULL;
}

/* ---- the domain -------------------------------------------------------------------------- */

static char *vol_path(virStoragePoolPtr pool, const char *name)
{
    virStorageVolPtr v = virStorageVolLookupByName(pool, name);
    char *p = v ? virStorageVolGetPath(v) : NULL;
    if (v)
        virStorageVolFree(v);
    return p;
}

static ek_err_t *check_network(virConnectPtr c, const char *name)
{
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "migr_worker_network is empty: name the libvirt network "
                                        "worker VMs attach to (virsh net-list)");
    virNetworkPtr n = virNetworkLookupByName(c, name);
    if (!n)
        return ek_lv_err(EK_E_NOTFOUND,
                         "the libvirt network '%s' (migr_worker_network) does not exist", name);
    ek_err_t *err = NULL;
    if (virNetworkIsActive(n) != 1 && virNetworkCreate(n) < 0)
        err = ek_lv_err(EK_E_CONFLICT,
                        "the libvirt network '%s' (migr_worker_network) is not active and "
                        "could not be started",
                        name);
    virNetworkFree(n);
    return err;
}

static char *domain_mac(virDomainPtr d)
{
    char *xml = virDomainGetXMLDesc(d, 0);
    const char *p = xml ? strstr(xml, "<mac address='") : NULL;
    char *mac = p ? ek_xstrndup(p + 14, strcspn(p + 14, "'")) : NULL;
    free(xml);
    return mac;
}

static ek_err_t *define_and_start(ek_task_ctx_t *ctx, ek_lv_minion_t *m, virStoragePoolPtr pool,
                                  const ek_lv_opts_t *o)
{
    _cleanup_free_ char *root = vol_path(pool, m->root_vol);
    _cleanup_free_ char *iso = vol_path(pool, m->iso_vol);
    if (!root || !iso)
        return ek_lv_err(EK_E_IO, "the volumes of worker VM '%s' have no path", m->name);
    ek_lv_vm_disk_t disks[] = {
        {.dev = "vda", .bus = "virtio", .path = root, .format = "qcow2", .boot_order = 1},
        {.dev = "hdc", .bus = "ide", .path = iso, .format = "raw", .cdrom = true},
    };
    ek_lv_vm_nic_t nic = {.network = o->worker_network, .model = "virtio"};
    if (o->console_log)
        m->console_log = ek_xasprintf("%s/%s-serial.log", o->console_log_dir, m->name);
    ek_lv_vm_t vm = {
        .name = m->name,
        .domain_type = ek_lv_domain_type(m->c, o, "x86_64"),
        .machine = "pc",
        .vcpus = (int)o->worker_vcpus,
        .memory_mb = (uint64_t)o->worker_memory_mb,
        .disks = disks,
        .n_disks = 2,
        .nics = &nic,
        .n_nics = 1,
        .minion = true,
        .console_log = m->console_log,
    };
    char *xml, *note;
    ek_err_t *err = ek_lv_vm_xml(&vm, &xml, &note);
    if (err)
        return err;
    free(note);
    virDomainPtr d = virDomainDefineXML(m->c, xml);
    free(xml);
    if (!d)
        return ek_lv_err(EK_E_IO, "could not define worker VM '%s'", m->name);
    m->defined = true;
    if (virDomainCreate(d) < 0)
        err = ek_lv_err(EK_E_IO, "could not start worker VM '%s'", m->name);
    else if (!(m->mac = domain_mac(d)))
        err = ek_err_new(EK_E_INTERNAL, "worker VM '%s' has no MAC address", m->name);
    virDomainFree(d);
    if (!err)
        ek_task_event(ctx, "INFO",
                      "worker VM '%s' started (%s, %lld MiB, %lld vCPU(s), network "
                      "'%s', MAC %s)",
                      m->name, vm.domain_type, (long long)o->worker_memory_mb,
                      (long long)o->worker_vcpus, o->worker_network, m->mac);
    return err;
}

/* ---- its address ------------------------------------------------------------------------- */

static bool tcp_open(const char *host, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int e = 0;
        socklen_t l = sizeof(e);
        ok = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 &&
             e == 0;
    }
    close(fd);
    return ok;
}

/* The IPv4 address of the NIC with mac from libvirt (NULL if none yet). */
static char *libvirt_address(virDomainPtr d, const char *mac, unsigned src, bool *failed)
{
    virDomainInterfacePtr *ifs = NULL;
    int n = virDomainInterfaceAddresses(d, &ifs, src, 0);
    *failed = n < 0;
    char *out = NULL;
    for (int i = 0; i < n; i++) {
        virDomainInterfacePtr f = ifs[i];
        for (unsigned k = 0; !out && f->hwaddr && strcasecmp(f->hwaddr, mac) == 0 && k < f->naddrs;
             k++)
            if (f->addrs[k].type == VIR_IP_ADDR_TYPE_IPV4 && f->addrs[k].addr &&
                strncmp(f->addrs[k].addr, "169.254.", 8) != 0)
                out = ek_xstrdup(f->addrs[k].addr);
        virDomainInterfaceFree(f);
    }
    free(ifs);
    return out;
}

/* The host's neighbour table, for when libvirt's ARP source fails (it does
 * on some kernels: "wrong nlmsg len"). */
static char *arp_address(ek_lv_conn_t *c, const char *mac)
{
    char *out = NULL, *text = NULL;
    int status = 0;
    ek_err_t *err =
        ek_lv_ssh_run(c, "ip -4 neigh show 2>/dev/null || cat /proc/net/arp", &text, NULL, &status);
    if (err) {
        ek_err_free(err);
        return NULL;
    }
    for (char *line = strtok(text ? text : (char *)"", "\n"); line && !out;
         line = strtok(NULL, "\n")) {
        if (!strcasestr(line, mac))
            continue;
        size_t n = strcspn(line, " \t");
        char ip[64];
        if (n > 0 && n < sizeof(ip)) {
            memcpy(ip, line, n);
            ip[n] = 0;
            struct in_addr a;
            if (inet_pton(AF_INET, ip, &a) == 1)
                out = ek_xstrdup(ip);
        }
    }
    free(text);
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *source_hint(const char *src)
{
    if (strcmp(src, "agent") == 0)
        return "the worker image must run qemu-guest-agent (the VM has its channel)";
    if (strcmp(src, "lease") == 0)
        return "migr_worker_network must be a libvirt network with DHCP";
    return "the host's ARP table must hold the VM's MAC (the VM must send traffic)";
}

static ek_err_t *wait_address(ek_task_ctx_t *ctx, ek_lv_conn_t *c, ek_lv_minion_t *m,
                              const ek_lv_opts_t *o, int port)
{
    virDomainPtr d = virDomainLookupByName(m->c, m->name);
    if (!d)
        return ek_lv_err(EK_E_IO, "worker VM '%s' is gone", m->name);
    unsigned src =
        strcmp(o->iface_addr_src, "agent") == 0   ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
        : strcmp(o->iface_addr_src, "lease") == 0 ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
                                                  : VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP;
    double start = now_s(), deadline = start + (double)o->worker_boot_timeout;
    int step =
        ek_task_step(ctx, (uint64_t)o->worker_boot_timeout, "Waiting for worker VM %s", m->name);
    char *addr = NULL;
    ek_err_t *err = NULL;
    while (!err) {
        if (ek_task_cancelled(ctx)) {
            err = ek_err_new(EK_E_CANCELED, "cancelled while worker VM '%s' was booting", m->name);
            break;
        }
        if (virDomainIsActive(d) != 1) {
            err = ek_err_new(EK_E_IO, "worker VM '%s' stopped while it was booting%s%s", m->name,
                             m->console_log ? ": see its console log " : "",
                             m->console_log ? m->console_log : "");
            break;
        }
        bool failed;
        char *a = libvirt_address(d, m->mac, src, &failed);
        if (!a && failed && src == VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP)
            a = arp_address(c, m->mac);
        if (a) {
            free(addr);
            addr = a;
            if (tcp_open(addr, port, 1000))
                break;
        }
        if (now_s() > deadline) {
            if (addr)
                err = ek_err_new(
                    EK_E_TIMEOUT,
                    "worker VM '%s' has address %s (from the %s) but nothing "
                    "answered on TCP port %d within %lld s "
                    "(migr_worker_boot_timeout): the image must start %s from its "
                    "config drive, and this worker must be able to reach %s%s%s",
                    m->name, addr, o->iface_addr_src, port, (long long)o->worker_boot_timeout,
                    port == 22 ? "sshd" : "ekman-writer", addr,
                    m->console_log ? "; console log: " : "", m->console_log ? m->console_log : "");
            else
                err = ek_err_new(EK_E_TIMEOUT,
                                 "worker VM '%s' (MAC %s) got no IPv4 address from the %s "
                                 "(migr_worker_iface_addr_src = %s) within %lld s "
                                 "(migr_worker_boot_timeout): %s%s%s",
                                 m->name, m->mac, o->iface_addr_src, o->iface_addr_src,
                                 (long long)o->worker_boot_timeout, source_hint(o->iface_addr_src),
                                 m->console_log ? "; console log: " : "",
                                 m->console_log ? m->console_log : "");
            break;
        }
        ek_task_step_update(ctx, step, (uint64_t)(now_s() - start));
        usleep(500 * 1000);
    }
    virDomainFree(d);
    if (err) {
        free(addr);
        return err;
    }
    ek_task_step_update(ctx, step, (uint64_t)o->worker_boot_timeout);
    m->address = addr;
    ek_task_event(ctx, "INFO", "worker VM '%s' is reachable at %s (address from the %s, %.0f s)",
                  m->name, addr, o->iface_addr_src, now_s() - start);
    return NULL;
}

/* ---- volumes ------------------------------------------------------------------------------ */

static ek_err_t *attach_one(ek_lv_minion_t *m, virDomainPtr d, json_object *v, size_t i)
{
    const char *pool_name = str_of(v, "pool"), *vol = str_of(v, "volume"),
               *serial = str_of(v, "serial"), *fmt = str_of(v, "format");
    if (!pool_name || !vol || !serial || strlen(serial) > EK_MINION_SERIAL_MAX)
        return ek_err_new(EK_E_INVALID, "volume #%zu to attach has no pool, volume or serial",
                          i + 1);
    virStoragePoolPtr pool;
    ek_err_t *err = ek_lv_pool_get(m->c, pool_name, "replica pool", &pool);
    if (err)
        return err;
    _cleanup_free_ char *path = vol_path(pool, vol);
    virStoragePoolFree(pool);
    if (!path)
        return ek_err_new(EK_E_NOTFOUND, "volume '%s' is missing from pool '%s'", vol, pool_name);
    char dev[8];
    snprintf(dev, sizeof(dev), "vd%c", (char)('b' + i));
    ek_lv_vm_disk_t disk = {
        .dev = dev, .bus = "virtio", .path = path, .format = fmt ? fmt : "raw", .serial = serial};
    _cleanup_free_ char *xml = ek_lv_disk_attach_xml(&disk);
    if (virDomainAttachDeviceFlags(d, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
        return ek_lv_err(EK_E_IO, "could not attach volume '%s' to worker VM '%s'", vol, m->name);
    json_object *a = json_object_new_object();
    json_object_object_add(a, "pool", json_object_new_string(pool_name));
    json_object_object_add(a, "volume", json_object_new_string(vol));
    json_object_object_add(a, "serial", json_object_new_string(serial));
    json_object_object_add(a, "dev", json_object_new_string(dev));
    json_object_array_add(m->attached, a);
    return NULL;
}

static ek_err_t *attach_all(ek_task_ctx_t *ctx, ek_lv_minion_t *m, json_object *vols)
{
    if (!vols || json_object_array_length(vols) == 0)
        return NULL;
    if (json_object_array_length(vols) > 24)
        return ek_err_new(EK_E_INVALID, "%zu disks: a worker VM takes at most 24",
                          json_object_array_length(vols));
    virDomainPtr d = virDomainLookupByName(m->c, m->name);
    if (!d)
        return ek_lv_err(EK_E_IO, "worker VM '%s' is gone", m->name);
    ek_err_t *err = NULL;
    for (size_t i = 0; i < json_object_array_length(vols) && !err; i++)
        err = attach_one(m, d, json_object_array_get_idx(vols, i), i);
    virDomainFree(d);
    if (!err)
        ek_task_event(ctx, "INFO", "%zu volume(s) attached to worker VM '%s'",
                      json_object_array_length(vols), m->name);
    return err;
}

/* ---- the whole life ----------------------------------------------------------------------- */

static ek_err_t *find_image(ek_lv_minion_t *m, const ek_lv_opts_t *o, const char *os_type,
                            virStoragePoolPtr *pool, virStorageVolPtr *image)
{
    _cleanup_free_ char *pool_name = NULL, *vol = NULL;
    ek_err_t *err = ek_lv_opts_image(m->c, o, os_type, &pool_name, &vol);
    if (err)
        return err;
    if ((err =
             ek_lv_pool_get(m->c, pool_name, "the pool of the worker image, migr_image_map", pool)))
        return err;
    if (!(err = ek_lv_vol_find(*pool, vol, image)) && !*image)
        err = ek_err_new(EK_E_NOTFOUND,
                         "worker image '%s' (migr_image_map, %s) is not in storage pool '%s': "
                         "upload the image (deploy/worker-image/build.sh, virsh vol-upload) or "
                         "fix migr_image_map",
                         vol, os_type ? os_type : "linux", pool_name);
    if (err) {
        virStoragePoolFree(*pool);
        *pool = NULL;
        return err;
    }
    m->pool = ek_xstrdup(pool_name);
    return NULL;
}

static ek_err_t *build(ek_task_ctx_t *ctx, ek_lv_conn_t *c, ek_lv_minion_t *m,
                       const ek_lv_opts_t *o, const ek_lv_minion_req_t *req)
{
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr image = NULL;
    ek_err_t *err;
    if ((err = check_network(m->c, o->worker_network)) ||
        (err = find_image(m, o, req->os_type, &pool, &image)))
        return err;
    /* What a killed attempt of this task left behind. */
    if (!(err = ek_lv_minion_remove_by_name(NULL, m->c, m->name, m->pool)) &&
        !(err = ek_minion_boot_new(m->name, ek_lv_tmp_dir(c), NULL, &m->boot)) &&
        !(err = make_overlay(m, pool, image, o)) && !(err = make_config_drive(m, pool)) &&
        !(err = define_and_start(ctx, m, pool, o)))
        err = wait_address(ctx, c, m, o, strcmp(m->kind, "ssh") == 0 ? 22 : EK_MINION_WRITER_PORT);
    if (!err)
        err = attach_all(ctx, m, req->volumes);
    virStorageVolFree(image);
    virStoragePoolFree(pool);
    return err;
}

ek_err_t *ek_lv_minion_create(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_lv_conn_t *c,
                              const ek_lv_opts_t *o, const ek_lv_minion_req_t *req,
                              ek_lv_minion_t **out)
{
    ek_lv_minion_t *m = ek_xcalloc(1, sizeof(*m));
    m->c = ek_lv_virconn(c);
    m->name = ek_lv_minion_name(in);
    m->root_vol = ek_xasprintf("%s-root.qcow2", m->name);
    m->iso_vol = ek_xasprintf("%s-cidata.iso", m->name);
    m->kind = ek_xstrdup(req->kind);
    m->attached = json_object_new_array();
    ek_task_event(ctx, "INFO", "creating worker VM '%s' (%s)", m->name, req->purpose);
    ek_err_t *err = build(ctx, c, m, o, req);
    if (err) {
        if (m->pool) {
            ek_err_t *e = ek_lv_minion_remove_by_name(NULL, m->c, m->name, m->pool);
            if (e) {
                ek_task_event(ctx, "WARNING", "worker VM '%s' could not be removed: %s", m->name,
                              e->message);
                ek_err_free(e);
            } else {
                ek_task_event(ctx, "INFO", "worker VM '%s' and its volumes were removed", m->name);
            }
        }
        ek_lv_minion_free(m);
        return err;
    }
    *out = m;
    return NULL;
}
