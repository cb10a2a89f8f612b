//! The one-shot operations: check, analyze, verify. JSON configuration in, JSON result out.
//!
//! `check` and `analyze` exist today only in the CLI (imapmig-cli/src/main.rs); until they
//! move into imapmig-core they are repeated here step for step, calling the same core pieces
//! and producing the same JSON as `imapmig check --json` and `imapmig analyze --json`.

use std::ffi::c_char;
use std::time::Instant;

use imapmig_core::engine::{self, Account, EngineError, Side};
use imapmig_core::imap::{ImapError, Session};
use imapmig_core::model::Uid;
use imapmig_core::sink::{MigrationSink, SinkSpec};
use imapmig_core::source::{MigrationSource, SourceSpec};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::error::{c_string, guard, imapmig_error, out_arg, str_arg};
use crate::runtime::block_on;
use crate::status::{imapmig_status, Failure};

fn server_error(side: Side) -> impl Fn(ImapError) -> Failure {
    move |source| {
        EngineError::Server {
            side,
            source: source.into(),
        }
        .into()
    }
}

/// What `check` found out about one server.
#[derive(Serialize)]
pub struct CheckResult {
    side: &'static str,
    host: String,
    port: u16,
    tls: bool,
    greeting: String,
    logged_in_as: String,
    capabilities: Vec<String>,
    folders: usize,
    namespace_prefix: String,
    separator: Option<String>,
    seconds: f64,
}

async fn check_one(side: Side, account: &Account) -> Result<CheckResult, Failure> {
    let started = Instant::now();
    let e = server_error(side);
    let mut s = Session::connect(&account.endpoint).await.map_err(&e)?;
    let greeting = s.greeting().to_string();
    s.login(&account.credentials).await.map_err(&e)?;
    let folders = s.list().await.map_err(&e)?;
    let ns = s.namespace().await.map_err(&e)?;
    let r = CheckResult {
        side: match side {
            Side::Source => "source",
            Side::Destination => "destination",
        },
        host: account.endpoint.host.clone(),
        port: account.endpoint.port,
        tls: s.is_tls(),
        greeting,
        logged_in_as: account.credentials.mailbox_user().to_string(),
        capabilities: s.capabilities().list(),
        folders: folders.len(),
        namespace_prefix: ns.prefix,
        separator: ns
            .delimiter
            .or_else(|| folders.iter().find_map(|f| f.delimiter))
            .map(String::from),
        seconds: started.elapsed().as_secs_f64(),
    };
    s.logout().await;
    Ok(r)
}

/// Connects to and logs in to the source and/or destination; a list of results.
pub fn check(config: &Config) -> Result<Value, Failure> {
    let (src, dst) = (config.source_opt(), config.destination_opt());
    if src.is_none() && dst.is_none() {
        return Err(Failure::config(
            "configuration: check needs \"source\" and/or \"destination\"",
        ));
    }
    block_on(async {
        let mut out = Vec::new();
        if let Some(a) = &src {
            out.push(check_one(Side::Source, a).await?);
        }
        if let Some(a) = &dst {
            out.push(check_one(Side::Destination, a).await?);
        }
        Ok(serde_json::to_value(out).unwrap_or_default())
    })?
}

#[derive(Serialize, Default)]
struct Analysis {
    folders: Vec<FolderAnalysis>,
    messages: u64,
    bytes: u64,
    over_size_limit: u64,
    plan: Option<String>,
    plan_notes: Vec<String>,
    sample_read_mb_per_s: Option<f64>,
    estimated_seconds: Option<f64>,
}

#[derive(Serialize)]
struct FolderAnalysis {
    name: String,
    special_use: Option<String>,
    messages: u64,
    bytes: u64,
    largest: u64,
}

