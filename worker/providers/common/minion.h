/* minion.h - the boot material of a temporary worker VM ("minion": the
 * disk-copy worker of a transfer, the OS-morphing worker of a deployment)
 * and how the transfer engine reaches the ekman-writer it runs. Shared by
 * every destination provider that boots such VMs (libvirt, ovirt).
 *
 * For each minion the worker makes, in a private 0700 temporary directory:
 *   - a fresh ed25519 key pair the worker logs in with (user root);
 *   - a fresh ed25519 *host* key for the minion's sshd, so that its
 *     known_hosts line is known before it boots (no trust on first use);
 *   - the per-transfer PKI of worker/transfer/pki.h (CA, writer server
 *     certificate, worker client certificate).
 *
 * The minion learns its side through cloud-init data, in two equivalent
 * forms (docs/worker-image.md):
 *
 *   user-data      "#cloud-config" followed by one JSON object (JSON is
 *                  YAML, so any cloud-init reads it): ssh_authorized_keys,
 *                  ssh_keys (the host key), write_files (base64, under
 *                  /etc/ekman-writer/: ca.pem, server.pem, server.key) and
 *                  runcmd (one argv array starting ekman-writer --listen);
 *                  this is what a standard cloud image with ekman-writer
 *                  installed acts on, and what the oVirt simulator reads.
 *   meta-data      instance-id and local-hostname.
 *   ekman/...      the same material as plain files for Ekman's own small
 *                  worker image (deploy/worker-image), which has no
 *                  cloud-init: authorized_keys, ssh_host_ed25519_key,
 *                  writer-ca.pem, writer-cert.pem, writer-key.pem,
 *                  writer-port (text: "5566").
 *
 * On a NoCloud config drive (ISO 9660, volume label "cidata", Joliet + Rock
 * Ridge) all of these are files at the root (ekman/ a directory).
 *
 * The writer listens on EK_MINION_WRITER_PORT and is started with
 *   ekman-writer --listen 0.0.0.0:5566 --cert /etc/ekman-writer/server.pem
 *     --key /etc/ekman-writer/server.key --ca /etc/ekman-writer/ca.pem
 *     --allow-path /dev
 * and, over SSH, the engine runs "ekman-writer --stdio --allow-path /dev".
 *
 * Disks are named to the writer by serial: a volume attached with serial S
 * (virtio <serial>, at most 20 characters) is opened as "serial:S" and the
 * writer resolves it (/dev/disk/by-id/virtio-S, else /sys/block/X/serial). */
#ifndef EK_PROVIDERS_MINION_H
#define EK_PROVIDERS_MINION_H

#include <json-c/json.h>
#include "common/error.h"

#define EK_MINION_WRITER_PORT 5566
#define EK_MINION_SERIAL_MAX  20

typedef struct ek_minion_boot {
    char *dir;             /* the private directory; removed by ek_minion_boot_free */
    char *name;            /* minion name (hostname) */
    char *instance_id;     /* "iid-<name>-<uuid>" */
    char *client_key_path; /* worker's ed25519 private key file (OpenSSH format) */
    char *client_pub;      /* "ssh-ed25519 AAAA... ekman-worker" */
    char *host_key_pem;    /* minion's ed25519 host private key (OpenSSH format) */
    char *host_pub;        /* "ssh-ed25519 AAAA..." */
    char *ca_pem, *server_cert_pem, *server_key_pem, *client_cert_pem, *client_key_pem;
} ek_minion_boot_t;

/* Makes the keys and certificates of a minion called name. extra_names are
 * added to the writer certificate's subjectAltName (IPs known in advance);
 * NULL-terminated, may be NULL. tmp_dir is where the private directory goes
 * (worker.tmp_dir). */
EK_ERR_CHECK ek_minion_boot_new(const char *name, const char *tmp_dir,
                                const char *const *extra_names, ek_minion_boot_t **out);
void ek_minion_boot_free(ek_minion_boot_t *b);

/* The per-boot script (cloud-init's scripts_per_boot) that starts the writer. */
#define EK_MINION_PER_BOOT_SCRIPT "/var/lib/cloud/scripts/per-boot/ekman-writer.sh"

/* The keys Ekman's worker VMs need in cloud-init user-data, as YAML block
 * mapping lines ("key: <flow value>\n"): ssh_authorized_keys, ssh_keys and
 * write_files (the writer's certificates and EK_MINION_PER_BOOT_SCRIPT).
 * None of them is a key oVirt's engine writes itself, so this text can follow
 * the engine's own YAML (it appends initialization.custom_script to it under
 * one "#cloud-config" header). Holds key material; malloc'ed. */
char *ek_minion_user_data_keys(const ek_minion_boot_t *b);
/* A whole cloud-init user-data document ("#cloud-config", root login by key
 * only, then ek_minion_user_data_keys) and meta-data. malloc'ed. */
char *ek_minion_user_data(const ek_minion_boot_t *b);
char *ek_minion_meta_data(const ek_minion_boot_t *b);

/* Writes the NoCloud config drive (ISO 9660, label "cidata") to iso_path,
 * with genisoimage or xorriso, whichever is installed. */
EK_ERR_CHECK ek_minion_nocloud_iso(const ek_minion_boot_t *b, const char *iso_path);

/* target_resources_connection_info of the minion at host, for kind "https"
 * (port EK_MINION_WRITER_PORT unless port > 0) or "ssh" (port 22 unless
 * port > 0). New reference. Holds key material: it travels in task info,
 * never in logs or API output (the conductor masks *_pem/private_key). */
json_object *ek_minion_connection_info(const ek_minion_boot_t *b, const char *kind,
                                       const char *host, int port);

#endif
