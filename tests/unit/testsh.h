/* testsh.h - runs a shell command in a cmocka test (building fixtures with
 * qemu-img, tar...); the test fails, naming the command, when it does. Include
 * after <cmocka.h>. */
#ifndef EK_TEST_SH_H
#define EK_TEST_SH_H

#include <stdarg.h>
#include <stdlib.h>
#include "common/mem.h"

static inline void sh(const char *fmt, ...) EK_PRINTF(1, 2);
static inline void sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = ek_xvasprintf(fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
    free(cmd);
}

#endif
