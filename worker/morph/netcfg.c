/* netcfg.c - interface names and DHCP rewrites per configuration style
 * (netcfg.h). */
#include "worker/morph/netcfg.h"

#include <ctype.h>
#include <string.h>
#include "common/mem.h"
#include "common/strbuf.h"

/* ---- line helpers ---- */

typedef struct line {
    const char *s;
    size_t len;  /* without the newline */
    size_t full; /* with it */
} line_t;

static bool next_line(const char **p, line_t *l)
{
    if (!*p || !**p)
        return false;
    const char *end = strchr(*p, '\n');
    l->s = *p;
    l->len = end ? (size_t)(end - *p) : strlen(*p);
    l->full = end ? l->len + 1 : l->len;
    *p += l->full;
    return true;
}

static size_t indent_of(const line_t *l)
{
    size_t i = 0;
    while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t'))
        i++;
    return i;
}

static bool blank_or_comment(const line_t *l)
{
    size_t i = indent_of(l);
    return i == l->len || l->s[i] == '#';
}

/* the first word after the indent */
static char *word(const line_t *l, size_t skip_words)
{
    size_t i = indent_of(l);
    for (;;) {
        size_t wl = 0;
        while (i + wl < l->len && !isspace((unsigned char)l->s[i + wl]))
            wl++;
        if (skip_words-- == 0)
            return ek_xstrndup(l->s + i, wl);
        i += wl;
        while (i < l->len && isspace((unsigned char)l->s[i]))
            i++;
    }
}

static bool starts_word(const line_t *l, const char *w)
{
    size_t i = indent_of(l), wl = strlen(w);
    return l->len - i >= wl && strncmp(l->s + i, w, wl) == 0 &&
           (l->len - i == wl || isspace((unsigned char)l->s[i + wl]));
}

/* YAML key at the start of the line ("ens192:" -> "ens192"), or NULL */
static char *yaml_key(const line_t *l)
{
    size_t i = indent_of(l);
    if (i < l->len && l->s[i] == '-')
        return NULL;
    size_t n = 0;
    while (i + n < l->len && l->s[i + n] != ':' && !isspace((unsigned char)l->s[i + n]))
        n++;
    if (i + n >= l->len || l->s[i + n] != ':')
        return NULL;
    const char *k = l->s + i;
    if (n >= 2 && (k[0] == '"' || k[0] == '\'') && k[n - 1] == k[0])
        return ek_xstrndup(k + 1, n - 2);
    return ek_xstrndup(k, n);
}

