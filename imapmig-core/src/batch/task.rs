//! The migration task: the settings one admin gives once for thousands of accounts.
//!
//! A [`Task`] holds the two servers (how to reach them, how to log in), the folder and message
//! options, the schedule (start time, incremental window, interval between passes), the
//! concurrency limits and the retry policy. Everything but the two task-level secrets is plain
//! data ([`TaskSettings`], serializable) so that it can be stored, shown and edited; the secrets
//! stay in [`Secret`]s that never print.
//!
//! This module validates settings and turns them into the engine's types; it never does I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::filter::{DateField, MessageFilter};
use crate::imap::{AuthMethod, Endpoint, TlsVerify};
use crate::mapping::{Mode, PlanOptions, Planner};
use crate::model::SpecialUse;
use crate::secret::Secret;

pub use crate::imap::Security;
/// The name the stored settings give [`Security`] (`"transport"`): the same type, kept so
/// that code written against it still reads.
pub use crate::imap::Security as Transport;
pub use crate::net::Protocol;

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateCheck {
    /// Against the system's trusted roots.
    #[default]
    System,
    /// Against the system's roots plus the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Not at all (lab servers only).
    Insecure,
}

/// The SASL mechanism for a password login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordMechanism {
    /// PLAIN when offered, else LOGIN.
    #[default]
    Auto,
    /// The LOGIN command.
    Login,
    /// SASL PLAIN.
    Plain,
}

/// The SASL mechanism for an OAuth2 access token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenMechanism {
    /// Google/Microsoft XOAUTH2.
    #[default]
    XOAuth2,
    /// RFC 7628 OAUTHBEARER.
    OAuthBearer,
}

/// How accounts log in to one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// Each account logs in with its own password (the CSV's password column for the source,
    /// its `target_password` column for the destination).
    Password {
        /// The mechanism.
        mechanism: PasswordMechanism,
    },
    /// Each account logs in with its own OAuth2 access token, given where a password would be.
    OAuth2 {
        /// The mechanism.
        mechanism: TokenMechanism,
    },
    /// One admin (or proxy) login acts for every account: SASL PLAIN with the account's
    /// mailbox as the authorization identity. The admin's password is the task's secret for
    /// this side.
    Admin {
        /// The admin's login name.
        user: String,
    },
    /// A Dovecot-style master user: logs in as `<mailbox><separator><master>` with the master's
    /// password, the task's secret for this side.
    MasterUser {
        /// The master user's name.
        master: String,
        /// Between mailbox and master name; Dovecot's default is `*`.
        separator: String,
    },
}

impl Default for Auth {
    fn default() -> Self {
        Auth::Password {
            mechanism: PasswordMechanism::Auto,
        }
    }
}

impl Auth {
    /// Whether each account brings its own secret (password or token) for this side.
    pub fn per_account(&self) -> bool {
        matches!(self, Auth::Password { .. } | Auth::OAuth2 { .. })
    }

    /// The engine's mechanism for a login with this kind of auth.
    pub(crate) fn method(&self) -> AuthMethod {
        match self {
            Auth::Password { mechanism } => match mechanism {
                PasswordMechanism::Auto => AuthMethod::Auto,
                PasswordMechanism::Login => AuthMethod::Login,
                PasswordMechanism::Plain => AuthMethod::Plain,
            },
            Auth::OAuth2 { mechanism } => match mechanism {
                TokenMechanism::XOAuth2 => AuthMethod::XOAuth2,
                TokenMechanism::OAuthBearer => AuthMethod::OAuthBearer,
            },
            Auth::Admin { .. } => AuthMethod::Plain,
            Auth::MasterUser { .. } => AuthMethod::Auto,
        }
    }
}

/// One server: where it is, how to reach it, how accounts log in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How the connection is protected (stored as `"transport"`).
    #[serde(default)]
    pub transport: Security,
    /// IMAP or POP3.
    #[serde(default)]
    pub protocol: Protocol,
    /// How the certificate is checked.
    #[serde(default)]
    pub certificate: CertificateCheck,
    /// The longest wait for any single answer.
    #[serde(with = "seconds", default = "default_timeout")]
    pub timeout: Duration,
    /// How accounts log in.
    #[serde(default)]
    pub auth: Auth,
}

