//! What the server can do and who we are to it: CAPABILITY, LOGIN, AUTHENTICATE (PLAIN,
//! XOAUTH2, OAUTHBEARER) and ID.
//!
//! A secret must never reach a protocol trace or outlive its command: every line that carries
//! one is sent redacted, from a buffer zeroed after use. A login refused because of load or
//! connection limits must never be reported as a wrong password: it is kept as a refusal with
//! its code, which retries treat as transient.

use std::collections::{HashMap, HashSet};

use imap_proto::Response;

use super::codec::quote;
use super::{AuthMethod, Credentials, Session};
use crate::imap::error::{ImapError, Result};
use crate::sasl;
use crate::secret::Secret;
use crate::trace::render::REDACTED;
use crate::wire::response::Parsed;
use crate::wire::{ResponseCode, StatusKind, StatusResponse};

/// What the server can do, from CAPABILITY.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    atoms: HashSet<String>,
}

impl Capabilities {
    pub(super) fn from_atoms<I: IntoIterator<Item = S>, S: AsRef<str>>(atoms: I) -> Capabilities {
        Capabilities {
            atoms: atoms
                .into_iter()
                .map(|a| a.as_ref().to_ascii_uppercase())
                .collect(),
        }
    }

    /// Whether the server announced this capability (case-insensitive), e.g. `UIDPLUS`.
    pub fn has(&self, name: &str) -> bool {
        self.atoms.contains(&name.to_ascii_uppercase())
    }

    /// Whether `AUTH=<mech>` was announced.
    pub fn has_auth(&self, mech: &str) -> bool {
        self.has(&format!("AUTH={mech}"))
    }

    /// The largest message the server accepts, from `APPENDLIMIT=n` (RFC 7889).
    pub fn append_limit(&self) -> Option<u64> {
        self.atoms
            .iter()
            .find_map(|a| a.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }

    /// All announced capabilities, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.atoms.iter().cloned().collect();
        v.sort();
        v
    }
}

impl Session {
    /// Asks for the capabilities again.
    pub async fn capability(&mut self) -> Result<&Capabilities> {
        self.simple("CAPABILITY", b"CAPABILITY", None).await?;
        Ok(&self.caps)
    }

    /// Logs in with the given credentials.
    pub async fn login(&mut self, creds: &Credentials) -> Result<()> {
        if !self.conn.is_tls() && self.caps.has("LOGINDISABLED") {
            return Err(ImapError::CleartextRefused {
                host: self.conn.host.clone(),
            });
        }
        let method = match creds.method {
            AuthMethod::Auto => {
                if creds.authzid.is_some() || self.caps.has_auth("PLAIN") {
                    AuthMethod::Plain
                } else {
                    AuthMethod::Login
                }
            }
            m => m,
        };
        let sasl_err = |e: crate::sasl::SaslError| ImapError::Sasl(e.to_string());
        let result = match method {
            AuthMethod::Login | AuthMethod::Auto => {
                if creds.authzid.is_some() {
                    return Err(ImapError::Sasl(
                        "acting for another user needs AUTHENTICATE PLAIN, not LOGIN".into(),
                    ));
                }
                self.login_command(creds).await
            }
            AuthMethod::Plain => {
                let ir = sasl::plain(creds.authzid.as_deref(), &creds.user, &creds.secret)
                    .map_err(sasl_err)?;
                self.authenticate("PLAIN", &ir).await
            }
            AuthMethod::XOAuth2 => {
                let ir = sasl::xoauth2(&creds.user, &creds.secret).map_err(sasl_err)?;
                self.authenticate("XOAUTH2", &ir).await
            }
            AuthMethod::OAuthBearer => {
                let ir = sasl::oauthbearer(&creds.user, &self.conn.host, self.port, &creds.secret)
                    .map_err(sasl_err)?;
                self.authenticate("OAUTHBEARER", &ir).await
            }
        };
        match result {
            Ok(status) => {
                if let Some(ResponseCode::Capability(c)) = &status.code {
                    self.caps = Capabilities::from_atoms(c);
                } else {
                    // Servers may announce more after login; ask when they did not say.
                    self.capability().await?;
                }
                self.user = Some(creds.mailbox_user().to_string());
                tracing::debug!(host = %self.conn.host, user = %creds.user, ?method, "logged in");
                Ok(())
            }
            // A login refused because of load or connection limits is not a wrong password:
            // it is kept as a refusal with its code, which retries treat as transient.
            Err(AuthFailure::Refused(status))
                if matches!(
                    status.code,
                    Some(ResponseCode::Limit) | Some(ResponseCode::Unavailable)
                ) || crate::imap::error::is_throttle_text(&status.text) =>
            {
                Err(self.refused("LOGIN", None, status))
            }
            Err(AuthFailure::Refused(status)) => {
                tracing::debug!(host = %self.conn.host, user = %creds.user, ?method, "login refused");
                Err(ImapError::AuthenticationFailed {
                    host: self.conn.host.clone(),
                    user: creds.user.clone(),
                    server_says: status.describe(),
                })
            }
            Err(AuthFailure::Other(e)) => Err(e),
        }
    }

