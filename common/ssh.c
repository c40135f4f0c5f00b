/* ssh.c - SSH client sessions over libssh2, step by step (see ssh.h). */
#include "common/ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/base64.h"
#include "common/mem.h"
#include "common/net.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    libssh2_init(0);
}

const char *ek_ssh_errmsg(LIBSSH2_SESSION *s)
{
    char *msg = NULL;
    if (s)
        libssh2_session_last_error(s, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown error";
}

static ek_err_t *tcp_connect(const ek_ssh_peer_t *p, int *fd_out)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    ek_err_t *err = ek_tcp_connect(p->host, port, p->timeout_ms, fd_out);
    if (!err)
        return NULL;
    ek_err_t *e =
        ek_err_new(err->code, "%s (%s)", err->message,
                   strncmp(err->message, "cannot resolve", 14) == 0
                       ? "check the host name and this machine's DNS"
                       : "is sshd listening there, and is the port open in the firewall?");
    ek_err_free(err);
    return e;
}

/* ---- the host key ------------------------------------------------------------------- */

static const struct {
    int type;
    const char *name;
    int known;
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_RSA, "ssh-rsa", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {LIBSSH2_HOSTKEY_TYPE_DSS, "ssh-dss", LIBSSH2_KNOWNHOST_KEY_SSHDSS},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, "ecdsa-sha2-nistp256", LIBSSH2_KNOWNHOST_KEY_ECDSA_256},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, "ecdsa-sha2-nistp384", LIBSSH2_KNOWNHOST_KEY_ECDSA_384},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, "ecdsa-sha2-nistp521", LIBSSH2_KNOWNHOST_KEY_ECDSA_521},
    {LIBSSH2_HOSTKEY_TYPE_ED25519, "ssh-ed25519", LIBSSH2_KNOWNHOST_KEY_ED25519},
};

static const char *key_type_name(int t)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(key_types); i++)
        if (key_types[i].type == t)
            return key_types[i].name;
    return "unknown";
}

