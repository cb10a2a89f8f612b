//! `BatchTask`: a migration task with many accounts (imapmig_core::batch), from Python.
//!
//! Settings travel as the library's own JSON (`TaskSettings`' serde form), results as the
//! library's serializable reports, so nothing here decides anything: it opens the store, calls
//! it with the GIL released, and converts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use imapmig_core::batch::{
    BatchError, BatchErrorKind, BatchStore, EditScope, ImportOptions, LiveSnapshot, RunSummary,
    Scheduler, SchedulerOptions, Selection, TaskSettings,
};
use imapmig_core::config::SettingsPatch;
use imapmig_core::secret::Secret;
use pyo3::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

use crate::errors::{config_error, Kind, Raised};
use crate::runtime::runtime;
use crate::values::to_python;
use crate::wait::SLICE;

/// The batch layer's errors as exceptions: store failures are `StateError`, bad settings
/// `ConfigError`, the rest `BatchError` with a `kind` naming the case.
fn batch_error(e: BatchError) -> Raised {
    let (kind, name) = match e.kind() {
        BatchErrorKind::Store => (Kind::State, None),
        BatchErrorKind::Settings => (Kind::Config, None),
        BatchErrorKind::Csv => (Kind::Batch, Some("csv")),
        BatchErrorKind::UnknownTask => (Kind::Batch, Some("unknown_task")),
        BatchErrorKind::UnknownAccount => (Kind::Batch, Some("unknown_account")),
        BatchErrorKind::TaskExists => (Kind::Batch, Some("task_exists")),
        BatchErrorKind::Locked => (Kind::Batch, Some("locked")),
        BatchErrorKind::NotAllowed => (Kind::Batch, Some("not_allowed")),
        _ => (Kind::Internal, None),
    };
    let mut r = Raised::new(kind, e.to_string());
    r.kind_name = name;
    r
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn settings_from(json: &str) -> PyResult<TaskSettings> {
    serde_json::from_str(json).map_err(|e| config_error(format!("task settings: {e}")))
}

fn to_py<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(v).map_err(|e| {
        Raised::new(Kind::Internal, format!("cannot convert a result: {e}")).into_pyerr(py)
    })?;
    to_python(py, &json)
}

/// What travels from the scheduler to the caller.
enum Message {
    Snapshot(Value),
    Done(Result<RunSummary, BatchError>),
}

/// The native half of `imapmig.BatchTask` (see the Python class for the documentation).
#[pyclass(frozen, module = "imapmig._imapmig")]
pub struct BatchTask {
    store: Arc<BatchStore>,
    name: String,
    /// The run of this object, if any: its cancel switch and whether it is over.
    running: Mutex<Option<(CancellationToken, Arc<AtomicBool>)>>,
}

impl BatchTask {
    /// Runs a store call with the GIL released, its error as an exception.
    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        F: FnOnce(&BatchStore, &str) -> Result<T, BatchError> + Send,
        T: Send,
    {
        let store = &self.store;
        let name = self.name.as_str();
        py.detach(|| f(store, name))
            .map_err(|e| batch_error(e).into_pyerr(py))
    }

    fn open_store(py: Python<'_>, state: PathBuf) -> PyResult<Arc<BatchStore>> {
        py.detach(|| BatchStore::open(&state))
            .map(Arc::new)
            .map_err(|e| batch_error(e).into_pyerr(py))
    }

    fn start(
        &self,
        until_idle: bool,
        every: Duration,
    ) -> PyResult<(CancellationToken, UnboundedReceiver<Message>)> {
        let rt = runtime()?;
        let mut running = lock(&self.running);
        if running
            .as_ref()
            .is_some_and(|(_, over)| !over.load(Ordering::Acquire))
        {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this task is already running in this process",
            ));
        }
        let cancel = CancellationToken::new();
        let (tx, rx) = unbounded_channel();
        let snapshots = tx.clone();
        let observer: imapmig_core::batch::SchedulerObserver = Arc::new(move |s: &LiveSnapshot| {
            if let Ok(v) = serde_json::to_value(s) {
                let _ = snapshots.send(Message::Snapshot(v));
            }
        });
        let options = SchedulerOptions {
            until_idle,
            flush: every,
            ..SchedulerOptions::default()
        };
        let scheduler = Scheduler::new(self.store.clone(), self.name.clone()).with_options(options);
        let token = cancel.clone();
        let handle = rt.spawn(async move { scheduler.run(token, Some(observer)).await });
        let over = Arc::new(AtomicBool::new(false));
        let done = over.clone();
        rt.spawn(async move {
            let outcome = match handle.await {
                Ok(r) => r,
                Err(join) => Err(BatchError::Internal(format!(
                    "the scheduler panicked: {join}"
                ))),
            };
            // The run is over before the caller hears of it.
            done.store(true, Ordering::Release);
            let _ = tx.send(Message::Done(outcome));
        });
        *running = Some((cancel.clone(), over));
        Ok((cancel, rx))
    }
}

