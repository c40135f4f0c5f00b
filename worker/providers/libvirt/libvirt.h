/* libvirt.h - the parts of the `libvirt` provider and how they fit together.
 *
 * The provider reaches a KVM host's libvirtd over SSH with the libvirt C API
 * (qemu+libssh2://), as source and as destination. The connection info
 * (proto/providers.c) names the host, port, user, the SSH private key
 * (base64), the host's known_hosts line(s) or its key fingerprint, and the
 * libvirt URI path.
 *
 * Files (source side and shared):
 *   conn.c     the connection: key and known_hosts files in a private
 *              directory, the SSH probe that names what failed, the libvirt
 *              connection with keepalive, ssh(1) arguments for tunnels
 *   endpoint.c validate-connection and the listings (domains, networks, pools)
 *   devices.c  the devices of an instance (endpoint instance show)
 *   source.c   the source tasks: instance info (export_info), validation,
 *              shutdown, source resources, snapshots, update
 *   backup.c   checkpoints and pull-mode backup jobs, NBD reached over SSH
 *   srcread.c  REPLICATE_DISKS: readers for the generic driver
 *              (worker/providers/common/replicate.h)
 * Destination side: see the section at the end. */
#ifndef EK_PROVIDER_LIBVIRT_H
#define EK_PROVIDER_LIBVIRT_H

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/strbuf.h" /* ek_human_size */
#include "common/config.h"
#include "common/error.h"
#include "common/compiler.h"
#include "worker/provider.h"
#include "worker/providers/common/domxml.h"

extern const ek_provider_t ek_provider_libvirt;

/* ---- conn.c ------------------------------------------------------------------------ */

/* An open connection to one host's libvirtd, with the files it needs. */
typedef struct ek_lv_conn ek_lv_conn_t;

/* Opens the endpoint's libvirt connection. The private key and known_hosts
 * go into files of a private (0700) directory under [worker] tmp_dir, that
 * ek_lv_disconnect removes. Before libvirt is asked, an SSH session of our
 * own checks, in this order, name resolution, the TCP connection, the host
 * key and the login, so that the error names the step that failed; a
 * failure after that is libvirt's (permission, daemon down). cfg may be
 * NULL (defaults). */
EK_ERR_CHECK ek_lv_connect(const ek_endpoint_t *ep, const ek_config_t *cfg, ek_lv_conn_t **out);
/* Closes the connection and removes its files. NULL is fine. */
void ek_lv_disconnect(ek_lv_conn_t *c);
virConnectPtr ek_lv_virconn(ek_lv_conn_t *c);

const char *ek_lv_host(const ek_lv_conn_t *c);
int ek_lv_port(const ek_lv_conn_t *c);
const char *ek_lv_user(const ek_lv_conn_t *c);
/* The private key and known_hosts files (OpenSSH formats), 0600. */
const char *ek_lv_key_file(const ek_lv_conn_t *c);
const char *ek_lv_known_hosts_file(const ek_lv_conn_t *c);
/* The connection's private directory: other temporary files of the task
 * may go there (removed with it). */
const char *ek_lv_tmp_dir(const ek_lv_conn_t *c);
/* "user@host:port" for messages. */
const char *ek_lv_describe(const ek_lv_conn_t *c);
/* libvirt version of the host's daemon, or 0. */
unsigned long ek_lv_lib_version(const ek_lv_conn_t *c);

/* An error with libvirt's last error message appended ("...: <message>"). */
ek_err_t *ek_lv_err(int code, const char *fmt, ...) EK_PRINTF(2, 3);

/* The argument vector of an OpenSSH client logged in to the host with the
 * connection's key, strict host key checking against its known_hosts file,
 * no user configuration, batch mode; `extra` (NULL-terminated, may be NULL)
 * is inserted before the destination, `remote_command` (may be NULL) after
 * it. Free with ek_lv_argv_free. */
char **ek_lv_ssh_argv(const ek_lv_conn_t *c, const char *const *extra, const char *remote_command);
void ek_lv_argv_free(char **argv);

/* Runs a command on the host over SSH (libssh2); *out (may be NULL) gets its
 * standard output, *status its exit status. An error only when the command
 * could not be run; a non-zero status is the caller's to judge, with the
 * command's standard error in *errout (may be NULL). */
