//! The options dictionary the Python wrapper passes in (keyword arguments, already
//! normalized: paths as `str`, dates as `"YYYY-MM-DD"`), turned into the library's types.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imapmig_core::engine::{self, Account, DateField, MessageFilter, MigrationOptions};
use imapmig_core::mapping::{Mode, PlanOptions};
use imapmig_core::model::SpecialUse;
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::SourceSpec;
use imapmig_core::state::{SqliteStore, StateStore};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{config_error, Kind, Raised};

/// Every option any operation reads; `None` where not given.
#[derive(Default)]
pub struct Options {
    state: Option<PathBuf>,
    account_key: Option<String>,
    connections: Option<usize>,
    batch: Option<usize>,
    dry_run: bool,
    retries: Option<u32>,
    backoff: Option<f64>,
    mode: Option<String>,
    unified_root: Option<String>,
    unified_address: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    exclude_special: Vec<String>,
    renames: Vec<(String, String)>,
    include_virtual: bool,
    since: Option<String>,
    before: Option<String>,
    date_field: Option<String>,
    max_size: Option<u64>,
}

fn parse_day(field: &str, value: &str) -> PyResult<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &fmt)
        .map_err(|_| config_error(format!("{field}={value:?}: expected YYYY-MM-DD")))
}

impl Options {
    /// Reads the dictionary; an unknown key is a `ConfigError`, a wrong type a `TypeError`.
    pub fn from_dict(d: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
        let mut o = Options::default();
        let Some(d) = d else { return Ok(o) };
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            if v.is_none() {
                continue;
            }
            match key.as_str() {
                "state" => o.state = Some(v.extract()?),
                "account_key" => o.account_key = Some(v.extract()?),
                "connections" => o.connections = Some(v.extract()?),
                "batch" => o.batch = Some(v.extract()?),
                "dry_run" => o.dry_run = v.extract()?,
                "retries" => o.retries = Some(v.extract()?),
                "backoff" => o.backoff = Some(v.extract()?),
                "mode" => o.mode = Some(v.extract()?),
                "unified_root" => o.unified_root = Some(v.extract()?),
                "unified_address" => o.unified_address = Some(v.extract()?),
                "include" => o.include = v.extract()?,
                "exclude" => o.exclude = v.extract()?,
                "exclude_special" => o.exclude_special = v.extract()?,
                "renames" => o.renames = v.extract()?,
                "include_virtual" => o.include_virtual = v.extract()?,
                "since" => o.since = Some(v.extract()?),
                "before" => o.before = Some(v.extract()?),
                "date_field" => o.date_field = Some(v.extract()?),
                "max_size" => o.max_size = Some(v.extract()?),
                other => return Err(config_error(format!("unknown option {other:?}"))),
            }
        }
        Ok(o)
    }

    /// Where folders land; unified mode names the folder after `source_user` unless
    /// `unified_address` says otherwise.
    pub fn plan(&self, source_user: &str) -> PyResult<PlanOptions> {
        let mode = match self.mode.as_deref().unwrap_or("mapping") {
            "mapping" => Mode::Mapping,
            "unified" => Mode::Unified {
                root: self
                    .unified_root
                    .clone()
                    .unwrap_or_else(|| "Migrated".into()),
                address: self
                    .unified_address
                    .clone()
                    .unwrap_or_else(|| source_user.to_string()),
            },
            other => {
                return Err(config_error(format!(
                    "mode={other:?}: expected \"mapping\" or \"unified\""
                )))
            }
        };
        let exclude_special = self
            .exclude_special
            .iter()
            .map(|s| {
                SpecialUse::from_name(s.trim()).ok_or_else(|| {
                    config_error(format!(
                        "exclude_special {s:?}: expected sent, drafts, trash, junk, archive, \
                         all, flagged or important"
                    ))
                })
            })
            .collect::<PyResult<_>>()?;
        Ok(PlanOptions {
            mode,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            exclude_special,
            renames: self.renames.clone(),
            include_virtual: self.include_virtual,
            ..PlanOptions::default()
        })
    }

    /// Which messages go.
    pub fn filter(&self) -> PyResult<MessageFilter> {
        Ok(MessageFilter {
            since: self
                .since
                .as_deref()
                .map(|v| parse_day("since", v))
                .transpose()?,
            before: self
                .before
                .as_deref()
                .map(|v| parse_day("before", v))
                .transpose()?,
            date_field: match self.date_field.as_deref().unwrap_or("internal") {
                "internal" => DateField::Internal,
                "header" => DateField::Header,
                other => {
                    return Err(config_error(format!(
                        "date_field={other:?}: expected \"internal\" or \"header\""
                    )))
                }
            },
            max_size: self.max_size,
        })
    }

    /// The migration's options and its opened (created if needed) state store.
    pub fn migration(
        &self,
        source: &Account,
        destination: &Account,
    ) -> PyResult<(MigrationOptions, Arc<dyn StateStore>)> {
        let state_error = |e: imapmig_core::state::StateError| {
            Raised::new(Kind::State, format!("sync state: {e}"))
        };
        let state: Arc<dyn StateStore> = match (&self.state, self.dry_run) {
            (Some(path), _) => Arc::new(SqliteStore::open(path).map_err(state_error)?),
            // A dry run records nothing, so it needs no file.
            (None, true) => Arc::new(SqliteStore::open_in_memory().map_err(state_error)?),
            (None, false) => {
                return Err(config_error(
                    "state= (the sync-state file) is required: it is what makes a re-run \
                     resume instead of copying again",
                ))
            }
        };
        // The CLI's default key, so the CLI and the bindings resume each other's runs.
        let account_key = match &self.account_key {
            Some(k) => k.clone(),
            None => engine::account_key_in(
                state.as_ref(),
                &SourceSpec::Imap(source.clone()),
                &SinkSpec::Imap(destination.clone()),
            )
            .map_err(state_error)?,
        };
        let defaults = MigrationOptions::default();
        let backoff = match self.backoff {
            Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            Some(s) => return Err(config_error(format!("backoff={s}: expected seconds >= 0"))),
            None => defaults.backoff,
        };
        let options = MigrationOptions {
            account_key,
            plan: self.plan(source.credentials.mailbox_user())?,
            filter: self.filter()?,
            connections: self.connections.unwrap_or(defaults.connections).max(1),
            batch: self.batch.unwrap_or(defaults.batch).max(1),
            dry_run: self.dry_run,
            retries: self.retries.unwrap_or(defaults.retries),
            backoff,
            trace: None,
            strict_line_endings: defaults.strict_line_endings,
        };
        Ok((options, state))
    }
}
