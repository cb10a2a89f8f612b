//! The report as a download: CSV or JSON, byte for byte what `imapmig status --format csv|json`
//! prints (the same [`report::to_csv`] / [`report::to_json`] over the same
//! [`BatchStore::accounts`](imapmig_core::batch::BatchStore::accounts)).

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use imapmig_core::batch::report;
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::state::AppState;

/// The export's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `imapmig status --format csv`.
    Csv,
    /// `imapmig status --format json` (with its final newline).
    Json,
}

/// The file's name: `<task>-accounts.csv`, with anything but letters, digits, `-`, `_` and
/// `.` made `_` (it goes into a header).
pub fn file_name(task: &str, format: Format) -> String {
    let safe: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match format {
        Format::Csv => format!("{safe}-accounts.csv"),
        Format::Json => format!("{safe}-accounts.json"),
    }
}

async fn export(state: &AppState, task: String, format: Format) -> AppResult<Response> {
    let name = file_name(&task, format);
    let list = state.with_store(move |s| s.accounts(&task)).await?;
    let (body, content_type) = match format {
        Format::Csv => (report::to_csv(&list), "text/csv; charset=utf-8"),
        // The CLI prints the JSON with println!.
        Format::Json => (format!("{}\n", report::to_json(&list)), "application/json"),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `GET /tasks/{task}/export.csv`.
pub async fn csv(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    export(&state, task, Format::Csv).await
}

/// `GET /tasks/{task}/export.json`.
pub async fn json(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    export(&state, task, Format::Json).await
}

/// The query of `GET /api/tasks/{task}/export`.
#[derive(Deserialize)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    pub format: Option<String>,
}

/// `GET /api/tasks/{task}/export?format=csv|json`: every account, as `imapmig status
/// --format csv|json` prints it.
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" 'https://console/api/tasks/company/export?format=csv'
/// id,target,source,status,failure,requested,has_credentials,folders_done,...
/// 1,u00@x.example,u00,synced,,,true,3,3,...
/// ```
pub async fn api_export(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(q): Query<ExportQuery>,
) -> AppResult<Response> {
    let format = match q.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => {
            return Err(AppError::json(
                ErrorKind::BadRequest,
                format!("format {other:?}: expected csv or json"),
            ))
        }
    };
    export(&state, task, format)
        .await
        .map_err(AppError::as_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_in_a_header() {
        assert_eq!(file_name("company", Format::Csv), "company-accounts.csv");
        assert_eq!(file_name("a\"b c", Format::Json), "a_b_c-accounts.json");
    }
}
