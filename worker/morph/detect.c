/* detect.c - distribution, kernels and dpkg database of a guest (detect.h). */
#include "worker/morph/detect.h"

#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

const char *ek_morph_family_name(ek_morph_family_t f)
{
    switch (f) {
    case EK_FAMILY_DEBIAN:
        return "debian";
    case EK_FAMILY_RHEL:
        return "rhel";
    case EK_FAMILY_SUSE:
        return "suse";
    }
    return "unknown";
}

void ek_morph_os_free(ek_morph_os_t *os)
{
    if (!os)
        return;
    free(os->id);
    free(os->version);
    free(os->name);
    ek_strv_clear(&os->kernels);
    free(os);
}

static const struct {
    const char *id;
    ek_morph_family_t family;
} known_ids[] = {
    {"debian", EK_FAMILY_DEBIAN},
    {"ubuntu", EK_FAMILY_DEBIAN},
    {"linuxmint", EK_FAMILY_DEBIAN},
    {"kali", EK_FAMILY_DEBIAN},
    {"rhel", EK_FAMILY_RHEL},
    {"centos", EK_FAMILY_RHEL},
    {"almalinux", EK_FAMILY_RHEL},
    {"rocky", EK_FAMILY_RHEL},
    {"ol", EK_FAMILY_RHEL},
    {"fedora", EK_FAMILY_RHEL},
    {"circle", EK_FAMILY_RHEL},
    {"scientific", EK_FAMILY_RHEL},
    {"sles", EK_FAMILY_SUSE},
    {"sled", EK_FAMILY_SUSE},
    {"opensuse", EK_FAMILY_SUSE},
    {"opensuse-leap", EK_FAMILY_SUSE},
    {"opensuse-tumbleweed", EK_FAMILY_SUSE},
    {"suse", EK_FAMILY_SUSE},
};

static ek_morph_family_t family_of(const char *id)
{
    for (size_t i = 0; id && i < EK_ARRAY_SIZE(known_ids); i++)
        if (strcmp(known_ids[i].id, id) == 0)
            return known_ids[i].family;
    return 0;
}

/* ID_LIKE is a space-separated list ("rhel centos fedora"). */
static ek_morph_family_t family_of_like(const char *like)
{
    if (!like)
        return 0;
    _cleanup_free_ char *copy = ek_xstrdup(like);
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        ek_morph_family_t f = family_of(w);
        if (f)
            return f;
    }
    return 0;
}

static char *first_line(const char *text)
{
    const char *end = strchr(text, '\n');
    return ek_xstrndup(text, end ? (size_t)(end - text) : strlen(text));
}

/* "... release 8.9 (Green Obsidian)" -> "8.9" */
static char *release_version(const char *line)
{
    const char *p = strstr(line, "release ");
    if (!p)
        return NULL;
    p += 8;
    size_t n = 0;
    while (isdigit((unsigned char)p[n]) || p[n] == '.')
        n++;
    return n ? ek_xstrndup(p, n) : NULL;
}

static void set_major(ek_morph_os_t *os)
{
    os->major = os->version ? atoi(os->version) : 0;
}

/* the id of a redhat-release style first line */
static const char *rh_id(const char *line)
{
    if (strncmp(line, "Red Hat", 7) == 0)
        return "rhel";
    if (strncmp(line, "CentOS", 6) == 0)
        return "centos";
    if (strncmp(line, "Rocky", 5) == 0)
        return "rocky";
    if (strncmp(line, "AlmaLinux", 9) == 0)
        return "almalinux";
    if (strncmp(line, "Oracle", 6) == 0)
        return "ol";
    if (strncmp(line, "Fedora", 6) == 0)
        return "fedora";
    if (strncmp(line, "Scientific", 10) == 0)
        return "scientific";
    return NULL;
}

static ek_err_t *from_release_file(const char *root, const char *rel, ek_morph_os_t *os,
                                   ek_strbuf_t *said)
{
    _cleanup_free_ char *text = NULL;
    ek_err_t *err = ek_morph_read(root, rel, &text);
    if (err || !text)
        return err;
    _cleanup_free_ char *line = first_line(text);
    ek_strbuf_addf(said, "%s%s says \"%s\"", said->len ? ", " : "", rel, line);
    const char *id = rh_id(line);
    if (!id)
        return NULL;
    os->family = EK_FAMILY_RHEL;
    free(os->id);
    os->id = ek_xstrdup(id);
    free(os->version);
    os->version = release_version(line);
    free(os->name);
    os->name = EK_STEAL(line);
    return NULL;
}

