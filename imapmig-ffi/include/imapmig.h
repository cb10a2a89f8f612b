/*
 * imapmig: move whole mailboxes between IMAP servers, exactly once, resumable after a crash.
 * The C ABI (also used by Go through cgo). Link target/release/libimapmig_ffi.a together
 * with -lgcc_s -lutil -lrt -lpthread -lm -ldl, or link libimapmig_ffi.so.
 *
 * CALLING CONVENTIONS
 *   Every function that can fail returns an imapmig_status (0 = IMAPMIG_STATUS_OK) and takes
 *   `imapmig_error **err` last. When `err` is not NULL, `*err` is set to NULL on entry and to a
 *   new error object on failure; read it with imapmig_error_message / imapmig_error_status /
 *   imapmig_error_is_transient. There is no thread-local "last error": errors travel with the
 *   call, so goroutines and thread pools are safe. imapmig_status_name and
 *   imapmig_status_description render any status.
 *   No panic ever crosses the boundary (it becomes IMAPMIG_STATUS_PANIC). NULL handles and
 *   non-UTF-8 strings give IMAPMIG_STATUS_INVALID_ARGUMENT.
 *
 * MEMORY: WHO FREES WHAT
 *   - Strings passed in (`const char *`) are UTF-8, NUL-terminated, borrowed for the call only.
 *   - Strings returned through `char **out...` are owned by the caller: free each with
 *     imapmig_string_free (never with free()). On failure they are set to NULL.
 *   - Error objects returned through `imapmig_error **err` are owned by the caller: free with
 *     imapmig_error_free. The `const char *` from imapmig_error_message belongs to the error
 *     object and lives until it is freed.
 *   - imapmig_migration handles: created by imapmig_migration_new, freed by
 *     imapmig_migration_free (which first cancels and waits for a run still under way). No
 *     call on the handle may run concurrently with, or follow, imapmig_migration_free.
 *   - imapmig_task handles: created by imapmig_task_create or imapmig_task_open, freed by
 *     imapmig_task_free (after imapmig_task_run has returned).
 *   - The event text passed to an imapmig_progress_cb is borrowed for the callback only.
 *   - imapmig_status_name, imapmig_status_description and imapmig_version return static
 *     strings: never free them.
 *   - Every free function accepts NULL.
 *
 * THREADS
 *   A migration handle may be shared: imapmig_migration_cancel and imapmig_migration_wait may
 *   be called from any thread while another runs imapmig_migration_run or reads events. Read
 *   events from one thread at a time.
 *
 * BATCH TASKS
 *   imapmig_task_* keep a task with many accounts in a state file: create or open it, import
 *   accounts from CSV, run its scheduler (imapmig_task_run, blocking; stop it with
 *   imapmig_task_cancel from another thread), read every account's status, pause, resume or
 *   stop accounts, supply credentials, edit its settings (imapmig_task_edit: only the fields
 *   given change). Several processes may open one task; one runs it
 *   (IMAPMIG_STATUS_LOCKED otherwise). Settings and reports are the library's JSON forms.
 *
 * JSON CONFIGURATION (one schema for every function taking `json_config`; unknown fields are
 * an error, IMAPMIG_STATUS_CONFIG, naming the field)
 *   {
 *     "source":      SOURCE,            check: source and/or destination; analyze: source
 *     "destination": DESTINATION,       (destination optional); verify, migration: both
 *     "state": "/path/state.sqlite",    migration: the sync-state file (SQLite), created if
 *                                       missing; required unless dry_run. It is what makes a
 *                                       re-run resume instead of copying again.
 *     "account_key": "...",             key of this pair in the state file (default: the
 *                                       CLI's, "imap:user -> imap:user", the logins and not
 *                                       the hosts; state under the key of earlier versions,
 *                                       "user@host:port -> user@host:port", is still used)
 *     "connections": 2,                 folders copied in parallel
 *     "batch": 64,                      messages per pipelined batch
 *     "dry_run": false,                 plan and count, copy nothing
 *     "retries": 5, "backoff_ms": 500,  per-folder retries after transient failures
 *     "progress_interval_ms": 100,      at most one "progress" event per interval
 *     "trace": "/path/file",            migrations: protocol trace (appended, 0600,
 *                                       secrets redacted, bodies elided; default off)
 *     "mode": "mapping" | "unified",    folder placement (default mapping)
 *     "unified_root": "Migrated",       unified mode: the root folder ("" for none)
 *     "unified_address": "...",         unified mode: folder name (default: source user)
 *     "include": ["INBOX", "Work"],     globs over source folder names, '/' between
 *     "exclude": ["Archive"],           levels; '*' within a level, '**' across levels
 *     "exclude_special": ["trash"],     sent drafts trash junk archive all flagged important
 *     "renames": {"Old": "New/Name"},   applied in the order written
 *     "include_virtual": false,         also copy \All, \Flagged, \Important views
 *     "since": "2020-01-01", "before": "2024-01-01",   date range (YYYY-MM-DD)
 *     "date_field": "internal" | "header",
 *     "max_size": 26214400              skip (and report) larger messages, bytes
 *   }
 *   SOURCE = SERVER (an IMAP server: "kind": "imap" may be left out)
 *          | SERVER with "kind": "pop3" (the inbox only, never deleting; "uid_map": a file
 *            keeping the UIDL table, by default beside "state")
 *          | {"kind": "maildir", "path": "/path/Maildir"}            (a Maildir++ tree)
 *          | {"kind": "mbox", "path": "/path/file-or-directory",
 *             "flavor": "mboxrd" (default) | "mboxo" | "mboxcl2"}
 *   DESTINATION = SERVER | {"kind": "maildir", "path": "/path/Maildir"} (created if missing)
 *   SERVER = {
 *     "host": "imap.example.com", "port": 993 (default 993 with tls, else 143; POP3 995/110),
 *     "user": "alice@example.com", "password": "..." (or the OAuth2 access token),
 *     "tls": "tls" | "starttls" | "none"   (default tls; "none" sends the password in clear),
 *     "auth": "auto" | "login" | "plain" | "xoauth2" | "oauthbearer",
 *     "authzid": "user to act for (admin / master-user login)",
 *     "ca_file": "/path/ca.pem" (also trust these CAs), "insecure": false (no certificate
 *     check: lab servers only), "timeout_secs": 120
 *   }
 *
 * EVENTS (JSON objects from imapmig_next_event and the progress callback; "type" says which)
 *   {"type":"planned","folders":N}
 *   {"type":"folder_started","folder":"INBOX","to_copy":N,"bytes":N}
 *   {"type":"progress","folder":"INBOX","copied":N,"bytes":N,"total_copied":N,"total_bytes":N}
 *      (copies counted since the start of the run; at most one per progress_interval_ms)
 *   {"type":"message_skipped","folder":"INBOX","uid":N,"reason":"..."}
 *   {"type":"retrying","folder":"INBOX","attempt":N,"after_ms":N,"error":"..."}
 *   {"type":"folder_done", ...the folder's report: "source","target","found","copied",
 *      "already_there","skipped_by_filter","too_large":[...],"refused":[...],"vanished",
 *      "flags_updated","dropped_keywords","bytes","seconds","unchanged","listed",
 *      "listed_all","notes"}
 *   and, last, exactly one of
 *   {"type":"finished","report":REPORT}
 *   {"type":"failed","error":{"status":N,"name":"IMAPMIG_STATUS_...","message":"...",
 *      "transient":bool}}
 *   REPORT (also from imapmig_migration_wait/run) is the JSON of `imapmig migrate --json`:
 *   {"complete":bool,"folders":[folder reports],"plan":"...","plan_notes":[...],
 *    "failed_folders":[["folder","error"]],"dry_run":bool,"copied":N,"bytes":N,"seconds":F}
 */


