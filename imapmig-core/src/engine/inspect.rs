//! The checks before a migration: [`check`] a server (connect, TLS, log in, list) and
//! [`analyze`] a source (folders, counts, sizes, the folder plan, an estimate of the copy
//! time). The CLI, the Python module and the C library all call these, so that their answers
//! are the same fields computed the same way.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use crate::imap::{ImapError, Session};
use crate::mapping::PlanOptions;
use crate::model::{Folder, MessageMeta, Uid};
use crate::sink::{MigrationSink, SinkSpec};
use crate::source::{date_keys, MigrationSource, Pop3Source, Pop3Spec, SourceSpec};

use super::{Account, EngineError, MessageFilter, Side};

/// What [`check`] found out about one server.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// `"source"` or `"destination"`.
    pub side: &'static str,
    /// The host dialled.
    pub host: String,
    /// The port dialled.
    pub port: u16,
    /// Whether the connection was protected by TLS (implicit or STARTTLS).
    pub tls: bool,
    /// The server's greeting text.
    pub greeting: String,
    /// The mailbox logged in to (the user acted for, with an admin login).
    pub logged_in_as: String,
    /// The capabilities after login (POP3: CAPA's lines).
    pub capabilities: Vec<String>,
    /// Folders listed (POP3: 1, the inbox).
    pub folders: usize,
    /// The personal namespace prefix (`INBOX.` on some servers), or empty.
    pub namespace_prefix: String,
    /// The hierarchy separator, when there is one.
    pub separator: Option<String>,
    /// How long the whole check took.
    pub seconds: f64,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Destination => "destination",
    }
}

fn server_error(side: Side) -> impl Fn(ImapError) -> EngineError {
    move |e| EngineError::Server {
        side,
        source: e.into(),
    }
}

