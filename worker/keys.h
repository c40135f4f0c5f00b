/* keys.h - this worker's key pair (common/box.h): where it lives. The
 * conductor seals each task's secrets (endpoint connection info, secrets in
 * task info) for the key the worker announces in its heartbeats; the task
 * process opens them with the key ring in this file. */
#ifndef EK_WORKER_KEYS_H
#define EK_WORKER_KEYS_H

#include "common/config.h"

/* [worker] key_file, else <[DEFAULT] state_dir>/worker.key (caller frees). */
char *ek_worker_key_path(const ek_config_t *cfg);

#endif
