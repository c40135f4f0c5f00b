/* login.c - the password check of every login (see login.h). */
#include "conductor/login.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/backoff.h"
#include "common/mem.h"
#include "common/secret.h"

struct login {
    ek_account_t *acc; /* NULL: no such (enabled) user */
    char *password;
    char user_key[EK_LOGIN_MAX_USERNAME + 8], addr_key[72];
    bool ok;
    ek_login_ok_fn on_ok;
    void *ctx;
    void (*ctx_free)(void *ctx);
};

static void login_release(void *arg)
{
    struct login *l = arg;
    ek_account_free(l->acc);
    ek_free_secret(l->password);
    if (l->ctx_free)
        l->ctx_free(l->ctx);
    free(l);
}

static void login_work(void *arg)
{
    struct login *l = arg;
    const char *hash = l->acc ? l->acc->password_hash : ek_password_dummy_hash();
    bool match = ek_password_verify(l->password, hash);
    l->ok = match && l->acc;
}

/* A client whose logins overflow its share of the hash pool is flooding:
 * that counts against its address like a failure. */
static void login_refused(ek_req_t *req, void *arg)
{
    struct login *l = arg;
    ek_backoff_fail(req->app->login_by_addr, l->addr_key, ek_backoff_now());
}

static void login_finish(ek_req_t *req, ek_resp_t *resp, void *arg)
{
    struct login *l = arg;
    ek_app_t *app = req->app;
    if (!l->ok) {
        int64_t now = ek_backoff_now();
        ek_backoff_fail(app->login_by_user, l->user_key, now);
        ek_backoff_fail(app->login_by_addr, l->addr_key, now);
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_AUTH, "wrong user name or password"));
    }
    ek_backoff_reset(app->login_by_user, l->user_key);
    ek_backoff_reset(app->login_by_addr, l->addr_key);
    l->on_ok(req, resp, l->acc, l->ctx);
}

void ek_login_begin(ek_req_t *req, ek_resp_t *resp, const ek_login_spec_t *spec)
{
    struct login *l = ek_xcalloc(1, sizeof(*l));
    l->on_ok = spec->ok;
    l->ctx = spec->ctx;
    l->ctx_free = spec->ctx_free;
    if (strlen(spec->user) > EK_LOGIN_MAX_USERNAME ||
        strlen(spec->password) > EK_LOGIN_MAX_PASSWORD) {
        login_release(l);
        EK_RESP_RETURN_ERR(resp, ek_err_new(EK_E_INVALID,
                                            "the user name may have at most %d bytes and the "
                                            "password at most %d",
                                            EK_LOGIN_MAX_USERNAME, EK_LOGIN_MAX_PASSWORD));
    }
    ek_err_t *err = spec->by_id ? ek_account_find_id(req->db, spec->user, &l->acc)
                                : ek_account_find(req->db, spec->user, &l->acc);
    if (err) {
        login_release(l);
        EK_RESP_RETURN_ERR(resp, err);
    }
    /* one back-off per user, whether named by name or by id */
    snprintf(l->user_key, sizeof(l->user_key), "user:%s", l->acc ? l->acc->id : spec->user);
    snprintf(l->addr_key, sizeof(l->addr_key), "addr:%s", req->source);
    int64_t now = ek_backoff_now();
    unsigned wait_user = ek_backoff_wait(req->app->login_by_user, l->user_key, now);
    unsigned wait_addr = ek_backoff_wait(req->app->login_by_addr, l->addr_key, now);
    unsigned wait = wait_user > wait_addr ? wait_user : wait_addr;
    if (wait) {
        /* trying on while told to wait lengthens the address's wait */
        ek_backoff_fail(req->app->login_by_addr, l->addr_key, now);
        login_release(l);
        ek_resp_fail(resp, 429, "too many failed logins %s: try again in %u seconds",
                     wait_addr >= wait_user ? "from your address" : "for this user", wait);
        resp->retry_after = wait;
        return;
    }
    l->password = ek_xstrdup(spec->password);
    ek_resp_defer(resp, &(ek_defer_t){.work = login_work,
                                      .finish = login_finish,
                                      .release = login_release,
                                      .refused = login_refused,
                                      .arg = l});
}