fn default_timeout() -> Duration {
    crate::net::DEFAULT_TIMEOUT
}

impl ServerSettings {
    /// A server reached over implicit TLS on the protocol's usual port, accounts logging in
    /// with their own passwords.
    pub fn new(host: impl Into<String>) -> ServerSettings {
        ServerSettings {
            host: host.into(),
            port: Protocol::Imap.default_port(true),
            transport: Security::Tls,
            protocol: Protocol::Imap,
            certificate: CertificateCheck::System,
            timeout: default_timeout(),
            auth: Auth::default(),
        }
    }

    /// The usual port for a protocol and transport: 993/143 for IMAP, 995/110 for POP3.
    pub fn default_port(protocol: Protocol, transport: Security) -> u16 {
        protocol.default_port(transport == Security::Tls)
    }

    /// The engine's endpoint for this server.
    pub fn endpoint(&self) -> Endpoint {
        let mut e = Endpoint::new(self.host.clone(), self.port, self.transport);
        e.timeout = self.timeout.max(Duration::from_secs(1));
        e.verify = match &self.certificate {
            CertificateCheck::System => TlsVerify::System,
            CertificateCheck::CaFile(p) => TlsVerify::CaFile(p.clone()),
            CertificateCheck::Insecure => TlsVerify::Insecure,
        };
        e
    }
}

/// Where folders land on the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FolderMode {
    /// Each folder where a destination user expects it (INBOX to INBOX, Sent to Sent, ...).
    /// Two source accounts cannot share one target in this mode.
    #[default]
    Mapping,
    /// Each source account's tree, untouched, under `<root>/<source mailbox>/`: several
    /// sources may share one target.
    Unified {
        /// The folder everything goes under (`/` between levels); empty for none.
        root: String,
    },
}

/// Which folders are copied and where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderOptions {
    /// Mapping or unified placement.
    #[serde(default)]
    pub mode: FolderMode,
    /// Globs a folder must match to be copied (see [`PlanOptions::include`]).
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of folders not to copy.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Special uses not to copy.
    #[serde(default)]
    pub exclude_special: Vec<SpecialUse>,
    /// Explicit renames `(old, new)`.
    #[serde(default)]
    pub renames: Vec<(String, String)>,
}

/// Which messages are copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOptions {
    /// Only messages on or after this day.
    #[serde(default)]
    pub since: Option<time::Date>,
    /// Only messages before this day.
    #[serde(default)]
    pub before: Option<time::Date>,
    /// Whether the dates look at the `Date:` header instead of INTERNALDATE.
    #[serde(default)]
    pub header_date: bool,
    /// Skip (and report) messages larger than this many bytes.
    #[serde(default)]
    pub max_size: Option<u64>,
}

impl MessageOptions {
    /// The engine's filter.
    pub fn filter(&self) -> MessageFilter {
        MessageFilter {
            since: self.since,
            before: self.before,
            date_field: if self.header_date {
                DateField::Header
            } else {
                DateField::Internal
            },
            max_size: self.max_size,
        }
    }
}

/// When passes run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When the first passes may start; `None` as soon as the scheduler runs.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_at: Option<OffsetDateTime>,
    /// How long incremental passes go on after an account's first complete pass (until the MX
    /// switch). Default 30 days.
    #[serde(with = "seconds", default = "default_window")]
    pub window: Duration,
    /// The pause between the end of one pass of an account and the start of its next.
    #[serde(with = "seconds", default = "default_interval")]
    pub interval: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            start_at: None,
            window: default_window(),
            interval: default_interval(),
        }
    }
}

/// How much runs at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyLimits {
    /// Accounts migrated at the same time, over all hosts.
    pub accounts: usize,
    /// Connections open to one source host at the same time.
    pub per_source_host: usize,
    /// Connections open to one destination host at the same time.
    pub per_destination_host: usize,
    /// Connections (one to each side) one account uses: folders copied in parallel.
    pub connections_per_account: usize,
}

