//! Command-line flags for the two sides, turned into the library's types.
//!
//! A side is an IMAP server (`--src-host`/`--dst-host` and friends, unchanged), a POP3 server
//! (the same flags with `--src-protocol pop3`), or a local store: `--src maildir:PATH`,
//! `--src mbox:PATH`, `--dst maildir:PATH`. The server flags are required only when no local
//! store is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use imapmig_core::engine::{Account, DateField, MessageFilter};
use imapmig_core::imap::{AuthMethod, Credentials, Endpoint, Security, TlsVerify};
use imapmig_core::mapping::{Mode, PlanError, PlanOptions, Planner};
use imapmig_core::model::SpecialUse;
use imapmig_core::secret::Secret;
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::{MaildirSpec, MboxFlavor, MboxSpec, Pop3Spec, SourceSpec};

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
            /// The library's account for these flags; the secret comes from the environment
            /// or the password file.
            pub fn account(&self) -> Result<Account, CliError> {
                self.account_on(993, 143)
            }

            /// Like [`Self::account`], with other default ports (TLS, otherwise).
            pub fn account_on(&self, tls_port: u16, plain_port: u16) -> Result<Account, CliError> {
                account(
                    $side,
                    $env,
                    &self.host,
                    self.port,
                    (tls_port, plain_port),
                    &self.user,
                    self.tls.unwrap_or(TlsFlag::Tls),
                    self.password_file.as_ref(),
                    self.auth.unwrap_or(AuthFlag::Auto),
                    self.authzid.as_ref(),
                    self.ca_file.as_ref(),
                    self.insecure.unwrap_or(false),
                    self.timeout.unwrap_or(120),
                )
            }
        }
    };
}

server_args!(SourceArgs, "src", "IMAPMIG_SRC_PASSWORD", "source");
server_args!(DestArgs, "dst", "IMAPMIG_DST_PASSWORD", "destination");

#[allow(clippy::too_many_arguments)]
fn account(
    side: &str,
    env: &str,
    host: &str,
    port: Option<u16>,
    (tls_port, plain_port): (u16, u16),
    user: &str,
    tls: TlsFlag,
    password_file: Option<&PathBuf>,
    auth: AuthFlag,
    authzid: Option<&String>,
    ca_file: Option<&PathBuf>,
    insecure: bool,
    timeout: u64,
) -> Result<Account, CliError> {
    let secret = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the {side} password file {}: {e}",
                    path.display()
                ))
            })?;
            Secret::new(text.trim_end_matches(['\r', '\n']).to_string())
        }
        None => match std::env::var(env) {
            Ok(v) => Secret::new(v),
            Err(_) => {
                return Err(CliError::Usage(format!(
                    "no {side} password: set ${env} or give --{}-password-file",
                    if side == "source" { "src" } else { "dst" }
                )))
            }
        },
    };
    let security = match tls {
        TlsFlag::None => Security::Cleartext,
        TlsFlag::Starttls => Security::StartTls,
        TlsFlag::Tls => Security::Tls,
    };
    let port = port.unwrap_or(if tls == TlsFlag::Tls {
        tls_port
    } else {
        plain_port
    });
    let mut endpoint = Endpoint::new(host, port, security);
    endpoint.timeout = Duration::from_secs(timeout.max(1));
    endpoint.verify = match (insecure, ca_file) {
        (true, _) => TlsVerify::Insecure,
        (false, Some(p)) => TlsVerify::CaFile(p.clone()),
        (false, None) => TlsVerify::System,
    };
    let method = match auth {
        AuthFlag::Auto => AuthMethod::Auto,
        AuthFlag::Login => AuthMethod::Login,
        AuthFlag::Plain => AuthMethod::Plain,
        AuthFlag::Xoauth2 => AuthMethod::XOAuth2,
        AuthFlag::Oauthbearer => AuthMethod::OAuthBearer,
    };
    Ok(Account {
        endpoint,
        credentials: Credentials {
            user: user.to_string(),
            secret,
            method,
            authzid: authzid.cloned(),
        },
    })
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
pub fn source_spec(
    server: Option<&SourceArgs>,
    place: &SourceWhere,
    state: Option<&Path>,
) -> Result<SourceSpec, CliError> {
    if let Some(store) = &place.store {
        return Ok(match store {
            LocalStore::Maildir(p) => SourceSpec::Maildir(MaildirSpec::new(p)),
            LocalStore::Mbox(p) => {
                let flavor = match place.mbox_flavor.unwrap_or(MboxFlavorFlag::Mboxrd) {
                    MboxFlavorFlag::Mboxrd => MboxFlavor::Mboxrd,
                    MboxFlavorFlag::Mboxo => MboxFlavor::Mboxo,
                    MboxFlavorFlag::Mboxcl2 => MboxFlavor::Mboxcl2,
                };
                SourceSpec::Mbox(MboxSpec::new(p).with_flavor(flavor))
            }
        });
    }
    let server = server.ok_or_else(|| {
        CliError::Usage(
            "no source: give --src-host and --src-user (an IMAP or POP3 server) or --src maildir:PATH / mbox:PATH".into(),
        )
    })?;
    match place.protocol.unwrap_or_default() {
        ProtocolFlag::Imap => Ok(SourceSpec::Imap(server.account()?)),
        ProtocolFlag::Pop3 => {
            let account = server.account_on(995, 110)?;
            let uid_map = match &place.uid_map {
                Some(p) => p.clone(),
                None => {
                    let state = match state {
                        Some(s) => s.to_path_buf(),
                        None => crate::default_state_path()?,
                    };
                    let mut dir = state.into_os_string();
                    dir.push(".pop3-uids");
                    PathBuf::from(dir).join(format!(
                        "{}@{}_{}",
                        account.credentials.mailbox_user().replace('/', "_"),
                        account.endpoint.host.replace('/', "_"),
                        account.endpoint.port
                    ))
                }
            };
            Ok(SourceSpec::Pop3(Pop3Spec::new(account, uid_map)))
        }
    }
}

