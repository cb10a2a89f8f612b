//! The task list and a task's overview: accounts per status, messages and bytes, throughput
//! now, the estimated end of the first passes, when the incremental passes stop, the servers
//! (never a secret) and who runs the scheduler; the task-wide buttons (start now, pause all,
//! resume all). The live part is a fragment the page polls.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use imapmig_core::batch::task::{Auth, CertificateCheck, ServerSettings};
use imapmig_core::batch::{
    AccountQuery, BatchError, BatchStore, ControlReport, EditScope, Selection, Status,
};
use imapmig_core::config::{SchedulePatch, SettingsPatch};
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;

use super::words::{
    control_words, notice, per_second, span, status_badge, task_url, when, Done, FAILURES,
};
use crate::auth::Admin;
use crate::error::{AppError, AppResult};
use crate::layout::url_escape;
use crate::layout::{admin_page, bytes, Tab};
use crate::pace::{self, Rate, PACE_WINDOW};
use crate::state::AppState;

/// A task's overview, as the page shows it and `GET /api/tasks/{task}` returns it.
#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    /// The task.
    pub task: String,
    /// Accounts in the task.
    pub accounts: u64,
    /// Accounts per status, every status (0 included).
    pub statuses: BTreeMap<&'static str, u64>,
    /// Failed accounts per category (only categories with some).
    pub failures: BTreeMap<&'static str, u64>,
    /// Messages on the destination, all accounts.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages refused, all accounts.
    pub refused: u64,
    /// Throughput over the last minute; `null` until two samples are a second apart.
    pub throughput: Option<Rate>,
    /// The estimated end of the first passes.
    pub eta: Eta,
    /// When the incremental passes stop.
    pub window: WindowEnd,
    /// The schedule.
    pub schedule: ScheduleView,
    /// The servers (never a secret).
    pub servers: Vec<ServerView>,
    /// Who runs the task's scheduler.
    pub scheduler: SchedulerView,
}

/// The estimated end of the first passes.
#[derive(Clone, Debug, Serialize)]
pub struct Eta {
    /// Accounts whose first pass has not completed.
    pub remaining: u64,
    /// Of those, accounts that wait for credentials, are paused, failed or stopped (at most:
    /// some may have synced before): they finish only when someone acts.
    pub needing_action: u64,
    /// First passes completed in the last hour.
    pub first_passes_last_hour: u64,
    /// Seconds until the remaining accounts are done at that pace; `null` without a pace.
    pub seconds: Option<u64>,
    /// When that is (RFC 3339).
    pub finishes_at: Option<String>,
    /// How it is estimated, in words.
    pub method: &'static str,
}

/// When the incremental passes stop.
#[derive(Clone, Debug, Serialize)]
pub struct WindowEnd {
    /// The window after an account's first complete pass, in seconds.
    pub window_seconds: u64,
    /// The latest first complete pass so far (RFC 3339).
    pub latest_first_pass_at: Option<String>,
    /// When the incremental passes of the accounts synced so far end: the latest first pass
    /// plus the window.
    pub synced_accounts_end_at: Option<String>,
    /// When the last account's passes end if the rest finish as estimated.
    pub projected_end_at: Option<String>,
}

/// The schedule.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// When passes may start (RFC 3339); `null`: at once.
    pub start_at: Option<String>,
    /// Whether that is still to come.
    pub start_in_future: bool,
    /// The incremental window, in seconds.
    pub window_seconds: u64,
    /// Between two passes of an account, in seconds.
    pub interval_seconds: u64,
}

/// One server, without secrets.
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// `source` or `destination`.
    pub side: &'static str,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `imap` or `pop3`.
    pub protocol: String,
    /// `tls`, `starttls` or `cleartext`.
    pub tls: &'static str,
    /// How the certificate is checked: `system`, `ca_file`, `insecure`.
    pub certificate: &'static str,
    /// `password`, `oauth2`, `admin` or `master_user`.
    pub auth: &'static str,
    /// The auth in words (an admin's or master's name, never a password).
    pub auth_words: String,
}

