/* test_minion.c - boot material of temporary worker VMs (minion.c) and the
 * writer targets built from it (target.c): keys, cloud-init user-data, the
 * NoCloud drive, and a real mutual-TLS session with ekman-writer started
 * from the material. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/base64.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/process.h"
#include "worker/providers/common/minion.h"
#include "worker/transfer/target.h"

/* Runs tests/ovirt-sim/sim_cloudinit.py on the text (mode "nocloud": a
 * whole user-data document; "ovirt": initialization.custom_script, wrapped
 * as the engine does) and checks what the parsed document would do: the
 * writer's key file written, the writer started by the per-boot script. */
static void check_user_data(const ek_minion_boot_t *b, const char *text, const char *mode)
{
    _cleanup_free_ char *in = ek_xasprintf("%s/ud-%s", b->dir, mode);
    assert_null(ek_file_write(in, text, strlen(text), 0600));
    const char *argv[] = {"python3", EK_FIXTURES "/../ovirt-sim/sim_cloudinit.py", mode, in, NULL};
    char *out = NULL;
    ek_err_t *err = ek_run(argv, &out);
    if (err)
        fail_msg("%s user-data does not load: %s", mode, err->message);
    json_object *doc = NULL;
    assert_null(ek_json_parse(out, strlen(out), &doc));
    free(out);
    json_object *wf = json_object_object_get(doc, "write_files");
    assert_int_equal(json_object_array_length(wf), 4);
    json_object *f = json_object_array_get_idx(wf, 2);
    assert_string_equal(json_object_get_string(json_object_object_get(f, "path")),
                        "/etc/ekman-writer/server.key");
    unsigned char *key = NULL;
    size_t len = 0;
    assert_null(
        ek_base64_decode(json_object_get_string(json_object_object_get(f, "content")), &key, &len));
    assert_int_equal(len, strlen(b->server_key_pem));
    assert_memory_equal(key, b->server_key_pem, len);
    free(key);
    /* what the per-boot script starts */
    json_object *w = json_object_object_get(doc, "writer_argv");
    assert_non_null(w);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(w, 0)), "ekman-writer");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(w, 6)),
                        "/etc/ekman-writer/server.key");
    json_object *keys = json_object_object_get(doc, "ssh_authorized_keys");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(keys, 0)), b->client_pub);
    if (strcmp(mode, "ovirt") == 0) /* the engine's own keys are still there */
        assert_non_null(json_object_object_get(doc, "runcmd"));
    json_object_put(doc);
}

