//! The migration handle: one account pair, run blocking with a callback or in the background
//! with a pull-based event queue, cancellable from any thread.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use imapmig_core::engine::{self, MigrationReport};
use serde_json::{json, Value};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MigrationSetup};
use crate::error::{c_string, guard, guard_value, imapmig_error, out_arg, str_arg};
use crate::events;
use crate::runtime::{block_on, runtime};
use crate::status::{imapmig_status, Failure};

/// How often a blocking run looks at the queue (and so how soon a callback sees an event).
const POLL: Duration = Duration::from_millis(50);

/// What travels from the engine to the reader of events.
enum Message {
    Event(String),
    /// The last event of a run: `finished` or `failed`.
    End(String),
}

/// One run of the migration.
struct Run {
    cancel: CancellationToken,
    events: tokio::sync::Mutex<UnboundedReceiver<Message>>,
    /// Set once the last event was handed out: later reads say `FINISHED`.
    drained: AtomicBool,
    outcome: Mutex<Option<Result<String, Failure>>>,
    done: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Run {
    fn is_over(&self) -> bool {
        lock(&self.outcome).is_some()
    }

    fn finish(&self, outcome: Result<String, Failure>) {
        *lock(&self.outcome) = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<String, Failure> {
        let mut g = lock(&self.outcome);
        loop {
            if let Some(o) = g.as_ref() {
                return o.clone();
            }
            g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A migration of one account pair, configured once, run any number of times (a run after a
/// finished or cancelled one copies only what is still missing). Created with
/// `imapmig_migration_new`, freed with `imapmig_migration_free`.
pub struct imapmig_migration {
    setup: MigrationSetup,
    current: Mutex<Option<Arc<Run>>>,
}

/// The report as JSON, with `"complete"` added.
pub fn report_json(report: &MigrationReport) -> String {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("complete".into(), report.is_complete().into());
    }
    v.to_string()
}

impl imapmig_migration {
    fn current(&self) -> Option<Arc<Run>> {
        lock(&self.current).clone()
    }

    fn start(&self) -> Result<(), Failure> {
        let rt = runtime()?;
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|r| !r.is_over()) {
            return Err(Failure::new(
                imapmig_status::InvalidState,
                "the migration is already running",
            ));
        }
        let (tx, rx) = unbounded_channel();
        let run = Arc::new(Run {
            cancel: CancellationToken::new(),
            events: tokio::sync::Mutex::new(rx),
            drained: AtomicBool::new(false),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        let s = &self.setup;
        let (src, dst, opts, state) = (
            s.source.clone(),
            s.destination.clone(),
            s.options.clone(),
            s.state.clone(),
        );
        let (event_tx, cancel) = (tx.clone(), run.cancel.clone());
        let progress = events::sink(s.progress_interval, move |v| {
            let _ = event_tx.send(Message::Event(v.to_string()));
        });
        // The engine runs in a task of its own, so that even a panic in it ends the run with
        // an outcome (and the waiters wake up).
        let engine = rt.spawn(async move {
            engine::migrate_between(&src, &dst, &opts, state, Some(progress), cancel).await
        });
        let finished = run.clone();
        rt.spawn(async move {
            let outcome = match engine.await {
                Ok(Ok(report)) => Ok(report_json(&report)),
                Ok(Err(e)) => Err(Failure::from(e)),
                Err(join) => Err(Failure::new(
                    imapmig_status::Panic,
                    format!("internal panic in the migration: {join}"),
                )),
            };
            // Over before the reader hears of it, so that it can start the next run at once.
            let end = end_event(&outcome);
            finished.finish(outcome);
            let _ = tx.send(Message::End(end));
        });
        *current = Some(run);
        Ok(())
    }

    fn next_event(&self, timeout: Duration) -> Result<(imapmig_status, Option<String>), Failure> {
        let run = self.current().ok_or_else(|| {
            Failure::new(
                imapmig_status::InvalidState,
                "the migration was never started",
            )
        })?;
        if run.drained.load(Ordering::Acquire) {
            return Ok((imapmig_status::Finished, None));
        }
        let received = block_on(async {
            let mut rx = run.events.lock().await;
            if timeout.is_zero() {
                return match rx.try_recv() {
                    Ok(m) => Some(Some(m)),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => Some(None),
                };
            }
            tokio::time::timeout(timeout, rx.recv()).await.ok()
        })?;
        Ok(match received {
            None => (imapmig_status::Timeout, None),
            Some(Some(Message::Event(e))) => (imapmig_status::Ok, Some(e)),
            Some(Some(Message::End(e))) => {
                run.drained.store(true, Ordering::Release);
                (imapmig_status::Ok, Some(e))
            }
            Some(None) => {
                run.drained.store(true, Ordering::Release);
                (imapmig_status::Finished, None)
            }
        })
    }

    fn wait(&self) -> Result<String, Failure> {
        let run = self.current().ok_or_else(|| {
            Failure::new(
                imapmig_status::InvalidState,
                "the migration was never started",
            )
        })?;
        run.wait()
    }
}

fn end_event(outcome: &Result<String, Failure>) -> String {
    match outcome {
        Ok(report) => {
            let report: Value = serde_json::from_str(report).unwrap_or_default();
            json!({"type": "finished", "report": report})
        }
        Err(f) => json!({"type": "failed", "error": f.to_json()}),
    }
    .to_string()
}

/// The handle behind a pointer.
///
/// # Safety
/// `m` is NULL or a live handle.
unsafe fn handle<'a>(m: *const imapmig_migration) -> Result<&'a imapmig_migration, Failure> {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { m.as_ref() }.ok_or_else(|| {
        Failure::new(
            imapmig_status::InvalidArgument,
            "the migration handle is NULL",
        )
    })
}

/// Writes the report (when asked for) or turns the failure into the status.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn deliver(
    outcome: Result<String, Failure>,
    out: *mut *mut c_char,
) -> Result<imapmig_status, Failure> {
    let report = outcome?;
    if !out.is_null() {
        // SAFETY: the caller promises it is writable.
        unsafe { out.write(c_string(report)) };
    }
    Ok(imapmig_status::Ok)
}

/// Creates a migration from a JSON configuration (see the top of this header). Checks the
/// configuration and opens (creating it if needed) the sync-state file; does not connect.
///
/// # Safety
/// `json_config`: NUL-terminated UTF-8, only read during the call. `out`: writable; receives
/// the handle (NULL on failure), to be freed with `imapmig_migration_free`. `err`: NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_new(
    json_config: *const c_char,
    out: *mut *mut imapmig_migration,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: the caller's promises are the ones these helpers need.
    unsafe {
        guard(err, || {
            out_arg(out, "out")?;
            let config = Config::parse(str_arg(json_config, "json_config")?)?;
            let setup = config.migration()?;
            let m = Box::new(imapmig_migration {
                setup,
                current: Mutex::new(None),
            });
            out.write(Box::into_raw(m));
            Ok(imapmig_status::Ok)
        })
    }
}

/// Starts a run in the background and returns at once. Read its events with
/// `imapmig_next_event`, its outcome with `imapmig_migration_wait`. Fails with
/// `IMAPMIG_STATUS_INVALID_STATE` while a run is under way; after a run is over, starts a new
/// one (which copies only what is still missing).
///
/// # Safety
/// `m`: NULL or a live handle. `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_start(
    m: *mut imapmig_migration,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            handle(m)?.start()?;
            Ok(imapmig_status::Ok)
        })
    }
}

