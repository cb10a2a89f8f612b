//! Command-line flags for the two sides, turned into the library's types.
//!
//! A side is an IMAP server (`--src-host`/`--dst-host` and friends, unchanged), a POP3 server
//! (the same flags with `--src-protocol pop3`), or a local store: `--src maildir:PATH`,
//! `--src mbox:PATH`, `--dst maildir:PATH`. The server flags are required only when no local
//! store is given.

//!
//! The flags are translated into the core's `MigrationConfig` and nothing more: defaults,
//! checks and the resolution into the engine's types are the core's. Its errors are worded
//! here with the flag at fault.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use imapmig_core::config::{
    ConfigError, DestinationConfig, FolderMode, MigrationConfig, ServerConfig, SourceConfig,
};
use imapmig_core::engine::EngineError;
use imapmig_core::filter::DateField;
use imapmig_core::imap::{AuthMethod, Security};
use imapmig_core::secret::Secret;
use imapmig_core::source::MboxFlavor;

use crate::CliError;

/// `--src-tls` / `--dst-tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsFlag {
    /// Cleartext: the password travels readable. Loopback and lab servers only.
    None,
    /// STARTTLS on a cleartext port (143).
    Starttls,
    /// Implicit TLS (993).
    Tls,
}

impl From<TlsFlag> for Security {
    fn from(t: TlsFlag) -> Security {
        match t {
            TlsFlag::None => Security::Cleartext,
            TlsFlag::Starttls => Security::StartTls,
            TlsFlag::Tls => Security::Tls,
        }
    }
}

/// `--src-auth` / `--dst-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthFlag {
    /// PLAIN when offered (or when acting for another user), else LOGIN.
    Auto,
    /// The LOGIN command.
    Login,
    /// SASL PLAIN.
    Plain,
    /// XOAUTH2 with an access token as the password.
    Xoauth2,
    /// OAUTHBEARER with an access token as the password.
    Oauthbearer,
}

macro_rules! server_args {
    ($name:ident, $p:literal, $env:literal, $side:literal) => {
        #[doc = concat!("How to reach the ", $side, " server.")]
        #[derive(Args, Clone, Debug)]
        #[group(requires_all = [concat!($p, "-host"), concat!($p, "-user")])]
        pub struct $name {
            #[arg(id = concat!($p, "-host"), long = concat!($p, "-host"), required = false, help = concat!("The ", $side, " server's host name or address."))]
            pub host: String,
            #[doc = "Port (default: 993 with tls, 143 otherwise; for POP3 995 and 110)."]
            #[arg(id = concat!($p, "-port"), long = concat!($p, "-port"), value_parser = clap::value_parser!(u16).range(1..))]
            pub port: Option<u16>,
            #[doc = "Login name (for an admin login, the admin)."]
            #[arg(id = concat!($p, "-user"), long = concat!($p, "-user"), required = false)]
            pub user: String,
            #[doc = "Connection security [default: tls]."]
            #[arg(id = concat!($p, "-tls"), long = concat!($p, "-tls"), value_enum)]
            pub tls: Option<TlsFlag>,
            #[arg(id = concat!($p, "-password-file"), long = concat!($p, "-password-file"), help = concat!("Read the password (or OAuth2 token) from this file instead of $", $env, "."))]
            pub password_file: Option<PathBuf>,
            #[doc = "Authentication mechanism [default: auto]."]
            #[arg(id = concat!($p, "-auth"), long = concat!($p, "-auth"), value_enum)]
            pub auth: Option<AuthFlag>,
            #[doc = "Act for this user (admin or Dovecot master-user login via SASL PLAIN)."]
            #[arg(id = concat!($p, "-authzid"), long = concat!($p, "-authzid"))]
            pub authzid: Option<String>,
            #[doc = "Also trust the CA certificates in this PEM file."]
            #[arg(id = concat!($p, "-ca-file"), long = concat!($p, "-ca-file"))]
            pub ca_file: Option<PathBuf>,
            #[doc = "Do not check the server's certificate at all (lab servers only)."]
            #[arg(id = concat!($p, "-insecure"), long = concat!($p, "-insecure"), num_args = 0, default_missing_value = "true")]
            pub insecure: Option<bool>,
            #[doc = "Seconds to wait for any single answer [default: 120]."]
            #[arg(id = concat!($p, "-timeout"), long = concat!($p, "-timeout"))]
            pub timeout: Option<u64>,
        }

        impl $name {
            /// The server as the core's configuration has it; the secret comes from the
            /// environment or the password file.
            pub fn server(&self) -> Result<ServerConfig, CliError> {
                Ok(ServerConfig {
                    port: self.port,
                    tls: self.tls.map_or(Security::Tls, Security::from),
                    auth: match self.auth.unwrap_or(AuthFlag::Auto) {
                        AuthFlag::Auto => AuthMethod::Auto,
                        AuthFlag::Login => AuthMethod::Login,
                        AuthFlag::Plain => AuthMethod::Plain,
                        AuthFlag::Xoauth2 => AuthMethod::XOAuth2,
                        AuthFlag::Oauthbearer => AuthMethod::OAuthBearer,
                    },
                    authzid: self.authzid.clone(),
                    ca_file: self.ca_file.clone(),
                    insecure: self.insecure.unwrap_or(false),
                    timeout: self.timeout.map(Duration::from_secs),
                    ..ServerConfig::new(
                        &self.host,
                        &self.user,
                        secret($side, $env, self.password_file.as_ref())?,
                    )
                })
            }
        }
    };
}