/// Who runs the scheduler.
#[derive(Clone, Debug, Serialize)]
pub struct SchedulerView {
    /// `this_process`, `another_process` or `nobody`.
    pub who: &'static str,
    /// The holder's process id.
    pub pid: Option<i64>,
    /// The holder's machine.
    pub host: Option<String>,
    /// In words.
    pub words: String,
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn server_view(side: &'static str, s: &ServerSettings) -> ServerView {
    let (auth, auth_words) = match &s.auth {
        Auth::Password { mechanism } => (
            "password",
            format!("each account's own password ({mechanism:?})").to_lowercase(),
        ),
        Auth::OAuth2 { mechanism } => (
            "oauth2",
            format!("each account's own OAuth2 token ({mechanism:?})"),
        ),
        Auth::Admin { user } => (
            "admin",
            format!("admin login {user:?} acting for each account"),
        ),
        Auth::MasterUser { master, separator } => (
            "master_user",
            format!("master user {master:?} (mailbox{separator}{master})"),
        ),
    };
    ServerView {
        side,
        host: s.host.clone(),
        port: s.port,
        protocol: format!("{:?}", s.protocol).to_lowercase(),
        tls: s.transport.name(),
        certificate: match s.certificate {
            CertificateCheck::System => "system",
            CertificateCheck::CaFile(_) => "ca_file",
            CertificateCheck::Insecure => "insecure",
        },
        auth,
        auth_words,
    }
}

const ETA_METHOD: &str = "accounts whose first pass has not completed, divided by the first \
                          passes completed in the last hour";

/// Reads everything the overview shows (blocking: store calls).
pub fn overview_of(
    store: &BatchStore,
    task: &str,
    throughput: Option<Rate>,
    run_schedulers: bool,
) -> Result<Overview, BatchError> {
    let t = store.task(task)?;
    let sum = store.summary(task)?;
    let now = OffsetDateTime::now_utc();
    let ever_synced = store.first_passes_since(task, OffsetDateTime::UNIX_EPOCH)?;
    let last_hour = store.first_passes_since(task, now - PACE_WINDOW)?;
    let remaining = sum.accounts.saturating_sub(ever_synced);
    let needing_action = [
        Status::WaitingForCredentials,
        Status::Paused,
        Status::Failed,
        Status::Stopped,
    ]
    .iter()
    .map(|s| sum.count(*s))
    .sum::<u64>()
    .min(remaining);
    // Accounts that need someone to act do not move at any pace: the estimate is for the
    // others.
    let moving = remaining - needing_action;
    let eta_secs = pace::eta_seconds(moving, last_hour, PACE_WINDOW);
    let finishes_at = eta_secs
        .filter(|s| *s > 0)
        .and_then(|s| now.checked_add(time::Duration::seconds(i64::try_from(s).ok()?)));
    let window = t.settings.schedule.window;
    let latest = store.last_first_pass(task)?;
    let plus_window = |at: OffsetDateTime| at.checked_add(window.try_into().ok()?);
    let projected = if moving == 0 {
        latest.and_then(plus_window)
    } else {
        finishes_at.and_then(plus_window)
    };
    let holder = store.scheduler_holder(task)?;
    let scheduler = match holder {
        Some(h) if h.live => {
            let mine = run_schedulers && h.pid == i64::from(std::process::id());
            SchedulerView {
                who: if mine {
                    "this_process"
                } else {
                    "another_process"
                },
                words: if mine {
                    "this process (the console) runs the scheduler".into()
                } else {
                    format!(
                        "another process runs the scheduler (pid {} on {})",
                        h.pid, h.host
                    )
                },
                pid: Some(h.pid),
                host: Some(h.host),
            }
        }
        _ => SchedulerView {
            who: "nobody",
            pid: None,
            host: None,
            words: "nobody is migrating this task now".into(),
        },
    };
    let start_at = t.settings.schedule.start_at;
    Ok(Overview {
        task: task.to_string(),
        accounts: sum.accounts,
        statuses: Status::ALL
            .iter()
            .map(|s| (s.as_str(), sum.count(*s)))
            .collect(),
        failures: FAILURES
            .iter()
            .filter_map(|c| sum.failures.get(c).map(|n| (c.as_str(), *n)))
            .collect(),
        messages: sum.messages,
        bytes: sum.bytes,
        refused: sum.refused,
        throughput,
        eta: Eta {
            remaining,
            needing_action,
            first_passes_last_hour: last_hour,
            seconds: eta_secs,
            finishes_at: finishes_at.and_then(rfc3339),
            method: ETA_METHOD,
        },
        window: WindowEnd {
            window_seconds: window.as_secs(),
            latest_first_pass_at: latest.and_then(rfc3339),
            synced_accounts_end_at: latest.and_then(plus_window).and_then(rfc3339),
            projected_end_at: projected.and_then(rfc3339),
        },
        schedule: ScheduleView {
            start_at: start_at.and_then(rfc3339),
            start_in_future: start_at.is_some_and(|s| s > now),
            window_seconds: window.as_secs(),
            interval_seconds: t.settings.schedule.interval.as_secs(),
        },
        servers: vec![
            server_view("source", &t.settings.source),
            server_view("destination", &t.settings.destination),
        ],
        scheduler,
    })
}

async fn load(state: &AppState, task: String) -> AppResult<Overview> {
    state.throughput.start(state.store.clone());
    let rate = state.throughput.rate(&task);
    let run = state.options.run_schedulers;
    state
        .with_store(move |s| overview_of(s, &task, rate, run))
        .await
}

fn parse_time(s: &Option<String>) -> Option<OffsetDateTime> {
    s.as_deref()
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
}

/// The live part of the overview (polled).
fn live(o: &Overview) -> Markup {
    html! {
        div.cards {
            @for s in Status::ALL {
                a.card href=(task_url(&o.task, &format!("/accounts?status={}", s.as_str()))) {
                    div.n id={ "count-" (s.as_str()) } { (o.statuses.get(s.as_str()).copied().unwrap_or(0)) }
                    div.l { (status_badge(s)) }
                }
            }
        }
        div.cards.totals {
            div.card { div.n id="accounts-total" { (o.accounts) } div.l { "accounts" } }
            div.card { div.n id="messages" { (o.messages) } div.l { "messages copied" } }
            div.card { div.n id="bytes" { (bytes(o.bytes)) } div.l { "copied" } }
            div.card {
                @match &o.throughput {
                    Some(r) => {
                        div.n id="throughput" { (per_second(r.messages_per_second)) " msg" }
                        div.l { (bytes(r.bytes_per_second as u64)) "/s · over the last " (r.over_seconds.round()) " s" }
                    }
                    None => {
                        div.n id="throughput" { "measuring…" }
                        div.l { "throughput now (msg/s, bytes/s)" }
                    }
                }
            }
            div.card {
                div.n id="eta" {
                    @match (o.eta.remaining - o.eta.needing_action, o.eta.seconds) {
                        (0, _) if o.eta.remaining > 0 => "waiting on you",
                        (0, _) => "done",
                        (_, Some(s)) => (span(s)),
                        (_, None) => "unknown yet",
                    }
                }
                div.l { "first passes left: " (o.eta.remaining) }
            }
            div.card {
                div.n id="window-end" {
                    @match &o.window.projected_end_at {
                        Some(t) => (when(parse_time(&Some(t.clone())))),
                        None => "unknown yet",
                    }
                }
                div.l { "incremental passes end" }
            }
        }
        @if !o.failures.is_empty() {
            p.failures {
                "Failed by category: "
                @for (c, n) in &o.failures {
                    a href=(task_url(&o.task, &format!("/accounts?status=failed&failure={c}"))) { (c) ": " (n) }
                    " "
                }
            }
        }
        p id="scheduler" data-who=(o.scheduler.who) {
            strong { "Scheduler: " } (o.scheduler.words)
        }
        p.muted.small {
            "ETA: " (o.eta.method) " (" (o.eta.first_passes_last_hour) " in the last hour)"
            @if o.eta.needing_action > 0 {
                "; " (o.eta.needing_action) " of the accounts left wait for credentials, are paused, failed or stopped: they finish only when someone acts"
            }
            ". Incremental passes of an account go on for " (span(o.window.window_seconds))
            " after its first complete pass"
            @if let Some(t) = &o.window.synced_accounts_end_at {
                "; those of the accounts synced so far end " (when(parse_time(&Some(t.clone()))))
            }
            ". Throughput: the change in the store's totals over the last minute, sampled every "
            (pace::SAMPLE_EVERY.as_secs()) " s."
        }
    }
}

/// `GET /tasks/{task}`: the overview page.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    Query(q): Query<Done>,
) -> AppResult<Markup> {
    let o = load(&state, task.clone()).await?;
    let base = task_url(&task, "");
    let body = html! {
        h1 { "Task " (task) }
        (notice(q.done.as_deref()))
        div id="overview-live" data-poll=(task_url(&task, "/fragments/overview")) data-every="3000" {
            (live(&o))
        }
        div.box.controls {
            form.inline method="post" action={ (base) "/start" } {
                input type="hidden" name="csrf" value=(admin.csrf);
                button type="submit" id="start-now" {
                    @if o.schedule.start_in_future { "Start now" } @else { "Start waiting accounts now" }
                }
            }
            " "
            form.inline method="post" action={ (base) "/pause-all" } {
                input type="hidden" name="csrf" value=(admin.csrf);
                button.secondary type="submit" id="pause-all" { "Pause all" }
            }
            " "
            form.inline method="post" action={ (base) "/resume-all" } {
                input type="hidden" name="csrf" value=(admin.csrf);
                button.secondary type="submit" id="resume-all" { "Resume all" }
            }
            " "
            a href={ (base) "/export.csv" } id="export-csv" { "Export CSV" }
            " · "
            a href={ (base) "/export.json" } id="export-json" { "Export JSON" }
        }
        h2 { "Servers" }
        table id="servers" {
            thead { tr { th { "Side" } th { "Server" } th { "Protocol" } th { "TLS" } th { "Certificate" } th { "Login" } } }
            tbody {
                @for s in &o.servers {
                    tr data-side=(s.side) {
                        td { (s.side) }
                        td { code { (s.host) ":" (s.port) } }
                        td { (s.protocol) }
                        td.tls { (s.tls) }
                        td { (s.certificate) }
                        td.auth data-auth=(s.auth) { (s.auth_words) }
                    }
                }
            }
        }
        h2 { "Schedule" }
        p id="schedule" {
            "Start: "
            @match &o.schedule.start_at {
                Some(t) => { (when(parse_time(&Some(t.clone())))) @if o.schedule.start_in_future { " (not yet)" } }
                None => "at once",
            }
            " · incremental passes every " (span(o.schedule.interval_seconds))
            " for " (span(o.schedule.window_seconds)) " after each account's first complete pass."
        }
    };
    Ok(admin_page(
        &format!("Task {task}"),
        &admin,
        Some(&task),
        Tab::Overview,
        body,
    ))
}

