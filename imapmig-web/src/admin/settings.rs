//! The task's settings: shown, and edited with the same [`SettingsPatch`] the CLI's
//! `task edit` applies (checked together with what the task already has, then stored with
//! [`BatchStore::edit_task`]). The page's form keeps to the settings an admin changes during a
//! migration (servers' host, port and TLS; folders; the messages' date range and size limit;
//! the schedule; the limits; retries); the API takes any [`SettingsPatch`] as JSON.
//!
//! A problem is shown beside the field it is about, in words; nothing is stored while any
//! field is wrong. Admin and master passwords are write-only: the form has an empty field to
//! replace one, never the stored value.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use imapmig_core::batch::task::{format_duration, parse_duration, Auth, TaskSettings};
use imapmig_core::batch::{BatchError, BatchStore, EditScope};
use imapmig_core::config::{
    FoldersPatch, LimitsPatch, MessagesPatch, RetryPatch, SchedulePatch, ServerPatch, SettingsPatch,
};
use imapmig_core::imap::Security;
use imapmig_core::secret::Secret;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::words::{notice, task_url, Done};
use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::url_escape;
use crate::layout::{admin_page, Tab};
use crate::state::AppState;

/// The settings form, as strings (what the admin typed, shown back on an error).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SettingsForm {
    /// Source host.
    pub src_host: String,
    /// Source port.
    pub src_port: String,
    /// Source TLS: `tls`, `starttls`, `cleartext`.
    pub src_tls: String,
    /// A new source admin or master password (empty: keep).
    pub src_admin_password: Secret,
    /// Destination host.
    pub dst_host: String,
    /// Destination port.
    pub dst_port: String,
    /// Destination TLS.
    pub dst_tls: String,
    /// A new destination admin or master password (empty: keep).
    pub dst_admin_password: Secret,
    /// Folder globs to copy, one per line (empty: all).
    pub include: String,
    /// Folder globs not to copy, one per line.
    pub exclude: String,
    /// The first day (`YYYY-MM-DD`; empty: no limit).
    pub since: String,
    /// The day the range stops before.
    pub before: String,
    /// The size limit in bytes (empty: none).
    pub max_size: String,
    /// When passes may start: RFC 3339, or empty / `now` for at once.
    pub start_at: String,
    /// The incremental window (`30d`).
    pub window: String,
    /// Between two passes (`1h`).
    pub interval: String,
    /// Accounts at once.
    pub max_accounts: String,
    /// Connections to one source host.
    pub per_source_host: String,
    /// Connections to one destination host.
    pub per_destination_host: String,
    /// Connections per account.
    pub connections_per_account: String,
    /// Failed passes in a row before an account fails.
    pub retries: String,
    /// The first retry pause.
    pub retry_base: String,
    /// The longest retry pause.
    pub retry_max: String,
    /// `not_started` or `all`: which accounts a server change reaches.
    pub apply_to: String,
}

/// What the form asks for: the patch, the admin or master passwords given, and which
/// accounts a server change reaches.
#[derive(Debug)]
pub struct Edit {
    /// The patch of every setting the form shows.
    pub patch: SettingsPatch,
    /// A new source admin or master password.
    pub source_secret: Option<Secret>,
    /// A new destination admin or master password.
    pub destination_secret: Option<Secret>,
    /// Which accounts a server change reaches.
    pub scope: EditScope,
}

