//! The one-shot operations: check, analyze, verify, each blocking (GIL released, Ctrl-C
//! honoured) and as an awaitable.
//!
//! Each calls the same function of imapmig-core as `imapmig check|analyze|verify --json`, so
//! the dicts have the same fields.

use std::future::Future;

use imapmig_core::engine::{self, Account, Side};
use imapmig_core::net::Protocol;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;
use serde_json::Value;

use crate::account::Account as PyAccount;
use crate::errors::Raised;
use crate::options::{raise, Options};
use crate::values::to_python;
use crate::wait::block_interruptible;

type OpResult = Result<Value, Raised>;

fn to_value<T: Serialize>(v: &T) -> OpResult {
    serde_json::to_value(v).map_err(|e| {
        Raised::new(
            crate::errors::Kind::Internal,
            format!("cannot convert a result: {e}"),
        )
    })
}

/// `check` takes one account, which may be either side: the result and its errors name none.
async fn check_account(account: Account, pop3: bool) -> OpResult {
    let checked = if pop3 {
        engine::check_pop3(&account).await
    } else {
        engine::check(Side::Source, &account).await
    };
    let r = checked.map_err(|e| {
        let mut r = Raised::from(e);
        r.side = None;
        r
    })?;
    let mut v = to_value(&r)?;
    if let Value::Object(m) = &mut v {
        m.remove("side");
    }
    Ok(v)
}

/// The inputs of `analyze`, read while the GIL is held.
fn analyze_future(
    source: &Bound<'_, PyAny>,
    destination: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<impl Future<Output = OpResult> + Send + 'static> {
    let r = Options::from_dict(options)?.resolve(source, destination)?;
    Ok(async move {
        let out = engine::analyze(
            &r.source,
            r.destination.as_ref(),
            &r.options.plan,
            &r.options.filter,
        )
        .await?;
        to_value(&out)
    })
}

fn verify_future(
    source: &Bound<'_, PyAny>,
    destination: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<impl Future<Output = OpResult> + Send + 'static> {
    let r = Options::from_dict(options)?.resolve(source, Some(destination))?;
    let sink = r.destination().map_err(raise)?.clone();
    Ok(async move {
        let v =
            engine::verify_between(&r.source, &sink, &r.options.plan, &r.options.filter).await?;
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
    blocking(
        py,
        check_account(account.inner.clone(), account.protocol == Protocol::Pop3),
    )
}

/// Like `check`, as an awaitable.
#[pyfunction]
pub fn check_async<'py>(
    py: Python<'py>,
    account: PyRef<'py, PyAccount>,
) -> PyResult<Bound<'py, PyAny>> {
    awaitable(
        py,
        check_account(account.inner.clone(), account.protocol == Protocol::Pop3),
    )
}

/// Folders, counts, sizes, the plan (with a destination) and a time estimate.
#[pyfunction]
#[pyo3(signature = (source, destination=None, options=None))]
pub fn analyze<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    destination: Option<&Bound<'py, PyAny>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = analyze_future(source, destination, options)?;
    blocking(py, f)
}

/// Like `analyze`, as an awaitable.
#[pyfunction]
#[pyo3(signature = (source, destination=None, options=None))]
pub fn analyze_async<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    destination: Option<&Bound<'py, PyAny>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = analyze_future(source, destination, options)?;
    awaitable(py, f)
}

/// Compares source and destination message by message.
#[pyfunction]
#[pyo3(signature = (source, destination, options=None))]
pub fn verify<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    destination: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = verify_future(source, destination, options)?;
    blocking(py, f)
}

/// Like `verify`, as an awaitable.
#[pyfunction]
#[pyo3(signature = (source, destination, options=None))]
pub fn verify_async<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    destination: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = verify_future(source, destination, options)?;
    awaitable(py, f)
}
