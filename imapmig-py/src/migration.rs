//! `Migration`: one account pair, run blocking (GIL released, Ctrl-C honoured, progress
//! callback on the calling thread) or awaited from asyncio; cancellable from any thread.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use imapmig_core::engine::{self, EngineError, MigrationOptions, MigrationReport};
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::SourceSpec;
use imapmig_core::state::StateStore;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::errors::{config_error, Raised};
use crate::events;
use crate::options::{raise, Options};
use crate::runtime::runtime;
use crate::values::to_python;
use crate::wait::SLICE;

/// What travels from the engine to the caller.
enum Message {
    Event(Value),
    // Boxed: the report is large and sent once; events are many and small.
    Done(Box<Result<MigrationReport, EngineError>>),
}

/// One run: its cancel switch and whether it is over.
struct Run {
    cancel: CancellationToken,
    done: watch::Sender<bool>,
}

impl Run {
    fn is_over(&self) -> bool {
        *self.done.borrow()
    }
}

/// Cancels the run when the awaiting Python task is cancelled (its future is dropped then).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The report as a dict, with `"complete"` added.
fn report_to_python<'py>(py: Python<'py>, report: &MigrationReport) -> PyResult<Bound<'py, PyAny>> {
    let mut v = serde_json::to_value(report)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot convert the report: {e}")))?;
    if let Value::Object(m) = &mut v {
        m.insert("complete".into(), report.is_complete().into());
    }
    to_python(py, &v)
}

fn interval(seconds: f64) -> PyResult<Duration> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(config_error(format!(
            "progress_interval={seconds}: expected seconds >= 0"
        )))
    }
}

/// The native half of `imapmig.Migration` (see the Python class for the documentation).
#[pyclass(frozen, module = "imapmig._imapmig")]
pub struct Migration {
    source: SourceSpec,
    destination: SinkSpec,
    options: MigrationOptions,
    state: Arc<dyn StateStore>,
    current: Mutex<Option<Arc<Run>>>,
}

impl Migration {
    fn start(&self, every: Duration) -> PyResult<(Arc<Run>, UnboundedReceiver<Message>)> {
        let rt = runtime()?;
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|r| !r.is_over()) {
            return Err(PyRuntimeError::new_err("this migration is already running"));
        }
        let (tx, rx) = unbounded_channel();
        let run = Arc::new(Run {
            cancel: CancellationToken::new(),
            done: watch::Sender::new(false),
        });
        let event_tx = tx.clone();
        let progress = events::sink(every, move |v| {
            let _ = event_tx.send(Message::Event(v));
        });
        let (src, dst, opts, state, cancel) = (
            self.source.clone(),
            self.destination.clone(),
            self.options.clone(),
            self.state.clone(),
            run.cancel.clone(),
        );
        // The engine runs in a task of its own so that even a panic in it ends the run with
        // an outcome.
        let engine = rt.spawn(async move {
            engine::migrate_between(&src, &dst, &opts, state, Some(progress), cancel).await
        });
        let finished = run.clone();
        rt.spawn(async move {
            let outcome = match engine.await {
                Ok(r) => r,
                Err(join) => Err(EngineError::Internal(format!(
                    "the migration panicked: {join}"
                ))),
            };
            // Over before the caller hears of it, so that it can start the next run at once.
            finished.done.send_replace(true);
            let _ = tx.send(Message::Done(Box::new(outcome)));
        });
        *current = Some(run.clone());
        Ok((run, rx))
    }

    fn current(&self) -> Option<Arc<Run>> {
        lock(&self.current).clone()
    }
}

#[pymethods]
impl Migration {
    #[new]
    #[pyo3(signature = (source, destination, options=None))]
    fn new(
        source: &Bound<'_, PyAny>,
        destination: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut r = Options::from_dict(options)?.resolve(source, Some(destination))?;
        let destination = r.destination().map_err(raise)?.clone();
        let state = r.open_state().map_err(raise)?;
        Ok(Migration {
            source: r.source,
            destination,
            options: r.options,
            state,
            current: Mutex::new(None),
        })
    }