static ek_err_t *from_suse_release(const char *root, ek_morph_os_t *os, ek_strbuf_t *said)
{
    _cleanup_free_ char *text = NULL;
    ek_err_t *err = ek_morph_read(root, "/etc/SuSE-release", &text);
    if (err || !text)
        return err;
    _cleanup_free_ char *line = first_line(text);
    ek_strbuf_addf(said, "%s/etc/SuSE-release says \"%s\"", said->len ? ", " : "", line);
    _cleanup_free_ char *ver = ek_morph_shvar(text, "VERSION");
    _cleanup_free_ char *pl = ek_morph_shvar(text, "PATCHLEVEL");
    /* "VERSION = 11": shvar wants KEY=V; accept the spaced form too */
    if (!ver) {
        const char *p = strstr(text, "VERSION");
        if (p && (p = strchr(p, '=')))
            ver =
                ek_xstrndup(p + 1 + strspn(p + 1, " "), strcspn(p + 1 + strspn(p + 1, " "), "\n "));
    }
    if (!pl) {
        const char *p = strstr(text, "PATCHLEVEL");
        if (p && (p = strchr(p, '=')))
            pl =
                ek_xstrndup(p + 1 + strspn(p + 1, " "), strcspn(p + 1 + strspn(p + 1, " "), "\n "));
    }
    os->family = EK_FAMILY_SUSE;
    free(os->id);
    os->id = ek_xstrdup(strncasecmp(line, "openSUSE", 8) == 0 ? "opensuse" : "sles");
    free(os->version);
    os->version =
        ver ? (pl && strcmp(pl, "0") ? ek_xasprintf("%s.%s", ver, pl) : ek_xstrdup(ver)) : NULL;
    free(os->name);
    os->name = EK_STEAL(line);
    return NULL;
}