/// Waits up to `timeout_ms` milliseconds (0: do not wait) for the next event of the current
/// run. Returns `IMAPMIG_STATUS_OK` with the event as a JSON object in `*out_json` (free it
/// with `imapmig_string_free`), `IMAPMIG_STATUS_TIMEOUT` when none came (`*out_json` NULL),
/// or `IMAPMIG_STATUS_FINISHED` once the run's last event (`finished` or `failed`) has been
/// read. Needs no callback: the shape Go and event loops want. One reader at a time.
///
/// # Safety
/// `m`: NULL or a live handle. `out_json`: writable. `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_next_event(
    m: *mut imapmig_migration,
    timeout_ms: u32,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            out_arg(out_json, "out_json")?;
            let m = handle(m)?;
            let (status, event) = m.next_event(Duration::from_millis(u64::from(timeout_ms)))?;
            if let Some(e) = event {
                out_json.write(c_string(e));
            }
            Ok(status)
        })
    }
}

/// Blocks until the current run is over and returns its outcome: `IMAPMIG_STATUS_OK` with
/// the report in `*out_report_json` (when that is not NULL; free it with
/// `imapmig_string_free`), or the run's error status and error object. Does not consume
/// events; any number of threads may wait.
///
/// # Safety
/// `m`: NULL or a live handle. `out_report_json`, `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_wait(
    m: *mut imapmig_migration,
    out_report_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            if !out_report_json.is_null() {
                out_report_json.write(std::ptr::null_mut());
            }
            deliver(handle(m)?.wait(), out_report_json)
        })
    }
}