EK_ERR_CHECK ek_lv_ssh_run(ek_lv_conn_t *c, const char *command, char **out, char **errout,
                           int *status);

/* ---- endpoint.c -------------------------------------------------------------------- */

#define EK_LV_ENDPOINT_FN(name)                                                                    \
    ek_err_t *ek_lv_##name(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,         \
                           json_object **out)

EK_LV_ENDPOINT_FN(validate_connection);
EK_LV_ENDPOINT_FN(list_instances);
EK_LV_ENDPOINT_FN(get_instance);
EK_LV_ENDPOINT_FN(list_networks);
EK_LV_ENDPOINT_FN(list_storage);

/* ---- source.c ---------------------------------------------------------------------- */

/* What the source side knows of a domain: its live or inactive XML read by
 * the common reader (worker/providers/common/domxml.h), disk sizes, pools
 * and volumes from libvirt, its state. */
typedef ek_domxml_disk_t ek_lv_disk_t;
typedef ek_domxml_nic_t ek_lv_nic_t;
typedef ek_domxml_t ek_lv_domain_t;

/* Looks up a domain by name (or UUID) and reads its disks' sizes. */
EK_ERR_CHECK ek_lv_domain_load(ek_lv_conn_t *c, const char *name, ek_lv_domain_t **out);
/* Parses a domain XML document (sizes left 0). */
EK_ERR_CHECK ek_lv_domain_parse(const char *xml, ek_lv_domain_t **out);
void ek_lv_domain_free(ek_lv_domain_t *d);
/* The export_info document (new reference), the local provider's keys. */
json_object *ek_lv_domain_export_info(const ek_lv_domain_t *d);

/* ---- devices.c --------------------------------------------------------------------- */

/* The instance's devices as Coriolis's instance info names them (new
 * reference): {"disks", "cdroms", "floppies", "controllers", "nics",
 * "serial_ports"}, from the domain XML (xml) and what d learned (disk sizes,
 * pools); the addresses of a running domain's NICs from libvirt (dom may be
 * NULL: none). */
EK_ERR_CHECK ek_lv_domain_devices(const char *xml, virDomainPtr dom, const ek_lv_domain_t *d,
                                  json_object **out);
/* The task's source connection (origin endpoint, the task's config). */
EK_ERR_CHECK ek_lv_task_connect_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                       ek_lv_conn_t **out);

/* The source environment: {"changed_block_tracking": bool} (default true).
 * false: a running domain's syncs keep no libvirt checkpoint (no QEMU dirty
 * bitmap stays in its images); every sync reads each disk in full and only
 * the blocks that differ from the replica are sent. Any other key is an
 * error naming it. */
EK_ERR_CHECK ek_lv_source_env(json_object *env, bool *cbt);

ek_err_t *ek_lv_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result);
ek_err_t *ek_lv_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                       json_object *result);
ek_err_t *ek_lv_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                       json_object *result);
ek_err_t *ek_lv_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result);
ek_err_t *ek_lv_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result);
ek_err_t *ek_lv_task_delete_source_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_lv_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result);
ek_err_t *ek_lv_task_update_source_transfer(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result);

/* ---- backup.c ---------------------------------------------------------------------- */

/* A pull-mode backup job of a running domain: every disk exported over NBD
 * on a Unix socket of the host, reached here through an SSH-forwarded
 * socket; a new checkpoint is created with it. */
typedef struct ek_lv_backup ek_lv_backup_t;

/* The Ekman checkpoints of a domain for one tag ("ekman-<tag>-<n>"). */
EK_ERR_CHECK ek_lv_checkpoints_list(virDomainPtr dom, const char *tag, char ***names, size_t *n);
/* Deletes the domain's Ekman checkpoints of the tag except `keep` (may be
 * NULL: all of them). */
EK_ERR_CHECK ek_lv_checkpoints_prune(virDomainPtr dom, const char *tag, const char *keep);

typedef struct ek_lv_backup_disk {
    const char *id;      /* target dev */
    bool incremental_ok; /* a bitmap-capable (qcow2) disk */
} ek_lv_backup_disk_t;

/* Starts the job for the given disks (every disk of the domain), with a
 * new checkpoint for those that can hold a bitmap. incremental: bitmap
 * disks export what changed since the tag's base checkpoint, when there is
 * one. resume (an earlier attempt of the task saved state): re-attach to
 * the job that attempt left, if it is still there. Otherwise what earlier
 * runs left (job, host directory, unfinished checkpoints) is cleaned up
 * first. */