/// Folders, counts and sizes of the source, the folder plan when a destination is given, and
/// an estimate of the copy time from reading a sample.
pub fn analyze(config: &Config) -> Result<Value, Failure> {
    let source = config.source()?;
    let filter = config.filter()?;
    let destination = config.destination_opt();
    let plan_options = config.plan_options(source.credentials.mailbox_user())?;
    block_on(async move {
        let e = server_error(Side::Source);
        let mut out = Analysis::default();
        if let Some(destination) = destination {
            let (p, s, d) = engine::plan(
                &SourceSpec::Imap(source.clone()),
                &SinkSpec::Imap(destination),
                &plan_options,
            )
            .await?;
            out.plan = Some(p.render());
            out.plan_notes = p.notes.clone();
            s.close().await;
            d.close().await;
        }
        let mut s = source.open().await.map_err(&e)?;
        let folders = s.list().await.map_err(&e)?;
        let mut sample: Option<(String, Vec<Uid>)> = None;
        for f in folders.iter().filter(|f| f.selectable()) {
            s.examine(&f.raw).await.map_err(&e)?;
            let metas = s.fetch_meta("1:*", None).await.map_err(&e)?;
            let bytes: u64 = metas.iter().map(|m| m.size).sum();
            if let Some(limit) = filter.max_size {
                out.over_size_limit += metas.iter().filter(|m| m.size > limit).count() as u64;
            }
            if sample
                .as_ref()
                .is_none_or(|(_, u)| u.len() < metas.len().min(50))
            {
                sample = Some((
                    f.raw.clone(),
                    metas.iter().rev().take(50).map(|m| m.uid).collect(),
                ));
            }
            out.messages += metas.len() as u64;
            out.bytes += bytes;
            out.folders.push(FolderAnalysis {
                name: f.name.clone(),
                special_use: f.special_use.map(|u| u.name().to_string()),
                messages: metas.len() as u64,
                bytes,
                largest: metas.iter().map(|m| m.size).max().unwrap_or(0),
            });
        }
        if let Some((raw, uids)) = sample.filter(|(_, u)| !u.is_empty()) {
            s.examine(&raw).await.map_err(&e)?;
            let t = Instant::now();
            let bodies = s.fetch_bodies_collected(&uids).await.map_err(&e)?;
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            let bytes: usize = bodies.iter().map(|(_, b)| b.len()).sum();
            let rate = bytes as f64 / secs;
            if rate > 0.0 {
                out.sample_read_mb_per_s = Some(rate / 1e6);
                out.estimated_seconds = Some(out.bytes as f64 / rate);
            }
        }
        s.logout().await;
        Ok(serde_json::to_value(out).unwrap_or_default())
    })?
}

/// Compares source and destination message by message. The result is the library's
/// verification with `"identical"` added.
pub fn verify(config: &Config) -> Result<Value, Failure> {
    let source = config.source()?;
    let destination = config.destination()?;
    let plan_options = config.plan_options(source.credentials.mailbox_user())?;
    let filter = config.filter()?;
    let v = block_on(engine::verify(
        &source,
        &destination,
        &plan_options,
        &filter,
    ))??;
    let mut json = serde_json::to_value(&v).unwrap_or_default();
    if let Value::Object(m) = &mut json {
        m.insert("identical".into(), v.is_identical().into());
    }
    Ok(json)
}

/// The shape every one-shot entry point shares.
///
/// # Safety
/// As for the entry points: `json_config` NULL or a NUL-terminated string, `out_json` and
/// `err` NULL or writable.
unsafe fn one_shot(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
    op: fn(&Config) -> Result<Value, Failure>,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        guard(err, || {
            out_arg(out_json, "out_json")?;
            let config = Config::parse(str_arg(json_config, "json_config")?)?;
            let result = op(&config)?;
            out_json.write(c_string(result.to_string()));
            Ok(imapmig_status::Ok)
        })
    }
}

/// Connects to the `"source"` and/or `"destination"` of the configuration, logs in and lists
/// folders. On success `*out_json` is a JSON array with one object per server:
/// `{"side","host","port","tls","greeting","logged_in_as","capabilities":[...],"folders",
/// "namespace_prefix","separator","seconds"}`. Blocks (each wait bounded by `timeout_secs`).
///
/// # Safety
/// `json_config`: NUL-terminated UTF-8. `out_json`: writable; free the result with
/// `imapmig_string_free`. `err`: NULL or writable; free the error with `imapmig_error_free`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_check(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, check) }
}

/// Looks at the `"source"` before a migration: `*out_json` is
/// `{"folders":[{"name","special_use","messages","bytes","largest"}],"messages","bytes",
/// "over_size_limit","plan","plan_notes":[...],"sample_read_mb_per_s","estimated_seconds"}`
/// (`plan` is the rendered folder plan when a `"destination"` is given, else null). Uses the
/// folder and message options. Blocks.
///
/// # Safety
/// As for `imapmig_check`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_analyze(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, analyze) }
}

/// Compares `"source"` and `"destination"` message by message (content, flags,
/// INTERNALDATE), reading both afresh. `*out_json` is
/// `{"identical":bool,"folders":[{"source","target","source_messages","destination_messages",
/// "matched","extra_on_destination","differences":[...]}]}`. Uses the folder and message
/// options. Blocks.
///
/// # Safety
/// As for `imapmig_check`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_verify(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, verify) }
}
