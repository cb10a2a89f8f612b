//! `imapmig`: move a mailbox from one IMAP server to another, exactly once.
//!
//! A thin face over imapmig-core: flags in, library calls, progress and a report out.
//!
//! Exit status: 0 done (every selected message is on the destination; for `verify`, no
//! difference); 1 finished but incomplete (messages refused or skipped, or differences found);
//! 2 bad usage or configuration; 3 authentication refused; 4 connection or TLS failure;
//! 5 any other failure (state store, protocol); 130 interrupted (a re-run resumes); 141 standard
//! output or error closed by its reader (`| head`): the command ends quietly (see `output`).
#![forbid(unsafe_code)]
// Printing goes through `output` (a closed pipe ends the command quietly, never in a panic).
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod output;
mod args;
mod batch;
mod serve;
mod signals;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use imapmig_core::config::{MigrationConfig, Resolved, SourceConfig};
use imapmig_core::engine::{
    self, EngineError, ErrorKind, MigrationReport, ProgressEvent, Side, Verification,
};
use imapmig_core::net::Protocol;
use imapmig_core::state::SqliteStore;
use imapmig_core::trace::ProtocolTrace;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use args::{DestArgs, DestWhere, PlanArgs, ProtocolFlag, SourceArgs, SourceWhere};

#[derive(Parser)]
#[command(
    name = "imapmig",
    version,
    about = "Move whole mailboxes between IMAP servers, exactly once."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write the protocol conversation with the servers (both sides, every connection) to
    /// FILE, appending; created readable by its owner only. Passwords, tokens and SASL
    /// responses are replaced by <redacted>, message bodies by their size. For check,
    /// analyze, migrate and verify.
    #[arg(long, global = true, env = "IMAPMIG_TRACE", value_name = "FILE")]
    trace: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Test the connection, TLS and login of the source and/or the destination.
    Check {
        #[command(flatten)]
        src: Option<SourceArgs>,
        /// The source server's protocol [default: imap].
        #[arg(long = "src-protocol", value_enum)]
        src_protocol: Option<ProtocolFlag>,
        #[command(flatten)]
        dst: Option<DestArgs>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Look at a source before migrating: folders, counts, sizes, the folder plan, an estimate.
    Analyze {
        #[command(flatten)]
        src: Option<SourceArgs>,
        #[command(flatten)]
        src_where: SourceWhere,
        #[command(flatten)]
        dst: Option<DestArgs>,
        #[command(flatten)]
        dst_where: DestWhere,
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Copy one account's mail from the source to the destination (again: only what is new).
    Migrate {
        #[command(flatten)]
        src: Option<SourceArgs>,
        #[command(flatten)]
        src_where: SourceWhere,
        #[command(flatten)]
        dst: Option<DestArgs>,
        #[command(flatten)]
        dst_where: DestWhere,
        #[command(flatten)]
        plan: PlanArgs,
        /// The sync-state file (SQLite). Default: $XDG_STATE_HOME/imapmig/state.sqlite.
        #[arg(long)]
        state: Option<PathBuf>,
        /// The key of this account pair in the state file (default: derived from both logins).
        #[arg(long)]
        account_key: Option<String>,
        /// Folders copied in parallel (each over one connection per side) [default: 2].
        #[arg(long)]
        connections: Option<usize>,
        /// Messages per pipelined batch [default: 64].
        #[arg(long)]
        batch: Option<usize>,
        /// Print the folder plan and counts; copy nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move folders that earlier runs copied elsewhere than the options now say: copy
        /// each afresh into its new place (messages already there are matched by content),
        /// leaving the old copies where they are. Without it a copied folder stays put.
        #[arg(long)]
        remap_folders: bool,
        /// Keep a destination's refusal of a message with bare newlines (LF without CR).
        /// Without it such a message is sent again with CRLF line endings and reported as
        /// "line endings normalised".
        #[arg(long)]
        strict_line_endings: bool,
        /// Print the final report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Compare source and destination message by message: content, flags, INTERNALDATE.
    Verify {
        #[command(flatten)]
        src: Option<SourceArgs>,
        #[command(flatten)]
        src_where: SourceWhere,
        #[command(flatten)]
        dst: Option<DestArgs>,
        #[command(flatten)]
        dst_where: DestWhere,
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Batch(batch::BatchCommand),
    /// The web console: admin pages (statuses, accounts, import, settings, exports, audit
    /// log), the employees' self-service page and a JSON API under /api/. Runs the tasks'
    /// schedulers too, unless --no-run. Prints the admin token on the first start.
    ///
    /// Exit status: 0 stopped by SIGINT or SIGTERM; 2 bad usage (cannot listen, unusable TLS
    /// files); 5 state file failure.
    Serve(serve::ServeArgs),
}

/// Why the command failed, with the exit status it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or configuration (exit 2).
    Usage(String),
    /// A library failure.
    Engine(EngineError),
    /// Interrupted (exit 130).
    Interrupted,
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Cancelled => CliError::Interrupted,
            e => CliError::Engine(e),
        }
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Interrupted => 130,
            CliError::Engine(e) => match e.kind() {
                ErrorKind::Authentication => 3,
                ErrorKind::Connection | ErrorKind::Tls => 4,
                _ => 5,
            },
        }
    }

    fn message(&self) -> String {
        match self {
            CliError::Usage(m) => m.clone(),
            CliError::Interrupted => {
                "interrupted; everything copied so far is recorded, run the same command again to resume".into()
            }
            CliError::Engine(e) => e.to_string(),
        }
    }
}