static char *lower(char *s)
{
    for (char *p = s; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

static void add_name(ek_strv_t *names, ek_strv_t *macs, const char *name, const char *mac)
{
    if (!name || !*name || strcmp(name, "lo") == 0)
        return;
    for (size_t i = 0; i < names->n; i++)
        if (strcmp(names->v[i], name) == 0) {
            if (mac && *mac && !*macs->v[i]) {
                free(macs->v[i]);
                macs->v[i] = lower(ek_xstrdup(mac));
            }
            return;
        }
    ek_strv_add(names, name);
    ek_strv_take(macs, lower(ek_xstrdup(mac ? mac : "")));
}

/* ---- names ---- */

static void names_ifupdown(const char *text, ek_strv_t *names, ek_strv_t *macs)
{
    line_t l;
    _cleanup_free_ char *cur = NULL;
    for (const char *p = text; next_line(&p, &l);) {
        if (starts_word(&l, "iface")) {
            free(cur);
            cur = word(&l, 1);
            add_name(names, macs, cur, NULL);
        } else if (cur && starts_word(&l, "hwaddress")) {
            _cleanup_free_ char *w1 = word(&l, 1), *w2 = word(&l, 2);
            add_name(names, macs, cur, strcmp(w1, "ether") == 0 ? w2 : w1);
        }
    }
}

static void names_netplan(const char *text, ek_strv_t *names, ek_strv_t *macs)
{
    line_t l;
    long eth_indent = -1, iface_indent = -1;
    _cleanup_free_ char *cur = NULL;
    for (const char *p = text; next_line(&p, &l);) {
        if (blank_or_comment(&l))
            continue;
        long ind = (long)indent_of(&l);
        _cleanup_free_ char *key = yaml_key(&l);
        if (eth_indent >= 0 && ind <= eth_indent) {
            eth_indent = iface_indent = -1;
        }
        if (eth_indent < 0) {
            if (key && strcmp(key, "ethernets") == 0)
                eth_indent = ind;
            continue;
        }
        if (iface_indent < 0 || ind <= iface_indent) {
            iface_indent = ind;
            free(cur);
            cur = key ? ek_xstrdup(key) : NULL;
            add_name(names, macs, cur, NULL);
        } else if (cur && key && strcmp(key, "macaddress") == 0) {
            size_t i = indent_of(&l) + strlen("macaddress:");
            while (i < l.len && (isspace((unsigned char)l.s[i]) || l.s[i] == '"' || l.s[i] == '\''))
                i++;
            _cleanup_free_ char *mac = ek_xstrndup(l.s + i, EK_MIN(17, l.len - i));
            add_name(names, macs, cur, mac);
        } else if (cur && key && strcmp(key, "set-name") == 0) {
            /* the name the guest gives it is what counts */
            size_t i = indent_of(&l) + strlen("set-name:");
            while (i < l.len && (isspace((unsigned char)l.s[i]) || l.s[i] == '"' || l.s[i] == '\''))
                i++;
            size_t n = strcspn(l.s + i, "\"' \n");
            _cleanup_free_ char *nm = ek_xstrndup(l.s + i, EK_MIN(n, l.len - i));
            for (size_t k = 0; k < names->n; k++)
                if (strcmp(names->v[k], cur) == 0) {
                    free(names->v[k]);
                    names->v[k] = ek_xstrdup(nm);
                }
            free(cur);
            cur = EK_STEAL(nm);
        }
    }
}

static char *ini_value(const line_t *l, const char *key)
{
    size_t i = indent_of(l), kl = strlen(key);
    if (l->len - i > kl && strncmp(l->s + i, key, kl) == 0 && l->s[i + kl] == '=')
        return ek_xstrndup(l->s + i + kl + 1, l->len - i - kl - 1);
    return NULL;
}

static void names_keyfile(const char *text, ek_strv_t *names, ek_strv_t *macs)
{
    line_t l;
    _cleanup_free_ char *name = NULL, *mac = NULL, *type = NULL;
    for (const char *p = text; next_line(&p, &l);) {
        char *v;
        if ((v = ini_value(&l, "interface-name"))) {
            free(name);
            name = v;
        } else if ((v = ini_value(&l, "mac-address"))) {
            free(mac);
            mac = v;
        } else if ((v = ini_value(&l, "type"))) {
            free(type);
            type = v;
        }
    }
    if (!type || strcmp(type, "ethernet") == 0 || strcmp(type, "802-3-ethernet") == 0)
        add_name(names, macs, name, mac);
}

static void names_ifcfg(const char *text, const char *file_name, ek_strv_t *names, ek_strv_t *macs)
{
    _cleanup_free_ char *dev = ek_morph_shvar(text, "DEVICE");
    _cleanup_free_ char *mac = ek_morph_shvar(text, "HWADDR");
    if (!mac)
        mac = ek_morph_shvar(text, "LLADDR");
    const char *base = file_name ? strrchr(file_name, '/') : NULL;
    base = base ? base + 1 : file_name;
    if (!dev && base && strncmp(base, "ifcfg-", 6) == 0)
        dev = ek_xstrdup(base + 6);
    add_name(names, macs, dev, mac);
}

void ek_morph_net_names(ek_morph_netstyle_t style, const char *text, const char *file_name,
                        ek_strv_t *names, ek_strv_t *macs)
{
    switch (style) {
    case EK_NET_IFUPDOWN:
        names_ifupdown(text, names, macs);
        break;
    case EK_NET_NETPLAN:
        names_netplan(text, names, macs);
        break;
    case EK_NET_NMKEYFILE:
        names_keyfile(text, names, macs);
        break;
    case EK_NET_IFCFG:
        names_ifcfg(text, file_name, names, macs);
        break;
    }
}

/* ---- DHCP rewrites ---- */

static bool is_static_option(const line_t *l)
{
    static const char *const drop[] = {"address",   "netmask", "gateway",
                                       "broadcast", "network", "pointopoint"};
    for (size_t i = 0; i < EK_ARRAY_SIZE(drop); i++)
        if (starts_word(l, drop[i]))
            return true;
    return false;
}

static char *dhcp_ifupdown(const char *text, ek_strv_t *changed)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    line_t l;
    bool in_static = false;
    for (const char *p = text; next_line(&p, &l);) {
        if (starts_word(&l, "iface") || starts_word(&l, "auto") || starts_word(&l, "mapping") ||
            starts_word(&l, "source") || starts_word(&l, "source-directory") ||
            (indent_of(&l) < l.len && strncmp(l.s + indent_of(&l), "allow-", 6) == 0))
            in_static = false;
        if (starts_word(&l, "iface")) {
            _cleanup_free_ char *name = word(&l, 1), *fam = word(&l, 2), *method = word(&l, 3);
            if (strcmp(name, "lo") != 0 && strcmp(method, "static") == 0 &&
                (strcmp(fam, "inet") == 0 || strcmp(fam, "inet6") == 0)) {
                ek_strbuf_add(&out, l.s, indent_of(&l));
                ek_strbuf_addf(&out, "iface %s %s %s\n", name, fam,
                               strcmp(fam, "inet") == 0 ? "dhcp" : "auto");
                if (!ek_strv_has(changed, name))
                    ek_strv_add(changed, name);
                in_static = true;
                continue;
            }
        } else if (in_static && is_static_option(&l)) {
            continue;
        }
        ek_strbuf_add(&out, l.s, l.full);
    }
    return ek_strbuf_detach(&out);
}

static char *dhcp_netplan(const char *text, ek_strv_t *changed)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    line_t l;
    long eth = -1, iface = -1, prop = -1, skip_deeper = -1;
    _cleanup_free_ char *cur = NULL;
    bool wrote_dhcp = false;
#define CLOSE_IFACE()                                                                              \
    do {                                                                                           \
        if (cur && !wrote_dhcp) {                                                                  \
            long pi = prop >= 0 ? prop : iface + 2;                                                \
            for (long k = 0; k < pi; k++)                                                          \
                ek_strbuf_addch(&out, ' ');                                                        \
            ek_strbuf_adds(&out, "dhcp4: true\n");                                                 \
            if (!ek_strv_has(changed, cur))                                                        \
                ek_strv_add(changed, cur);                                                         \
        }                                                                                          \
        free(cur);                                                                                 \
        cur = NULL;                                                                                \
        prop = -1;                                                                                 \
        wrote_dhcp = false;                                                                        \
    } while (0)
    for (const char *p = text; next_line(&p, &l);) {
        if (blank_or_comment(&l)) {
            if (skip_deeper < 0)
                ek_strbuf_add(&out, l.s, l.full);
            continue;
        }
        long ind = (long)indent_of(&l);
        if (skip_deeper >= 0) {
            /* the value: deeper lines, and list items at the key's indent */
            if (ind > skip_deeper || (ind == skip_deeper && l.s[ind] == '-'))
                continue;
            skip_deeper = -1;
        }
        _cleanup_free_ char *key = yaml_key(&l);
        if (eth >= 0 && ind <= eth) {
            CLOSE_IFACE();
            eth = iface = -1;
        }
        if (eth < 0) {
            if (key && strcmp(key, "ethernets") == 0)
                eth = ind;
            ek_strbuf_add(&out, l.s, l.full);
            continue;
        }
        if (iface < 0 || ind <= iface) {
            CLOSE_IFACE();
            iface = ind;
            cur = key ? ek_xstrdup(key) : NULL;
            ek_strbuf_add(&out, l.s, l.full);
            continue;
        }
        if (prop < 0)
            prop = ind;
        if (ind == prop && key &&
            (strcmp(key, "addresses") == 0 || strcmp(key, "gateway4") == 0 ||
             strcmp(key, "gateway6") == 0 || strcmp(key, "routes") == 0 ||
             strcmp(key, "dhcp4") == 0)) {
            skip_deeper = ind;
            continue;
        }
        if (ind == prop && !wrote_dhcp && cur) {
            for (long k = 0; k < prop; k++)
                ek_strbuf_addch(&out, ' ');
            ek_strbuf_adds(&out, "dhcp4: true\n");
            wrote_dhcp = true;
            if (!ek_strv_has(changed, cur))
                ek_strv_add(changed, cur);
        }
        ek_strbuf_add(&out, l.s, l.full);
    }
    if (eth >= 0) {
        if (out.len && out.buf[out.len - 1] != '\n')
            ek_strbuf_addch(&out, '\n');
        CLOSE_IFACE();
    }
#undef CLOSE_IFACE
    return ek_strbuf_detach(&out);
}