static void test_boot_material(void **state)
{
    (void)state;
    ek_minion_boot_t *b = NULL;
    assert_null(ek_minion_boot_new("ekman-minion-t1", "/tmp", NULL, &b));
    struct stat st;
    assert_int_equal(stat(b->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(access(b->client_key_path, R_OK), 0);
    assert_true(strncmp(b->client_pub, "ssh-ed25519 ", 12) == 0);
    assert_true(strncmp(b->host_pub, "ssh-ed25519 ", 12) == 0);
    assert_non_null(strstr(b->host_key_pem, "OPENSSH PRIVATE KEY"));
    assert_non_null(strstr(b->server_key_pem, "PRIVATE KEY"));
    /* the minion's host key is only in the drive, not left on the worker */
    _cleanup_free_ char *hk = ek_xasprintf("%s/ssh_host_ed25519_key", b->dir);
    assert_int_not_equal(access(hk, F_OK), 0);

    _cleanup_free_ char *ud = ek_minion_user_data(b);
    assert_true(strncmp(ud, "#cloud-config\n", 14) == 0);
    /* the user-data as cloud-init reads it (a YAML loader), whole and as
     * oVirt's engine wraps the keys (tests/ovirt-sim/sim_cloudinit.py) */
    check_user_data(b, ud, "nocloud");
    _cleanup_free_ char *keys = ek_minion_user_data_keys(b);
    assert_null(strstr(keys, "runcmd"));
    assert_null(strstr(keys, "#cloud-config"));
    check_user_data(b, keys, "ovirt");
    _cleanup_free_ char *md = ek_minion_meta_data(b);
    assert_non_null(strstr(md, "instance-id: iid-ekman-minion-t1-"));
    assert_non_null(strstr(md, "local-hostname: ekman-minion-t1"));

    _cleanup_free_ char *dir = ek_xstrdup(b->dir);
    ek_minion_boot_free(b);
    assert_int_not_equal(access(dir, F_OK), 0);
}

static void test_nocloud_iso(void **state)
{
    (void)state;
    ek_minion_boot_t *b = NULL;
    assert_null(ek_minion_boot_new("ekman-minion-t2", "/tmp", NULL, &b));
    _cleanup_free_ char *iso = ek_xasprintf("%s/seed.iso", b->dir);
    assert_null(ek_minion_nocloud_iso(b, iso));
    char *out = NULL;
    const char *info[] = {"isoinfo", "-d", "-i", iso, NULL};
    assert_null(ek_run(info, &out));
    assert_non_null(strstr(out, "Volume id: cidata"));
    free(out);
    const char *list[] = {"isoinfo", "-R", "-f", "-i", iso, NULL};
    assert_null(ek_run(list, &out));
    assert_non_null(strstr(out, "/user-data"));
    assert_non_null(strstr(out, "/meta-data"));
    assert_non_null(strstr(out, "/ekman/writer-key.pem"));
    assert_non_null(strstr(out, "/ekman/ssh_host_ed25519_key"));
    free(out);
    ek_minion_boot_free(b);
}

static void test_target_errors(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *says;
    } cases[] = {
        {"{}", "names no writer"},
        {"{\"kind\": \"ftp\"}", "'ftp' is not https, ssh, exec or imageio"},
        {"{\"kind\": \"https\", \"host\": \"h\"}", "ca_pem"},
        {"{\"kind\": \"https\", \"host\": \"h\", \"port\": 70000}", "is not a TCP port"},
        {"{\"kind\": \"ssh\", \"host\": \"h\", \"private_key\": \"eA==\"}", "known_hosts"},
        {"{\"kind\": \"ssh\", \"host\": \"h\", \"private_key\": \"*\", \"known_hosts\": \"x\"}",
         "not base64"},
        {"{\"kind\": \"exec\"}", "allow_path"},
        {"{\"kind\": \"exec\", \"allow_path\": \"/tmp\", \"command\": \"touch /tmp/x\"}",
         "command"},
        {"{\"kind\": \"imageio\"}", "disks"},
        {"{\"kind\": \"imageio\", \"disks\": []}", "no image transfer"},
        {"{\"kind\": \"imageio\", \"disks\": [{\"path\": \"serial:x\", \"ticket_url\": "
         "\"https://h/images/t\", \"size\": 1}]}",
         "is not imageio:<transfer id>"},
        {"{\"kind\": \"imageio\", \"disks\": [{\"path\": \"imageio:t1\", \"ticket_url\": "
         "\"file:///etc/passwd\", \"size\": 1}]}",
         "ticket_url is not an http(s) URL"},
        {"{\"kind\": \"imageio\", \"disks\": [{\"path\": \"imageio:t1\", \"ticket_url\": "
         "\"https://h/images/t\"}]}",
         "size"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *doc = NULL;
        assert_null(ek_json_parse(cases[i].doc, strlen(cases[i].doc), &doc));
        ek_writer_target_t *t = NULL;
        ek_err_t *err = ek_writer_target_open(doc, "/tmp", &t);
        assert_non_null(err);
        if (!strstr(err->message, cases[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].doc, err->message, cases[i].says);
        ek_err_free(err);
        json_object_put(doc);
    }
}

static void test_ssh_target(void **state)
{
    (void)state;
    ek_minion_boot_t *b = NULL;
    assert_null(ek_minion_boot_new("ekman-minion-t3", "/tmp", NULL, &b));
    json_object *ci = ek_minion_connection_info(b, "ssh", "10.0.0.5", 2222);
    assert_non_null(ci);
    const char *kh = json_object_get_string(json_object_object_get(ci, "known_hosts"));
    assert_true(strncmp(kh, "[10.0.0.5]:2222 ssh-ed25519 ", 28) == 0);
    ek_writer_target_t *t = NULL;
    assert_null(ek_writer_target_open(ci, "/tmp", &t));
    assert_string_equal(ek_writer_target_describe(t), "ssh://root@10.0.0.5:2222");
    ek_ssh_target_t *st = ek_writer_target_connect_arg(t);
    _cleanup_free_ char *key = NULL, *orig = NULL;
    assert_null(ek_file_read(st->key_file, 65536, &key, NULL));
    assert_null(ek_file_read(b->client_key_path, 65536, &orig, NULL));
    assert_string_equal(key, orig);
    _cleanup_free_ char *key_file = ek_xstrdup(st->key_file);
    ek_writer_target_free(t);
    assert_int_not_equal(access(key_file, F_OK), 0); /* removed with the target */
    json_object_put(ci);
    ek_minion_boot_free(b);
}

/* ekman-writer with the minion's server side; the engine's side from the
 * connection info: the mutual-TLS handshake must succeed. */
static void test_https_session(void **state)
{
    (void)state;
    ek_minion_boot_t *b = NULL;
    assert_null(ek_minion_boot_new("ekman-minion-t4", "/tmp", NULL, &b));
    _cleanup_free_ char *cert = ek_xasprintf("%s/server.pem", b->dir),
                        *key = ek_xasprintf("%s/server.key", b->dir),
                        *ca = ek_xasprintf("%s/ca.pem", b->dir),
                        *port_file = ek_xasprintf("%s/port", b->dir);
    assert_null(ek_file_write(cert, b->server_cert_pem, strlen(b->server_cert_pem), 0600));
    assert_null(ek_file_write(key, b->server_key_pem, strlen(b->server_key_pem), 0600));
    assert_null(ek_file_write(ca, b->ca_pem, strlen(b->ca_pem), 0600));
    pid_t pid = fork();
    if (pid == 0) {
        execl(EK_WRITER, EK_WRITER, "--listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--ca",
              ca, "--allow-path", b->dir, "--port-file", port_file, "--log-level", "warning",
              (char *)NULL);
        _exit(127);
    }
    char *port = NULL;
    for (int i = 0; i < 100 && !port; i++) {
        size_t n = 0;
        ek_err_t *err = ek_file_read(port_file, 64, &port, &n);
        if (err || n == 0) {
            ek_err_free(err);
            free(port);
            port = NULL;
            usleep(100000);
        }
    }
    assert_non_null(port);
    json_object *ci = ek_minion_connection_info(b, "https", "127.0.0.1", atoi(port));
    ek_writer_target_t *t = NULL;
    assert_null(ek_writer_target_open(ci, "/tmp", &t));
    ek_stream_t *s = NULL;
    ek_err_t *err = ek_writer_target_connect_fn(t)(ek_writer_target_connect_arg(t), &s);
    if (err)
        fail_msg("connect: %s", err->message);
    ek_stream_free(s);
    ek_writer_target_free(t);
    json_object_put(ci);
    free(port);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    ek_minion_boot_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_material), cmocka_unit_test(test_nocloud_iso),
        cmocka_unit_test(test_target_errors), cmocka_unit_test(test_ssh_target),
        cmocka_unit_test(test_https_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
