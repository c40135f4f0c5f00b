/* detect.h - which Linux distribution a mounted guest root holds, its
 * installed kernels and (dpkg guests) its installed packages. Pure functions
 * of the tree below `root`: the unit tests run them on fixture trees.
 *
 * Order of the probes (shared/research/osmorphing.md 1.2): /etc/os-release
 * (ID, VERSION_ID, ID_LIKE; ID=ol reads /etc/oracle-release), then
 * oracle-/redhat-release, SuSE-release, lsb-release, debian_version.
 *
 * Ownership: the caller frees *out with ek_morph_os_free(). */
#ifndef EK_MORPH_DETECT_H
#define EK_MORPH_DETECT_H

#include <json-c/json.h>
#include "common/error.h"
#include "worker/morph/util.h"

typedef enum ek_morph_family {
    EK_FAMILY_DEBIAN = 1, /* Debian, Ubuntu */
    EK_FAMILY_RHEL,       /* RHEL, CentOS, Alma, Rocky, Oracle Linux, Fedora */
    EK_FAMILY_SUSE,       /* SLES, openSUSE */
} ek_morph_family_t;

typedef struct ek_morph_os {
    ek_morph_family_t family;
    char *id;      /* os-release style: "debian", "ubuntu", "rhel", "rocky", "ol", "sles"... */
    char *version; /* "12", "22.04", "9.3" */
    int major;
    char *name;        /* PRETTY_NAME or the release file's first line */
    ek_strv_t kernels; /* versions with /lib/modules/<v> and a vmlinuz, oldest first */
} ek_morph_os_t;

const char *ek_morph_family_name(ek_morph_family_t f); /* "debian", "rhel", "suse" */

/* Detects the distribution below root. Unknown family or no release file:
 * EK_E_INVALID quoting what the release files say. */
EK_ERR_CHECK ek_morph_os_detect(const char *root, ek_morph_os_t **out);
void ek_morph_os_free(ek_morph_os_t *os);
EK_DEFINE_CLEANUP(ek_morph_os_t, ek_morph_os_free)

/* {"family":..,"id":..,"version":..,"name":..,"kernels":[..]} (new reference) */
json_object *ek_morph_os_json(const ek_morph_os_t *os);

/* Names of the packages /var/lib/dpkg/status shows installed ("install ok
 * installed", also "half-configured" etc: anything not "not-installed" or
 * "config-files"). Missing file: empty list. */
EK_ERR_CHECK ek_morph_dpkg_installed(const char *root, ek_strv_t *out);

#endif
