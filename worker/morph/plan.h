/* plan.h - what the engine does to a Linux guest, as a list of actions built
 * by a pure function of the mounted tree and the options, then executed in a
 * chroot (plan_run.c). The unit tests build plans on fixture trees
 * (tests/fixtures/morph/<distro>/) and compare their descriptions.
 *
 * Ownership: ek_morph_plan_build() returns a plan the caller frees with
 * ek_morph_plan_free(). */
#ifndef EK_MORPH_PLAN_H
#define EK_MORPH_PLAN_H

#include <stdbool.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "worker/morph/detect.h"
#include "worker/morph/fstab.h"
#include "worker/morph/journal.h"
#include "worker/morph/options.h"
#include "worker/morph/report.h"

typedef enum ek_morph_act_kind {
    EK_ACT_STEP,    /* path: the step's name */
    EK_ACT_EVENT,   /* path: level, text: message */
    EK_ACT_WRITE,   /* path (guest), text, mode */
    EK_ACT_REMOVE,  /* path (guest): file or tree */
    EK_ACT_COPY_IN, /* path (guest) <- text (worker path) */
    EK_ACT_RUN,     /* argv in the chroot */
} ek_morph_act_kind_t;

typedef enum ek_morph_on_fail {
    EK_FAIL_ERROR, /* the morphing fails */
    EK_FAIL_WARN,  /* a WARNING event (fail_hint: its text), the rest of the group is skipped */
} ek_morph_on_fail_t;

typedef struct ek_morph_action {
    ek_morph_act_kind_t kind;
    char *path;
    char *text;
    unsigned mode;
    ek_strv_t argv;
    ek_strv_t env; /* extra "K=V" */
    int timeout_s;
    ek_morph_on_fail_t on_fail;
    int group;    /* 0: none */
    bool online;  /* needs the worker's resolv.conf in the guest */
    char *change; /* reported (one change per line) after success, or NULL */
    char *fail_hint;
} ek_morph_action_t;

typedef struct ek_morph_plan {
    ek_morph_action_t *a;
    size_t n, alloc;
    int next_group;
} ek_morph_plan_t;

typedef struct ek_morph_plan_in {
    const char *root; /* the mounted guest root */
    const ek_morph_os_t *os;
    const ek_morph_opts_t *opts;
    const ek_strv_t *installed;       /* installed package names (dpkg status or rpm -qa) */
    ek_morph_dev_resolver_fn resolve; /* guest /dev/sdX names -> UUID */
    void *resolve_ud;
} ek_morph_plan_in_t;

/* The virtio modules put in every initramfs. */
extern const char *const ek_morph_virtio_modules[];

EK_ERR_CHECK ek_morph_plan_build(const ek_morph_plan_in_t *in, ek_morph_plan_t **out);
void ek_morph_plan_free(ek_morph_plan_t *p);
EK_DEFINE_CLEANUP(ek_morph_plan_t, ek_morph_plan_free)

/* One line per action ("run: dpkg --purge open-vm-tools", "write /etc/fstab",
 * ...), for the tests and the --dry-run of ekman-morph. */
void ek_morph_plan_describe(const ek_morph_plan_t *p, ek_strbuf_t *out);

/* Executes the plan in root: steps and changes reported through r; the
 * worker's resolv.conf put in the guest for online actions (journaled and
 * restored). The first EK_FAIL_ERROR failure ends it with its error. */
EK_ERR_CHECK ek_morph_plan_run(const ek_morph_plan_t *p, const char *root, ek_morph_journal_t *j,
                               ek_morph_report_t *r);

#endif