EK_ERR_CHECK ek_lv_backup_begin(ek_lv_conn_t *c, virDomainPtr dom, const char *tag,
                                const ek_lv_backup_disk_t *disks, size_t n, bool incremental,
                                bool resume, ek_task_ctx_t *ctx, ek_lv_backup_t **out);
/* The NBD URI of a disk's export (the local end of the tunnel), and the
 * dirty bitmap context when the disk is read incrementally (else NULL). */
char *ek_lv_backup_uri(const ek_lv_backup_t *b, const char *disk);
const char *ek_lv_backup_bitmap(const ek_lv_backup_t *b, const char *disk);
/* True when the job is the one an earlier attempt of the task started
 * (same point in time: a resumed copy stays consistent). */
bool ek_lv_backup_reattached(const ek_lv_backup_t *b);
/* Ends the job. ok: the copy of every disk completed: the new checkpoint
 * becomes the base of the next incremental and older ones go; else the
 * new checkpoint is deleted and the base stays. Everything temporary
 * (tunnel, sockets, scratch files) is removed either way. */
EK_ERR_CHECK ek_lv_backup_end(ek_lv_backup_t *b, bool ok);

/* Removes what replications of the tag left on the host: a backup job of
 * the domain and its directory, and checkpoints of unfinished syncs (all
 * of the tag's checkpoints with `all`). */
EK_ERR_CHECK ek_lv_backup_cleanup(ek_lv_conn_t *c, virDomainPtr dom, const char *tag, bool all,
                                  ek_task_ctx_t *ctx);

/* ---- srcread.c --------------------------------------------------------------------- */

/* The checkpoint tag of a transfer: from the destination endpoint (one set
 * of checkpoints per replica set). malloc'ed. */
char *ek_lv_checkpoint_tag(const ek_task_input_t *in);

/* ==== destination side (lvdst) ======================================================== */
/*
 * Files:
 *   options.c    the [libvirt_migration_provider] options of one task: the
 *                config file's, each overridden by the destination
 *                environment's value of the same name, checked (errors name
 *                the option); storage pools of disks (storage_mappings)
 *   domain_xml.c generated domain XML: deployed VMs and worker VMs
 *   volumes.c    replica volumes (DEPLOY/DELETE_TRANSFER_DISKS), their
 *                snapshots or clones (deployments)
 *   minion.c     temporary worker VMs: boot volume overlay, NoCloud drive,
 *                domain, address, volumes hot-attached, teardown
 *   deploy.c     destination validations, target resources, deployment
 *                tasks (deployed domain, OS-morphing worker, cleanup)
 *   provider.c   the provider table
 * Every object the destination makes is named "ekman-..." (volumes of
 * replicas: "<instance>-<disk>.replica", see volumes.c) and is recorded in
 * the task info, so a later task finds and removes it by name. */

/* ---- options.c --------------------------------------------------------------------- */

typedef struct ek_lv_opts {
    char *default_storage_pool;
    ek_strmap_t image_map; /* migr_image_map: os_type -> "vol" or "pool/vol" */
    int64_t worker_volume_size_gb, worker_memory_mb, worker_vcpus;
    char *worker_network;
    char *data_transfer_mechanism; /* "https" | "ssh" */
    bool console_log;
    char *console_log_dir;
    bool vnc;
    char *vnc_listen_address;
    char *windows_virtio_iso_url;
    char *windows_virtio_iso_sha256;
    bool set_dhcp, use_config_drive, retain_user_credentials;
    char *cpu_mode; /* "" = libvirt's default */
    bool cpu_migratable;
    ek_strlist_t cpu_features;
    char *iface_addr_src; /* "agent" | "lease" | "arp" */
    char *ssh_key_path;
    char *sqlite_database_file;
    bool add_tpm;
    char *domain_type;           /* "auto" | "kvm" | "qemu" (Ekman's addition) */
    int64_t worker_boot_timeout; /* seconds (Ekman's addition) */
} ek_lv_opts_t;

/* The options of a task: cfg (may be NULL: defaults) overridden by env (the
 * destination environment, may be NULL). A value of env may be of its JSON
 * type (true, 25, ["a"], {"linux": "img"}) or a string as it would be
 * written in the file. */
