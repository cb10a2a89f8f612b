//! Stopping long-running commands (`run`, `serve`) on SIGINT and SIGTERM: both cancel; SIGINT
//! is remembered, since it exits 130 where SIGTERM exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Cancels `cancel` on SIGINT (saying `said` on standard error) or SIGTERM. The flag returned
/// is set when it was SIGINT.
pub fn cancel_on_stop(cancel: &CancellationToken, said: &'static str) -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (c, i) = (cancel.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                errln!("{said}");
                i.store(true, Ordering::Relaxed);
                c.cancel();
            }
        });
    }
    #[cfg(unix)]
    {
        let c = cancel.clone();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::spawn(async move {
                if term.recv().await.is_some() {
                    c.cancel();
                }
            });
        }
    }
    interrupted
}