server_args!(SourceArgs, "src", "IMAPMIG_SRC_PASSWORD", "source");
server_args!(DestArgs, "dst", "IMAPMIG_DST_PASSWORD", "destination");

/// The password or token of a side: from its file, or from the environment.
fn secret(side: &str, env: &str, password_file: Option<&PathBuf>) -> Result<Secret, CliError> {
    match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the {side} password file {}: {e}",
                    path.display()
                ))
            })?;
            Ok(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        None => std::env::var(env).map(Secret::new).map_err(|_| {
            CliError::Usage(format!(
                "no {side} password: set ${env} or give --{}-password-file",
                if side == "source" { "src" } else { "dst" }
            ))
        }),
    }
}

/// `--src-protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ProtocolFlag {
    /// IMAP: every folder.
    #[default]
    Imap,
    /// POP3: the inbox only, tracked by UIDL; nothing is ever deleted from the server.
    Pop3,
}

/// `--mbox-flavor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MboxFlavorFlag {
    /// `>From ` lines at any depth lose one `>` (mutt, Python, Dovecot).
    Mboxrd,
    /// Only `>From ` lines lose their `>` (Thunderbird, Netscape, old Eudora).
    Mboxo,
    /// Nothing is escaped; Content-Length separates messages (Solaris).
    Mboxcl2,
}

/// A local store named as `KIND:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalStore {
    /// `maildir:PATH`: a Maildir++ tree.
    Maildir(PathBuf),
    /// `mbox:PATH`: an mbox file or a directory of them.
    Mbox(PathBuf),
}

fn parse_local_store(value: &str) -> Result<LocalStore, String> {
    let (kind, path) = value
        .split_once(':')
        .ok_or_else(|| format!("expected maildir:PATH or mbox:PATH, got {value:?}"))?;
    if path.is_empty() {
        return Err(format!("{kind}: needs a path"));
    }
    match kind {
        "maildir" => Ok(LocalStore::Maildir(PathBuf::from(path))),
        "mbox" => Ok(LocalStore::Mbox(PathBuf::from(path))),
        _ => Err(format!(
            "unknown store {kind:?}: expected maildir:PATH or mbox:PATH"
        )),
    }
}

