/* test_writer_pki.c - the writer's per-transfer certificates (worker/
 * transfer/pki.c, issue #17): the subjectAltName holds exactly the names
 * given, each as one entry, and a name that tries to add entries of its own
 * (",DNS:...", ", IP:...") or is no host name is refused; certificates live
 * hours, not days. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "common/error.h"
#include "common/log.h"
#include "worker/transfer/pki.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ekw-pki.XXXXXX");
    assert_non_null(mkdtemp(dir));
    ek_log_set_level(EK_LOG_ERROR);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static X509 *load(const char *file)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

/* The server certificate's subjectAltName as "DNS:a IP:1.2.3.4 ..." */
static void san_text(char *out, size_t len)
{
    X509 *x = load("server.pem");
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    out[0] = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char item[300];
        if (g->type == GEN_DNS) {
            snprintf(item, sizeof(item), "%sDNS:%.*s", i ? " " : "",
                     ASN1_STRING_length(g->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN] = "?";
            int n = ASN1_STRING_length(g->d.iPAddress);
            inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), ip,
                      sizeof(ip));
            snprintf(item, sizeof(item), "%sIP:%s", i ? " " : "", ip);
        } else {
            snprintf(item, sizeof(item), "%sother:%d", i ? " " : "", g->type);
        }
        strncat(out, item, len - strlen(out) - 1);
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
}

static void test_san_exact(void **state)
{
    (void)state;
    const char *names[] = {"10.0.0.5", "fd00::7", "writer-1.example.org", NULL};
    ek_err_t *err = ek_pki_generate(dir, names, 0);
    assert_null(err);
    char san[1024];
    san_text(san, sizeof(san));
    assert_string_equal(san, "DNS:ekman-writer IP:10.0.0.5 IP:fd00::7 DNS:writer-1.example.org");
}

/* Each of these, made into configuration text, would add or change
 * entries; as names they are refused and no certificate is written. */
static void test_san_injection_refused(void **state)
{
    (void)state;
    const char *hostile[] = {
        "x,DNS:evil.example",
        "writer, IP:10.6.6.6",
        "DNS:evil.example",
        "critical,DNS:a",
        "email:root@example.org",
        "a b",
        "a\nb",
        "@section",
        "-leading.example",
        "",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/h%zu", dir, i);
        assert_int_equal(mkdir(sub, 0700), 0);
        const char *names[] = {"10.0.0.5", hostile[i], NULL};
        ek_err_t *err = ek_pki_generate(sub, names, 0);
        assert_non_null(err);
        assert_int_equal(err->code, EK_E_INVALID);
        assert_non_null(strstr(err->message, "neither an IP address nor a DNS name"));
        ek_err_free(err);
        char path[192];
        snprintf(path, sizeof(path), "%s/server.pem", sub);
        assert_int_equal(access(path, F_OK), -1);
    }
}

/* Seconds from now to the certificate's notAfter. */
static long seconds_left(X509 *x)
{
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    return (long)days * 86400 + secs;
}

static void test_validity_hours(void **state)
{
    (void)state;
    assert_null(ek_pki_generate(dir, NULL, 0)); /* the default */
    const char *files[] = {"ca.pem", "server.pem", "client.pem"};
    for (size_t i = 0; i < 3; i++) {
        X509 *x = load(files[i]);
        long left = seconds_left(x);
        assert_true(left <= EK_PKI_VALID_HOURS * 3600L);
        assert_true(left > EK_PKI_VALID_HOURS * 3600L - 300);
        X509_free(x);
    }
    assert_true(EK_PKI_VALID_HOURS <= 48);

    assert_null(ek_pki_generate(dir, NULL, 3));
    X509 *x = load("client.pem");
    long left = seconds_left(x);
    assert_true(left <= 3 * 3600L && left > 3 * 3600L - 300);
    X509_free(x);

    ek_err_t *err = ek_pki_generate(dir, NULL, 30 * 24);
    assert_non_null(err);
    assert_int_equal(err->code, EK_E_INVALID);
    ek_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_san_exact),
        cmocka_unit_test(test_san_injection_refused),
        cmocka_unit_test(test_validity_hours),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
