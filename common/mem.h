/* mem.h - allocation that cannot fail silently.
 *
 * Ekman's daemons cannot do anything useful once malloc fails, so these abort
 * with a message instead of making every caller test for NULL (git's xmalloc). */
#ifndef EK_MEM_H
#define EK_MEM_H

#include <stdarg.h>
#include <stddef.h>
#include "common/compiler.h"

void *ek_xmalloc(size_t n);
void *ek_xcalloc(size_t nmemb, size_t size);
void *ek_xrealloc(void *p, size_t n);
char *ek_xstrdup(const char *s);
char *ek_xstrndup(const char *s, size_t n);
char *ek_xasprintf(const char *fmt, ...) EK_PRINTF(1, 2);
char *ek_xvasprintf(const char *fmt, va_list ap) EK_PRINTF(1, 0);
/* Overwrites then frees a secret (password, key material). NULL is fine. */
void ek_free_secret(char *s);

#endif
