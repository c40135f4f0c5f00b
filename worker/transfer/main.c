/* main.c - ekman-transfer: sends one local disk image (or NBD export) to an
 * ekman-writer over HTTPS with mutual TLS, over SSH, or through a local
 * command, or to ovirt-imageio image transfers, with every option of the engine; prints a JSON
 * summary. Used by the benchmark and the tests, and by hand. It also generates the per-transfer
 * certificates (--gen-pki). Defaults come from [worker] in ekman.conf: transfer_connections,
 * compression_level, bandwidth_limit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "common/strbuf.h"
#include "proto/dataplane.h"
#include "worker/transfer/connect.h"
#include "worker/transfer/engine.h"
#include "worker/transfer/imageio.h"
#include "worker/transfer/pki.h"
#include "worker/transfer/tls.h"

static const ek_program_info_t info = {
    .name = "ekman-transfer",
    .config_optional = true,
    .summary = "Sends a disk image to an ekman-writer (HTTPS with mutual TLS, SSH, or a command).",
    .usage =
        "Source and target:\n"
        "  --source SRC          image file, block device, or nbd://... / nbd+unix://... URI\n"
        "  --target PATH         disk path on the writer, or serial:S (a disk by its serial)\n"
        "  --create              create the target file, or grow it, to the source's size\n"
        "  --disk-name NAME      name in messages and the state (default: target's basename)\n"
        "  --hash-map FILE       incremental without CBT: hashes of the last sync (file source)\n"
        "  --dirty-bitmap CTX    incremental from an NBD dirty bitmap (qemu:dirty-bitmap:...)\n"
        "Transport (one of):\n"
        "  --https HOST:PORT     with --ca, --cert, --key (see --gen-pki); --server-name NAME\n"
        "  --ssh USER@HOST[:PORT] with --ssh-key, --ssh-known-hosts, --ssh-command CMD\n"
        "  --exec CMD            a local command speaking the protocol on stdin/stdout\n"
        "  --imageio FILE        ovirt-imageio image transfers: FILE holds the connection\n"
        "                        info (worker/transfer/imageio.h); --target imageio:ID\n"
        "Engine:\n"
        "  --connections N       parallel connections (default: config, else CPUs, 2 to 8)\n"
        "  --level L             zstd level, 0 = no compression (default: config)\n"
        "  --compress MODE       auto (when the network is the limit), always, off\n"
        "  --bandwidth MIB       limit in MiB/s (default: config; 0 none)\n"
        "  --block-size KIB      unit of reading and verification (default 1024)\n"
        "  --window N            requests in flight per connection (default 64)\n"
        "  --verify MODE         sent (default), full, off\n"
        "  --retries N           reconnections and re-sends (default 5)\n"
        "  --wait-writer SEC     before the first open, retry an unreachable writer\n"
        "                        this long (a VM that has its address before the\n"
        "                        writer listens; default 120)\n"
        "  --state FILE          resume state: read if it exists, written as the copy goes\n"
        "  --state-every MIB     flush and save the state this often (default 256)\n"
        "  --timeout SEC         network timeout (default 120)\n"
        "  --progress            log progress every second\n"
        "  --stats FILE          write the JSON summary there instead of stdout\n"
        "Other:\n"
        "  --gen-pki DIR         write a per-transfer CA, server and client certificates, exit\n"
        "  --san NAME            extra server name or IP for --gen-pki (repeatable)\n",
};

enum {
    O_SOURCE = 256,
    O_TARGET,
    O_CREATE,
    O_DISK,
    O_HASHMAP,
    O_BITMAP,
    O_HTTPS,
    O_CA,
    O_CERT,
    O_KEY,
    O_SNAME,
    O_SSH,
    O_SSHKEY,
    O_SSHKH,
    O_SSHCMD,
    O_EXEC,
    O_IMAGEIO,
    O_CONN,
    O_LEVEL,
    O_COMPRESS,
    O_BW,
    O_BS,
    O_WINDOW,
    O_VERIFY,
    O_RETRIES,
    O_WAIT_WRITER,
    O_STATE,
    O_STATE_EVERY,
    O_TIMEOUT,
    O_PROGRESS,
    O_STATS,
    O_GENPKI,
    O_SAN,
    O_CORRUPT,
};

static ek_err_t *save_state_file(void *opaque, const char *json)
{
    const char *path = opaque;
    _cleanup_free_ char *tmp = ek_xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ek_err_errno(errno, "could not write \"%s\"", tmp);
    size_t len = strlen(json);
    bool ok = write(fd, json, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return ek_err_errno(ok ? errno : e, "could not write \"%s\"", path);
    return NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    ek_strbuf_t sb = EK_STRBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ek_strbuf_add(&sb, buf, n);
    fclose(f);
    return ek_strbuf_detach(&sb);
}

static bool stop_requested(void *opaque)
{
    return ek_stop_requested();
}

static void progress(void *opaque, const ek_xfer_stats_t *st)
{
    const char *disk = opaque;
    char done[32], total[32], rate[32], wire[32];
    uint64_t d = st->data_bytes + st->zero_bytes + st->unchanged_bytes + st->resumed_bytes;
    snprintf(done, sizeof(done), "%llu", (unsigned long long)(d >> 20));
    snprintf(total, sizeof(total), "%llu", (unsigned long long)(st->size >> 20));
    snprintf(rate, sizeof(rate), "%.0f", st->seconds > 0 ? (double)(d >> 20) / st->seconds : 0);
    snprintf(wire, sizeof(wire), "%llu", (unsigned long long)(st->wire_out >> 20));
    ek_log_kv(EK_LOG_INFO, "progress", "disk", disk, "done_mib", done, "size_mib", total,
              "mib_per_s", rate, "wire_mib", wire, NULL);
}

static void print_stats(FILE *f, const char *disk, const ek_xfer_stats_t *st, const ek_err_t *err)
{
    json_object *o = json_object_new_object();
#define I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
    json_object_object_add(o, "disk", json_object_new_string(disk));
    json_object_object_add(o, "complete", json_object_new_boolean(st->complete && !err));
    I("size", st->size);
    json_object_object_add(o, "seconds", json_object_new_double(st->seconds));
    I("read_bytes", st->read_bytes);
    I("data_bytes", st->data_bytes);
    I("payload_bytes", st->payload_bytes);
    I("zero_bytes", st->zero_bytes);
    I("skipped_zero_bytes", st->skipped_zero_bytes);
    I("unchanged_bytes", st->unchanged_bytes);
    I("resumed_bytes", st->resumed_bytes);
    I("resent_bytes", st->resent_bytes);
    I("wire_out", st->wire_out);
    I("wire_in", st->wire_in);
    I("frames", st->frames);
    I("compressed_frames", st->compressed_frames);
    I("checksum_errors", st->checksum_errors);
    I("reconnects", st->reconnects);
    I("verified_blocks", st->verified_blocks);
    I("verify_mismatches", st->verify_mismatches);
    json_object_object_add(o, "verify_seconds", json_object_new_double(st->verify_seconds));
    I("connections", st->connections);
#undef I
    if (err)
        json_object_object_add(o, "error", json_object_new_string(err->message));
    char *s = ek_json_dump(o, false);
    fprintf(f, "%s\n", s);
    free(s);
    json_object_put(o);
}

/* "a:b" -> host a, port b; "[v6]:p" too. */
static bool split_host_port(const char *s, const char *defport, char **host, char **port)
{
    const char *colon = strrchr(s, ':');
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            return false;
        *host = ek_xstrndup(s + 1, (size_t)(rb - s - 1));
        *port = ek_xstrdup(rb[1] == ':' ? rb + 2 : defport);
    } else if (colon) {
        *host = ek_xstrndup(s, (size_t)(colon - s));
        *port = ek_xstrdup(colon + 1);
    } else {
        *host = ek_xstrdup(s);
        *port = ek_xstrdup(defport);
    }
    return **host && **port;
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    static const struct option longopts[] = {
        {"source", 1, NULL, O_SOURCE},
        {"target", 1, NULL, O_TARGET},
        {"create", 0, NULL, O_CREATE},
        {"disk-name", 1, NULL, O_DISK},
        {"hash-map", 1, NULL, O_HASHMAP},
        {"dirty-bitmap", 1, NULL, O_BITMAP},
        {"https", 1, NULL, O_HTTPS},
        {"ca", 1, NULL, O_CA},
        {"cert", 1, NULL, O_CERT},
        {"key", 1, NULL, O_KEY},
        {"server-name", 1, NULL, O_SNAME},
        {"ssh", 1, NULL, O_SSH},
        {"ssh-key", 1, NULL, O_SSHKEY},
        {"ssh-known-hosts", 1, NULL, O_SSHKH},
        {"ssh-command", 1, NULL, O_SSHCMD},
        {"exec", 1, NULL, O_EXEC},
        {"imageio", 1, NULL, O_IMAGEIO},
        {"connections", 1, NULL, O_CONN},
        {"level", 1, NULL, O_LEVEL},
        {"compress", 1, NULL, O_COMPRESS},
        {"bandwidth", 1, NULL, O_BW},
        {"block-size", 1, NULL, O_BS},
        {"window", 1, NULL, O_WINDOW},
        {"verify", 1, NULL, O_VERIFY},
        {"retries", 1, NULL, O_RETRIES},
        {"wait-writer", 1, NULL, O_WAIT_WRITER},
        {"state", 1, NULL, O_STATE},
        {"state-every", 1, NULL, O_STATE_EVERY},
        {"timeout", 1, NULL, O_TIMEOUT},
        {"progress", 0, NULL, O_PROGRESS},
        {"stats", 1, NULL, O_STATS},
        {"gen-pki", 1, NULL, O_GENPKI},
        {"san", 1, NULL, O_SAN},
        {"test-corrupt-frame", 1, NULL, O_CORRUPT},
        {NULL, 0, NULL, 0},
    };
    const char *source = NULL, *target = NULL, *disk = NULL, *hash_map = NULL, *bitmap = NULL;
    const char *https = NULL, *ca = NULL, *cert = NULL, *key = NULL, *sname = EK_PKI_SERVER_NAME;
    const char *ssh = NULL, *ssh_key = NULL, *ssh_kh = NULL, *ssh_cmd = NULL, *exec_cmd = NULL;
    const char *imageio = NULL;
    const char *state_path = NULL, *stats_path = NULL, *gen_pki = NULL;
    _cleanup_free_ char *tcopy = NULL, *host = NULL, *port = NULL, *user = NULL, *resume = NULL,
                        *default_cmd = NULL;
    const char *sans[17] = {0};
    size_t nsans = 0;
    bool show_progress = false;
    int timeout_s = 120;
    ek_xfer_params_t p = {0};
    p.connections = (unsigned)ek_config_get_int(cfg, "worker", "transfer_connections");
    p.level = (int)ek_config_get_int(cfg, "worker", "compression_level");
    p.bandwidth = (uint64_t)ek_config_get_int(cfg, "worker", "bandwidth_limit") << 20;
    code = 2;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_SOURCE:
            source = optarg;
            break;
        case O_TARGET:
            target = optarg;
            break;
        case O_CREATE:
            p.open_flags = EK_DP_OPEN_CREATE | EK_DP_OPEN_RESIZE;
            break;
        case O_DISK:
            disk = optarg;
            break;
        case O_HASHMAP:
            hash_map = optarg;
            break;
        case O_BITMAP:
            bitmap = optarg;
            break;
        case O_HTTPS:
            https = optarg;
            break;
        case O_CA:
            ca = optarg;
            break;
        case O_CERT:
            cert = optarg;
            break;
        case O_KEY:
            key = optarg;
            break;
        case O_SNAME:
            sname = *optarg ? optarg : NULL;
            break;
        case O_SSH:
            ssh = optarg;
            break;
        case O_IMAGEIO:
            imageio = optarg;
            break;
        case O_SSHKEY:
            ssh_key = optarg;
            break;
        case O_SSHKH:
            ssh_kh = optarg;
            break;
        case O_SSHCMD:
            ssh_cmd = optarg;
            break;
        case O_EXEC:
            exec_cmd = optarg;
            break;
        case O_CONN:
            p.connections = (unsigned)atoi(optarg);
            break;
        case O_LEVEL:
            p.level = atoi(optarg);
            break;
        case O_COMPRESS:
            if (strcmp(optarg, "auto") == 0)
                p.compress = EK_COMPRESS_AUTO;
            else if (strcmp(optarg, "always") == 0)
                p.compress = EK_COMPRESS_ALWAYS;
            else if (strcmp(optarg, "off") == 0)
                p.compress = EK_COMPRESS_OFF;
            else {
                fprintf(stderr, "%s: --compress takes auto, always or off\n", info.name);
                goto out;
            }
            break;
        case O_BW:
            p.bandwidth = (uint64_t)(atof(optarg) * 1048576.0);
            break;
        case O_BS:
            p.block_size = (uint32_t)atoi(optarg) * 1024u;
            break;
        case O_WINDOW:
            p.window = (unsigned)atoi(optarg);
            break;
        case O_VERIFY:
            if (strcmp(optarg, "sent") == 0)
                p.verify = EK_VERIFY_SENT;
            else if (strcmp(optarg, "full") == 0)
                p.verify = EK_VERIFY_FULL;
            else if (strcmp(optarg, "off") == 0)
                p.verify = EK_VERIFY_OFF;
            else {
                fprintf(stderr, "%s: --verify takes sent, full or off\n", info.name);
                goto out;
            }
            break;
        case O_RETRIES:
            p.retries = (unsigned)atoi(optarg);
            break;
        case O_WAIT_WRITER: {
            char *end;
            double sec = strtod(optarg, &end);
            if (*end || end == optarg || sec < 0.001 || sec > 86400) {
                fprintf(stderr, "%s: --wait-writer takes seconds (0.001 to 86400), not '%s'\n",
                        info.name, optarg);
                goto out;
            }
            p.first_open_wait_ms = (int)(sec * 1000);
            break;
        }
        case O_STATE:
            state_path = optarg;
            break;
        case O_STATE_EVERY:
            p.state_every_bytes = (uint64_t)(atof(optarg) * 1048576.0);
            break;
        case O_TIMEOUT:
            timeout_s = atoi(optarg);
            break;
        case O_PROGRESS:
            show_progress = true;
            break;
        case O_STATS:
            stats_path = optarg;
            break;
        case O_GENPKI:
            gen_pki = optarg;
            break;
        case O_SAN:
            if (nsans < EK_ARRAY_SIZE(sans) - 1)
                sans[nsans++] = optarg;
            break;
        case O_CORRUPT:
            p.corrupt_frame = (unsigned)atoi(optarg);
            break;
        default:
            fprintf(stderr, "%s: unknown or incomplete option '%s' (see --help)\n", info.name,
                    argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", info.name, argv[optind]);
        goto out;
    }
    if (gen_pki) {
        ek_err_t *err = NULL;
        if (mkdir(gen_pki, 0700) != 0 && errno != EEXIST)
            err = ek_err_errno(errno, "could not create \"%s\"", gen_pki);
        if (!err)
            err = ek_pki_generate(gen_pki, sans, 0);
        code = err ? 1 : 0;
        if (err) {
            ek_log_err(err, "cannot generate certificates");
            ek_err_free(err);
        }
        goto out;
    }
    if (!source || !target) {
        fprintf(stderr, "%s: --source and --target are required (see --help)\n", info.name);
        goto out;
    }
    if (!!https + !!ssh + !!exec_cmd + !!imageio != 1) {
        fprintf(stderr, "%s: give one of --https, --ssh, --exec or --imageio\n", info.name);
        goto out;
    }
    if (https && (!ca || !cert || !key)) {
        fprintf(stderr, "%s: --https needs --ca, --cert and --key\n", info.name);
        goto out;
    }
    if (ssh && (!ssh_key || !ssh_kh)) {
        fprintf(stderr, "%s: --ssh needs --ssh-key and --ssh-known-hosts\n", info.name);
        goto out;
    }
    /* "serial:S" names a disk the writer resolves by its serial (writer.h) */
    if (strlen(target) > EK_DP_MAX_PATH ||
        (target[0] != '/' && strncmp(target, "serial:", strlen("serial:")) != 0 &&
         !(imageio && strncmp(target, "imageio:", strlen("imageio:")) == 0))) {
        fprintf(stderr, "%s: --target must be an absolute path, serial:S or imageio:ID\n",
                info.name);
        goto out;
    }
    ek_signals_install();
    code = 1;

    tcopy = ek_xstrdup(target);
    if (!disk)
        disk = basename(tcopy);
    ek_https_target_t ht = {0};
    ek_ssh_target_t st = {0};
    /* --exec is the operator's own command line (never a message's): a shell runs it */
    char *exec_argv[] = {"/bin/sh", "-c", (char *)exec_cmd, NULL};
    ek_exec_target_t et = {.argv = exec_argv};
    ek_imageio_target_t it = {0};
    SSL_CTX *ctx = NULL;
    ek_err_t *err = NULL;
    if (https) {
        if (!split_host_port(https, "5566", &host, &port)) {
            fprintf(stderr, "%s: --https '%s': use HOST:PORT\n", info.name, https);
            code = 2;
            goto out;
        }
        if ((err = ek_tls_client_ctx_new(cert, key, ca, &ctx)))
            goto fail;
        ht = (ek_https_target_t){host, port, ctx, sname, timeout_s * 1000};
        p.connect = ek_https_connect;
        p.connect_target = &ht;
    } else if (ssh) {
        const char *at = strchr(ssh, '@');
        user = at ? ek_xstrndup(ssh, (size_t)(at - ssh)) : ek_xstrdup("root");
        if (!split_host_port(at ? at + 1 : ssh, "22", &host, &port)) {
            fprintf(stderr, "%s: --ssh '%s': use USER@HOST[:PORT]\n", info.name, ssh);
            code = 2;
            goto out;
        }
        _cleanup_free_ char *tdir = ek_xstrdup(target);
        default_cmd = ek_xasprintf("ekman-writer --stdio --allow-path '%s'", dirname(tdir));
        st = (ek_ssh_target_t){
            host, port, user, ssh_key, ssh_kh, ssh_cmd ? ssh_cmd : default_cmd, timeout_s * 1000};
        p.connect = ek_ssh_connect;
        p.connect_target = &st;
    } else if (imageio) {
        _cleanup_free_ char *text = read_file(imageio);
        json_object *doc = NULL;
        if (!text)
            err = ek_err_errno(errno, "could not read \"%s\"", imageio);
        else if (!(err = ek_json_parse(text, strlen(text), &doc)))
            err = ek_imageio_target_parse(doc, imageio, &it);
        json_object_put(doc);
        if (text)
            explicit_bzero(text, strlen(text));
        if (err)
            goto fail;
        it.timeout_ms = timeout_s * 1000;
        p.connect = ek_imageio_connect;
        p.connect_target = &it;
    } else {
        p.connect = ek_exec_connect;
        p.connect_target = &et;
    }

    const ek_reader_ops_t *ops = strncmp(source, "nbd", 3) == 0 ? &ek_reader_nbd : &ek_reader_file;
    ek_reader_params_t rp = {.hash_map = hash_map, .dirty_bitmap = bitmap};
    void *reader = NULL;
    uint64_t size = 0;
    if ((err = ops->open(source, &rp, &reader, &size)))
        goto fail;
    if (state_path) {
        resume = read_file(state_path);
        if (!resume && errno != ENOENT) {
            err = ek_err_errno(errno, "could not read state \"%s\"", state_path);
            ops->close(reader);
            goto fail;
        }
        p.save_state = save_state_file;
        p.state_opaque = (void *)state_path;
    }
    p.disk_name = disk;
    p.target_path = target;
    p.should_stop = stop_requested;
    p.resume = resume;
    if (show_progress) {
        p.progress = progress;
        p.progress_opaque = (void *)disk;
    }
    ek_xfer_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    err = ek_xfer_run(ops, reader, size, &p, &stats);
    ops->close(reader);
    FILE *out = stdout;
    if (stats_path && !(out = fopen(stats_path, "w"))) {
        ek_error("could not write \"%s\": %s", stats_path, strerror(errno));
        out = stdout;
    }
    print_stats(out, disk, &stats, err);
    if (out != stdout)
        fclose(out);
    code = err ? 1 : 0;
fail:
    if (err) {
        ek_log_err(err, "transfer failed");
        ek_err_free(err);
    }
    SSL_CTX_free(ctx);
    ek_imageio_target_clear(&it);
out:
    ek_config_free(cfg);
    ek_log_shutdown();
    return code;
}
