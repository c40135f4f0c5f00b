/* backup.c - consistent reads of a running domain: libvirt's pull-mode
 * backup jobs and checkpoints (formatbackup, formatcheckpoint), with the
 * job's NBD server reached through SSH.
 *
 * One job covers every disk of a sync. QEMU exports each disk as it was
 * when the job began (copy-before-write into a scratch file), and creates a
 * checkpoint (a persistent dirty bitmap in each qcow2 disk) at that same
 * instant. With a base checkpoint, the export of a qcow2 disk also carries
 * "qemu:dirty-bitmap:backup-<disk>": what the guest wrote since the base.
 *
 * Checkpoints are named "ekman-<tag>-<n>" (the tag names the replica set,
 * srcread.c; n grows, at least the Unix time, so that a name never comes
 * back). Invariant between syncs: the oldest Ekman checkpoint of a tag
 * is the base - the state the replicas hold, or older. A sync creates a newer one;
 * once every disk is copied the older ones go; a sync that fails deletes
 * its own; one killed outright leaves a newer checkpoint that the next run
 * deletes (the oldest stays the base: its bitmap covers every write since,
 * so the next incremental is complete even if the replicas hold some newer
 * blocks). So there is at most one Ekman checkpoint per tag, and never a
 * pile.
 *
 * Files on the host: a directory /var/tmp/ekman-backup-<tag>-<domain>-<n>-XXXXXX made
 * over SSH, setgid to a group QEMU and the SSH user share (QEMU creates the
 * socket and the scratch files in it; the group lets sshd reach the socket)
 * - kvm on Debian. Here: the local end of the forwarded socket, in the
 * connection's private directory, served by `ssh -N -L` (our child, killed
 * with the task: PR_SET_PDEATHSIG).
 *
 * A task re-run after its process was killed (a retry with saved state)
 * finds the job still running: it re-attaches to it, so that what the
 * first attempt acknowledged is still what the export holds. */
#include "worker/providers/libvirt/libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/strbuf.h"

#define TUNNEL_TIMEOUT_MS 30000
#define REMOTE_PREFIX     "/var/tmp/ekman-backup-"

typedef struct bk_disk {
    char *id, *bitmap; /* bitmap context, NULL for a full read */
} bk_disk_t;

struct ek_lv_backup {
    ek_lv_conn_t *c;
    virDomainPtr dom;
    char *tag, *dtag, *remote_dir, *remote_sock, *local_sock, *new_cp;
    pid_t tunnel;
    bool reattached, job;
    bk_disk_t *disks;
    size_t n;
};

/* ---- checkpoints ------------------------------------------------------------------- */

/* n of "ekman-<tag>-<n>", or -1. */
static long cp_number(const char *name, const char *tag)
{
    _cleanup_free_ char *prefix = ek_xasprintf("ekman-%s-", tag);
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || !name[pl])
        return -1;
    char *end;
    long n = strtol(name + pl, &end, 10);
    return *end || n < 0 ? -1 : n;
}

static int cmp_cp(const void *a, const void *b, void *tag)
{
    long x = cp_number(*(char *const *)a, tag), y = cp_number(*(char *const *)b, tag);
    return x < y ? -1 : x > y;
}

