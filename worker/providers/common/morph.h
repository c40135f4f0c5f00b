/* morph.h - OS_MORPHING for every destination that boots an OS-morphing
 * worker VM (libvirt, ovirt): the worker logs in to that VM over SSH (the
 * key and host key of osmorphing_connection_info, minion.h), copies the
 * operator's packages to it, runs `ekman-morph` there (worker/morph/: it
 * finds the guest's OS on the attached disks, mounts it and adapts it) and
 * turns each line it prints into a progress step or an event of the task.
 *
 * What ekman-morph reads on its standard input is built here from
 * osmorphing_info (the disks as "serial:S", os_type, nics, set_dhcp,
 * retain_user_credentials), the deployment's user_scripts (the script for
 * the OS type, or the instance's own) and the operator's configuration;
 * nothing a message carries is run as a command. The result of the task is
 * the "osmorphing_result" ekman-morph reports: the OS it found and every
 * change it made. */
#ifndef EK_PROVIDERS_MORPH_H
#define EK_PROVIDERS_MORPH_H

#include <json-c/json.h>
#include <stdbool.h>
#include "common/error.h"
#include "worker/provider.h"

typedef struct ek_morph_params {
    const char *section;     /* config section: "libvirt_migration_provider", ... */
    json_object *info;       /* osmorphing_info (borrowed) */
    json_object *connection; /* osmorphing_connection_info (borrowed) */
    json_object *disk_paths; /* array of "serial:S" / device paths for ekman-morph */
} ek_morph_params_t;

/* Runs the OS morphing of in->instance. OS_MORPHING declares no result
 * keys: what ekman-morph found and changed goes into the task's events, and
 * into *report ({"os": {...}, "changes": [...]}, new reference) when report
 * is not NULL. */
EK_ERR_CHECK ek_morph_remote_run(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                 const ek_morph_params_t *p, json_object **report);

/* The script of user_scripts for this instance and OS type: user_scripts is
 * {"global": {"linux": S, "windows": S}, "instances": {NAME: S}} (Coriolis'
 * shape); the instance's own wins. Borrowed, or NULL. */
const char *ek_morph_user_script(json_object *user_scripts, const char *instance,
                                 const char *os_type);

/* Whether name may be a file name on the worker VM (letters, digits, ._+-~,
 * not starting with a dot, at most 200 bytes). */
bool ek_morph_file_name_ok(const char *name);

#endif