static char *dhcp_keyfile(const char *text, const char *file_name, ek_strv_t *changed)
{
    ek_strbuf_t out = EK_STRBUF_INIT;
    line_t l;
    _cleanup_free_ char *section = NULL;
    bool did = false;
    _cleanup_strv_ ek_strv_t names = {0}, macs = {0};
    names_keyfile(text, &names, &macs);
    for (const char *p = text; next_line(&p, &l);) {
        size_t i = indent_of(&l);
        if (i < l.len && l.s[i] == '[') {
            free(section);
            section = ek_xstrndup(l.s + i, l.len - i);
        }
        bool ip4 = section && strncmp(section, "[ipv4]", 6) == 0;
        bool ip6 = section && strncmp(section, "[ipv6]", 6) == 0;
        if ((ip4 || ip6) && strncmp(l.s + i, "method=manual", 13) == 0) {
            ek_strbuf_adds(&out, "method=auto\n");
            did = true;
            continue;
        }
        if ((ip4 || ip6) &&
            (strncmp(l.s + i, "address", 7) == 0 || strncmp(l.s + i, "gateway=", 8) == 0))
            continue;
        ek_strbuf_add(&out, l.s, l.full);
    }
    if (did) {
        const char *n = names.n ? names.v[0] : file_name ? file_name : "connection";
        if (!ek_strv_has(changed, n))
            ek_strv_add(changed, n);
    }
    return ek_strbuf_detach(&out);
}