ek_err_t *ek_lv_checkpoints_list(virDomainPtr dom, const char *tag, char ***names, size_t *n)
{
    virDomainCheckpointPtr *cps = NULL;
    int k = virDomainListAllCheckpoints(dom, &cps, 0);
    if (k < 0)
        return ek_lv_err(EK_E_IO, "domain '%s': cannot list its checkpoints",
                         virDomainGetName(dom));
    char **v = ek_xcalloc((size_t)k + 1, sizeof(char *));
    size_t len = 0;
    for (int i = 0; i < k; i++) {
        const char *name = virDomainCheckpointGetName(cps[i]);
        if (name && cp_number(name, tag) >= 0)
            v[len++] = ek_xstrdup(name);
        virDomainCheckpointFree(cps[i]);
    }
    free(cps);
    qsort_r(v, len, sizeof(char *), cmp_cp, (void *)tag);
    *names = v;
    *n = len;
    return NULL;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Deletes a checkpoint and its bitmaps. libvirt cannot remove the bitmaps
 * from the images of a shut-off domain: then only the checkpoint goes (an
 * orphan bitmap costs QEMU little and checkpoint names never repeat, see
 * job_start), and *bitmap_left tells the caller. */
static ek_err_t *cp_delete(virDomainPtr dom, const char *name, bool *bitmap_left)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    if (!cp) {
        virResetLastError();
        return NULL; /* gone already */
    }
    bool active = virDomainIsActive(dom) == 1;
    int rc = virDomainCheckpointDelete(cp, active ? 0 : VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
    virDomainCheckpointFree(cp);
    if (rc < 0)
        return ek_lv_err(EK_E_IO, "domain '%s': cannot delete checkpoint '%s'",
                         virDomainGetName(dom), name);
    if (!active) {
        ek_log_kv(EK_LOG_WARNING,
                  "checkpoint deleted, its bitmaps stay in the shut-off domain's images", "domain",
                  virDomainGetName(dom), "checkpoint", name, NULL);
        if (bitmap_left)
            *bitmap_left = true;
    } else {
        ek_log_kv(EK_LOG_INFO, "checkpoint deleted", "domain", virDomainGetName(dom), "checkpoint",
                  name, NULL);
    }
    return NULL;
}

ek_err_t *ek_lv_checkpoints_prune(virDomainPtr dom, const char *tag, const char *keep)
{
    char **v;
    size_t n;
    ek_err_t *err = ek_lv_checkpoints_list(dom, tag, &v, &n);
    for (size_t i = 0; i < n && !err; i++)
        if (!keep || strcmp(v[i], keep) != 0)
            err = cp_delete(dom, v[i], NULL);
    strv_free(v, n);
    return err;
}

/* Does checkpoint `name` hold a bitmap for disk `id`? */
static bool cp_has_bitmap(virDomainPtr dom, const char *name, const char *id)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    char *xml = cp ? virDomainCheckpointGetXMLDesc(cp, 0) : NULL;
    if (cp)
        virDomainCheckpointFree(cp);
    virResetLastError();
    if (!xml)
        return false;
    _cleanup_free_ char *a = ek_xasprintf("<disk name='%s' checkpoint='bitmap'", id);
    bool yes = strstr(xml, a) != NULL;
    free(xml);
    return yes;
}

/* ---- the job's XML ----------------------------------------------------------------- */

typedef struct job_info {
    char *socket;
    char *incremental; /* job-wide base, or NULL */
    struct {
        char *name, *mode, *incremental, *bitmap;
    } d[64];
    size_t n;
} job_info_t;

