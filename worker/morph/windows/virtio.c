/* virtio.c - the virtio-win tree matcher (virtio.h). */
#include "worker/morph/windows/virtio.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "common/mem.h"
#include "worker/morph/windows/path.h"

/* virtio-win's directory per osinfo id (virtio-win-pkg-scripts' SUPPORTED_OSES). */
static const struct {
    const char *osinfo, *osdir;
} osdirs[] = {
    {"winxp", "xp"},       {"win2k3", "2k3"},       {"winvista", "2k8"}, {"win2k8", "2k8"},
    {"win2k8r2", "2k8r2"}, {"win7", "w7"},          {"win8", "w8"},      {"win8.1", "w8.1"},
    {"win2k12", "2k12"},   {"win2k12r2", "2k12r2"}, {"win10", "w10"},    {"win2k16", "2k16"},
    {"win2k19", "2k19"},   {"win11", "w11"},        {"win2k22", "2k22"}, {"win2k25", "2k25"},
};

const char *ek_win_virtio_osdir(const char *osinfo)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(osdirs); i++)
        if (strcmp(osdirs[i].osinfo, osinfo) == 0)
            return osdirs[i].osdir;
    return NULL;
}

struct walk {
    const char *osdir;
    bool amd64;
    ek_win_virtio_t *v;
    size_t alloc;
};

static bool arch_dir(const struct walk *w, const char *d)
{
    if (w->amd64)
        return strcasecmp(d, "amd64") == 0;
    return strcasecmp(d, "x86") == 0 || strcasecmp(d, "i386") == 0;
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Whether the file at rel (its directories in dirs[0..ndirs)) fits. */
static bool fits(const struct walk *w, char **dirs, size_t ndirs, const char *name)
{
    bool arch = false, os = false;
    for (size_t i = 0; i < ndirs; i++) {
        if (strcasecmp(dirs[i], "sriov") == 0)
            return false;
        arch = arch || arch_dir(w, dirs[i]);
        os = os || strcasecmp(dirs[i], w->osdir) == 0;
    }
    if (strncasecmp(name, "vioprot.", 8) == 0 || ends_with_ci(name, ".pdb"))
        return false;
    return arch && os;
}

static void add_file(struct walk *w, const char *src, const char *name)
{
    char *lower = ek_xstrdup(name);
    for (char *c = lower; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    if (ek_win_virtio_get(w->v, lower)) { /* the same driver in the other tree */
        free(lower);
        return;
    }
    if (w->v->n == w->alloc) {
        w->alloc = w->alloc ? 2 * w->alloc : 32;
        w->v->files = ek_xrealloc(w->v->files, w->alloc * sizeof(*w->v->files));
    }
    w->v->files[w->v->n++] = (ek_win_virtio_file_t){ek_xstrdup(src), lower};
}

#define MAX_DEPTH 8

static ek_err_t *walk_dir(struct walk *w, const char *path, char **dirs, size_t ndirs)
{
    struct dirent **ents = NULL;
    int n = scandir(path, &ents, NULL, alphasort);
    if (n < 0)
        return ek_err_errno(errno, "could not read the virtio-win directory \"%s\"", path);
    ek_err_t *err = NULL;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (!err && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            _cleanup_free_ char *sub = ek_xasprintf("%s/%s", path, name);
            struct stat st;
            if (lstat(sub, &st) < 0) {
                /* vanished or unreadable: not a driver file */
            } else if (S_ISDIR(st.st_mode) && ndirs < MAX_DEPTH) {
                dirs[ndirs] = (char *)name;
                err = walk_dir(w, sub, dirs, ndirs + 1);
            } else if (S_ISREG(st.st_mode) && fits(w, dirs, ndirs, name)) {
                add_file(w, sub, name);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return err;
}

/* The first of names found (case-insensitively) in one of dirs of the tree. */
static char *find_one(const char *tree, const char *const *dirs, const char *const *names)
{
    for (size_t d = 0; dirs[d]; d++)
        for (size_t i = 0; names[i]; i++) {
            _cleanup_free_ char *rel =
                ek_xasprintf("%s%s%s", dirs[d], *dirs[d] ? "/" : "", names[i]);
            char *p = NULL;
            ek_err_t *err = ek_win_path_find(tree, rel, &p);
            if (!err)
                return p;
            ek_err_free(err);
        }
    return NULL;
}

/* cloudbase-init's MSI: CloudbaseInitSetup_<version>_x64.msi (or x86). */
static char *find_cloudbase(const char *tree, bool amd64)
{
    static const char *const dirs[] = {"", "cloudbase-init"};
    for (size_t d = 0; d < EK_ARRAY_SIZE(dirs); d++) {
        char *dir = NULL;
        ek_err_t *err = *dirs[d] ? ek_win_path_find(tree, dirs[d], &dir) : NULL;
        if (err) {
            ek_err_free(err);
            continue;
        }
        if (!dir)
            dir = ek_xstrdup(tree);
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, NULL, alphasort);
        char *found = NULL;
        for (int i = 0; i < n; i++) {
            const char *name = ents[i]->d_name;
            if (!found && strncasecmp(name, "cloudbaseinitsetup", 18) == 0 &&
                ends_with_ci(name, amd64 ? "x64.msi" : "x86.msi"))
                found = ek_xasprintf("%s/%s", dir, name);
            free(ents[i]);
        }
        free(ents);
        free(dir);
        if (found)
            return found;
    }
    return NULL;
}

ek_err_t *ek_win_virtio_match(const char *dir, const ek_win_info_t *info, ek_win_virtio_t **out)
{
    const char *osdir = ek_win_virtio_osdir(info->osinfo);
    bool amd64 = strcmp(info->arch, "amd64") == 0;
    ek_win_virtio_t *v = ek_xcalloc(1, sizeof(*v));
    if (osdir && (amd64 || strcmp(info->arch, "x86") == 0)) {
        struct walk w = {.osdir = osdir, .amd64 = amd64, .v = v};
        char *dirs[MAX_DEPTH];
        ek_err_t *err = walk_dir(&w, dir, dirs, 0);
        if (err) {
            ek_win_virtio_free(v);
            return err;
        }
        static const char *const ga_dirs[] = {"guest-agent", "", NULL};
        static const char *const ga64[] = {"qemu-ga-x86_64.msi", "qemu-ga-x64.msi",
                                           "rhev-qga64.msi", NULL};
        static const char *const ga32[] = {"qemu-ga-i386.msi", "qemu-ga-x86.msi", "rhev-qga.msi",
                                           NULL};
        v->qemu_ga_msi = find_one(dir, ga_dirs, amd64 ? ga64 : ga32);
        v->cloudbase_msi = find_cloudbase(dir, amd64);
    }
    *out = v;
    return NULL;
}

void ek_win_virtio_free(ek_win_virtio_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->files[i].src);
        free(v->files[i].name);
    }
    free(v->files);
    free(v->qemu_ga_msi);
    free(v->cloudbase_msi);
    free(v);
}

const ek_win_virtio_file_t *ek_win_virtio_get(const ek_win_virtio_t *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->files[i].name, name) == 0)
            return &v->files[i];
    return NULL;
}