#ifndef IMAPMIG_H
#define IMAPMIG_H

/* Generated by cbindgen from imapmig-ffi (cbindgen.toml). Do not edit by hand. */

#include <stdint.h>

// `imapmig_task_import_accounts`: import the good rows even when some are bad.
#define IMAPMIG_IMPORT_SKIP_BAD_ROWS 1

// `imapmig_task_import_accounts`: rows already in the task update its credentials.
#define IMAPMIG_IMPORT_UPDATE_EXISTING 2

// `imapmig_task_control`: pause (a running pass stops at the next message boundary).
#define IMAPMIG_TASK_PAUSE 1

// `imapmig_task_control`: resume paused, failed or stopped accounts.
#define IMAPMIG_TASK_RESUME 2

// `imapmig_task_control`: stop for good (until resumed).
#define IMAPMIG_TASK_STOP 3

// What a call did. Every function that can fail returns one; `IMAPMIG_STATUS_OK` (0) is
// success, `TIMEOUT` and `FINISHED` are ordinary outcomes of `imapmig_next_event`, everything
// from 10 up is an error described by the `imapmig_error` the call filled in.
typedef enum imapmig_status {
    // Success.
    IMAPMIG_STATUS_OK = 0,
    // `imapmig_next_event`: no event arrived within the timeout; call again.
    IMAPMIG_STATUS_TIMEOUT = 1,
    // `imapmig_next_event`: the run is over and every event has been read.
    IMAPMIG_STATUS_FINISHED = 2,
    // A NULL pointer where one is not allowed, or a string that is not UTF-8.
    IMAPMIG_STATUS_INVALID_ARGUMENT = 10,
    // The JSON configuration is malformed or holds an invalid value (unknown field, bad
    // date, missing password...). The message names the field.
    IMAPMIG_STATUS_CONFIG = 11,
    // The server refused the login: wrong user name, password or token.
    IMAPMIG_STATUS_AUTHENTICATION = 12,
    // The server could not be reached, or the connection broke or timed out. Often worth
    // retrying later.
    IMAPMIG_STATUS_CONNECTION = 13,
    // TLS failed (untrusted or mismatched certificate), STARTTLS is missing, or a password
    // would have been sent in clear text.
    IMAPMIG_STATUS_TLS = 14,
    // The destination is over its quota.
    IMAPMIG_STATUS_QUOTA = 15,
    // The server refused a command or broke the protocol (the message has its words).
    IMAPMIG_STATUS_SERVER = 16,
    // A local file could not be read or written.
    IMAPMIG_STATUS_IO = 17,
    // The folder plan cannot be made (two folders would land in one place, a bad pattern or
    // rename): fix the options.
    IMAPMIG_STATUS_PLAN = 18,
    // The sync-state file could not be opened, read or written.
    IMAPMIG_STATUS_STATE = 19,
    // The migration was cancelled; what was copied is recorded and a new run resumes.
    IMAPMIG_STATUS_CANCELLED = 20,
    // The call does not fit the handle's state: starting a migration that is running, or
    // reading events of one never started.
    IMAPMIG_STATUS_INVALID_STATE = 21,
    // An internal error (a bug); the sync state is consistent, a new run resumes.
    IMAPMIG_STATUS_INTERNAL = 22,
    // A panic was caught at the boundary (a bug); the handle should be freed.
    IMAPMIG_STATUS_PANIC = 23,
    // Batch tasks: the CSV file cannot be read or has bad rows (each named with its line);
    // nothing was imported.
    IMAPMIG_STATUS_CSV = 24,
    // Batch tasks: no such task or account.
    IMAPMIG_STATUS_NOT_FOUND = 25,
    // Batch tasks: a task of that name exists already.
    IMAPMIG_STATUS_EXISTS = 26,
    // Batch tasks: another process runs this task.
    IMAPMIG_STATUS_LOCKED = 27,
} imapmig_status;

