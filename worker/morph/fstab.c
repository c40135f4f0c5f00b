/* fstab.c - fstab parsing and device-name rewriting (fstab.h). */
#include "worker/morph/fstab.h"

#include <ctype.h>
#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

static char *decode(const char *s, size_t n)
{
    char *out = ek_xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 3 < n + 0 && isdigit((unsigned char)s[i + 1]) &&
            isdigit((unsigned char)s[i + 2]) && isdigit((unsigned char)s[i + 3])) {
            *o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

void ek_morph_fstab_parse(const char *text, ek_morph_fstab_t *out)
{
    *out = (ek_morph_fstab_t){0};
    size_t alloc = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        const char *f[4];
        size_t fl[4], nf = 0, i = 0;
        while (i < ll && nf < 4) {
            while (i < ll && isspace((unsigned char)line[i]))
                i++;
            if (i >= ll || line[i] == '#')
                break;
            f[nf] = line + i;
            while (i < ll && !isspace((unsigned char)line[i]))
                i++;
            fl[nf] = (size_t)(line + i - f[nf]);
            nf++;
        }
        if (nf >= 3) {
            if (out->n == alloc) {
                alloc = alloc ? alloc * 2 : 8;
                out->e = ek_xrealloc(out->e, alloc * sizeof(ek_morph_fstab_entry_t));
            }
            out->e[out->n++] = (ek_morph_fstab_entry_t){
                decode(f[0], fl[0]), decode(f[1], fl[1]), decode(f[2], fl[2]),
                nf > 3 ? decode(f[3], fl[3]) : ek_xstrdup("defaults")};
        }
        line = end ? end + 1 : NULL;
    }
}

void ek_morph_fstab_clear(ek_morph_fstab_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].spec);
        free(f->e[i].file);
        free(f->e[i].vfstype);
        free(f->e[i].opts);
    }
    free(f->e);
    *f = (ek_morph_fstab_t){0};
}

bool ek_morph_dev_is_unstable(const char *dev)
{
    return (strncmp(dev, "/dev/sd", 7) == 0 && islower((unsigned char)dev[7])) ||
           (strncmp(dev, "/dev/hd", 7) == 0 && islower((unsigned char)dev[7])) ||
           (strncmp(dev, "/dev/xvd", 8) == 0 && islower((unsigned char)dev[8]));
}

char *ek_morph_fstab_rewrite(const char *text, ek_morph_dev_resolver_fn fn, void *ud,
                             ek_strv_t *changes, ek_strv_t *unresolved)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) + 1 : strlen(line);
        size_t ws = strspn(line, " \t");
        size_t sl = strcspn(line + ws, " \t\n");
        const char *uuid = NULL;
        _cleanup_free_ char *spec = ek_xstrndup(line + ws, sl);
        if (line[ws] != '#' && sl && ek_morph_dev_is_unstable(spec)) {
            uuid = fn(ud, spec);
            if (!uuid && unresolved)
                ek_strv_add(unresolved, spec);
        }
        if (uuid) {
            ek_strbuf_adds(&out, "# ");
            ek_strbuf_add(&out, line, ll);
            if (!end)
                ek_strbuf_addch(&out, '\n');
            ek_strbuf_add(&out, line, ws);
            ek_strbuf_addf(&out, "UUID=%s", uuid);
            ek_strbuf_add(&out, line + ws + sl, ll - ws - sl);
            if (changes)
                ek_strv_take(changes, ek_xasprintf("/etc/fstab: %s -> UUID=%s", spec, uuid));
        } else {
            ek_strbuf_add(&out, line, ll);
        }
        line += ll;
    }
    return ek_strbuf_detach(&out);
}

char *ek_morph_grub_default_rewrite(const char *text, ek_morph_dev_resolver_fn fn, void *ud,
                                    ek_strv_t *changes, ek_strv_t *unresolved)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) + 1 : strlen(line);
        size_t ws = strspn(line, " \t");
        if (strncmp(line + ws, "GRUB_CMDLINE_LINUX", 18) != 0) {
            ek_strbuf_add(&out, line, ll);
            line += ll;
            continue;
        }
        /* scan the line for root= and resume= words */
        for (size_t i = 0; i < ll;) {
            static const char *const keys[] = {"root=", "resume="};
            bool done = false;
            for (size_t k = 0; k < 2 && !done; k++) {
                size_t kl = strlen(keys[k]);
                bool word_start = i == 0 || strchr(" \t\"'", line[i - 1]);
                if (!word_start || strncmp(line + i, keys[k], kl) != 0)
                    continue;
                size_t vl = strcspn(line + i + kl, " \t\"'\n");
                _cleanup_free_ char *dev = ek_xstrndup(line + i + kl, vl);
                if (!ek_morph_dev_is_unstable(dev))
                    continue;
                const char *uuid = fn(ud, dev);
                if (!uuid) {
                    if (unresolved)
                        ek_strv_add(unresolved, dev);
                    continue;
                }
                ek_strbuf_addf(&out, "%sUUID=%s", keys[k], uuid);
                if (changes)
                    ek_strv_take(changes, ek_xasprintf("/etc/default/grub: %s%s -> %sUUID=%s",
                                                       keys[k], dev, keys[k], uuid));
                i += kl + vl;
                done = true;
            }
            if (!done)
                ek_strbuf_addch(&out, line[i++]);
        }
        line += ll;
    }
    return ek_strbuf_detach(&out);
}
