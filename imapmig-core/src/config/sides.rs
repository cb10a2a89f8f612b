//! The two sides of a migration as a configuration names them: an IMAP or POP3 server with its
//! login, or a local store. Read from JSON (the C configuration's `"source"` and
//! `"destination"`) or filled in by a face, and resolved into the engine's specs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::ConfigError;
use crate::imap::{Account, AuthMethod, Credentials, Endpoint, Security, TlsVerify};
use crate::net::{Protocol, DEFAULT_TIMEOUT};
use crate::secret::Secret;
use crate::sink::SinkSpec;
use crate::source::{MaildirSpec, MboxFlavor, MboxSpec, Pop3Spec, SourceSpec};

/// One server and the login on it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port; by default the protocol's usual one for `tls` (993/143, POP3 995/110).
    #[serde(default)]
    pub port: Option<u16>,
    /// The login name (for an admin login, the admin).
    pub user: String,
    /// The password, or the OAuth2 access token for `xoauth2` and `oauthbearer`.
    pub password: Secret,
    /// How the connection is protected (`"tls"`, `"starttls"`, `"none"`).
    #[serde(default)]
    pub tls: Security,
    /// The login mechanism.
    #[serde(default)]
    pub auth: AuthMethod,
    /// The user to act for (an admin or Dovecot master-user login).
    #[serde(default)]
    pub authzid: Option<String>,
    /// Also trust the CA certificates (or the pinned self-signed certificate) in this file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Check no certificate at all (lab servers only).
    #[serde(default)]
    pub insecure: bool,
    /// The longest wait for any single answer; at least a second is waited.
    #[serde(default, rename = "timeout_secs", deserialize_with = "seconds")]
    pub timeout: Option<Duration>,
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
}

impl ServerConfig {
    /// A server reached over implicit TLS on the usual port, logging in with a password.
    pub fn new(host: impl Into<String>, user: impl Into<String>, password: Secret) -> Self {
        ServerConfig {
            host: host.into(),
            port: None,
            user: user.into(),
            password,
            tls: Security::Tls,
            auth: AuthMethod::Auto,
            authzid: None,
            ca_file: None,
            insecure: false,
            timeout: None,
        }
    }

    /// The engine's account, reached over `protocol`.
    pub fn account(&self, protocol: Protocol) -> Account {
        let port = self
            .port
            .unwrap_or_else(|| protocol.default_port(self.tls == Security::Tls));
        let mut endpoint = Endpoint::new(&self.host, port, self.tls);
        endpoint.timeout = match self.timeout {
            Some(t) if t.is_zero() => Duration::from_secs(1),
            Some(t) => t,
            None => DEFAULT_TIMEOUT,
        };
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
                method: self.auth,
                authzid: self.authzid.clone(),
            },
        }
    }
}

/// Where mail comes from.
///
/// In JSON an object with `"kind"`: `"imap"` (the default, so a bare server object is an IMAP
/// source), `"pop3"` (a server, plus an optional `"uid_map"` file), `"maildir"` or `"mbox"`
/// (a `"path"`; mbox also takes `"flavor"`: `"mboxrd"`, `"mboxo"` or `"mboxcl2"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SideFields")]
pub enum SourceConfig {
    /// An IMAP server: every folder.
    Imap(ServerConfig),
    /// A POP3 server: the inbox only, never deleting anything.
    Pop3 {
        /// The server and login.
        server: ServerConfig,
        /// The file keeping the UIDL-to-UID table; by default beside the state file.
        uid_map: Option<PathBuf>,
    },
    /// A Maildir++ tree.
    Maildir {
        /// Its root.
        path: PathBuf,
    },
    /// An mbox file, or a directory of them (one folder per file).
    Mbox {
        /// The file or directory.
        path: PathBuf,
        /// How `From ` lines are escaped in it.
        flavor: MboxFlavor,
    },
}

/// Where mail goes.
///
/// In JSON an object with `"kind"`: `"imap"` (the default: a bare server object) or
/// `"maildir"` with a `"path"` (a Maildir++ tree, created when missing).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SideFields")]
pub enum DestinationConfig {
    /// An IMAP server.
    Imap(ServerConfig),
    /// A local Maildir++ tree.
    Maildir {
        /// Its root.
        path: PathBuf,
    },
}