// An error: a status, a message and whether a retry may succeed. Created by the library
// (through an `imapmig_error **err` argument), owned by the caller, freed with
// `imapmig_error_free`.
typedef struct imapmig_error imapmig_error;

// A migration of one account pair, configured once, run any number of times (a run after a
// finished or cancelled one copies only what is still missing). Created with
// `imapmig_migration_new`, freed with `imapmig_migration_free`.
typedef struct imapmig_migration imapmig_migration;

// A batch task in a state file. Created by `imapmig_task_create` or `imapmig_task_open`,
// freed by `imapmig_task_free`.
typedef struct imapmig_task imapmig_task;

// A progress callback: receives each event as a JSON object (UTF-8, NUL-terminated, valid
// only during the call) and the `user_data` given to `imapmig_migration_run`. Returning
// non-zero cancels the migration (it stops at the next message boundary).
typedef int (*imapmig_progress_cb)(const char *event_json, void *user_data);

// Every status, for tests and for rendering.
#define imapmig_status_ALL { imapmig_status_Ok, imapmig_status_Timeout, imapmig_status_Finished, imapmig_status_InvalidArgument, imapmig_status_Config, imapmig_status_Authentication, imapmig_status_Connection, imapmig_status_Tls, imapmig_status_Quota, imapmig_status_Server, imapmig_status_Io, imapmig_status_Plan, imapmig_status_State, imapmig_status_Cancelled, imapmig_status_InvalidState, imapmig_status_Internal, imapmig_status_Panic, imapmig_status_Csv, imapmig_status_NotFound, imapmig_status_Exists, imapmig_status_Locked, }

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// Creates task `name` in the state file `state_path` (created if missing) with
// `settings_json`: the library's task settings, e.g.
// `{"source":{"host":"imap.old.example","port":993},"destination":{"host":"imap.new.example",
// "port":993,"auth":{"kind":"master_user","master":"admin","separator":"*"}}}` (see the
// Python `imapmig.BatchTask` documentation for every field; `imapmig_task_settings` returns
// the full form). `source_secret` / `destination_secret` (may be NULL) are the admin or
// master passwords of the `admin` and `master_user` logins.
//
// # Safety
// Strings: NUL-terminated UTF-8 (the secrets may be NULL). `out`: writable; the task, to be
// freed with `imapmig_task_free`. `err`: NULL or writable.
enum imapmig_status imapmig_task_create(const char *state_path,
                                        const char *name,
                                        const char *settings_json,
                                        const char *source_secret,
                                        const char *destination_secret,
                                        struct imapmig_task **out,
                                        struct imapmig_error **err);

