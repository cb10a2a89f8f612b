//! Status codes, and how the library's errors map onto them.

use std::ffi::CStr;

use imapmig_core::engine::{EngineError, ErrorKind};

/// What a call did. Every function that can fail returns one; `IMAPMIG_STATUS_OK` (0) is
/// success, `TIMEOUT` and `FINISHED` are ordinary outcomes of `imapmig_next_event`, everything
/// from 10 up is an error described by the `imapmig_error` the call filled in.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum imapmig_status {
    /// Success.
    Ok = 0,
    /// `imapmig_next_event`: no event arrived within the timeout; call again.
    Timeout = 1,
    /// `imapmig_next_event`: the run is over and every event has been read.
    Finished = 2,
    /// A NULL pointer where one is not allowed, or a string that is not UTF-8.
    InvalidArgument = 10,
    /// The JSON configuration is malformed or holds an invalid value (unknown field, bad
    /// date, missing password...). The message names the field.
    Config = 11,
    /// The server refused the login: wrong user name, password or token.
    Authentication = 12,
    /// The server could not be reached, or the connection broke or timed out. Often worth
    /// retrying later.
    Connection = 13,
    /// TLS failed (untrusted or mismatched certificate), STARTTLS is missing, or a password
    /// would have been sent in clear text.
    Tls = 14,
    /// The destination is over its quota.
    Quota = 15,
    /// The server refused a command or broke the protocol (the message has its words).
    Server = 16,
    /// A local file could not be read or written.
    Io = 17,
    /// The folder plan cannot be made (two folders would land in one place, a bad pattern or
    /// rename): fix the options.
    Plan = 18,
    /// The sync-state file could not be opened, read or written.
    State = 19,
    /// The migration was cancelled; what was copied is recorded and a new run resumes.
    Cancelled = 20,
    /// The call does not fit the handle's state: starting a migration that is running, or
    /// reading events of one never started.
    InvalidState = 21,
    /// An internal error (a bug); the sync state is consistent, a new run resumes.
    Internal = 22,
    /// A panic was caught at the boundary (a bug); the handle should be freed.
    Panic = 23,
    /// Batch tasks: the CSV file cannot be read or has bad rows (each named with its line);
    /// nothing was imported.
    Csv = 24,
    /// Batch tasks: no such task or account.
    NotFound = 25,
    /// Batch tasks: a task of that name exists already.
    Exists = 26,
    /// Batch tasks: another process runs this task.
    Locked = 27,
}

impl imapmig_status {
    /// Every status, for tests and for rendering.
    pub const ALL: [imapmig_status; 21] = [
        Self::Ok,
        Self::Timeout,
        Self::Finished,
        Self::InvalidArgument,
        Self::Config,
        Self::Authentication,
        Self::Connection,
        Self::Tls,
        Self::Quota,
        Self::Server,
        Self::Io,
        Self::Plan,
        Self::State,
        Self::Cancelled,
        Self::InvalidState,
        Self::Internal,
        Self::Panic,
        Self::Csv,
        Self::NotFound,
        Self::Exists,
        Self::Locked,
    ];

    /// The status for a raw number, if it is one.
    pub fn from_raw(raw: i32) -> Option<imapmig_status> {
        Self::ALL.into_iter().find(|s| *s as i32 == raw)
    }

