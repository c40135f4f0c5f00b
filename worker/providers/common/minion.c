/* minion.c - keys, certificates and cloud-init data of a temporary worker
 * VM (see minion.h). Keys are made by ssh-keygen (OpenSSH's own format,
 * which both sshd and libssh2 read), certificates by pki.c, the config
 * drive by genisoimage or xorriso. */
#include "worker/providers/common/minion.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/base64.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/process.h"
#include "common/strbuf.h"
#include "common/uuid.h"
#include "worker/transfer/pki.h"

#define ETC "/etc/ekman-writer"

void ek_minion_boot_free(ek_minion_boot_t *b)
{
    if (!b)
        return;
    if (b->dir)
        ek_rmtree(b->dir);
    free(b->dir);
    free(b->name);
    free(b->instance_id);
    free(b->client_key_path);
    free(b->client_pub);
    ek_free_secret(b->host_key_pem);
    free(b->host_pub);
    free(b->ca_pem);
    free(b->server_cert_pem);
    ek_free_secret(b->server_key_pem);
    free(b->client_cert_pem);
    ek_free_secret(b->client_key_pem);
    free(b);
}

static ek_err_t *slurp(const char *dir, const char *name, char **out)
{
    _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, name);
    ek_err_t *err = ek_file_read(p, 1 << 20, out, NULL);
    if (!err) { /* one line: no trailing newline */
        size_t n = strlen(*out);
        while (n && ((*out)[n - 1] == '\n' || (*out)[n - 1] == '\r'))
            (*out)[--n] = 0;
    }
    return err;
}

/* An ed25519 key pair BASE (private) and BASE.pub. */
static ek_err_t *keygen(const char *base, const char *comment)
{
    const char *argv[] = {"ssh-keygen", "-q",    "-t", "ed25519", "-N", "",
                          "-C",         comment, "-f", base,      NULL};
    ek_err_t *err = ek_run(argv, NULL);
    return err ? ek_err_prefix(err, "could not make an SSH key (openssh-client)") : NULL;
}

ek_err_t *ek_minion_boot_new(const char *name, const char *tmp_dir, const char *const *extra_names,
                             ek_minion_boot_t **out)
{
    ek_minion_boot_t *b = ek_xcalloc(1, sizeof(*b));
    b->name = ek_xstrdup(name);
    char uuid[EK_UUID_STRLEN + 1];
    ek_uuid_generate(uuid);
    b->instance_id = ek_xasprintf("iid-%s-%s", name, uuid);
    ek_err_t *err = ek_private_dir(tmp_dir, "ekman-minion", &b->dir);
    _cleanup_free_ char *host_base = NULL, *pki = NULL;
    if (!err) {
        b->client_key_path = ek_xasprintf("%s/id_ed25519", b->dir);
        host_base = ek_xasprintf("%s/ssh_host_ed25519_key", b->dir);
        pki = ek_xasprintf("%s/pki", b->dir);
        if (mkdir(pki, 0700) != 0)
            err = ek_err_errno(errno, "could not create \"%s\"", pki);
    }
    if (!err && !(err = keygen(b->client_key_path, "ekman-worker")) &&
        !(err = keygen(host_base, name)) &&
        !(err = slurp(b->dir, "id_ed25519.pub", &b->client_pub)) &&
        !(err = slurp(b->dir, "ssh_host_ed25519_key", &b->host_key_pem)) &&
        !(err = slurp(b->dir, "ssh_host_ed25519_key.pub", &b->host_pub)) &&
        !(err = ek_pki_generate(pki, extra_names, 0)) &&
        !(err = slurp(pki, "ca.pem", &b->ca_pem)) &&
        !(err = slurp(pki, "server.pem", &b->server_cert_pem)) &&
        !(err = slurp(pki, "server.key", &b->server_key_pem)) &&
        !(err = slurp(pki, "client.pem", &b->client_cert_pem)))
        err = slurp(pki, "client.key", &b->client_key_pem);
    if (err) {
        ek_minion_boot_free(b);
        return ek_err_prefix(err, "worker VM '%s': boot material", name);
    }
    /* the host key's private half travels in the drive only */
    _cleanup_free_ char *hk = ek_xasprintf("%s/ssh_host_ed25519_key", b->dir);
    unlink(hk);
    *out = b;
    return NULL;
}

