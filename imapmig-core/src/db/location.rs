//! Where the state lives, as the user writes it: a file path, `sqlite:PATH`, or a PostgreSQL
//! address.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::postgres::PgOptions;

/// Where the state (the task, the accounts, the audit log, the sync state) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The embedded SQLite file: one machine, nothing to install.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by workers on many machines.
    Postgres(Box<PgOptions>),
}

impl Location {
    /// Reads what a user wrote: `postgres://…` or `postgresql://…` is PostgreSQL (see
    /// [`PgOptions::parse`]); `sqlite:PATH` or any other text is a SQLite file.
    pub fn parse(text: &str) -> Result<Location, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PgOptions::parse(text).map(|o| Location::Postgres(Box::new(o)));
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        if path.is_empty() {
            return Err(
                "the state location is empty: give a file path or a postgres:// address".into(),
            );
        }
        Ok(Location::Sqlite(PathBuf::from(path)))
    }

    /// Whether it is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Location::parse(s)
    }
}

/// A file's path, or a PostgreSQL address without its password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(o) => write!(f, "{o}"),
        }
    }
}
