//! The batch commands: `task create|show|edit`, `accounts import`, `run`, `status`,
//! `pause|resume|stop|credentials`, `audit`. A thin face over `imapmig_core::batch`.
//!
//! Every command works on one task (`--task`, default `default`) in one state file (`--state`,
//! default `$XDG_STATE_HOME/imapmig/state.sqlite`), which also holds the sync state.
//!
//! Exit status of the batch commands:
//!
//! * 0: done. For `run --until-idle`: every account is synced or stopped.
//! * 1: done, but not everything: `run --until-idle` ended with failed accounts or accounts
//!   waiting for credentials; `accounts import --skip-bad-rows` left bad rows out.
//! * 2: bad usage or configuration, an invalid CSV file (nothing imported), an unknown task or
//!   account (nothing changed).
//! * 5: the state file failed (cannot open, disk full, written by a newer imapmig).
//! * 6: another `imapmig run` is running this task.
//! * 130: interrupted (SIGINT); passes stop at a message boundary and a new `run` resumes them.
//!   SIGTERM stops the same way and exits 0.
//! * 141: standard output or error was closed by its reader (`imapmig status | head`): the
//!   command ends quietly, as SIGPIPE ends other tools.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use imapmig_core::batch::report::{to_csv, to_json};
use imapmig_core::batch::seal::StateKey;
use imapmig_core::batch::task::{
    format_duration, parse_duration, CertificateCheck, FolderMode, PasswordMechanism, Protocol,
    ServerSettings, TaskError, TokenMechanism,
};
use imapmig_core::batch::{
    AccountReport, BatchError, BatchErrorKind, BatchStore, EditScope, ImportOptions, LiveSnapshot,
    RunSummary, Scheduler, SchedulerOptions, Selection, Status, TaskSettings, TaskSummary,
};
use imapmig_core::config::{
    AuthPatch, FoldersPatch, LimitsPatch, MessagesPatch, RetryPatch, SchedulePatch, ServerPatch,
    SettingsPatch, DEFAULT_UNIFIED_ROOT,
};
use imapmig_core::imap::Security;
use imapmig_core::secret::Secret;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::args::TlsFlag;
use crate::CliError;

/// Which task, in which file.
#[derive(Args, Clone, Debug)]
pub struct TaskRef {
    /// The state file (SQLite; holds the tasks, accounts and sync state). Default:
    /// $XDG_STATE_HOME/imapmig/state.sqlite.
    #[arg(long, env = "IMAPMIG_STATE")]
    state: Option<PathBuf>,
    /// The task's name.
    #[arg(long, env = "IMAPMIG_TASK", default_value = "default")]
    task: String,
    /// A file holding the key that encrypts the passwords kept in the state file (any random
    /// text: `head -c 32 /dev/urandom | base64 > key`). Default: $IMAPMIG_STATE_KEY. Without
    /// either, passwords are kept unencrypted (the file is private to its owner).
    #[arg(long)]
    state_key_file: Option<PathBuf>,
}

