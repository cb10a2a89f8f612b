/*
 * Migrates one account with the imapmig C API and prints progress.
 *
 *   cargo build --release -p imapmig-ffi
 *   cc -std=c11 -Wall -I imapmig-ffi/include examples/c/migrate.c \
 *      target/release/libimapmig_ffi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -o migrate
 *   ./migrate config.json
 *
 * config.json follows the schema at the top of imapmig.h, for example:
 *   {"source": {"host": "old.example.com", "user": "alice", "password": "..."},
 *    "destination": {"host": "new.example.com", "user": "alice", "password": "..."},
 *    "state": "alice.sqlite"}
 *
 * Ctrl-C stops the migration at the next message boundary (the progress callback returns
 * non-zero); running the same command again resumes it.
 *
 * Exit status: 0 every message copied, 1 finished with messages refused or skipped,
 * 2 failed, 130 interrupted.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapmig.h"

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* Called on this thread for every event; the text is valid only during the call. */
static int on_event(const char *event_json, void *user_data) {
    unsigned long *events = user_data;
    ++*events;
    printf("event: %s\n", event_json);
    fflush(stdout);
    /* Non-zero asks the library to stop at the next message boundary. */
    return interrupted ? 1 : 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s config.json\n", argv[0]);
        return 2;
    }
    char *config = read_file(argv[1]);
    if (!config) {
        perror(argv[1]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    printf("imapmig %s\n", imapmig_version());
    imapmig_migration *migration = NULL;
    imapmig_error *err = NULL;
    imapmig_status status = imapmig_migration_new(config, &migration, &err);
    /* The configuration holds passwords: do not keep it around longer than needed. */
    memset(config, 0, strlen(config));
    free(config);
    if (status != IMAPMIG_STATUS_OK) {
        fprintf(stderr, "cannot set up the migration: %s (%s)\n", imapmig_error_message(err),
                imapmig_status_name(status));
        imapmig_error_free(err);
        return 2;
    }

    unsigned long events = 0;
    char *report = NULL;
    status = imapmig_migration_run(migration, on_event, &events, &report, &err);
    int exit_code;
    if (status == IMAPMIG_STATUS_OK) {
        printf("report: %s\n", report);
        printf("%lu events\n", events);
        exit_code = strstr(report, "\"complete\":true") ? 0 : 1;
    } else {
        fprintf(stderr, "migration failed: %s (%s%s)\n", imapmig_error_message(err),
                imapmig_status_name(status),
                imapmig_error_is_transient(err) ? ", worth retrying" : "");
        exit_code = status == IMAPMIG_STATUS_CANCELLED ? 130 : 2;
    }
    imapmig_string_free(report);
    imapmig_error_free(err);
    imapmig_migration_free(migration);
    return exit_code;
}
