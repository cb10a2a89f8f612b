//! The one-shot operations: check, analyze, verify, each blocking (GIL released, Ctrl-C
//! honoured) and as an awaitable.
//!
//! `check` and `analyze` exist today only in the CLI (imapmig-cli/src/main.rs); until they
//! move into imapmig-core they are repeated here step for step, calling the same core pieces
//! and giving the same fields as `imapmig check --json` and `imapmig analyze --json`.

use std::future::Future;
use std::time::Instant;

use imapmig_core::engine::{self, Account, EngineError, Side};
use imapmig_core::imap::{ImapError, Session};
use imapmig_core::model::Uid;
use imapmig_core::sink::{MigrationSink, SinkSpec};
use imapmig_core::source::{MigrationSource, SourceSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;
use serde_json::Value;

use crate::account::Account as PyAccount;
use crate::errors::Raised;
use crate::options::Options;
use crate::values::to_python;
use crate::wait::block_interruptible;

type OpResult = Result<Value, Raised>;

fn server_error(side: Side) -> impl Fn(ImapError) -> Raised {
    move |source| {
        Raised::from(EngineError::Server {
            side,
            source: source.into(),
        })
    }
}

fn to_value<T: Serialize>(v: &T) -> OpResult {
    serde_json::to_value(v).map_err(|e| {
        Raised::new(
            crate::errors::Kind::Internal,
            format!("cannot convert a result: {e}"),
        )
    })
}

#[derive(Serialize)]
struct CheckResult {
    host: String,
    port: u16,
    tls: bool,
    greeting: String,
    logged_in_as: String,
    capabilities: Vec<String>,
    folders: usize,
    namespace_prefix: String,
    separator: Option<String>,
    seconds: f64,
}

async fn check_account(account: Account) -> OpResult {
    let started = Instant::now();
    let e = server_error(Side::Source);
    let mut s = Session::connect(&account.endpoint).await.map_err(&e)?;
    let greeting = s.greeting().to_string();
    s.login(&account.credentials).await.map_err(&e)?;
    let folders = s.list().await.map_err(&e)?;
    let ns = s.namespace().await.map_err(&e)?;
    let r = CheckResult {
        host: account.endpoint.host.clone(),
        port: account.endpoint.port,
        tls: s.is_tls(),
        greeting,
        logged_in_as: account.credentials.mailbox_user().to_string(),
        capabilities: s.capabilities().list(),
        folders: folders.len(),
        namespace_prefix: ns.prefix,
        separator: ns
            .delimiter
            .or_else(|| folders.iter().find_map(|f| f.delimiter))
            .map(String::from),
        seconds: started.elapsed().as_secs_f64(),
    };
    s.logout().await;
    to_value(&r)
}

#[derive(Serialize, Default)]
struct Analysis {
    folders: Vec<FolderAnalysis>,
    messages: u64,
    bytes: u64,
    over_size_limit: u64,
    plan: Option<String>,
    plan_notes: Vec<String>,
    sample_read_mb_per_s: Option<f64>,
    estimated_seconds: Option<f64>,
}

#[derive(Serialize)]
struct FolderAnalysis {
    name: String,
    special_use: Option<String>,
    messages: u64,
    bytes: u64,
    largest: u64,
}

/// The inputs of `analyze`, read while the GIL is held.
fn analyze_future(
    source: &PyAccount,
    destination: Option<&PyAccount>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<impl Future<Output = OpResult> + Send + 'static> {
    let source = source.inner.clone();
    let destination = destination.map(|d| d.inner.clone());
    let o = Options::from_dict(options)?;
    let plan_options = o.plan(source.credentials.mailbox_user())?;
    let filter = o.filter()?;
    Ok(async move {
        let e = server_error(Side::Source);
        let mut out = Analysis::default();
        if let Some(destination) = destination {
            let (p, s, d) = engine::plan(
                &SourceSpec::Imap(source.clone()),
                &SinkSpec::Imap(destination),
                &plan_options,
            )
            .await?;
            out.plan = Some(p.render());
            out.plan_notes = p.notes.clone();
            s.close().await;
            d.close().await;
        }
        let mut s = source.open().await.map_err(&e)?;
        let folders = s.list().await.map_err(&e)?;
        let mut sample: Option<(String, Vec<Uid>)> = None;
        for f in folders.iter().filter(|f| f.selectable()) {
            s.examine(&f.raw).await.map_err(&e)?;
            let metas = s.fetch_meta("1:*", None).await.map_err(&e)?;
            let bytes: u64 = metas.iter().map(|m| m.size).sum();
            if let Some(limit) = filter.max_size {
                out.over_size_limit += metas.iter().filter(|m| m.size > limit).count() as u64;
            }
            if sample
                .as_ref()
                .is_none_or(|(_, u)| u.len() < metas.len().min(50))
            {
                sample = Some((
                    f.raw.clone(),
                    metas.iter().rev().take(50).map(|m| m.uid).collect(),
                ));
            }
            out.messages += metas.len() as u64;
            out.bytes += bytes;
            out.folders.push(FolderAnalysis {
                name: f.name.clone(),
                special_use: f.special_use.map(|u| u.name().to_string()),
                messages: metas.len() as u64,
                bytes,
                largest: metas.iter().map(|m| m.size).max().unwrap_or(0),
            });
        }
        if let Some((raw, uids)) = sample.filter(|(_, u)| !u.is_empty()) {
            s.examine(&raw).await.map_err(&e)?;
            let t = Instant::now();
            let bodies = s.fetch_bodies_collected(&uids).await.map_err(&e)?;
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            let bytes: usize = bodies.iter().map(|(_, b)| b.len()).sum();
            let rate = bytes as f64 / secs;
            if rate > 0.0 {
                out.sample_read_mb_per_s = Some(rate / 1e6);
                out.estimated_seconds = Some(out.bytes as f64 / rate);
            }
        }
        s.logout().await;
        to_value(&out)
    })
}

fn verify_future(
    source: &PyAccount,
    destination: &PyAccount,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<impl Future<Output = OpResult> + Send + 'static> {
    let source = source.inner.clone();
    let destination = destination.inner.clone();
    let o = Options::from_dict(options)?;
    let plan_options = o.plan(source.credentials.mailbox_user())?;
    let filter = o.filter()?;
    Ok(async move {
        let v = engine::verify(&source, &destination, &plan_options, &filter).await?;
        let mut json = to_value(&v)?;
        if let Value::Object(m) = &mut json {
            m.insert("identical".into(), v.is_identical().into());
        }
        Ok(json)
    })
}

fn finish(py: Python<'_>, result: OpResult) -> PyResult<Bound<'_, PyAny>> {
    match result {
        Ok(v) => to_python(py, &v),
        Err(e) => Err(e.into_pyerr(py)),
    }
}

fn blocking<'py, F>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = OpResult> + Send + 'static,
{
    let result = block_interruptible(py, future)?;
    finish(py, result)
}

fn awaitable<'py, F>(py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = OpResult> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let result = future.await;
        Python::attach(|py| finish(py, result).map(Bound::unbind))
    })
}

