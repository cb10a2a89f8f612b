//! The JSON configuration every operation takes, turned into the library's types.
//!
//! One schema for all operations (documented in the header): each operation reads the fields
//! it needs and says which required one is missing. Unknown fields are refused, so a typo
//! never silently falls back to a default.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imapmig_core::engine::{self, Account, DateField, MessageFilter, MigrationOptions};
use imapmig_core::imap::{AuthMethod, Credentials, Endpoint, Security, TlsVerify};
use imapmig_core::mapping::{Mode, PlanOptions};
use imapmig_core::model::SpecialUse;
use imapmig_core::secret::Secret;
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::SourceSpec;
use imapmig_core::state::{SqliteStore, StateStore};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::status::{imapmig_status, Failure};

/// How the connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TlsMode {
    /// Implicit TLS (993).
    #[default]
    Tls,
    /// STARTTLS on the cleartext port (143).
    Starttls,
    /// Cleartext: the password travels readable. Loopback and lab servers only.
    None,
}

/// The login mechanism.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthMode {
    #[default]
    Auto,
    Login,
    Plain,
    Xoauth2,
    Oauthbearer,
}

/// One server and its login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    host: String,
    port: Option<u16>,
    user: String,
    password: Secret,
    #[serde(default)]
    tls: TlsMode,
    #[serde(default)]
    auth: AuthMode,
    authzid: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    timeout_secs: Option<u64>,
}

impl ServerConfig {
    /// The library's account.
    pub fn account(&self) -> Account {
        let security = match self.tls {
            TlsMode::Tls => Security::Tls,
            TlsMode::Starttls => Security::StartTls,
            TlsMode::None => Security::Cleartext,
        };
        let port = self.port.unwrap_or(if matches!(self.tls, TlsMode::Tls) {
            993
        } else {
            143
        });
        let mut endpoint = Endpoint::new(&self.host, port, security);
        endpoint.timeout = Duration::from_secs(self.timeout_secs.unwrap_or(120).max(1));
        endpoint.verify = match (self.insecure, &self.ca_file) {
            (true, _) => TlsVerify::Insecure,
            (false, Some(p)) => TlsVerify::CaFile(p.clone()),
            (false, None) => TlsVerify::System,
        };
        Account {
            endpoint,
            credentials: Credentials {
                user: self.user.clone(),
                secret: self.password.clone(),
                method: match self.auth {
                    AuthMode::Auto => AuthMethod::Auto,
                    AuthMode::Login => AuthMethod::Login,
                    AuthMode::Plain => AuthMethod::Plain,
                    AuthMode::Xoauth2 => AuthMethod::XOAuth2,
                    AuthMode::Oauthbearer => AuthMethod::OAuthBearer,
                },
                authzid: self.authzid.clone(),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeName {
    #[default]
    Mapping,
    Unified,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DateFieldName {
    #[default]
    Internal,
    Header,
}

/// Renames as a JSON object, kept in the order written.
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
    }
    d.deserialize_map(Pairs)
}

/// The whole configuration: every field any operation reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    source: Option<ServerConfig>,
    destination: Option<ServerConfig>,
    // Migration.
    state: Option<PathBuf>,
    account_key: Option<String>,
    connections: Option<usize>,
    batch: Option<usize>,
    #[serde(default)]
    dry_run: bool,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    progress_interval_ms: Option<u64>,
    /// A file for the protocol trace (secrets redacted, bodies elided); off when absent.
    trace: Option<PathBuf>,
    // Folders.
    #[serde(default)]
    mode: ModeName,
    unified_root: Option<String>,
    unified_address: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_special: Vec<String>,
    #[serde(default, deserialize_with = "ordered_pairs")]
    renames: Vec<(String, String)>,
    #[serde(default)]
    include_virtual: bool,
    // Messages.
    since: Option<String>,
    before: Option<String>,
    #[serde(default)]
    date_field: DateFieldName,
    max_size: Option<u64>,
}

/// Everything a migration handle needs.
pub struct MigrationSetup {
    pub source: Account,
    pub destination: Account,
    pub options: MigrationOptions,
    pub state: Arc<dyn StateStore>,
    pub progress_interval: Duration,
}

fn parse_day(field: &str, value: &str) -> Result<time::Date, Failure> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &fmt)
        .map_err(|_| Failure::config(format!("{field} {value:?}: expected YYYY-MM-DD")))
}

