/* local.h - the parts of the `local` provider and how they fit together.
 *
 * The local provider reads libvirt domain XML files in a directory (as
 * `virt-v2v -i libvirtxml` does) with the raw or qcow2 images they point to,
 * and writes replicas into another directory:
 *
 *   SRC/<name>.xml                         one domain per file (any *.xml is scanned)
 *   DST/<instance>/disk-<id>.img           replica of disk <id> (target dev, "vda"), raw, sparse
 *   DST/<instance>/disk-<id>.hashmap       block hashes of the last sync (incrementals)
 *   DST/<instance>/disk-<id>.hashmap.inprogress   a sync is writing the replica
 *   DST/<instance>/disk-<id>.snap.img      snapshot (or clone) during a deployment
 *   DST/<instance>/deployed/disk-<id>.img  the deployed VM's disks
 *   DST/<instance>/<instance>.xml          the deployed VM's libvirt domain
 *
 * Files:
 *   domain.c      domain XML -> ek_local_domain_t, image probing, export_info
 *   domain_xml.c  the generated domain XML of a deployed VM
 *   paths.c       endpoint directories, names safe as file names, shell quoting
 *   filecopy.c    sparse / reflink copies (snapshots, clones)
 *   nbd.c         qemu-nbd serving a qcow2 image read-only to the NBD reader
 *   tracked.c     a reader wrapper: block-hash change tracking, cancellation
 *   replicate.c   REPLICATE_DISKS over the transfer engine and ekman-writer
 *   disks.c       target disks and their snapshots (destination tasks)
 *   deploy.c      deployment: the VM's disks, its domain XML, cleanup, OS morphing
 *   tasks.c       the other tasks (validation, instance info, resources) and helpers
 *   provider.c    the provider table and the endpoint calls
 *
 * Every path a tenant names - an endpoint's connection_info.path, the image
 * paths of its domain XML, the paths in export_info - is opened only
 * beneath the operator's [local] allowed_roots (paths.c, with
 * worker/providers/common/tenant_root.h); without roots the provider is off.
 * Images are probed and opened with their format forced and no external
 * reference (worker/providers/common/tenant_image.h).
 *
 * Everything here runs in a task child of the worker (worker/child.c). */
#ifndef EK_PROVIDER_LOCAL_H
#define EK_PROVIDER_LOCAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/strbuf.h" /* ek_human_size */
#include "common/config.h"
#include "common/error.h"
#include "worker/provider.h"
#include "worker/providers/common/domxml.h"
#include "worker/transfer/reader.h"

/* The provider table (provider.c). */
extern const ek_provider_t ek_provider_local;

/* Where a local endpoint's paths may lead: the worker's configuration
 * ([local] allowed_roots; NULL: nothing is allowed) and the endpoint's name
 * for errors. Both borrowed. */
typedef struct ek_local_scope {
    const ek_config_t *cfg;
    const char *endpoint;
} ek_local_scope_t;

/* ---- domain.c ---------------------------------------------------------------------- */

/* A domain of the source directory: the common reader's (xml_path set). */
typedef ek_domxml_disk_t ek_local_disk_t;
typedef ek_domxml_nic_t ek_local_nic_t;
typedef ek_domxml_t ek_local_domain_t;

/* Parses a domain XML document. Relative image paths are resolved against
 * base_dir; with probe, each image is opened (beneath sc's roots) to learn
 * its virtual size (and its format when the XML does not say it). sc may be
 * NULL without probe. */
EK_ERR_CHECK ek_local_domain_parse(const ek_local_scope_t *sc, const char *text, size_t len,
                                   const char *base_dir, bool probe, ek_local_domain_t **out);
/* Reads (beneath sc's roots) and parses one file. */
EK_ERR_CHECK ek_local_domain_load(const ek_local_scope_t *sc, const char *xml_path, bool probe,
                                  ek_local_domain_t **out);
/* The domain named `name` in the source directory: DIR/<name>.xml when it
 * holds that domain, else the first *.xml file that does. */
EK_ERR_CHECK ek_local_domain_find(const ek_local_scope_t *sc, const char *dir, const char *name,
                                  bool probe, ek_local_domain_t **out);
/* Every domain of the directory, sorted by name; files that do not parse are
 * skipped with a warning in the log. The caller frees each and the array. */
