/* providers.c - the providers compiled into ekman-worker. */
#include <string.h>
#include "worker/provider.h"

#ifdef EK_WITH_PROVIDER_LOCAL
extern const ek_provider_t ek_provider_local;
#endif
#ifdef EK_WITH_PROVIDER_LIBVIRT
extern const ek_provider_t ek_provider_libvirt;
#endif
#ifdef EK_WITH_PROVIDER_OVIRT
extern const ek_provider_t ek_provider_ovirt;
#endif
#ifdef EK_WITH_PROVIDER_OVA
extern const ek_provider_t ek_provider_ova;
#endif

const ek_provider_t *const ek_worker_providers[] = {
#ifdef EK_WITH_PROVIDER_LOCAL
    &ek_provider_local,
#endif
#ifdef EK_WITH_PROVIDER_LIBVIRT
    &ek_provider_libvirt,
#endif
#ifdef EK_WITH_PROVIDER_OVIRT
    &ek_provider_ovirt,
#endif
#ifdef EK_WITH_PROVIDER_OVA
    &ek_provider_ova,
#endif
    NULL,
};

const ek_provider_t *ek_provider_get(const char *name)
{
    for (const ek_provider_t *const *p = ek_worker_providers; name && *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

ek_task_fn ek_provider_task(const ek_provider_t *p, const char *task_type)
{
    for (const ek_task_impl_t *t = p->tasks; t && t->task_type; t++)
        if (strcmp(t->task_type, task_type) == 0)
            return t->run;
    return NULL;
}