/// A problem with one field (or `""` for the whole form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The form field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn lines(v: &[String]) -> String {
    v.join("\n")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl SettingsForm {
    /// The form filled with a task's settings (no password: those are never shown).
    pub fn of(s: &TaskSettings) -> SettingsForm {
        let day = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_default();
        SettingsForm {
            src_host: s.source.host.clone(),
            src_port: s.source.port.to_string(),
            src_tls: s.source.transport.name().into(),
            src_admin_password: Secret::default(),
            dst_host: s.destination.host.clone(),
            dst_port: s.destination.port.to_string(),
            dst_tls: s.destination.transport.name().into(),
            dst_admin_password: Secret::default(),
            include: lines(&s.folders.include),
            exclude: lines(&s.folders.exclude),
            since: day(s.messages.since),
            before: day(s.messages.before),
            max_size: s
                .messages
                .max_size
                .map(|n| n.to_string())
                .unwrap_or_default(),
            start_at: s.schedule.start_at.map(rfc3339).unwrap_or_default(),
            window: format_duration(s.schedule.window),
            interval: format_duration(s.schedule.interval),
            max_accounts: s.limits.accounts.to_string(),
            per_source_host: s.limits.per_source_host.to_string(),
            per_destination_host: s.limits.per_destination_host.to_string(),
            connections_per_account: s.limits.connections_per_account.to_string(),
            retries: s.retry.max_attempts.to_string(),
            retry_base: format_duration(s.retry.base),
            retry_max: format_duration(s.retry.max),
            apply_to: "not_started".into(),
        }
    }

    /// The form as a patch of every setting it shows, the admin passwords given, and the
    /// scope; or every field's problem.
    pub fn patch(&self) -> Result<Edit, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err =
            |field: &'static str, message: String| errors.push(FieldError { field, message });
        let text = |v: &str| v.trim().to_string();
        let port = |field: &'static str, v: &str, err: &mut dyn FnMut(&'static str, String)| match v
            .trim()
            .parse::<u16>()
        {
            Ok(p) if p > 0 => Some(p),
            _ => {
                err(field, format!("{:?} is not a port (1 to 65535)", v.trim()));
                None
            }
        };
        let tls = |field: &'static str, v: &str, err: &mut dyn FnMut(&'static str, String)| {
            Security::from_name(v.trim()).or_else(|| {
                err(field, "choose tls, starttls or cleartext".into());
                None
            })
        };
        let count = |field: &'static str, v: &str, err: &mut dyn FnMut(&'static str, String)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| {
                    err(field, format!("{:?} is not a whole number", v.trim()));
                })
                .ok()
        };
        let duration = |field: &'static str, v: &str, err: &mut dyn FnMut(&'static str, String)| {
            parse_duration(v).or_else(|| {
                err(
                    field,
                    format!("{:?}: write a duration like 90s, 15m, 6h or 30d", v.trim()),
                );
                None
            })
        };
        let day = |field: &'static str, v: &str, err: &mut dyn FnMut(&'static str, String)| {
            let v = v.trim();
            if v.is_empty() {
                return Some(None);
            }
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(v, &fmt) {
                Ok(d) => Some(Some(d)),
                Err(_) => {
                    err(field, format!("{v:?}: write a day as YYYY-MM-DD"));
                    None
                }
            }
        };
        let globs = |v: &str| -> Vec<String> {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let src_port = port("src_port", &self.src_port, &mut err);
        let dst_port = port("dst_port", &self.dst_port, &mut err);
        let src_tls = tls("src_tls", &self.src_tls, &mut err);
        let dst_tls = tls("dst_tls", &self.dst_tls, &mut err);
        for (field, v) in [("src_host", &self.src_host), ("dst_host", &self.dst_host)] {
            if v.trim().is_empty() {
                err(field, "the host name is empty".into());
            }
        }
        let since = day("since", &self.since, &mut err);
        let before = day("before", &self.before, &mut err);
        let max_size = match self.max_size.trim() {
            "" => Some(None),
            v => match v.parse::<u64>() {
                Ok(n) => Some(Some(n)),
                Err(_) => {
                    err("max_size", format!("{v:?} is not a number of bytes"));
                    None
                }
            },
        };
        let start_at = match self.start_at.trim() {
            "" => Some(None),
            v if v.eq_ignore_ascii_case("now") => Some(None),
            v => match OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Some(Some(t)),
                Err(_) => {
                    err(
                        "start_at",
                        format!("{v:?}: write \"now\" or a time like 2030-01-31T22:00:00+01:00"),
                    );
                    None
                }
            },
        };
        let window = duration("window", &self.window, &mut err);
        let interval = duration("interval", &self.interval, &mut err);
        let max_accounts = count("max_accounts", &self.max_accounts, &mut err);
        let per_source_host = count("per_source_host", &self.per_source_host, &mut err);
        let per_destination_host =
            count("per_destination_host", &self.per_destination_host, &mut err);
        let connections_per_account = count(
            "connections_per_account",
            &self.connections_per_account,
            &mut err,
        );
        let retries = self.retries.trim().parse::<u32>().map_err(|_| {
            err(
                "retries",
                format!("{:?} is not a whole number", self.retries.trim()),
            )
        });
        let retry_base = duration("retry_base", &self.retry_base, &mut err);
        let retry_max = duration("retry_max", &self.retry_max, &mut err);
        let scope = match self.apply_to.trim() {
            "" | "not_started" => EditScope::NotStarted,
            "all" => EditScope::All,
            _ => {
                err("apply_to", "choose not_started or all".into());
                EditScope::NotStarted
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let secret = |v: &Secret| (!v.expose().is_empty()).then(|| v.clone());
        let patch = SettingsPatch {
            source: ServerPatch {
                host: Some(text(&self.src_host)),
                port: src_port,
                transport: src_tls,
                ..ServerPatch::default()
            },
            destination: ServerPatch {
                host: Some(text(&self.dst_host)),
                port: dst_port,
                transport: dst_tls,
                ..ServerPatch::default()
            },
            folders: FoldersPatch {
                include: Some(globs(&self.include)),
                exclude: Some(globs(&self.exclude)),
                ..FoldersPatch::default()
            },
            messages: MessagesPatch {
                since,
                before,
                max_size,
                ..MessagesPatch::default()
            },
            schedule: SchedulePatch {
                start_at,
                window,
                interval,
            },
            limits: LimitsPatch {
                accounts: max_accounts,
                per_source_host,
                per_destination_host,
                connections_per_account,
            },
            retry: RetryPatch {
                max_attempts: retries.ok(),
                base: retry_base,
                max: retry_max,
            },
        };
        Ok(Edit {
            patch,
            source_secret: secret(&self.src_admin_password),
            destination_secret: secret(&self.dst_admin_password),
            scope,
        })
    }
}

