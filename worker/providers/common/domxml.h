/* domxml.h - the one reader of libvirt domain XML (libxml2), for the
 * providers whose sources are libvirt domains: `local` (XML files in a
 * directory) and `libvirt` (what libvirtd returns). It reads what a
 * migration needs - name, UUID, vCPUs, memory, architecture, machine type,
 * firmware, the guest OS family when libosinfo metadata names it, the disks
 * (device "disk" of type file, block or, when allowed, volume; CD-ROMs and
 * floppies are not migrated) and the network interfaces - and builds the
 * export_info document every destination reads.
 *
 * Hostile input is expected (a tenant's file): no network, no entities, a
 * size limit, each disk's target a plain name, errors that name the part. */
#ifndef EK_PROVIDERS_COMMON_DOMXML_H
#define EK_PROVIDERS_COMMON_DOMXML_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define EK_DOMXML_MAX_BYTES (4u << 20)

typedef struct ek_domxml_disk {
    char *id;   /* target dev: "vda" (checked: a name, never a path) */
    char *path; /* file or block device; NULL for a volume */
    char *pool; /* type='volume': its storage pool and volume */
    char *volume;
    char *format;   /* driver type, or NULL when the XML does not say */
    char *bus;      /* target bus ("virtio", "sata", ...), never NULL */
    uint64_t size;  /* virtual size in bytes (0 until the provider learns it) */
    int boot_order; /* <boot order='N'/>, 0 when absent */
} ek_domxml_disk_t;

typedef struct ek_domxml_nic {
    char *mac;     /* "52:54:00:..." or NULL */
    char *network; /* source network, bridge or device name, or NULL */
    char *kind;    /* interface type: "network", "bridge", ... */
    char *model;   /* "virtio", "e1000", ... or NULL */
} ek_domxml_nic_t;

typedef struct ek_domxml {
    char *name, *uuid;
    char *xml_path; /* the file it came from (set by the caller), or NULL */
    char *arch;     /* "x86_64" unless the XML says otherwise */
    char *machine;  /* os/type/@machine, or NULL */
    char *firmware; /* "bios" or "efi" */
    char *os_type;  /* "linux" or "windows" */
    int vcpus;
    uint64_t memory_mb;
    int state;    /* the hypervisor's state (virDomainState), when known */
    bool running; /* running or paused: a backup job can read it */
    ek_domxml_disk_t *disks;
    size_t n_disks;
    ek_domxml_nic_t *nics;
    size_t n_nics;
} ek_domxml_t;

typedef struct ek_domxml_opts {
    const char *base_dir; /* relative image paths are resolved against it (NULL: kept) */
    bool volumes;         /* <disk type='volume'> is read (a libvirt host's pools) */
    const char *reader;   /* named in errors: "the local provider reads file and block disks" */
} ek_domxml_opts_t;

EK_ERR_CHECK ek_domxml_parse(const char *text, size_t len, const ek_domxml_opts_t *o,
                             ek_domxml_t **out);
void ek_domxml_free(ek_domxml_t *d);

/* What the libvirt source adds to the common export_info. */
typedef struct ek_domxml_export_opts {
    bool id_is_uuid;        /* "id" is the UUID (else the name) */
    const char *state_name; /* "state", when known */
} ek_domxml_export_opts_t;

/* The export_info document of the task info (new reference): id, name,
 * num_cpu, memory_mb, firmware, os_type, arch, [machine_type], [xml_path],
 * disks (id, path, format, size_bytes, bus, shareable, [boot_order],
 * [storage_pool, volume]), boot_order (disk ids, lowest order first), nics
 * (mac, network_name, type, model). */
json_object *ek_domxml_export_info(const ek_domxml_t *d, const ek_domxml_export_opts_t *o);

#endif