static void job_info_release(job_info_t *j)
{
    free(j->socket);
    free(j->incremental);
    for (size_t i = 0; i < j->n; i++) {
        free(j->d[i].name);
        free(j->d[i].mode);
        free(j->d[i].incremental);
        free(j->d[i].bitmap);
    }
    memset(j, 0, sizeof(*j));
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *s = v ? ek_xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

static char *text(xmlNodePtr n)
{
    xmlChar *v = xmlNodeGetContent(n);
    char *s = v && *v ? ek_xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

/* The running backup job of the domain, if any (false: none). */
static bool job_get(virDomainPtr dom, job_info_t *j)
{
    memset(j, 0, sizeof(*j));
    char *xml = virDomainBackupGetXMLDesc(dom, 0);
    virResetLastError();
    if (!xml)
        return false;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "backup.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    free(xml);
    if (!doc)
        return true; /* a job, unreadable: treated as not ours */
    for (xmlNodePtr n = xmlDocGetRootElement(doc)->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (!xmlStrcmp(n->name, BAD_CAST "server"))
            j->socket = attr(n, "socket");
        else if (!xmlStrcmp(n->name, BAD_CAST "incremental"))
            j->incremental = text(n);
        else if (!xmlStrcmp(n->name, BAD_CAST "disks"))
            for (xmlNodePtr d = n->children; d; d = d->next) {
                if (d->type != XML_ELEMENT_NODE || j->n == EK_ARRAY_SIZE(j->d))
                    continue;
                _cleanup_free_ char *b = attr(d, "backup");
                if (b && strcmp(b, "yes") != 0)
                    continue;
                j->d[j->n].name = attr(d, "name");
                j->d[j->n].mode = attr(d, "backupmode");
                j->d[j->n].incremental = attr(d, "incremental");
                j->d[j->n].bitmap = attr(d, "exportbitmap");
                j->n++;
            }
    }
    xmlFreeDoc(doc);
    return true;
}

/* Ends the domain's backup job and waits until it is gone: libvirt ends a
 * pull job asynchronously (QEMU cancels its block jobs), and the next job or
 * a checkpoint deletion fails while it lingers. */
static int job_abort(virDomainPtr dom)
{
    if (virDomainAbortJob(dom) < 0)
        return -1;
    for (int waited = 0; waited < 30000; waited += 50) {
        char *xml = virDomainBackupGetXMLDesc(dom, 0);
        virResetLastError();
        if (!xml)
            return 0;
        free(xml);
        ek_sleep_ms(50);
    }
    return 0;
}

/* What names the host directories of a domain's jobs for a tag: the tag
 * and the domain (several domains of a transfer share the tag). */
static char *dir_tag(virDomainPtr dom, const char *tag)
{
    char uuid[VIR_UUID_STRING_BUFLEN] = "";
    if (virDomainGetUUIDString(dom, uuid) < 0)
        virResetLastError();
    return ek_xasprintf("%s-%.8s", tag, uuid[0] ? uuid : "0");
}

/* The job's host directory when the job is Ekman's for this dir_tag. */
static char *job_dir(const job_info_t *j, const char *tag)
{
    _cleanup_free_ char *prefix = ek_xasprintf(REMOTE_PREFIX "%s-", tag);
    if (!j->socket || strncmp(j->socket, prefix, strlen(prefix)) != 0)
        return NULL;
    const char *slash = strrchr(j->socket, '/');
    return ek_xstrndup(j->socket, (size_t)(slash - j->socket));
}

/* ---- host directory ---------------------------------------------------------------- */

/* The gid QEMU runs with (the DAC label of the live XML, "+64055:+108"). */
static char *qemu_gid(virDomainPtr dom)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    char *gid = NULL;
    const char *m = xml ? strstr(xml, "model='dac'") : NULL;
    const char *l = m ? strstr(m, "<label>") : NULL;
    const char *colon = l ? strchr(l, ':') : NULL;
    if (colon) {
        colon += colon[1] == '+' ? 2 : 1;
        size_t n = strspn(colon, "0123456789");
        if (n)
            gid = ek_xstrndup(colon, n);
    }
    free(xml);
    virResetLastError();
    return gid;
}

static ek_err_t *remote(ek_lv_conn_t *c, const char *cmd, char **out)
{
    int status = 0;
    char *err_text = NULL;
    ek_err_t *err = ek_lv_ssh_run(c, cmd, out, &err_text, &status);
    if (!err && status != 0) {
        size_t n = err_text ? strlen(err_text) : 0;
        while (n && err_text[n - 1] == '\n')
            err_text[--n] = 0;
        err = ek_err_new(EK_E_IO, "on %s, `%s` failed (exit status %d): %s", ek_lv_describe(c), cmd,
                         status, n ? err_text : "no message");
        if (out) {
            free(*out);
            *out = NULL;
        }
    }
    free(err_text);
    return err;
}

/* The directory's name carries the number of the checkpoint the job
 * creates (0: none), for a re-attach to find it. */
static ek_err_t *remote_dir_make(ek_lv_backup_t *b, long cp)
{
    _cleanup_free_ char *gid = qemu_gid(b->dom);
    /* The first group that works: QEMU's own, kvm (QEMU's supplementary
     * group on Debian), qemu. */
    _cleanup_free_ char *cmd = ek_xasprintf(
        "set -e; umask 077; d=$(mktemp -d " REMOTE_PREFIX "%s-%ld-XXXXXX); "
        "for g in %s kvm qemu libvirt-qemu; do chgrp \"$g\" \"$d\" 2>/dev/null && break; done; "
        "chmod 2770 \"$d\"; echo \"$d\"",
        b->dtag, cp, gid ? gid : "");
    char *out = NULL;
    ek_err_t *err = remote(b->c, cmd, &out);
    if (err)
        return ek_err_prefix(err, "could not make a directory for the backup job");
    out[strcspn(out, "\n")] = 0;
    if (strncmp(out, REMOTE_PREFIX, strlen(REMOTE_PREFIX)) != 0) {
        err = ek_err_new(EK_E_PROTOCOL, "making a directory on %s printed \"%s\"",
                         ek_lv_describe(b->c), out);
        free(out);
        return err;
    }
    b->remote_dir = out;
    return NULL;
}

static void remote_dir_remove(ek_lv_conn_t *c, const char *dir)
{
    if (!dir || strncmp(dir, REMOTE_PREFIX, strlen(REMOTE_PREFIX)) != 0 || strstr(dir, ".."))
        return;
    _cleanup_free_ char *q = ek_shell_quote(dir);
    _cleanup_free_ char *cmd = ek_xasprintf("rm -rf -- %s", q);
    ek_err_t *err = remote(c, cmd, NULL);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "could not remove the backup directory", "error", err->message,
                  NULL);
        ek_err_free(err);
    }
}