static int key_type_known(int t)
{
    for (size_t i = 0; i < EK_ARRAY_SIZE(key_types); i++)
        if (key_types[i].type == t)
            return key_types[i].known;
    return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

/* "SHA256:<base64 without padding>" of the session's host key. */
static char *host_fingerprint(LIBSSH2_SESSION *s)
{
    const char *h = libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (!h)
        return NULL;
    char *b = ek_base64_encode(h, 32);
    b[strcspn(b, "=")] = 0;
    char *fp = ek_xasprintf("SHA256:%s", b);
    free(b);
    return fp;
}

static bool fingerprint_equal(const char *given, const char *actual)
{
    if (strncmp(given, "SHA256:", 7) == 0)
        given += 7;
    actual += 7;
    size_t n = strcspn(given, "= \t\n");
    return n == strlen(actual) && strncmp(given, actual, n) == 0;
}

static ek_err_t *check_host_key(const ek_ssh_peer_t *p, LIBSSH2_SESSION *s)
{
    const char *khn = p->known_hosts_name ? p->known_hosts_name : p->known_hosts;
    size_t klen;
    int ktype;
    const char *key = libssh2_session_hostkey(s, &klen, &ktype);
    _cleanup_free_ char *fp = host_fingerprint(s);
    if (!key || !fp)
        return ek_err_new(EK_E_PROTOCOL, "%s:%d sent no host key", p->host, p->port);
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
    if (!kh)
        return ek_err_new(EK_E_INTERNAL, "libssh2: cannot hold known hosts");
    ek_err_t *err = NULL;
    int typemask =
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_type_known(ktype);
    if (access(p->known_hosts, F_OK) == 0) {
        if (libssh2_knownhost_readfile(kh, p->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
            err = ek_err_new(EK_E_INVALID,
                             "%s is not in the known_hosts format (%s): give the output of "
                             "ssh-keyscan -p %d %s",
                             khn, ek_ssh_errmsg(s), p->port, p->host);
        } else {
            int rc = libssh2_knownhost_checkp(kh, p->host, p->port, key, klen, typemask, NULL);
            if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
                err = ek_err_new(EK_E_AUTH,
                                 "HOST KEY MISMATCH: %s:%d offers %s key %s, which differs from "
                                 "the key in %s: someone may be intercepting the connection, or "
                                 "the host was reinstalled; update the known hosts only after "
                                 "checking the key on the host",
                                 p->host, p->port, key_type_name(ktype), fp, khn);
            else if (rc != LIBSSH2_KNOWNHOST_CHECK_MATCH)
                err = ek_err_new(EK_E_AUTH,
                                 "unknown host key: %s:%d offers %s key %s, and %s has no %s "
                                 "key for it: add the host's line (ssh-keyscan -p %d %s) after "
                                 "checking the key on the host",
                                 p->host, p->port, key_type_name(ktype), fp, khn,
                                 key_type_name(ktype), p->port, p->host);
        }
    } else if (!p->fingerprint) {
        err = ek_err_new(EK_E_INVALID, "no known hosts for %s:%d (%s does not exist)", p->host,
                         p->port, khn);
    } else if (!fingerprint_equal(p->fingerprint, fp)) {
        err = ek_err_new(EK_E_AUTH,
                         "host key mismatch: %s:%d offers %s key %s, not %s (%s); check the "
                         "key on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)",
                         p->host, p->port, key_type_name(ktype), fp, p->fingerprint,
                         p->fingerprint_name ? p->fingerprint_name : "the fingerprint given");
    } else {
        /* the fingerprint vouches for this key: written as known_hosts */
        _cleanup_free_ char *name =
            p->port == 22 ? ek_xstrdup(p->host) : ek_xasprintf("[%s]:%d", p->host, p->port);
        if (libssh2_knownhost_addc(kh, name, NULL, key, klen, NULL, 0, typemask, NULL) != 0 ||
            libssh2_knownhost_writefile(kh, p->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
            err = ek_err_new(EK_E_IO, "could not write the known_hosts file \"%s\": %s",
                             p->known_hosts, ek_ssh_errmsg(s));
        else
            chmod(p->known_hosts, 0600);
    }
    libssh2_knownhost_free(kh);
    return err;
}

/* ---- login -------------------------------------------------------------------------- */

/* An OpenSSH/PEM private key that holds an RSA key (libssh2 1.10 signs with
 * SHA-1, which OpenSSH 8.8 and later refuse). */
static bool key_is_rsa(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    bool rsa = strstr(buf, "BEGIN RSA PRIVATE KEY") != NULL;
    char *b = strstr(buf, "-----BEGIN OPENSSH PRIVATE KEY-----");
    if (!rsa && b) {
        b += 35;
        char *e = strstr(b, "-----END");
        if (e)
            *e = 0;
        unsigned char *raw = NULL;
        size_t rlen = 0;
        ek_err_t *err = ek_base64_decode(b, &raw, &rlen);
        rsa = !err && rlen > 64 && memmem(raw, EK_MIN(rlen, (size_t)128), "ssh-rsa", 7);
        ek_err_free(err);
        if (raw)
            explicit_bzero(raw, rlen);
        free(raw);
    }
    explicit_bzero(buf, sizeof(buf));
    return rsa;
}

static ek_err_t *login(const ek_ssh_peer_t *p, LIBSSH2_SESSION *s)
{
    const char *kn = p->key_name ? p->key_name : p->key_file;
    int rc = libssh2_userauth_publickey_fromfile(s, p->user, NULL, p->key_file, NULL);
    if (rc == 0)
        return NULL;
    if (rc == LIBSSH2_ERROR_FILE)
        return ek_err_new(EK_E_INVALID,
                          "the SSH private key %s cannot be used (%s): give an unencrypted "
                          "OpenSSH ed25519 or ECDSA key",
                          kn, ek_ssh_errmsg(s));
    return ek_err_new(EK_E_AUTH,
                      "authentication failed: %s refused the key of %s for user '%s' (%s): put "
                      "its public key in ~%s/.ssh/authorized_keys on the host%s",
                      p->host, kn, p->user, ek_ssh_errmsg(s), p->user,
                      key_is_rsa(p->key_file) ? "; this is an RSA key, which libssh2 signs with "
                                                "SHA-1 that current OpenSSH refuses: use an "
                                                "ed25519 key"
                                              : "");
}

/* ---- sessions ----------------------------------------------------------------------- */

ek_err_t *ek_ssh_open(const ek_ssh_peer_t *p, int *fd_out, LIBSSH2_SESSION **out)
{
    pthread_once(&once, global_init);
    int fd = -1;
    ek_err_t *err = tcp_connect(p, &fd);
    if (err)
        return err;
    LIBSSH2_SESSION *s = libssh2_session_init();
    if (!s) {
        close(fd);
        return ek_err_new(EK_E_INTERNAL, "libssh2: cannot create a session");
    }
    libssh2_session_set_blocking(s, 1);
    libssh2_session_set_timeout(s, p->timeout_ms);
    if (p->bulk) {
        /* the fastest of what libssh2 1.10 and OpenSSH share, on AES-NI CPUs */
        libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_CS, "aes128-ctr,aes256-ctr");
        libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_SC, "aes128-ctr,aes256-ctr");
        libssh2_session_method_pref(s, LIBSSH2_METHOD_MAC_CS, "hmac-sha1,hmac-sha2-256");
        libssh2_session_method_pref(s, LIBSSH2_METHOD_MAC_SC, "hmac-sha1,hmac-sha2-256");
    }
    if (libssh2_session_handshake(s, fd) != 0)
        err = ek_err_new(EK_E_UNAVAILABLE,
                         "SSH handshake with %s port %d failed: %s (is an SSH server listening "
                         "on that port?)",
                         p->host, p->port, ek_ssh_errmsg(s));
    if (!err)
        err = check_host_key(p, s);
    if (!err)
        err = login(p, s);
    if (err) {
        ek_ssh_close(s, fd, "bye");
        return err;
    }
    *fd_out = fd;
    *out = s;
    return NULL;
}

void ek_ssh_close(LIBSSH2_SESSION *s, int fd, const char *why)
{
    if (s) {
        libssh2_session_set_blocking(s, 1);
        libssh2_session_set_timeout(s, 2000);
        libssh2_session_disconnect(s, why ? why : "done");
        libssh2_session_free(s);
    }
    if (fd >= 0)
        close(fd);
}
