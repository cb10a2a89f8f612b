//! What every handler shares: the store, the options, the key that signs cookies and CSRF
//! tokens, the admin sessions, the rate limits and the throughput sampler.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imapmig_core::batch::{BatchError, BatchStore};

use crate::error::{AppError, AppResult};
use crate::keys::{Sessions, SigningKey, TokenCache};
use crate::options::ServeOptions;

/// The console's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// See [`AppState`].
pub struct Inner {
    /// The batch store (tasks, accounts, audit log, sync state).
    pub store: Arc<BatchStore>,
    /// How the console was started.
    pub options: ServeOptions,
    /// Signs session cookies and CSRF tokens.
    pub key: SigningKey,
    /// Live admin sessions.
    pub sessions: Sessions,
    /// Admin tokens already checked against the argon2 hash (by SHA-256), so that API calls
    /// with a bearer token do not pay for argon2 every time.
    pub tokens: TokenCache,
    /// Attempts per key (client address, account), for rate limits.
    pub attempts: RateLimiter,
    /// The store's totals sampled every few seconds, for throughput now.
    pub throughput: crate::pace::Throughput,
}

impl AppState {
    /// The state for a console over `store`.
    /// The throughput sampler starts here when a Tokio runtime is running (else at the first
    /// overview asked for).
    pub fn new(store: Arc<BatchStore>, options: ServeOptions, key: SigningKey) -> AppState {
        let state = AppState(Arc::new(Inner {
            store,
            options,
            key,
            sessions: Sessions::default(),
            tokens: TokenCache::default(),
            attempts: RateLimiter::default(),
            throughput: crate::pace::Throughput::default(),
        }));
        if tokio::runtime::Handle::try_current().is_ok() {
            state.throughput.start(state.store.clone());
        }
        state
    }

    /// Runs a store call on a blocking thread (SQLite may wait for another process's write)
    /// and turns its failure into a page error.
    pub async fn with_store<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&BatchStore) -> Result<T, BatchError> + Send + 'static,
    {
        let store = self.0.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(AppError::store),
            Err(e) => Err(AppError::page(
                crate::error::ErrorKind::Internal,
                format!("store call: {e}"),
            )),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A sliding-window rate limit per key: at most `limit` attempts per `window`.
#[derive(Default)]
pub struct RateLimiter {
    seen: Mutex<HashMap<String, Vec<Instant>>>,
}

impl RateLimiter {
    /// Counts an attempt under `key`; `false` when the key has used up `limit` attempts in the
    /// last `window` (the attempt is then not counted).
    pub fn allow(&self, key: &str, limit: usize, window: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < window));
        }
        let v = seen.entry(key.to_string()).or_default();
        v.retain(|t| now.duration_since(*t) < window);
        if v.len() >= limit {
            return false;
        }
        v.push(now);
        true
    }

    /// The key for a client address.
    pub fn client(kind: &str, ip: IpAddr) -> String {
        format!("{kind}/ip/{ip}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_per_key_and_the_window_slides() {
        let r = RateLimiter::default();
        let w = Duration::from_millis(200);
        assert!(r.allow("a", 2, w));
        assert!(r.allow("a", 2, w));
        assert!(!r.allow("a", 2, w));
        assert!(r.allow("b", 2, w));
        std::thread::sleep(Duration::from_millis(250));
        assert!(r.allow("a", 2, w));
    }
}
