//! CSV import: an upload (multipart on the page, the CSV as the body in the API), read with
//! the same reader and import the CLI's `accounts import` uses
//! ([`read_accounts`] + [`BatchStore::import_rows`]), so both layouts are accepted and nothing
//! is imported while any row is bad unless the admin asks to skip bad rows. Every bad row is
//! listed with its line. The file is read from memory and named by its uploaded name in
//! messages; no password in it is ever shown.

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use imapmig_core::batch::import::{read_accounts, RowError};
use imapmig_core::batch::{BatchError, BatchStore, ImportOptions, ImportReport};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::words::task_url;
use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::url_escape;
use crate::layout::{admin_page, Tab};
use crate::state::AppState;

/// An import's outcome, as the API returns it.
#[derive(Clone, Debug, Serialize)]
pub struct ImportJson {
    /// `target_source_password` or `microsoft365`.
    pub layout: imapmig_core::batch::import::CsvLayout,
    /// Whether the file had a header row.
    pub header: bool,
    /// New accounts.
    pub added: u64,
    /// Existing accounts whose credentials were updated.
    pub updated: u64,
    /// New accounts waiting for credentials.
    pub waiting_for_credentials: u64,
    /// Bad rows left out (with `skip_bad_rows`).
    pub skipped: Vec<BadRow>,
    /// Things worth knowing about the file.
    pub notes: Vec<String>,
}

/// A bad row: its line and what is wrong, in words (never a password).
#[derive(Clone, Debug, Serialize)]
pub struct BadRow {
    /// The line, from 1.
    pub line: u64,
    /// What is wrong.
    pub problem: String,
}

fn bad_rows(errors: &[RowError]) -> Vec<BadRow> {
    errors
        .iter()
        .map(|e| BadRow {
            line: e.line,
            problem: e.problem.to_string(),
        })
        .collect()
}

impl From<ImportReport> for ImportJson {
    fn from(r: ImportReport) -> Self {
        ImportJson {
            layout: r.layout,
            header: r.header,
            added: r.added,
            updated: r.updated,
            waiting_for_credentials: r.waiting_for_credentials,
            skipped: bad_rows(&r.skipped),
            notes: r.notes,
        }
    }
}

/// Reads and imports a CSV held in memory; `name` names it in messages.
pub fn import_bytes(
    store: &BatchStore,
    task: &str,
    name: &str,
    bytes: &[u8],
    options: ImportOptions,
) -> Result<ImportReport, BatchError> {
    let t = store.task(task)?;
    let file = PathBuf::from(name);
    let parsed = read_accounts(
        &file,
        bytes,
        t.settings.shared_targets_allowed(),
        t.settings.destination.auth.per_account(),
    )?;
    store.import_rows(task, &file, parsed, options)
}

/// The name an uploaded file is called by: its own name without any directory, or
/// `upload.csv`.
pub fn upload_name(given: Option<&str>) -> String {
    given
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("upload.csv")
        .to_string()
}

fn form(task: &str, admin: &Admin) -> Markup {
    html! {
        form.box id="import-form" method="post" enctype="multipart/form-data"
            action={ (task_url(task, "/import")) "?csrf=" (url_escape(&admin.csrf)) } {
            p {
                label for="csv" { "CSV file " }
                input type="file" id="csv" name="csv" accept=".csv,text/csv,text/plain" required;
            }
            p {
                input type="checkbox" id="skip_bad_rows" name="skip_bad_rows" value="1";
                label for="skip_bad_rows" { " Import the good rows even when some are bad (the bad ones are listed)" }
            }
            p {
                input type="checkbox" id="update_existing" name="update_existing" value="1";
                label for="update_existing" { " Rows already in the task update their passwords" }
            }
            button type="submit" id="import" { "Import" }
        }
    }
}

fn layouts() -> Markup {
    html! {
        h2 { "What the file may look like" }
        ul {
            li { code { "target,source,password[,target_password]" } ", with or without a header row. "
                "The source may be " code { "admin/user" } " or " code { "user*master" } ". "
                "An empty password: the account waits for credentials." }
            li { "Microsoft 365's migration batch file " code { "EmailAddress,UserName,Password" } " (header required)." }
        }
        p.muted { "Commas, semicolons or tabs; UTF-8 (a BOM is fine). Nothing is imported while any row is bad, unless you tick the first box." }
    }
}

/// `GET /tasks/{task}/import`.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Markup> {
    let t = task.clone();
    state.with_store(move |s| s.task(&t)).await?;
    let body = html! {
        h1 { "Import accounts" }
        (form(&task, &admin))
        (layouts())
    };
    Ok(admin_page("Import", &admin, Some(&task), Tab::Import, body))
}

fn flag(v: &str) -> bool {
    !matches!(v.trim(), "" | "0" | "false" | "off" | "no")
}

fn bad_rows_list(rows: &[BadRow]) -> Markup {
    html! {
        ul.bad-rows {
            @for r in rows {
                li.bad-row data-line=(r.line) { "Line " (r.line) ": " (r.problem) }
            }
        }
    }
}

