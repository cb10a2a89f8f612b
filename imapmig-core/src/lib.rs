//! The imapmig library.
//!
//! Layers, bottom up (see each module's own documentation):
//!
//! * [`wire`]: sans-IO framing of the IMAP server byte stream into response lines and streamed
//!   literals; a hostile literal size costs no memory.
//! * [`imap`]: the async IMAP client (tokio + rustls): TLS, STARTTLS, authentication, the
//!   commands a migration needs, pipelining, streamed FETCH and APPEND.
//! * [`model`]: folders, message metadata, flags, dates: the vocabulary every layer shares.
//! * [`state`]: the resumable, crash-safe sync state per (account, source folder), behind the
//!   [`state::StateStore`] trait; [`state::SqliteStore`] keeps it in one SQLite file.
//! * [`utf7`], [`sasl`], [`secret`]: small, self-contained building blocks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod body;
pub mod engine;
pub mod imap;
pub mod mapping;
pub mod model;
pub mod sasl;
pub mod secret;
pub mod sink;
pub mod source;
pub mod state;
pub mod utf7;
pub mod wire;
