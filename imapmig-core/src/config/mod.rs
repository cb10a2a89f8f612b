//! One model of a migration, whatever face it comes through.
//!
//! [`MigrationConfig`] says what to migrate: the source (IMAP, POP3, Maildir or mbox), the
//! destination (IMAP or Maildir), folder and message options and the engine's knobs, each with
//! its default in one [`Default`]. It reads from JSON (the C configuration is exactly this
//! form) or is filled in field by field (the CLI's flags, Python's keyword arguments), and
//! [`MigrationConfig::resolve`] turns it into the engine's [`SourceSpec`], [`SinkSpec`] and
//! [`MigrationOptions`]. [`SettingsPatch`] is the same for an edit of a batch task's settings.
//!
//! The faces translate their input into these types and nothing more, so a capability added
//! here reaches every face at once. This module does no I/O except opening the files a
//! configuration names (the trace, the sync state) when asked to.

mod patch;
mod sides;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::engine::{self, DateField, MessageFilter, MigrationOptions};
use crate::mapping::{Mode, PlanError, PlanOptions, Planner};
use crate::model::SpecialUse;
use crate::sink::SinkSpec;
use crate::source::SourceSpec;
use crate::state::{SqliteStore, StateError, StateStore};

pub use patch::{
    AuthPatch, FoldersPatch, LimitsPatch, LoginsToSecure, MessagesPatch, RetryPatch, SchedulePatch,
    ServerPatch, SettingsPatch,
};
pub use sides::{
    default_uid_map, source_name, DestinationConfig, ServerConfig, SourceConfig, MBOX_DESTINATION,
};

/// How often the bindings pass on per-message progress unless told otherwise.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The root folder of unified mode unless one is given.
pub const DEFAULT_UNIFIED_ROOT: &str = "Migrated";

/// Folder placement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FolderMode {
    /// System folders onto the destination's own; custom folders keep their tree.
    #[default]
    Mapping,
    /// Everything under `<unified_root>/<unified_address>/`.
    Unified,
}

/// A whole migration: both sides and every option. Missing JSON fields take the values of
/// [`MigrationConfig::default`]; unknown ones are refused, so a typo never falls back to a
/// default silently.
///
/// Only read, never written: the passwords in it do not serialize.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// Where mail comes from (required to resolve).
    pub source: Option<SourceConfig>,
    /// Where mail goes (required to migrate and verify).
    pub destination: Option<DestinationConfig>,
    /// The sync-state file (SQLite), created if missing; required unless `dry_run`.
    pub state: Option<PathBuf>,
    /// The key of this pair in the state file (default: derived from both sides).
    pub account_key: Option<String>,
    /// Folders copied in parallel (at least 1).
    pub connections: usize,
    /// Messages per pipelined batch (at least 1).
    pub batch: usize,
    /// Plan and count only; copy nothing.
    pub dry_run: bool,
    /// Retries of a folder after a transient failure.
    pub retries: u32,
    /// The first pause before a retry (doubled each time); `backoff_ms` in JSON.
    #[serde(rename = "backoff_ms", deserialize_with = "millis")]
    pub backoff: Duration,
    /// A file for the protocol trace (appended; secrets redacted, bodies elided).
    pub trace: Option<PathBuf>,
    /// At most one per-message progress event per this interval, where a face passes events
    /// on (the bindings); folder events always go. `progress_interval_ms` in JSON.
    #[serde(rename = "progress_interval_ms", deserialize_with = "millis")]
    pub progress_interval: Duration,
    /// Keep a destination's refusal of bare newlines instead of resending with CRLF.
    pub strict_line_endings: bool,
    /// Move folders earlier runs copied elsewhere than these options say.
    pub remap_folders: bool,
    /// Folder placement.
    pub mode: FolderMode,
    /// Unified mode: the root folder ("" for none).
    pub unified_root: String,
    /// Unified mode: the folder named after the source (default: the source's name).
    pub unified_address: Option<String>,
    /// Globs a folder must match to be copied.
    pub include: Vec<String>,
    /// Globs of folders not to copy.
    pub exclude: Vec<String>,
    /// Special uses not to copy, by name (`"trash"`, `"junk"`, ...).
    pub exclude_special: Vec<String>,
    /// Renames, applied in order; in JSON an object (in the order written) or a list of pairs.
    #[serde(deserialize_with = "ordered_pairs")]
    pub renames: Vec<(String, String)>,
    /// Also copy virtual folders (`\All`, `\Flagged`, `\Important`).
    pub include_virtual: bool,
    /// Only messages on or after this day (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Only messages before this day (`YYYY-MM-DD`).
    pub before: Option<String>,
    /// Which date `since` and `before` look at.
    pub date_field: DateField,
    /// Skip (and report) messages larger than this many bytes.
    pub max_size: Option<u64>,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        let engine = MigrationOptions::default();
        MigrationConfig {
            source: None,
            destination: None,
            state: None,
            account_key: None,
            connections: engine.connections,
            batch: engine.batch,
            dry_run: engine.dry_run,
            retries: engine.retries,
            backoff: engine.backoff,
            trace: None,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            strict_line_endings: engine.strict_line_endings,
            remap_folders: false,
            mode: FolderMode::Mapping,
            unified_root: DEFAULT_UNIFIED_ROOT.to_string(),
            unified_address: None,
            include: Vec::new(),
            exclude: Vec::new(),
            exclude_special: Vec::new(),
            renames: Vec::new(),
            include_virtual: false,
            since: None,
            before: None,
            date_field: DateField::Internal,
            max_size: None,
        }
    }
}