/// The form field a setting (as the store names it) is edited in.
pub fn field_of(setting: &str) -> &'static str {
    match setting {
        "source.host" => "src_host",
        "source.port" => "src_port",
        "source.auth" | "source.admin" => "src_admin_password",
        "destination.host" => "dst_host",
        "destination.port" => "dst_port",
        "destination.auth" | "destination.admin" | "destination.protocol" => "dst_admin_password",
        "folders.include" => "include",
        "folders.exclude" => "exclude",
        "messages.since" => "since",
        "messages.before" => "before",
        "messages.max_size" => "max_size",
        "schedule.interval" => "interval",
        "schedule.window" => "window",
        "schedule.start_at" => "start_at",
        "retry" => "retry_base",
        "limits.accounts" => "max_accounts",
        "limits.per_source_host" => "per_source_host",
        "limits.per_destination_host" => "per_destination_host",
        "limits.connections_per_account" => "connections_per_account",
        _ => "",
    }
}

/// Applies a patch to the task's stored settings and stores them; the names of the settings
/// that changed.
fn apply(
    store: &BatchStore,
    task: &str,
    patch: &SettingsPatch,
    source_secret: Option<Secret>,
    destination_secret: Option<Secret>,
    scope: EditScope,
) -> Result<Vec<String>, BatchError> {
    patch.edit_task(store, task, source_secret, destination_secret, scope)
}

/// A store error about settings, as a field error.
fn field_error(e: &BatchError) -> Option<FieldError> {
    match e {
        BatchError::Task(t) => Some(FieldError {
            field: field_of(t.setting()),
            message: e.to_string(),
        }),
        _ => None,
    }
}

/// A text field with its label, hint and errors.
fn field(
    id: &str,
    label: &str,
    value: &str,
    hint: &str,
    error_for: &dyn Fn(&str) -> Markup,
) -> Markup {
    html! {
        p {
            label for=(id) { (label) } br;
            input type="text" id=(id) name=(id) value=(value);
            @if !hint.is_empty() { " " span.muted.small { (hint) } }
            (error_for(id))
        }
    }
}

