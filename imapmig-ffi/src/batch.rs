//! Batch tasks (imapmig_core::batch): many accounts in one state file, run by a scheduler.
//!
//! Settings go in as the library's own JSON form of a task's settings, reports come out as the
//! library's JSON, so nothing is decided here. Go can drive a run without callbacks: run it in
//! a goroutine with a NULL callback, read `imapmig_task_status` from another, and stop it with
//! `imapmig_task_cancel`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use imapmig_core::batch::EditScope;
use imapmig_core::batch::{
    BatchError, BatchErrorKind, BatchStore, ControlReport, ImportOptions, LiveSnapshot, RunSummary,
    Scheduler, SchedulerOptions, Selection, TaskSettings,
};
use imapmig_core::config::SettingsPatch;
use imapmig_core::secret::Secret;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use crate::error::{c_string, guard, guard_value, imapmig_error, out_arg, str_arg};
use crate::migration::imapmig_progress_cb;
use crate::runtime::{block_on, runtime};
use crate::status::{imapmig_status, Failure};

/// `imapmig_task_import_accounts`: import the good rows even when some are bad.
pub const IMAPMIG_IMPORT_SKIP_BAD_ROWS: i32 = 1;
/// `imapmig_task_import_accounts`: rows already in the task update its credentials.
pub const IMAPMIG_IMPORT_UPDATE_EXISTING: i32 = 2;

/// `imapmig_task_control`: pause (a running pass stops at the next message boundary).
pub const IMAPMIG_TASK_PAUSE: i32 = 1;
/// `imapmig_task_control`: resume paused, failed or stopped accounts.
pub const IMAPMIG_TASK_RESUME: i32 = 2;
/// `imapmig_task_control`: stop for good (until resumed).
pub const IMAPMIG_TASK_STOP: i32 = 3;

/// How often a run looks at its queue.
const POLL: Duration = Duration::from_millis(50);

impl From<BatchError> for Failure {
    fn from(e: BatchError) -> Failure {
        let status = match e.kind() {
            BatchErrorKind::Store => imapmig_status::State,
            BatchErrorKind::Settings => imapmig_status::Config,
            BatchErrorKind::Csv => imapmig_status::Csv,
            BatchErrorKind::UnknownTask | BatchErrorKind::UnknownAccount => {
                imapmig_status::NotFound
            }
            BatchErrorKind::TaskExists => imapmig_status::Exists,
            BatchErrorKind::Locked => imapmig_status::Locked,
            BatchErrorKind::NotAllowed => imapmig_status::InvalidState,
            _ => imapmig_status::Internal,
        };
        Failure::new(status, e.to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn json_text<T: Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string(v).map_err(|e| {
        Failure::new(
            imapmig_status::Internal,
            format!("cannot convert a result: {e}"),
        )
    })
}

/// A batch task in a state file. Created by `imapmig_task_create` or `imapmig_task_open`,
/// freed by `imapmig_task_free`.
pub struct imapmig_task {
    store: Arc<BatchStore>,
    name: String,
    /// The cancel switch of the run under way, if any.
    running: Mutex<Option<CancellationToken>>,
}

/// The task behind a pointer.
///
/// # Safety
/// `t` is NULL or a live task.
unsafe fn task<'a>(t: *const imapmig_task) -> Result<&'a imapmig_task, Failure> {
    // SAFETY: the caller passes NULL or a live task.
    unsafe { t.as_ref() }
        .ok_or_else(|| Failure::new(imapmig_status::InvalidArgument, "the task handle is NULL"))
}

/// A NUL-terminated string argument that may be NULL.
///
/// # Safety
/// As for `str_arg`.
unsafe fn opt_str<'a>(s: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if s.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded.
        unsafe { str_arg(s, name) }.map(Some)
    }
}

/// Writes a JSON result, or reports a failure.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn deliver(
    result: Result<String, Failure>,
    out: *mut *mut c_char,
) -> Result<imapmig_status, Failure> {
    let text = result?;
    if !out.is_null() {
        // SAFETY: the caller promises it is writable.
        unsafe { out.write(c_string(text)) };
    }
    Ok(imapmig_status::Ok)
}

/// Resets an optional out-parameter.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn reset<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: as above.
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

fn open_store(state: &str) -> Result<Arc<BatchStore>, Failure> {
    Ok(Arc::new(BatchStore::open(Path::new(state))?))
}