impl Default for ConcurrencyLimits {
    fn default() -> Self {
        ConcurrencyLimits {
            accounts: 20,
            per_source_host: 20,
            per_destination_host: 40,
            connections_per_account: 2,
        }
    }
}

/// How transient failures (dropped connections, throttling) are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Passes of one account that may fail in a row, transiently, before it is marked failed.
    pub max_attempts: u32,
    /// The pause after the first failure; doubled after each further one, with jitter.
    #[serde(with = "seconds")]
    pub base: Duration,
    /// The longest pause.
    #[serde(with = "seconds")]
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

/// Everything about a task except its name and secrets: stored, shown and edited as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSettings {
    /// Where mail comes from.
    pub source: ServerSettings,
    /// Where mail goes.
    pub destination: ServerSettings,
    /// Which folders, where.
    #[serde(default)]
    pub folders: FolderOptions,
    /// Which messages.
    #[serde(default)]
    pub messages: MessageOptions,
    /// When.
    #[serde(default)]
    pub schedule: Schedule,
    /// How much at once.
    #[serde(default)]
    pub limits: ConcurrencyLimits,
    /// How transient failures are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// Why a task's settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A setting has a value that cannot work; the message says which and why.
    #[error("task {task:?}: {setting}: {why}")]
    Invalid {
        /// The task.
        task: String,
        /// The setting, as the CLI names it (`source.port`, `limits.accounts`, ...).
        setting: &'static str,
        /// What is wrong and what to do.
        why: String,
    },
    /// A setting has a value that cannot work, found before the settings belong to a task (an
    /// edit being applied).
    #[error("{setting}: {why}")]
    Setting {
        /// The setting, as [`TaskError::Invalid`] names it.
        setting: &'static str,
        /// What is wrong and what to do.
        why: String,
    },
}

impl TaskError {
    /// The setting at fault (`source.port`, `folders.include`, `messages.since`, ...).
    pub fn setting(&self) -> &'static str {
        match self {
            TaskError::Invalid { setting, .. } | TaskError::Setting { setting, .. } => setting,
        }
    }
}

impl TaskSettings {
    /// Settings with the given servers and every other value at its default.
    pub fn new(source: ServerSettings, destination: ServerSettings) -> TaskSettings {
        TaskSettings {
            source,
            destination,
            folders: FolderOptions::default(),
            messages: MessageOptions::default(),
            schedule: Schedule::default(),
            limits: ConcurrencyLimits::default(),
            retry: RetryPolicy::default(),
        }
    }

