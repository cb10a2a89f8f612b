//! Who may do what.
//!
//! * **The admin token**: made at the first start ([`ensure_admin_token`]) and printed once;
//!   the store keeps only its argon2 hash. It logs in to the pages (`POST /login`) and, as
//!   `Authorization: Bearer <token>`, authenticates API calls.
//! * **Sessions**: a logged-in admin gets a cookie `imapmig_session` = `<id>.<HMAC of id>`,
//!   HttpOnly, SameSite=Strict (and Secure over TLS), kept 12 hours after the last request.
//!   The sessions live in this process: a restart logs everyone out; logout ends one at once.
//! * **CSRF**: every request that changes something and carries a cookie must carry the token
//!   derived from that cookie ([`csrf_token`]): form field `csrf`, header `X-CSRF-Token`, or
//!   (multipart uploads, whose fields the guard does not read) query parameter `csrf`. Pages
//!   for people without a session (the self-service page) give them a visitor cookie
//!   (`imapmig_visitor`) first, so their forms are protected the same way. Requests without
//!   any cookie carry no ambient authority and need no CSRF token: they authenticate
//!   themselves (bearer token, invitation link).
//!
//! The tokens, keys, sessions and cookies themselves are [`crate::keys`]'s.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, ErrorKind};
pub use crate::keys::{
    check_admin_token, check_bearer, cookie, csrf_token, ensure_admin_token, random_token,
    set_cookie, token_hash, AdminToken, Sessions, SigningKey, TokenCache, CSRF_HEADER,
    SESSION_COOKIE, SESSION_IDLE, VISITOR_COOKIE,
};
use crate::state::AppState;

/// The admin, proved by a live session or a bearer token; handlers of admin pages and API
/// calls take it as an argument.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The session id, or `None` for a bearer token.
    pub session: Option<String>,
    /// The CSRF token to put in this session's forms (empty for a bearer token).
    pub csrf: String,
}

impl crate::layout::Session for Admin {
    fn logout_csrf(&self) -> Option<&str> {
        self.session.as_ref().map(|_| self.csrf.as_str())
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let api = parts.uri.path().starts_with("/api/");
        if let Some(value) = cookie(&parts.headers, SESSION_COOKIE) {
            if let Some(id) = state.key.open("session", value) {
                if state.sessions.touch(id) {
                    return Ok(Admin {
                        session: Some(id.to_string()),
                        csrf: csrf_token(&state.key, value),
                    });
                }
            }
        }
        if api {
            if let Some(token) = bearer(&parts.headers) {
                let (st, candidate) = (state.clone(), token.to_string());
                let ok = tokio::task::spawn_blocking(move || {
                    check_bearer(&st.store, &st.tokens, &candidate)
                })
                .await
                .map_err(|e| AppError::json(ErrorKind::Internal, e.to_string()).into_response())?
                .map_err(|e| AppError::store(e).as_json().into_response())?;
                if ok {
                    return Ok(Admin {
                        session: None,
                        csrf: String::new(),
                    });
                }
                return Err(AppError::json(
                    ErrorKind::Unauthorized,
                    "the bearer token is not the admin token",
                )
                .into_response());
            }
            return Err(AppError::json(
                ErrorKind::Unauthorized,
                "log in first (POST /api/login) or send Authorization: Bearer <admin token>",
            )
            .into_response());
        }
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        Err(axum::response::Redirect::to(&format!(
            "/login?next={}",
            crate::layout::url_escape(back)
        ))
        .into_response())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The largest form body the CSRF guard reads to find the `csrf` field.
const FORM_LIMIT: usize = 1024 * 1024;

/// The CSRF guard, a middleware on every route: a request that changes something (not GET,
/// HEAD or OPTIONS) and carries the session or visitor cookie must carry that cookie's CSRF
/// token; see the module documentation. Pages with forms for people without a session take
/// [`Visitor`], which gives them their cookie.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let session = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
    let visitor = cookie(req.headers(), VISITOR_COOKIE).map(str::to_string);
    let api = req.uri().path().starts_with("/api/");
    let face = |e: AppError| if api { e.as_json() } else { e };
    if safe {
        return next.run(req).await;
    }
    let Some(anchor) = session.or(visitor) else {
        if api {
            // No cookie, no ambient authority: the request proves itself.
            return next.run(req).await;
        }
        return face(AppError::page(
            ErrorKind::Forbidden,
            "This form has expired or cookies are off: reload the page and try again.",
        ))
        .into_response();
    };
    let want = csrf_token(&state.key, &anchor);
    let from_header = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from_query = req.uri().query().and_then(|q| form_field(q, "csrf"));
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (req, from_form) = if content_type.starts_with("application/x-www-form-urlencoded") {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, FORM_LIMIT).await {
            Ok(b) => b,
            Err(_) => {
                return face(AppError::page(
                    ErrorKind::BadRequest,
                    "the form is too large",
                ))
                .into_response()
            }
        };
        let field = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| form_field(s, "csrf"));
        (Request::from_parts(parts, Body::from(bytes)), field)
    } else {
        (req, None)
    };
    let given = from_header.or(from_form).or(from_query);
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), want.as_bytes()));
    if !ok {
        return face(AppError::page(
            ErrorKind::Forbidden,
            "The form's security token is missing or wrong (CSRF): reload the page and try again.",
        ))
        .into_response();
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A field of a URL-encoded form or query string, decoded.
pub fn form_field(s: &str, name: &str) -> Option<String> {
    s.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (url_decode(k)? == name).then(|| url_decode(v)).flatten()
    })
}

fn url_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The CSRF token for the page being answered: the session's, else the visitor's (pages for
/// people who may have neither take [`Visitor`]).
pub fn page_csrf(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
        .or_else(|| cookie(headers, VISITOR_COOKIE))
        .map(|c| csrf_token(&state.key, c))
}

/// A visitor without a session (the self-service pages): the CSRF token its forms must carry,
/// and the cookie to set when it had none yet.
pub struct Visitor {
    /// The token for this visitor's forms.
    pub csrf: String,
    /// A `Set-Cookie` value, when the visitor had no cookie yet.
    pub new_cookie: Option<HeaderValue>,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(c) = cookie(&parts.headers, SESSION_COOKIE)
            .or_else(|| cookie(&parts.headers, VISITOR_COOKIE))
        {
            return Ok(Visitor {
                csrf: csrf_token(&state.key, c),
                new_cookie: None,
            });
        }
        let v = state.key.signed("visitor", &random_token(16));
        Ok(Visitor {
            csrf: csrf_token(&state.key, &v),
            new_cookie: Some(set_cookie(
                VISITOR_COOKIE,
                &v,
                None,
                state.options.tls.is_some(),
            )),
        })
    }
}

impl Visitor {
    /// Adds the visitor cookie to a response when it is new: handlers of visitor pages must
    /// call this, or the page's forms are refused.
    pub fn attach(&self, mut resp: Response) -> Response {
        if let Some(c) = &self.new_cookie {
            resp.headers_mut().insert(SET_COOKIE, c.clone());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_decode() {
        assert_eq!(
            form_field("a=1&csrf=x%2By+z&b=2", "csrf").as_deref(),
            Some("x+y z")
        );
        assert_eq!(form_field("a=1", "csrf"), None);
        assert_eq!(form_field("csrf=%zz", "csrf"), None);
        assert_eq!(form_field("csrf=%4", "csrf"), None);
    }
}
