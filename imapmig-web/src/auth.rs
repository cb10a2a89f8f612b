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
//! The signing key is random, made at the first start and kept (sealed like the passwords,
//! when the store has a key) in the store, so several console processes on one store accept
//! each other's CSRF tokens.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use imapmig_core::batch::{BatchError, BatchStore};
use imapmig_core::secret::Secret;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{AppError, ErrorKind};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "imapmig_session";
/// The visitor cookie's name (self-service pages; carries no authority, only ties a form to
/// its CSRF token).
pub const VISITOR_COOKIE: &str = "imapmig_visitor";
/// The CSRF header for API calls authenticated by the session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives after its last request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// The store's names for the console's values.
const ADMIN_HASH: &str = "admin_token_argon2";
const SIGNING_KEY: &str = "signing_key";

/// A new admin token, to be shown once.
pub struct AdminToken(pub Secret);

/// `n` random bytes from the system's generator, URL-safe base64.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token (how invitation links are stored).
pub fn token_hash(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes the admin token if the store has none (or `reset`), storing only its argon2 hash.
/// Returns the new token, to be printed once, or `None` when the store already had one.
pub fn ensure_admin_token(
    store: &BatchStore,
    reset: bool,
) -> Result<Option<AdminToken>, BatchError> {
    if !reset && store.console_value(ADMIN_HASH)?.is_some() {
        return Ok(None);
    }
    let token = Secret::new(format!("imt_{}", random_token(32)));
    let salt = SaltString::encode_b64(random_token(16).as_bytes())
        .map_err(|e| BatchError::Internal(format!("argon2 salt: {e}")))?;
    let hash = Argon2::default()
        .hash_password(token.expose().as_bytes(), &salt)
        .map_err(|e| BatchError::Internal(format!("argon2: {e}")))?
        .to_string();
    store.set_console_value(ADMIN_HASH, &Secret::new(hash))?;
    Ok(Some(AdminToken(token)))
}

/// Whether `candidate` is the admin token (argon2 check against the stored hash).
pub fn check_admin_token(store: &BatchStore, candidate: &str) -> Result<bool, BatchError> {
    let Some(stored) = store.console_value(ADMIN_HASH)? else {
        return Ok(false);
    };
    let Ok(hash) = PasswordHash::new(stored.expose()) else {
        return Err(BatchError::Internal(
            "the stored admin token hash is not an argon2 hash".into(),
        ));
    };
    Ok(Argon2::default()
        .verify_password(candidate.as_bytes(), &hash)
        .is_ok())
}

/// The key that signs cookies and CSRF tokens.
pub struct SigningKey(hmac::Key);

impl SigningKey {
    /// The store's key, made (random) at the first start.
    pub fn load_or_create(store: &BatchStore) -> Result<SigningKey, BatchError> {
        let raw = match store.console_value(SIGNING_KEY)? {
            Some(v) => STANDARD
                .decode(v.expose())
                .map_err(|e| BatchError::Internal(format!("the console's signing key: {e}")))?,
            None => {
                let mut bytes = vec![0u8; 32];
                SystemRandom::new().fill(&mut bytes).map_err(|_| {
                    BatchError::Internal("the system's random generator failed".into())
                })?;
                store.set_console_value(SIGNING_KEY, &Secret::new(STANDARD.encode(&bytes)))?;
                bytes
            }
        };
        Ok(SigningKey(hmac::Key::new(hmac::HMAC_SHA256, &raw)))
    }

    /// A key for tests.
    pub fn from_bytes(raw: &[u8]) -> SigningKey {
        SigningKey(hmac::Key::new(hmac::HMAC_SHA256, raw))
    }

    fn sign(&self, purpose: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(purpose.as_bytes());
        ctx.update(b"\0");
        ctx.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }

    fn verify(&self, purpose: &str, value: &str, sig: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        let mut msg = Vec::with_capacity(purpose.len() + 1 + value.len());
        msg.extend_from_slice(purpose.as_bytes());
        msg.push(0);
        msg.extend_from_slice(value.as_bytes());
        hmac::verify(&self.0, &msg, &raw).is_ok()
    }

    /// A signed cookie value: `<value>.<signature>`.
    pub fn signed(&self, purpose: &str, value: &str) -> String {
        format!("{value}.{}", self.sign(purpose, value))
    }

    /// The value of a signed cookie whose signature holds.
    pub fn open<'a>(&self, purpose: &str, cookie: &'a str) -> Option<&'a str> {
        let (value, sig) = cookie.rsplit_once('.')?;
        self.verify(purpose, value, sig).then_some(value)
    }
}

/// The CSRF token that goes with a cookie value (session or visitor).
pub fn csrf_token(key: &SigningKey, cookie_value: &str) -> String {
    key.sign("csrf", cookie_value)
}

/// Live admin sessions: id → last use.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    /// A new session's id.
    pub fn start(&self) -> String {
        let id = random_token(32);
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, t| now.duration_since(*t) < SESSION_IDLE);
        m.insert(id.clone(), now);
        id
    }

    /// Whether the session is live; refreshes its idle time.
    pub fn touch(&self, id: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(id) {
            Some(t) if t.elapsed() < SESSION_IDLE => {
                *t = Instant::now();
                true
            }
            Some(_) => {
                m.remove(id);
                false
            }
            None => false,
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// Admin tokens already checked (SHA-256 of the token).
#[derive(Default)]
pub struct TokenCache(Mutex<HashSet<String>>);

impl TokenCache {
    fn known(&self, token: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&token_hash(token))
    }

    fn remember(&self, token: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token_hash(token));
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure over TLS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are URL-safe base64")
}

/// The admin, proved by a live session or a bearer token; handlers of admin pages and API
/// calls take it as an argument.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The session id, or `None` for a bearer token.
    pub session: Option<String>,
    /// The CSRF token to put in this session's forms (empty for a bearer token).
    pub csrf: String,
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
                if state.tokens.known(token) {
                    return Ok(Admin {
                        session: None,
                        csrf: String::new(),
                    });
                }
                let (store, candidate) = (state.store.clone(), token.to_string());
                let ok = tokio::task::spawn_blocking(move || check_admin_token(&store, &candidate))
                    .await
                    .map_err(|e| {
                        AppError::json(ErrorKind::Internal, e.to_string()).into_response()
                    })?
                    .map_err(|e| AppError::store(e).as_json().into_response())?;
                if ok {
                    state.tokens.remember(token);
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
        Err(
            axum::response::Redirect::to(&format!("/login?next={}", url_escape(back)))
                .into_response(),
        )
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

/// Percent-escapes a value for a query string.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    fn signed_values_open_only_with_their_key_and_purpose() {
        let k = SigningKey::from_bytes(b"k1");
        let c = k.signed("session", "abc");
        assert_eq!(k.open("session", &c), Some("abc"));
        assert_eq!(k.open("visitor", &c), None);
        assert_eq!(SigningKey::from_bytes(b"k2").open("session", &c), None);
        assert_eq!(k.open("session", "abc.forged"), None);
        assert_eq!(k.open("session", "abc"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_cookie() {
        let k = SigningKey::from_bytes(b"k");
        assert_ne!(csrf_token(&k, "a"), csrf_token(&k, "b"));
        assert_eq!(csrf_token(&k, "a"), csrf_token(&k, "a"));
    }

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

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; imapmig_session=s.t"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("s.t"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn tokens_are_random_and_hashes_hex() {
        assert_ne!(random_token(16), random_token(16));
        assert_eq!(token_hash("x").len(), 64);
    }
}
