/* tenant_root.h - paths a tenant names on the worker (an endpoint's
 * directory, a disk image in its domain XML), opened only beneath the
 * directories the operator allows.
 *
 * The operator lists them per provider in the workers' ekman.conf
 * ([<section>] allowed_roots = /srv/a, /srv/b); without any, the provider
 * refuses every path. A path must be a root or lie beneath one (compared
 * lexically), and from the root on it is resolved with openat2(2) and
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so neither a symbolic link nor
 * ".." leads out of it; where the kernel lacks openat2 (or a seccomp filter
 * hides it), each component is opened with O_NOFOLLOW instead (links are
 * then refused altogether). Used by the ova and local providers. */
#ifndef EK_PROVIDERS_COMMON_TENANT_ROOT_H
#define EK_PROVIDERS_COMMON_TENANT_ROOT_H

#include "common/config.h"
#include "common/error.h"

/* Opens `path` (absolute) with open(2) `flags` beneath one of the
 * [section] allowed_roots of cfg. No roots: an EK_E_FORBIDDEN error telling
 * the operator what to set; a path under no root or leading out of its
 * root: EK_E_FORBIDDEN. `kind` says what the roots are for in errors ("OVA
 * sources"), `endpoint` names the endpoint. *fd is the caller's; it is
 * close-on-exec only when flags say O_CLOEXEC. */
EK_ERR_CHECK ek_tenant_root_open(const ek_config_t *cfg, const char *section, const char *kind,
                                 const char *endpoint, const char *path, int flags, int *fd);
/* Opens the relative path `rel` beneath dirfd with `flags` (no absolute
 * path, no ".." component, no link leading out of dirfd). */
EK_ERR_CHECK ek_tenant_open_beneath(int dirfd, const char *rel, int flags, int *fd);

#endif