    /// Checks that the settings can work. `secrets` says which task-level secrets are present
    /// (source, destination): an admin or master-user login needs one.
    pub fn validate(&self, task: &str, secrets: (bool, bool)) -> Result<(), TaskError> {
        let bad = |setting: &'static str, why: String| TaskError::Invalid {
            task: task.to_string(),
            setting,
            why,
        };
        if task.trim().is_empty() || task.chars().any(char::is_control) {
            return Err(bad(
                "name",
                "a task needs a printable, non-empty name".into(),
            ));
        }
        match self.problem(Some(secrets)) {
            Some((setting, why)) => Err(bad(setting, why)),
            None => Ok(()),
        }
    }

    /// Checks that every value can work, leaving out whether the admin or master passwords are
    /// there (an edit being applied, before it is stored).
    pub fn check(&self) -> Result<(), TaskError> {
        match self.problem(None) {
            Some((setting, why)) => Err(TaskError::Setting { setting, why }),
            None => Ok(()),
        }
    }

    /// The first setting that cannot work, and why. `secrets` (source, destination) says
    /// which task-level secrets are present; `None` leaves them out.
    fn problem(&self, secrets: Option<(bool, bool)>) -> Option<(&'static str, String)> {
        let bad = |setting: &'static str, why: String| Some((setting, why));
        let (source_secret, destination_secret) = secrets.unwrap_or((true, true));
        for (side, s, has_secret) in [
            ("source", &self.source, source_secret),
            ("destination", &self.destination, destination_secret),
        ] {
            if s.host.trim().is_empty() || s.host.contains(char::is_whitespace) {
                return bad(
                    if side == "source" {
                        "source.host"
                    } else {
                        "destination.host"
                    },
                    format!("{:?} is not a host name or address", s.host),
                );
            }
            if s.port == 0 {
                return bad(
                    if side == "source" {
                        "source.port"
                    } else {
                        "destination.port"
                    },
                    "port 0 cannot be connected to".into(),
                );
            }
            match &s.auth {
                Auth::Admin { user } if user.trim().is_empty() => {
                    return bad(
                        if side == "source" {
                            "source.auth"
                        } else {
                            "destination.auth"
                        },
                        "an admin login needs the admin's user name".into(),
                    )
                }
                Auth::MasterUser { master, separator }
                    if master.trim().is_empty() || separator.is_empty() =>
                {
                    return bad(
                        if side == "source" {
                            "source.auth"
                        } else {
                            "destination.auth"
                        },
                        "a master-user login needs the master's name and a separator".into(),
                    )
                }
                Auth::Admin { .. } | Auth::MasterUser { .. } if !has_secret => {
                    return bad(
                        if side == "source" {
                            "source.auth"
                        } else {
                            "destination.auth"
                        },
                        format!("the {side} admin/master login needs its password"),
                    )
                }
                _ => {}
            }
        }
        if self.source.protocol == Protocol::Pop3 && matches!(self.source.auth, Auth::Admin { .. })
        {
            return bad(
                "source.auth",
                "POP3 has no way for an admin to act for a user: use passwords or a master user"
                    .into(),
            );
        }
        if self.destination.protocol != Protocol::Imap {
            return bad(
                "destination.protocol",
                "mail can only be written over IMAP".into(),
            );
        }
        let l = &self.limits;
        for (setting, v) in [
            ("limits.accounts", l.accounts),
            ("limits.per_source_host", l.per_source_host),
            ("limits.per_destination_host", l.per_destination_host),
            ("limits.connections_per_account", l.connections_per_account),
        ] {
            if v == 0 {
                return bad(setting, "must be at least 1".into());
            }
        }
        if self.schedule.interval.is_zero() {
            return bad(
                "schedule.interval",
                "the pause between passes must be longer than zero".into(),
            );
        }
        if self.retry.base.is_zero() || self.retry.max < self.retry.base {
            return bad(
                "retry",
                "the first pause must be above zero and not longer than the longest".into(),
            );
        }
        if let (Some(s), Some(b)) = (self.messages.since, self.messages.before) {
            if s >= b {
                return bad(
                    "messages.since",
                    format!("{s} is not before {b}: no message would be copied"),
                );
            }
        }
        if self.messages.max_size == Some(0) {
            return bad(
                "messages.max_size",
                "a size limit of 0 copies nothing".into(),
            );
        }
        if let FolderMode::Unified { root } = &self.folders.mode {
            if root.contains(['\r', '\n']) {
                return bad("folders.mode", "the unified root holds a line break".into());
            }
        }
        // Globs, renames and the unified root, checked as every pass will use them: a bad one
        // would fail every account.
        let opts = self.plan_options("mailbox@example");
        if let Err(e) = Planner::new(&opts) {
            let setting = match e.field(&opts) {
                "include" => "folders.include",
                "exclude" => "folders.exclude",
                "renames" => "folders.renames",
                "unified_root" => "folders.mode",
                _ => "folders",
            };
            return bad(setting, e.to_string());
        }
        None
    }

    /// The folder plan options for one account, whose source mailbox is `source_mailbox`.
    pub fn plan_options(&self, source_mailbox: &str) -> PlanOptions {
        let f = &self.folders;
        PlanOptions {
            mode: match &f.mode {
                FolderMode::Mapping => Mode::Mapping,
                FolderMode::Unified { root } => Mode::Unified {
                    root: root.clone(),
                    address: source_mailbox.to_string(),
                },
            },
            include: f.include.clone(),
            exclude: f.exclude.clone(),
            exclude_special: f.exclude_special.clone(),
            renames: f.renames.clone(),
            ..PlanOptions::default()
        }
    }

    /// Whether several source accounts may feed one target.
    pub fn shared_targets_allowed(&self) -> bool {
        matches!(self.folders.mode, FolderMode::Unified { .. })
    }
}