/// The batch commands, flattened into the top-level command list.
#[derive(Subcommand, Debug)]
pub enum BatchCommand {
    /// Create, show or edit a migration task (servers, folders, schedule, limits).
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Import the accounts of a task.
    Accounts {
        #[command(subcommand)]
        action: AccountsAction,
    },
    /// Run the task's scheduler: migrates accounts within the limits and keeps running
    /// incremental passes until their window closes. Stop with Ctrl-C or SIGTERM; a new run
    /// resumes.
    ///
    /// Exit status: 0 done (with --until-idle: every account synced or stopped); 1 --until-idle
    /// ended with failed accounts or accounts waiting for credentials; 2 bad usage or unknown
    /// task; 5 state file failure; 6 another `imapmig run` holds the task; 130 interrupted by
    /// SIGINT (SIGTERM exits 0). The other batch commands exit 0 on success, 1 when an import
    /// skipped bad rows, 2 for bad usage, an invalid CSV (nothing imported) or an unknown task
    /// or account (nothing changed), 5 for a state file failure. Every command exits 141,
    /// quietly, when its output is closed by its reader (`imapmig status | head`).
    Run {
        #[command(flatten)]
        at: TaskRef,
        /// Exit when nothing is running, due or scheduled (synced accounts waiting for their
        /// next pass do not count).
        #[arg(long)]
        until_idle: bool,
        /// Print the run's summary as JSON on stdout at the end.
        #[arg(long)]
        json: bool,
    },
    /// Every account's status and progress.
    Status {
        #[command(flatten)]
        at: TaskRef,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Only these accounts (target, source login, or #id).
        accounts: Vec<String>,
    },
    /// Pause accounts (a running pass stops at the next message boundary).
    Pause(Control),
    /// Resume paused, failed or stopped accounts.
    Resume(Control),
    /// Stop accounts: no further passes until resumed.
    Stop(Control),
    /// Supply the source password or token of an account (from --password-file,
    /// $IMAPMIG_PASSWORD, or one line of standard input); a waiting or failed account starts.
    ///
    /// Typed on a terminal, the password is shown as it is typed: prefer the file or the
    /// variable where others can see the screen.
    Credentials {
        #[command(flatten)]
        at: TaskRef,
        /// The account: target address, source login, or #id.
        account: String,
        /// Read the password from this file.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// The audit log as JSON lines: what happened when.
    Audit {
        #[command(flatten)]
        at: TaskRef,
        /// Only records after this id.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many records.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
    },
}

/// `pause`, `resume`, `stop`.
#[derive(Args, Debug)]
pub struct Control {
    #[command(flatten)]
    at: TaskRef,
    /// Every account of the task.
    #[arg(long, conflicts_with = "accounts")]
    all: bool,
    /// The accounts: target address, source login, or #id.
    #[arg(required_unless_present = "all")]
    accounts: Vec<String>,
}

/// `status --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array.
    Json,
}

/// `task ...`.
#[derive(Subcommand, Debug)]
pub enum TaskAction {
    /// Create a task. Admin or master passwords come from $IMAPMIG_SRC_ADMIN_PASSWORD /
    /// $IMAPMIG_DST_ADMIN_PASSWORD or the --*-admin-password-file flags.
    Create {
        #[command(flatten)]
        at: TaskRef,
        #[command(flatten)]
        flags: Box<TaskFlags>,
    },
    /// Show a task's settings (never its secrets) and its accounts' totals.
    Show {
        #[command(flatten)]
        at: TaskRef,
        /// Print the settings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a task's settings; unspecified ones stay.
    Edit {
        #[command(flatten)]
        at: TaskRef,
        #[command(flatten)]
        flags: Box<TaskFlags>,
        /// Which accounts a server change (host, port, TLS, auth) applies to.
        #[arg(long, value_enum, default_value = "not-started")]
        apply_to: ApplyTo,
    },
}

/// `accounts ...`.
#[derive(Subcommand, Debug)]
pub enum AccountsAction {
    /// Import accounts from a CSV file: `target,source,password[,target_password]` (header
    /// optional) or Microsoft 365's `EmailAddress,UserName,Password`. The source may be
    /// `admin/user` (delegate login) or `user*master` (master user); an empty password makes
    /// the account wait for credentials. Nothing is imported while a row is bad.
    Import {
        #[command(flatten)]
        at: TaskRef,
        /// The CSV file.
        file: PathBuf,
        /// Import the good rows and report the bad ones.
        #[arg(long)]
        skip_bad_rows: bool,
        /// Rows already in the task update their passwords.
        #[arg(long)]
        update_existing: bool,
    },
}

/// `task edit --apply-to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApplyTo {
    /// Only accounts that have not started; started ones keep their servers.
    NotStarted,
    /// Every account, from its next pass.
    All,
}

/// `--src-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthFlag {
    /// Each account's password from the CSV.
    Password,
    /// Each account's OAuth2 token (XOAUTH2) from the CSV's password column.
    Xoauth2,
    /// Each account's OAuth2 token (OAUTHBEARER).
    Oauthbearer,
    /// One admin login acting for every account (SASL PLAIN authzid): --*-admin.
    Admin,
    /// A Dovecot master user (`user*master`): --*-admin names the master.
    Master,
}

/// `--src-mechanism`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MechanismFlag {
    /// PLAIN when offered, else LOGIN.
    Auto,
    /// LOGIN.
    Login,
    /// PLAIN.
    Plain,
}

/// `--src-protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolFlag {
    /// IMAP.
    Imap,
    /// POP3 (inbox only).
    Pop3,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeFlag {
    /// System folders onto the destination's own; several sources cannot share a target.
    Mapping,
    /// Each source under `<root>/<source mailbox>/`; sources may share a target.
    Unified,
}