/// Where mail comes from when it is not an IMAP server.
#[derive(Args, Clone, Debug)]
pub struct SourceWhere {
    /// A local source instead of a server: maildir:PATH (a Maildir++ tree) or mbox:PATH (an
    /// mbox file, or a directory of them: one folder per file).
    #[arg(id = "src", long = "src", value_name = "KIND:PATH", value_parser = parse_local_store,
          conflicts_with_all = ["src-host", "src-user", "src-protocol"])]
    pub store: Option<LocalStore>,
    /// The source server's protocol [default: imap]. pop3 copies the inbox only and never
    /// deletes anything.
    #[arg(id = "src-protocol", long = "src-protocol", value_enum)]
    pub protocol: Option<ProtocolFlag>,
    /// How an mbox source escapes `From ` lines [default: mboxrd].
    #[arg(id = "mbox-flavor", long = "mbox-flavor", value_enum)]
    pub mbox_flavor: Option<MboxFlavorFlag>,
    /// POP3: the file keeping the UIDL-to-UID table (default: beside the state file).
    #[arg(id = "src-uid-map", long = "src-uid-map")]
    pub uid_map: Option<PathBuf>,
}

/// Where mail goes when it is not an IMAP server.
#[derive(Args, Clone, Debug)]
pub struct DestWhere {
    /// A local destination instead of a server: maildir:PATH (a Maildir++ tree, created when
    /// missing, that Dovecot can serve and `--src maildir:PATH` reads back).
    #[arg(id = "dst", long = "dst", value_name = "maildir:PATH", value_parser = parse_local_store,
          conflicts_with_all = ["dst-host", "dst-user"])]
    pub store: Option<LocalStore>,
}

/// The source side of a command: a server's flags, or a local store.
pub fn source_config(
    server: Option<&SourceArgs>,
    place: &SourceWhere,
) -> Result<SourceConfig, CliError> {
    if let Some(store) = &place.store {
        return Ok(match store {
            LocalStore::Maildir(p) => SourceConfig::Maildir { path: p.clone() },
            LocalStore::Mbox(p) => SourceConfig::Mbox {
                path: p.clone(),
                flavor: match place.mbox_flavor.unwrap_or(MboxFlavorFlag::Mboxrd) {
                    MboxFlavorFlag::Mboxrd => MboxFlavor::Mboxrd,
                    MboxFlavorFlag::Mboxo => MboxFlavor::Mboxo,
                    MboxFlavorFlag::Mboxcl2 => MboxFlavor::Mboxcl2,
                },
            },
        });
    }
    let server = server.ok_or_else(|| {
        CliError::Usage(
            "no source: give --src-host and --src-user (an IMAP or POP3 server) or --src maildir:PATH / mbox:PATH".into(),
        )
    })?;
    Ok(match place.protocol.unwrap_or_default() {
        ProtocolFlag::Imap => SourceConfig::Imap(server.server()?),
        ProtocolFlag::Pop3 => SourceConfig::Pop3 {
            server: server.server()?,
            uid_map: place.uid_map.clone(),
        },
    })
}

/// The destination side of a command: a server's flags, or a local store.
pub fn destination_config(
    server: Option<&DestArgs>,
    place: &DestWhere,
) -> Result<DestinationConfig, CliError> {
    match (&place.store, server) {
        (Some(LocalStore::Maildir(p)), _) => Ok(DestinationConfig::Maildir { path: p.clone() }),
        (Some(LocalStore::Mbox(_)), _) => Err(CliError::Usage(
            "--dst mbox:PATH is not supported: mbox is an import format; use --dst maildir:PATH for a local copy".into(),
        )),
        (None, Some(d)) => Ok(DestinationConfig::Imap(d.server()?)),
        (None, None) => Err(CliError::Usage(
            "no destination: give --dst-host and --dst-user, or --dst maildir:PATH".into(),
        )),
    }
}

