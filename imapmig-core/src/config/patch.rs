//! An edit of a batch task's settings: every field optional, applied with the rules every face
//! shares.
//!
//! In JSON a [`SettingsPatch`] has the shape of the stored settings (`TaskSettings`), every
//! field optional: what is left out keeps the value the task has, so the full settings are a
//! patch too (one that sets everything). On top of that shape: a server's `mechanism` and
//! `admin` adjust the login without restating it, a folder `unified_root` renames the root of
//! unified mode, `null` clears `since`, `before`, `max_size` and `start_at`, and durations may
//! be written as seconds or as text (`"90s"`, `"15m"`, `"6h"`, `"30d"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::{parse_special_use, DEFAULT_UNIFIED_ROOT};
use crate::batch::task::{
    parse_duration, Auth, CertificateCheck, FolderMode, PasswordMechanism, Protocol,
    ServerSettings, TaskError, TaskSettings, TokenMechanism,
};
use crate::batch::{BatchError, BatchStore, EditScope};
use crate::imap::Security;
use crate::secret::Secret;

/// How accounts log in, as an edit gives it: the kind, with the fields to change. A field left
/// out keeps what the task has when the kind stays; when the kind changes it takes its default
/// (`auto`, `xoauth2`, separator `*`), except the admin's or master's name, which is required.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthPatch {
    /// Each account's own password.
    Password {
        /// The mechanism.
        #[serde(default)]
        mechanism: Option<PasswordMechanism>,
    },
    /// Each account's own OAuth2 access token.
    OAuth2 {
        /// The mechanism.
        #[serde(default)]
        mechanism: Option<TokenMechanism>,
    },
    /// One admin login acting for every account.
    Admin {
        /// The admin's login name.
        #[serde(default)]
        user: Option<String>,
    },
    /// A Dovecot-style master user.
    MasterUser {
        /// The master user's name.
        #[serde(default)]
        master: Option<String>,
        /// Between mailbox and master name.
        #[serde(default)]
        separator: Option<String>,
    },
}

/// An edit of one server's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerPatch {
    /// Host name or address.
    pub host: Option<String>,
    /// TCP port. When left out while `transport` or `protocol` changes, the port becomes the
    /// usual one for the new pair (993/143, POP3 995/110).
    pub port: Option<u16>,
    /// How the connection is protected.
    pub transport: Option<Security>,
    /// IMAP or POP3.
    pub protocol: Option<Protocol>,
    /// How the certificate is checked.
    pub certificate: Option<CertificateCheck>,
    /// The longest wait for one answer.
    #[serde(deserialize_with = "some_duration")]
    pub timeout: Option<Duration>,
    /// How accounts log in.
    pub auth: Option<AuthPatch>,
    /// The mechanism of a password login (ignored for other logins).
    pub mechanism: Option<PasswordMechanism>,
    /// The admin's or master's name of an admin or master-user login (an error for others).
    pub admin: Option<String>,
}

/// An edit of the folder options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FoldersPatch {
    /// Mapping or unified placement.
    pub mode: Option<FolderMode>,
    /// The root of unified mode (ignored in mapping mode).
    pub unified_root: Option<String>,
    /// Globs a folder must match (replaces the list).
    pub include: Option<Vec<String>>,
    /// Globs of folders not to copy (replaces the list).
    pub exclude: Option<Vec<String>>,
    /// Special uses not to copy, by name, any case (replaces the list).
    pub exclude_special: Option<Vec<String>>,
    /// Renames `(old, new)` (replaces the list).
    pub renames: Option<Vec<(String, String)>>,
}

/// An edit of which messages go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesPatch {
    /// The first day (`Some(None)`, JSON `null`, clears it).
    #[serde(deserialize_with = "some_day")]
    pub since: Option<Option<time::Date>>,
    /// The day the range stops before (`Some(None)` clears it).
    #[serde(deserialize_with = "some_day")]
    pub before: Option<Option<time::Date>>,
    /// Whether the dates look at the `Date:` header.
    pub header_date: Option<bool>,
    /// The size limit in bytes (`Some(None)` or 0 clears it).
    #[serde(deserialize_with = "some_option")]
    pub max_size: Option<Option<u64>>,
}

/// An edit of the schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulePatch {
    /// When passes may start (`Some(None)`, JSON `null` or `"now"`: at once).
    #[serde(deserialize_with = "some_start")]
    pub start_at: Option<Option<OffsetDateTime>>,
    /// How long incremental passes go on.
    #[serde(deserialize_with = "some_duration")]
    pub window: Option<Duration>,
    /// The pause between two passes of an account.
    #[serde(deserialize_with = "some_duration")]
    pub interval: Option<Duration>,
}

/// An edit of the concurrency limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsPatch {
    /// Accounts at once.
    pub accounts: Option<usize>,
    /// Connections to one source host.
    pub per_source_host: Option<usize>,
    /// Connections to one destination host.
    pub per_destination_host: Option<usize>,
    /// Connections (per side) of one account.
    pub connections_per_account: Option<usize>,
}