// Opens task `name` of the state file `state_path` (`IMAPMIG_STATUS_NOT_FOUND` if there is
// none).
//
// # Safety
// As for `imapmig_task_create`.
enum imapmig_status imapmig_task_open(const char *state_path,
                                      const char *name,
                                      struct imapmig_task **out,
                                      struct imapmig_error **err);

// The task's settings as JSON, every default filled in, never its secrets.
//
// # Safety
// `t`: NULL or a live task. `out_json`: writable (free with `imapmig_string_free`). `err`:
// NULL or writable.
enum imapmig_status imapmig_task_settings(struct imapmig_task *t,
                                          char **out_json,
                                          struct imapmig_error **err);

// Edits the task's settings with `patch_json`: the settings' own JSON form with every field
// optional, so that only what is given changes (the full form from `imapmig_task_settings`
// works too). A server's port follows a change of `transport` or `protocol` unless given;
// `"mechanism"` and `"admin"` adjust a server's login without restating it; `null` clears
// `since`, `before`, `max_size` and `start_at`; durations are seconds or text like `"6h"`.
// `source_secret` / `destination_secret` (may be NULL) replace the admin or master passwords.
// A server change reaches accounts that have not started, or every account from its next
// pass when `apply_to_all` is not 0. `*out_json` (when not NULL): the names of the settings
// that changed, a JSON array.
//
// # Safety
// `t`: NULL or a live task. `patch_json`: NUL-terminated UTF-8; the secrets NULL or
// NUL-terminated UTF-8. `out_json`, `err`: NULL or writable.
enum imapmig_status imapmig_task_edit(struct imapmig_task *t,
                                      const char *patch_json,
                                      const char *source_secret,
                                      const char *destination_secret,
                                      int apply_to_all,
                                      char **out_json,
                                      struct imapmig_error **err);