EK_ERR_CHECK ek_local_domain_list(const ek_local_scope_t *sc, const char *dir, bool probe,
                                  ek_local_domain_t ***out, size_t *n);
void ek_local_domain_free(ek_local_domain_t *d);
/* The export_info document of the task info (new reference). */
json_object *ek_local_domain_export_info(const ek_local_domain_t *d);

/* Format ("raw"/"qcow2"; declared_format NULL to detect) and virtual size
 * of an image, opened beneath sc's roots and checked as every tenant image
 * is (tenant_image.h): a qcow2 naming a backing or data file is refused. */
EK_ERR_CHECK ek_local_image_probe(const ek_local_scope_t *sc, const char *path,
                                  const char *declared_format, const char **format, uint64_t *size);
/* Opens the image at path beneath sc's roots (not close-on-exec: qemu
 * reads it as /dev/fd/N) and probes it as above. *fd is the caller's. */
EK_ERR_CHECK ek_local_image_open(const ek_local_scope_t *sc, const char *path,
                                 const char *declared_format, int *fd, const char **format,
                                 uint64_t *size);

/* ---- domain_xml.c ------------------------------------------------------------------ */

/* A disk of the deployed VM, in the order of the source's disks. */
typedef struct ek_local_deployed_disk {
    const char *id, *path, *bus;
    int boot_order;
} ek_local_deployed_disk_t;

/* The libvirt domain XML of the deployed VM from export_info, the deployed
 * disks and the network map ({source network: destination network, or
 * {"id"|"name": ...}}; a destination "bridge:NAME" makes a bridge interface).
 * *out is malloc'ed text. */
EK_ERR_CHECK ek_local_domain_xml_build(json_object *export_info,
                                       const ek_local_deployed_disk_t *disks, size_t n_disks,
                                       json_object *network_map, char **out);

/* ---- paths.c ----------------------------------------------------------------------- */

/* connection_info.path of an endpoint, checked to be an absolute directory
 * beneath one of cfg's [local] allowed_roots (reached without a link out of
 * it) that the worker can read (and, with writable, write). Borrowed. No
 * roots configured: an error telling the operator what to set. */
EK_ERR_CHECK ek_local_endpoint_dir(const ek_config_t *cfg, const ek_endpoint_t *ep, bool writable,
                                   const char **dir);
/* Opens path (absolute, named by the tenant) with open(2) flags beneath one
 * of the [local] allowed_roots of sc->cfg. */
EK_ERR_CHECK ek_local_path_open(const ek_local_scope_t *sc, const char *path, int flags, int *fd);
/* A name usable as one path component: not empty, ".", ".."; no '/', NUL
 * or control characters; at most 200 bytes. `what` names it in the error. */
EK_ERR_CHECK ek_local_name_check(const char *name, const char *what);
/* The destination layout (see the top of this file); malloc'ed. */
char *ek_local_instance_dir(const char *dest_dir, const char *instance);
char *ek_local_replica_path(const char *inst_dir, const char *disk_id, const char *suffix);
/* unlink() that ignores a missing file; an error names the file. */
EK_ERR_CHECK ek_local_unlink(const char *path);
/* Free and total bytes of the file system holding path. */
EK_ERR_CHECK ek_local_fs_space(const char *path, uint64_t *free_bytes, uint64_t *total_bytes);
/* The connection_info.path of the task's endpoints (already checked by the
 * validations; checked again here because a task may run alone), against
 * the roots of the task's configuration. */
EK_ERR_CHECK ek_local_task_dirs(const ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                const char **src, const char **dst);

/* ---- filecopy.c -------------------------------------------------------------------- */

