//! The console's secrets and the values derived from them, none of which needs a request:
//! the admin token (made at the first start, printed once, kept only as its argon2 hash), the
//! random key that signs cookies and CSRF tokens (kept in the store, sealed like the passwords
//! when the store has a key, so several console processes on one store accept each other's
//! tokens), random tokens and their hashes, the live sessions, and cookies. The `auth` module
//! uses them to decide who may do what.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use imapmig_core::batch::{BatchError, BatchStore};
use imapmig_core::secret::Secret;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

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
    match store.console_value(ADMIN_HASH)? {
        Some(stored) => verify(&stored, candidate),
        None => Ok(false),
    }
}

/// [`check_admin_token`] for a bearer token on every API call: a token already checked
/// against the hash the store holds now is not checked with argon2 again. The hash is read
/// each time, so a token reset by any process (`--reset-admin-token`) stops working here at
/// once.
pub fn check_bearer(
    store: &BatchStore,
    cache: &TokenCache,
    candidate: &str,
) -> Result<bool, BatchError> {
    let Some(stored) = store.console_value(ADMIN_HASH)? else {
        return Ok(false);
    };
    if cache.known(candidate, stored.expose()) {
        return Ok(true);
    }
    let ok = verify(&stored, candidate)?;
    if ok {
        cache.remember(candidate, stored.expose());
    }
    Ok(ok)
}

fn verify(stored: &Secret, candidate: &str) -> Result<bool, BatchError> {
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

/// Admin tokens already checked: SHA-256 of the token → the stored hash it was checked against.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, String>>);

impl TokenCache {
    /// Whether this token was checked against this stored hash already.
    fn known(&self, token: &str, stored: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token_hash(token))
            .is_some_and(|h| h == stored)
    }

    /// Remembers a token that was checked against `stored`.
    fn remember(&self, token: &str, stored: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Only the current hash's tokens are worth keeping.
        m.retain(|_, h| h == stored);
        m.insert(token_hash(token), stored.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_stops_working_when_the_token_is_reset_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = BatchStore::open(&path).unwrap();
        let first = ensure_admin_token(&store, false).unwrap().unwrap().0;
        let cache = TokenCache::default();
        assert!(check_bearer(&store, &cache, first.expose()).unwrap());
        assert!(cache.known(
            first.expose(),
            store.console_value(ADMIN_HASH).unwrap().unwrap().expose()
        ));
        assert!(check_bearer(&store, &cache, first.expose()).unwrap());
        assert!(!check_bearer(&store, &cache, "imt_guess").unwrap());
        // Another process resets the token on the same file.
        let other = BatchStore::open(&path).unwrap();
        let second = ensure_admin_token(&other, true).unwrap().unwrap().0;
        assert!(!check_bearer(&store, &cache, first.expose()).unwrap());
        assert!(check_bearer(&store, &cache, second.expose()).unwrap());
        assert!(ensure_admin_token(&store, false).unwrap().is_none());
    }

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