/// Why a configuration cannot be used. Each case names the field at fault, as the JSON form
/// spells it; a face renders it in its own words (a flag, a keyword argument).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required field is absent.
    #[error("\"{field}\" is missing: {why}")]
    Missing {
        /// The field.
        field: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// A field's value cannot be read or cannot work.
    #[error("{field} {value:?}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is expected instead.
        why: String,
    },
    /// `since` is not before `before`: the range is empty.
    #[error("since {since} is not before before {before}: no message would be copied")]
    EmptyDateRange {
        /// The first day.
        since: time::Date,
        /// The day the range stops before.
        before: time::Date,
    },
    /// The folder options are refused by the planner (a bad glob, rename or root).
    #[error("{field}: {error}")]
    Folders {
        /// The field at fault: `include`, `exclude`, `renames`, `unified_root` or
        /// `unified_address`.
        field: &'static str,
        /// The planner's reason.
        error: PlanError,
    },
    /// The trace file cannot be opened.
    #[error("trace {}: {error}", path.display())]
    Trace {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The sync-state file cannot be opened or read.
    #[error("sync state: {0}")]
    State(#[from] StateError),
}

impl ConfigError {
    /// The field at fault, as the JSON form spells it (`None` for a state-file failure).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConfigError::Missing { field, .. }
            | ConfigError::Invalid { field, .. }
            | ConfigError::Folders { field, .. } => Some(field),
            ConfigError::EmptyDateRange { .. } => Some("since"),
            ConfigError::Trace { .. } => Some("trace"),
            ConfigError::State(_) => None,
        }
    }
}

/// Reads `YYYY-MM-DD`.
pub fn parse_day(field: &'static str, value: &str) -> Result<time::Date, ConfigError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &fmt).map_err(|_| ConfigError::Invalid {
        field,
        value: value.to_string(),
        why: "expected YYYY-MM-DD".into(),
    })
}

/// Checks that a date range is not empty (it includes `since` and stops before `before`).
pub fn check_date_range(
    since: Option<time::Date>,
    before: Option<time::Date>,
) -> Result<(), ConfigError> {
    match (since, before) {
        (Some(since), Some(before)) if since >= before => {
            Err(ConfigError::EmptyDateRange { since, before })
        }
        _ => Ok(()),
    }
}

/// Reads a special use by name.
pub fn parse_special_use(name: &str) -> Result<SpecialUse, ConfigError> {
    SpecialUse::from_name(name.trim()).ok_or_else(|| ConfigError::Invalid {
        field: "exclude_special",
        value: name.to_string(),
        why: "expected sent, drafts, trash, junk, archive, all, flagged or important".into(),
    })
}

/// A migration resolved into the engine's terms.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The source.
    pub source: SourceSpec,
    /// The destination, when the configuration names one.
    pub destination: Option<SinkSpec>,
    /// Everything else. `account_key` is the configured one, or empty until
    /// [`Resolved::open_state`] derives it.
    pub options: MigrationOptions,
    state: Option<PathBuf>,
}