EK_ERR_CHECK ek_lv_opts_load(const ek_config_t *cfg, json_object *env, ek_lv_opts_t *out);
void ek_lv_opts_release(ek_lv_opts_t *o);
/* The worker image of an OS type: *pool is the pool named in the map
 * ("pool/volume") or default_storage_pool; an absolute path (the seed's
 * "image paths") is looked up on c among the pools' volumes. malloc'ed both. */
EK_ERR_CHECK ek_lv_opts_image(virConnectPtr c, const ek_lv_opts_t *o, const char *os_type,
                              char **pool, char **volume);
/* The pool of a source disk (export_info.disks[i]): storage_mappings'
 * disk_mappings (by disk id), then backend_mappings (by the disk's
 * "storage_backend" or "pool"), then its "default", then
 * default_storage_pool. Borrowed; an error when none is set. */
EK_ERR_CHECK ek_lv_disk_pool(const ek_lv_opts_t *o, json_object *storage_mappings,
                             json_object *disk, const char **out);

/* ---- domain_xml.c ------------------------------------------------------------------ */

typedef struct ek_lv_vm_disk {
    const char *dev;    /* target dev ("vda") */
    const char *bus;    /* "virtio", "sata", "scsi", "ide" */
    const char *path;   /* file on the host */
    const char *format; /* "raw", "qcow2" */
    const char *serial; /* or NULL */
    bool cdrom;
    int boot_order; /* 0: none */
} ek_lv_vm_disk_t;

typedef struct ek_lv_vm_nic {
    const char *mac;     /* or NULL: libvirt chooses */
    const char *network; /* libvirt network, or bridge when bridge is set */
    bool bridge;
    const char *model; /* or NULL: virtio */
} ek_lv_vm_nic_t;

typedef struct ek_lv_vm {
    const char *name;
    const char *domain_type; /* "kvm" or "qemu" (resolved) */
    const char *arch;        /* or NULL: x86_64 */
    const char *machine;     /* or NULL: libvirt's default */
    bool efi, windows;
    int vcpus;
    uint64_t memory_mb;
    const ek_lv_vm_disk_t *disks;
    size_t n_disks;
    const ek_lv_vm_nic_t *nics;
    size_t n_nics;
    bool minion;      /* a worker VM: qemu-ga channel, rng, no TPM, no CPU options */
    bool cpu_options; /* cpu_mode, cpu_migratable, cpu_features apply */
    bool tpm;
    const char *console_log; /* serial log file, or NULL */
    bool vnc;
    const char *vnc_listen;
    const char *vnc_password; /* the console's password (VNC: 8 characters at most) */
    const char *cpu_mode;     /* as configured */
    bool cpu_migratable;
    const ek_strlist_t *cpu_features;
} ek_lv_vm_t;

/* The domain XML (malloc'ed). cpu_mode "host-passthrough" on a TCG
 * ('qemu') domain, which QEMU cannot do, becomes "maximum" (its TCG
 * counterpart), with *note saying so (malloc'ed, or NULL). */
/* A combination of options that works but is probably not what the operator
 * wants (invtsc with cpu_migratable), said at validation; malloc'ed or NULL. */
char *ek_lv_opts_warning(const ek_lv_opts_t *o);
/* The worker image of os_type (migr_image_map) exists, in a directory pool
 * (the seed's requirement; another pool type is refused naming it). */
EK_ERR_CHECK ek_lv_check_worker_image(virConnectPtr c, const ek_lv_opts_t *o, const char *os_type);
EK_ERR_CHECK ek_lv_vm_xml(const ek_lv_vm_t *vm, char **out, char **note);
/* The <disk> of a hot-attached volume (malloc'ed). */
char *ek_lv_disk_attach_xml(const ek_lv_vm_disk_t *d);
/* The disk serial of a volume (<= 20 characters, from its pool and name). */
void ek_lv_volume_serial(const char *pool, const char *volume, char out[21]);
/* A name safe as a volume or domain name: [A-Za-z0-9._-], others '_'
 * (malloc'ed). */
char *ek_lv_safe_name(const char *s);
/* The machine family of a versioned machine type ("pc-q35-7.2" -> "q35",
 * "pc-i440fx-7.2" -> "pc"), or NULL. */
const char *ek_lv_machine_family(const char *machine);

/* ---- volumes.c --------------------------------------------------------------------- */

