/* ovirt.h - the parts of the `ovirt` provider (oVirt / OLVM / RHV as a
 * destination, REST API v4) and how they fit together.
 *
 * Files:
 *   api.c       the REST client: SSO token, Bearer, one transparent re-login
 *               on 401, TLS, faults turned into errors, JSON with string
 *               scalars, search= lookups, polling with timeouts
 *   opts.c      the [ovirt_migration_provider] options, each overridable in
 *               the destination environment; name lookups of clusters,
 *               storage domains, templates, pools and vNIC profiles
 *   vms.c       VM helpers: create, start, stop, attach, detach, delete
 *   disks.c     DEPLOY/DELETE_TRANSFER_DISKS and the disk snapshots
 *   minion.c    temporary worker VMs (disk copy, OS morphing)
 *   imageio.c   data_transfer_mechanism = imageio: image transfers instead
 *               of a disk-copy worker VM
 *   deploy.c    deployments: the final VM, cleanup, OS morphing hook
 *   tasks.c     validations, updates, the Windows VirtIO zip check
 *   provider.c  the provider table and the endpoint calls
 *
 * Everything runs in a task child of the worker (worker/child.c). */
#ifndef EK_PROVIDER_OVIRT_H
#define EK_PROVIDER_OVIRT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "worker/provider.h"

extern const ek_provider_t ek_provider_ovirt;

/* ---- api.c ------------------------------------------------------------------------- */

typedef struct ek_ovirt ek_ovirt_t;

/* Opens a session on the endpoint: checks connection_info ({url, username,
 * password, allow_untrusted}) and gets an SSO token. ctx may be NULL. */
EK_ERR_CHECK ek_ovirt_open(const ek_endpoint_t *ep, ek_task_ctx_t *ctx, ek_ovirt_t **out);
void ek_ovirt_close(ek_ovirt_t *c);
/* The endpoint name (for messages). */
const char *ek_ovirt_name(const ek_ovirt_t *c);

/* One call. path is relative to the API URL ("/vms/ID"), body may be NULL.
 * `what` says what the call does, for the error ("attaching disk 'x' to VM
 * 'y'"). A 2xx answer gives its JSON in *out (NULL allowed; an empty body
 * is {}); anything else an error quoting the engine's detail. A 401 gets a
 * new token once and the call is sent again. */
EK_ERR_CHECK ek_ovirt_call(ek_ovirt_t *c, const char *method, const char *path, json_object *body,
                           const char *what, json_object **out);
/* Like ek_ovirt_call, but a 404 gives *out = NULL and no error. */
EK_ERR_CHECK ek_ovirt_get_opt(ek_ovirt_t *c, const char *path, const char *what, json_object **out);
/* Whether the engine is at least major.minor.build (its version read once
 * per connection from GET /ovirt-engine/api); *full: its full version text
 * (owned by c), when full is not NULL. */
EK_ERR_CHECK ek_ovirt_engine_at_least(ek_ovirt_t *c, int major, int minor, int build, bool *yes,
                                      const char **full);
/* Turns an HTTP status and a fault body into an error (exposed for tests). */
ek_err_t *ek_ovirt_fault(long status, const char *body, size_t len, const char *what);
/* The HTTP status of the last call. */
long ek_ovirt_last_status(const ek_ovirt_t *c);
/* Whether a cancel of the task stops the calls (the default); cleanups
 * turn it off so that what was made is removed even after a cancel. */
void ek_ovirt_set_cancellable(ek_ovirt_t *c, bool on);
bool ek_ovirt_cancelled(const ek_ovirt_t *c);
/* Whether the endpoint has allow_untrusted (no TLS verification). */
bool ek_ovirt_insecure(const ek_ovirt_t *c);
/* The engine's CA certificate (PEM, caller frees), which also signs its
 * hosts' imageio certificates. */
EK_ERR_CHECK ek_ovirt_engine_ca(ek_ovirt_t *c, char **pem);
/* Forgets the token (tests; the next call logs in again). */
void ek_ovirt_drop_token(ek_ovirt_t *c);