static ek_err_t *detect_release(const char *root, ek_morph_os_t *os)
{
    _cleanup_strbuf_ ek_strbuf_t said = EK_STRBUF_INIT;
    _cleanup_free_ char *osr = NULL;
    ek_err_t *err = ek_morph_read(root, "/etc/os-release", &osr);
    if (!err && !osr)
        err = ek_morph_read(root, "/usr/lib/os-release", &osr);
    if (err)
        return err;
    if (osr) {
        _cleanup_free_ char *id = ek_morph_shvar(osr, "ID");
        _cleanup_free_ char *like = ek_morph_shvar(osr, "ID_LIKE");
        ek_strbuf_addf(&said, "/etc/os-release says ID=%s%s%s", id ? id : "(none)",
                       like ? " ID_LIKE=" : "", like ? like : "");
        if (id && strcmp(id, "ol") == 0 && ek_morph_exists(root, "/etc/oracle-release")) {
            /* libguestfs has no "ol": oracle-release decides */
            if ((err = from_release_file(root, "/etc/oracle-release", os, &said)))
                return err;
            if (os->family)
                return NULL;
        }
        ek_morph_family_t f = family_of(id);
        if (!f)
            f = family_of_like(like);
        if (f) {
            os->family = f;
            os->id = ek_xstrdup(id ? id : "linux");
            os->version = ek_morph_shvar(osr, "VERSION_ID");
            os->name = ek_morph_shvar(osr, "PRETTY_NAME");
            if (!os->name)
                os->name = ek_morph_shvar(osr, "NAME");
            return NULL;
        }
    }
    static const char *const rh_files[] = {"/etc/oracle-release", "/etc/centos-release",
                                           "/etc/rocky-release", "/etc/redhat-release"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(rh_files); i++) {
        if ((err = from_release_file(root, rh_files[i], os, &said)))
            return err;
        if (os->family)
            return NULL;
    }
    if ((err = from_suse_release(root, os, &said)))
        return err;
    if (os->family)
        return NULL;
    _cleanup_free_ char *lsb = NULL;
    if ((err = ek_morph_read(root, "/etc/lsb-release", &lsb)))
        return err;
    if (lsb) {
        _cleanup_free_ char *id = ek_morph_shvar(lsb, "DISTRIB_ID");
        ek_strbuf_addf(&said, "%s/etc/lsb-release says DISTRIB_ID=%s", said.len ? ", " : "",
                       id ? id : "(none)");
        if (id) {
            for (char *p = id; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            ek_morph_family_t f = family_of(id);
            if (f) {
                os->family = f;
                os->id = EK_STEAL(id);
                os->version = ek_morph_shvar(lsb, "DISTRIB_RELEASE");
                os->name = ek_morph_shvar(lsb, "DISTRIB_DESCRIPTION");
                return NULL;
            }
        }
    }
    _cleanup_free_ char *dv = NULL;
    if ((err = ek_morph_read(root, "/etc/debian_version", &dv)))
        return err;
    if (dv) {
        os->family = EK_FAMILY_DEBIAN;
        os->id = ek_xstrdup("debian");
        _cleanup_free_ char *line = first_line(dv);
        os->version = isdigit((unsigned char)line[0]) ? ek_xstrdup(line) : NULL;
        os->name = ek_xasprintf("Debian GNU/Linux %s", line);
        return NULL;
    }
    if (!said.len)
        return ek_err_new(EK_E_INVALID, "the guest's Linux distribution is unknown: it has none of "
                                        "/etc/os-release, /etc/redhat-release, /etc/SuSE-release, "
                                        "/etc/debian_version, /etc/lsb-release");
    return ek_err_new(EK_E_INVALID,
                      "the guest's Linux distribution is not one OS morphing supports (%s); "
                      "supported: Debian, Ubuntu, RHEL, CentOS, AlmaLinux, Rocky Linux, "
                      "Oracle Linux, Fedora, SLES, openSUSE",
                      said.buf);
}

static ek_err_t *find_kernels(const char *root, ek_strv_t *out)
{
    _cleanup_free_ char *dir = ek_morph_path(root, "/lib/modules");
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *vmlinuz = ek_xasprintf("/boot/vmlinuz-%s", de->d_name);
        _cleanup_free_ char *inmod = ek_xasprintf("/lib/modules/%s/vmlinuz", de->d_name);
        _cleanup_free_ char *kernel = ek_xasprintf("/lib/modules/%s/kernel", de->d_name);
        /* a kernel: its image in /boot (or, Fedora/RHEL 9 style, in its
         * modules dir) and its modules */
        if ((ek_morph_exists(root, vmlinuz) || ek_morph_exists(root, inmod)) &&
            ek_morph_is_dir(root, kernel))
            ek_strv_add(out, de->d_name);
    }
    closedir(d);
    ek_strv_sort_versions(out);
    return NULL;
}

ek_err_t *ek_morph_os_detect(const char *root, ek_morph_os_t **out)
{
    _cleanup_(ek_morph_os_freep) ek_morph_os_t *os = ek_xcalloc(1, sizeof(*os));
    ek_err_t *err = detect_release(root, os);
    if (err)
        return err;
    if (!os->version)
        os->version = ek_xstrdup("");
    if (!os->name)
        os->name = ek_xasprintf("%s %s", os->id, os->version);
    set_major(os);
    if ((err = find_kernels(root, &os->kernels)))
        return err;
    *out = EK_STEAL(os);
    return NULL;
}

json_object *ek_morph_os_json(const ek_morph_os_t *os)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "family", json_object_new_string(ek_morph_family_name(os->family)));
    json_object_object_add(o, "id", json_object_new_string(os->id));
    json_object_object_add(o, "version", json_object_new_string(os->version));
    json_object_object_add(o, "name", json_object_new_string(os->name));
    json_object *k = json_object_new_array();
    for (size_t i = 0; i < os->kernels.n; i++)
        json_object_array_add(k, json_object_new_string(os->kernels.v[i]));
    json_object_object_add(o, "kernels", k);
    return o;
}

ek_err_t *ek_morph_dpkg_installed(const char *root, ek_strv_t *out)
{
    _cleanup_free_ char *text = NULL;
    ek_err_t *err = ek_morph_read(root, "/var/lib/dpkg/status", &text);
    if (err || !text)
        return err;
    _cleanup_free_ char *pkg = NULL;
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strncmp(line, "Package: ", 9) == 0) {
            free(pkg);
            pkg = ek_xstrdup(line + 9);
        } else if (strncmp(line, "Status: ", 8) == 0 && pkg) {
            if (!strstr(line, " not-installed") && !strstr(line, " config-files") &&
                !ek_strv_has(out, pkg))
                ek_strv_add(out, pkg);
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}