/// `GET /tasks/{task}/fragments/overview`: the live part, polled by the page.
pub async fn fragment(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Markup> {
    Ok(live(&load(&state, task).await?))
}

/// What "start now" did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Started {
    /// Whether the schedule's start time was in the future and was set to now.
    pub start_moved: bool,
    /// Accounts waiting for their first start that were made due now.
    pub brought_forward: u64,
}

impl Started {
    fn words(&self) -> String {
        match (self.start_moved, self.brought_forward) {
            (false, 0) => "The task had started already; nothing was waiting for its start.".into(),
            (true, 0) => "The task starts now.".into(),
            (_, n) => format!("The task starts now: {n} waiting account(s) are due now."),
        }
    }
}

/// Sets the schedule's start to now when it is in the future, and makes accounts that wait
/// for their first start (scheduled, never synced, no failed attempt) due now.
pub fn start_now(store: &BatchStore, task: &str) -> Result<Started, BatchError> {
    let t = store.task(task)?;
    let now = OffsetDateTime::now_utc();
    let mut out = Started::default();
    if t.settings.schedule.start_at.is_some_and(|s| s > now) {
        let patch = SettingsPatch {
            schedule: SchedulePatch {
                start_at: Some(None),
                ..SchedulePatch::default()
            },
            ..SettingsPatch::default()
        };
        patch.edit_task(store, task, None, None, EditScope::NotStarted)?;
        out.start_moved = true;
    }
    let mut names = Vec::new();
    let mut q = AccountQuery {
        status: Some(Status::Scheduled),
        limit: 1000,
        ..AccountQuery::default()
    };
    loop {
        let page = store.account_page(task, &q)?;
        for a in &page.accounts {
            if a.synced_at.is_none() && a.attempts == 0 && a.next_pass_at.is_some_and(|n| n > now) {
                names.push(format!("#{}", a.id));
            }
        }
        if page.accounts.len() < 1000 {
            break;
        }
        q.offset += 1000;
    }
    if !names.is_empty() {
        out.brought_forward = store.run_now(task, Selection::Names(&names))?.changed;
    }
    Ok(out)
}