/* Removes every host directory of the dir_tag (no job uses them). */
static void dirs_sweep(ek_lv_conn_t *c, const char *dtag)
{
    for (const char *p = dtag; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-'))
            return; /* only hex and dashes go into a glob */
    _cleanup_free_ char *cmd = ek_xasprintf(
        "for d in " REMOTE_PREFIX "%s-*; do [ -d \"$d\" ] && rm -rf -- \"$d\"; done; true", dtag);
    ek_err_t *err = remote(c, cmd, NULL);
    if (err) {
        ek_log_kv(EK_LOG_WARNING, "could not remove stale backup directories", "error",
                  err->message, NULL);
        ek_err_free(err);
    }
}

/* ---- the tunnel -------------------------------------------------------------------- */

static void tunnel_stop(ek_lv_backup_t *b)
{
    if (b->tunnel <= 0)
        return;
    ek_helper_stop(b->tunnel);
    b->tunnel = -1;
    unlink(b->local_sock);
}

/* ssh -N -L LOCAL:REMOTE: every NBD connection to the local socket becomes
 * a channel to the job's socket on the host. */
static ek_err_t *tunnel_start(ek_lv_backup_t *b)
{
    b->local_sock = ek_xasprintf("%s/nbd.sock", ek_lv_tmp_dir(b->c));
    if (strlen(b->local_sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return ek_err_new(EK_E_INVALID,
                          "the socket path \"%s\" is too long: set a shorter "
                          "[worker] tmp_dir",
                          b->local_sock);
    _cleanup_free_ char *fwd = ek_xasprintf("%s:%s", b->local_sock, b->remote_sock);
    const char *extra[] = {
        "-N", "-T", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
        "-L", fwd,  NULL};
    char **argv = ek_lv_ssh_argv(b->c, extra, NULL);
    _cleanup_free_ char *log = ek_xasprintf("%s/tunnel.log", ek_lv_tmp_dir(b->c));
    ek_err_t *err = ek_helper_start((const char *const *)argv, b->local_sock, log,
                                    TUNNEL_TIMEOUT_MS, "ssh", &b->tunnel);
    ek_lv_argv_free(argv);
    if (err)
        b->tunnel = -1;
    return err ? ek_err_prefix(err, "forwarding the backup job's NBD socket from %s",
                               ek_lv_describe(b->c))
               : NULL;
}

/* ---- begin / end ------------------------------------------------------------------- */

static void backup_free(ek_lv_backup_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->disks[i].id);
        free(b->disks[i].bitmap);
    }
    free(b->disks);
    free(b->tag);
    free(b->dtag);
    free(b->remote_dir);
    free(b->remote_sock);
    free(b->local_sock);
    free(b->new_cp);
    if (b->dom)
        virDomainFree(b->dom);
    free(b);
}

/* Ends a job that Ekman left for this tag, and its files; a job of
 * someone else is an error (jobs are exclusive). */
static ek_err_t *job_clear(ek_lv_conn_t *c, virDomainPtr dom, const char *tag, ek_task_ctx_t *ctx)
{
    job_info_t j;
    _cleanup_free_ char *dtag = dir_tag(dom, tag);
    if (!job_get(dom, &j)) {
        /* No job: directories of jobs that ended without us (libvirtd or
         * the domain restarted) are stale. */
        dirs_sweep(c, dtag);
        return NULL;
    }
    _cleanup_free_ char *dir = job_dir(&j, dtag);
    ek_err_t *err = NULL;
    if (!dir) {
        err = ek_err_new(EK_E_CONFLICT,
                         "domain '%s' has a backup job that is not this transfer's (NBD socket "
                         "\"%s\"): wait for it to end, or end it with virsh domjobabort %s",
                         virDomainGetName(dom), j.socket ? j.socket : "?", virDomainGetName(dom));
    } else {
        if (job_abort(dom) < 0)
            err = ek_lv_err(EK_E_IO, "domain '%s': cannot end the backup job an earlier run left",
                            virDomainGetName(dom));
        else if (ctx)
            ek_task_event(ctx, "INFO", "domain '%s': ended the backup job an earlier run left",
                          virDomainGetName(dom));
        remote_dir_remove(c, dir);
    }
    job_info_release(&j);
    return err;
}

ek_err_t *ek_lv_backup_cleanup(ek_lv_conn_t *c, virDomainPtr dom, const char *tag, bool all,
                               ek_task_ctx_t *ctx)
{
    ek_err_t *err = job_clear(c, dom, tag, ctx);
    char **v = NULL;
    size_t n = 0;
    if (!err)
        err = ek_lv_checkpoints_list(dom, tag, &v, &n);
    /* The oldest is the base of the next incremental (see the top). */
    for (size_t i = all ? 0 : 1; i < n && !err; i++) {
        bool left = false;
        if (!(err = cp_delete(dom, v[i], &left)) && ctx)
            ek_task_event(ctx, left ? "WARNING" : "INFO",
                          "domain '%s': checkpoint '%s' deleted%s%s", virDomainGetName(dom), v[i],
                          all ? "" : " (from an unfinished sync)",
                          left ? "; the domain is shut off, so libvirt leaves its dirty bitmap in "
                                 "the qcow2 images (qemu-img bitmap --remove IMAGE NAME removes it)"
                               : "");
    }
    strv_free(v, n);
    return err;
}

/* Re-attaches to the job an earlier attempt of this task left, when it
 * covers the disks. */
static bool reattach(ek_lv_backup_t *b, const ek_lv_backup_disk_t *disks, size_t n)
{
    job_info_t j;
    if (!job_get(b->dom, &j))
        return false;
    char *dir = job_dir(&j, b->dtag);
    bool ok = dir != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        bool found = false;
        for (size_t k = 0; k < j.n && !found; k++) {
            if (!j.d[k].name || strcmp(j.d[k].name, disks[i].id) != 0)
                continue;
            found = true;
            bool inc = (j.d[k].mode && strcmp(j.d[k].mode, "incremental") == 0) ||
                       (!j.d[k].mode && j.incremental);
            b->disks[i].id = ek_xstrdup(disks[i].id);
            if (inc)
                b->disks[i].bitmap =
                    ek_xasprintf("qemu:dirty-bitmap:%s", j.d[k].bitmap ? j.d[k].bitmap : "");
            if (inc && !j.d[k].bitmap) {
                free(b->disks[i].bitmap);
                b->disks[i].bitmap = ek_xasprintf("qemu:dirty-bitmap:backup-%s", disks[i].id);
            }
        }
        ok = found;
    }
    if (ok) {
        long cp = strtol(dir + strlen(REMOTE_PREFIX) + strlen(b->dtag) + 1, NULL, 10);
        b->remote_dir = dir;
        b->remote_sock = ek_xstrdup(j.socket);
        b->new_cp = cp > 0 ? ek_xasprintf("ekman-%s-%ld", b->tag, cp) : NULL;
        b->job = b->reattached = true;
    } else {
        free(dir);
        for (size_t i = 0; i < n; i++) {
            free(b->disks[i].id);
            free(b->disks[i].bitmap);
            b->disks[i].id = b->disks[i].bitmap = NULL;
        }
    }
    job_info_release(&j);
    return ok;
}