/// Sends the library's `tracing` events to stderr when `IMAPMIG_LOG` or `RUST_LOG` asks for
/// them (`debug`, `imapmig_core=trace`, ...). Without either, nothing is logged and the output
/// is what it always was.
fn init_logging() {
    let spec = ["IMAPMIG_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
    let Some(spec) = spec else {
        return;
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&spec) {
        Ok(f) => f,
        Err(e) => {
            errln!(
                "imapmig: the log filter {spec:?} is not understood ({e}); logging warnings only"
            );
            tracing_subscriber::EnvFilter::new("warn")
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Opens the `--trace` file, when one is asked for.
fn open_trace(path: Option<&std::path::Path>) -> Result<Option<ProtocolTrace>, CliError> {
    path.map(|p| {
        ProtocolTrace::create(p).map_err(|e| {
            CliError::Usage(format!("cannot open the trace file {}: {e}", p.display()))
        })
    })
    .transpose()
}

/// `account`, its connections traced as `side` when a trace is on.
fn traced(
    mut account: engine::Account,
    trace: Option<&ProtocolTrace>,
    side: &str,
) -> engine::Account {
    if let Some(t) = trace {
        account.endpoint.trace = Some(t.for_side(side));
    }
    account
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("imapmig: cannot start: {e}");
            return ExitCode::from(5);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("imapmig: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}

fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            errln!("imapmig: stopping at the next message boundary...");
            t.cancel();
        }
    });
    token
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    // The batch commands do not write a protocol trace (yet); the others open it first, so a
    // path that cannot be written is a usage error before any server is contacted.
    let trace = match &cli.command {
        Command::Batch(cmd) => {
            // Said where servers are reached, so that a trace asked for is not silently
            // missing; the other batch commands stay quiet.
            if let (batch::BatchCommand::Run { .. }, Some(path)) = (cmd, &cli.trace) {
                errln!(
                    "imapmig: the batch commands write no protocol trace; {} is left alone",
                    path.display()
                );
            }
            None
        }
        _ => open_trace(cli.trace.as_deref())?,
    };
    let trace = trace.as_ref();
    match cli.command {
        Command::Batch(cmd) => batch::run(cmd).await,
        Command::Serve(args) => batch::finish(serve::run(args).await),
        Command::Check {
            src,
            src_protocol,
            dst,
            json,
        } => check(src, src_protocol, dst, json, trace).await,
        Command::Analyze {
            src,
            src_where,
            dst,
            dst_where,
            plan,
            json,
        } => analyze(src, src_where, dst, dst_where, plan, json, trace).await,
        Command::Migrate {
            src,
            src_where,
            dst,
            dst_where,
            plan,
            state,
            account_key,
            connections,
            batch,
            dry_run,
            remap_folders,
            strict_line_endings,
            json,
        } => {
            let state_path = match state {
                Some(p) => p,
                None => default_state_path()?,
            };
            let mut config = MigrationConfig {
                source: Some(args::source_config(src.as_ref(), &src_where)?),
                destination: Some(args::destination_config(dst.as_ref(), &dst_where)?),
                state: Some(state_path.clone()),
                account_key,
                dry_run,
                remap_folders,
                strict_line_endings,
                ..MigrationConfig::default()
            };
            if let Some(n) = connections {
                config.connections = n;
            }
            if let Some(n) = batch {
                config.batch = n;
            }
            plan.fill(&mut config)?;
            let mut resolved = config.resolve().map_err(args::usage)?;
            resolved.options.trace = trace.cloned();
            if let Some(dir) = state_path.parent() {
                if !dir.as_os_str().is_empty() {
                    create_private_dir(dir)?;
                }
            }
            // A dry run records nothing, yet the CLI has always opened (and created) its file.
            let store = SqliteStore::open(&state_path)
                .map_err(|e| CliError::Engine(EngineError::State(e)))?;
            let state: Arc<dyn imapmig_core::state::StateStore> = Arc::new(store);
            let destination = resolved.destination().map_err(args::usage)?.clone();
            if resolved.options.account_key.is_empty() {
                resolved.options.account_key =
                    engine::account_key_in(state.as_ref(), &resolved.source, &destination)
                        .map_err(|e| CliError::Engine(EngineError::State(e)))?;
            }
            let progress = Progress::new(!json);
            let sink = progress.sink();
            let report = engine::migrate_between(
                &resolved.source,
                &destination,
                &resolved.options,
                state,
                Some(sink),
                interrupt_token(),
            )
            .await;
            progress.finish();
            let report = report?;
            if json {
                print_json(&report);
            } else {
                print_report(&report);
            }
            Ok(report.exit_status())
        }
        Command::Verify {
            src,
            src_where,
            dst,
            dst_where,
            plan,
            json,
        } => {
            let mut config = MigrationConfig {
                source: Some(args::source_config(src.as_ref(), &src_where)?),
                destination: Some(args::destination_config(dst.as_ref(), &dst_where)?),
                ..MigrationConfig::default()
            };
            plan.fill(&mut config)?;
            let mut r = resolve_for_inspection(config)?;
            let mut destination = r.destination().map_err(args::usage)?.clone();
            if let Some(t) = trace {
                r.source.trace_to(&t.for_side("source"));
                destination.trace_to(&t.for_side("destination"));
            }
            let v =
                engine::verify_between(&r.source, &destination, &r.options.plan, &r.options.filter)
                    .await?;
            if json {
                print_json(&v);
            } else {
                print_verification(&v);
            }
            Ok(if v.is_identical() { 0 } else { 1 })
        }
    }
}

/// Resolves a configuration for a command that keeps no state (analyze, verify): a POP3
/// source without `--src-uid-map` still keeps its UIDL table beside the default state file.
fn resolve_for_inspection(mut config: MigrationConfig) -> Result<Resolved, CliError> {
    if matches!(
        config.source,
        Some(SourceConfig::Pop3 { uid_map: None, .. })
    ) {
        config.state = Some(default_state_path()?);
    }
    config.resolve().map_err(args::usage)
}

/// Creates `dir` and the parents it lacks, readable by their owner only (0700): the state
/// files in them say whose mail went where. Directories that exist are left as they are.
fn create_private_dir(dir: &std::path::Path) -> Result<(), CliError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))
}

