/* error.h - the error value every fallible Ekman function returns.
 *
 * A function that can fail returns `ek_err_t *`: NULL on success, otherwise an
 * error the caller owns and must handle (log it, wrap it with more context
 * using ek_err_prefix(), or hand it up). The message is written for the person
 * who reads it: what was wrong and, where possible, what to do about it, e.g.
 *   "endpoint 'olvm1': connection_info.url is missing".
 * The code classifies the error for callers (the API maps it to an HTTP status). */
#ifndef EK_ERROR_H
#define EK_ERROR_H

#include <stdarg.h>
#include "common/compiler.h"

typedef enum ek_errcode {
    EK_E_INTERNAL = 1, /* a bug or an unexpected failure of a library */
    EK_E_INVALID,      /* bad user input or configuration */
    EK_E_NOTFOUND,     /* the named object does not exist */
    EK_E_CONFLICT,     /* the object is in a state that forbids the operation */
    EK_E_AUTH,         /* authentication failed or is missing */
    EK_E_FORBIDDEN,    /* authenticated, but not allowed */
    EK_E_IO,           /* a file, device or socket operation failed */
    EK_E_TIMEOUT,      /* gave up waiting */
    EK_E_UNAVAILABLE,  /* a service (database, broker, host) cannot be reached */
    EK_E_CANCELED,     /* the operation was cancelled */
    EK_E_PROTOCOL,     /* a peer sent something malformed */
    EK_E_RETRY,        /* transient (deadlock, serialization): run it again */
} ek_errcode_t;

typedef struct ek_err {
    ek_errcode_t code;
    int sys_errno; /* errno when the error came from a system call, else 0 */
    char *message;
} ek_err_t;

#define EK_ERR_CHECK EK_MUST_CHECK ek_err_t *

ek_err_t *ek_err_new(ek_errcode_t code, const char *fmt, ...) EK_PRINTF(2, 3);
ek_err_t *ek_err_newv(ek_errcode_t code, const char *fmt, va_list ap) EK_PRINTF(2, 0);
/* Like ek_err_new with EK_E_IO, appending ": strerror(errnum)". */
ek_err_t *ek_err_errno(int errnum, const char *fmt, ...) EK_PRINTF(2, 3);
/* Prepends "prefix: " to the message; returns err for chaining. NULL-safe. */
ek_err_t *ek_err_prefix(ek_err_t *err, const char *fmt, ...) EK_PRINTF(2, 3);
const char *ek_err_code_name(ek_errcode_t code);
void ek_err_free(ek_err_t *err);
EK_DEFINE_CLEANUP(ek_err_t, ek_err_free)
#define _cleanup_err_ _cleanup_(ek_err_freep)

#endif