/// The file name a POP3 source keeps its UIDL table in by default: in a directory beside the
/// state file, one file per mailbox and server.
pub fn default_uid_map(state: &Path, account: &Account) -> PathBuf {
    let mut dir = state.as_os_str().to_owned();
    dir.push(".pop3-uids");
    PathBuf::from(dir).join(format!(
        "{}@{}_{}",
        account.credentials.mailbox_user().replace('/', "_"),
        account.endpoint.host.replace('/', "_"),
        account.endpoint.port
    ))
}

impl SourceConfig {
    /// The engine's source. A POP3 source without its own `uid_map` keeps it beside `state`.
    pub fn spec(&self, state: Option<&Path>) -> Result<SourceSpec, ConfigError> {
        Ok(match self {
            SourceConfig::Imap(s) => SourceSpec::Imap(s.account(Protocol::Imap)),
            SourceConfig::Pop3 { server, uid_map } => {
                let account = server.account(Protocol::Pop3);
                let uid_map = match (uid_map, state) {
                    (Some(p), _) => p.clone(),
                    (None, Some(state)) => default_uid_map(state, &account),
                    (None, None) => {
                        return Err(ConfigError::Missing {
                            field: "uid_map",
                            why: "a POP3 source keeps its UIDL table in a file: name it, or the \
                                  state file it goes beside",
                        })
                    }
                };
                SourceSpec::Pop3(Pop3Spec::new(account, uid_map))
            }
            SourceConfig::Maildir { path } => SourceSpec::Maildir(MaildirSpec::new(path)),
            SourceConfig::Mbox { path, flavor } => {
                SourceSpec::Mbox(MboxSpec::new(path).with_flavor(*flavor))
            }
        })
    }

    /// The server account of a server source (IMAP or POP3), reached over its protocol.
    pub fn account(&self) -> Option<Account> {
        match self {
            SourceConfig::Imap(s) => Some(s.account(Protocol::Imap)),
            SourceConfig::Pop3 { server, .. } => Some(server.account(Protocol::Pop3)),
            _ => None,
        }
    }
}

impl DestinationConfig {
    /// The engine's sink.
    pub fn spec(&self) -> SinkSpec {
        match self {
            DestinationConfig::Imap(s) => SinkSpec::Imap(s.account(Protocol::Imap)),
            DestinationConfig::Maildir { path } => SinkSpec::Maildir(MaildirSpec::new(path)),
        }
    }
}

/// The name a source goes by in unified mode: the mailbox of the login, or a local store's
/// file name.
pub fn source_name(spec: &SourceSpec) -> String {
    let file_name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("local")
            .to_string()
    };
    match spec {
        SourceSpec::Imap(a) => a.credentials.mailbox_user().to_string(),
        SourceSpec::Pop3(p) => p.account.credentials.mailbox_user().to_string(),
        SourceSpec::Maildir(m) => file_name(&m.path),
        SourceSpec::Mbox(m) => file_name(&m.path),
    }
}

/// `"kind"` of a side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Imap,
    Pop3,
    Maildir,
    Mbox,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Flavor {
    Mboxrd,
    Mboxo,
    Mboxcl2,
}

/// Every field a side may have, as written; [`TryFrom`] keeps the ones its kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SideFields {
    #[serde(default)]
    kind: Kind,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<Secret>,
    #[serde(default)]
    tls: Option<Security>,
    #[serde(default)]
    auth: Option<AuthMethod>,
    authzid: Option<String>,
    ca_file: Option<PathBuf>,
    insecure: Option<bool>,
    timeout_secs: Option<u64>,
    uid_map: Option<PathBuf>,
    path: Option<PathBuf>,
    flavor: Option<Flavor>,
}

