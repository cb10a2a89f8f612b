//! How `imapmig serve` is started: where it listens, TLS, whether it migrates too, the
//! self-service options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A certificate chain and its private key, PEM.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// How the console is started.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// TLS, or plain HTTP (behind a proxy that does TLS, or on loopback).
    pub tls: Option<TlsFiles>,
    /// Whether this process runs the tasks' schedulers too.
    pub run_schedulers: bool,
    /// Whether the open self-service form (`/self-service`: address and old password, for
    /// accounts already in a task) is offered.
    pub open_form: bool,
    /// The console's address as employees reach it (`https://migrate.example.com`), for the
    /// links in invitations; default: the address of the admin's own request.
    pub public_url: Option<String>,
    /// How long an invitation link stays valid.
    pub invitation_ttl: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            run_schedulers: true,
            open_form: false,
            public_url: None,
            invitation_ttl: Duration::from_secs(14 * 24 * 3600),
        }
    }
}
