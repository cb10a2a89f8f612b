/*
 * The C API's error paths and cancellation, against real Dovecot, meant to run under
 * valgrind (--leak-check=full --error-exitcode=1): every object the library hands out is
 * freed here, so any leak is the library's.
 *
 *   error_paths HOST SRC_IMAPS_PORT SRC_USER SRC_PASSWORD SRC_CA_FILE
 *               DST_IMAPS_PORT DST_USER DST_PASSWORD DST_CA_FILE WORK_DIR SEEDED_MESSAGES
 *               TASK_SETTINGS_FILE TASK_CSV_FILE DST_MASTER_PASSWORD
 *
 * The source user's INBOX must hold SEEDED_MESSAGES messages and the destination user must
 * be empty. For the batch task: TASK_SETTINGS_FILE holds task settings whose destination logs
 * in as the master user, TASK_CSV_FILE two accounts: the first with its password, the second
 * without. scripts/bindings-test starts both servers (imapmig-test-dovecot) and runs this.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapmig.h"

static int failures = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

#define CHECK_STATUS(got, want)                                                   \
    CHECK((got) == (want), "got %s, want %s", imapmig_status_name((int)(got)), \
          imapmig_status_name((int)(want)))

static const char *host, *src_port, *src_user, *src_password, *src_ca, *dst_port, *dst_user,
    *dst_password, *dst_ca, *work_dir;
static long seeded;
static const char *task_settings_file, *task_csv_file, *dst_master_password;

/* A configuration for this pair; `extra` is more JSON fields (with a leading comma) or "". */
static char *config(const char *password, const char *state_name, const char *extra) {
    size_t n = 4096;
    char *buf = malloc(n);
    snprintf(buf, n,
             "{\"source\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\",\"password\":\"%s\","
             "\"ca_file\":\"%s\"},"
             "\"destination\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\",\"password\":\"%s\","
             "\"ca_file\":\"%s\"},"
             "\"state\":\"%s/%s\"%s}",
             host, src_port, src_user, password, src_ca, host, dst_port, dst_user,
             dst_password, dst_ca, work_dir, state_name, extra);
    return buf;
}

static void test_status_strings(void) {
    for (int s = 0; s < 30; s++) {
        CHECK(imapmig_status_name(s) != NULL, "name of %d", s);
        CHECK(imapmig_status_description(s) != NULL, "description of %d", s);
    }
    CHECK(strcmp(imapmig_status_name(IMAPMIG_STATUS_TLS), "IMAPMIG_STATUS_TLS") == 0, "tls");
    CHECK(strcmp(imapmig_status_name(-7), "IMAPMIG_STATUS_UNKNOWN") == 0, "unknown");
    CHECK(imapmig_version() != NULL && imapmig_version()[0] != '\0', "version");
}

