/* util.c - string lists and guest-root file helpers (util.h). */
#include "worker/morph/util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"

void ek_strv_take(ek_strv_t *l, char *s)
{
    if (l->n + 1 >= l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 8;
        l->v = ek_xrealloc(l->v, l->alloc * sizeof(char *));
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL;
}

void ek_strv_add(ek_strv_t *l, const char *s)
{
    ek_strv_take(l, ek_xstrdup(s));
}

bool ek_strv_has(const ek_strv_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static int vercmp(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

void ek_strv_sort_versions(ek_strv_t *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(char *), vercmp);
}

void ek_strv_clear(ek_strv_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (ek_strv_t){0};
}

char *ek_morph_path(const char *root, const char *rel)
{
    while (*rel == '/')
        rel++;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    return ek_xasprintf("%.*s/%s", (int)rl, root, rel);
}

bool ek_morph_exists(const char *root, const char *rel)
{
    _cleanup_free_ char *p = ek_morph_path(root, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

bool ek_morph_is_dir(const char *root, const char *rel)
{
    _cleanup_free_ char *p = ek_morph_path(root, rel);
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

ek_err_t *ek_morph_read(const char *root, const char *rel, char **out)
{
    _cleanup_free_ char *p = ek_morph_path(root, rel);
    *out = NULL;
    struct stat st;
    if (stat(p, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return NULL;
        return ek_err_errno(errno, "cannot read %s", p);
    }
    size_t len = 0;
    return ek_file_read(p, 4 << 20, out, &len);
}

static void mkparents(char *p)
{
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
}

ek_err_t *ek_morph_write(const char *root, const char *rel, const char *text, unsigned mode)
{
    _cleanup_free_ char *p = ek_morph_path(root, rel);
    mkparents(p);
    return ek_file_write(p, text, strlen(text), mode);
}

char *ek_morph_shvar(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        while (ll && (*line == ' ' || *line == '\t')) {
            line++;
            ll--;
        }
        if (ll > kl && strncmp(line, key, kl) == 0 && line[kl] == '=') {
            const char *v = line + kl + 1;
            size_t vl = ll - kl - 1;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\r' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
                v++;
                vl -= 2;
            }
            return ek_xstrndup(v, vl);
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}