    /// Runs to the end and returns the report. Blocks with the GIL released; `progress` is
    /// called on this thread. Ctrl-C, or an exception from `progress`, cancels the run, waits
    /// for it to stop at a message boundary and re-raises.
    #[pyo3(signature = (progress=None, progress_interval=0.1))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        progress: Option<Py<PyAny>>,
        progress_interval: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rt = runtime()?;
        let (run, mut rx) = self.start(interval(progress_interval)?)?;
        let mut pending: Option<PyErr> = None;
        let outcome = 'outer: loop {
            let first =
                py.detach(|| rt.block_on(async { tokio::time::timeout(SLICE, rx.recv()).await }));
            let mut batch = Vec::new();
            match first {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => {
                    break Err(EngineError::Internal(
                        "the migration ended without an outcome".into(),
                    ))
                }
                Err(_) => {}
            }
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            for m in batch {
                match m {
                    Message::Event(v) => {
                        if let (Some(cb), None) = (&progress, &pending) {
                            let called = to_python(py, &v).and_then(|ev| cb.call1(py, (ev,)));
                            if let Err(e) = called {
                                run.cancel.cancel();
                                pending = Some(e);
                            }
                        }
                    }
                    Message::Done(result) => break 'outer *result,
                }
            }
            if pending.is_none() {
                if let Err(e) = py.check_signals() {
                    run.cancel.cancel();
                    pending = Some(e);
                }
            }
        };
        if let Some(e) = pending {
            return Err(e);
        }
        match outcome {
            Ok(report) => report_to_python(py, &report),
            Err(e) => Err(Raised::from(e).into_pyerr(py)),
        }
    }

    /// Runs to the end as an awaitable. `progress` is called on the event loop
    /// (`call_soon_threadsafe`). Cancelling the awaiting task cancels the run, which stops at
    /// the next message boundary.
    #[pyo3(signature = (progress=None, progress_interval=0.1))]
    fn run_async<'py>(
        &self,
        py: Python<'py>,
        progress: Option<Py<PyAny>>,
        progress_interval: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let every = interval(progress_interval)?;
        let event_loop = match &progress {
            Some(_) => Some(
                pyo3_async_runtimes::tokio::get_current_locals(py)?
                    .event_loop(py)
                    .unbind(),
            ),
            None => None,
        };
        let (run, mut rx) = self.start(every)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let _cancel_if_dropped = CancelOnDrop(run.cancel.clone());
            let outcome = loop {
                match rx.recv().await {
                    Some(Message::Event(v)) => {
                        if let (Some(cb), Some(lp)) = (&progress, &event_loop) {
                            Python::attach(|py| {
                                let delivered = to_python(py, &v).and_then(|ev| {
                                    lp.bind(py).call_method1(
                                        "call_soon_threadsafe",
                                        (cb.clone_ref(py), ev),
                                    )
                                });
                                // A closed loop has nobody left to tell.
                                drop(delivered);
                            });
                        }
                    }
                    Some(Message::Done(r)) => break *r,
                    None => {
                        break Err(EngineError::Internal(
                            "the migration ended without an outcome".into(),
                        ))
                    }
                }
            };
            Python::attach(|py| match outcome {
                Ok(report) => report_to_python(py, &report).map(Bound::unbind),
                Err(e) => Err(Raised::from(e).into_pyerr(py)),
            })
        })
    }

    /// Asks the current run to stop at the next message boundary; returns at once. Safe from
    /// any thread; does nothing when no run is under way.
    fn cancel(&self) {
        if let Some(run) = self.current() {
            run.cancel.cancel();
        }
    }

    /// Whether a run is under way.
    #[getter]
    fn running(&self) -> bool {
        self.current().is_some_and(|r| !r.is_over())
    }

    /// An awaitable that completes when the current run (if any) has stopped.
    fn stopped_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut done = self.current().map(|r| r.done.subscribe());
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if let Some(rx) = done.as_mut() {
                let _ = rx.wait_for(|over| *over).await;
            }
            Ok(())
        })
    }
}