/* The writer's command line: started at each boot by a cloud-init per-boot
 * script (cloud-init runs /var/lib/cloud/scripts/per-boot/ in its final
 * stage, after write_files has put the certificates in place), in its own
 * session so that cloud-init's final stage ends. Not runcmd: oVirt's engine
 * writes runcmd itself (CloudInitHandler), and a second one would replace it. */
static const char *const writer_argv[] = {"ekman-writer",
                                          "--listen",
                                          "0.0.0.0:5566",
                                          "--cert",
                                          ETC "/server.pem",
                                          "--key",
                                          ETC "/server.key",
                                          "--ca",
                                          ETC "/ca.pem",
                                          "--allow-path",
                                          "/dev",
                                          NULL};

static char *per_boot_script(void)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    ek_strbuf_addf(&sb, "#!/bin/sh\n# written by Ekman: the worker VM's data-plane writer\nsetsid");
    for (size_t i = 0; writer_argv[i]; i++)
        ek_strbuf_addf(&sb, " %s", writer_argv[i]); /* no shell metacharacters in them */
    ek_strbuf_addf(&sb, " </dev/null >>/var/log/ekman-writer.log 2>&1 &\n");
    return ek_strbuf_detach(&sb);
}

/* One top-level key of a block mapping whose value is written in flow
 * style (JSON, which YAML 1.1 and 1.2 loaders read): "key: <json>\n". */
static void yaml_key(ek_strbuf_t *sb, const char *key, json_object *v)
{
    const char *text =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    ek_strbuf_addf(sb, "%s: %s\n", key, text);
    json_object_put(v);
}

char *ek_minion_user_data_keys(const ek_minion_boot_t *b)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    json_object *keys = json_object_new_array();
    json_object_array_add(keys, json_object_new_string(b->client_pub));
    yaml_key(&sb, "ssh_authorized_keys", keys);
    json_object *hk = json_object_new_object();
    json_object_object_add(hk, "ed25519_private", json_object_new_string(b->host_key_pem));
    json_object_object_add(hk, "ed25519_public", json_object_new_string(b->host_pub));
    yaml_key(&sb, "ssh_keys", hk);

    static const struct {
        const char *file;
        size_t off;
    } files[] = {
        {"ca.pem", offsetof(ek_minion_boot_t, ca_pem)},
        {"server.pem", offsetof(ek_minion_boot_t, server_cert_pem)},
        {"server.key", offsetof(ek_minion_boot_t, server_key_pem)},
    };
    json_object *wf = json_object_new_array();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *text = *(char *const *)((const char *)b + files[i].off);
        _cleanup_free_ char *b64 = ek_base64_encode(text, strlen(text));
        json_object *f = json_object_new_object();
        _cleanup_free_ char *path = ek_xasprintf(ETC "/%s", files[i].file);
        json_object_object_add(f, "path", json_object_new_string(path));
        json_object_object_add(f, "encoding", json_object_new_string("b64"));
        json_object_object_add(f, "content", json_object_new_string(b64));
        json_object_object_add(f, "permissions", json_object_new_string("0600"));
        json_object_array_add(wf, f);
    }
    _cleanup_free_ char *script = per_boot_script();
    json_object *f = json_object_new_object();
    json_object_object_add(f, "path", json_object_new_string(EK_MINION_PER_BOOT_SCRIPT));
    json_object_object_add(f, "content", json_object_new_string(script));
    json_object_object_add(f, "permissions", json_object_new_string("0755"));
    json_object_array_add(wf, f);
    yaml_key(&sb, "write_files", wf);
    return ek_strbuf_detach(&sb);
}

char *ek_minion_user_data(const ek_minion_boot_t *b)
{
    _cleanup_free_ char *keys = ek_minion_user_data_keys(b);
    char *text = ek_xasprintf("#cloud-config\n"
                              "disable_root: false\n"
                              "ssh_pwauth: false\n"
                              "ssh_deletekeys: true\n"
                              "%s",
                              keys);
    ek_free_secret(keys);
    keys = NULL;
    return text;
}

char *ek_minion_meta_data(const ek_minion_boot_t *b)
{
    return ek_xasprintf("instance-id: %s\nlocal-hostname: %s\n", b->instance_id, b->name);
}