/// A configuration error in the words of the flags.
pub fn usage(e: ConfigError) -> CliError {
    let flag = |field: &str| match field {
        "renames" => "--map".to_string(),
        "uid_map" => "--src-uid-map".to_string(),
        other => format!("--{}", other.replace('_', "-")),
    };
    match e {
        ConfigError::State(e) => CliError::Engine(EngineError::State(e)),
        ConfigError::EmptyDateRange { since, before } => CliError::Usage(format!(
            "--since {since} is not before --before {before}: no message would be copied"
        )),
        ConfigError::Invalid { field, value, why } => {
            CliError::Usage(format!("{} {value:?}: {why}", flag(field)))
        }
        ConfigError::Folders { field, error } => {
            CliError::Usage(format!("{}: {error}", flag(field)))
        }
        e => CliError::Usage(match e.field() {
            Some(field) => format!("{}: {e}", flag(field)),
            None => e.to_string(),
        }),
    }
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeFlag {
    /// System folders map onto the destination's own; custom folders keep their tree.
    Mapping,
    /// Everything under one folder named after the source address.
    Unified,
}

/// `--date-field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DateFieldFlag {
    /// INTERNALDATE (when the server received the message).
    Internal,
    /// The Date: header.
    Header,
}

/// Which folders go where, and which messages.
#[derive(Args, Clone, Debug)]
pub struct PlanArgs {
    /// Folder mapping mode.
    #[arg(long, value_enum, default_value = "mapping")]
    pub mode: ModeFlag,
    /// The root folder for unified mode ("" puts the address folder at the top).
    #[arg(long, default_value = imapmig_core::config::DEFAULT_UNIFIED_ROOT)]
    pub unified_root: String,
    /// The source address naming the unified folder (default: the source user name).
    #[arg(long)]
    pub unified_address: Option<String>,
    /// Only folders matching this glob ('/' separates levels, '**' any depth). Repeatable.
    #[arg(long)]
    pub include: Vec<String>,
    /// Leave out folders matching this glob. Repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Leave out folders of this special use: sent, drafts, trash, junk, archive, all,
    /// flagged, important. Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude_special: Vec<String>,
    /// Rename a folder: "Old Name=New/Name" ('/' separates levels). Repeatable.
    #[arg(long = "map")]
    pub renames: Vec<String>,
    /// Only messages on or after this day (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Only messages before this day (YYYY-MM-DD).
    #[arg(long)]
    pub before: Option<String>,
    /// Which date --since and --before look at.
    #[arg(long, value_enum, default_value = "internal")]
    pub date_field: DateFieldFlag,
    /// Skip (and report) messages larger than this many bytes.
    #[arg(long)]
    pub max_size: Option<u64>,
}

impl PlanArgs {
    /// Puts the folder and message options into `c`.
    pub fn fill(&self, c: &mut MigrationConfig) -> Result<(), CliError> {
        c.mode = match self.mode {
            ModeFlag::Mapping => FolderMode::Mapping,
            ModeFlag::Unified => FolderMode::Unified,
        };
        c.unified_root = self.unified_root.clone();
        c.unified_address = self.unified_address.clone();
        c.include = self.include.clone();
        c.exclude = self.exclude.clone();
        c.exclude_special = self.exclude_special.clone();
        c.renames = self
            .renames
            .iter()
            .map(|r| {
                r.split_once('=')
                    .map(|(from, to)| (from.to_string(), to.to_string()))
                    .ok_or_else(|| {
                        CliError::Usage(format!("--map {r:?}: expected \"Old Name=New/Name\""))
                    })
            })
            .collect::<Result<_, _>>()?;
        c.since = self.since.clone();
        c.before = self.before.clone();
        c.date_field = match self.date_field {
            DateFieldFlag::Internal => DateField::Internal,
            DateFieldFlag::Header => DateField::Header,
        };
        c.max_size = self.max_size;
        Ok(())
    }
}