// Imports accounts from a CSV file (`target,source,password[,target_password]`, header
// optional, or Microsoft 365's `EmailAddress,UserName,Password`). Every row is checked
// first; while any is bad nothing is imported (`IMAPMIG_STATUS_CSV`, the message naming each
// bad line) unless `flags` has `IMAPMIG_IMPORT_SKIP_BAD_ROWS`. `*out_json` (when not NULL):
// `{"layout","header","added","updated","waiting_for_credentials","skipped":[{"line",
// "problem"}],"notes":[...]}`.
//
// # Safety
// `t`: NULL or a live task. `csv_path`: NUL-terminated UTF-8. `out_json`, `err`: NULL or
// writable.
enum imapmig_status imapmig_task_import_accounts(struct imapmig_task *t,
                                                 const char *csv_path,
                                                 int32_t flags,
                                                 char **out_json,
                                                 struct imapmig_error **err);

// Every account with its status and progress, as a JSON array (the rows of
// `imapmig status --format json`; never a secret). Safe while the task runs in another
// thread or process.
//
// # Safety
// `t`: NULL or a live task. `out_json`: writable. `err`: NULL or writable.
enum imapmig_status imapmig_task_status(struct imapmig_task *t,
                                        char **out_json,
                                        struct imapmig_error **err);

// Pauses, resumes or stops (`IMAPMIG_TASK_PAUSE`, `_RESUME`, `_STOP`) one account (target
// address, source login or `#id`) or, when `account` is NULL, every account. `*out_json`
// (when not NULL): `{"changed","requested","unchanged"}`.
//
// # Safety
// `t`: NULL or a live task. `account`: NULL or NUL-terminated UTF-8. `out_json`, `err`: NULL
// or writable.
enum imapmig_status imapmig_task_control(struct imapmig_task *t,
                                         int32_t action,
                                         const char *account,
                                         char **out_json,
                                         struct imapmig_error **err);

// Supplies the source password or token of an account (the hook a platform calls when a
// user logs in with the old password): a waiting or failed account starts. `*out_json`
// (when not NULL): `[{"id","status"}]`.
//
// # Safety
// `t`: NULL or a live task. `account`, `secret`: NUL-terminated UTF-8. `out_json`, `err`:
// NULL or writable.
enum imapmig_status imapmig_task_supply_credentials(struct imapmig_task *t,
                                                    const char *account,
                                                    const char *secret,
                                                    char **out_json,
                                                    struct imapmig_error **err);

// Runs the task's scheduler, blocking: migrates accounts within the limits, retries
// transient failures, runs incremental passes until each window closes; with `until_idle`
// non-zero it returns once nothing is running, due or scheduled. `progress` (may be NULL)
// is called on this thread about once a second with a live snapshot (`{"seconds",
// "statuses":[[status,n]],"running":[...],"hosts":[...],"copied","bytes"}`); returning
// non-zero stops the run, as does `imapmig_task_cancel`: passes end at the next message
// boundary and run again next time. `*out_summary_json` (when not NULL): the run's summary
// (`{"passes","passes_synced","passes_failed","copied","bytes","seconds",...}`).
// `IMAPMIG_STATUS_LOCKED` when another process runs the task.
//
// # Safety
// `t`: NULL or a live task. `user_data` is passed through untouched. `out_summary_json`,
// `err`: NULL or writable.
enum imapmig_status imapmig_task_run(struct imapmig_task *t,
                                     int until_idle,
                                     imapmig_progress_cb progress,
                                     void *user_data,
                                     char **out_summary_json,
                                     struct imapmig_error **err);

