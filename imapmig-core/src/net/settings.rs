//! The settings of a connection, shared by the IMAP and POP3 clients, the sources, the sinks and
//! the engine: where the server is, how the connection is protected, who logs in and how, and
//! the account (a server and a login).
//!
//! Plain values the caller fills in; nothing here touches the network or knows a command.

use std::time::Duration;

use super::TlsVerify;
use crate::secret::Secret;
use crate::trace::ProtocolTrace;
use crate::wire::Limits;

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Security {
    /// TLS from the first byte (usually port 993).
    #[default]
    Tls,
    /// Cleartext, upgraded with STARTTLS before login (usually port 143). Fails if the server
    /// does not offer STARTTLS: never falls back to cleartext.
    StartTls,
    /// Cleartext all the way. Passwords travel readable by anyone on the path; only for
    /// loopback and lab servers, and only when asked for by name.
    Cleartext,
}

/// How to prove who we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// PLAIN when the server offers it (or an authzid is given), else LOGIN.
    #[default]
    Auto,
    /// The LOGIN command.
    Login,
    /// SASL PLAIN, with an optional authorization identity (an admin acting for a user).
    Plain,
    /// Google/Microsoft XOAUTH2 with a caller-supplied access token.
    XOAuth2,
    /// RFC 7628 OAUTHBEARER with a caller-supplied access token.
    OAuthBearer,
}

/// Who logs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The login name (for an admin login, the admin's name).
    pub user: String,
    /// The password or OAuth2 access token.
    pub secret: Secret,
    /// The mechanism.
    pub method: AuthMethod,
    /// The user to act for, when an admin (or a Dovecot master user) logs in on their behalf.
    pub authzid: Option<String>,
}

impl Credentials {
    /// A user name and password, mechanism chosen automatically.
    pub fn password(user: impl Into<String>, password: impl Into<Secret>) -> Credentials {
        Credentials {
            user: user.into(),
            secret: password.into(),
            method: AuthMethod::Auto,
            authzid: None,
        }
    }

    /// The mailbox owner's name: the authzid when acting for someone, else the login name.
    pub fn mailbox_user(&self) -> &str {
        self.authzid.as_deref().unwrap_or(&self.user)
    }
}

/// Where a server is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS, STARTTLS or cleartext.
    pub security: Security,
    /// How to check the certificate.
    pub verify: TlsVerify,
    /// The longest wait for any single read, write or connect.
    pub timeout: Duration,
    /// Framing limits.
    pub limits: Limits,
    /// Where the protocol lines of connections to this server are written, if anywhere
    /// (secrets redacted, bodies elided; see [`crate::trace`]).
    pub trace: Option<ProtocolTrace>,
}

impl Endpoint {
    /// An endpoint with the default timeout (2 minutes) and limits.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            security,
            verify: TlsVerify::System,
            timeout: Duration::from_secs(120),
            limits: Limits::default(),
            trace: None,
        }
    }
}

/// A server and how to log in to it.
#[derive(Clone, Debug)]
pub struct Account {
    /// Where the server is.
    pub endpoint: Endpoint,
    /// Who logs in.
    pub credentials: Credentials,
}