/// `POST /tasks/{task}/import` (multipart: `csv`, `skip_bad_rows`, `update_existing`; the
/// CSRF token in the query).
pub async fn upload(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let bad = |m: String| AppError::page(ErrorKind::BadRequest, m);
    let mut file: Option<(String, Bytes)> = None;
    let mut options = ImportOptions::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload could not be read: {e}")))?
    {
        match field.name().unwrap_or("") {
            "csv" => {
                let name = upload_name(field.file_name());
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("the upload could not be read: {e}")))?;
                file = Some((name, data));
            }
            "skip_bad_rows" => {
                options.skip_bad_rows = flag(&field.text().await.unwrap_or_default())
            }
            "update_existing" => {
                options.update_existing = flag(&field.text().await.unwrap_or_default())
            }
            _ => {}
        }
    }
    let Some((name, data)) = file else {
        return Err(bad("choose a CSV file to import".into()));
    };
    let (t, n) = (task.clone(), name.clone());
    let result = state
        .with_store(move |s| Ok(import_bytes(s, &t, &n, &data, options)))
        .await?;
    let (status, body) = match result {
        Ok(r) => {
            let r = ImportJson::from(r);
            (
                StatusCode::OK,
                html! {
                    h1 { "Import accounts" }
                    div.box id="import-result" data-added=(r.added) data-updated=(r.updated)
                        data-waiting=(r.waiting_for_credentials) data-skipped=(r.skipped.len()) {
                        p.ok { "Imported " (name) ": " strong { (r.added) } " account(s) added ("
                            (r.waiting_for_credentials) " waiting for credentials), "
                            (r.updated) " updated, " (r.skipped.len()) " bad row(s) skipped." }
                        @if !r.skipped.is_empty() { (bad_rows_list(&r.skipped)) }
                        @for n in &r.notes { p.muted { "Note: " (n) } }
                        p { a href=(task_url(&task, "/accounts")) { "See the accounts" } }
                    }
                    (form(&task, &admin))
                },
            )
        }
        Err(BatchError::InvalidRows { errors, .. }) => {
            let rows = bad_rows(&errors);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {
                    h1 { "Import accounts" }
                    div.box id="import-errors" {
                        p.error { (name) " has " (rows.len()) " bad row(s); nothing was imported. "
                            "Fix them and upload the file again, or tick “import the good rows”." }
                        (bad_rows_list(&rows))
                    }
                    (form(&task, &admin))
                    (layouts())
                },
            )
        }
        Err(e @ BatchError::Csv(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html! {
                h1 { "Import accounts" }
                div.box id="import-errors" { p.error { (e.to_string()) "; nothing was imported." } }
                (form(&task, &admin))
                (layouts())
            },
        ),
        Err(e) => return Err(AppError::store(e)),
    };
    Ok((
        status,
        admin_page("Import", &admin, Some(&task), Tab::Import, body),
    )
        .into_response())
}

/// The query of `POST /api/tasks/{task}/import`.
#[derive(Deserialize, Default)]
pub struct ImportQuery {
    /// Import the good rows even when some are bad.
    pub skip_bad_rows: Option<String>,
    /// Rows already in the task update their credentials.
    pub update_existing: Option<String>,
    /// The name the file is called by in messages (default `upload.csv`).
    pub filename: Option<String>,
}

/// `POST /api/tasks/{task}/import?skip_bad_rows=&update_existing=`: the body is the CSV.
///
/// ```text
/// curl -X POST -H "Authorization: Bearer $TOKEN" --data-binary @accounts.csv \
///   'https://console/api/tasks/company/import?filename=accounts.csv'
/// {"layout":"target_source_password","header":true,"added":50,"updated":0,
///  "waiting_for_credentials":1,"skipped":[],"notes":[]}
/// ```
/// With a bad row and without `skip_bad_rows`, nothing is imported:
/// ```text
/// 422 {"error":"accounts.csv has 1 bad row(s); nothing was imported","kind":"unprocessable",
///      "rows":[{"line":3,"problem":"target \"bob\" is not an e-mail address"}]}
/// ```
pub async fn api_import(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> AppResult<Response> {
    let options = ImportOptions {
        skip_bad_rows: q.skip_bad_rows.as_deref().is_some_and(flag),
        update_existing: q.update_existing.as_deref().is_some_and(flag),
    };
    let name = upload_name(q.filename.as_deref());
    let n = name.clone();
    let result = state
        .with_store(move |s| Ok(import_bytes(s, &task, &n, &body, options)))
        .await
        .map_err(AppError::as_json)?;
    match result {
        Ok(r) => Ok(Json(ImportJson::from(r)).into_response()),
        Err(BatchError::InvalidRows { errors, .. }) => {
            let rows = bad_rows(&errors);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({
                    "error": format!("{name} has {} bad row(s); nothing was imported", rows.len()),
                    "kind": ErrorKind::Unprocessable.as_str(),
                    "rows": rows,
                })),
            )
                .into_response())
        }
        Err(e @ BatchError::Csv(_)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "error": e.to_string(),
                "kind": ErrorKind::Unprocessable.as_str(),
                "rows": [],
            })),
        )
            .into_response()),
        Err(e) => Err(AppError::store(e).as_json()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_named_without_their_directory() {
        assert_eq!(
            upload_name(Some("C:\\Users\\me\\accounts.csv")),
            "accounts.csv"
        );
        assert_eq!(upload_name(Some("/tmp/a.csv")), "a.csv");
        assert_eq!(upload_name(Some("")), "upload.csv");
        assert_eq!(upload_name(None), "upload.csv");
    }

    #[test]
    fn checkbox_values() {
        assert!(flag("1") && flag("on") && flag("true"));
        assert!(!flag("") && !flag("0") && !flag("false"));
    }
}