fn default_state_path() -> Result<PathBuf, CliError> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Ok(PathBuf::from(d).join("imapmig/state.sqlite"));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".local/state/imapmig/state.sqlite")),
        None => Err(CliError::Usage(
            "no --state given and neither $XDG_STATE_HOME nor $HOME is set".into(),
        )),
    }
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("imapmig: cannot write JSON: {e}"),
    }
}

async fn check(
    src: Option<SourceArgs>,
    src_protocol: Option<ProtocolFlag>,
    dst: Option<DestArgs>,
    json: bool,
    trace: Option<&ProtocolTrace>,
) -> Result<u8, CliError> {
    if src.is_none() && dst.is_none() {
        return Err(CliError::Usage(
            "check needs --src-host/--src-user and/or --dst-host/--dst-user".into(),
        ));
    }
    let mut results = Vec::new();
    if let Some(s) = src {
        let server = s.server()?;
        results.push(match src_protocol.unwrap_or_default() {
            ProtocolFlag::Imap => {
                let account = server.account(Protocol::Imap);
                engine::check(Side::Source, &traced(account, trace, "source")).await?
            }
            ProtocolFlag::Pop3 => {
                let account = server.account(Protocol::Pop3);
                engine::check_pop3(&traced(account, trace, "source")).await?
            }
        });
    }
    if let Some(d) = dst {
        let account = traced(d.server()?.account(Protocol::Imap), trace, "destination");
        results.push(engine::check(Side::Destination, &account).await?);
    }
    if json {
        print_json(&results);
    } else {
        for r in &results {
            outln!(
                "{}: {}:{} {}, logged in as {}, {} folders (separator {}, prefix {:?}), {:.2} s",
                r.side,
                r.host,
                r.port,
                if r.tls { "TLS" } else { "cleartext" },
                r.logged_in_as,
                r.folders,
                r.separator.as_deref().unwrap_or("none"),
                r.namespace_prefix,
                r.seconds
            );
            outln!("  greeting: {}", r.greeting);
            outln!("  capabilities: {}", r.capabilities.join(" "));
        }
    }
    Ok(0)
}