    /// The C name of the status, NUL-terminated.
    pub fn name(self) -> &'static CStr {
        match self {
            Self::Ok => c"IMAPMIG_STATUS_OK",
            Self::Timeout => c"IMAPMIG_STATUS_TIMEOUT",
            Self::Finished => c"IMAPMIG_STATUS_FINISHED",
            Self::InvalidArgument => c"IMAPMIG_STATUS_INVALID_ARGUMENT",
            Self::Config => c"IMAPMIG_STATUS_CONFIG",
            Self::Authentication => c"IMAPMIG_STATUS_AUTHENTICATION",
            Self::Connection => c"IMAPMIG_STATUS_CONNECTION",
            Self::Tls => c"IMAPMIG_STATUS_TLS",
            Self::Quota => c"IMAPMIG_STATUS_QUOTA",
            Self::Server => c"IMAPMIG_STATUS_SERVER",
            Self::Io => c"IMAPMIG_STATUS_IO",
            Self::Plan => c"IMAPMIG_STATUS_PLAN",
            Self::State => c"IMAPMIG_STATUS_STATE",
            Self::Cancelled => c"IMAPMIG_STATUS_CANCELLED",
            Self::InvalidState => c"IMAPMIG_STATUS_INVALID_STATE",
            Self::Internal => c"IMAPMIG_STATUS_INTERNAL",
            Self::Panic => c"IMAPMIG_STATUS_PANIC",
            Self::Csv => c"IMAPMIG_STATUS_CSV",
            Self::NotFound => c"IMAPMIG_STATUS_NOT_FOUND",
            Self::Exists => c"IMAPMIG_STATUS_EXISTS",
            Self::Locked => c"IMAPMIG_STATUS_LOCKED",
        }
    }

    /// A one-line description, NUL-terminated.
    pub fn description(self) -> &'static CStr {
        match self {
            Self::Ok => c"success",
            Self::Timeout => c"no event within the timeout",
            Self::Finished => c"the run is over and all its events were read",
            Self::InvalidArgument => c"invalid argument (NULL pointer or not UTF-8)",
            Self::Config => c"invalid configuration",
            Self::Authentication => c"the server refused the login",
            Self::Connection => c"cannot reach the server, or the connection broke",
            Self::Tls => c"TLS failed, or a password would travel in clear text",
            Self::Quota => c"the destination is over its quota",
            Self::Server => c"the server refused a command or broke the protocol",
            Self::Io => c"a local file could not be read or written",
            Self::Plan => c"the folder plan cannot be made",
            Self::State => c"the sync-state file failed",
            Self::Cancelled => c"cancelled; a new run resumes",
            Self::InvalidState => c"the call does not fit the handle's state",
            Self::Internal => c"internal error",
            Self::Panic => c"internal panic caught at the C boundary",
            Self::Csv => c"the CSV file cannot be read or has bad rows",
            Self::NotFound => c"no such task or account",
            Self::Exists => c"a task of that name exists already",
            Self::Locked => c"another process runs this task",
        }
    }

    pub(crate) fn name_str(self) -> &'static str {
        self.name().to_str().unwrap_or("IMAPMIG_STATUS_INTERNAL")
    }
}

/// A failure on its way to C: the status, the message, and whether a retry may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The status returned.
    pub status: imapmig_status,
    /// The message `imapmig_error_message` renders.
    pub message: String,
    /// Whether retrying later may succeed.
    pub transient: bool,
}

impl Failure {
    /// A failure with this status and message, not transient.
    pub fn new(status: imapmig_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            transient: false,
        }
    }

    /// Bad configuration.
    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(imapmig_status::Config, message)
    }

    /// The JSON object that `failed` events carry.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.status as i32,
            "name": self.status.name_str(),
            "message": self.message,
            "transient": self.transient,
        })
    }
}

impl From<ErrorKind> for imapmig_status {
    fn from(k: ErrorKind) -> imapmig_status {
        match k {
            ErrorKind::Authentication => imapmig_status::Authentication,
            ErrorKind::Connection => imapmig_status::Connection,
            ErrorKind::Tls => imapmig_status::Tls,
            ErrorKind::Quota => imapmig_status::Quota,
            ErrorKind::Server => imapmig_status::Server,
            ErrorKind::Storage => imapmig_status::Io,
            ErrorKind::Plan => imapmig_status::Plan,
            ErrorKind::State => imapmig_status::State,
            ErrorKind::Cancelled => imapmig_status::Cancelled,
            // `ErrorKind` may grow: a kind this library does not know yet is internal.
            _ => imapmig_status::Internal,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        let status = imapmig_status::from(e.kind());
        Failure {
            status,
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}
