/* ova.h - the parts of the `ova` source provider and how they fit together.
 *
 * An ova endpoint is a directory ({"path": "/dir"}) under one of the
 * operator's [ova] allowed_roots, holding
 *
 *   DIR/<any>.ova        a tar: exactly one .ovf, an optional .mf, the disks
 *   DIR/<any>.ovf        an unpacked descriptor; its disks (and <stem>.mf)
 *                        beside it or in subfolders of DIR
 *
 * Each descriptor is one instance, named after its VirtualSystem (falling
 * back to the file name). Disks are read in place, straight out of the tar,
 * through qemu-nbd over a raw window (offset + size) of the file, the format
 * forced and every external reference (backing file, data file, extents)
 * refused. Nothing is ever unpacked or written in DIR.
 *
 * Files:
 *   roots.c      allowed roots; opening paths beneath them (openat2 RESOLVE_BENEATH)
 *   tar.c        ustar/GNU/pax headers -> members with offsets and sizes
 *   manifest.c   .mf lines (SHA1/SHA256) checked with OpenSSL over the members
 *   ovf.c        the OVF descriptor (libxml2 + XPath) -> ek_ova_vm_t, export_info
 *   image.c      disk format checks (magic, qemu-img info) and qemu-nbd specs
 *   instance.c   the instances of a directory: loading, listing, finding
 *   replicate.c  REPLICATE_DISKS read side (block hashes as the local provider)
 *   tasks.c      the other source tasks
 *   provider.c   the provider table and the endpoint calls
 *
 * Everything here runs in a task child of the worker (worker/child.c). */
#ifndef EK_PROVIDER_OVA_H
#define EK_PROVIDER_OVA_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/config.h"
#include "common/error.h"
#include "worker/provider.h"

extern const ek_provider_t ek_provider_ova;

/* ---- roots.c ------------------------------------------------------------------------ */

/* Checks that dir (absolute) lies under one of the [ova] allowed_roots of
 * cfg and opens it (O_DIRECTORY) without following any link out of the
 * root. No roots configured: an error telling the operator to set them.
 * *dirfd is the caller's (close it). `endpoint` names it in errors. */
EK_ERR_CHECK ek_ova_root_open_dir(const ek_config_t *cfg, const char *endpoint, const char *dir,
                                  int *dirfd);
/* Opens the relative path `rel` beneath dirfd read-only (no link may lead
 * out of dirfd, no absolute path, no ".."). The fd is NOT close-on-exec:
 * qemu-img and qemu-nbd inherit it (/dev/fd/N). */
EK_ERR_CHECK ek_ova_open_beneath(int dirfd, const char *rel, int *fd);
/* connection_info.path of the endpoint opened as above. */
EK_ERR_CHECK ek_ova_endpoint_open(const ek_config_t *cfg, const ek_endpoint_t *ep, int *dirfd);

/* ---- tar.c -------------------------------------------------------------------------- */

typedef struct ek_ova_member {
    char *name;      /* as in the archive, "./" stripped */
    uint64_t offset; /* of the data in the archive */
    uint64_t size;
} ek_ova_member_t;

typedef struct ek_ova_tar {
    ek_ova_member_t *v; /* regular files only, in archive order */
    size_t n;
} ek_ova_tar_t;

/* Reads the headers of the tar on fd (ustar, GNU long names, pax path and
 * size). A member named with ".." or an absolute path is refused; `what`
 * names the archive in errors. */
EK_ERR_CHECK ek_ova_tar_read(int fd, const char *what, ek_ova_tar_t *out);
const ek_ova_member_t *ek_ova_tar_find(const ek_ova_tar_t *t, const char *name);
void ek_ova_tar_release(ek_ova_tar_t *t);

/* ---- manifest.c ----------------------------------------------------------------------- */

typedef struct ek_ova_mf_entry {
    char *algo; /* "SHA1", "SHA256" */
    char *name;
    char *hex; /* lower case */
} ek_ova_mf_entry_t;

typedef struct ek_ova_manifest {
    ek_ova_mf_entry_t *v;
    size_t n;
} ek_ova_manifest_t;

/* Parses "SHA256(name)= hex" lines (optional CR, blank lines ignored). */
EK_ERR_CHECK ek_ova_manifest_parse(const char *text, size_t len, const char *what,
                                   ek_ova_manifest_t *out);
void ek_ova_manifest_release(ek_ova_manifest_t *m);
/* Hex digest (algo "SHA1"/"SHA256") of [offset, offset+size) of fd, read
 * in a stream; cancelled (EK_E_CANCELED) when ctx says so. */
EK_ERR_CHECK ek_ova_digest(int fd, uint64_t offset, uint64_t size, const char *algo,
                           const ek_task_ctx_t *ctx, char **hex);

/* ---- ovf.c -------------------------------------------------------------------------- */