async fn analyze(
    src: Option<SourceArgs>,
    src_where: SourceWhere,
    dst: Option<DestArgs>,
    dst_where: DestWhere,
    plan: PlanArgs,
    json: bool,
    trace: Option<&ProtocolTrace>,
) -> Result<u8, CliError> {
    let mut config = MigrationConfig {
        source: Some(args::source_config(src.as_ref(), &src_where)?),
        destination: if dst.is_some() || dst_where.store.is_some() {
            Some(args::destination_config(dst.as_ref(), &dst_where)?)
        } else {
            None
        },
        ..MigrationConfig::default()
    };
    plan.fill(&mut config)?;
    let mut r = resolve_for_inspection(config)?;
    if let Some(t) = trace {
        r.source.trace_to(&t.for_side("source"));
        if let Some(d) = &mut r.destination {
            d.trace_to(&t.for_side("destination"));
        }
    }
    let out = engine::analyze(
        &r.source,
        r.destination.as_ref(),
        &r.options.plan,
        &r.options.filter,
    )
    .await?;
    print_analysis(&out, &r.options.filter, json);
    Ok(0)
}

fn print_analysis(out: &engine::Analysis, filter: &engine::MessageFilter, json: bool) {
    if json {
        print_json(out);
    } else {
        outln!(
            "{:<40} {:>10} {:>12} {:>10}  special use",
            "folder",
            "messages",
            "bytes",
            "largest"
        );
        for f in &out.folders {
            outln!(
                "{:<40} {:>10} {:>12} {:>10}  {}",
                f.name,
                f.messages,
                f.bytes,
                f.largest,
                f.special_use.as_deref().unwrap_or("")
            );
        }
        outln!("total: {} messages, {} bytes", out.messages, out.bytes);
        if let (Some(n), Some(b)) = (out.in_date_range, out.in_date_range_bytes) {
            outln!("in the date range: {n} messages, {b} bytes");
        }
        if filter.max_size.is_some() {
            outln!("over the size limit: {}", out.over_size_limit);
        }
        if let (Some(r), Some(t)) = (out.sample_read_mb_per_s, out.estimated_seconds) {
            outln!("source reads at about {r:.1} MB/s on a sample: estimated {t:.0} s to copy");
        }
        if let Some(p) = &out.plan {
            outln!("\n{p}");
        }
    }
}

