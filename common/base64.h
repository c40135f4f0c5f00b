/* base64.h - standard and URL-safe base64 (SSH keys in connection info, env=). */
#ifndef EK_BASE64_H
#define EK_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

char *ek_base64_encode(const void *data, size_t len);
/* Decodes standard or URL-safe base64, padded or not, ignoring white space.
 * On success *out is allocated (NUL-terminated for convenience). */
EK_ERR_CHECK ek_base64_decode(const char *text, unsigned char **out, size_t *out_len);

#endif