// Stops the run of this handle (`imapmig_task_run` in another thread), which then returns
// `IMAPMIG_STATUS_OK` with its summary. Returns at once; safe from any thread.
//
// # Safety
// `t`: NULL or a live task.
enum imapmig_status imapmig_task_cancel(const struct imapmig_task *t);

// Frees a task handle (the task stays in its state file). NULL is ignored. No other call on
// the handle may be in progress or follow.
//
// # Safety
// `t`: NULL or a live task, not used afterwards.
void imapmig_task_free(struct imapmig_task *t);

// Frees an error object. NULL is ignored.
//
// # Safety
// `err` is NULL or an error this library returned, not yet freed.
void imapmig_error_free(struct imapmig_error *err);

// The error's status (`IMAPMIG_STATUS_INVALID_ARGUMENT` for NULL).
//
// # Safety
// `err` is NULL or a live error object.
enum imapmig_status imapmig_error_status(const struct imapmig_error *err);

// The error's message: UTF-8, NUL-terminated, owned by the error (valid until
// `imapmig_error_free`; do not free it). A static text for NULL.
//
// # Safety
// `err` is NULL or a live error object.
const char *imapmig_error_message(const struct imapmig_error *err);

// Whether retrying later may succeed (a dropped connection, throttling): 1 or 0.
//
// # Safety
// `err` is NULL or a live error object.
int32_t imapmig_error_is_transient(const struct imapmig_error *err);

// The C name of a status (`"IMAPMIG_STATUS_TLS"`): a static string, never NULL
// (`"IMAPMIG_STATUS_UNKNOWN"` for a number that is not a status).
const char *imapmig_status_name(int32_t status);

// A one-line English description of a status: a static string, never NULL.
const char *imapmig_status_description(int32_t status);

// Frees a string this library returned (`char *` out-parameters). NULL is ignored.
//
// # Safety
// `s` is NULL or a string this library returned, not yet freed.
void imapmig_string_free(char *s);

// Creates a migration from a JSON configuration (see the top of this header). Checks the
// configuration and opens (creating it if needed) the sync-state file; does not connect.
//
// # Safety
// `json_config`: NUL-terminated UTF-8, only read during the call. `out`: writable; receives
// the handle (NULL on failure), to be freed with `imapmig_migration_free`. `err`: NULL or
// writable.
enum imapmig_status imapmig_migration_new(const char *json_config,
                                          struct imapmig_migration **out,
                                          struct imapmig_error **err);

// Starts a run in the background and returns at once. Read its events with
// `imapmig_next_event`, its outcome with `imapmig_migration_wait`. Fails with
// `IMAPMIG_STATUS_INVALID_STATE` while a run is under way; after a run is over, starts a new
// one (which copies only what is still missing).
//
// # Safety
// `m`: NULL or a live handle. `err`: NULL or writable.
enum imapmig_status imapmig_migration_start(struct imapmig_migration *m,
                                            struct imapmig_error **err);

// Waits up to `timeout_ms` milliseconds (0: do not wait) for the next event of the current
// run. Returns `IMAPMIG_STATUS_OK` with the event as a JSON object in `*out_json` (free it
// with `imapmig_string_free`), `IMAPMIG_STATUS_TIMEOUT` when none came (`*out_json` NULL),
// or `IMAPMIG_STATUS_FINISHED` once the run's last event (`finished` or `failed`) has been
// read. Needs no callback: the shape Go and event loops want. One reader at a time.
//
// # Safety
// `m`: NULL or a live handle. `out_json`: writable. `err`: NULL or writable.
enum imapmig_status imapmig_next_event(struct imapmig_migration *m,
                                       uint32_t timeout_ms,
                                       char **out_json,
                                       struct imapmig_error **err);