fn selection(accounts: &Option<Vec<String>>) -> Selection<'_> {
    match accounts {
        Some(names) => Selection::Names(names),
        None => Selection::All,
    }
}

fn control_report(r: imapmig_core::batch::ControlReport) -> Value {
    json!({"changed": r.changed, "requested": r.requested, "unchanged": r.unchanged})
}

#[pymethods]
impl BatchTask {
    /// Creates a task in the state file (created if missing).
    #[staticmethod]
    #[pyo3(signature = (state, name, settings_json, source_secret=None, destination_secret=None))]
    fn create(
        py: Python<'_>,
        state: PathBuf,
        name: String,
        settings_json: &str,
        source_secret: Option<String>,
        destination_secret: Option<String>,
    ) -> PyResult<Self> {
        let settings = settings_from(settings_json)?;
        let store = Self::open_store(py, state)?;
        let (ss, ds) = (
            source_secret.map(Secret::new),
            destination_secret.map(Secret::new),
        );
        py.detach(|| store.create_task(&name, &settings, ss, ds))
            .map_err(|e| batch_error(e).into_pyerr(py))?;
        Ok(BatchTask {
            store,
            name,
            running: Mutex::new(None),
        })
    }

    /// Opens an existing task.
    #[staticmethod]
    fn open(py: Python<'_>, state: PathBuf, name: String) -> PyResult<Self> {
        let store = Self::open_store(py, state)?;
        py.detach(|| store.task(&name))
            .map_err(|e| batch_error(e).into_pyerr(py))?;
        Ok(BatchTask {
            store,
            name,
            running: Mutex::new(None),
        })
    }

    /// The names of the tasks in a state file.
    #[staticmethod]
    fn names(py: Python<'_>, state: PathBuf) -> PyResult<Vec<String>> {
        let store = Self::open_store(py, state)?;
        py.detach(|| store.tasks())
            .map_err(|e| batch_error(e).into_pyerr(py))
    }