static char *backup_xml(const ek_lv_backup_t *b, const ek_lv_backup_disk_t *disks, size_t n,
                        const char *base, const bool *inc)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_addf(&sb,
                   "<domainbackup mode='pull'>\n  <server transport='unix' socket='%s'/>\n"
                   "  <disks>\n",
                   b->remote_sock);
    for (size_t i = 0; i < n; i++) {
        ek_strbuf_addf(&sb, "    <disk name='%s' backup='yes' type='file'", disks[i].id);
        if (inc[i])
            ek_strbuf_addf(&sb, " backupmode='incremental' incremental='%s'", base);
        else
            ek_strbuf_adds(&sb, " backupmode='full'");
        ek_strbuf_addf(&sb, "><scratch file='%s/scratch-%s.qcow2'/></disk>\n", b->remote_dir,
                       disks[i].id);
    }
    ek_strbuf_adds(&sb, "  </disks>\n</domainbackup>\n");
    return ek_strbuf_detach(&sb);
}

static char *checkpoint_xml(const char *name, const ek_lv_backup_disk_t *disks, size_t n)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    bool any = false;
    ek_strbuf_addf(&sb,
                   "<domaincheckpoint><name>%s</name><description>Ekman: the state of the "
                   "replicas after this sync</description><disks>",
                   name);
    for (size_t i = 0; i < n; i++) {
        ek_strbuf_addf(&sb, "<disk name='%s' checkpoint='%s'/>", disks[i].id,
                       disks[i].incremental_ok ? "bitmap" : "no");
        any |= disks[i].incremental_ok;
    }
    ek_strbuf_adds(&sb, "</disks></domaincheckpoint>");
    if (!any) {
        ek_strbuf_release(&sb);
        return NULL;
    }
    return ek_strbuf_detach(&sb);
}

