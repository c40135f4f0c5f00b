/* tenant_image.h - a tenant's disk image, opened by qemu without letting it
 * reach any other file.
 *
 * A disk image is untrusted input: a qcow2 backing file, a qcow2 external
 * data file or a VMDK extent can name any file the worker can read (its
 * ekman.conf, /dev/sda), and qemu would serve that file's contents as the
 * guest's disk. So the format is never guessed by qemu: it is taken from
 * the image's header (and must match what the tenant declared, if
 * anything), every external reference is refused before qemu sees the
 * image, `qemu-img info` then runs with the format forced and under
 * resource limits (prlimit: address space, CPU time) and is checked again,
 * and qemu opens the image through a spec with "backing": null over a file
 * descriptor the caller opened, so no path is resolved again.
 *
 * Used by the libvirt (downloaded volumes), local and ova providers. */
#ifndef EK_PROVIDERS_COMMON_TENANT_IMAGE_H
#define EK_PROVIDERS_COMMON_TENANT_IMAGE_H

#include <stdint.h>
#include "common/error.h"

/* The qemu block spec ("json:{...}", malloc'ed) of the window [offset,
 * offset+size) of fd, read through /dev/fd/N (the fd must be inheritable
 * by the qemu process: not O_CLOEXEC), with "backing": null and the given
 * format driver (NULL: no driver key, for qemu-nbd --format=). A block
 * device is read with the host_device driver. */
char *ek_tenant_image_spec(int fd, uint64_t offset, uint64_t size, const char *format);
/* Finds the format of the image in [offset, offset+size) of fd from its
 * header ("vmdk", "qcow2", "vhdx", "vpc", "raw"), refuses every external
 * reference (VMDK descriptors, extents and parents, qcow2 backing and data
 * files, differencing VHDs), then asks `qemu-img info` with that format
 * forced (under limits) for the virtual size and checks it once more (raw
 * data refers to nothing: its size is the window's).
 * declared: the format the tenant said (a domain XML's driver type), or
 * NULL. "raw" is taken as raw whatever the header (the guest wrote it);
 * any other must match the header. `what` names the disk in errors;
 * *format is malloc'ed. */
EK_ERR_CHECK ek_tenant_image_probe(int fd, uint64_t offset, uint64_t size, const char *declared,
                                   const char *what, char **format, uint64_t *virtual_size);

#endif
