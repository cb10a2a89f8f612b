//! Python bindings for imapmig: the native half of the `imapmig` package (`imapmig._imapmig`).
//!
//! A thin face over imapmig-core. The public API, with its keyword arguments and docstrings,
//! is the Python module `python/imapmig/__init__.py`; it normalizes Python values (paths,
//! dates) and calls in here, where they become the library's types. Results come back as
//! plain dicts and lists (the same JSON shapes as the CLI's `--json` output and the C API),
//! errors as the exception hierarchy of `imapmig.errors`.
//!
//! Every call that waits releases the GIL, on the shared tokio runtime; the blocking forms
//! wake every 100 ms to let Python run signal handlers, so Ctrl-C works; the async forms are
//! awaitables from pyo3-async-runtimes on the same runtime.

#![forbid(unsafe_code)]

mod account;
mod batch;
mod errors;
mod events;
mod migration;
mod ops;
mod options;
mod runtime;
mod values;
mod wait;

use pyo3::prelude::*;

/// The native half of the imapmig package; use `import imapmig`.
#[pymodule]
mod _imapmig {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::account::Account;
    #[pymodule_export]
    use super::batch::BatchTask;
    #[pymodule_export]
    use super::migration::Migration;
    #[pymodule_export]
    use super::ops::{analyze, analyze_async, check, check_async, verify, verify_async};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        super::init_runtime()
    }
}

/// Hands the shared runtime to pyo3-async-runtimes, so both forms use one.
fn init_runtime() -> PyResult<()> {
    let rt = runtime::runtime()?;
    // Already set when the module is initialised a second time (subinterpreters): fine.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    Ok(())
}