impl SideFields {
    /// The fields present that `kind` does not take.
    fn foreign(&self, kind: Kind) -> Option<&'static str> {
        let server = [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("user", self.user.is_some()),
            ("password", self.password.is_some()),
            ("tls", self.tls.is_some()),
            ("auth", self.auth.is_some()),
            ("authzid", self.authzid.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("insecure", self.insecure.is_some()),
            ("timeout_secs", self.timeout_secs.is_some()),
        ];
        let local = [("path", self.path.is_some())];
        let given = |list: &[(&'static str, bool)]| list.iter().find(|(_, g)| *g).map(|(n, _)| *n);
        let (server_ok, path_ok, uid_map_ok, flavor_ok) = match kind {
            Kind::Imap => (true, false, false, false),
            Kind::Pop3 => (true, false, true, false),
            Kind::Maildir => (false, true, false, false),
            Kind::Mbox => (false, true, false, true),
        };
        (!server_ok)
            .then(|| given(&server))
            .flatten()
            .or_else(|| (!path_ok).then(|| given(&local)).flatten())
            .or_else(|| (!uid_map_ok && self.uid_map.is_some()).then_some("uid_map"))
            .or_else(|| (!flavor_ok && self.flavor.is_some()).then_some("flavor"))
    }

    fn server(self) -> Result<ServerConfig, String> {
        let need =
            |v: Option<String>, field: &str| v.ok_or_else(|| format!("a server needs \"{field}\""));
        Ok(ServerConfig {
            host: need(self.host, "host")?,
            port: self.port,
            user: need(self.user, "user")?,
            password: self
                .password
                .ok_or_else(|| "a server needs \"password\"".to_string())?,
            tls: self.tls.unwrap_or_default(),
            auth: self.auth.unwrap_or_default(),
            authzid: self.authzid,
            ca_file: self.ca_file,
            insecure: self.insecure.unwrap_or(false),
            timeout: self.timeout_secs.map(Duration::from_secs),
        })
    }

    fn checked(self) -> Result<Self, String> {
        match self.foreign(self.kind) {
            Some(field) => Err(format!(
                "\"{field}\" is not a field of a {} side",
                match self.kind {
                    Kind::Imap => "imap",
                    Kind::Pop3 => "pop3",
                    Kind::Maildir => "maildir",
                    Kind::Mbox => "mbox",
                }
            )),
            None => Ok(self),
        }
    }
}

impl TryFrom<SideFields> for SourceConfig {
    type Error = String;

    fn try_from(f: SideFields) -> Result<Self, String> {
        let f = f.checked()?;
        let path = |p: Option<PathBuf>| p.ok_or_else(|| "a local store needs \"path\"".to_string());
        Ok(match f.kind {
            Kind::Imap => SourceConfig::Imap(f.server()?),
            Kind::Pop3 => {
                let uid_map = f.uid_map.clone();
                SourceConfig::Pop3 {
                    server: f.server()?,
                    uid_map,
                }
            }
            Kind::Maildir => SourceConfig::Maildir {
                path: path(f.path)?,
            },
            Kind::Mbox => SourceConfig::Mbox {
                flavor: match f.flavor {
                    None | Some(Flavor::Mboxrd) => MboxFlavor::Mboxrd,
                    Some(Flavor::Mboxo) => MboxFlavor::Mboxo,
                    Some(Flavor::Mboxcl2) => MboxFlavor::Mboxcl2,
                },
                path: path(f.path)?,
            },
        })
    }
}

impl TryFrom<SideFields> for DestinationConfig {
    type Error = String;

    fn try_from(f: SideFields) -> Result<Self, String> {
        match f.kind {
            Kind::Pop3 => return Err("mail can only be written over IMAP".into()),
            Kind::Mbox => return Err(MBOX_DESTINATION.into()),
            _ => {}
        }
        let f = f.checked()?;
        Ok(match f.kind {
            Kind::Maildir => DestinationConfig::Maildir {
                path: f
                    .path
                    .ok_or_else(|| "a local store needs \"path\"".to_string())?,
            },
            _ => DestinationConfig::Imap(f.server()?),
        })
    }
}

/// Why an mbox destination is refused, in every face.
pub const MBOX_DESTINATION: &str =
    "mbox is an import format, not a destination; use a Maildir for a local copy";
