/* error.c - construction and decoration of ek_err_t. */
#include "common/error.h"

#include <string.h>
#include "common/mem.h"

ek_err_t *ek_err_newv(ek_errcode_t code, const char *fmt, va_list ap)
{
    ek_err_t *err = ek_xcalloc(1, sizeof(*err));
    err->code = code;
    err->message = ek_xvasprintf(fmt, ap);
    return err;
}

ek_err_t *ek_err_new(ek_errcode_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ek_err_t *err = ek_err_newv(code, fmt, ap);
    va_end(ap);
    return err;
}

ek_err_t *ek_err_errno(int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ek_xvasprintf(fmt, ap);
    va_end(ap);
    ek_err_t *err = ek_err_new(EK_E_IO, "%s: %s", msg, strerror(errnum));
    err->sys_errno = errnum;
    free(msg);
    return err;
}

ek_err_t *ek_err_prefix(ek_err_t *err, const char *fmt, ...)
{
    if (!err)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = ek_xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = ek_xasprintf("%s: %s", prefix, err->message);
    free(prefix);
    free(err->message);
    err->message = msg;
    return err;
}

const char *ek_err_code_name(ek_errcode_t code)
{
    switch (code) {
    case EK_E_INTERNAL:
        return "internal";
    case EK_E_INVALID:
        return "invalid";
    case EK_E_NOTFOUND:
        return "not_found";
    case EK_E_CONFLICT:
        return "conflict";
    case EK_E_AUTH:
        return "unauthorized";
    case EK_E_FORBIDDEN:
        return "forbidden";
    case EK_E_IO:
        return "io";
    case EK_E_TIMEOUT:
        return "timeout";
    case EK_E_UNAVAILABLE:
        return "unavailable";
    case EK_E_CANCELED:
        return "canceled";
    case EK_E_PROTOCOL:
        return "protocol";
    case EK_E_RETRY:
        return "retry";
    }
    return "unknown";
}

void ek_err_free(ek_err_t *err)
{
    if (!err)
        return;
    free(err->message);
    free(err);
}
