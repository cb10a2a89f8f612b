//! `imapmig.Account`: a server and how to log in to it.

use std::path::PathBuf;
use std::time::Duration;

use imapmig_core::config::ServerConfig;
use imapmig_core::engine;
use imapmig_core::imap::{AuthMethod, Security, TlsVerify};
use imapmig_core::net::Protocol;
use imapmig_core::secret::Secret;
use pyo3::prelude::*;

use crate::errors::config_error;

/// A mail server and the login to use on it.
///
/// ``password`` is the password, or the OAuth2 access token with ``auth="xoauth2"`` or
/// ``"oauthbearer"``. It is kept in a type that never prints itself: ``repr()`` shows ``***``,
/// and there is no attribute to read it back.
///
/// ``tls`` is ``"tls"`` (implicit TLS, port 993 by default), ``"starttls"`` (port 143) or
/// ``"none"`` (cleartext: the password travels readable; lab servers only). ``ca_file`` adds
/// trusted CA certificates (PEM); ``insecure=True`` skips certificate checks (lab servers
/// only). ``authzid`` logs in as an administrator (or Dovecot master user) acting for that
/// user. ``timeout`` bounds every single wait, in seconds.
///
/// ``protocol="pop3"`` makes it a POP3 server, a source only (the inbox, never deleting
/// anything; default ports 995 and 110); ``uid_map`` names the file keeping its UIDL table
/// (default: beside the state file).
#[pyclass(frozen, module = "imapmig")]
pub struct Account {
    pub(crate) inner: engine::Account,
    pub(crate) config: ServerConfig,
    pub(crate) protocol: Protocol,
    pub(crate) uid_map: Option<PathBuf>,
    tls: &'static str,
    auth: &'static str,
}

/// `tls=`: Python spells cleartext `"none"`.
fn security(tls: &str) -> PyResult<(Security, &'static str)> {
    match Security::from_name(tls).filter(|_| tls != "cleartext") {
        Some(Security::Cleartext) => Ok((Security::Cleartext, "none")),
        Some(s) => Ok((s, s.name())),
        None => Err(config_error(format!(
            "tls={tls:?}: expected \"tls\", \"starttls\" or \"none\""
        ))),
    }
}

fn auth_method(auth: &str) -> PyResult<(AuthMethod, &'static str)> {
    AuthMethod::from_name(auth)
        .map(|m| (m, m.name()))
        .ok_or_else(|| {
            config_error(format!(
                "auth={auth:?}: expected \"auto\", \"login\", \"plain\", \"xoauth2\" or \
                 \"oauthbearer\""
            ))
        })
}

#[pymethods]
impl Account {
    #[new]
    #[pyo3(signature = (
        host, *, user, password, port=None, tls="tls", auth="auto", authzid=None,
        ca_file=None, insecure=false, timeout=120.0, protocol="imap", uid_map=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        host: String,
        user: String,
        password: String,
        port: Option<u16>,
        tls: &str,
        auth: &str,
        authzid: Option<String>,
        ca_file: Option<PathBuf>,
        insecure: bool,
        timeout: f64,
        protocol: &str,
        uid_map: Option<PathBuf>,
    ) -> PyResult<Self> {
        let secret = Secret::new(password);
        let (security, tls) = security(tls)?;
        let (method, auth) = auth_method(auth)?;
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(config_error(format!(
                "timeout={timeout}: expected a positive number of seconds"
            )));
        }
        let protocol = match protocol {
            "imap" => Protocol::Imap,
            "pop3" => Protocol::Pop3,
            other => {
                return Err(config_error(format!(
                    "protocol={other:?}: expected \"imap\" or \"pop3\""
                )))
            }
        };
        let config = ServerConfig {
            port,
            tls: security,
            auth: method,
            authzid,
            ca_file,
            insecure,
            timeout: Some(Duration::from_secs_f64(timeout)),
            ..ServerConfig::new(host, user, secret)
        };
        Ok(Account {
            inner: config.account(protocol),
            config,
            protocol,
            uid_map,
            tls,
            auth,
        })
    }

    /// The host name or address.
    #[getter]
    fn host(&self) -> &str {
        &self.inner.endpoint.host
    }

    /// The TCP port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.endpoint.port
    }

    /// The login name.
    #[getter]
    fn user(&self) -> &str {
        &self.inner.credentials.user
    }

    /// ``"tls"``, ``"starttls"`` or ``"none"``.
    #[getter]
    fn tls(&self) -> &'static str {
        self.tls
    }

    /// The login mechanism.
    #[getter]
    fn auth(&self) -> &'static str {
        self.auth
    }

    /// The user acted for, if any.
    #[getter]
    fn authzid(&self) -> Option<&str> {
        self.inner.credentials.authzid.as_deref()
    }

    /// The extra CA file, if any.
    #[getter]
    fn ca_file(&self) -> Option<PathBuf> {
        match &self.inner.endpoint.verify {
            TlsVerify::CaFile(p) => Some(p.clone()),
            _ => None,
        }
    }

    /// Whether certificates go unchecked.
    #[getter]
    fn insecure(&self) -> bool {
        self.inner.endpoint.verify == TlsVerify::Insecure
    }

    /// The longest single wait, in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.endpoint.timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        let c = &self.inner.credentials;
        let mut s = format!(
            "Account({:?}, port={}, user={:?}, password={}, tls={:?}",
            self.inner.endpoint.host, self.inner.endpoint.port, c.user, c.secret, self.tls
        );
        if self.auth != "auto" {
            s.push_str(&format!(", auth={:?}", self.auth));
        }
        if let Some(a) = &c.authzid {
            s.push_str(&format!(", authzid={a:?}"));
        }
        s.push(')');
        s
    }
}