impl MigrationConfig {
    /// The folder plan options; unified mode names its folder after `source` unless
    /// `unified_address` is given. Every glob, rename and root is checked.
    pub fn plan_options(&self, source: &SourceSpec) -> Result<PlanOptions, ConfigError> {
        let mode = match self.mode {
            FolderMode::Mapping => Mode::Mapping,
            FolderMode::Unified => Mode::Unified {
                root: self.unified_root.clone(),
                address: self
                    .unified_address
                    .clone()
                    .unwrap_or_else(|| source_name(source)),
            },
        };
        let opts = PlanOptions {
            mode,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            exclude_special: self
                .exclude_special
                .iter()
                .map(|s| parse_special_use(s))
                .collect::<Result<_, _>>()?,
            renames: self.renames.clone(),
            include_virtual: self.include_virtual,
            remap: self.remap_folders,
            ..PlanOptions::default()
        };
        if let Err(error) = Planner::new(&opts) {
            return Err(ConfigError::Folders {
                field: error.field(&opts),
                error,
            });
        }
        Ok(opts)
    }

    /// Which messages go; the date range must not be empty.
    pub fn filter(&self) -> Result<MessageFilter, ConfigError> {
        let since = self
            .since
            .as_deref()
            .map(|v| parse_day("since", v))
            .transpose()?;
        let before = self
            .before
            .as_deref()
            .map(|v| parse_day("before", v))
            .transpose()?;
        check_date_range(since, before)?;
        Ok(MessageFilter {
            since,
            before,
            date_field: self.date_field,
            max_size: self.max_size,
        })
    }

    /// The source, required.
    pub fn source_spec(&self) -> Result<SourceSpec, ConfigError> {
        self.source
            .as_ref()
            .ok_or(ConfigError::Missing {
                field: "source",
                why: "where the mail comes from",
            })?
            .spec(self.state.as_deref())
    }

    /// Resolves everything but the sync state: the sides, the plan, the filter, the engine's
    /// options, and the trace file opened when one is named. The destination may be absent
    /// here (analyze); [`Resolved::destination`] says.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let source = self.source_spec()?;
        let destination = self.destination.as_ref().map(DestinationConfig::spec);
        let plan = self.plan_options(&source)?;
        let filter = self.filter()?;
        let trace = match &self.trace {
            None => None,
            Some(path) => Some(crate::trace::ProtocolTrace::create(path).map_err(|error| {
                ConfigError::Trace {
                    path: path.clone(),
                    error,
                }
            })?),
        };
        Ok(Resolved {
            source,
            destination,
            options: MigrationOptions {
                account_key: self.account_key.clone().unwrap_or_default(),
                plan,
                filter,
                connections: self.connections.max(1),
                batch: self.batch.max(1),
                dry_run: self.dry_run,
                retries: self.retries,
                backoff: self.backoff,
                trace,
                strict_line_endings: self.strict_line_endings,
            },
            state: self.state.clone(),
        })
    }
}

impl Resolved {
    /// The destination, required.
    pub fn destination(&self) -> Result<&SinkSpec, ConfigError> {
        self.destination.as_ref().ok_or(ConfigError::Missing {
            field: "destination",
            why: "where the mail goes",
        })
    }

    /// Opens (creating it if needed) the sync-state file, or an in-memory one for a dry run
    /// without a file, and derives the account key unless one was configured: the same key the
    /// CLI uses, so every face resumes the others' runs.
    pub fn open_state(&mut self) -> Result<Arc<dyn StateStore>, ConfigError> {
        let state: Arc<dyn StateStore> = match (&self.state, self.options.dry_run) {
            (Some(path), _) => Arc::new(SqliteStore::open(path)?),
            // A dry run records nothing, so it needs no file.
            (None, true) => Arc::new(SqliteStore::open_in_memory()?),
            (None, false) => {
                return Err(ConfigError::Missing {
                    field: "state",
                    why: "the sync-state file is what makes a re-run resume instead of copying \
                          again",
                })
            }
        };
        if self.options.account_key.is_empty() {
            let destination = self.destination()?;
            self.options.account_key =
                engine::account_key_in(state.as_ref(), &self.source, destination)?;
        }
        Ok(state)
    }

    /// The state file named, if any.
    pub fn state_path(&self) -> Option<&Path> {
        self.state.as_deref()
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Renames as a JSON object kept in the order written, or as a list of `[old, new]` pairs.
fn ordered_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object mapping old folder names to new ones")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = map.next_entry()? {
                out.push(pair);
            }
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = seq.next_element()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Pairs)
}
