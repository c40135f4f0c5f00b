/* imageio.h - ovirt-imageio as a target of the transfer engine
 * (data_transfer_mechanism = imageio: no disk-copy worker VM).
 *
 * The engine speaks ekman-writer's frames (proto/dataplane.h) on every
 * connection it opens. For an imageio target each connection is a socket
 * pair whose other end is a thread of this process that turns the frames
 * into imageio HTTP requests on one keep-alive HTTPS connection (libcurl):
 *
 *   OPEN          OPTIONS on the ticket URL (the host daemon's transfer_url;
 *                 proxy_url when that cannot be reached); the server must
 *                 offer "zero" and "flush"
 *   WRITE (data)  PUT ?flush=n with "Content-Range: bytes S-E/" and a star
 *   WRITE (zero)  PATCH {"op": "zero", "offset", "size", "flush": false}
 *   FLUSH         PATCH {"op": "flush"}
 *   HASH          GET with Range: bytes=S-E, hashed here block by block
 *   CLOSE         nothing to do
 *
 * So everything the engine does (parallel connections, zero ranges sent as
 * one request, incrementals sending only changed ranges, the state saved
 * after each confirmed flush and resumed from, re-opened connections,
 * verification) holds for imageio as for a writer. The ticket URLs are
 * credentials: no message or log line carries them (a disk is named by its
 * image transfer id), and the server's own messages have the ticket cut out.
 *
 * target_resources_connection_info of kind "imageio":
 *   {"kind": "imageio", "ca_pem": CA (optional: the system's CAs),
 *    "insecure": false, "timeout_ms": 30000,
 *    "disks": [{"path": "imageio:<transfer id>", "ticket_url": URL,
 *               "proxy_ticket_url": URL (optional), "size": bytes}, ...]}
 * volumes_info[i].path names the entry of "disks" the disk goes to. */
#ifndef EK_TRANSFER_IMAGEIO_H
#define EK_TRANSFER_IMAGEIO_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "worker/transfer/stream.h"

typedef struct ek_imageio_disk {
    char *path;      /* "imageio:<transfer id>" */
    char *url;       /* ticket URL on the host's daemon (transfer_url) */
    char *proxy_url; /* ticket URL on the engine's proxy (proxy_url), or NULL */
    uint64_t size;   /* bytes of the disk (the engine's provisioned_size) */
} ek_imageio_disk_t;

typedef struct ek_imageio_target {
    ek_imageio_disk_t *disks;
    size_t n;
    char *ca_pem;  /* CAs the servers' certificates must chain to (NULL: the system's) */
    bool insecure; /* no certificate check at all (an endpoint with allow_untrusted) */
    int timeout_ms;
} ek_imageio_target_t;

/* Reads the document above (what = its name in errors). */
EK_ERR_CHECK ek_imageio_target_parse(json_object *info, const char *what, ek_imageio_target_t *t);
void ek_imageio_target_clear(ek_imageio_target_t *t);
/* ek_connect_fn for an ek_imageio_target_t. */
EK_ERR_CHECK ek_imageio_connect(void *target, ek_stream_t **out);

#endif
