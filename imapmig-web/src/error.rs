//! Failures: [`WebError`] for starting the console, [`AppError`] for one request. An
//! [`AppError`] becomes a page for a browser and `{"error": ..., "kind": ...}` for the API, with
//! the HTTP status its kind calls for. Neither ever holds a secret: store errors name tasks,
//! accounts and files only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imapmig_core::batch::{BatchError, BatchErrorKind};

/// Why the console could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The batch store failed.
    #[error(transparent)]
    Store(#[from] BatchError),
    /// The address could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Something that cannot happen did.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of request failure, which decides the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or its values are invalid.
    BadRequest,
    /// 401: no valid session or token.
    Unauthorized,
    /// 403: a missing or wrong CSRF token, or a refused link.
    Forbidden,
    /// 404: no such task, account or page.
    NotFound,
    /// 409: the account's status, or another process, does not allow it now.
    Conflict,
    /// 410: the link has expired or was used.
    Gone,
    /// 422: the content (a CSV file, settings) has errors.
    Unprocessable,
    /// 429: too many attempts.
    TooManyRequests,
    /// 500: the store failed, or a bug.
    Internal,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The name in JSON answers: `bad_request`, `unauthorized`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Gone => "gone",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::Internal => "internal",
        }
    }
}

/// How an error is shown: as a page or as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// An HTML page.
    Page,
    /// `{"error": ..., "kind": ...}`.
    Json,
}

/// One request's failure.
#[derive(Debug)]
pub struct AppError {
    /// What kind.
    pub kind: ErrorKind,
    /// In words, for the person who asked.
    pub message: String,
    /// As a page or as JSON.
    pub face: Face,
}

impl AppError {
    /// A failure shown as a page.
    pub fn page(kind: ErrorKind, message: impl Into<String>) -> AppError {
        AppError {
            kind,
            message: message.into(),
            face: Face::Page,
        }
    }

    /// A failure shown as JSON.
    pub fn json(kind: ErrorKind, message: impl Into<String>) -> AppError {
        AppError {
            kind,
            message: message.into(),
            face: Face::Json,
        }
    }

    /// The same failure, shown as JSON.
    pub fn as_json(mut self) -> AppError {
        self.face = Face::Json;
        self
    }

    /// A store failure, shown as a page.
    pub fn store(e: BatchError) -> AppError {
        let kind = match e.kind() {
            BatchErrorKind::Settings => ErrorKind::Unprocessable,
            BatchErrorKind::Csv => ErrorKind::Unprocessable,
            BatchErrorKind::UnknownTask | BatchErrorKind::UnknownAccount => ErrorKind::NotFound,
            BatchErrorKind::TaskExists | BatchErrorKind::Locked | BatchErrorKind::NotAllowed => {
                ErrorKind::Conflict
            }
            BatchErrorKind::Store | BatchErrorKind::StateKey | BatchErrorKind::Internal => {
                ErrorKind::Internal
            }
            #[allow(unreachable_patterns)]
            _ => ErrorKind::Internal,
        };
        if kind == ErrorKind::Internal {
            tracing::error!(error = %e, "store failure");
        }
        AppError::page(kind, e.to_string())
    }
}

impl From<BatchError> for AppError {
    fn from(e: BatchError) -> Self {
        AppError::store(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        match self.face {
            Face::Json => (
                status,
                axum::Json(serde_json::json!({
                    "error": self.message,
                    "kind": self.kind.as_str(),
                })),
            )
                .into_response(),
            Face::Page => (
                status,
                crate::layout::bare(
                    status.canonical_reason().unwrap_or("Error"),
                    maud::html! {
                        p.error data-kind=(self.kind.as_str()) { (self.message) }
                        p { a href="/" { "Back to the console" } }
                    },
                ),
            )
                .into_response(),
        }
    }
}

/// A handler's result.
pub type AppResult<T> = Result<T, AppError>;