/// The destination side of a command: a server's flags, or a local store.
pub fn sink_spec(server: Option<&DestArgs>, place: &DestWhere) -> Result<SinkSpec, CliError> {
    match (&place.store, server) {
        (Some(LocalStore::Maildir(p)), _) => Ok(SinkSpec::Maildir(MaildirSpec::new(p))),
        (Some(LocalStore::Mbox(_)), _) => Err(CliError::Usage(
            "--dst mbox:PATH is not supported: mbox is an import format; use --dst maildir:PATH for a local copy".into(),
        )),
        (None, Some(d)) => Ok(SinkSpec::Imap(d.account()?)),
        (None, None) => Err(CliError::Usage(
            "no destination: give --dst-host and --dst-user, or --dst maildir:PATH".into(),
        )),
    }
}

/// The name a source goes by in unified mode: the login, or a local store's file name.
pub fn source_name(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::Imap(a) => a.credentials.mailbox_user().to_string(),
        SourceSpec::Pop3(p) => p.account.credentials.mailbox_user().to_string(),
        SourceSpec::Maildir(m) => file_name(&m.path),
        SourceSpec::Mbox(m) => file_name(&m.path),
        other => other.describe(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("local")
        .to_string()
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
    #[arg(long, default_value = "Migrated")]
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

/// Checks folder options as the flags gave them, before anything is contacted; the error
/// names the flag at fault (`--include`, `--exclude`, `--map`, `--unified-root`).
pub fn check_plan(opts: &PlanOptions) -> Result<(), CliError> {
    Planner::new(opts).map(drop).map_err(|e| {
        let flag = match &e {
            PlanError::InvalidPattern { pattern, .. } => {
                if opts.include.contains(pattern) {
                    "--include"
                } else {
                    "--exclude"
                }
            }
            PlanError::InvalidRename { .. } => "--map",
            PlanError::InvalidRoot { .. } => "--unified-root",
            PlanError::EmptyAddress => "--unified-address",
            _ => "folder options",
        };
        CliError::Usage(format!("{flag}: {e}"))
    })
}

/// Checks that `--since` comes before `--before` (the range includes `since` and stops before
/// `before`, so equal days select nothing).
pub fn check_dates(since: Option<time::Date>, before: Option<time::Date>) -> Result<(), CliError> {
    match (since, before) {
        (Some(s), Some(b)) if s >= b => Err(CliError::Usage(format!(
            "--since {s} is not before --before {b}: no message would be copied"
        ))),
        _ => Ok(()),
    }
}

fn parse_day(flag: &str, value: &str) -> Result<time::Date, CliError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &fmt)
        .map_err(|_| CliError::Usage(format!("--{flag} {value:?}: expected YYYY-MM-DD")))
}

impl PlanArgs {
    /// The folder plan options.
    pub fn plan_options(&self, source_user: &str) -> Result<PlanOptions, CliError> {
        let mode = match self.mode {
            ModeFlag::Mapping => Mode::Mapping,
            ModeFlag::Unified => Mode::Unified {
                root: self.unified_root.clone(),
                address: self
                    .unified_address
                    .clone()
                    .unwrap_or_else(|| source_user.to_string()),
            },
        };
        let mut exclude_special = Vec::new();
        for s in &self.exclude_special {
            let u = SpecialUse::from_name(s.trim()).ok_or_else(|| {
                CliError::Usage(format!(
                    "--exclude-special {s:?}: expected sent, drafts, trash, junk, archive, all, flagged or important"
                ))
            })?;
            exclude_special.push(u);
        }
        let mut renames = Vec::new();
        for r in &self.renames {
            let (from, to) = r.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--map {r:?}: expected \"Old Name=New/Name\""))
            })?;
            renames.push((from.to_string(), to.to_string()));
        }
        let opts = PlanOptions {
            mode,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            exclude_special,
            renames,
            ..PlanOptions::default()
        };
        check_plan(&opts)?;
        Ok(opts)
    }

    /// The message filter.
    pub fn filter(&self) -> Result<MessageFilter, CliError> {
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
        check_dates(since, before)?;
        Ok(MessageFilter {
            since,
            before,
            date_field: match self.date_field {
                DateFieldFlag::Internal => DateField::Internal,
                DateFieldFlag::Header => DateField::Header,
            },
            max_size: self.max_size,
        })
    }
}