/// Creates task `name` in the state file `state_path` (created if missing) with
/// `settings_json`: the library's task settings, e.g.
/// `{"source":{"host":"imap.old.example","port":993},"destination":{"host":"imap.new.example",
/// "port":993,"auth":{"kind":"master_user","master":"admin","separator":"*"}}}` (see the
/// Python `imapmig.BatchTask` documentation for every field; `imapmig_task_settings` returns
/// the full form). `source_secret` / `destination_secret` (may be NULL) are the admin or
/// master passwords of the `admin` and `master_user` logins.
///
/// # Safety
/// Strings: NUL-terminated UTF-8 (the secrets may be NULL). `out`: writable; the task, to be
/// freed with `imapmig_task_free`. `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_create(
    state_path: *const c_char,
    name: *const c_char,
    settings_json: *const c_char,
    source_secret: *const c_char,
    destination_secret: *const c_char,
    out: *mut *mut imapmig_task,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: the caller's promises are the ones these helpers need.
    unsafe {
        guard(err, || {
            out_arg(out, "out")?;
            let state = str_arg(state_path, "state_path")?;
            let name = str_arg(name, "name")?;
            let settings: TaskSettings =
                serde_json::from_str(str_arg(settings_json, "settings_json")?)
                    .map_err(|e| Failure::config(format!("task settings: {e}")))?;
            let ss = opt_str(source_secret, "source_secret")?.map(Secret::new);
            let ds = opt_str(destination_secret, "destination_secret")?.map(Secret::new);
            let store = open_store(state)?;
            store.create_task(name, &settings, ss, ds)?;
            out.write(Box::into_raw(Box::new(imapmig_task {
                store,
                name: name.to_string(),
                running: Mutex::new(None),
            })));
            Ok(imapmig_status::Ok)
        })
    }
}

/// Opens task `name` of the state file `state_path` (`IMAPMIG_STATUS_NOT_FOUND` if there is
/// none).
///
/// # Safety
/// As for `imapmig_task_create`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_open(
    state_path: *const c_char,
    name: *const c_char,
    out: *mut *mut imapmig_task,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            out_arg(out, "out")?;
            let state = str_arg(state_path, "state_path")?;
            let name = str_arg(name, "name")?;
            let store = open_store(state)?;
            store.task(name)?;
            out.write(Box::into_raw(Box::new(imapmig_task {
                store,
                name: name.to_string(),
                running: Mutex::new(None),
            })));
            Ok(imapmig_status::Ok)
        })
    }
}

/// The task's settings as JSON, every default filled in, never its secrets.
///
/// # Safety
/// `t`: NULL or a live task. `out_json`: writable (free with `imapmig_string_free`). `err`:
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_settings(
    t: *mut imapmig_task,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            out_arg(out_json, "out_json")?;
            let t = task(t)?;
            deliver(json_text(&t.store.task(&t.name)?.settings), out_json)
        })
    }
}

/// Edits the task's settings with `patch_json`: the settings' own JSON form with every field
/// optional, so that only what is given changes (the full form from `imapmig_task_settings`
/// works too). A server's port follows a change of `transport` or `protocol` unless given;
/// `"mechanism"` and `"admin"` adjust a server's login without restating it; `null` clears
/// `since`, `before`, `max_size` and `start_at`; durations are seconds or text like `"6h"`.
/// `source_secret` / `destination_secret` (may be NULL) replace the admin or master passwords.
/// A server change reaches accounts that have not started, or every account from its next
/// pass when `apply_to_all` is not 0. `*out_json` (when not NULL): the names of the settings
/// that changed, a JSON array.
///
/// # Safety
/// `t`: NULL or a live task. `patch_json`: NUL-terminated UTF-8; the secrets NULL or
/// NUL-terminated UTF-8. `out_json`, `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_edit(
    t: *mut imapmig_task,
    patch_json: *const c_char,
    source_secret: *const c_char,
    destination_secret: *const c_char,
    apply_to_all: c_int,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            reset(out_json);
            let t = task(t)?;
            let patch: SettingsPatch = serde_json::from_str(str_arg(patch_json, "patch_json")?)
                .map_err(|e| Failure::config(format!("task settings: {e}")))?;
            let ss = opt_str(source_secret, "source_secret")?.map(Secret::new);
            let ds = opt_str(destination_secret, "destination_secret")?.map(Secret::new);
            let scope = if apply_to_all != 0 {
                EditScope::All
            } else {
                EditScope::NotStarted
            };
            let changed = patch.edit_task(&t.store, &t.name, ss, ds, scope)?;
            deliver(json_text(&changed), out_json)
        })
    }
}

