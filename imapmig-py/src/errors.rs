//! The library's errors as the exception hierarchy of `imapmig.errors`:
//!
//! ```text
//! ImapmigError
//! ├── ConfigError (also a ValueError)   bad options
//! ├── AuthenticationError               the login was refused
//! ├── ConnectionError                   cannot connect, or the connection broke/timed out
//! ├── TlsError                          certificate, STARTTLS missing, cleartext refused
//! ├── QuotaError                        the destination is over quota
//! ├── ServerError                       a command refused, a protocol violation
//! ├── StorageError                      a local file or folder failed
//! ├── PlanError                         the folder plan cannot be made
//! ├── StateError                        the sync-state file failed
//! ├── CancelledError                    the migration was cancelled (a re-run resumes)
//! └── BatchError                        a batch task: bad CSV, unknown task or account...
//! ```
//!
//! The classes are defined in Python (`python/imapmig/errors.py`) so that `ConfigError` can
//! also be a `ValueError`; this module only picks the class and fills in `kind`, `transient`,
//! `side` and `folder`.

use imapmig_core::engine::{EngineError, ErrorKind, Side};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Which exception class, by name in `imapmig.errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Config,
    Authentication,
    Connection,
    Tls,
    Quota,
    Server,
    Storage,
    Plan,
    State,
    Cancelled,
    Batch,
    Internal,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Config => "ConfigError",
            Kind::Authentication => "AuthenticationError",
            Kind::Connection => "ConnectionError",
            Kind::Tls => "TlsError",
            Kind::Quota => "QuotaError",
            Kind::Server => "ServerError",
            Kind::Storage => "StorageError",
            Kind::Plan => "PlanError",
            Kind::State => "StateError",
            Kind::Cancelled => "CancelledError",
            Kind::Batch => "BatchError",
            Kind::Internal => "ImapmigError",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Authentication => "authentication",
            Kind::Connection => "connection",
            Kind::Tls => "tls",
            Kind::Quota => "quota",
            Kind::Server => "server",
            Kind::Storage => "storage",
            Kind::Plan => "plan",
            Kind::State => "state",
            Kind::Cancelled => "cancelled",
            Kind::Batch => "batch",
            Kind::Internal => "internal",
        }
    }
}

/// An error on its way to Python, built without the interpreter at hand.
#[derive(Debug)]
pub struct Raised {
    pub kind: Kind,
    /// A finer `kind` than the class's (`"unknown_task"`, `"locked"`...).
    pub kind_name: Option<&'static str>,
    pub message: String,
    pub transient: bool,
    pub side: Option<Side>,
    pub folder: Option<String>,
}

impl Raised {
    pub fn new(kind: Kind, message: impl Into<String>) -> Raised {
        Raised {
            kind,
            kind_name: None,
            message: message.into(),
            transient: false,
            side: None,
            folder: None,
        }
    }

    /// The Python exception.
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let build = || -> PyResult<PyErr> {
            let class = py.import("imapmig.errors")?.getattr(self.kind.class())?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("kind", self.kind_name.unwrap_or(self.kind.name()))?;
            kwargs.set_item("transient", self.transient)?;
            kwargs.set_item(
                "side",
                self.side.map(|s| match s {
                    Side::Source => "source",
                    Side::Destination => "destination",
                }),
            )?;
            kwargs.set_item("folder", self.folder.as_deref())?;
            let exc = class.call((self.message.as_str(),), Some(&kwargs))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| {
            PyRuntimeError::new_err(format!("{} (and imapmig.errors failed: {e})", self.message))
        })
    }
}

impl From<Raised> for PyErr {
    fn from(r: Raised) -> PyErr {
        Python::attach(|py| r.into_pyerr(py))
    }
}

/// A `ConfigError` for a bad option.
pub fn config_error(message: impl Into<String>) -> PyErr {
    Raised::new(Kind::Config, message).into()
}

impl From<ErrorKind> for Kind {
    fn from(k: ErrorKind) -> Kind {
        match k {
            ErrorKind::Authentication => Kind::Authentication,
            ErrorKind::Connection => Kind::Connection,
            ErrorKind::Tls => Kind::Tls,
            ErrorKind::Quota => Kind::Quota,
            ErrorKind::Server => Kind::Server,
            ErrorKind::Storage => Kind::Storage,
            ErrorKind::Plan => Kind::Plan,
            ErrorKind::State => Kind::State,
            ErrorKind::Cancelled => Kind::Cancelled,
            // `ErrorKind` may grow: a kind this module does not know yet is the base class.
            _ => Kind::Internal,
        }
    }
}

impl From<EngineError> for Raised {
    fn from(e: EngineError) -> Raised {
        let kind = Kind::from(e.kind());
        let (side, folder) = match &e {
            EngineError::Server { side, .. } => (Some(*side), None),
            EngineError::Folder { side, folder, .. } => (Some(*side), Some(folder.clone())),
            _ => (None, None),
        };
        Raised {
            kind,
            kind_name: None,
            transient: e.is_transient(),
            message: e.to_string(),
            side,
            folder,
        }
    }
}
