/* tenantname.c - the shared check of tenant-chosen names (tenantname.h). */
#include "common/tenantname.h"

#include <string.h>

static bool name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '.' || c == '_' || c == '-');
}

bool ek_tenant_name_ok(const char *name)
{
    if (!name || !*name)
        return false;
    size_t n = strlen(name);
    if (n > EK_TENANT_NAME_MAX || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i], i == 0))
            return false;
    return true;
}

ek_err_t *ek_tenant_name_check(const char *name, const char *what)
{
    if (ek_tenant_name_ok(name))
        return NULL;
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the %s is empty", what);
    /* Quote only what is safe to print: the name may hold anything. */
    char shown[EK_TENANT_NAME_MAX + 1];
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && k < EK_TENANT_NAME_MAX; p++)
        shown[k++] = *p >= 0x20 && *p < 0x7f && *p != '\'' ? (char)*p : '?';
    shown[k] = 0;
    return ek_err_new(EK_E_INVALID,
                      "the %s '%s%s' cannot be used: use 1 to %d letters, digits, '.', '_' or "
                      "'-', starting with a letter or digit, without \"..\"",
                      what, shown, strlen(name) > EK_TENANT_NAME_MAX ? "..." : "",
                      EK_TENANT_NAME_MAX);
}