/// Imports accounts from a CSV file (`target,source,password[,target_password]`, header
/// optional, or Microsoft 365's `EmailAddress,UserName,Password`). Every row is checked
/// first; while any is bad nothing is imported (`IMAPMIG_STATUS_CSV`, the message naming each
/// bad line) unless `flags` has `IMAPMIG_IMPORT_SKIP_BAD_ROWS`. `*out_json` (when not NULL):
/// `{"layout","header","added","updated","waiting_for_credentials","skipped":[{"line",
/// "problem"}],"notes":[...]}`.
///
/// # Safety
/// `t`: NULL or a live task. `csv_path`: NUL-terminated UTF-8. `out_json`, `err`: NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_import_accounts(
    t: *mut imapmig_task,
    csv_path: *const c_char,
    flags: i32,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            reset(out_json);
            let t = task(t)?;
            let path = str_arg(csv_path, "csv_path")?;
            let options = ImportOptions {
                skip_bad_rows: flags & IMAPMIG_IMPORT_SKIP_BAD_ROWS != 0,
                update_existing: flags & IMAPMIG_IMPORT_UPDATE_EXISTING != 0,
            };
            let r = t.store.import_csv(&t.name, Path::new(path), options)?;
            let v = json!({
                "layout": r.layout,
                "header": r.header,
                "added": r.added,
                "updated": r.updated,
                "waiting_for_credentials": r.waiting_for_credentials,
                "skipped": r.skipped.iter()
                    .map(|e| json!({"line": e.line, "problem": e.problem.to_string()}))
                    .collect::<Vec<_>>(),
                "notes": r.notes,
            });
            deliver(Ok(v.to_string()), out_json)
        })
    }
}

/// Every account with its status and progress, as a JSON array (the rows of
/// `imapmig status --format json`; never a secret). Safe while the task runs in another
/// thread or process.
///
/// # Safety
/// `t`: NULL or a live task. `out_json`: writable. `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_status(
    t: *mut imapmig_task,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            out_arg(out_json, "out_json")?;
            let t = task(t)?;
            deliver(json_text(&t.store.accounts(&t.name)?), out_json)
        })
    }
}

/// Pauses, resumes or stops (`IMAPMIG_TASK_PAUSE`, `_RESUME`, `_STOP`) one account (target
/// address, source login or `#id`) or, when `account` is NULL, every account. `*out_json`
/// (when not NULL): `{"changed","requested","unchanged"}`.
///
/// # Safety
/// `t`: NULL or a live task. `account`: NULL or NUL-terminated UTF-8. `out_json`, `err`: NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_control(
    t: *mut imapmig_task,
    action: i32,
    account: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            reset(out_json);
            let t = task(t)?;
            let names: Vec<String> = opt_str(account, "account")?
                .map(|a| vec![a.to_string()])
                .unwrap_or_default();
            let sel = if account.is_null() {
                Selection::All
            } else {
                Selection::Names(&names)
            };
            let r: ControlReport = match action {
                IMAPMIG_TASK_PAUSE => t.store.pause(&t.name, sel)?,
                IMAPMIG_TASK_RESUME => t.store.resume(&t.name, sel)?,
                IMAPMIG_TASK_STOP => t.store.stop(&t.name, sel)?,
                other => {
                    return Err(Failure::new(
                        imapmig_status::InvalidArgument,
                        format!("unknown task action {other}"),
                    ))
                }
            };
            let v =
                json!({"changed": r.changed, "requested": r.requested, "unchanged": r.unchanged});
            deliver(Ok(v.to_string()), out_json)
        })
    }
}

/// Supplies the source password or token of an account (the hook a platform calls when a
/// user logs in with the old password): a waiting or failed account starts. `*out_json`
/// (when not NULL): `[{"id","status"}]`.
///
/// # Safety
/// `t`: NULL or a live task. `account`, `secret`: NUL-terminated UTF-8. `out_json`, `err`:
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_supply_credentials(
    t: *mut imapmig_task,
    account: *const c_char,
    secret: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            reset(out_json);
            let t = task(t)?;
            let account = str_arg(account, "account")?;
            let secret = Secret::new(str_arg(secret, "secret")?);
            let changed = t.store.supply_credentials(&t.name, account, secret)?;
            let v: Vec<Value> = changed
                .into_iter()
                .map(|(id, status)| json!({"id": id, "status": status}))
                .collect();
            deliver(Ok(Value::Array(v).to_string()), out_json)
        })
    }
}