    /// The task's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The task's settings (never its secrets).
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let task = self.call(py, |s, n| s.task(n))?;
        to_py(py, &task.settings)
    }

    /// Edits the settings (only the fields given change); returns the names of those that
    /// changed.
    #[pyo3(signature = (settings_json, source_secret=None, destination_secret=None, apply_to="not_started"))]
    fn edit(
        &self,
        py: Python<'_>,
        settings_json: &str,
        source_secret: Option<String>,
        destination_secret: Option<String>,
        apply_to: &str,
    ) -> PyResult<Vec<String>> {
        let patch: SettingsPatch = serde_json::from_str(settings_json)
            .map_err(|e| config_error(format!("task settings: {e}")))?;
        let scope = match apply_to {
            "not_started" => EditScope::NotStarted,
            "all" => EditScope::All,
            other => {
                return Err(config_error(format!(
                    "apply_to={other:?}: expected \"not_started\" or \"all\""
                )))
            }
        };
        let (ss, ds) = (
            source_secret.map(Secret::new),
            destination_secret.map(Secret::new),
        );
        self.call(py, |s, n| patch.edit_task(s, n, ss, ds, scope))
    }

    /// Imports accounts from a CSV file.
    #[pyo3(signature = (path, skip_bad_rows=false, update_existing=false))]
    fn import_accounts<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        skip_bad_rows: bool,
        update_existing: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = ImportOptions {
            skip_bad_rows,
            update_existing,
        };
        let r = self.call(py, |s, n| s.import_csv(n, &path, options))?;
        let v = json!({
            "layout": r.layout,
            "header": r.header,
            "added": r.added,
            "updated": r.updated,
            "waiting_for_credentials": r.waiting_for_credentials,
            "skipped": r.skipped.iter().map(|e| json!({"line": e.line, "problem": e.problem.to_string()})).collect::<Vec<_>>(),
            "notes": r.notes,
        });
        to_python(py, &v)
    }

    /// Every account (or the named ones) with its status and progress.
    #[pyo3(signature = (accounts=None))]
    fn status<'py>(
        &self,
        py: Python<'py>,
        accounts: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let list = self.call(py, |s, n| match &accounts {
            Some(names) => s.accounts_named(n, names),
            None => s.accounts(n),
        })?;
        to_py(py, &list)
    }

    /// The task's totals.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.call(py, |s, n| s.summary(n))?;
        to_py(py, &s)
    }

    /// Pauses accounts (all when `accounts` is None).
    #[pyo3(signature = (accounts=None))]
    fn pause<'py>(
        &self,
        py: Python<'py>,
        accounts: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = self.call(py, |s, n| s.pause(n, selection(&accounts)))?;
        to_python(py, &control_report(r))
    }

    /// Resumes accounts (all when `accounts` is None).
    #[pyo3(signature = (accounts=None))]
    fn resume<'py>(
        &self,
        py: Python<'py>,
        accounts: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = self.call(py, |s, n| s.resume(n, selection(&accounts)))?;
        to_python(py, &control_report(r))
    }

    /// Stops accounts (all when `accounts` is None).
    #[pyo3(signature = (accounts=None))]
    fn stop<'py>(
        &self,
        py: Python<'py>,
        accounts: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = self.call(py, |s, n| s.stop(n, selection(&accounts)))?;
        to_python(py, &control_report(r))
    }

    /// Supplies an account's source password or token.
    fn supply_credentials<'py>(
        &self,
        py: Python<'py>,
        account: &str,
        password: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let secret = Secret::new(password);
        let changed = self.call(py, |s, n| s.supply_credentials(n, account, secret))?;
        let v: Vec<Value> = changed
            .into_iter()
            .map(|(id, status)| json!({"id": id, "status": status}))
            .collect();
        to_python(py, &Value::Array(v))
    }

    /// Audit records after `after` (an id), at most `limit`.
    #[pyo3(signature = (after=None, limit=None))]
    fn audit<'py>(
        &self,
        py: Python<'py>,
        after: Option<i64>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let records = self.call(py, |s, n| s.audit(n, after, limit.unwrap_or(usize::MAX)))?;
        to_py(py, &records)
    }

    /// Runs the scheduler (blocking, GIL released, Ctrl-C honoured); returns the summary.
    #[pyo3(signature = (until_idle=false, progress=None, progress_interval=1.0))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        until_idle: bool,
        progress: Option<Py<PyAny>>,
        progress_interval: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = runtime()?;
        let (cancel, mut rx) = self.start(until_idle, interval(progress_interval)?)?;
        let mut pending: Option<PyErr> = None;
        let outcome = 'outer: loop {
            let first =
                py.detach(|| rt.block_on(async { tokio::time::timeout(SLICE, rx.recv()).await }));
            let mut batch = Vec::new();
            match first {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => {
                    break Err(BatchError::Internal(
                        "the scheduler ended without an outcome".into(),
                    ))
                }
                Err(_) => {}
            }
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            for m in batch {
                match m {
                    Message::Snapshot(v) => {
                        if let (Some(cb), None) = (&progress, &pending) {
                            let called = to_python(py, &v).and_then(|s| cb.call1(py, (s,)));
                            if let Err(e) = called {
                                cancel.cancel();
                                pending = Some(e);
                            }
                        }
                    }
                    Message::Done(result) => break 'outer result,
                }
            }
            if pending.is_none() {
                if let Err(e) = py.check_signals() {
                    cancel.cancel();
                    pending = Some(e);
                }
            }
        };
        if let Some(e) = pending {
            return Err(e);
        }
        match outcome {
            Ok(summary) => to_py(py, &summary),
            Err(e) => Err(batch_error(e).into_pyerr(py)),
        }
    }

    /// Runs the scheduler as an awaitable; cancelling the task stops it.
    #[pyo3(signature = (until_idle=false, progress=None, progress_interval=1.0))]
    fn run_async<'py>(
        &self,
        py: Python<'py>,
        until_idle: bool,
        progress: Option<Py<PyAny>>,
        progress_interval: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let event_loop = match &progress {
            Some(_) => Some(
                pyo3_async_runtimes::tokio::get_current_locals(py)?
                    .event_loop(py)
                    .unbind(),
            ),
            None => None,
        };
        let (cancel, mut rx) = self.start(until_idle, interval(progress_interval)?)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let _cancel_if_dropped = cancel.drop_guard();
            let outcome = loop {
                match rx.recv().await {
                    Some(Message::Snapshot(v)) => {
                        if let (Some(cb), Some(lp)) = (&progress, &event_loop) {
                            Python::attach(|py| {
                                let delivered = to_python(py, &v).and_then(|s| {
                                    lp.bind(py)
                                        .call_method1("call_soon_threadsafe", (cb.clone_ref(py), s))
                                });
                                drop(delivered);
                            });
                        }
                    }
                    Some(Message::Done(r)) => break r,
                    None => {
                        break Err(BatchError::Internal(
                            "the scheduler ended without an outcome".into(),
                        ))
                    }
                }
            };
            Python::attach(|py| match outcome {
                Ok(summary) => to_py(py, &summary).map(Bound::unbind),
                Err(e) => Err(batch_error(e).into_pyerr(py)),
            })
        })
    }

    /// Stops a run of this object (passes end at the next message boundary).
    fn cancel(&self) {
        if let Some((c, _)) = lock(&self.running).as_ref() {
            c.cancel();
        }
    }

    /// Whether this object is running the task.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.running)
            .as_ref()
            .is_some_and(|(_, over)| !over.load(Ordering::Acquire))
    }
}

fn interval(seconds: f64) -> PyResult<Duration> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(config_error(format!(
            "progress_interval={seconds}: expected seconds > 0"
        )))
    }
}