/// A stored task.
#[derive(Clone, Debug)]
pub struct Task {
    /// Its name, unique in the store.
    pub name: String,
    /// Its settings.
    pub settings: TaskSettings,
    /// The source admin's or master's password, for [`Auth::Admin`] and [`Auth::MasterUser`].
    pub source_secret: Option<Secret>,
    /// The destination admin's or master's password.
    pub destination_secret: Option<Secret>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its settings last changed.
    pub updated_at: OffsetDateTime,
}

/// Which accounts a change of server (host, port, TLS, certificate check, auth) applies to.
///
/// An account that has started keeps the servers it started with ("pinned") unless the change
/// applies to all: a platform moving the source to a new address wants every account to follow,
/// one correcting a typo for the next wave wants the running ones left alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditScope {
    /// Only accounts that have not started yet; started ones keep their pinned servers.
    #[default]
    NotStarted,
    /// Every account, from its next pass on.
    All,
}

/// Parses a duration written as a number with a unit: `90s`, `15m`, `6h`, `30d`, `2w`, or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest whole unit.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= len && s % len == 0 {
            return format!("{}{unit}", s / len);
        }
    }
    format!("{s}s")
}

/// Serde for durations as whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TaskSettings {
        TaskSettings::new(
            ServerSettings::new("old.example"),
            ServerSettings::new("new.example"),
        )
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("6h", 21_600),
            ("30d", 2_592_000),
            ("2w", 1_209_600),
            ("42", 42),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(2_592_000)), "30d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        for bad in ["", "h", "3x", "-1s", "1.5h", "99999999999999999999w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_survive_json() {
        let mut s = settings();
        s.source.auth = Auth::MasterUser {
            master: "master".into(),
            separator: "*".into(),
        };
        s.folders.mode = FolderMode::Unified {
            root: "Migrated".into(),
        };
        s.folders.exclude_special = vec![SpecialUse::Trash];
        s.schedule.start_at = Some(time::macros::datetime!(2030-01-02 03:04:05 UTC));
        let json = serde_json::to_string(&s).unwrap();
        let back: TaskSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // Old files without the optional parts still read.
        let minimal = r#"{"source":{"host":"a","port":993},"destination":{"host":"b","port":993}}"#;
        let m: TaskSettings = serde_json::from_str(minimal).unwrap();
        assert_eq!(m.schedule.window, Duration::from_secs(30 * 86_400));
        assert_eq!(m.limits, ConcurrencyLimits::default());
    }

    #[test]
    fn validation_names_the_setting() {
        let ok = settings();
        ok.validate("t", (false, false)).unwrap();
        let mut s = settings();
        s.source.port = 0;
        assert!(s
            .validate("t", (false, false))
            .unwrap_err()
            .to_string()
            .contains("source.port"));
        let mut s = settings();
        s.limits.per_source_host = 0;
        assert!(s
            .validate("t", (false, false))
            .unwrap_err()
            .to_string()
            .contains("per_source_host"));
        let mut s = settings();
        s.destination.auth = Auth::Admin {
            user: "admin".into(),
        };
        let e = s.validate("t", (false, false)).unwrap_err().to_string();
        assert!(e.contains("destination") && e.contains("password"), "{e}");
        s.validate("t", (false, true)).unwrap();
        let mut s = settings();
        s.source.protocol = Protocol::Pop3;
        s.validate("t", (false, false)).unwrap();
        s.source.auth = Auth::Admin {
            user: "admin".into(),
        };
        assert!(s
            .validate("t", (true, false))
            .unwrap_err()
            .to_string()
            .contains("POP3"));
        let mut s = settings();
        s.messages.since = Some(time::macros::date!(2024 - 01 - 01));
        s.messages.before = Some(time::macros::date!(2023 - 01 - 01));
        assert!(s.validate("t", (false, false)).is_err());
        // A bad glob or rename would fail every account's pass: refused when the task is saved.
        let mut s = settings();
        s.folders.include = vec!["[".into()];
        let e = s.validate("t", (false, false)).unwrap_err().to_string();
        assert!(e.contains("folders") && e.contains("`[`"), "{e}");
        let mut s = settings();
        s.folders.renames = vec![(String::new(), "x".into())];
        let e = s.validate("t", (false, false)).unwrap_err().to_string();
        assert!(e.contains("folders") && e.contains("rename"), "{e}");
    }

    #[test]
    fn unified_mode_puts_each_source_under_its_mailbox() {
        let mut s = settings();
        s.folders.mode = FolderMode::Unified { root: "Old".into() };
        assert!(s.shared_targets_allowed());
        assert_eq!(
            s.plan_options("user1").mode,
            Mode::Unified {
                root: "Old".into(),
                address: "user1".into()
            }
        );
        assert!(!settings().shared_targets_allowed());
    }

    /// The stored, shown and bound form of a task's settings is a published format: every
    /// field set away from its default, written byte for byte as earlier versions wrote it.
    #[test]
    fn stored_settings_json_is_unchanged() {
        let mut s = settings();
        s.source.port = 1143;
        s.source.transport = Security::StartTls;
        s.source.protocol = Protocol::Pop3;
        s.source.certificate = CertificateCheck::CaFile("/etc/ca.pem".into());
        s.source.timeout = Duration::from_secs(45);
        s.source.auth = Auth::MasterUser {
            master: "master".into(),
            separator: "*".into(),
        };
        s.destination.transport = Security::Cleartext;
        s.destination.certificate = CertificateCheck::Insecure;
        s.destination.auth = Auth::OAuth2 {
            mechanism: TokenMechanism::OAuthBearer,
        };
        s.folders = FolderOptions {
            mode: FolderMode::Unified { root: "Old".into() },
            include: vec!["INBOX".into(), "Work/**".into()],
            exclude: vec!["Trash".into()],
            exclude_special: vec![SpecialUse::Junk, SpecialUse::Sent],
            renames: vec![("A".into(), "B/C".into())],
        };
        s.messages = MessageOptions {
            since: Some(time::macros::date!(2020 - 01 - 02)),
            before: Some(time::macros::date!(2024 - 03 - 04)),
            header_date: true,
            max_size: Some(1_000_000),
        };
        s.schedule = Schedule {
            start_at: Some(time::macros::datetime!(2030-01-02 03:04:05 +01:00)),
            window: Duration::from_secs(86_400),
            interval: Duration::from_secs(600),
        };
        s.limits = ConcurrencyLimits {
            accounts: 3,
            per_source_host: 4,
            per_destination_host: 5,
            connections_per_account: 6,
        };
        s.retry = RetryPolicy {
            max_attempts: 2,
            base: Duration::from_secs(7),
            max: Duration::from_secs(70),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"source":{"host":"old.example","port":1143,"transport":"starttls","#,
                r#""protocol":"pop3","certificate":{"cafile":"/etc/ca.pem"},"timeout":45,"#,
                r#""auth":{"kind":"master_user","master":"master","separator":"*"}},"#,
                r#""destination":{"host":"new.example","port":993,"transport":"cleartext","#,
                r#""protocol":"imap","certificate":"insecure","timeout":120,"#,
                r#""auth":{"kind":"o_auth2","mechanism":"oauthbearer"}},"#,
                r#""folders":{"mode":{"kind":"unified","root":"Old"},"#,
                r#""include":["INBOX","Work/**"],"exclude":["Trash"],"#,
                r#""exclude_special":["Junk","Sent"],"renames":[["A","B/C"]]},"#,
                r#""messages":{"since":[2020,2],"before":[2024,64],"header_date":true,"#,
                r#""max_size":1000000},"#,
                r#""schedule":{"start_at":"2030-01-02T03:04:05+01:00","window":86400,"#,
                r#""interval":600},"#,
                r#""limits":{"accounts":3,"per_source_host":4,"per_destination_host":5,"#,
                r#""connections_per_account":6},"#,
                r#""retry":{"max_attempts":2,"base":7,"max":70}}"#
            )
        );
        let back: TaskSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
