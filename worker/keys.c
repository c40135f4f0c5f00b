/* keys.c - where this worker's key pair lives (see keys.h). */
#include "worker/keys.h"

#include "common/mem.h"

char *ek_worker_key_path(const ek_config_t *cfg)
{
    const char *file = ek_config_get_string(cfg, "worker", "key_file");
    if (*file)
        return ek_xstrdup(file);
    return ek_xasprintf("%s/worker.key", ek_config_get_string(cfg, "DEFAULT", "state_dir"));
}