static void test_null_arguments(void) {
    imapmig_error *err = NULL;
    imapmig_migration *m = (imapmig_migration *)&err; /* must be overwritten with NULL */
    char *out = (char *)&err;

    CHECK_STATUS(imapmig_migration_new(NULL, &m, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL, "out handle reset to NULL");
    CHECK(err != NULL, "an error object");
    CHECK_STATUS(imapmig_error_status(err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(imapmig_error_message(err), "json_config") != NULL, "%s",
          imapmig_error_message(err));
    imapmig_error_free(err);

    char *cfg = config(src_password, "null.sqlite", "");
    CHECK_STATUS(imapmig_migration_new(cfg, NULL, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);
    /* err may be NULL: the status alone is returned. */
    CHECK_STATUS(imapmig_migration_new(NULL, &m, NULL), IMAPMIG_STATUS_INVALID_ARGUMENT);
    free(cfg);

    CHECK_STATUS(imapmig_migration_start(NULL, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(imapmig_error_message(err), "NULL") != NULL, "%s", imapmig_error_message(err));
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_next_event(NULL, 0, &out, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK(out == NULL, "out_json reset to NULL");
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_migration_wait(NULL, &out, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_migration_run(NULL, NULL, NULL, NULL, &err),
                 IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_migration_cancel(NULL), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(imapmig_check(NULL, &out, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_verify("{}", NULL, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);

    /* Accessors and frees accept NULL. */
    CHECK_STATUS(imapmig_error_status(NULL), IMAPMIG_STATUS_INVALID_ARGUMENT);
    CHECK(imapmig_error_message(NULL) != NULL, "message of NULL");
    CHECK(imapmig_error_is_transient(NULL) == 0, "transient of NULL");
    imapmig_error_free(NULL);
    imapmig_string_free(NULL);
    imapmig_migration_free(NULL);
}

static void test_bad_configuration(void) {
    imapmig_error *err = NULL;
    imapmig_migration *m = NULL;

    CHECK_STATUS(imapmig_migration_new("{", &m, &err), IMAPMIG_STATUS_CONFIG);
    CHECK(m == NULL, "no handle");
    imapmig_error_free(err);

    CHECK_STATUS(imapmig_migration_new("{\"sauce\":1}", &m, &err), IMAPMIG_STATUS_CONFIG);
    CHECK(strstr(imapmig_error_message(err), "sauce") != NULL, "%s", imapmig_error_message(err));
    imapmig_error_free(err);

    const char not_utf8[] = {'{', '"', (char)0xff, '"', '}', 0};
    CHECK_STATUS(imapmig_migration_new(not_utf8, &m, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);

    char *cfg = config(src_password, "bad.sqlite", ",\"since\":\"last tuesday\"");
    CHECK_STATUS(imapmig_migration_new(cfg, &m, &err), IMAPMIG_STATUS_CONFIG);
    CHECK(strstr(imapmig_error_message(err), "since") != NULL, "%s", imapmig_error_message(err));
    imapmig_error_free(err);
    free(cfg);

    /* Without a state file a migration would copy everything again on every run. */
    CHECK_STATUS(imapmig_migration_new("{\"source\":{\"host\":\"h\",\"user\":\"u\","
                                       "\"password\":\"p\"},\"destination\":{\"host\":\"h\","
                                       "\"user\":\"u\",\"password\":\"p\"}}",
                                       &m, &err),
                 IMAPMIG_STATUS_CONFIG);
    CHECK(strstr(imapmig_error_message(err), "state") != NULL, "%s", imapmig_error_message(err));
    imapmig_error_free(err);
}

static void test_wrong_password(void) {
    imapmig_error *err = NULL;
    char *out = NULL;
    char *cfg = config("not-the-password", "wrong.sqlite", "");

    CHECK_STATUS(imapmig_check(cfg, &out, &err), IMAPMIG_STATUS_AUTHENTICATION);
    CHECK(out == NULL, "no result");
    CHECK(strstr(imapmig_error_message(err), "refused the login") != NULL, "%s",
          imapmig_error_message(err));
    CHECK(strstr(imapmig_error_message(err), "not-the-password") == NULL,
          "the password must not appear in the message");
    CHECK(imapmig_error_is_transient(err) == 0, "a wrong password is not transient");
    imapmig_error_free(err);

    /* The same through a migration and its event queue. */
    imapmig_migration *m = NULL;
    CHECK_STATUS(imapmig_migration_new(cfg, &m, &err), IMAPMIG_STATUS_OK);
    CHECK_STATUS(imapmig_next_event(m, 0, &out, &err), IMAPMIG_STATUS_INVALID_STATE);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_migration_start(m, &err), IMAPMIG_STATUS_OK);
    char *last = NULL;
    imapmig_status s;
    while ((s = imapmig_next_event(m, 1000, &out, &err)) != IMAPMIG_STATUS_FINISHED) {
        CHECK(s == IMAPMIG_STATUS_OK || s == IMAPMIG_STATUS_TIMEOUT, "%s",
              imapmig_status_name(s));
        if (s != IMAPMIG_STATUS_OK && s != IMAPMIG_STATUS_TIMEOUT) break;
        if (out) {
            imapmig_string_free(last);
            last = out;
        }
    }
    CHECK(last && strstr(last, "\"type\":\"failed\"") &&
              strstr(last, "IMAPMIG_STATUS_AUTHENTICATION"),
          "last event: %s", last ? last : "(none)");
    imapmig_string_free(last);
    CHECK_STATUS(imapmig_next_event(m, 0, &out, &err), IMAPMIG_STATUS_FINISHED);
    CHECK_STATUS(imapmig_migration_wait(m, &out, &err), IMAPMIG_STATUS_AUTHENTICATION);
    CHECK(out == NULL, "no report");
    imapmig_error_free(err);
    imapmig_migration_free(m);
    free(cfg);
}

static int cancel_at_first_event(const char *event_json, void *user_data) {
    (void)event_json;
    ++*(int *)user_data;
    return 1;
}

static void *cancel_from_another_thread(void *m) {
    imapmig_migration_cancel(m);
    return NULL;
}

static int count_events(const char *event_json, void *user_data) {
    (void)event_json;
    ++*(int *)user_data;
    return 0;
}

static long json_number(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at ? strtol(at + strlen(pattern), NULL, 10) : -1;
}

static void test_cancel_and_resume(void) {
    imapmig_error *err = NULL;
    imapmig_migration *m = NULL;
    char *out = NULL;
    /* Small batches on one connection: many message boundaries to stop at. */
    char *cfg = config(src_password, "cancel.sqlite",
                       ",\"batch\":4,\"connections\":1,\"progress_interval_ms\":0");
    CHECK_STATUS(imapmig_migration_new(cfg, &m, &err), IMAPMIG_STATUS_OK);
    free(cfg);
    if (!m) return;

    /* 1. A callback returning non-zero cancels. */
    int calls = 0;
    CHECK_STATUS(imapmig_migration_run(m, cancel_at_first_event, &calls, &out, &err),
                 IMAPMIG_STATUS_CANCELLED);
    CHECK(calls >= 1, "the callback ran");
    CHECK(out == NULL, "no report");
    CHECK(strstr(imapmig_error_message(err), "re-run") != NULL, "%s",
          imapmig_error_message(err));
    imapmig_error_free(err);

    /* 2. imapmig_migration_cancel from another thread, after the first copies. */
    CHECK_STATUS(imapmig_migration_start(m, &err), IMAPMIG_STATUS_OK);
    CHECK_STATUS(imapmig_migration_start(m, &err), IMAPMIG_STATUS_INVALID_STATE);
    imapmig_error_free(err);
    /* Polling (timeout 0) while the run is young: an event or nothing yet, never FINISHED. */
    imapmig_status polled = imapmig_next_event(m, 0, &out, &err);
    CHECK(polled == IMAPMIG_STATUS_OK || polled == IMAPMIG_STATUS_TIMEOUT, "polling: %s",
          imapmig_status_name(polled));
    imapmig_string_free(out);
    pthread_t canceller;
    int cancelled = 0;
    char *last = NULL;
    imapmig_status s;
    while ((s = imapmig_next_event(m, 1000, &out, &err)) != IMAPMIG_STATUS_FINISHED) {
        if (s != IMAPMIG_STATUS_OK) continue;
        if (!cancelled && strstr(out, "\"type\":\"progress\"")) {
            pthread_create(&canceller, NULL, cancel_from_another_thread, m);
            cancelled = 1;
        }
        imapmig_string_free(last);
        last = out;
    }
    if (cancelled) pthread_join(canceller, NULL);
    CHECK(cancelled, "a progress event came");
    CHECK(last && strstr(last, "IMAPMIG_STATUS_CANCELLED"), "last event: %s",
          last ? last : "(none)");
    imapmig_string_free(last);
    CHECK_STATUS(imapmig_migration_wait(m, NULL, &err), IMAPMIG_STATUS_CANCELLED);
    imapmig_error_free(err);

    /* 3. A new run finishes the job: every seeded message is on the destination once. */
    int events = 0;
    char *report = NULL;
    CHECK_STATUS(imapmig_migration_run(m, count_events, &events, &report, &err),
                 IMAPMIG_STATUS_OK);
    CHECK(report && strstr(report, "\"complete\":true"), "report: %s", report ? report : "-");
    long copied_now = report ? json_number(report, "copied") : -1;
    CHECK(copied_now > 0 && copied_now < seeded, "the resumed run copied %ld of %ld", copied_now,
          seeded);
    CHECK(events > 0, "events were delivered");
    imapmig_string_free(report);
    imapmig_error_free(err);

    char *cfg2 = config(src_password, "cancel.sqlite", "");
    CHECK_STATUS(imapmig_verify(cfg2, &out, &err), IMAPMIG_STATUS_OK);
    CHECK(out && strstr(out, "\"identical\":true"), "verify: %s", out ? out : "-");
    for (const char *p = out; p && (p = strstr(p, "\"extra_on_destination\":")); p++) {
        CHECK(json_number(p, "extra_on_destination") == 0, "a duplicate on the destination: %s",
              out);
    }
    imapmig_string_free(out);
    imapmig_error_free(err);
    free(cfg2);

    /* 4. Freeing a handle with a run under way cancels and waits. */
    CHECK_STATUS(imapmig_migration_start(m, &err), IMAPMIG_STATUS_OK);
    imapmig_migration_free(m);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *copy = malloc(n + 1);
    memcpy(copy, buf, n + 1);
    return copy;
}

static int stop_at_first_snapshot(const char *snapshot_json, void *user_data) {
    (void)snapshot_json;
    ++*(int *)user_data;
    return 1;
}

static void test_batch_task(void) {
    imapmig_error *err = NULL;
    imapmig_task *t = NULL;
    char *out = NULL;
    char state[1024];
    snprintf(state, sizeof state, "%s/tasks.sqlite", work_dir);
    char *settings = read_file(task_settings_file);
    CHECK(settings != NULL, "settings file %s", task_settings_file);
    if (!settings) return;

    /* Errors first: nothing exists yet. */
    CHECK_STATUS(imapmig_task_open(state, "wave1", &t, &err), IMAPMIG_STATUS_NOT_FOUND);
    CHECK(t == NULL, "no handle");
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_task_create(state, "wave1", "{\"source\":{}}", NULL, NULL, &t, &err),
                 IMAPMIG_STATUS_CONFIG);
    imapmig_error_free(err);
    /* The master login needs its password. */
    CHECK_STATUS(imapmig_task_create(state, "wave1", settings, NULL, NULL, &t, &err),
                 IMAPMIG_STATUS_CONFIG);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_task_status(NULL, &out, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_task_cancel(NULL), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_task_free(NULL);

    CHECK_STATUS(imapmig_task_create(state, "wave1", settings, NULL, dst_master_password, &t,
                                     &err),
                 IMAPMIG_STATUS_OK);
    imapmig_error_free(err);
    free(settings);
    if (!t) return;
    imapmig_task *again = NULL;
    settings = read_file(task_settings_file);
    CHECK_STATUS(imapmig_task_create(state, "wave1", settings, NULL, "x", &again, &err),
                 IMAPMIG_STATUS_EXISTS);
    imapmig_error_free(err);
    free(settings);

    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such.csv", work_dir);
    CHECK_STATUS(imapmig_task_import_accounts(t, missing, 0, &out, &err), IMAPMIG_STATUS_CSV);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_task_import_accounts(t, task_csv_file, 0, &out, &err),
                 IMAPMIG_STATUS_OK);
    CHECK(out && json_number(out, "added") == 2 && json_number(out, "waiting_for_credentials") == 1,
          "import: %s", out ? out : "-");
    imapmig_string_free(out);

    CHECK_STATUS(imapmig_task_control(t, IMAPMIG_TASK_PAUSE, "nobody@x.example", &out, &err),
                 IMAPMIG_STATUS_NOT_FOUND);
    imapmig_error_free(err);
    CHECK_STATUS(imapmig_task_control(t, 99, NULL, &out, &err), IMAPMIG_STATUS_INVALID_ARGUMENT);
    imapmig_error_free(err);

    /* A callback returning non-zero ends the run with its summary. */
    int snapshots = 0;
    CHECK_STATUS(imapmig_task_run(t, 0, stop_at_first_snapshot, &snapshots, &out, &err),
                 IMAPMIG_STATUS_OK);
    CHECK(snapshots >= 1, "a snapshot came");
    CHECK(out && strstr(out, "\"passes\""), "summary: %s", out ? out : "-");
    imapmig_string_free(out);

    /* The second account gets a wrong password: it fails for good, the first syncs. */
    CHECK_STATUS(imapmig_task_supply_credentials(t, "#2", "wrong-password", &out, &err),
                 IMAPMIG_STATUS_OK);
    imapmig_string_free(out);
    CHECK_STATUS(imapmig_task_run(t, 1, NULL, NULL, &out, &err), IMAPMIG_STATUS_OK);
    imapmig_string_free(out);
    CHECK_STATUS(imapmig_task_status(t, &out, &err), IMAPMIG_STATUS_OK);
    CHECK(out && strstr(out, "\"status\":\"synced\"") &&
              strstr(out, "\"failure\":\"authentication\"") &&
              !strstr(out, "wrong-password") && !strstr(out, dst_master_password),
          "status: %s", out ? out : "-");
    imapmig_string_free(out);

    CHECK_STATUS(imapmig_task_control(t, IMAPMIG_TASK_STOP, NULL, &out, &err), IMAPMIG_STATUS_OK);
    CHECK(out && json_number(out, "changed") >= 1, "stop: %s", out ? out : "-");
    imapmig_string_free(out);
    CHECK_STATUS(imapmig_task_settings(t, &out, &err), IMAPMIG_STATUS_OK);
    CHECK(out && !strstr(out, dst_master_password), "settings hold no secret");
    imapmig_string_free(out);
    imapmig_task_free(t);

    CHECK_STATUS(imapmig_task_open(state, "wave1", &t, &err), IMAPMIG_STATUS_OK);
    imapmig_task_free(t);
}

int main(int argc, char **argv) {
    if (argc != 15) {
        fprintf(stderr,
                "usage: %s HOST SRC_PORT SRC_USER SRC_PASSWORD SRC_CA_FILE DST_PORT DST_USER "
                "DST_PASSWORD DST_CA_FILE WORK_DIR SEEDED_MESSAGES TASK_SETTINGS_FILE "
                "TASK_CSV_FILE DST_MASTER_PASSWORD\n",
                argv[0]);
        return 2;
    }
    host = argv[1];
    src_port = argv[2];
    src_user = argv[3];
    src_password = argv[4];
    src_ca = argv[5];
    dst_port = argv[6];
    dst_user = argv[7];
    dst_password = argv[8];
    dst_ca = argv[9];
    work_dir = argv[10];
    seeded = strtol(argv[11], NULL, 10);
    task_settings_file = argv[12];
    task_csv_file = argv[13];
    dst_master_password = argv[14];

    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"status_strings", test_status_strings},
        {"null_arguments", test_null_arguments},
        {"bad_configuration", test_bad_configuration},
        {"wrong_password", test_wrong_password},
        {"cancel_and_resume", test_cancel_and_resume},
        {"batch_task", test_batch_task},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].run();
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
        fflush(stdout);
    }
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
