//! `imapmig.Account`: a server and how to log in to it.

use std::path::PathBuf;
use std::time::Duration;

use imapmig_core::engine;
use imapmig_core::imap::{AuthMethod, Credentials, Endpoint, Security, TlsVerify};
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
#[pyclass(frozen, module = "imapmig")]
pub struct Account {
    pub(crate) inner: engine::Account,
    tls: &'static str,
    auth: &'static str,
}

fn security(tls: &str) -> PyResult<(Security, &'static str)> {
    Ok(match tls {
        "tls" => (Security::Tls, "tls"),
        "starttls" => (Security::StartTls, "starttls"),
        "none" => (Security::Cleartext, "none"),
        other => {
            return Err(config_error(format!(
                "tls={other:?}: expected \"tls\", \"starttls\" or \"none\""
            )))
        }
    })
}

fn auth_method(auth: &str) -> PyResult<(AuthMethod, &'static str)> {
    Ok(match auth {
        "auto" => (AuthMethod::Auto, "auto"),
        "login" => (AuthMethod::Login, "login"),
        "plain" => (AuthMethod::Plain, "plain"),
        "xoauth2" => (AuthMethod::XOAuth2, "xoauth2"),
        "oauthbearer" => (AuthMethod::OAuthBearer, "oauthbearer"),
        other => {
            return Err(config_error(format!(
                "auth={other:?}: expected \"auto\", \"login\", \"plain\", \"xoauth2\" or \
                 \"oauthbearer\""
            )))
        }
    })
}

#[pymethods]
impl Account {
    #[new]
    #[pyo3(signature = (
        host, *, user, password, port=None, tls="tls", auth="auto", authzid=None,
        ca_file=None, insecure=false, timeout=120.0
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
    ) -> PyResult<Self> {
        let secret = Secret::new(password);
        let (security, tls) = security(tls)?;
        let (method, auth) = auth_method(auth)?;
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(config_error(format!(
                "timeout={timeout}: expected a positive number of seconds"
            )));
        }
        let port = port.unwrap_or(if security == Security::Tls { 993 } else { 143 });
        let mut endpoint = Endpoint::new(host, port, security);
        endpoint.timeout = Duration::from_secs_f64(timeout);
        endpoint.verify = match (insecure, ca_file) {
            (true, _) => TlsVerify::Insecure,
            (false, Some(p)) => TlsVerify::CaFile(p),
            (false, None) => TlsVerify::System,
        };
        Ok(Account {
            inner: engine::Account {
                endpoint,
                credentials: Credentials {
                    user,
                    secret,
                    method,
                    authzid,
                },
            },
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
