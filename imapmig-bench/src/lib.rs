//! imapmig's benchmarks. Everything is in `benches/`: `cargo bench --bench e2e` (imapmig beside
//! mbsync on private Dovecot servers) and `cargo bench --bench micro` (criterion, hot paths);
//! see this crate's README. The library is empty: a package needs a target of its own.
#![forbid(unsafe_code)]