/// Connects, logs in, lists folders; a dict describing the server.
#[pyfunction]
pub fn check<'py>(py: Python<'py>, account: PyRef<'py, PyAccount>) -> PyResult<Bound<'py, PyAny>> {
    blocking(py, check_account(account.inner.clone()))
}

/// Like `check`, as an awaitable.
#[pyfunction]
pub fn check_async<'py>(
    py: Python<'py>,
    account: PyRef<'py, PyAccount>,
) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, check_account(account.inner.clone()))
}

/// Folders, counts, sizes, the plan (with a destination) and a time estimate.
#[pyfunction]
#[pyo3(signature = (source, destination=None, options=None))]
pub fn analyze<'py>(
    py: Python<'py>,
    source: PyRef<'py, PyAccount>,
    destination: Option<PyRef<'py, PyAccount>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = analyze_future(&source, destination.as_deref(), options)?;
    blocking(py, f)
}

/// Like `analyze`, as an awaitable.
#[pyfunction]
#[pyo3(signature = (source, destination=None, options=None))]
pub fn analyze_async<'py>(
    py: Python<'py>,
    source: PyRef<'py, PyAccount>,
    destination: Option<PyRef<'py, PyAccount>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = analyze_future(&source, destination.as_deref(), options)?;
    awaitable(py, f)
}

/// Compares source and destination message by message.
#[pyfunction]
#[pyo3(signature = (source, destination, options=None))]
pub fn verify<'py>(
    py: Python<'py>,
    source: PyRef<'py, PyAccount>,
    destination: PyRef<'py, PyAccount>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = verify_future(&source, &destination, options)?;
    blocking(py, f)
}

/// Like `verify`, as an awaitable.
#[pyfunction]
#[pyo3(signature = (source, destination, options=None))]
pub fn verify_async<'py>(
    py: Python<'py>,
    source: PyRef<'py, PyAccount>,
    destination: PyRef<'py, PyAccount>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = verify_future(&source, &destination, options)?;
    awaitable(py, f)
}