    async fn login_command(&mut self, creds: &Credentials) -> Result<StatusResponse, AuthFailure> {
        let password = creds.secret.expose();
        if password.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) || !password.is_ascii() {
            return Err(AuthFailure::Other(ImapError::Sasl(
                "the password holds characters LOGIN cannot carry; use AUTHENTICATE PLAIN".into(),
            )));
        }
        let user = quote(&creds.user, "user name").map_err(AuthFailure::Other)?;
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(64));
        line.extend_from_slice(b"LOGIN ");
        line.extend_from_slice(user.as_bytes());
        line.extend_from_slice(b" \"");
        for b in password.bytes() {
            if b == b'"' || b == b'\\' {
                line.push(b'\\');
            }
            line.push(b);
        }
        line.push(b'"');
        let shown = format!("LOGIN {user} {REDACTED}");
        let tag = self
            .conn
            .send_redacted(&line, &shown)
            .await
            .map_err(AuthFailure::Other)?;
        let status = self
            .conn
            .wait(&tag, |_| {})
            .await
            .map_err(AuthFailure::Other)?;
        match status.kind {
            StatusKind::Ok => Ok(status),
            _ => Err(AuthFailure::Refused(status)),
        }
    }

    async fn authenticate(
        &mut self,
        mech: &str,
        initial: &Secret,
    ) -> Result<StatusResponse, AuthFailure> {
        if !self.caps.has_auth(mech) {
            return Err(AuthFailure::Other(ImapError::MissingCapability {
                host: self.conn.host.clone(),
                capability: match mech {
                    "PLAIN" => "AUTH=PLAIN",
                    "XOAUTH2" => "AUTH=XOAUTH2",
                    _ => "AUTH=OAUTHBEARER",
                },
                needed_for: "log in with this method",
            }));
        }
        let other = AuthFailure::Other;
        let sasl_ir = self.caps.has("SASL-IR");
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(128));
        line.extend_from_slice(b"AUTHENTICATE ");
        line.extend_from_slice(mech.as_bytes());
        let mut shown = format!("AUTHENTICATE {mech}");
        if sasl_ir {
            line.push(b' ');
            line.extend_from_slice(initial.expose().as_bytes());
            shown.push(' ');
            shown.push_str(REDACTED);
        }
        let tag = self
            .conn
            .send_redacted(&line, &shown)
            .await
            .map_err(other)?;
        let mut sent_initial = sasl_ir;
        let mut challenge_error = None;
        loop {
            match self
                .conn
                .wait_continuation(&tag, |_| {})
                .await
                .map_err(other)?
            {
                Ok(challenge) => {
                    if !sent_initial {
                        let mut resp = zeroize::Zeroizing::new(Vec::new());
                        resp.extend_from_slice(initial.expose().as_bytes());
                        resp.extend_from_slice(b"\r\n");
                        self.conn
                            .write_redacted(&resp, REDACTED)
                            .await
                            .map_err(other)?;
                        sent_initial = true;
                    } else {
                        // A challenge after our response is an error report (XOAUTH2 and
                        // OAUTHBEARER send JSON); it must be answered with an empty line or
                        // the server waits forever.
                        challenge_error = sasl::decode_challenge_error(&challenge);
                        self.conn.write(b"\r\n").await.map_err(other)?;
                    }
                    self.conn.flush().await.map_err(other)?;
                }
                Err(status) => {
                    return match status.kind {
                        StatusKind::Ok => Ok(status),
                        _ => {
                            let mut status = status;
                            if let Some(e) = challenge_error {
                                status.text = format!("{} ({e})", status.text);
                            }
                            Err(AuthFailure::Refused(status))
                        }
                    };
                }
            }
        }
    }

    /// Sends ID (RFC 2971) naming this client, when the server supports it; returns what the
    /// server says about itself.
    pub async fn id(&mut self) -> Result<Option<HashMap<String, String>>> {
        if !self.caps.has("ID") {
            return Ok(None);
        }
        self.ensure_idle_pipeline().await?;
        let cmd = format!(
            "ID (\"name\" \"imapmig\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        );
        let tag = self.conn.send(cmd.as_bytes()).await?;
        let mut found = None;
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Data(Response::Id(Some(map))) = p {
                    found = Some(
                        map.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    );
                }
            })
            .await?;
        self.check("ID", None, status)?;
        Ok(found)
    }
}

enum AuthFailure {
    Refused(StatusResponse),
    Other(ImapError),
}
