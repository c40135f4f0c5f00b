/* netcfg.h - the guest's network configuration: which interface names it
 * configures (so they can be pinned by MAC when the NIC model and hence the
 * predictable name change: ens192 under VMware, enp1s0 under virtio), and the
 * rewrites that turn static addressing into DHCP for each style:
 * ifupdown (/etc/network/interfaces), netplan, NetworkManager keyfiles, ifcfg
 * (RHEL network-scripts and SUSE wicked). Pure text functions. */
#ifndef EK_MORPH_NETCFG_H
#define EK_MORPH_NETCFG_H

#include <stdbool.h>
#include "worker/morph/util.h"

/* Configured interface names found in text of the given style, in order, with
 * the MAC the file binds to when it says ("" else); lo is left out.
 * names and macs stay parallel. */
typedef enum ek_morph_netstyle {
    EK_NET_IFUPDOWN,
    EK_NET_NETPLAN,
    EK_NET_NMKEYFILE,
    EK_NET_IFCFG,
} ek_morph_netstyle_t;

void ek_morph_net_names(ek_morph_netstyle_t style, const char *text, const char *file_name,
                        ek_strv_t *names, ek_strv_t *macs);

/* Text rewritten for DHCP; each changed interface is added to changed (its
 * name). Returns a new string (equal to text when nothing changed). */
char *ek_morph_net_dhcp(ek_morph_netstyle_t style, const char *text, const char *file_name,
                        ek_strv_t *changed);

/* A systemd .link file that names the NIC with this MAC (or, mac NULL, the
 * virtio_net NIC the kernel named eth<index>) `name`. */
char *ek_morph_net_link_file(const char *mac, int index, const char *name);
/* One udev rule line doing the same, for guests without systemd. */
char *ek_morph_net_udev_rule(const char *mac, int index, const char *name);

#endif
