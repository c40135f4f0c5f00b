/* compiler.h - attributes and small macros every Ekman file may use.
 *
 * The cleanup attributes follow systemd's habit: a variable declared
 * `_cleanup_free_ char *s = NULL;` is freed when it goes out of scope, so
 * early returns on error paths cannot leak. */
#ifndef EK_COMPILER_H
#define EK_COMPILER_H

#include <stdlib.h>

#define EK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define EK_MUST_CHECK    __attribute__((warn_unused_result))
#define EK_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#define EK_NORETURN      __attribute__((noreturn))
#define EK_UNUSED        __attribute__((unused))
#define ek_likely(x)     __builtin_expect(!!(x), 1)
#define ek_unlikely(x)   __builtin_expect(!!(x), 0)
#define EK_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define EK_MAX(a, b)     ((a) > (b) ? (a) : (b))

static inline void ek_freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(ek_freep)

/* Defines `name##p(type **p)` that calls `func(*p)` when *p is not NULL. */
#define EK_DEFINE_CLEANUP(type, func)                                                              \
    static inline void func##p(type **p)                                                           \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

/* Hands ownership out of a _cleanup_ variable. */
#define EK_STEAL(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _tmp = (p);                                                                  \
        (p) = NULL;                                                                                \
        _tmp;                                                                                      \
    })

#endif