/* Forgets what job_start prepared for a job that did not start. */
static void job_undo(ek_lv_backup_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->disks[i].id);
        free(b->disks[i].bitmap);
        b->disks[i].id = b->disks[i].bitmap = NULL;
    }
    remote_dir_remove(b->c, b->remote_dir);
    free(b->remote_dir);
    free(b->remote_sock);
    free(b->new_cp);
    b->remote_dir = b->remote_sock = b->new_cp = NULL;
}

/* Starts a new job: the base, the XML, the job, with a checkpoint when a
 * disk can hold a bitmap (without one when a disk refuses it). */
static ek_err_t *job_start(ek_lv_backup_t *b, const ek_lv_backup_disk_t *disks, size_t n,
                           bool incremental, ek_task_ctx_t *ctx)
{
    char **v = NULL;
    size_t nv = 0;
    ek_err_t *err = ek_lv_checkpoints_list(b->dom, b->tag, &v, &nv);
    if (err)
        return err;
    const char *base = incremental && nv ? v[0] : NULL;
    /* Never a name used before: a checkpoint deleted while its domain was
     * shut off may have left its bitmap (same name) in the images. */
    long next = nv ? cp_number(v[nv - 1], b->tag) + 1 : 1;
    if (next < (long)time(NULL))
        next = (long)time(NULL);
    bool *inc = ek_xcalloc(n ? n : 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        b->disks[i].id = ek_xstrdup(disks[i].id);
        inc[i] = base && disks[i].incremental_ok && cp_has_bitmap(b->dom, base, disks[i].id);
        if (inc[i])
            b->disks[i].bitmap = ek_xasprintf("qemu:dirty-bitmap:backup-%s", disks[i].id);
    }
    b->new_cp = ek_xasprintf("ekman-%s-%ld", b->tag, next);
    _cleanup_free_ char *cx = checkpoint_xml(b->new_cp, disks, n);
    if (!cx) {
        free(b->new_cp);
        b->new_cp = NULL;
    }
    if (!(err = remote_dir_make(b, cx ? next : 0))) {
        b->remote_sock = ek_xasprintf("%s/nbd.sock", b->remote_dir);
        _cleanup_free_ char *bx = backup_xml(b, disks, n, base, inc);
        char why[512] = "";
        int rc = virDomainBackupBegin(b->dom, bx, cx, 0);
        if (rc < 0)
            snprintf(why, sizeof(why), "%s", virGetLastErrorMessage());
        if (rc < 0 && cx && strstr(why, "dirty bitmap")) {
            /* A disk refused the checkpoint's bitmap (qcow2 v2, which the
             * volume XML of a dir pool does not tell): again, without one. */
            ek_task_event(ctx, "WARNING",
                          "domain '%s': a disk cannot hold a dirty bitmap (%s): no checkpoint; "
                          "this sync reads every block and sends only those that differ from "
                          "the replica. For incrementals that read only what changed, upgrade "
                          "its qcow2 images with `qemu-img amend -f qcow2 -o compat=1.1 FILE` "
                          "while the domain is shut off",
                          virDomainGetName(b->dom), why);
            job_undo(b);
            ek_lv_backup_disk_t *plain = ek_xcalloc(n ? n : 1, sizeof(*plain));
            for (size_t i = 0; i < n; i++)
                plain[i] = (ek_lv_backup_disk_t){.id = disks[i].id, .incremental_ok = false};
            err = job_start(b, plain, n, false, ctx);
            free(plain);
        } else if (rc < 0) {
            bool perm = strstr(why, "ermission") || strstr(why, "denied");
            err = ek_err_new(EK_E_IO, "domain '%s': the backup job did not start: %s%s%s%s",
                             virDomainGetName(b->dom), why,
                             perm ? " (QEMU must be able to create files in " : "",
                             perm ? b->remote_dir : "",
                             perm ? " on the host: the SSH user must share a group with QEMU, "
                                    "kvm on Debian, or be root)"
                                  : "");
        } else {
            b->job = true;
            ek_task_event(ctx, "INFO", "domain '%s': backup job started%s%s%s%s",
                          virDomainGetName(b->dom),
                          base ? ", changes since checkpoint '" : ", full read", base ? base : "",
                          base ? "'" : "", b->new_cp ? "; it creates the next checkpoint" : "");
        }
    }
    free(inc);
    strv_free(v, nv);
    return err;
}

