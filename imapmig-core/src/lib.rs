//! The imapmig library.
//!
//! Layers, bottom up (see each module's own documentation):
//!
//! * [`wire`]: sans-IO framing of the IMAP server byte stream into response lines and streamed
//!   literals; a hostile literal size costs no memory.
//! * [`net`]: TCP and TLS with a timeout on every wait, under the IMAP and POP3 clients.
//! * [`imap`]: the async IMAP client (tokio + rustls): TLS, STARTTLS, authentication, the
//!   commands a migration needs, pipelining, streamed FETCH and APPEND.
//! * [`model`]: folders, message metadata, flags, dates: the vocabulary every layer shares.
//! * [`db`]: the databases under the stores, SQLite or PostgreSQL, behind one SQL subset.
//! * [`state`]: the resumable, crash-safe sync state per (account, source folder), behind the
//!   [`state::StateStore`] trait; [`state::SqliteStore`] keeps it in one SQLite file.
//! * [`body`]: a message body as an async byte stream of known length, whatever it comes from.
//! * [`fingerprint`]: content fingerprints, and matching messages one to one by them: how a
//!   copy is recognised again without anything written into it.
//! * [`access`]: what sources and sinks share: [`access::AccessError`], folder lists.
//! * [`maildir`]: Maildir++ on disk, as Dovecot lays it out, for the Maildir source and sink.
//! * [`source`], [`sink`]: where mail comes from and goes to (IMAP, POP3, Maildir, mbox), behind
//!   the [`source::MigrationSource`] and [`sink::MigrationSink`] contracts.
//! * [`mapping`]: the folder plan, a pure function from both sides' folders to targets.
//! * [`engine`]: one account moved exactly once: planning, streamed copy, flag sync, crash
//!   recovery by content fingerprint, verification.
//! * [`batch`]: a migration task of many accounts: CSV import, statuses, the scheduler,
//!   incremental passes, reports and the audit log.
//! * [`config`]: one model of a migration ([`config::MigrationConfig`]) and of an edit of a
//!   task's settings ([`config::SettingsPatch`]), that every face translates its input into.
//! * [`utf7`], [`sasl`], [`secret`]: small, self-contained building blocks.
//! * [`failure`]: what kind of failure an error is ([`failure::ErrorKind`]).
//! * [`trace`]: the protocol trace, both sides' lines with secrets redacted and bodies elided.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
pub mod batch;
pub mod body;
pub mod config;
pub mod db;
pub mod engine;
pub mod failure;
pub mod filter;
pub mod fingerprint;
pub mod imap;
pub mod maildir;
pub mod mapping;
pub mod model;
pub mod net;
pub(crate) mod pop3;
pub mod sasl;
pub mod secret;
pub mod sink;
pub mod source;
pub mod state;
pub mod trace;
pub mod utf7;
pub mod wire;