static char *dhcp_ifcfg(const char *text, const char *file_name, ek_strv_t *changed)
{
    _cleanup_strv_ ek_strv_t names = {0}, macs = {0};
    names_ifcfg(text, file_name, &names, &macs);
    if (!names.n)
        return ek_xstrdup(text);
    _cleanup_free_ char *proto = ek_morph_shvar(text, "BOOTPROTO");
    _cleanup_free_ char *ip = ek_morph_shvar(text, "IPADDR");
    if (!ip)
        ip = ek_morph_shvar(text, "IPADDR0"); /* RHEL: IPADDR0..n */
    if (!ip)
        ip = ek_morph_shvar(text, "IPADDR_0"); /* SUSE: IPADDR_suffix */
    bool is_static = proto ? (strcmp(proto, "none") == 0 || strcmp(proto, "static") == 0 || !*proto)
                           : ip != NULL;
    if (!is_static)
        return ek_xstrdup(text);
    ek_strbuf_t out = EK_STRBUF_INIT;
    line_t l;
    bool wrote = false;
    static const char *const drop[] = {"IPADDR",  "NETMASK",   "PREFIX",
                                       "GATEWAY", "BROADCAST", "NETWORK"};
    for (const char *p = text; next_line(&p, &l);) {
        size_t i = indent_of(&l);
        bool skip = false;
        for (size_t k = 0; k < EK_ARRAY_SIZE(drop); k++)
            if (strncmp(l.s + i, drop[k], strlen(drop[k])) == 0)
                skip = true;
        if (skip)
            continue;
        if (strncmp(l.s + i, "BOOTPROTO=", 10) == 0) {
            char q = l.s[i + 10];
            if (q == '"' || q == '\'')
                ek_strbuf_addf(&out, "BOOTPROTO=%cdhcp%c\n", q, q);
            else
                ek_strbuf_adds(&out, "BOOTPROTO=dhcp\n");
            wrote = true;
            continue;
        }
        ek_strbuf_add(&out, l.s, l.full);
    }
    if (!wrote) {
        if (out.len && out.buf[out.len - 1] != '\n')
            ek_strbuf_addch(&out, '\n');
        ek_strbuf_adds(&out, "BOOTPROTO=dhcp\n");
    }
    if (!ek_strv_has(changed, names.v[0]))
        ek_strv_add(changed, names.v[0]);
    return ek_strbuf_detach(&out);
}

char *ek_morph_net_dhcp(ek_morph_netstyle_t style, const char *text, const char *file_name,
                        ek_strv_t *changed)
{
    switch (style) {
    case EK_NET_IFUPDOWN:
        return dhcp_ifupdown(text, changed);
    case EK_NET_NETPLAN:
        return dhcp_netplan(text, changed);
    case EK_NET_NMKEYFILE:
        return dhcp_keyfile(text, file_name, changed);
    case EK_NET_IFCFG:
        return dhcp_ifcfg(text, file_name, changed);
    }
    return ek_xstrdup(text);
}

char *ek_morph_net_link_file(const char *mac, int index, const char *name)
{
    if (mac)
        return ek_xasprintf("# written by ekman-morph: keep the name the guest's network\n"
                            "# configuration uses after the move to virtio\n"
                            "[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n",
                            mac, name);
    return ek_xasprintf("# written by ekman-morph: keep the name the guest's network\n"
                        "# configuration uses after the move to virtio\n"
                        "[Match]\nDriver=virtio_net\nOriginalName=eth%d\n\n[Link]\nName=%s\n",
                        index, name);
}

char *ek_morph_net_udev_rule(const char *mac, int index, const char *name)
{
    if (mac)
        return ek_xasprintf("SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"%s\", "
                            "NAME=\"%s\"\n",
                            mac, name);
    return ek_xasprintf("SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"virtio_net\", "
                        "KERNEL==\"eth%d\", NAME=\"%s\"\n",
                        index, name);
}
