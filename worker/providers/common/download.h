/* download.h - files a worker fetches from URLs that an endpoint's
 * environment may name (windows_virtio_iso_url, windows_virtio_zip_url), so
 * URLs a tenant can choose: only the schemes the operator allows ([worker]
 * download_schemes: https unless told otherwise; never file:// or http://
 * by default, so no worker file and no plain-HTTP service is reachable
 * through them), redirects to https only, at most [worker] download_max_mb,
 * and when a SHA-256 is given the file must have it. */
#ifndef EK_PROVIDERS_DOWNLOAD_H
#define EK_PROVIDERS_DOWNLOAD_H

#include <stdint.h>
#include "common/error.h"
#include "worker/provider.h"

/* Downloads url into path (created or truncated, 0600). option names the
 * setting the URL came from, for messages; sha256 is 64 hex digits or NULL
 * or "" (no check). *size gets the bytes written (may be NULL). On error
 * path is removed. */
EK_ERR_CHECK ek_download(ek_task_ctx_t *ctx, const char *option, const char *url,
                         const char *sha256, const char *path, uint64_t *size);

#endif