impl Config {
    /// Parses the JSON text.
    pub fn parse(json: &str) -> Result<Config, Failure> {
        serde_json::from_str(json).map_err(|e| Failure::config(format!("configuration: {e}")))
    }

    /// The source account, required.
    pub fn source(&self) -> Result<Account, Failure> {
        self.source
            .as_ref()
            .map(ServerConfig::account)
            .ok_or_else(|| Failure::config("configuration: \"source\" is missing"))
    }

    /// The destination account, required.
    pub fn destination(&self) -> Result<Account, Failure> {
        self.destination_opt()
            .ok_or_else(|| Failure::config("configuration: \"destination\" is missing"))
    }

    /// The source account, if given.
    pub fn source_opt(&self) -> Option<Account> {
        self.source.as_ref().map(ServerConfig::account)
    }

    /// The destination account, if given.
    pub fn destination_opt(&self) -> Option<Account> {
        self.destination.as_ref().map(ServerConfig::account)
    }

    /// Where folders land; unified mode names the folder after `source_user` unless
    /// `unified_address` says otherwise.
    pub fn plan_options(&self, source_user: &str) -> Result<PlanOptions, Failure> {
        let mode = match self.mode {
            ModeName::Mapping => Mode::Mapping,
            ModeName::Unified => Mode::Unified {
                root: self
                    .unified_root
                    .clone()
                    .unwrap_or_else(|| "Migrated".into()),
                address: self
                    .unified_address
                    .clone()
                    .unwrap_or_else(|| source_user.to_string()),
            },
        };
        let exclude_special = self
            .exclude_special
            .iter()
            .map(|s| {
                SpecialUse::from_name(s.trim()).ok_or_else(|| {
                    Failure::config(format!(
                        "exclude_special {s:?}: expected sent, drafts, trash, junk, archive, \
                         all, flagged or important"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
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
    pub fn filter(&self) -> Result<MessageFilter, Failure> {
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
            date_field: match self.date_field {
                DateFieldName::Internal => DateField::Internal,
                DateFieldName::Header => DateField::Header,
            },
            max_size: self.max_size,
        })
    }

    /// Everything a migration needs; opens (creating it if needed) the state file.
    pub fn migration(&self) -> Result<MigrationSetup, Failure> {
        let source = self.source()?;
        let destination = self.destination()?;
        let state: Arc<dyn StateStore> =
            match (&self.state, self.dry_run) {
                (Some(path), _) => Arc::new(SqliteStore::open(path).map_err(|e| {
                    Failure::new(imapmig_status::State, format!("sync state: {e}"))
                })?),
                // A dry run records nothing, so it needs no file.
                (None, true) => Arc::new(SqliteStore::open_in_memory().map_err(|e| {
                    Failure::new(imapmig_status::State, format!("sync state: {e}"))
                })?),
                (None, false) => {
                    return Err(Failure::config(
                        "configuration: \"state\" (the sync-state file) is missing; it is what \
                     makes a re-run resume instead of copying again",
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
            .map_err(|e| Failure::new(imapmig_status::State, format!("sync state: {e}")))?,
        };
        let defaults = MigrationOptions::default();
        let options = MigrationOptions {
            account_key,
            plan: self.plan_options(source.credentials.mailbox_user())?,
            filter: self.filter()?,
            connections: self.connections.unwrap_or(defaults.connections).max(1),
            batch: self.batch.unwrap_or(defaults.batch).max(1),
            dry_run: self.dry_run,
            retries: self.retries.unwrap_or(defaults.retries),
            backoff: self
                .backoff_ms
                .map_or(defaults.backoff, Duration::from_millis),
            trace: match &self.trace {
                None => None,
                Some(path) => Some(
                    imapmig_core::trace::ProtocolTrace::create(path)
                        .map_err(|e| Failure::config(format!("trace {}: {e}", path.display())))?,
                ),
            },
            strict_line_endings: defaults.strict_line_endings,
        };
        Ok(MigrationSetup {
            source,
            destination,
            options,
            state,
            progress_interval: Duration::from_millis(self.progress_interval_ms.unwrap_or(100)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = r#"{"host":"h","user":"u","password":"p"}"#;

    #[test]
    fn unknown_fields_are_refused() {
        let e = Config::parse(r#"{"sauce":{}}"#).unwrap_err();
        assert_eq!(e.status, imapmig_status::Config);
        assert!(e.message.contains("sauce"), "{}", e.message);
    }

    #[test]
    fn migration_needs_a_state_file_unless_dry_run() {
        let json = format!(r#"{{"source":{SERVER},"destination":{SERVER}}}"#);
        let e = Config::parse(&json).unwrap().migration().err().unwrap();
        assert!(e.message.contains("state"), "{}", e.message);
        let json = format!(r#"{{"source":{SERVER},"destination":{SERVER},"dry_run":true}}"#);
        assert!(Config::parse(&json).unwrap().migration().is_ok());
    }

    #[test]
    fn renames_keep_their_order_and_defaults_match_the_cli() {
        let json = format!(
            r#"{{"source":{SERVER},"destination":{SERVER},"dry_run":true,
                "renames":{{"b":"x","a":"y"}},"since":"2024-01-31"}}"#
        );
        let setup = Config::parse(&json).unwrap().migration().unwrap();
        assert_eq!(
            setup.options.plan.renames,
            vec![("b".into(), "x".into()), ("a".into(), "y".into())]
        );
        assert_eq!(setup.options.account_key, "imap:u -> imap:u");
        assert_eq!(setup.source.endpoint.port, 993);
        assert!(setup.options.filter.since.is_some());
    }

    #[test]
    fn bad_values_name_the_field() {
        let json = format!(r#"{{"source":{SERVER},"since":"yesterday"}}"#);
        let e = Config::parse(&json).unwrap().filter().unwrap_err();
        assert!(e.message.contains("since"), "{}", e.message);
        let json = r#"{"source":{"host":"h","user":"u","password":"p","tls":"ssl"}}"#;
        assert_eq!(
            Config::parse(json).unwrap_err().status,
            imapmig_status::Config
        );
    }

    #[test]
    fn the_password_never_prints() {
        let c =
            Config::parse(r#"{"source":{"host":"h","user":"u","password":"hunter2"}}"#).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// The configuration as bindings-test writes it, and one with every field the header
    /// documents: what each resolves to stays what it was.
    #[test]
    fn documented_configurations_resolve_as_before() {
        let json = r#"{"source":{"host":"127.0.0.1","port":10993,"user":"alice","password":"pw",
            "ca_file":"/tmp/ca.pem","timeout_secs":60},
            "destination":{"host":"127.0.0.1","port":20993,"user":"carol","password":"pw2",
            "ca_file":"/tmp/ca.pem","timeout_secs":60},"state":"/tmp/c.sqlite"}"#;
        let dir = std::env::temp_dir().join(format!("imapmig-ffi-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = json.replace("/tmp/c.sqlite", dir.join("c.sqlite").to_str().unwrap());
        let setup = Config::parse(&json).unwrap().migration().unwrap();
        assert_eq!(setup.source.endpoint.host, "127.0.0.1");
        assert_eq!(setup.source.endpoint.port, 10993);
        assert_eq!(setup.source.endpoint.security, Security::Tls);
        assert_eq!(
            setup.source.endpoint.verify,
            TlsVerify::CaFile("/tmp/ca.pem".into())
        );
        assert_eq!(setup.source.endpoint.timeout, Duration::from_secs(60));
        assert_eq!(setup.source.credentials.user, "alice");
        assert_eq!(setup.source.credentials.secret.expose(), "pw");
        assert_eq!(setup.source.credentials.method, AuthMethod::Auto);
        assert_eq!(setup.destination.endpoint.port, 20993);
        assert_eq!(setup.destination.credentials.user, "carol");
        assert_eq!(setup.options.account_key, "imap:alice -> imap:carol");
        assert_eq!(setup.options.connections, 2);
        assert_eq!(setup.options.batch, 64);
        assert_eq!(setup.options.retries, 5);
        assert_eq!(setup.options.backoff, Duration::from_millis(500));
        assert!(!setup.options.dry_run);
        assert_eq!(setup.options.plan, PlanOptions::default());
        assert_eq!(setup.options.filter, MessageFilter::default());
        assert_eq!(setup.progress_interval, Duration::from_millis(100));
        std::fs::remove_dir_all(&dir).ok();

        let json = r#"{
            "source": {"host": "imap.example.com", "user": "alice@example.com",
                       "password": "x", "tls": "starttls", "auth": "plain",
                       "authzid": "bob", "insecure": true, "timeout_secs": 0},
            "destination": {"host": "new.example", "port": 1143, "user": "b", "password": "y",
                            "tls": "none", "auth": "oauthbearer"},
            "account_key": "k", "connections": 0, "batch": 3, "dry_run": true,
            "retries": 1, "backoff_ms": 20, "progress_interval_ms": 7,
            "mode": "unified", "unified_root": "Old", "unified_address": "a@x",
            "include": ["INBOX", "Work"], "exclude": ["Archive"],
            "exclude_special": ["trash"], "renames": {"Old": "New/Name", "A": "B"},
            "include_virtual": true, "since": "2020-01-01", "before": "2024-01-01",
            "date_field": "header", "max_size": 26214400
        }"#;
        let setup = Config::parse(json).unwrap().migration().unwrap();
        let src = &setup.source;
        assert_eq!(src.endpoint.port, 143);
        assert_eq!(src.endpoint.security, Security::StartTls);
        assert_eq!(src.endpoint.verify, TlsVerify::Insecure);
        assert_eq!(src.endpoint.timeout, Duration::from_secs(1));
        assert_eq!(src.credentials.method, AuthMethod::Plain);
        assert_eq!(src.credentials.authzid.as_deref(), Some("bob"));
        let dst = &setup.destination;
        assert_eq!(dst.endpoint.port, 1143);
        assert_eq!(dst.endpoint.security, Security::Cleartext);
        assert_eq!(dst.credentials.method, AuthMethod::OAuthBearer);
        let o = &setup.options;
        assert_eq!(o.account_key, "k");
        assert_eq!((o.connections, o.batch, o.retries), (1, 3, 1));
        assert_eq!(o.backoff, Duration::from_millis(20));
        assert!(o.dry_run);
        assert_eq!(setup.progress_interval, Duration::from_millis(7));
        assert_eq!(
            o.plan,
            PlanOptions {
                mode: Mode::Unified {
                    root: "Old".into(),
                    address: "a@x".into()
                },
                include: vec!["INBOX".into(), "Work".into()],
                exclude: vec!["Archive".into()],
                exclude_special: vec![SpecialUse::Trash],
                renames: vec![("Old".into(), "New/Name".into()), ("A".into(), "B".into())],
                include_virtual: true,
                ..PlanOptions::default()
            }
        );
        assert_eq!(
            o.filter,
            MessageFilter {
                since: Some(time::macros::date!(2020 - 01 - 01)),
                before: Some(time::macros::date!(2024 - 01 - 01)),
                date_field: DateField::Header,
                max_size: Some(26_214_400),
            }
        );
    }
}