ek_err_t *ek_lv_backup_begin(ek_lv_conn_t *c, virDomainPtr dom, const char *tag,
                             const ek_lv_backup_disk_t *disks, size_t n, bool incremental,
                             bool resume, ek_task_ctx_t *ctx, ek_lv_backup_t **out)
{
    *out = NULL;
    ek_lv_backup_t *b = ek_xcalloc(1, sizeof(*b));
    b->c = c;
    b->tunnel = -1;
    b->tag = ek_xstrdup(tag);
    b->dtag = dir_tag(dom, tag);
    virDomainRef(dom);
    b->dom = dom;
    b->disks = ek_xcalloc(n ? n : 1, sizeof(*b->disks));
    b->n = n;
    ek_err_t *err = NULL;
    if (resume && reattach(b, disks, n)) {
        ek_task_event(ctx, "INFO",
                      "domain '%s': re-attached to the backup job of the interrupted attempt: "
                      "the copy resumes from the same point in time",
                      virDomainGetName(dom));
    } else if (!(err = ek_lv_backup_cleanup(c, dom, tag, false, ctx))) {
        err = job_start(b, disks, n, incremental, ctx);
    }
    if (!err)
        err = tunnel_start(b);
    if (err) {
        ek_err_free(ek_lv_backup_end(b, false));
        return err;
    }
    *out = b;
    return NULL;
}

char *ek_lv_backup_uri(const ek_lv_backup_t *b, const char *disk)
{
    return ek_xasprintf("nbd+unix:///%s?socket=%s", disk, b->local_sock);
}

const char *ek_lv_backup_bitmap(const ek_lv_backup_t *b, const char *disk)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->disks[i].id && strcmp(b->disks[i].id, disk) == 0)
            return b->disks[i].bitmap;
    return NULL;
}

bool ek_lv_backup_reattached(const ek_lv_backup_t *b)
{
    return b->reattached;
}

ek_err_t *ek_lv_backup_end(ek_lv_backup_t *b, bool ok)
{
    if (!b)
        return NULL;
    ek_err_t *err = NULL;
    tunnel_stop(b);
    if (b->job && job_abort(b->dom) < 0) {
        /* It may have ended on its own (domain stopped): only log. */
        ek_log_kv(EK_LOG_WARNING, "could not end the backup job", "domain",
                  virDomainGetName(b->dom), "error", virGetLastErrorMessage(), NULL);
        virResetLastError();
    }
    remote_dir_remove(b->c, b->remote_dir);
    if (ok && b->new_cp)
        err = ek_lv_checkpoints_prune(b->dom, b->tag, b->new_cp);
    else if (!ok && b->new_cp)
        err = cp_delete(b->dom, b->new_cp, NULL);
    backup_free(b);
    return err;
}
