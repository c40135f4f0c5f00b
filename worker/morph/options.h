/* options.h - the options ekman-morph reads on stdin (one JSON object), as a
 * struct. The provider that runs the engine writes them (worker/morph/driver.c);
 * an operator can write them by hand when running it on a worker VM.
 *
 * Ownership: ek_morph_opts_parse() returns an object the caller frees with
 * ek_morph_opts_free(); its strings are owned by it. */
#ifndef EK_MORPH_OPTIONS_H
#define EK_MORPH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

typedef struct ek_morph_nic {
    char *mac;          /* "52:54:00:12:34:56" (lower case), or NULL */
    char *model;        /* the source adapter ("vmxnet3"), or NULL */
    char *network_name; /* or NULL */
} ek_morph_nic_t;

typedef struct ek_morph_opts {
    char **disks; /* as given: "/dev/vdb" or "serial:abc123" */
    size_t n_disks;
    char *os_type; /* "linux", "windows" or NULL */
    bool set_dhcp;
    bool retain_user_credentials;
    ek_morph_nic_t *nics;
    size_t n_nics;
    char *packages_dir;   /* or NULL */
    char *virtio_win_dir; /* or NULL */
    char *user_script;    /* or NULL */
    char *state_dir;      /* default "/run/ekman-morph" */
} ek_morph_opts_t;

/* Parses and checks the options document; errors name the field
 * ("options.nics[1].mac must look like 52:54:00:12:34:56, not \"xyz\""). */
EK_ERR_CHECK ek_morph_opts_parse(const char *text, size_t len, ek_morph_opts_t **out);
void ek_morph_opts_free(ek_morph_opts_t *o);
EK_DEFINE_CLEANUP(ek_morph_opts_t, ek_morph_opts_free)

#endif