macro_rules! server_flags {
    ($name:ident, $p:literal, $side:literal) => {
        #[doc = concat!("The ", $side, " server's settings.")]
        #[derive(Args, Clone, Debug, Default)]
        pub struct $name {
            #[arg(id = concat!($p, "-host"), long = concat!($p, "-host"), help = concat!("The ", $side, " server's host name or address."))]
            host: Option<String>,
            #[arg(id = concat!($p, "-port"), long = concat!($p, "-port"), value_parser = clap::value_parser!(u16).range(1..), help = "Port [default: 993 with tls, 143 otherwise; POP3 995/110].")]
            port: Option<u16>,
            #[arg(id = concat!($p, "-tls"), long = concat!($p, "-tls"), value_enum, help = "Connection security [default: tls].")]
            tls: Option<TlsFlag>,
            #[arg(id = concat!($p, "-protocol"), long = concat!($p, "-protocol"), value_enum, help = "Protocol [default: imap].")]
            protocol: Option<ProtocolFlag>,
            #[arg(id = concat!($p, "-auth"), long = concat!($p, "-auth"), value_enum, help = "How accounts log in [default: password].")]
            auth: Option<AuthFlag>,
            #[arg(id = concat!($p, "-mechanism"), long = concat!($p, "-mechanism"), value_enum, help = "SASL mechanism for password logins [default: auto].")]
            mechanism: Option<MechanismFlag>,
            #[arg(id = concat!($p, "-admin"), long = concat!($p, "-admin"), help = "The admin user (--*-auth admin) or master user (--*-auth master).")]
            admin: Option<String>,
            #[arg(id = concat!($p, "-admin-password-file"), long = concat!($p, "-admin-password-file"), help = "Read the admin's or master's password from this file.")]
            admin_password_file: Option<PathBuf>,
            #[arg(id = concat!($p, "-ca-file"), long = concat!($p, "-ca-file"), help = "Also trust the CA certificates in this PEM file.")]
            ca_file: Option<PathBuf>,
            #[arg(id = concat!($p, "-insecure"), long = concat!($p, "-insecure"), help = "Do not check the certificate (lab servers only).")]
            insecure: bool,
            #[arg(id = concat!($p, "-timeout"), long = concat!($p, "-timeout"), help = "Longest wait for one answer, e.g. 120s.")]
            timeout: Option<String>,
        }
    };
}

server_flags!(SourceFlags, "src", "source");
server_flags!(DestFlags, "dst", "destination");

/// Every task setting as an optional flag.
#[derive(Args, Clone, Debug, Default)]
pub struct TaskFlags {
    #[command(flatten)]
    src: SourceFlags,
    #[command(flatten)]
    dst: DestFlags,
    /// Folder mode.
    #[arg(long, value_enum)]
    mode: Option<ModeFlag>,
    /// The root folder in unified mode.
    #[arg(long)]
    unified_root: Option<String>,
    /// Only folders matching this glob (repeatable; replaces the list).
    #[arg(long)]
    include: Vec<String>,
    /// Leave out folders matching this glob (repeatable; replaces the list).
    #[arg(long)]
    exclude: Vec<String>,
    /// Leave out folders of these special uses (sent, trash, junk, ...; comma-separated).
    #[arg(long, value_delimiter = ',')]
    exclude_special: Vec<String>,
    /// Rename a folder: "Old Name=New/Name" (repeatable; replaces the list).
    #[arg(long = "map")]
    renames: Vec<String>,
    /// Only messages on or after this day (YYYY-MM-DD; "none" clears).
    #[arg(long)]
    since: Option<String>,
    /// Only messages before this day (YYYY-MM-DD; "none" clears).
    #[arg(long)]
    before: Option<String>,
    /// Dates look at the Date: header instead of INTERNALDATE.
    #[arg(long)]
    header_date: Option<bool>,
    /// Skip (and report) messages larger than this many bytes (0 clears).
    #[arg(long)]
    max_size: Option<u64>,
    /// When passes may start: "now" or an RFC 3339 time (2030-01-31T22:00:00+01:00).
    #[arg(long)]
    start_at: Option<String>,
    /// How long incremental passes go on after an account's first pass [default: 30d].
    #[arg(long)]
    window: Option<String>,
    /// The pause between two passes of an account [default: 1h].
    #[arg(long)]
    interval: Option<String>,
    /// Accounts migrated at the same time [default: 20].
    #[arg(long)]
    max_accounts: Option<usize>,
    /// Connections to one source host at the same time [default: 20].
    #[arg(long)]
    per_source_host: Option<usize>,
    /// Connections to one destination host at the same time [default: 40].
    #[arg(long)]
    per_destination_host: Option<usize>,
    /// Connections (per side) of one account: folders in parallel [default: 2].
    #[arg(long)]
    connections_per_account: Option<usize>,
    /// Failed passes in a row before an account is marked failed [default: 8].
    #[arg(long)]
    retries: Option<u32>,
    /// The first pause before a retry [default: 30s]; doubled each time, with jitter.
    #[arg(long)]
    retry_base: Option<String>,
    /// The longest pause before a retry [default: 1h].
    #[arg(long)]
    retry_max: Option<String>,
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn duration_flag(flag: &str, v: &str) -> Result<Duration, CliError> {
    parse_duration(v).ok_or_else(|| {
        usage(format!(
            "--{flag} {v:?}: expected a duration like 90s, 15m, 6h, 30d"
        ))
    })
}

fn day_flag(flag: &str, v: &str) -> Result<Option<time::Date>, CliError> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, &fmt)
        .map(Some)
        .map_err(|_| usage(format!("--{flag} {v:?}: expected YYYY-MM-DD")))
}