/// A progress callback: receives each event as a JSON object (UTF-8, NUL-terminated, valid
/// only during the call) and the `user_data` given to `imapmig_migration_run`. Returning
/// non-zero cancels the migration (it stops at the next message boundary).
pub type imapmig_progress_cb =
    Option<unsafe extern "C" fn(event_json: *const c_char, user_data: *mut c_void) -> c_int>;

/// Runs the migration to the end, blocking, calling `progress` (may be NULL) on the calling
/// thread with every event `imapmig_next_event` would return, the last one included. Returns
/// like `imapmig_migration_wait`: `IMAPMIG_STATUS_OK` and the report, or the error
/// (`IMAPMIG_STATUS_CANCELLED` after a callback returned non-zero or
/// `imapmig_migration_cancel` was called).
///
/// # Safety
/// `m`: NULL or a live handle. `user_data` is passed through untouched. `out_report_json`,
/// `err`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_run(
    m: *mut imapmig_migration,
    progress: imapmig_progress_cb,
    user_data: *mut c_void,
    out_report_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(err, || {
            if !out_report_json.is_null() {
                out_report_json.write(std::ptr::null_mut());
            }
            let m = handle(m)?;
            m.start()?;
            loop {
                match m.next_event(POLL)? {
                    (imapmig_status::Finished, _) => break,
                    (_, Some(event)) => {
                        if let (Some(cb), Ok(text)) = (progress, CString::new(event)) {
                            // SAFETY: the caller vouches for the callback; the text lives
                            // until after the call.
                            if cb(text.as_ptr(), user_data) != 0 {
                                if let Some(run) = m.current() {
                                    run.cancel.cancel();
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            deliver(m.wait(), out_report_json)
        })
    }
}

/// Asks the current run to stop at the next message boundary; returns at once. Everything
/// copied so far is recorded, and a later run resumes. Safe to call from any thread, at any
/// time (before a run or after it, it does nothing).
///
/// # Safety
/// `m`: NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_cancel(m: *const imapmig_migration) -> imapmig_status {
    // SAFETY: as documented.
    unsafe {
        guard(std::ptr::null_mut(), || {
            if let Some(run) = handle(m)?.current() {
                run.cancel.cancel();
            }
            Ok(imapmig_status::Ok)
        })
    }
}

/// Frees a migration handle. A run still under way is cancelled first and waited for (it
/// stops at a message boundary, so the sync state stays exact). NULL is ignored. No other
/// call on the handle may be in progress or follow.
///
/// # Safety
/// `m`: NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn imapmig_migration_free(m: *mut imapmig_migration) {
    guard_value((), || {
        if m.is_null() {
            return;
        }
        // SAFETY: the caller hands over a handle from `Box::into_raw`, once.
        let m = unsafe { Box::from_raw(m) };
        if let Some(run) = m.current() {
            run.cancel.cancel();
            let _ = run.wait();
        }
    })
}

/// The library's version, e.g. `"0.1.0"`: a static string.
#[no_mangle]
pub extern "C" fn imapmig_version() -> *const c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    guard_value(VERSION.as_ptr(), || VERSION.as_ptr())
}