/// An edit of the retry policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPatch {
    /// Failed passes in a row before an account fails.
    pub max_attempts: Option<u32>,
    /// The first pause.
    #[serde(deserialize_with = "some_duration")]
    pub base: Option<Duration>,
    /// The longest pause.
    #[serde(deserialize_with = "some_duration")]
    pub max: Option<Duration>,
}

/// An edit of a task's settings (see the module documentation for the JSON form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsPatch {
    /// The source server.
    pub source: ServerPatch,
    /// The destination server.
    pub destination: ServerPatch,
    /// Which folders, where.
    pub folders: FoldersPatch,
    /// Which messages.
    pub messages: MessagesPatch,
    /// When.
    pub schedule: SchedulePatch,
    /// How much at once.
    pub limits: LimitsPatch,
    /// How transient failures are retried.
    pub retry: RetryPatch,
}

/// Which sides an edit set to an admin or master-user login: those need the task's secret for
/// that side, which a face may take from where it keeps such secrets (the CLI: a file or
/// `$IMAPMIG_SRC_ADMIN_PASSWORD` / `$IMAPMIG_DST_ADMIN_PASSWORD`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginsToSecure {
    /// The source's login.
    pub source: bool,
    /// The destination's login.
    pub destination: bool,
}

fn invalid(setting: &'static str, why: impl Into<String>) -> TaskError {
    TaskError::Setting {
        setting,
        why: why.into(),
    }
}

