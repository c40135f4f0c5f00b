/* target.h - an ekman-writer as named by target_resources_connection_info,
 * the document a destination's DEPLOY_TRANSFER_TARGET_RESOURCES returns and
 * the source's REPLICATE_DISKS connects to:
 *
 *   {"kind": "https", "host": H, "port": P, "ca_pem": CA, "cert_pem": C,
 *    "key_pem": K, "server_name": "ekman-writer"}       mutual TLS (pki.h)
 *   {"kind": "ssh", "host": H, "port": P, "username": U,
 *    "private_key": base64 of an OpenSSH ed25519/ecdsa private key,
 *    "known_hosts": "H ssh-ed25519 AAAA..." (required),
 *    "command": "ekman-writer --stdio --allow-path /dev"}
 *   {"kind": "exec", "allow_path": DIR}   this worker's own ekman-writer
 *        ($EKMAN_WRITER, else next to the worker binary, else on PATH), run
 *        with execv as `ekman-writer --stdio --log-level warning --allow-path
 *        DIR`; a "command" is refused: messages never choose what runs
 *
 *   {"kind": "imageio", "disks": [...], "ca_pem": CA}   ovirt-imageio's image
 *        transfers, one per disk (imageio.h): no ekman-writer at all
 *
 * Optional for every kind: "timeout_ms". Each disk's path for the writer is
 * in volumes_info[i].path ("serial:S", a device or a file). */
#ifndef EK_TRANSFER_TARGET_H
#define EK_TRANSFER_TARGET_H

#include <json-c/json.h>
#include "common/error.h"
#include "worker/transfer/connect.h"

typedef struct ek_writer_target ek_writer_target_t;

/* Checks the document (errors name the field) and prepares the connection:
 * the TLS context from the PEMs, or the SSH key and known_hosts in private
 * temporary files under tmp_dir (removed by ek_writer_target_free). */
EK_ERR_CHECK ek_writer_target_open(json_object *info, const char *tmp_dir,
                                   ek_writer_target_t **out);
/* What ek_xfer_params_t wants: .connect and .connect_target. */
ek_connect_fn ek_writer_target_connect_fn(const ek_writer_target_t *t);
void *ek_writer_target_connect_arg(ek_writer_target_t *t);
/* "https://10.0.0.5:5566", "ssh://root@10.0.0.5:22", "exec" (for messages). */
const char *ek_writer_target_describe(const ek_writer_target_t *t);
/* Replaces the command an ssh target runs on its next
 * connections: OS morphing runs its own commands on the worker VM over the
 * same login. Other kinds (exec included): an error. */
EK_ERR_CHECK ek_writer_target_set_command(ek_writer_target_t *t, const char *command);
/* "https", "ssh", "exec" or "imageio". */
const char *ek_writer_target_kind(const ek_writer_target_t *t);
void ek_writer_target_free(ek_writer_target_t *t);

/* The ekman-writer this worker runs for an "exec" target (caller frees):
 * $EKMAN_WRITER (absolute), else the one next to the running binary, else
 * the first on $PATH. Never a name that came in a message. */
EK_ERR_CHECK ek_writer_binary(char **out);

#endif
