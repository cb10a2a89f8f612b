//! The options dictionary the Python wrapper passes in (keyword arguments, already
//! normalized: paths as `str`, dates as `"YYYY-MM-DD"`) and the two sides, translated into
//! the core model, `imapmig_core::config::MigrationConfig`. Nothing is decided here: the core
//! model checks and resolves; this module turns Python values and errors into each other.

use std::time::Duration;

use imapmig_core::config::{
    ConfigError, DestinationConfig, FolderMode, MigrationConfig, Resolved, SourceConfig,
};
use imapmig_core::filter::DateField;
use imapmig_core::net::Protocol;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::account::Account;
use crate::errors::{config_error, Kind, Raised};

/// A core configuration error as the exception Python sees.
pub fn raise(e: ConfigError) -> PyErr {
    match e {
        ConfigError::State(_) => Raised::new(Kind::State, e.to_string()).into(),
        e => config_error(e.to_string()),
    }
}

/// Every option any operation reads, in the core model.
pub struct Options(MigrationConfig);

impl Options {
    /// Reads the dictionary; an unknown key is a `ConfigError`, a wrong type a `TypeError`.
    pub fn from_dict(d: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
        let mut c = MigrationConfig::default();
        let Some(d) = d else { return Ok(Options(c)) };
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            if v.is_none() {
                continue;
            }
            match key.as_str() {
                "state" => c.state = Some(v.extract()?),
                "account_key" => c.account_key = Some(v.extract()?),
                "connections" => c.connections = v.extract()?,
                "batch" => c.batch = v.extract()?,
                "dry_run" => c.dry_run = v.extract()?,
                "retries" => c.retries = v.extract()?,
                "backoff" => {
                    let s: f64 = v.extract()?;
                    if !(s.is_finite() && s >= 0.0) {
                        return Err(config_error(format!("backoff={s}: expected seconds >= 0")));
                    }
                    c.backoff = Duration::from_secs_f64(s);
                }
                "mode" => {
                    c.mode = match v.extract::<String>()?.as_str() {
                        "mapping" => FolderMode::Mapping,
                        "unified" => FolderMode::Unified,
                        other => {
                            return Err(config_error(format!(
                                "mode={other:?}: expected \"mapping\" or \"unified\""
                            )))
                        }
                    }
                }
                "unified_root" => c.unified_root = v.extract()?,
                "unified_address" => c.unified_address = Some(v.extract()?),
                "include" => c.include = v.extract()?,
                "exclude" => c.exclude = v.extract()?,
                "exclude_special" => c.exclude_special = v.extract()?,
                "renames" => c.renames = v.extract()?,
                "include_virtual" => c.include_virtual = v.extract()?,
                "since" => c.since = Some(v.extract()?),
                "before" => c.before = Some(v.extract()?),
                "date_field" => {
                    c.date_field = match v.extract::<String>()?.as_str() {
                        "internal" => DateField::Internal,
                        "header" => DateField::Header,
                        other => {
                            return Err(config_error(format!(
                                "date_field={other:?}: expected \"internal\" or \"header\""
                            )))
                        }
                    }
                }
                "max_size" => c.max_size = Some(v.extract()?),
                other => return Err(config_error(format!("unknown option {other:?}"))),
            }
        }
        Ok(Options(c))
    }

    /// The configuration with its two sides: each an `Account` (a server) or the JSON of a
    /// local store (`imapmig.Maildir`, `imapmig.Mbox`).
    pub fn with_sides(
        mut self,
        source: &Bound<'_, PyAny>,
        destination: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<MigrationConfig> {
        self.0.source = Some(match source.cast::<Account>() {
            Ok(a) => {
                let a = a.borrow();
                match a.protocol {
                    Protocol::Imap => SourceConfig::Imap(a.config.clone()),
                    Protocol::Pop3 => SourceConfig::Pop3 {
                        server: a.config.clone(),
                        uid_map: a.uid_map.clone(),
                    },
                }
            }
            Err(_) => local(source, "source")?,
        });
        self.0.destination = match destination {
            None => None,
            Some(d) => Some(match d.cast::<Account>() {
                Ok(a) => DestinationConfig::Imap(a.borrow().config.clone()),
                Err(_) => local(d, "destination")?,
            }),
        };
        Ok(self.0)
    }

    /// Resolved into the engine's terms, with the sides.
    pub fn resolve(
        self,
        source: &Bound<'_, PyAny>,
        destination: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Resolved> {
        self.with_sides(source, destination)?
            .resolve()
            .map_err(raise)
    }
}

/// A local store as the wrapper hands it on: its JSON side.
fn local<T: serde::de::DeserializeOwned>(side: &Bound<'_, PyAny>, name: &str) -> PyResult<T> {
    let json: String = side.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be an imapmig.Account, imapmig.Maildir or imapmig.Mbox"
        ))
    })?;
    serde_json::from_str(&json).map_err(|e| config_error(format!("{name}: {e}")))
}
