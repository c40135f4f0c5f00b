/* main.c - ekman-conductor: the REST API and owner of all state.
 *
 *   ekman-conductor [--config FILE]          serve
 *   ekman-conductor --create-user NAME --project P [--role admin|member]
 *                   [--password-file F]      add an account (password from F,
 *                                            $EKMAN_PASSWORD, or one line of stdin)
 *   ekman-conductor --rotate-encryption-key NEW_KEY_FILE
 *                                            seal every secret with a new key (rotate.h) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common/db.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/program.h"
#include "conductor/accounts.h"
#include "conductor/api.h"
#include "conductor/bus.h"
#include "engine/migrate.h"
#include "conductor/rotate.h"
#include "common/base64.h"

static const ek_program_info_t info = {
    .name = "ekman-conductor",
    .summary = "Ekman's conductor: REST API, state in PostgreSQL, task graphs over AMQP.",
    .usage = "Conductor options:\n"
             "  --create-user NAME --project PROJECT [--role admin|member] [--password-file F]\n"
             "                    create an account and exit; the password comes from F,\n"
             "                    else $EKMAN_PASSWORD, else one line of standard input\n"
             "  --rotate-encryption-key NEW_KEY_FILE\n"
             "                    seal every endpoint's connection info and every secret in\n"
             "                    task info with the key in NEW_KEY_FILE (base64 of 32 bytes,\n"
             "                    'openssl rand -base64 32'); stop the conductors first, then\n"
             "                    put the new key in their configuration and start them\n",
};

static char *read_password(const char *file)
{
    char buf[1024] = "";
    if (file) {
        FILE *f = fopen(file, "re");
        if (!f) {
            fprintf(stderr, "ekman-conductor: cannot read %s: %s\n", file, strerror(errno));
            return NULL;
        }
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        fclose(f);
    } else if (getenv("EKMAN_PASSWORD")) {
        snprintf(buf, sizeof(buf), "%s", getenv("EKMAN_PASSWORD"));
    } else if (!fgets(buf, sizeof(buf), stdin)) {
        buf[0] = '\0';
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    char *pw = ek_xstrdup(buf);
    memset(buf, 0, sizeof(buf));
    return pw;
}

struct create_user_tx {
    const char *name, *password, *project, *role;
    char *id;
};

static ek_err_t *create_user_tx(PGconn *db, void *arg)
{
    struct create_user_tx *t = arg;
    return ek_user_create(db, t->name, t->password, t->project, t->role, t->id);
}

static int create_user(ek_config_t *cfg, const char *name, const char *project, const char *role,
                       const char *password_file)
{
    char *password = read_password(password_file);
    if (!password)
        return 1;
    PGconn *db = NULL;
    int applied;
    char id[EK_UUID_STRLEN + 1];
    ek_err_t *err;
    struct create_user_tx t = {name, password, project, role, id};
    if (!(err = ek_db_connect_config(cfg, &db)) && !(err = ek_migrate(db, &applied)))
        err = ek_db_tx(db, 0, create_user_tx, &t);
    ek_free_secret(password);
    PQfinish(db);
    if (err) {
        fprintf(stderr, "ekman-conductor: cannot create user '%s': %s\n", name, err->message);
        ek_err_free(err);
        return 1;
    }
    printf("user %s created (id %s, project %s, role %s)\n", name, id, project, role);
    return 0;
}

static int rotate_key(ek_config_t *cfg, const char *file)
{
    unsigned char old_key[EK_SECRET_KEY_LEN], new_key[EK_SECRET_KEY_LEN];
    char *text = NULL;
    size_t len = 0;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    PGconn *db = NULL;
    int applied;
    ek_rotate_stats_t st;
    ek_err_t *err = ek_secret_key_load(cfg, old_key);
    if (!err && !(err = ek_file_read(file, 4096, &text, &len))) {
        text[strcspn(text, "\r\n")] = '\0';
        err = ek_base64_decode(text, &raw, &raw_len);
        if (!err && raw_len != EK_SECRET_KEY_LEN)
            err = ek_err_new(EK_E_INVALID,
                             "it holds %zu bytes, not 32 (make one with 'openssl "
                             "rand -base64 32')",
                             raw_len);
        if (!err)
            memcpy(new_key, raw, EK_SECRET_KEY_LEN);
        if (err)
            err = ek_err_prefix(err, "the new key in %s", file);
    }
    if (raw)
        memset(raw, 0, raw_len);
    free(raw);
    ek_free_secret(text);
    if (!err && !(err = ek_db_connect_config(cfg, &db)) && !(err = ek_migrate(db, &applied)))
        err = ek_rotate_encryption_key(db, old_key, new_key, &st);
    PQfinish(db);
    memset(old_key, 0, sizeof(old_key));
    memset(new_key, 0, sizeof(new_key));
    if (err) {
        fprintf(stderr,
                "ekman-conductor: the encryption key was not rotated (nothing changed): "
                "%s\n",
                err->message);
        ek_err_free(err);
        return 1;
    }
    printf("every secret is now sealed with the new key: %d endpoints, %d task infos, %d saved "
           "task states.\nNow put the new key in [DEFAULT] encryption_key (or "
           "encryption_key_file) of every conductor and start them; workers need no change.\n",
           st.endpoints, st.task_infos, st.task_states);
    return 0;
}

int main(int argc, char **argv)
{
    ek_config_t *cfg;
    int code;
    if (!ek_program_start(&info, &argc, argv, &cfg, &code))
        return code;
    const char *user = NULL, *project = NULL, *role = "member", *password_file = NULL;
    const char *rotate = NULL;
    for (int i = 1; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--create-user")             ? &user
                            : !strcmp(argv[i], "--project")               ? &project
                            : !strcmp(argv[i], "--role")                  ? &role
                            : !strcmp(argv[i], "--password-file")         ? &password_file
                            : !strcmp(argv[i], "--rotate-encryption-key") ? &rotate
                                                                          : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "%s: %s '%s' (see --help)\n", info.name,
                    slot ? "missing value for" : "unknown argument", argv[i]);
            ek_config_free(cfg);
            return 2;
        }
        *slot = argv[++i];
    }
    if (rotate) {
        code = rotate_key(cfg, rotate);
        ek_config_free(cfg);
        ek_log_shutdown();
        return code;
    }
    if (user || project) {
        if (!user || !project) {
            fprintf(stderr, "%s: --create-user needs a NAME and --project\n", info.name);
            ek_config_free(cfg);
            return 2;
        }
        code = create_user(cfg, user, project, role, password_file);
        ek_config_free(cfg);
        ek_log_shutdown();
        return code;
    }
    ek_signals_install();

    ek_app_t app = {.cfg = cfg};
    pthread_mutex_init(&app.wake_lock, NULL);
    pthread_cond_init(&app.wake, NULL);
    app.token_lifetime = (int)ek_config_get_int(cfg, "api", "token_lifetime");
    app.rpc_timeout_ms = (int)ek_config_get_int(cfg, "messaging", "rpc_timeout") * 1000;
    app.max_transfer_instances = (int)ek_config_get_int(cfg, "api", "max_transfer_instances");
    app.quorum = ek_config_get_bool(cfg, "messaging", "quorum_queues");
    if (gethostname(app.host, sizeof(app.host) - 1) != 0)
        snprintf(app.host, sizeof(app.host), "localhost");

    PGconn *db = NULL;
    ek_api_t *api = NULL;
    ek_bus_t *bus = NULL;
    int applied = 0;
    ek_err_t *err = NULL;
    if ((err = ek_secret_key_load(cfg, app.key)) || (err = ek_db_connect_config(cfg, &db)) ||
        (err = ek_migrate(db, &applied)) ||
        (err = ek_dbpool_new(cfg, (int)ek_config_get_int(cfg, "api", "threads") + 1, &app.db)) ||
        (err = ek_bus_start(&app, &bus)) || (err = ek_api_start(&app, &api))) {
        code = ek_stop_requested() ? 0 : 1;
        if (code)
            ek_log_err(err, "cannot start");
        goto out;
    }
    char *pgver = ek_db_server_version(db);
    char migrations[16];
    snprintf(migrations, sizeof(migrations), "%d", applied);
    ek_log_kv(EK_LOG_INFO, "conductor started", "api", ek_api_address(api), "database", pgver,
              "migrations_applied", migrations, "version", EKMAN_VERSION, NULL);
    free(pgver);
    PQfinish(db);
    db = NULL;
    while (!ek_stop_wait(60 * 1000))
        ;
    ek_info("stopping on signal %d", ek_stop_signal());
out:
    ek_err_free(err);
    ek_api_stop(api);
    ek_bus_stop(bus);
    ek_dbpool_free(app.db);
    PQfinish(db);
    pthread_mutex_destroy(&app.wake_lock);
    pthread_cond_destroy(&app.wake);
    memset(app.key, 0, sizeof(app.key));
    ek_config_free(cfg);
    ek_info("conductor stopped");
    ek_log_shutdown();
    return code;
}