fn read_secret_file(path: &Path, what: &str) -> Result<Secret, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// The flag a setting is given with, for errors about it.
fn flag_of(setting: &str) -> &str {
    match setting {
        "source.host" => "--src-host",
        "source.port" => "--src-port",
        "source.auth" => "--src-auth",
        "source.admin" => "--src-admin",
        "destination.host" => "--dst-host",
        "destination.port" => "--dst-port",
        "destination.auth" => "--dst-auth",
        "destination.admin" => "--dst-admin",
        "destination.protocol" => "--dst-protocol",
        "folders.include" => "--include",
        "folders.exclude" => "--exclude",
        "folders.renames" => "--map",
        "folders.mode" => "--unified-root",
        "folders.exclude_special" => "--exclude-special",
        "messages.since" => "--since",
        "messages.before" => "--before",
        "messages.max_size" => "--max-size",
        "schedule.interval" => "--interval",
        "retry" => "--retry-base",
        "limits.accounts" => "--max-accounts",
        "limits.per_source_host" => "--per-source-host",
        "limits.per_destination_host" => "--per-destination-host",
        "limits.connections_per_account" => "--connections-per-account",
        other => other,
    }
}

macro_rules! server_patch {
    ($name:ident, $p:literal, $env:literal) => {
        impl $name {
            /// The flags as an edit of this server's settings.
            fn patch(&self) -> Result<ServerPatch, CliError> {
                Ok(ServerPatch {
                    host: self.host.clone(),
                    port: self.port,
                    transport: self.tls.map(Security::from),
                    protocol: self.protocol.map(|p| match p {
                        ProtocolFlag::Imap => Protocol::Imap,
                        ProtocolFlag::Pop3 => Protocol::Pop3,
                    }),
                    certificate: match (self.insecure, &self.ca_file) {
                        (true, _) => Some(CertificateCheck::Insecure),
                        (false, Some(p)) => Some(CertificateCheck::CaFile(p.clone())),
                        (false, None) => None,
                    },
                    timeout: self
                        .timeout
                        .as_deref()
                        .map(|t| duration_flag(concat!($p, "-timeout"), t))
                        .transpose()?,
                    auth: self.auth.map(|a| match a {
                        AuthFlag::Password => AuthPatch::Password { mechanism: None },
                        AuthFlag::Xoauth2 => AuthPatch::OAuth2 {
                            mechanism: Some(TokenMechanism::XOAuth2),
                        },
                        AuthFlag::Oauthbearer => AuthPatch::OAuth2 {
                            mechanism: Some(TokenMechanism::OAuthBearer),
                        },
                        AuthFlag::Admin => AuthPatch::Admin { user: None },
                        AuthFlag::Master => AuthPatch::MasterUser {
                            master: None,
                            separator: None,
                        },
                    }),
                    mechanism: self.mechanism.map(|m| match m {
                        MechanismFlag::Auto => PasswordMechanism::Auto,
                        MechanismFlag::Login => PasswordMechanism::Login,
                        MechanismFlag::Plain => PasswordMechanism::Plain,
                    }),
                    admin: self.admin.clone(),
                })
            }

            /// The admin's or master's password: from its file, or, when the login was just
            /// set to an admin or master one, from the environment.
            fn admin_secret(&self, asked: bool) -> Result<Option<Secret>, CliError> {
                match &self.admin_password_file {
                    Some(p) => Ok(Some(read_secret_file(p, "admin password")?)),
                    None if asked => Ok(std::env::var($env).ok().map(Secret::new)),
                    None => Ok(None),
                }
            }
        }
    };
}

server_patch!(SourceFlags, "src", "IMAPMIG_SRC_ADMIN_PASSWORD");
server_patch!(DestFlags, "dst", "IMAPMIG_DST_ADMIN_PASSWORD");