// Blocks until the current run is over and returns its outcome: `IMAPMIG_STATUS_OK` with
// the report in `*out_report_json` (when that is not NULL; free it with
// `imapmig_string_free`), or the run's error status and error object. Does not consume
// events; any number of threads may wait.
//
// # Safety
// `m`: NULL or a live handle. `out_report_json`, `err`: NULL or writable.
enum imapmig_status imapmig_migration_wait(struct imapmig_migration *m,
                                           char **out_report_json,
                                           struct imapmig_error **err);

// Runs the migration to the end, blocking, calling `progress` (may be NULL) on the calling
// thread with every event `imapmig_next_event` would return, the last one included. Returns
// like `imapmig_migration_wait`: `IMAPMIG_STATUS_OK` and the report, or the error
// (`IMAPMIG_STATUS_CANCELLED` after a callback returned non-zero or
// `imapmig_migration_cancel` was called).
//
// # Safety
// `m`: NULL or a live handle. `user_data` is passed through untouched. `out_report_json`,
// `err`: NULL or writable.
enum imapmig_status imapmig_migration_run(struct imapmig_migration *m,
                                          imapmig_progress_cb progress,
                                          void *user_data,
                                          char **out_report_json,
                                          struct imapmig_error **err);

// Asks the current run to stop at the next message boundary; returns at once. Everything
// copied so far is recorded, and a later run resumes. Safe to call from any thread, at any
// time (before a run or after it, it does nothing).
//
// # Safety
// `m`: NULL or a live handle.
enum imapmig_status imapmig_migration_cancel(const struct imapmig_migration *m);

// Frees a migration handle. A run still under way is cancelled first and waited for (it
// stops at a message boundary, so the sync state stays exact). NULL is ignored. No other
// call on the handle may be in progress or follow.
//
// # Safety
// `m`: NULL or a live handle, not used afterwards.
void imapmig_migration_free(struct imapmig_migration *m);

// The library's version, e.g. `"0.1.0"`: a static string.
const char *imapmig_version(void);

// Connects to the `"source"` and/or `"destination"` of the configuration, logs in and lists
// folders. On success `*out_json` is a JSON array with one object per server:
// `{"side","host","port","tls","greeting","logged_in_as","capabilities":[...],"folders",
// "namespace_prefix","separator","seconds"}`. Blocks (each wait bounded by `timeout_secs`).
//
// # Safety
// `json_config`: NUL-terminated UTF-8. `out_json`: writable; free the result with
// `imapmig_string_free`. `err`: NULL or writable; free the error with `imapmig_error_free`.
enum imapmig_status imapmig_check(const char *json_config,
                                  char **out_json,
                                  struct imapmig_error **err);

// Looks at the `"source"` before a migration: `*out_json` is
// `{"folders":[{"name","special_use","messages","bytes","largest","in_date_range"}],
// "messages","bytes","over_size_limit","in_date_range","in_date_range_bytes","plan",
// "plan_notes":[...],"sample_read_mb_per_s","estimated_seconds"}` (`plan` is the rendered
// folder plan when a `"destination"` is given, else null; the `in_date_range` counts are null
// without a date range). Uses the folder and message options. Blocks.
//
// # Safety
// As for `imapmig_check`.
enum imapmig_status imapmig_analyze(const char *json_config,
                                    char **out_json,
                                    struct imapmig_error **err);

// Compares `"source"` and `"destination"` message by message (content, flags,
// INTERNALDATE), reading both afresh. `*out_json` is
// `{"identical":bool,"folders":[{"source","target","source_messages","destination_messages",
// "matched","extra_on_destination","differences":[...]}]}`. Uses the folder and message
// options. Blocks.
//
// # Safety
// As for `imapmig_check`.
enum imapmig_status imapmig_verify(const char *json_config,
                                   char **out_json,
                                   struct imapmig_error **err);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* IMAPMIG_H */