/// A server's TLS choice.
fn tls_field(id: &str, value: &str, error_for: &dyn Fn(&str) -> Markup) -> Markup {
    html! {
        p {
            label for=(id) { "TLS" } br;
            select id=(id) name=(id) {
                @for (v, words) in [("tls", "TLS (usually 993)"), ("starttls", "STARTTLS (usually 143)"), ("cleartext", "none: cleartext (lab only)")] {
                    option value=(v) selected[value == v] { (words) }
                }
            }
            (error_for(id))
        }
    }
}

fn needs_secret(a: &Auth) -> bool {
    !a.per_account()
}

fn render(
    task: &str,
    admin: &Admin,
    settings: &TaskSettings,
    f: &SettingsForm,
    errors: &[FieldError],
    done: Option<&str>,
) -> Markup {
    let error_for = |field: &str| -> Markup {
        html! {
            @for e in errors.iter().filter(|e| e.field == field) {
                span.error.field-error data-field=(field) { " " (e.message) }
            }
        }
    };
    let input = |id: &str, label: &str, value: &str, hint: &str| -> Markup {
        field(id, label, value, hint, &error_for)
    };
    // One server's fields; `side` is the form's prefix (`src`, `dst`).
    let server = |side: &str, host: &str, port: &str, transport: &str, auth: &Auth| -> Markup {
        let (h, p, t, pw) = (
            format!("{side}_host"),
            format!("{side}_port"),
            format!("{side}_tls"),
            format!("{side}_admin_password"),
        );
        html! {
            (field(&h, "Host", host, "", &error_for))
            (field(&p, "Port", port, "", &error_for))
            (tls_field(&t, transport, &error_for))
            @if needs_secret(auth) {
                p {
                    label for=(pw) { "Admin or master password" } br;
                    input type="password" id=(pw) name=(pw) autocomplete="new-password";
                    " " span.muted.small { "empty: keep the stored one" }
                    (error_for(&pw))
                }
            } @else { (error_for(&pw)) }
        }
    };
    let general: Vec<&FieldError> = errors.iter().filter(|e| e.field.is_empty()).collect();
    html! {
        h1 { "Settings" }
        (notice(done))
        @if !errors.is_empty() {
            div.box.error id="settings-errors" {
                p { "Nothing was saved: " (errors.len()) " problem(s)." }
                @for e in &general { p.field-error data-field="" { (e.message) } }
            }
        }
        form method="post" action=(task_url(task, "/settings")) id="settings" {
            input type="hidden" name="csrf" value=(admin.csrf);
            fieldset.box {
                legend { "Source server" }
                (server("src", &f.src_host, &f.src_port, &f.src_tls, &settings.source.auth))
            }
            fieldset.box {
                legend { "Destination server" }
                (server("dst", &f.dst_host, &f.dst_port, &f.dst_tls, &settings.destination.auth))
                p {
                    "A server change reaches "
                    select id="apply_to" name="apply_to" {
                        option value="not_started" selected[f.apply_to != "all"] { "accounts that have not started" }
                        option value="all" selected[f.apply_to == "all"] { "every account, from its next pass" }
                    }
                    (error_for("apply_to"))
                }
            }
            fieldset.box {
                legend { "Folders" }
                p {
                    label for="include" { "Only folders matching (one glob a line; empty: all)" } br;
                    textarea id="include" name="include" rows="3" cols="40" { (f.include) }
                    (error_for("include"))
                }
                p {
                    label for="exclude" { "Not folders matching (one glob a line)" } br;
                    textarea id="exclude" name="exclude" rows="3" cols="40" { (f.exclude) }
                    (error_for("exclude"))
                }
            }
            fieldset.box {
                legend { "Messages" }
                (input("since", "From (YYYY-MM-DD; empty: no limit)", &f.since, ""))
                (input("before", "Before (YYYY-MM-DD; empty: no limit)", &f.before, ""))
                (input("max_size", "Size limit in bytes (empty: none)", &f.max_size, ""))
            }
            fieldset.box {
                legend { "Schedule" }
                (input("start_at", "Start (RFC 3339 time; empty or now: at once)", &f.start_at, "e.g. 2030-01-31T22:00:00+01:00"))
                (input("window", "Incremental passes go on for", &f.window, "after each account's first complete pass, e.g. 30d"))
                (input("interval", "Between two passes of an account", &f.interval, "e.g. 1h"))
            }
            fieldset.box {
                legend { "Limits" }
                (input("max_accounts", "Accounts at once", &f.max_accounts, ""))
                (input("per_source_host", "Connections per source host", &f.per_source_host, ""))
                (input("per_destination_host", "Connections per destination host", &f.per_destination_host, ""))
                (input("connections_per_account", "Connections per account", &f.connections_per_account, ""))
            }
            fieldset.box {
                legend { "Retries" }
                (input("retries", "Failed passes in a row before an account fails", &f.retries, ""))
                (input("retry_base", "First pause", &f.retry_base, "e.g. 1m"))
                (input("retry_max", "Longest pause", &f.retry_max, "e.g. 1h"))
            }
            button type="submit" id="save" { "Save" }
        }
        p.muted { "Other settings (protocols, logins, certificate checks, folder renames): "
            code { "imapmig task edit" } " or " code { "PATCH /api/tasks/" (task) "/settings" } "." }
    }
}

