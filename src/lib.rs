//! imapmig: move whole mailboxes from one mail system to another over IMAP, without losing or
//! duplicating a message.
//!
//! This crate re-exports [`imapmig_core`], where everything lives. It exists so that the
//! workspace-level integration tests (`tests/`) and benchmarks (`benches/`) have a home.
#![forbid(unsafe_code)]
pub use imapmig_core::*;