/* JSON with string scalars: real engines send "4096" and "true". */
const char *ek_ovirt_str(json_object *o, const char *key);
bool ek_ovirt_int(json_object *o, const char *key, int64_t *out);
bool ek_ovirt_bool(json_object *o, const char *key, bool def);
/* o[key][sub] as a string ("cluster" -> "id"). */
const char *ek_ovirt_ref(json_object *o, const char *key, const char *sub);
/* A collection {"vm": [...]}: the array (borrowed), or NULL when empty. */
json_object *ek_ovirt_list(json_object *o, const char *singular);
size_t ek_ovirt_count(json_object *o, const char *singular);
/* URL-encodes s (malloc'ed). */
char *ek_ovirt_escape(const char *s);

/* The entity of a collection named `name` (or whose id is `name`): GET
 * /coll?search=name%3D..., exact match checked. *out is a new reference or
 * NULL when there is none (no error: the caller names what was missing). */
EK_ERR_CHECK ek_ovirt_find(ek_ovirt_t *c, const char *collection, const char *singular,
                           const char *name, json_object **out);

/* Polls GET path until its `key` is one of the comma-separated `want`
 * states, failing on one of `bad` or after timeout_s seconds. A 404 is an
 * error unless want contains "gone". */
EK_ERR_CHECK ek_ovirt_wait(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *path, const char *key,
                           const char *want, const char *bad, int timeout_s, const char *what);

/* Seconds between polls (EKMAN_OVIRT_POLL_MS in tests) and the time limits. */
unsigned ek_ovirt_poll_ms(void);
int ek_ovirt_timeout(const char *which, int def);

/* ---- opts.c ------------------------------------------------------------------------ */

/* An option of [ovirt_migration_provider]: destination_environment[name]
 * when set, else the configuration file's value or default. */
const char *ek_ovirt_opt_str(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name);
bool ek_ovirt_opt_bool(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name);
int64_t ek_ovirt_opt_int(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name);
/* map option[key] ("linux" -> template), or NULL. */
const char *ek_ovirt_opt_map(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char *name,
                             const char *key);
/* Checks that the environment names only known options of the right type. */
EK_ERR_CHECK ek_ovirt_env_check(const ek_endpoint_t *ep);

/* Lookups that fail with an error naming the object and the option it came from. */
EK_ERR_CHECK ek_ovirt_cluster(ek_ovirt_t *c, const char *name, const char *option,
                              json_object **out);
EK_ERR_CHECK ek_ovirt_storage_domain(ek_ovirt_t *c, const char *name, const char *option,
                                     json_object **out);
EK_ERR_CHECK ek_ovirt_template(ek_ovirt_t *c, const char *name, const char *option,
                               json_object **out);
/* The vNIC profile a network_map value names: "NETWORK", "NETWORK/PROFILE"
 * or {"network": N, "vnic_profile": P}, in the cluster's data center. */
EK_ERR_CHECK ek_ovirt_vnic_profile(ek_ovirt_t *c, json_object *cluster, json_object *mapped,
                                   const char *source, json_object **out);
/* The storage domain name for a source disk: storage_mappings.disk_mappings,
 * backend_mappings (by the disk's storage backend), default, then the
 * default_storage_domain option. Borrowed; an error when none is set. */
EK_ERR_CHECK ek_ovirt_disk_domain_name(ek_task_ctx_t *ctx, const ek_endpoint_t *ep,
                                       json_object *disk, const char **out);
/* The cluster of migrated VMs and the one of temporary VMs. */
const char *ek_ovirt_main_cluster(ek_task_ctx_t *ctx, const ek_endpoint_t *ep);
const char *ek_ovirt_minion_cluster(ek_task_ctx_t *ctx, const ek_endpoint_t *ep);

/* ---- vms.c ------------------------------------------------------------------------- */

/* sockets x cores for n vCPUs within the engine's limits for x86 clusters
 * (MaxNumOfVmSockets 16, MaxNumOfCpuPerSocket 254): one core per socket up
 * to 16, else the fewest cores per socket that divide n into at most 16
 * sockets (n itself at worst: one socket). */
void ek_ovirt_cpu_topology(int64_t n, int64_t *sockets, int64_t *cores);

/* A name oVirt accepts for a VM or a disk alias: letters, digits, '-', '_',
 * '.' (anything else becomes '-'); at most 64 bytes, keeping the end. */
char *ek_ovirt_vm_name(const char *prefix, const char *instance, const char *suffix);
/* POSTs /vms and waits until the VM is down (image_locked -> down). */
EK_ERR_CHECK ek_ovirt_vm_create(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *body,
                                const char *query, json_object **vm);