/// `GET /tasks/{task}/settings`.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    Query(q): Query<Done>,
) -> AppResult<Markup> {
    let t = task.clone();
    let settings = state.with_store(move |s| s.task(&t)).await?.settings;
    let body = render(
        &task,
        &admin,
        &settings,
        &SettingsForm::of(&settings),
        &[],
        q.done.as_deref(),
    );
    Ok(admin_page(
        "Settings",
        &admin,
        Some(&task),
        Tab::Settings,
        body,
    ))
}

/// `POST /tasks/{task}/settings`.
pub async fn save(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    Form(f): Form<SettingsForm>,
) -> AppResult<Response> {
    let t = task.clone();
    let settings = state.with_store(move |s| s.task(&t)).await?.settings;
    let fail = |errors: Vec<FieldError>| {
        let body = render(&task, &admin, &settings, &f, &errors, None);
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            admin_page("Settings", &admin, Some(&task), Tab::Settings, body),
        )
            .into_response()
    };
    let Edit {
        patch,
        source_secret: ss,
        destination_secret: ds,
        scope,
    } = match f.patch() {
        Ok(p) => p,
        Err(errors) => return Ok(fail(errors)),
    };
    let t = task.clone();
    let result = state
        .with_store(move |s| Ok(apply(s, &t, &patch, ss, ds, scope)))
        .await?;
    match result {
        Ok(changed) => {
            let done = if changed.is_empty() {
                "Nothing changed.".to_string()
            } else {
                format!("Saved: {}.", changed.join(", "))
            };
            Ok(Redirect::to(&format!(
                "{}?done={}",
                task_url(&task, "/settings"),
                url_escape(&done)
            ))
            .into_response())
        }
        Err(e) => match field_error(&e) {
            Some(fe) => Ok(fail(vec![fe])),
            None => Err(AppError::store(e)),
        },
    }
}

/// `GET /api/tasks/{task}/settings`: the task's settings (the shape a `PATCH` takes; no
/// secret, only whether one is stored).
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" https://console/api/tasks/company/settings
/// {"settings":{"source":{"host":"old.example","port":993,"transport":"tls",...},...},
///  "source_secret_stored":false,"destination_secret_stored":true}
/// ```
pub async fn api_get(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let t = state
        .with_store(move |s| s.task(&task))
        .await
        .map_err(AppError::as_json)?;
    Ok(Json(serde_json::json!({
        "settings": t.settings,
        "source_secret_stored": t.source_secret.is_some(),
        "destination_secret_stored": t.destination_secret.is_some(),
    })))
}

/// The query of `PATCH /api/tasks/{task}/settings`.
#[derive(Deserialize, Default)]
pub struct PatchQuery {
    /// `not_started` (default) or `all`.
    pub apply_to: Option<EditScope>,
}

