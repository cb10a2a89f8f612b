//! The C ABI of imapmig, for C, Go (cgo) and anything else that can call C.
//!
//! A thin face over imapmig-core: configuration comes in as JSON, results and progress events
//! go out as JSON, errors as a status code plus an error object. It owns no logic of its own.
//! The header `include/imapmig.h` is generated from this crate by cbindgen (`cbindgen.toml`)
//! and checked in; `tests/header.rs` fails when it is out of date (regenerate with
//! `IMAPMIG_BLESS=1 cargo test -p imapmig-ffi --test header`).
//!
//! Rules every entry point follows:
//!
//! * no panic crosses the boundary: each body runs under `catch_unwind` and a panic becomes
//!   `IMAPMIG_STATUS_PANIC`;
//! * the error of a call is returned as an object through its `imapmig_error **err`
//!   argument, never kept in thread-local storage (goroutines move between threads);
//! * pointers are checked for NULL, strings for UTF-8, before anything else happens;
//! * a handle may be shared between threads: `imapmig_migration_cancel` and
//!   `imapmig_migration_wait` may be called while another thread runs or reads events.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
// The C names are the API (`imapmig_migration`, `imapmig_status`).
#![allow(non_camel_case_types)]

mod batch;
mod config;
mod error;
mod events;
mod migration;
mod ops;
mod runtime;
mod status;

pub use batch::{
    imapmig_task, imapmig_task_cancel, imapmig_task_control, imapmig_task_create,
    imapmig_task_free, imapmig_task_import_accounts, imapmig_task_open, imapmig_task_run,
    imapmig_task_settings, imapmig_task_status, imapmig_task_supply_credentials,
    IMAPMIG_IMPORT_SKIP_BAD_ROWS, IMAPMIG_IMPORT_UPDATE_EXISTING, IMAPMIG_TASK_PAUSE,
    IMAPMIG_TASK_RESUME, IMAPMIG_TASK_STOP,
};
pub use error::{
    imapmig_error, imapmig_error_free, imapmig_error_is_transient, imapmig_error_message,
    imapmig_error_status, imapmig_status_description, imapmig_status_name, imapmig_string_free,
};
pub use migration::{
    imapmig_migration, imapmig_migration_cancel, imapmig_migration_free, imapmig_migration_new,
    imapmig_migration_run, imapmig_migration_start, imapmig_migration_wait, imapmig_next_event,
    imapmig_progress_cb, imapmig_version,
};
pub use ops::{imapmig_analyze, imapmig_check, imapmig_verify};
pub use status::imapmig_status;
