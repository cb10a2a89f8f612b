//! The JSON configuration every operation takes: `imapmig_core::config::MigrationConfig`'s own
//! JSON form.
//!
//! One schema for all operations (documented in the header): each operation reads the fields
//! it needs and says which required one is missing. Unknown fields are refused, so a typo
//! never silently falls back to a default. Nothing is decided here: the core model reads,
//! checks and resolves the configuration; this module turns its errors into statuses.

use std::sync::Arc;
use std::time::Duration;

use imapmig_core::config::{ConfigError, MigrationConfig, Resolved};
use imapmig_core::engine::{Account, MigrationOptions};
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::SourceSpec;
use imapmig_core::state::StateStore;

use crate::status::{imapmig_status, Failure};

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        let status = match e {
            ConfigError::State(_) => imapmig_status::State,
            _ => imapmig_status::Config,
        };
        Failure::new(status, format!("configuration: {e}"))
    }
}

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    model: MigrationConfig,
}

/// Everything a migration handle needs.
pub struct MigrationSetup {
    pub source: SourceSpec,
    pub destination: SinkSpec,
    pub options: MigrationOptions,
    pub state: Arc<dyn StateStore>,
    pub progress_interval: Duration,
}

impl Config {
    /// Parses the JSON text.
    pub fn parse(json: &str) -> Result<Config, Failure> {
        serde_json::from_str(json)
            .map(|model| Config { model })
            .map_err(|e| Failure::config(format!("configuration: {e}")))
    }

    /// The source server's account, if the source is a server.
    pub fn source_account(&self) -> Option<Account> {
        self.model.source.as_ref().and_then(|s| s.account())
    }

    /// The destination server's account, if the destination is a server.
    pub fn destination_account(&self) -> Option<Account> {
        match self.model.destination.as_ref().map(|d| d.spec()) {
            Some(SinkSpec::Imap(a)) => Some(a),
            _ => None,
        }
    }

    /// Whether the source is a POP3 server.
    pub fn source_is_pop3(&self) -> bool {
        matches!(
            self.model.source,
            Some(imapmig_core::config::SourceConfig::Pop3 { .. })
        )
    }

    /// Both sides and every option, resolved.
    pub fn resolve(&self) -> Result<Resolved, Failure> {
        Ok(self.model.resolve()?)
    }

    /// Which messages go.
    #[cfg(test)]
    pub fn filter(&self) -> Result<imapmig_core::engine::MessageFilter, Failure> {
        Ok(self.model.filter()?)
    }

    /// Everything a migration needs; opens (creating it if needed) the state file.
    pub fn migration(&self) -> Result<MigrationSetup, Failure> {
        let mut resolved = self.model.resolve()?;
        let destination = resolved.destination()?.clone();
        let state = resolved.open_state()?;
        Ok(MigrationSetup {
            source: resolved.source,
            destination,
            options: resolved.options,
            state,
            progress_interval: self.model.progress_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imapmig_core::engine::{DateField, MessageFilter};
    use imapmig_core::imap::{AuthMethod, Security, TlsVerify};
    use imapmig_core::mapping::{Mode, PlanOptions};
    use imapmig_core::model::SpecialUse;

    /// A migration between two servers, as the tests look at it.
    struct Seen {
        source: Account,
        destination: Account,
        options: MigrationOptions,
        progress_interval: Duration,
    }

    fn seen(setup: MigrationSetup) -> Seen {
        let (SourceSpec::Imap(source), SinkSpec::Imap(destination)) =
            (setup.source, setup.destination)
        else {
            panic!("two IMAP servers expected");
        };
        Seen {
            source,
            destination,
            options: setup.options,
            progress_interval: setup.progress_interval,
        }
    }

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
        let setup = seen(Config::parse(&json).unwrap().migration().unwrap());
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
        let setup = seen(Config::parse(&json).unwrap().migration().unwrap());
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
        let setup = seen(Config::parse(json).unwrap().migration().unwrap());
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