impl TaskFlags {
    /// The flags as an edit of a task's settings; only what was given changes.
    fn patch(&self) -> Result<SettingsPatch, CliError> {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let renames = self
            .renames
            .iter()
            .map(|r| {
                r.split_once('=')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| usage(format!("--map {r:?}: expected \"Old Name=New/Name\"")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let start_at = match self.start_at.as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("now") => Some(None),
            Some(v) => Some(Some(
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| usage(format!("--start-at {v:?}: expected \"now\" or an RFC 3339 time like 2030-01-31T22:00:00+01:00")))?,
            )),
        };
        let duration = |flag: &str, v: &Option<String>| {
            v.as_deref().map(|t| duration_flag(flag, t)).transpose()
        };
        Ok(SettingsPatch {
            source: self.src.patch()?,
            destination: self.dst.patch()?,
            folders: FoldersPatch {
                mode: self.mode.map(|m| match m {
                    ModeFlag::Mapping => FolderMode::Mapping,
                    ModeFlag::Unified => FolderMode::Unified {
                        root: self
                            .unified_root
                            .clone()
                            .unwrap_or_else(|| DEFAULT_UNIFIED_ROOT.into()),
                    },
                }),
                unified_root: self.unified_root.clone(),
                include: list(&self.include),
                exclude: list(&self.exclude),
                exclude_special: list(&self.exclude_special),
                renames: (!renames.is_empty()).then_some(renames),
            },
            messages: MessagesPatch {
                since: self
                    .since
                    .as_deref()
                    .map(|v| day_flag("since", v))
                    .transpose()?,
                before: self
                    .before
                    .as_deref()
                    .map(|v| day_flag("before", v))
                    .transpose()?,
                header_date: self.header_date,
                max_size: self.max_size.map(Some),
            },
            schedule: SchedulePatch {
                start_at,
                window: duration("window", &self.window)?,
                interval: duration("interval", &self.interval)?,
            },
            limits: LimitsPatch {
                accounts: self.max_accounts,
                per_source_host: self.per_source_host,
                per_destination_host: self.per_destination_host,
                connections_per_account: self.connections_per_account,
            },
            retry: RetryPatch {
                max_attempts: self.retries,
                base: duration("retry-base", &self.retry_base)?,
                max: duration("retry-max", &self.retry_max)?,
            },
        })
    }

    /// Applies the flags to `s` (for an edit, checked with what the task already has: a bad
    /// glob, rename or date range is refused now, naming its flag, rather than failing every
    /// account); returns the admin secrets given (source, destination).
    fn apply(&self, s: &mut TaskSettings) -> Result<(Option<Secret>, Option<Secret>), CliError> {
        let logins = self.patch()?.apply(s).map_err(|e| match e {
            TaskError::Setting { setting, why } => usage(format!("{}: {why}", flag_of(setting))),
            other => usage(other.to_string()),
        })?;
        Ok((
            self.src.admin_secret(logins.source)?,
            self.dst.admin_secret(logins.destination)?,
        ))
    }
}

/// The exit status for a batch error.
fn exit_code(e: &BatchError) -> u8 {
    match e.kind() {
        BatchErrorKind::Locked => 6,
        BatchErrorKind::Store | BatchErrorKind::Internal => 5,
        _ => 2,
    }
}

fn state_path(at: &TaskRef) -> Result<PathBuf, CliError> {
    let p = match &at.state {
        Some(p) => p.clone(),
        None => crate::default_state_path()?,
    };
    if let Some(dir) = p.parent() {
        if !dir.as_os_str().is_empty() {
            crate::create_private_dir(dir)?;
        }
    }
    Ok(p)
}

pub(crate) enum Failure {
    Cli(CliError),
    Batch(BatchError),
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Self {
        Failure::Cli(e)
    }
}

impl From<BatchError> for Failure {
    fn from(e: BatchError) -> Self {
        Failure::Batch(e)
    }
}

/// Runs a batch command; returns the exit status (errors are printed here).
pub async fn run(cmd: BatchCommand) -> Result<u8, CliError> {
    finish(dispatch(cmd).await)
}

/// A batch-store command's result as an exit status: a store failure is printed here and
/// exits with its own status (see the module documentation).
pub(crate) fn finish(result: Result<u8, Failure>) -> Result<u8, CliError> {
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Cli(e)) => Err(e),
        Err(Failure::Batch(e)) => {
            errln!("imapmig: {e}");
            Ok(exit_code(&e))
        }
    }
}

/// The key from --state-key-file or $IMAPMIG_STATE_KEY, if any. Its text is never printed.
fn state_key(at: &TaskRef) -> Result<Option<StateKey>, CliError> {
    let (text, from) = match &at.state_key_file {
        Some(p) => {
            let from = format!("--state-key-file {}", p.display());
            let text = std::fs::read_to_string(p)
                .map_err(|e| usage(format!("{from}: cannot read it: {e}")))?;
            (Secret::new(text), from)
        }
        None => match std::env::var("IMAPMIG_STATE_KEY") {
            Ok(v) => (Secret::new(v), "$IMAPMIG_STATE_KEY".to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(usage("$IMAPMIG_STATE_KEY is not UTF-8 text"))
            }
        },
    };
    StateKey::from_text(text.expose())
        .map(Some)
        .map_err(|e| usage(format!("{from}: {e}")))
}