EK_ERR_CHECK ek_ovirt_vm_attach(ek_ovirt_t *c, const char *vm_id, const char *vm_name,
                                const char *disk_id, const char *iface, bool bootable);
EK_ERR_CHECK ek_ovirt_vm_start(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                               const char *vm_name, json_object *body, bool wait_up);
/* Stops (force) and waits for down; a VM already down or gone is fine. */
EK_ERR_CHECK ek_ovirt_vm_stop(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                              const char *vm_name);
/* Detaches (keeps) the disks, then deletes the VM and its own disks.
 * Already gone is fine. */
EK_ERR_CHECK ek_ovirt_vm_remove(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                                const char *vm_name, json_object *keep_disk_ids);
/* The first IPv4 (else global IPv6) address the guest agent reports. */
EK_ERR_CHECK ek_ovirt_vm_wait_ip(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *vm_id,
                                 const char *vm_name, char **ip);
/* Deletes a disk and waits until it is gone; already gone is fine. */
EK_ERR_CHECK ek_ovirt_disk_remove(ek_ovirt_t *c, ek_task_ctx_t *ctx, const char *disk_id,
                                  const char *what);

/* ---- minion.c ---------------------------------------------------------------------- */

/* A worker VM from the template of os_type with the disks attached
 * (virtio, serial = disk id), started with the minion's cloud-init
 * user-data; *resources {"vm_id","vm_name","disk_ids"} and *conn the
 * target connection info. On failure nothing is left behind. */
EK_ERR_CHECK ek_ovirt_minion_deploy(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    const char *role, const char *os_type, json_object *disk_ids,
                                    json_object **resources, json_object **conn, char **ip);
EK_ERR_CHECK ek_ovirt_minion_delete(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *resources);
/* The writer-side path of a disk: "serial:" + its first 20 characters. */
char *ek_ovirt_disk_serial_path(const char *disk_id);

/* ---- imageio.c --------------------------------------------------------------------- */

/* Whether data_transfer_mechanism is imageio (an error for a value that is
 * neither https nor imageio). */
EK_ERR_CHECK ek_ovirt_use_imageio(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, bool *yes);
/* One upload image transfer per volume, each transferring: *resources
 * {"image_transfers": [{"id", "disk_id"}]}, *conn the "imageio" target,
 * *vols_out volumes_info with each path "imageio:<transfer id>". On failure
 * the transfers started are finalized. */
EK_ERR_CHECK ek_ovirt_imageio_deploy(ek_ovirt_t *c, ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *vols, json_object **resources, json_object **conn,
                                     json_object **vols_out);
/* Finalizes every transfer of resources (also after one fails; the first
 * error is returned) and waits until each has ended with its disk ok. */
EK_ERR_CHECK ek_ovirt_imageio_finalize(ek_ovirt_t *c, ek_task_ctx_t *ctx, json_object *resources);

/* ---- tasks.c ----------------------------------------------------------------------- */

EK_ERR_CHECK ek_ovirt_info_get(const ek_task_input_t *in, const char *key, json_type type,
                               json_object **out);
json_object *ek_ovirt_volume_find(json_object *vols, const char *disk_id);
/* The zip at url (windows_virtio_zip_url) holds winvirtio.iso (and has the
 * SHA-256 sha256 when that is not empty). */
EK_ERR_CHECK ek_ovirt_virtio_zip_check(ek_task_ctx_t *ctx, const char *url, const char *sha256,
                                       const char *tmp_dir);
/* The same on a zip file already on disk (tests). */
EK_ERR_CHECK ek_ovirt_zip_has(const char *path, const char *member);

ek_err_t *ek_ovirt_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                    json_object *result);
ek_err_t *ek_ovirt_task_update_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result);
ek_err_t *ek_ovirt_task_deploy_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result);
ek_err_t *ek_ovirt_task_delete_disks(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                     json_object *result);
ek_err_t *ek_ovirt_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_ovirt_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result);
ek_err_t *ek_ovirt_task_create_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result);
ek_err_t *ek_ovirt_task_delete_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                         json_object *result);
ek_err_t *ek_ovirt_task_restore_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result);
ek_err_t *ek_ovirt_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                   json_object *result);
ek_err_t *ek_ovirt_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);
ek_err_t *ek_ovirt_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result);
ek_err_t *ek_ovirt_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result);
ek_err_t *ek_ovirt_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result);
ek_err_t *ek_ovirt_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result);
ek_err_t *ek_ovirt_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result);

#endif
