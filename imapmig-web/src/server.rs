//! Listening and routing: [`serve`] answers on a socket (plain HTTP, or TLS with a certificate
//! and key) until cancelled; [`router`] puts the pages, the API and the layers together. The
//! login and logout routes live here, beside the guard they rely on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use imapmig_core::batch::BatchStore;
use maud::html;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::{
    check_admin_token, csrf_guard, csrf_token, set_cookie, Admin, SigningKey, Visitor,
    SESSION_COOKIE, SESSION_IDLE,
};
use crate::error::{AppError, AppResult, ErrorKind, WebError};
use crate::layout;
pub use crate::options::{ServeOptions, TlsFiles};
use crate::state::{AppState, RateLimiter};

/// Login attempts allowed per client address and minute.
const LOGIN_ATTEMPTS: usize = 10;

/// The largest request body (a CSV of accounts).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The router with every page, the API and the layers.
pub fn router(state: AppState) -> Router {
    let csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/api/login", post(api_login))
        .route("/api/logout", post(api_logout))
        .route("/assets/console.css", get(layout::css))
        .route("/assets/console.js", get(layout::js))
        .route("/health", get(|| async { "ok" }))
        .merge(crate::admin::routes())
        .merge(crate::selfservice::routes())
        .fallback(|uri: axum::http::Uri| async move {
            let e = AppError::page(ErrorKind::NotFound, "There is no such page.");
            if uri.path().starts_with("/api/") {
                e.as_json()
            } else {
                e
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf_guard,
        ))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            // Invitation links carry their token in the path: never send it on.
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// Serves the console on `options.listen` until `cancel`, running the schedulers too unless
/// `options.run_schedulers` is off. `ready` gets the address actually listened on (port 0
/// picks one).
pub async fn serve(
    store: Arc<BatchStore>,
    options: ServeOptions,
    cancel: CancellationToken,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<(), WebError> {
    let key = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || SigningKey::load_or_create(&s))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))??
    };
    let tls = match &options.tls {
        Some(files) => Some(tls_acceptor(files)?),
        None => None,
    };
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| WebError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WebError::Listen {
        addr: options.listen,
        source,
    })?;
    let schedulers = options
        .run_schedulers
        .then(|| tokio::spawn(crate::runner::run_schedulers(store.clone(), cancel.clone())));
    let state = AppState::new(store, options, key);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    ready(addr);
    match tls {
        None => {
            let c = cancel.clone();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await
                .map_err(|e| WebError::Internal(format!("serving: {e}")))?;
        }
        Some(acceptor) => serve_tls(listener, acceptor, app, cancel.clone()).await,
    }
    if let Some(s) = schedulers {
        let _ = s.await;
    }
    Ok(())
}

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, WebError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| WebError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(&files.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebError::Tls(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(WebError::Tls(format!(
            "{}: no certificate in the file",
            files.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut read(&files.key)?.as_slice())
        .map_err(|e| WebError::Tls(format!("{}: {e}", files.key.display())))?
        .ok_or_else(|| {
            WebError::Tls(format!(
                "{}: no private key in the file",
                files.key.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Tls(format!("the certificate and key do not go together: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mut app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    cancel: CancellationToken,
) {
    use tower::Service as _;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(svc) = app.call(peer).await;
        let acceptor = acceptor.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let hyper_svc = hyper_util::service::TowerToHyperService::new(svc);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// `GET /`: the task list for an admin, the login page otherwise.
async fn home(admin: Result<Admin, Response>) -> Redirect {
    match admin {
        Ok(_) => Redirect::to("/tasks"),
        Err(_) => Redirect::to("/login"),
    }
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path on this site may be the place to go after logging in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/tasks",
    }
}

fn login_form(visitor: &Visitor, next: &str, problem: Option<&str>) -> maud::Markup {
    layout::bare(
        "Log in",
        html! {
            @if let Some(p) = problem { p.error id="login-error" { (p) } }
            form.box method="post" action="/login" {
                input type="hidden" name="csrf" value=(visitor.csrf);
                input type="hidden" name="next" value=(next);
                p {
                    label for="token" { "Admin token" } br;
                    input type="password" id="token" name="token" autocomplete="current-password" required size="48";
                }
                p.muted { "The token was printed once, when " code { "imapmig serve" } " first started. "
                    "A new one: " code { "imapmig serve --reset-admin-token" } "." }
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

async fn login_page(visitor: Visitor, Query(q): Query<Next>) -> Response {
    let next = local_path(q.next.as_deref()).to_string();
    visitor.attach(login_form(&visitor, &next, None).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks a token, rate-limited per client address; on success starts a session and returns
/// its `Set-Cookie` value and CSRF token.
async fn start_session(
    state: &AppState,
    peer: SocketAddr,
    token: String,
) -> AppResult<Option<(HeaderValue, String)>> {
    if !state.attempts.allow(
        &RateLimiter::client("login", peer.ip()),
        LOGIN_ATTEMPTS,
        Duration::from_secs(60),
    ) {
        return Err(AppError::page(
            ErrorKind::TooManyRequests,
            "Too many login attempts from this address: wait a minute.",
        ));
    }
    let ok = state
        .with_store(move |s| check_admin_token(s, &token))
        .await?;
    if !ok {
        tracing::warn!(client = %peer.ip(), "admin login refused: wrong token");
        return Ok(None);
    }
    let id = state.sessions.start();
    let value = state.key.signed("session", &id);
    let cookie = set_cookie(
        SESSION_COOKIE,
        &value,
        Some(SESSION_IDLE),
        state.options.tls.is_some(),
    );
    Ok(Some((cookie, csrf_token(&state.key, &value))))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    visitor: Visitor,
    Form(f): Form<LoginForm>,
) -> AppResult<Response> {
    let next = local_path(f.next.as_deref()).to_string();
    match start_session(&state, peer, f.token).await? {
        Some((cookie, _)) => {
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(SET_COOKIE, cookie);
            Ok(r)
        }
        None => {
            let mut r =
                login_form(&visitor, &next, Some("That is not the admin token.")).into_response();
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(r)
        }
    }
}

fn end_session(state: &AppState, admin: &Admin) -> HeaderValue {
    if let Some(id) = &admin.session {
        state.sessions.end(id);
    }
    set_cookie(
        SESSION_COOKIE,
        "",
        Some(Duration::ZERO),
        state.options.tls.is_some(),
    )
}

async fn logout(State(state): State<AppState>, admin: Admin) -> Response {
    let cookie = end_session(&state, &admin);
    let mut r = (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response();
    r.headers_mut().insert(SET_COOKIE, cookie);
    r
}

#[derive(Deserialize)]
struct ApiLogin {
    token: String,
}

/// `POST /api/login {"token": ...}`: a session cookie, and the CSRF token its calls that
/// change something must send as `X-CSRF-Token`.
async fn api_login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<ApiLogin>,
) -> AppResult<Response> {
    match start_session(&state, peer, body.token)
        .await
        .map_err(AppError::as_json)?
    {
        Some((cookie, csrf)) => {
            let mut r = Json(serde_json::json!({ "csrf": csrf })).into_response();
            r.headers_mut().insert(SET_COOKIE, cookie);
            Ok(r)
        }
        None => Err(AppError::json(
            ErrorKind::Unauthorized,
            "that is not the admin token",
        )),
    }
}

async fn api_logout(State(state): State<AppState>, admin: Admin) -> Response {
    let cookie = end_session(&state, &admin);
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(SET_COOKIE, cookie);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/tasks/t")), "/tasks/t");
        assert_eq!(local_path(Some("//evil.example")), "/tasks");
        assert_eq!(local_path(Some("https://evil.example")), "/tasks");
        assert_eq!(local_path(Some("/\\evil")), "/tasks");
        assert_eq!(local_path(None), "/tasks");
    }
}