typedef struct ek_ova_disk {
    char *id;          /* device name for the destinations: "sda", "hda" */
    char *ovf_disk_id; /* DiskSection/Disk/@ovf:diskId */
    char *href;        /* References/File/@ovf:href */
    char *bus;         /* "scsi", "sata", "ide" (NVMe: "sata", see controller) */
    char *controller;  /* "lsilogic", "lsilogicsas", "pvscsi", "buslogic", "ide", "sata", "nvme" */
    char *compression; /* ovf:compression or NULL */
    uint64_t capacity; /* bytes */
} ek_ova_disk_t;

typedef struct ek_ova_nic {
    char *mac;          /* "00:50:56:..." (lower case) */
    bool mac_generated; /* the OVF had none: a stable locally administered one */
    char *network;      /* rasd:Connection or NULL */
    char *model;        /* "vmxnet3", "e1000", "e1000e", ... (lower case) */
} ek_ova_nic_t;

typedef struct ek_ova_vm {
    char *name;
    int vcpus;
    uint64_t memory_mb;
    char *firmware;   /* "bios" or "efi" */
    char *os_type;    /* "linux", "windows" or "other" */
    char *vmw_ostype; /* vmw:osType or NULL */
    int ovf_os_id;    /* OperatingSystemSection/@ovf:id, -1 when absent */
    ek_ova_disk_t *disks;
    size_t n_disks;
    ek_ova_nic_t *nics;
    size_t n_nics;
} ek_ova_vm_t;

/* Parses an OVF descriptor; fallback_name names the instance when the
 * VirtualSystem has no name, and `what` the descriptor in errors. */
EK_ERR_CHECK ek_ova_ovf_parse(const char *text, size_t len, const char *fallback_name,
                              const char *what, ek_ova_vm_t **out);
void ek_ova_vm_free(ek_ova_vm_t *vm);

/* ---- image.c ------------------------------------------------------------------------ */

/* The qemu block spec of a raw window over fd ("json:{...}" with the
 * format's driver, backing null); malloc'ed. format NULL: the window only. */
char *ek_ova_image_spec(int fd, uint64_t offset, uint64_t size, const char *format);
/* Detects the format of the disk in [offset, offset+size) of fd from its
 * header ("vmdk", "qcow2", "vhdx", "vpc", "raw"), refuses any external
 * reference (VMDK descriptors and parents, qcow2 backing and data files),
 * then asks `qemu-img info` with the format forced for the virtual size and
 * checks it again. `what` names the disk in errors. */
EK_ERR_CHECK ek_ova_image_probe(int fd, uint64_t offset, uint64_t size, const char *what,
                                char **format, uint64_t *virtual_size);

/* ---- instance.c --------------------------------------------------------------------- */

typedef struct ek_ova_instance {
    char *file;       /* the .ova or .ovf, relative to the endpoint directory */
    bool archive;     /* .ova */
    ek_ova_tar_t tar; /* members of the archive */
    char *ovf_name;   /* the descriptor's name (member or file) */
    char *base;       /* unpacked: directory of the .ovf relative to DIR ("" for DIR) */
    ek_ova_vm_t *vm;
} ek_ova_instance_t;

/* Loads DIR/file (an .ova or an .ovf). */
EK_ERR_CHECK ek_ova_instance_load(int dirfd, const char *file, ek_ova_instance_t **out);
/* Every instance of DIR sorted by name; files that do not load are
 * skipped with a warning in the log. */
EK_ERR_CHECK ek_ova_instance_list(int dirfd, ek_ova_instance_t ***out, size_t *n);
/* The instance named `name` (an error listing what is there otherwise). */
EK_ERR_CHECK ek_ova_instance_find(int dirfd, const char *name, ek_ova_instance_t **out);
void ek_ova_instance_free(ek_ova_instance_t *inst);
/* Opens the file that holds disk i: *fd (not close-on-exec, caller
 * closes), and the window of its data. */
EK_ERR_CHECK ek_ova_instance_disk_open(int dirfd, const ek_ova_instance_t *inst, size_t i, int *fd,
                                       uint64_t *offset, uint64_t *size);
/* Checks the manifest (if any) against the files it lists: a mismatch is
 * an error naming the file; a listed file that is missing is a WARNING
 * event. Disks with ovf:compression are refused. */
EK_ERR_CHECK ek_ova_instance_verify(ek_task_ctx_t *ctx, int dirfd, const ek_ova_instance_t *inst);
/* Probes every disk (format, virtual size) and builds export_info in the
 * local provider's shape (new reference). */
EK_ERR_CHECK ek_ova_instance_export_info(int dirfd, const ek_ova_instance_t *inst,
                                         json_object **out);

/* ---- task functions ------------------------------------------------------------------ */

ek_err_t *ek_ova_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result);
ek_err_t *ek_ova_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result);
ek_err_t *ek_ova_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result);
ek_err_t *ek_ova_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result);
ek_err_t *ek_ova_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result);
ek_err_t *ek_ova_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                      json_object *result);
ek_err_t *ek_ova_task_delete_source_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                              json_object *result);
ek_err_t *ek_ova_task_update_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result);

#endif