typedef void (*ek_local_copy_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* Copies src to dst as `cp --reflink=auto --sparse=always` would: a clone
 * (FICLONE) where the file system shares extents, else a copy of the data
 * ranges (SEEK_DATA/SEEK_HOLE) that leaves zero blocks as holes. dst is
 * written beside and renamed in place at the end, so it is never partial. */
EK_ERR_CHECK ek_local_file_copy(const char *src, const char *dst, ek_local_copy_progress_fn fn,
                                void *opaque, bool *cloned);

/* ---- nbd.c ------------------------------------------------------------------------- */

typedef struct ek_local_nbd ek_local_nbd_t;

/* Starts qemu-nbd serving image (format qcow2 or raw) read-only on a private
 * Unix socket under tmp_dir and waits until it accepts connections. */
EK_ERR_CHECK ek_local_nbd_start(const char *image, const char *format, const char *tmp_dir,
                                ek_local_nbd_t **out);
/* The URI for the NBD reader ("nbd+unix:///?socket=..."); borrowed. */
const char *ek_local_nbd_uri(const ek_local_nbd_t *n);
/* Stops the server and removes its socket directory. NULL is fine. */
void ek_local_nbd_stop(ek_local_nbd_t *n);

/* ---- tracked.c --------------------------------------------------------------------- */

/* A reader over another one (inner, already opened) that stops with an
 * EK_E_CANCELED error once the task is cancelled and, given a hash map path,
 * tracks changes by 64 KiB block hashes like the raw reader does (same file
 * format), for sources that have no change tracking of their own (qcow2
 * through qemu-nbd). Without a hash map it only forwards. */
typedef struct ek_local_tracked ek_local_tracked_t;

extern const ek_reader_ops_t ek_local_tracked_ops;

EK_ERR_CHECK ek_local_tracked_open(const ek_reader_ops_t *inner, void *inner_handle, uint64_t size,
                                   const char *hash_map, const ek_task_ctx_t *ctx,
                                   ek_local_tracked_t **out);
/* Closes the wrapper and the inner reader. */
void ek_local_tracked_close(ek_local_tracked_t *t);

/* ---- replicate.c: the block-hash map of a replica (also the ova source's) ---------- */

struct ek_repl_disk;
/* Before a disk's sync: keeps the map when it describes the replica's last
 * sync (or this very task wrote it), else drops it so every block is sent
 * (with a WARNING event saying why). */
EK_ERR_CHECK ek_local_hash_map_prepare(ek_task_ctx_t *ctx, const struct ek_repl_disk *d,
                                       const char *hash_map);
/* After a completed sync: stamps the map with the task's id and records it
 * in the disk's volumes_info entry (hash_map_sync). */
EK_ERR_CHECK ek_local_hash_map_seal(const struct ek_repl_disk *d, const char *hash_map);
/* Marks (writing) or unmarks a sync of the map's replica as under way. */
EK_ERR_CHECK ek_local_hash_map_mark(const char *hash_map, const char *task_id, bool writing);

/* ---- task functions (replicate.c, disks.c, deploy.c, tasks.c) ------------------------ */

ek_err_t *ek_local_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result);
ek_err_t *ek_local_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result);
ek_err_t *ek_local_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                    json_object *result);
ek_err_t *ek_local_task_deploy_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result);
ek_err_t *ek_local_task_delete_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result);
ek_err_t *ek_local_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_local_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_local_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_local_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_local_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result);
ek_err_t *ek_local_task_replicate_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                        json_object *result);
ek_err_t *ek_local_task_delete_source_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_local_task_create_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result);
ek_err_t *ek_local_task_delete_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result);
ek_err_t *ek_local_task_restore_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result);
ek_err_t *ek_local_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                   json_object *result);
ek_err_t *ek_local_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_local_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result);
ek_err_t *ek_local_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result);
ek_err_t *ek_local_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result);
ek_err_t *ek_local_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result);
ek_err_t *ek_local_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_local_task_update_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                      json_object *result);
ek_err_t *ek_local_task_update_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result);

/* ---- shared helpers for the task files (tasks.c) -------------------------------------- */

/* task_info.<key> of the given JSON type, or an error naming the task that
 * should have produced it. Borrowed. */
EK_ERR_CHECK ek_local_info_get(const ek_task_input_t *in, const char *key, json_type type,
                               json_object **out);
/* The entry of volumes_info with this disk_id (borrowed), or NULL. */
json_object *ek_local_volume_find(json_object *volumes_info, const char *disk_id);
/* Checks that an environment holds no option: the local provider has none. */
EK_ERR_CHECK ek_local_environment_check(json_object *env, const char *which);
/* Checks that every NIC's network of export_info is in the network map. */
EK_ERR_CHECK ek_local_network_map_check(json_object *export_info, json_object *network_map);

#endif