/* A storage pool by name, started and refreshed. */
EK_ERR_CHECK ek_lv_pool_get(virConnectPtr c, const char *name, const char *what,
                            virStoragePoolPtr *out);
/* A volume of a pool by name; NULL in *out when it does not exist. */
EK_ERR_CHECK ek_lv_vol_find(virStoragePoolPtr pool, const char *name, virStorageVolPtr *out);
/* Uploads a local file into a new raw volume `name` of its size
 * (virStorageVolUpload). */
EK_ERR_CHECK ek_lv_upload_file(virStoragePoolPtr pool, const char *name, const char *file);
/* Deletes a volume of a pool by name; a missing one is fine. */
EK_ERR_CHECK ek_lv_vol_delete(virConnectPtr c, const char *pool, const char *name);

/* ---- minion.c ---------------------------------------------------------------------- */

typedef struct ek_lv_minion ek_lv_minion_t;

/* What a worker VM is made for: a transfer (the writer, data_transfer_mechanism)
 * or OS morphing (ssh). */
typedef struct ek_lv_minion_req {
    const char *purpose;  /* "transfer" | "osmorphing" */
    const char *os_type;  /* image of migr_image_map */
    const char *kind;     /* connection kind: "https" | "ssh" */
    json_object *volumes; /* [{"pool","volume","serial","format"}] to attach, may be NULL */
} ek_lv_minion_req_t;

/* Creates, boots and reaches a worker VM, and attaches the volumes. On
 * failure or cancellation everything made is removed. */
EK_ERR_CHECK ek_lv_minion_create(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_lv_conn_t *c,
                                 const ek_lv_opts_t *o, const ek_lv_minion_req_t *req,
                                 ek_lv_minion_t **out);
/* {"minion": NAME, "pool": P, "volumes": [...], "attached": [...]} (new ref) */
json_object *ek_lv_minion_resources(const ek_lv_minion_t *m);
/* The connection info of its writer / sshd (new reference; holds keys). */
json_object *ek_lv_minion_connection_info(const ek_lv_minion_t *m);
/* The guest's address. */
const char *ek_lv_minion_address(const ek_lv_minion_t *m);
void ek_lv_minion_free(ek_lv_minion_t *m);
/* Removes what a resources document names (detach, destroy, undefine,
 * delete volumes); what is already gone is fine. */
EK_ERR_CHECK ek_lv_minion_remove(ek_task_ctx_t *ctx, virConnectPtr c, json_object *resources);
/* Removes a leftover worker VM of this name and its volumes (a task
 * killed before it could clean up, then retried). */
EK_ERR_CHECK ek_lv_minion_remove_by_name(ek_task_ctx_t *ctx, virConnectPtr c, const char *name,
                                         const char *pool);
/* "ekman-minion-<first 8 hex digits of the task id>" (malloc'ed). */
char *ek_lv_minion_name(const ek_task_input_t *in);

/* ---- deploy.c, volumes.c: the destination tasks ------------------------------------------ */

/* The task's destination connection and options. */
EK_ERR_CHECK ek_lv_task_connect_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            ek_lv_conn_t **c, ek_lv_opts_t *o);
/* The destination's side of a failed disk copy: a full storage pool of the
 * volumes (provider hook diagnose_copy_error; takes err). */
ek_err_t *ek_lv_diagnose_copy_error(ek_task_ctx_t *ctx, const ek_task_input_t *in, ek_err_t *err);
/* "kvm" or "qemu" for the options and the host. */
const char *ek_lv_domain_type(virConnectPtr c, const ek_lv_opts_t *o, const char *arch);

ek_err_t *ek_lv_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                 json_object *result);
ek_err_t *ek_lv_task_deploy_transfer_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result);
ek_err_t *ek_lv_task_delete_transfer_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result);
ek_err_t *ek_lv_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result);
ek_err_t *ek_lv_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                             json_object *result);
ek_err_t *ek_lv_task_create_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result);
ek_err_t *ek_lv_task_delete_target_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_lv_task_restore_disk_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result);
ek_err_t *ek_lv_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_lv_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result);
ek_err_t *ek_lv_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_lv_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                 json_object *result);
ek_err_t *ek_lv_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_lv_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result);
ek_err_t *ek_lv_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result);
ek_err_t *ek_lv_task_update_destination_transfer(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                 json_object *result);

#endif
