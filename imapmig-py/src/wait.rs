//! Waiting for the library without holding the GIL, while still noticing Ctrl-C.
//!
//! Python runs signal handlers only on the main thread and only while it holds the GIL, so a
//! call that blocks in Rust would make Ctrl-C wait until it returns. Instead the call runs on
//! the shared runtime and the calling thread waits in short slices with the GIL released,
//! taking it back between slices to let `check_signals` raise `KeyboardInterrupt`.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::{Kind, Raised};
use crate::runtime::runtime;

/// How long the caller waits with the GIL released before it looks at signals again.
pub const SLICE: Duration = Duration::from_millis(100);

/// Runs `future` to completion on the shared runtime. On Ctrl-C (any exception from
/// `check_signals`) the future is dropped and the exception raised: for read-only work
/// (check, analyze, verify) stopping anywhere is harmless.
pub fn block_interruptible<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let mut task = rt.spawn(future);
    loop {
        let waited =
            py.detach(|| rt.block_on(async { tokio::time::timeout(SLICE, &mut task).await }));
        match waited {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(join)) => {
                return Err(
                    Raised::new(Kind::Internal, format!("internal error: {join}")).into_pyerr(py),
                )
            }
            Err(_) => {
                if let Err(e) = py.check_signals() {
                    task.abort();
                    return Err(e);
                }
            }
        }
    }
}
