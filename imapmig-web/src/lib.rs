//! imapmig's web console, served by `imapmig serve`: the admin's pages, the employees'
//! self-service page and a JSON API under `/api/`, over the same batch store the CLI uses.
//!
//! One process serves the console and (unless told not to) runs the schedulers of the store's
//! tasks ([`runner`]); it also serves beside a separate `imapmig run` on the same file, since
//! every page reads the store, not the scheduler's memory.
//!
//! # Layout
//!
//! * [`options`]: how it is started.
//! * [`server`]: listening (plain or TLS), the router and its layers, shutting down.
//! * [`state`]: what every handler shares (the store, the signing key, the sessions, the rate
//!   limits, the throughput sampler).
//! * [`keys`]: the admin token (stored only as an argon2 hash), the key that signs cookies and
//!   CSRF tokens, sessions, cookies.
//! * [`auth`]: who may do what: the admin (session cookie or bearer token), visitors, and the
//!   CSRF guard on every form and every cookie-authenticated API call.
//! * [`error`]: how store and request failures become pages and JSON.
//! * [`layout`]: the page frame and the vendored assets (no asset is fetched from the network).
//! * The pages and their API twins, one file per subject.
//!
//! # Secrets
//!
//! Passwords typed into a page go straight into a [`imapmig_core::secret::Secret`] and from
//! there into the store; no page, log line, error or audit event shows one. The admin token is
//! printed once, when it is made, and kept only as its argon2 hash.

pub mod admin;
pub mod auth;
pub mod error;
pub mod keys;
pub mod layout;
pub mod options;
pub mod pace;
pub mod runner;
pub mod selfservice;
pub mod server;
pub mod state;

pub use auth::{ensure_admin_token, AdminToken};
pub use error::WebError;
pub use server::{serve, ServeOptions, TlsFiles};
pub use state::AppState;