impl AuthPatch {
    /// The login `current` becomes; `admin` names the admin or master when the patch does not.
    fn apply(&self, current: &Auth, admin: Option<&String>, side: Side) -> Result<Auth, TaskError> {
        Ok(match (self, current) {
            (AuthPatch::Password { mechanism }, Auth::Password { mechanism: was }) => {
                Auth::Password {
                    mechanism: mechanism.unwrap_or(*was),
                }
            }
            (AuthPatch::Password { mechanism }, _) => Auth::Password {
                mechanism: mechanism.unwrap_or_default(),
            },
            (AuthPatch::OAuth2 { mechanism }, Auth::OAuth2 { mechanism: was }) => Auth::OAuth2 {
                mechanism: mechanism.unwrap_or(*was),
            },
            (AuthPatch::OAuth2 { mechanism }, _) => Auth::OAuth2 {
                mechanism: mechanism.unwrap_or_default(),
            },
            (AuthPatch::Admin { user }, was) => Auth::Admin {
                user: match (user.as_ref().or(admin), was) {
                    (Some(u), _) => u.clone(),
                    (None, Auth::Admin { user }) => user.clone(),
                    (None, _) => String::new(),
                },
            },
            (AuthPatch::MasterUser { master, separator }, was) => {
                let (old_master, old_separator) = match was {
                    Auth::MasterUser { master, separator } => (master.clone(), separator.clone()),
                    _ => (String::new(), "*".to_string()),
                };
                Auth::MasterUser {
                    master: master.as_ref().or(admin).cloned().unwrap_or(old_master),
                    separator: separator.clone().unwrap_or(old_separator),
                }
            }
        })
        .and_then(|auth| match &auth {
            Auth::Admin { user } if user.trim().is_empty() => Err(invalid(
                side.setting("admin"),
                "an admin login needs the admin's user name",
            )),
            Auth::MasterUser { master, .. } if master.trim().is_empty() => Err(invalid(
                side.setting("admin"),
                "a master-user login needs the master's name",
            )),
            _ => Ok(auth),
        })
    }
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

impl Side {
    fn setting(self, what: &'static str) -> &'static str {
        match (self, what) {
            (Side::Source, "admin") => "source.admin",
            (Side::Source, _) => "source.auth",
            (Side::Destination, "admin") => "destination.admin",
            (Side::Destination, _) => "destination.auth",
        }
    }
}

impl ServerPatch {
    /// Applies the edit; says whether the login was set to an admin or master-user one.
    fn apply(&self, s: &mut ServerSettings, side: Side) -> Result<bool, TaskError> {
        if let Some(h) = &self.host {
            s.host = h.clone();
        }
        if let Some(t) = self.transport {
            s.transport = t;
        }
        if let Some(p) = self.protocol {
            s.protocol = p;
        }
        if self.transport.is_some() || self.protocol.is_some() {
            s.port = ServerSettings::default_port(s.protocol, s.transport);
        }
        if let Some(p) = self.port {
            s.port = p;
        }
        if let Some(a) = &self.auth {
            s.auth = a.apply(&s.auth, self.admin.as_ref(), side)?;
        }
        if let (Some(m), Auth::Password { mechanism }) = (self.mechanism, &mut s.auth) {
            *mechanism = m;
        }
        if let Some(name) = &self.admin {
            match &mut s.auth {
                Auth::Admin { user } => *user = name.clone(),
                Auth::MasterUser { master, .. } => *master = name.clone(),
                _ => {
                    return Err(invalid(
                        side.setting("admin"),
                        "names the admin of an admin login or the master of a master-user login",
                    ))
                }
            }
        }
        if let Some(c) = &self.certificate {
            s.certificate = c.clone();
        }
        if let Some(t) = self.timeout {
            s.timeout = t;
        }
        Ok(matches!(
            self.auth,
            Some(AuthPatch::Admin { .. } | AuthPatch::MasterUser { .. })
        ))
    }
}

impl SettingsPatch {
    /// Applies the edit to `s` and checks the result as a whole (an edit is checked together
    /// with what the task already has). On an error `s` may be half changed: apply to a copy
    /// when the original matters.
    pub fn apply(&self, s: &mut TaskSettings) -> Result<LoginsToSecure, TaskError> {
        let logins = LoginsToSecure {
            source: self.source.apply(&mut s.source, Side::Source)?,
            destination: self
                .destination
                .apply(&mut s.destination, Side::Destination)?,
        };
        let f = &self.folders;
        if let Some(m) = &f.mode {
            s.folders.mode = m.clone();
        }
        if let (Some(r), FolderMode::Unified { root }) = (&f.unified_root, &mut s.folders.mode) {
            *root = r.clone();
        }
        if let Some(v) = &f.include {
            s.folders.include = v.clone();
        }
        if let Some(v) = &f.exclude {
            s.folders.exclude = v.clone();
        }
        if let Some(v) = &f.exclude_special {
            s.folders.exclude_special = v
                .iter()
                .map(|n| {
                    parse_special_use(n)
                        .map_err(|e| invalid("folders.exclude_special", e.to_string()))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = &f.renames {
            s.folders.renames = v.clone();
        }
        let m = &self.messages;
        if let Some(d) = m.since {
            s.messages.since = d;
        }
        if let Some(d) = m.before {
            s.messages.before = d;
        }
        if let Some(h) = m.header_date {
            s.messages.header_date = h;
        }
        if let Some(size) = m.max_size {
            s.messages.max_size = size.filter(|&n| n > 0);
        }
        let sc = &self.schedule;
        if let Some(t) = sc.start_at {
            s.schedule.start_at = t;
        }
        if let Some(d) = sc.window {
            s.schedule.window = d;
        }
        if let Some(d) = sc.interval {
            s.schedule.interval = d;
        }
        let l = &self.limits;
        let limits = &mut s.limits;
        limits.accounts = l.accounts.unwrap_or(limits.accounts);
        limits.per_source_host = l.per_source_host.unwrap_or(limits.per_source_host);
        limits.per_destination_host = l
            .per_destination_host
            .unwrap_or(limits.per_destination_host);
        limits.connections_per_account = l
            .connections_per_account
            .unwrap_or(limits.connections_per_account);
        let r = &self.retry;
        if let Some(n) = r.max_attempts {
            s.retry.max_attempts = n;
        }
        if let Some(d) = r.base {
            s.retry.base = d;
        }
        if let Some(d) = r.max {
            s.retry.max = d;
        }
        s.check()?;
        Ok(logins)
    }

    /// Applies the edit to the settings stored for `task` and stores the result; returns the
    /// names of the settings that changed. `scope` says which accounts a server change
    /// reaches; the secrets replace the task's admin or master passwords when given.
    pub fn edit_task(
        &self,
        store: &BatchStore,
        task: &str,
        source_secret: Option<Secret>,
        destination_secret: Option<Secret>,
        scope: EditScope,
    ) -> Result<Vec<String>, BatchError> {
        let mut settings = store.task(task)?.settings;
        self.apply(&mut settings)?;
        store.edit_task(task, &settings, source_secret, destination_secret, scope)
    }

    /// Folder mode `unified` under the default root, for a face whose input names the mode
    /// without a root.
    pub fn unified_default() -> FolderMode {
        FolderMode::Unified {
            root: DEFAULT_UNIFIED_ROOT.to_string(),
        }
    }
}

/// A duration as whole seconds or as text (`"90s"`, `"6h"`).
fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(d)? {
        Written::Seconds(n) => Ok(Some(Duration::from_secs(n))),
        Written::Text(t) => parse_duration(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("{t:?}: expected a duration like 90s, 15m, 6h, 30d"))
        }),
    }
}

/// A day as `"YYYY-MM-DD"` or in the stored form; `null` clears.
fn some_day<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<time::Date>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Stored(time::Date),
    }
    Ok(Some(match Option::<Written>::deserialize(d)? {
        None => None,
        Some(Written::Stored(day)) => Some(day),
        Some(Written::Text(t)) => {
            Some(super::parse_day("day", &t).map_err(|e| serde::de::Error::custom(e.to_string()))?)
        }
    }))
}

/// A start time as RFC 3339, `"now"` or `null` (both: at once).
fn some_start<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(Some(match text.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("now") => None,
        Some(t) => Some(
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    serde::de::Error::custom(format!(
                        "{t:?}: expected \"now\" or an RFC 3339 time like 2030-01-31T22:00:00+01:00"
                    ))
                },
            )?,
        ),
    }))
}

/// A value that may be `null` (clears) or absent (keeps).
fn some_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