fn back(task: &str, done: &str) -> Response {
    Redirect::to(&format!("{}?done={}", task_url(task, ""), url_escape(done))).into_response()
}

/// `POST /tasks/{task}/start`.
pub async fn start_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    let t = task.clone();
    let r = state.with_store(move |s| start_now(s, &t)).await?;
    Ok(back(&task, &r.words()))
}

/// `POST /tasks/{task}/pause-all`.
pub async fn pause_all_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    to_all(&state, task, "Pause all", BatchStore::pause).await
}

/// `POST /tasks/{task}/resume-all`.
pub async fn resume_all_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    to_all(&state, task, "Resume all", BatchStore::resume).await
}

/// Applies a control to every account of the task, back to the overview with what it did.
async fn to_all(
    state: &AppState,
    task: String,
    what: &'static str,
    control: fn(&BatchStore, &str, Selection<'_>) -> Result<ControlReport, BatchError>,
) -> AppResult<Response> {
    let t = task.clone();
    let r = state
        .with_store(move |s| control(s, &t, Selection::All))
        .await?;
    Ok(back(&task, &control_words(what, &r)))
}

/// One task in the list.
#[derive(Clone, Debug, Serialize)]
pub struct TaskLine {
    /// Its name.
    pub name: String,
    /// Accounts.
    pub accounts: u64,
    /// Accounts per status (every status).
    pub statuses: BTreeMap<&'static str, u64>,
    /// Messages copied.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

fn task_lines(store: &BatchStore) -> Result<Vec<TaskLine>, BatchError> {
    store
        .tasks()?
        .into_iter()
        .map(|name| {
            let s = store.summary(&name)?;
            Ok(TaskLine {
                accounts: s.accounts,
                statuses: Status::ALL
                    .iter()
                    .map(|st| (st.as_str(), s.count(*st)))
                    .collect(),
                messages: s.messages,
                bytes: s.bytes,
                name,
            })
        })
        .collect()
}

/// `GET /tasks`: every task of the store.
pub async fn task_list(State(state): State<AppState>, admin: Admin) -> AppResult<Markup> {
    let lines = state.with_store(task_lines).await?;
    let body = html! {
        h1 { "Tasks" }
        @if lines.is_empty() {
            p { "The store has no task yet. Create one with " code { "imapmig task create" } "." }
        } @else {
            table id="tasks" {
                thead { tr { th { "Task" } th.num { "Accounts" } th.num { "Synced" } th.num { "Running" } th.num { "Failed" } th.num { "Messages" } th.num { "Copied" } } }
                tbody {
                    @for l in &lines {
                        tr {
                            td { a.task href=(task_url(&l.name, "")) { (l.name) } }
                            td.num { (l.accounts) }
                            td.num { (l.statuses["synced"]) }
                            td.num { (l.statuses["running"]) }
                            td.num { (l.statuses["failed"]) }
                            td.num { (l.messages) }
                            td.num { (bytes(l.bytes)) }
                        }
                    }
                }
            }
        }
    };
    Ok(admin_page("Tasks", &admin, None, Tab::None, body))
}

/// `GET /api/tasks`: every task with its totals.
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" https://console/api/tasks
/// [{"name":"company","accounts":50,"statuses":{"failed":1,"synced":49,...},"messages":1234,"bytes":5678}]
/// ```
pub async fn api_tasks(
    State(state): State<AppState>,
    _admin: Admin,
) -> AppResult<Json<Vec<TaskLine>>> {
    Ok(Json(
        state
            .with_store(task_lines)
            .await
            .map_err(AppError::as_json)?,
    ))
}

/// `GET /api/tasks/{task}`: the overview.
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" https://console/api/tasks/company
/// {"task":"company","accounts":50,"statuses":{"not_started":0,...},"messages":1234,
///  "throughput":{"messages_per_second":12.5,"bytes_per_second":40960.0,"over_seconds":60.0},
///  "eta":{"remaining":10,"first_passes_last_hour":40,"seconds":900,...},
///  "servers":[{"side":"source","host":"old.example","port":993,"tls":"tls","auth":"password",...}],
///  "scheduler":{"who":"this_process","pid":1234,...}, ...}
/// ```
pub async fn api_overview(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Json<Overview>> {
    Ok(Json(load(&state, task).await.map_err(AppError::as_json)?))
}

/// `POST /api/tasks/{task}/start`: starts the task now (see [`start_now`]).
///
/// ```text
/// curl -X POST -H "Authorization: Bearer $TOKEN" https://console/api/tasks/company/start
/// {"start_moved":true,"brought_forward":0}
/// ```
pub async fn api_start(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Json<Started>> {
    let r = state
        .with_store(move |s| start_now(s, &task))
        .await
        .map_err(AppError::as_json)?;
    Ok(Json(r))
}