/// Secrets travel in headers, not in the patch (whose shape is the stored settings'):
/// `X-Source-Admin-Password`, `X-Destination-Admin-Password`.
fn secret_header(h: &axum::http::HeaderMap, name: &str) -> Option<Secret> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| Secret::new(v.to_string()))
}

/// `PATCH /api/tasks/{task}/settings?apply_to=not_started|all`: applies a [`SettingsPatch`]
/// (JSON) as `imapmig task edit` does; the admin or master passwords of admin logins go in
/// the headers `X-Source-Admin-Password` / `X-Destination-Admin-Password`.
///
/// ```text
/// curl -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
///   -d '{"limits":{"accounts":20},"schedule":{"interval":"30m"}}' \
///   https://console/api/tasks/company/settings
/// {"changed":["limits.accounts","schedule.interval"]}
/// ```
/// A bad value: `422 {"error":"limits.accounts: ...","kind":"unprocessable","setting":"limits.accounts"}`.
pub async fn api_patch(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(q): Query<PatchQuery>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SettingsPatch>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    let Json(patch) = body.map_err(|e| AppError::json(ErrorKind::BadRequest, e.body_text()))?;
    let ss = secret_header(&headers, "x-source-admin-password");
    let ds = secret_header(&headers, "x-destination-admin-password");
    let scope = q.apply_to.unwrap_or_default();
    let result = state
        .with_store(move |s| Ok(apply(s, &task, &patch, ss, ds, scope)))
        .await
        .map_err(AppError::as_json)?;
    match result {
        Ok(changed) => Ok(Json(serde_json::json!({ "changed": changed })).into_response()),
        Err(BatchError::Task(t)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "error": t.to_string(),
                "kind": ErrorKind::Unprocessable.as_str(),
                "setting": t.setting(),
            })),
        )
            .into_response()),
        Err(e) => Err(AppError::store(e).as_json()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imapmig_core::batch::task::ServerSettings;
    use std::time::Duration;

    fn settings() -> TaskSettings {
        TaskSettings::new(
            ServerSettings::new("old.example"),
            ServerSettings::new("new.example"),
        )
    }

    #[test]
    fn the_form_of_settings_patches_nothing() {
        let s = settings();
        let f = SettingsForm::of(&s);
        let e = f.patch().unwrap();
        let mut after = s.clone();
        e.patch.apply(&mut after).unwrap();
        assert_eq!(after, s);
        assert!(e.source_secret.is_none() && e.destination_secret.is_none());
        assert_eq!(e.scope, EditScope::NotStarted);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut f = SettingsForm::of(&settings());
        f.src_port = "99999".into();
        f.dst_tls = "ssl".into();
        f.since = "01/02/2020".into();
        f.window = "forever".into();
        f.max_accounts = "-1".into();
        f.start_at = "tomorrow".into();
        let errors = f.patch().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        for want in [
            "src_port",
            "dst_tls",
            "since",
            "window",
            "max_accounts",
            "start_at",
        ] {
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn values_become_the_patch() {
        let mut f = SettingsForm::of(&settings());
        f.include = "INBOX\n\n  Archive/*  \n".into();
        f.max_size = "".into();
        f.start_at = "now".into();
        f.interval = "30m".into();
        f.apply_to = "all".into();
        let Edit { patch, scope, .. } = f.patch().unwrap();
        assert_eq!(
            patch.folders.include,
            Some(vec!["INBOX".to_string(), "Archive/*".to_string()])
        );
        assert_eq!(patch.messages.max_size, Some(None));
        assert_eq!(patch.schedule.start_at, Some(None));
        assert_eq!(patch.schedule.interval, Some(Duration::from_secs(1800)));
        assert_eq!(scope, EditScope::All);
    }

    #[test]
    fn store_settings_map_to_form_fields() {
        assert_eq!(field_of("limits.accounts"), "max_accounts");
        assert_eq!(field_of("messages.since"), "since");
        assert_eq!(field_of("something.else"), "");
    }
}
