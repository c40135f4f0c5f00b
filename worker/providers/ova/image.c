/* image.c - the disks of an OVA as qemu sees them, and what we refuse.
 *
 * A disk is a window (offset, size) of a file: a tar member or a file of an
 * unpacked OVF. qemu reads it through a raw node with offset and size over
 * the file, which we pass as /dev/fd/N (the fd was opened beneath the
 * allowed root, and the helper inherits it), so no path is resolved again.
 *
 * The checks (format from the header, no backing file, data file, extent
 * or parent; `qemu-img info` with the format forced, under limits) are the
 * ones every provider applies to a tenant's image:
 * worker/providers/common/tenant_image.h. An OVA declares no format of its
 * own, so the header decides. */
#include "worker/providers/ova/ova.h"

#include "worker/providers/common/tenant_image.h"

char *ek_ova_image_spec(int fd, uint64_t offset, uint64_t size, const char *format)
{
    return ek_tenant_image_spec(fd, offset, size, format);
}

ek_err_t *ek_ova_image_probe(int fd, uint64_t offset, uint64_t size, const char *what,
                             char **format, uint64_t *virtual_size)
{
    return ek_tenant_image_probe(fd, offset, size, NULL, what, format, virtual_size);
}
