//! The one tokio runtime every call runs on, started on first use.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::status::{imapmig_status, Failure};

/// The shared runtime, or why it could not start.
pub fn runtime() -> Result<&'static Runtime, Failure> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("imapmig")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Failure::new(
                imapmig_status::Internal,
                format!("cannot start the I/O runtime: {e}"),
            )
        })
}

/// Runs a future to completion on the shared runtime, blocking the calling thread.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    Ok(runtime()?.block_on(future))
}