/// Runs the task's scheduler, blocking: migrates accounts within the limits, retries
/// transient failures, runs incremental passes until each window closes; with `until_idle`
/// non-zero it returns once nothing is running, due or scheduled. `progress` (may be NULL)
/// is called on this thread about once a second with a live snapshot (`{"seconds",
/// "statuses":[[status,n]],"running":[...],"hosts":[...],"copied","bytes"}`); returning
/// non-zero stops the run, as does `imapmig_task_cancel`: passes end at the next message
/// boundary and run again next time. `*out_summary_json` (when not NULL): the run's summary
/// (`{"passes","passes_synced","passes_failed","copied","bytes","seconds",...}`).
/// `IMAPMIG_STATUS_LOCKED` when another process runs the task.
///
/// # Safety
/// `t`: NULL or a live task. `user_data` is passed through untouched. `out_summary_json`,
/// `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_run(
    t: *mut imapmig_task,
    until_idle: c_int,
    progress: imapmig_progress_cb,
    user_data: *mut c_void,
    out_summary_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            reset(out_summary_json);
            let t = task(t)?;
            let rt = runtime()?;
            let cancel = CancellationToken::new();
            {
                let mut running = lock(&t.running);
                if running.as_ref().is_some_and(|c| !c.is_cancelled()) {
                    return Err(Failure::new(
                        imapmig_status::InvalidState,
                        "this task handle is already running",
                    ));
                }
                *running = Some(cancel.clone());
            }
            let (tx, mut rx) = unbounded_channel::<String>();
            let observer: imapmig_core::batch::SchedulerObserver =
                Arc::new(move |s: &LiveSnapshot| {
                    if let Ok(text) = serde_json::to_string(s) {
                        let _ = tx.send(text);
                    }
                });
            let options = SchedulerOptions {
                until_idle: until_idle != 0,
                ..SchedulerOptions::default()
            };
            let scheduler = Scheduler::new(t.store.clone(), t.name.clone()).with_options(options);
            let token = cancel.clone();
            let mut handle: tokio::task::JoinHandle<Result<RunSummary, BatchError>> =
                rt.spawn(async move { scheduler.run(token, Some(observer)).await });
            let outcome = loop {
                let (snapshots, done) = block_on(async {
                    let mut got = Vec::new();
                    let done = tokio::select! {
                        r = &mut handle => Some(r),
                        Some(s) = rx.recv() => { got.push(s); None }
                        _ = tokio::time::sleep(POLL) => None,
                    };
                    while let Ok(s) = rx.try_recv() {
                        got.push(s);
                    }
                    (got, done)
                })?;
                for s in snapshots {
                    if let (Some(cb), Ok(text)) = (progress, CString::new(s)) {
                        // SAFETY: the caller vouches for the callback; the text outlives it.
                        if cb(text.as_ptr(), user_data) != 0 {
                            cancel.cancel();
                        }
                    }
                }
                if let Some(r) = done {
                    break r;
                }
            };
            *lock(&t.running) = None;
            let summary = match outcome {
                Ok(r) => r?,
                Err(join) => {
                    return Err(Failure::new(
                        imapmig_status::Panic,
                        format!("internal panic in the scheduler: {join}"),
                    ))
                }
            };
            deliver(json_text(&summary), out_summary_json)
        })
    }
}

/// Stops the run of this handle (`imapmig_task_run` in another thread), which then returns
/// `IMAPMIG_STATUS_OK` with its summary. Returns at once; safe from any thread.
///
/// # Safety
/// `t`: NULL or a live task.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_cancel(t: *const imapmig_task) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(std::ptr::null_mut(), || {
            if let Some(c) = lock(&task(t)?.running).as_ref() {
                c.cancel();
            }
            Ok(imapmig_status::Ok)
        })
    }
}

/// Frees a task handle (the task stays in its state file). NULL is ignored. No other call on
/// the handle may be in progress or follow.
///
/// # Safety
/// `t`: NULL or a live task, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn imapmig_task_free(t: *mut imapmig_task) {
    guard_value((), || {
        if !t.is_null() {
            // SAFETY: the caller hands over a task from `Box::into_raw`, once.
            drop(unsafe { Box::from_raw(t) });
        }
    })
}
