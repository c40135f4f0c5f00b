/* tenantname.h - the one check for names a tenant chooses that Ekman turns
 * into file names, path components or command arguments (a disk's
 * <target dev>, a volume or snapshot suffix, ...).
 *
 * A tenant name is 1 to 64 bytes of [A-Za-z0-9._-], starting with a letter
 * or a digit, with no ".." anywhere: it can never be a path ("/"), a parent
 * (".."), a hidden file, an option ("-x"), nor carry a quote, space or
 * control character into XML, a shell or a log line. */
#ifndef EK_COMMON_TENANTNAME_H
#define EK_COMMON_TENANTNAME_H

#include <stdbool.h>
#include "common/error.h"

#define EK_TENANT_NAME_MAX 64

/* Whether name is a tenant name as described above. */
bool ek_tenant_name_ok(const char *name);
/* NULL when name is a tenant name, else an EK_E_INVALID error naming it:
 * `what` says what the name is ("disk target dev"). The error quotes at
 * most 64 printable bytes of name. */
EK_ERR_CHECK ek_tenant_name_check(const char *name, const char *what);

#endif