/// Connects to an IMAP server (TLS as the endpoint says), logs in, lists the folders and
/// reads the namespace; logs out. Any failure is the typed error of the step that failed.
pub async fn check(side: Side, account: &Account) -> Result<CheckResult, EngineError> {
    let started = Instant::now();
    let e = server_error(side);
    let mut s = Session::connect(&account.endpoint).await.map_err(&e)?;
    let greeting = s.greeting().to_string();
    s.login(&account.credentials).await.map_err(&e)?;
    let folders = s.list().await.map_err(&e)?;
    let ns = s.namespace().await.map_err(&e)?;
    let r = CheckResult {
        side: side_name(side),
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

/// The POP3 form of [`check`] (always the source): connect, TLS, log in, CAPA. The UID table
/// of a migration is not touched.
pub async fn check_pop3(account: &Account) -> Result<CheckResult, EngineError> {
    let started = Instant::now();
    let spec = Pop3Spec::new(account.clone(), std::path::PathBuf::new());
    let s = Pop3Source::open(&spec)
        .await
        .map_err(|source| EngineError::Server {
            side: Side::Source,
            source,
        })?;
    let r = CheckResult {
        side: side_name(Side::Source),
        host: account.endpoint.host.clone(),
        port: account.endpoint.port,
        tls: s.is_tls(),
        greeting: s.greeting().to_string(),
        logged_in_as: account.credentials.mailbox_user().to_string(),
        capabilities: s.capabilities().to_vec(),
        folders: 1,
        namespace_prefix: String::new(),
        separator: None,
        seconds: started.elapsed().as_secs_f64(),
    };
    s.close().await;
    Ok(r)
}

/// What [`analyze`] found in a source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Analysis {
    /// Every selectable folder, in the source's order.
    pub folders: Vec<FolderAnalysis>,
    /// Messages over all folders.
    pub messages: u64,
    /// Their size, bytes.
    pub bytes: u64,
    /// Messages over the filter's size limit (they would be skipped).
    pub over_size_limit: u64,
    /// With a date range: the messages in it, over all folders (what a migration would copy,
    /// size limit aside). `None` without a range.
    pub in_date_range: Option<u64>,
    /// Their size, bytes.
    pub in_date_range_bytes: Option<u64>,
    /// The folder plan, rendered, when a destination was given.
    pub plan: Option<String>,
    /// What the plan noted (folders skipped, names escaped...).
    pub plan_notes: Vec<String>,
    /// How fast the source handed out a sample of its messages (IMAP sources).
    pub sample_read_mb_per_s: Option<f64>,
    /// What would be copied (`in_date_range_bytes` with a date range, else `bytes`) at that
    /// rate: a lower bound of the copy time.
    pub estimated_seconds: Option<f64>,
}

/// One folder of an [`Analysis`].
#[derive(Clone, Debug, Serialize)]
pub struct FolderAnalysis {
    /// The decoded name.
    pub name: String,
    /// `\Sent`, `\Trash`... when the source says so.
    pub special_use: Option<String>,
    /// Messages in the folder.
    pub messages: u64,
    /// Their size, bytes.
    pub bytes: u64,
    /// The size of the largest message.
    pub largest: u64,
    /// With a date range: the messages in it. `None` without a range.
    pub in_date_range: Option<u64>,
}

impl Analysis {
    /// Adds a folder: its messages, and with a date range the UIDs the source found in it.
    fn add_folder(
        &mut self,
        folder: &Folder,
        metas: &[MessageMeta],
        in_range: Option<&HashSet<Uid>>,
        filter: &MessageFilter,
    ) {
        let bytes: u64 = metas.iter().map(|m| m.size).sum();
        if let Some(limit) = filter.max_size {
            self.over_size_limit += metas.iter().filter(|m| m.size > limit).count() as u64;
        }
        self.messages += metas.len() as u64;
        self.bytes += bytes;
        let in_date_range = in_range.map(|set| {
            let chosen = metas.iter().filter(|m| set.contains(&m.uid));
            let (n, b) = chosen.fold((0u64, 0u64), |(n, b), m| (n + 1, b + m.size));
            *self.in_date_range.get_or_insert(0) += n;
            *self.in_date_range_bytes.get_or_insert(0) += b;
            n
        });
        self.folders.push(FolderAnalysis {
            name: folder.name.clone(),
            special_use: folder.special_use.map(|u| u.name().to_string()),
            messages: metas.len() as u64,
            bytes,
            largest: metas.iter().map(|m| m.size).max().unwrap_or(0),
            in_date_range,
        });
    }
}

/// Looks at a source before a migration: its folders with message counts and sizes (and how
/// many messages are over the filter's size limit), the folder plan when a `destination` is
/// given, and for IMAP sources the rate at which the source hands out a sample of up to 50
/// real messages, with the estimate of the copy time it gives. Reads only (IMAP folders are
/// EXAMINEd).
pub async fn analyze(
    source: &SourceSpec,
    destination: Option<&SinkSpec>,
    plan: &PlanOptions,
    filter: &MessageFilter,
) -> Result<Analysis, EngineError> {
    let mut out = Analysis::default();
    if let Some(destination) = destination {
        let (p, s, d) = super::plan(source, destination, plan).await?;
        out.plan = Some(p.render());
        out.plan_notes = p.notes.clone();
        s.close().await;
        d.close().await;
    }
    if filter.date_range().is_some() {
        // Counted per folder from here; zero when there are none.
        out.in_date_range = Some(0);
        out.in_date_range_bytes = Some(0);
    }
    match source {
        SourceSpec::Imap(account) => analyze_imap(account, filter, &mut out).await?,
        other => analyze_store(other, filter, &mut out).await?,
    }
    Ok(out)
}

/// Any kind of source, through the source contract.
async fn analyze_store(
    spec: &SourceSpec,
    filter: &MessageFilter,
    out: &mut Analysis,
) -> Result<(), EngineError> {
    let e = |source| EngineError::Server {
        side: Side::Source,
        source,
    };
    let mut s = spec.open().await.map_err(e)?;
    let list = s.list_folders().await.map_err(e)?;
    for f in list.folders.iter().filter(|f| f.selectable()) {
        s.open_folder(f).await.map_err(e)?;
        let metas = s.messages().await.map_err(e)?;
        let in_range = match filter.date_range() {
            Some(range) => Some(s.select_dates(&range).await.map_err(e)?),
            None => None,
        };
        out.add_folder(f, &metas, in_range.as_ref(), filter);
    }
    s.close().await;
    Ok(())
}

/// IMAP: the same, plus the sample read from the fullest folder (its newest 50 messages).
async fn analyze_imap(
    source: &Account,
    filter: &MessageFilter,
    out: &mut Analysis,
) -> Result<(), EngineError> {
    const SAMPLE: usize = 50;
    let e = server_error(Side::Source);
    let mut s = source.open().await.map_err(&e)?;
    let folders = s.list().await.map_err(&e)?;
    let mut sample: Option<(String, Vec<Uid>)> = None;
    for f in folders.iter().filter(|f| f.selectable()) {
        s.examine(&f.raw).await.map_err(&e)?;
        let metas = s.fetch_meta("1:*", None).await.map_err(&e)?;
        if sample
            .as_ref()
            .is_none_or(|(_, u)| u.len() < metas.len().min(SAMPLE))
        {
            sample = Some((
                f.raw.clone(),
                metas.iter().rev().take(SAMPLE).map(|m| m.uid).collect(),
            ));
        }
        let in_range = match filter.date_range() {
            Some(range) => Some(
                s.uid_search(&date_keys(&range))
                    .await
                    .map_err(&e)?
                    .into_iter()
                    .collect::<HashSet<Uid>>(),
            ),
            None => None,
        };
        out.add_folder(f, &metas, in_range.as_ref(), filter);
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
            let to_copy = out.in_date_range_bytes.unwrap_or(out.bytes);
            out.estimated_seconds = Some(to_copy as f64 / rate);
        }
    }
    s.logout().await;
    Ok(())
}

/// The sync-state key a migration uses unless told another: `source -> destination` as
/// [`SourceSpec::identity`] and [`SinkSpec::identity`] write them (`imap:user -> imap:user`
/// for two IMAP servers): the logins' mailboxes, not how the servers were reached, so a
/// server spelled differently resumes the same state. The CLI and the bindings use it alike,
/// so they resume each other's runs.
pub fn default_account_key(source: &SourceSpec, destination: &SinkSpec) -> String {
    format!("{} -> {}", source.identity(), destination.identity())
}

/// The default key for this state: [`default_account_key`], or when the state knows the
/// account only under the key of earlier versions (`user@host:port -> user@host:port`), that
/// one, so that state written before keeps being used.
pub fn account_key_in(
    state: &dyn crate::state::StateStore,
    source: &SourceSpec,
    destination: &SinkSpec,
) -> Result<String, crate::state::StateError> {
    let key = default_account_key(source, destination);
    let legacy = format!("{} -> {}", source.describe(), destination.describe());
    if state.folders(&key)?.is_empty() && !state.folders(&legacy)?.is_empty() {
        return Ok(legacy);
    }
    Ok(key)
}