/* The files of the drive, in dir (made here; the caller removes it). */
static ek_err_t *drive_files(const ek_minion_boot_t *b, const char *dir)
{
    _cleanup_free_ char *ud = ek_minion_user_data(b), *md = ek_minion_meta_data(b);
    _cleanup_free_ char *ek = ek_xasprintf("%s/ekman", dir);
    _cleanup_free_ char *keys = ek_xasprintf("%s\n", b->client_pub);
    _cleanup_free_ char *port = ek_xasprintf("%d\n", EK_MINION_WRITER_PORT);
    _cleanup_free_ char *hk = ek_xasprintf("%s\n", b->host_key_pem);
    const struct {
        const char *name, *text;
    } files[] = {
        {"user-data", ud},
        {"meta-data", md},
        {"ekman/authorized_keys", keys},
        {"ekman/ssh_host_ed25519_key", hk},
        {"ekman/writer-ca.pem", b->ca_pem},
        {"ekman/writer-cert.pem", b->server_cert_pem},
        {"ekman/writer-key.pem", b->server_key_pem},
        {"ekman/writer-port", port},
    };
    if (mkdir(ek, 0700) != 0)
        return ek_err_errno(errno, "could not create \"%s\"", ek);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        _cleanup_free_ char *p = ek_xasprintf("%s/%s", dir, files[i].name);
        ek_err_t *err = ek_file_write(p, files[i].text, strlen(files[i].text), 0600);
        if (err)
            return err;
    }
    return NULL;
}

ek_err_t *ek_minion_nocloud_iso(const ek_minion_boot_t *b, const char *iso_path)
{
    _cleanup_free_ char *dir = ek_xasprintf("%s/nocloud", b->dir);
    ek_rmtree(dir);
    if (mkdir(dir, 0700) != 0)
        return ek_err_errno(errno, "could not create \"%s\"", dir);
    ek_err_t *err = drive_files(b, dir);
    if (!err) {
        const char *geniso[] = {"genisoimage", "-quiet",  "-output", iso_path, "-volid",
                                "cidata",      "-joliet", "-rock",   dir,      NULL};
        const char *xorriso[] = {"xorriso", "-as",    "mkisofs", "-quiet", "-o", iso_path,
                                 "-V",      "cidata", "-J",      "-r",     dir,  NULL};
        err = ek_run(geniso, NULL);
        if (err && err->code == EK_E_NOTFOUND) {
            ek_err_free(err);
            err = ek_run(xorriso, NULL);
            if (err && err->code == EK_E_NOTFOUND) {
                ek_err_free(err);
                err = ek_err_new(EK_E_NOTFOUND, "neither genisoimage nor xorriso is installed: "
                                                "install one to make config drives");
            }
        }
    }
    ek_rmtree(dir);
    return err ? ek_err_prefix(err, "worker VM '%s': config drive", b->name) : NULL;
}

json_object *ek_minion_connection_info(const ek_minion_boot_t *b, const char *kind,
                                       const char *host, int port)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(kind));
    json_object_object_add(o, "host", json_object_new_string(host));
    if (strcmp(kind, "ssh") == 0) {
        port = port > 0 ? port : 22;
        char *key = NULL;
        size_t len = 0;
        ek_err_t *err = ek_file_read(b->client_key_path, 1 << 16, &key, &len);
        if (err) { /* the directory is ours: only a broken disk gets here */
            ek_err_free(err);
            json_object_put(o);
            return NULL;
        }
        char *b64 = ek_base64_encode(key, len);
        ek_free_secret(key);
        _cleanup_free_ char *kh = port == 22
                                      ? ek_xasprintf("%s %s\n", host, b->host_pub)
                                      : ek_xasprintf("[%s]:%d %s\n", host, port, b->host_pub);
        json_object_object_add(o, "port", json_object_new_int(port));
        json_object_object_add(o, "username", json_object_new_string("root"));
        json_object_object_add(o, "private_key", json_object_new_string(b64));
        ek_free_secret(b64);
        json_object_object_add(o, "known_hosts", json_object_new_string(kh));
        json_object_object_add(o, "command",
                               json_object_new_string("ekman-writer --stdio --allow-path /dev"));
        return o;
    }
    json_object_object_add(o, "port", json_object_new_int(port > 0 ? port : EK_MINION_WRITER_PORT));
    json_object_object_add(o, "ca_pem", json_object_new_string(b->ca_pem));
    json_object_object_add(o, "cert_pem", json_object_new_string(b->client_cert_pem));
    json_object_object_add(o, "key_pem", json_object_new_string(b->client_key_pem));
    json_object_object_add(o, "server_name", json_object_new_string(EK_PKI_SERVER_NAME));
    return o;
}