/// Progress on a terminal (a bar) or as plain lines on stderr.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} messages {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        Progress {
            bar,
            plain: enabled && !tty,
        }
    }

    fn sink(&self) -> engine::ProgressSink {
        let bar = self.bar.clone();
        let plain = self.plain;
        Arc::new(move |ev: &ProgressEvent| match ev {
            ProgressEvent::FolderStarted {
                folder, to_copy, ..
            } => {
                if let Some(b) = &bar {
                    b.inc_length(*to_copy);
                    b.set_message(folder.clone());
                } else if plain && *to_copy > 0 {
                    errln!("{folder}: copying {to_copy} message(s)");
                }
            }
            ProgressEvent::MessageCopied { .. } => {
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            ProgressEvent::MessageSkipped {
                folder,
                uid,
                reason,
            } => {
                let line = format!("{folder}: UID {uid} not copied: {reason}");
                match &bar {
                    Some(b) => b.println(line),
                    None if plain => errln!("{line}"),
                    None => {}
                }
            }
            ProgressEvent::Retrying {
                folder,
                attempt,
                after_ms,
                error,
                ..
            } => {
                let line = format!("{folder}: retry {attempt} in {after_ms} ms after: {error}");
                match &bar {
                    Some(b) => b.println(line),
                    None if plain => errln!("{line}"),
                    None => {}
                }
            }
            ProgressEvent::FolderDone(r) if plain && !r.unchanged => {
                errln!(
                    "{} -> {}: {} copied, {} already there, {} refused",
                    r.source,
                    r.target,
                    r.copied,
                    r.already_there,
                    r.refused.len()
                );
            }
            _ => {}
        })
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn print_report(r: &MigrationReport) {
    if r.dry_run {
        outln!("{}", r.plan);
        for n in &r.plan_notes {
            outln!("note: {n}");
        }
        for f in &r.folders {
            outln!("{:<40} {:>8} message(s)", f.source, f.found);
        }
        let entries = r
            .not_imported
            .iter()
            .chain(r.folders.iter().flat_map(|f| &f.not_imported));
        for e in entries {
            outln!("not imported: {}: {}", e.path, e.reason);
        }
        return;
    }
    for f in &r.folders {
        outln!(
            "{} -> {}: {} found, {} copied, {} already there, {} outside the dates, {} too large, {} refused{}",
            f.source,
            f.target,
            f.found,
            f.copied,
            f.already_there,
            f.skipped_by_filter,
            f.too_large.len(),
            f.refused.len(),
            if f.unchanged { " (unchanged)" } else { "" }
        );
        for m in f.refused.iter().chain(&f.too_large) {
            outln!("  UID {} ({} bytes): {}", m.uid, m.size, m.reason);
        }
        for n in &f.notes {
            outln!("  note: {n}");
        }
        for a in &f.anomalies {
            match a.uid {
                Some(uid) => outln!("  anomaly, UID {uid}: {}", a.detail),
                None => outln!("  anomaly: {}", a.detail),
            }
        }
        for e in &f.not_imported {
            outln!("  not imported: {}: {}", e.path, e.reason);
        }
    }
    for f in &r.anomalies {
        outln!("anomaly: {}", f.detail);
    }
    if let Some(dst) = &r.altering_destination {
        let a = &r.altered;
        outln!(
            "the destination {dst} changed messages it was given: {} line endings normalised, {} flags repaired, {} flags lost, {} dates not kept, {} headers altered, {} contents altered",
            a.line_endings_normalised,
            a.flags_repaired,
            a.flags_lost,
            a.dates_not_kept,
            a.headers_altered,
            a.content_altered
        );
    }
    for e in &r.not_imported {
        outln!("not imported: {}: {}", e.path, e.reason);
    }
    for f in &r.failed_folders {
        outln!("FAILED {}: {}", f.folder, f.message);
    }
    let mb = r.bytes as f64 / 1e6;
    outln!(
        "copied {} message(s), {:.1} MB in {:.1} s ({:.1} msg/s, {:.2} MB/s)",
        r.copied,
        mb,
        r.seconds,
        r.copied as f64 / r.seconds.max(1e-3),
        mb / r.seconds.max(1e-3)
    );
}

fn print_verification(v: &Verification) {
    for f in &v.folders {
        outln!(
            "{} -> {}: {} on source, {} on destination, {} identical, {} extra on destination, {} difference(s)",
            f.source,
            f.target,
            f.source_messages,
            f.destination_messages,
            f.matched,
            f.extra_on_destination,
            f.differences.len()
        );
        for d in &f.differences {
            outln!("  {d:?}");
        }
    }
    if v.is_identical() {
        outln!("verified: every source message is on the destination, byte for byte, with its flags and date");
    } else {
        outln!("{} difference(s) found", v.difference_count());
    }
}