/// Opens the state file as the batch commands do, for a command without a task (`serve`).
pub(crate) fn open_state(
    state: Option<PathBuf>,
    state_key_file: Option<&Path>,
) -> Result<BatchStore, Failure> {
    open(&TaskRef {
        state,
        task: String::new(),
        state_key_file: state_key_file.map(Path::to_path_buf),
    })
}

fn open(at: &TaskRef) -> Result<BatchStore, Failure> {
    let key = state_key(at)?;
    Ok(BatchStore::open_with_key(&state_path(at)?, key)?)
}

/// Says once, where passwords were just stored, that they are kept unencrypted.
fn warn_if_clear(store: &BatchStore) {
    if !store.seals_secrets() {
        errln!(
            "warning: passwords are kept unencrypted in {} (readable by its owner only); set \
             $IMAPMIG_STATE_KEY or give --state-key-file to encrypt them",
            store.path().display()
        );
    }
}

async fn dispatch(cmd: BatchCommand) -> Result<u8, Failure> {
    match cmd {
        BatchCommand::Task { action } => task(action),
        BatchCommand::Accounts {
            action:
                AccountsAction::Import {
                    at,
                    file,
                    skip_bad_rows,
                    update_existing,
                },
        } => {
            let store = open(&at)?;
            let r = store.import_csv(
                &at.task,
                &file,
                ImportOptions {
                    skip_bad_rows,
                    update_existing,
                },
            )?;
            for n in &r.notes {
                errln!("note: {n}");
            }
            if r.added + r.updated > r.waiting_for_credentials {
                warn_if_clear(&store);
            }
            for e in &r.skipped {
                errln!("skipped {}: {e}", file.display());
            }
            outln!(
                "imported {} account(s) ({} waiting for credentials), updated {}, skipped {} bad row(s)",
                r.added,
                r.waiting_for_credentials,
                r.updated,
                r.skipped.len()
            );
            Ok(if r.skipped.is_empty() { 0 } else { 1 })
        }
        BatchCommand::Run {
            at,
            until_idle,
            json,
        } => run_scheduler(at, until_idle, json).await,
        BatchCommand::Status {
            at,
            format,
            accounts,
        } => {
            let store = open(&at)?;
            let list = if accounts.is_empty() {
                store.accounts(&at.task)?
            } else {
                store.accounts_named(&at.task, &accounts)?
            };
            match format {
                Format::Csv => out!("{}", to_csv(&list)),
                Format::Json => outln!("{}", to_json(&list)),
                Format::Table => print_table(&list),
            }
            Ok(0)
        }
        BatchCommand::Pause(c) => control(c, "pause"),
        BatchCommand::Resume(c) => control(c, "resume"),
        BatchCommand::Stop(c) => control(c, "stop"),
        BatchCommand::Credentials {
            at,
            account,
            password_file,
        } => {
            let secret = match password_file {
                Some(p) => read_secret_file(&p, "password")?,
                None => match std::env::var("IMAPMIG_PASSWORD") {
                    Ok(v) => Secret::new(v),
                    Err(_) => {
                        if std::io::stdin().is_terminal() {
                            err!("password for {account}: ");
                            let _ = std::io::stderr().flush();
                        }
                        let mut line = String::new();
                        std::io::stdin()
                            .lock()
                            .read_line(&mut line)
                            .map_err(|e| usage(format!("cannot read the password: {e}")))?;
                        let secret = Secret::new(line.trim_end_matches(['\r', '\n']).to_string());
                        if secret.expose().is_empty() {
                            return Err(usage("no password given").into());
                        }
                        secret
                    }
                },
            };
            let store = open(&at)?;
            for (id, status) in store.supply_credentials(&at.task, &account, secret)? {
                outln!("#{id}: {status}");
            }
            warn_if_clear(&store);
            Ok(0)
        }
        BatchCommand::Audit { at, after, limit } => {
            let store = open(&at)?;
            let mut after = after;
            let mut left = limit;
            while left > 0 {
                let page = store.audit(&at.task, after, left.min(10_000))?;
                if page.is_empty() {
                    break;
                }
                for r in &page {
                    outln!("{}", r.to_json_line());
                }
                left -= page.len();
                after = page.last().map(|r| r.id);
            }
            Ok(0)
        }
    }
}

fn task(action: TaskAction) -> Result<u8, Failure> {
    match action {
        TaskAction::Create { at, flags } => {
            let host = |h: &Option<String>, flag: &str| {
                h.clone()
                    .ok_or_else(|| usage(format!("task create needs --{flag}")))
            };
            let mut settings = TaskSettings::new(
                ServerSettings::new(host(&flags.src.host, "src-host")?),
                ServerSettings::new(host(&flags.dst.host, "dst-host")?),
            );
            let (ss, ds) = flags.apply(&mut settings)?;
            let store = open(&at)?;
            let secrets = ss.is_some() || ds.is_some();
            store.create_task(&at.task, &settings, ss, ds)?;
            if secrets {
                warn_if_clear(&store);
            }
            outln!("task {:?} created in {}", at.task, store.path().display());
            Ok(0)
        }
        TaskAction::Edit {
            at,
            flags,
            apply_to,
        } => {
            let store = open(&at)?;
            let mut settings = store.task(&at.task)?.settings;
            let (ss, ds) = flags.apply(&mut settings)?;
            let scope = match apply_to {
                ApplyTo::NotStarted => EditScope::NotStarted,
                ApplyTo::All => EditScope::All,
            };
            let secrets = ss.is_some() || ds.is_some();
            let changed = store.edit_task(&at.task, &settings, ss, ds, scope)?;
            if secrets {
                warn_if_clear(&store);
            }
            if changed.is_empty() {
                outln!("nothing changed");
            } else {
                outln!("changed: {}", changed.join(", "));
            }
            Ok(0)
        }
        TaskAction::Show { at, json } => {
            let store = open(&at)?;
            let t = store.task(&at.task)?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&t.settings).unwrap_or_default()
                );
                return Ok(0);
            }
            let s = &t.settings;
            for (side, srv, secret) in [
                ("source", &s.source, t.source_secret.is_some()),
                (
                    "destination",
                    &s.destination,
                    t.destination_secret.is_some(),
                ),
            ] {
                outln!(
                    "{side}: {}:{} {:?} {:?}, auth {:?}{}, certificate {:?}, timeout {}",
                    srv.host,
                    srv.port,
                    srv.protocol,
                    srv.transport,
                    srv.auth,
                    if secret { " (password stored)" } else { "" },
                    srv.certificate,
                    format_duration(srv.timeout)
                );
            }
            outln!("folders: {:?}", s.folders);
            outln!("messages: {:?}", s.messages);
            outln!(
                "schedule: start {}, window {}, interval {}",
                s.schedule
                    .start_at
                    .and_then(|t| t
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok())
                    .unwrap_or_else(|| "now".into()),
                format_duration(s.schedule.window),
                format_duration(s.schedule.interval)
            );
            outln!(
                "limits: {} accounts, {} connections per source host, {} per destination host, {} per account",
                s.limits.accounts,
                s.limits.per_source_host,
                s.limits.per_destination_host,
                s.limits.connections_per_account
            );
            outln!(
                "retries: {} attempts, pauses from {} up to {}",
                s.retry.max_attempts,
                format_duration(s.retry.base),
                format_duration(s.retry.max)
            );
            print_summary(&store.summary(&at.task)?);
            Ok(0)
        }
    }
}

fn control(c: Control, what: &str) -> Result<u8, Failure> {
    let store = open(&c.at)?;
    let sel = if c.all {
        Selection::All
    } else {
        Selection::Names(&c.accounts)
    };
    let r = match what {
        "pause" => store.pause(&c.at.task, sel)?,
        "stop" => store.stop(&c.at.task, sel)?,
        _ => store.resume(&c.at.task, sel)?,
    };
    outln!(
        "{what}: {} account(s) changed, {} running ones asked to {what} at the next message boundary, {} unchanged",
        r.changed, r.requested, r.unchanged
    );
    Ok(0)
}

fn time_short(t: Option<time::OffsetDateTime>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "-".into())
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => format!("{b}"),
    }
}

fn print_table(list: &[AccountReport]) {
    outln!(
        "{:>5}  {:<32} {:<28} {:<32} {:>7} {:>8} {:>7} {:>4}  {:<19}  {:<19}  error",
        "id",
        "target",
        "source",
        "status",
        "folders",
        "messages",
        "bytes",
        "ref",
        "last pass",
        "next pass"
    );
    for a in list {
        let status = match (a.failure, &a.requested) {
            (Some(c), _) => format!("{} ({c})", a.status),
            (None, Some(r)) => format!("{} ({r} asked)", a.status),
            _ => a.status.to_string(),
        };
        let mut err = a.last_error.clone().unwrap_or_default();
        if err.chars().count() > 80 {
            err = err.chars().take(77).collect::<String>() + "...";
        }
        outln!(
            "{:>5}  {:<32} {:<28} {:<32} {:>7} {:>8} {:>7} {:>4}  {:<19}  {:<19}  {}",
            a.id,
            a.target,
            a.source,
            status,
            format!("{}/{}", a.folders_done, a.folders_total),
            a.messages,
            human_bytes(a.bytes),
            a.refused,
            time_short(a.last_pass_at),
            time_short(a.next_pass_at),
            err
        );
    }
    print_summary(&TaskSummary::of(list));
}

fn print_summary(s: &TaskSummary) {
    let parts: Vec<String> = Status::ALL
        .iter()
        .filter(|st| s.count(**st) > 0)
        .map(|st| format!("{} {st}", s.count(*st)))
        .collect();
    outln!(
        "{} account(s): {}; {} message(s), {} on the destination, {} refused",
        s.accounts,
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        },
        s.messages,
        human_bytes(s.bytes),
        s.refused
    );
}

fn live_line(s: &LiveSnapshot) -> String {
    let statuses: Vec<String> = s
        .statuses
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(st, n)| format!("{n} {st}"))
        .collect();
    let hosts: Vec<String> = s
        .hosts
        .iter()
        .filter(|h| h.passes > 0)
        .map(|h| format!("{} {} {}/{}", h.side, h.host, h.in_use, h.limit))
        .collect();
    format!(
        "{} | {} msgs {} ({:.1} msg/s) | connections: {}",
        statuses.join(", "),
        s.copied,
        human_bytes(s.bytes),
        s.copied as f64 / s.seconds.max(1e-3),
        hosts.join(", ")
    )
}

async fn run_scheduler(at: TaskRef, until_idle: bool, json: bool) -> Result<u8, Failure> {
    let store = Arc::new(open(&at)?);
    let cancel = CancellationToken::new();
    let interrupted = crate::signals::cancel_on_stop(
        &cancel,
        "imapmig: stopping: passes end at the next message boundary...",
    );
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let b = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            b.set_style(style);
        }
        b
    });
    let observer: imapmig_core::batch::SchedulerObserver = {
        let bar = bar.clone();
        let last = std::sync::Mutex::new(std::time::Instant::now());
        Arc::new(move |s: &LiveSnapshot| match &bar {
            Some(b) => {
                b.set_message(live_line(s));
                b.tick();
            }
            None => {
                // Not a terminal (a log file): one line every 30 seconds.
                if let Ok(mut l) = last.lock() {
                    if l.elapsed() >= Duration::from_secs(30) {
                        *l = std::time::Instant::now();
                        errln!("{}", live_line(s));
                    }
                }
            }
        })
    };
    let options = SchedulerOptions {
        until_idle,
        ..SchedulerOptions::default()
    };
    let result = Scheduler::new(store.clone(), at.task.clone())
        .with_options(options)
        .run(cancel, Some(observer))
        .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let summary = result?;
    print_run_summary(&summary);
    if json {
        outln!("{}", serde_json::to_string(&summary).unwrap_or_default());
    }
    if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(130);
    }
    let counts = store.summary(&at.task)?;
    let incomplete = counts.count(Status::Failed) + counts.count(Status::WaitingForCredentials);
    Ok(if until_idle && incomplete > 0 { 1 } else { 0 })
}

fn print_run_summary(s: &RunSummary) {
    errln!(
        "{} pass(es): {} synced, {} retried, {} failed, {} interrupted; {} put back after a crash",
        s.passes,
        s.passes_synced,
        s.passes_retried,
        s.passes_failed,
        s.passes_cancelled,
        s.recovered
    );
    errln!(
        "copied {} message(s), {} in {:.1} s ({:.1} msg/s, {:.2} MB/s); at most {} accounts at once",
        s.copied,
        human_bytes(s.bytes),
        s.seconds,
        s.copied as f64 / s.seconds.max(1e-3),
        s.bytes as f64 / 1e6 / s.seconds.max(1e-3),
        s.peak_accounts
    );
    for h in &s.hosts {
        errln!(
            "  {} {}: peak {} of {} connection(s) (now {}), {} pass(es), throttled {} time(s)",
            h.side,
            h.host,
            h.peak,
            h.configured,
            h.limit,
            h.passes,
            h.throttle_events
        );
    }
    let statuses: Vec<String> = s
        .statuses
        .iter()
        .map(|(st, n)| format!("{n} {st}"))
        .collect();
    errln!("accounts: {}", statuses.join(", "));
}
