//! A logged-in (or about to log in) IMAP session and the commands a migration needs.
//!
//! This module owns the [`Session`] itself: connecting (TLS, STARTTLS), the greeting, and the
//! plumbing every command shares (sending a command and checking its completion, keeping the
//! capabilities current, collecting odd data the server sent). Each protocol area's commands
//! live in a file beside it (`auth`, `mailbox`, `search`, `fetch`, `append`, `multiappend`,
//! `idle`), each adding an `impl Session` block; protocol values are encoded and decoded in
//! `codec`, which is pure. This module must never take in a protocol area's commands, and
//! never wait on the server without a timeout.

use std::collections::VecDeque;
use std::time::Duration;

use imap_proto::Response;
use tokio::net::TcpStream;

mod append;
mod auth;
mod codec;
mod fetch;
mod idle;
mod mailbox;
mod multiappend;
mod search;

use super::conn::Connection;
use super::error::{ImapError, Result};
pub use crate::body::{BodyEvent, FetchedBody};
use crate::model::Uid;
use crate::net::{tls_handshake, Stream, Timed};
pub use crate::net::{AuthMethod, Credentials, Endpoint, Security};
use crate::trace::ConnTrace;
use crate::wire::response::Parsed;
use crate::wire::{ResponseCode, StatusKind, StatusResponse};
pub use append::AppendUid;
pub use auth::Capabilities;
use codec::capability_atoms;
pub use codec::is_sendable_keyword;
use fetch::PendingFetch;
pub use fetch::{FetchedMessage, MAX_COLLECTED_BODY};
pub use mailbox::{FolderStatus, Namespace, QuotaUsage, Selected};
pub use search::SearchKey;

/// Odd data a server sent that the session worked around rather than fail on: a folder listed
/// in a form that cannot be read, a metadata line whose UID cannot be read, an INTERNALDATE
/// that is not a date. Collected with [`Session::take_anomalies`], never dropped silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAnomaly {
    /// The message, when its UID is known.
    pub uid: Option<Uid>,
    /// What the server sent (an excerpt) and what was done about it.
    pub detail: String,
}

/// An IMAP session.
pub struct Session {
    conn: Connection,
    caps: Capabilities,
    port: u16,
    utf8: bool,
    selected: Option<Selected>,
    /// Body fetches in flight, oldest first.
    fetches: VecDeque<PendingFetch>,
    /// The next line completes a FETCH whose body was streamed.
    after_stream: bool,
    greeting: String,
    user: Option<String>,
    /// Odd data met since [`Session::take_anomalies`] was last called.
    anomalies: Vec<ServerAnomaly>,
}

/// Reads the server greeting: its text and any capabilities it carried.
async fn read_greeting(conn: &mut Connection) -> Result<(String, Option<Vec<String>>)> {
    let line = conn.next_line().await?;
    match crate::wire::response::parse_status(&line) {
        Some(s) if s.tag.is_none() && matches!(s.kind, StatusKind::Ok | StatusKind::PreAuth) => {
            let caps = match s.code {
                Some(ResponseCode::Capability(c)) => Some(c),
                _ => None,
            };
            Ok((s.text, caps))
        }
        Some(s) if s.kind == StatusKind::Bye => Err(ImapError::Closed {
            host: conn.host.clone(),
            bye: Some(s.describe()),
        }),
        _ => Err(ImapError::Protocol {
            host: conn.host.clone(),
            command: "greeting",
            detail: crate::wire::excerpt(&line),
        }),
    }
}

/// Runs one command on a bare connection, collecting CAPABILITY data; fails on NO/BAD.
async fn run_plain(
    conn: &mut Connection,
    verb: &'static str,
    command: &[u8],
) -> Result<(StatusResponse, Option<Vec<String>>)> {
    let tag = conn.send(command).await?;
    let mut caps = None;
    let status = conn
        .wait(&tag, |p| {
            if let Parsed::Data(Response::Capabilities(c)) = p {
                caps = Some(capability_atoms(c));
            }
        })
        .await?;
    if status.kind != StatusKind::Ok {
        return Err(ImapError::Refused {
            host: conn.host.clone(),
            command: verb,
            folder: None,
            status: Box::new(status),
        });
    }
    if let Some(ResponseCode::Capability(c)) = &status.code {
        caps = Some(c.clone());
    }
    Ok((status, caps))
}

impl Session {
    /// Connects (TLS or STARTTLS as asked), reads the greeting and the capabilities. Does not
    /// log in.
    pub async fn connect(ep: &Endpoint) -> Result<Session> {
        let tcp =
            match tokio::time::timeout(ep.timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(source)) => {
                    return Err(ImapError::Connect {
                        host: ep.host.clone(),
                        port: ep.port,
                        source,
                    })
                }
                Err(_) => {
                    return Err(ImapError::Connect {
                        host: ep.host.clone(),
                        port: ep.port,
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no connection within {} s", ep.timeout.as_secs()),
                        ),
                    })
                }
            };
        let _ = tcp.set_nodelay(true);
        let trace = ep
            .trace
            .as_ref()
            .map(|t| t.connection("imap", &ep.host, ep.port));
        let note = |text: &str| {
            if let Some(t) = &trace {
                t.note(text);
            }
        };
        note("connected");
        let tls_err = |detail| ImapError::Tls {
            host: ep.host.clone(),
            detail,
        };
        let stream = match ep.security {
            Security::Tls => tls_handshake(tcp, &ep.host, &ep.verify, ep.timeout)
                .await
                .map_err(|e| {
                    note(&format!("TLS failed: {e}"));
                    tls_err(e)
                })?,
            Security::StartTls | Security::Cleartext => Stream::Plain(tcp),
        };
        if let Some(summary) = stream.tls_summary() {
            note(&summary);
        }
        Session::start(ep, stream, trace).await
    }

    /// The rest of [`Session::connect`] once the byte stream is made: the greeting, STARTTLS
    /// and the capabilities. Trace tests enter here with a scripted server in memory.
    pub(super) async fn start(
        ep: &Endpoint,
        stream: Stream,
        trace: Option<ConnTrace>,
    ) -> Result<Session> {
        let note = |text: &str| {
            if let Some(t) = &trace {
                t.note(text);
            }
        };
        let tls_err = |detail| ImapError::Tls {
            host: ep.host.clone(),
            detail,
        };
        let mut conn = Connection::new(ep.host.clone(), Timed::new(stream, ep.timeout), ep.limits);
        conn.set_trace(trace.clone());
        let (greeting, mut caps) = read_greeting(&mut conn).await?;
        if ep.security == Security::StartTls {
            if caps.is_none() {
                caps = run_plain(&mut conn, "CAPABILITY", b"CAPABILITY").await?.1;
            }
            let offered = caps
                .as_ref()
                .is_some_and(|c| c.iter().any(|a| a.eq_ignore_ascii_case("STARTTLS")));
            if !offered {
                return Err(ImapError::StartTlsUnavailable {
                    host: ep.host.clone(),
                });
            }
            run_plain(&mut conn, "STARTTLS", b"STARTTLS").await?;
            let Some(tcp) = conn.into_transport()?.into_stream().into_plain() else {
                return Err(tls_err(
                    "STARTTLS on a connection that already has TLS".into(),
                ));
            };
            let stream = tls_handshake(tcp, &ep.host, &ep.verify, ep.timeout)
                .await
                .map_err(|e| {
                    note(&format!("TLS failed: {e}"));
                    tls_err(e)
                })?;
            if let Some(summary) = stream.tls_summary() {
                note(&summary);
            }
            conn = Connection::new(ep.host.clone(), Timed::new(stream, ep.timeout), ep.limits);
            conn.set_trace(trace.clone());
            // Capabilities seen in clear cannot be trusted (RFC 3501 §6.2.1).
            caps = None;
        }
        let mut session = Session {
            conn,
            caps: Capabilities::default(),
            port: ep.port,
            utf8: false,
            selected: None,
            fetches: VecDeque::new(),
            after_stream: false,
            greeting,
            user: None,
            anomalies: Vec::new(),
        };
        match caps {
            Some(c) => session.caps = Capabilities::from_atoms(c),
            None => {
                session.capability().await?;
            }
        }
        tracing::debug!(host = %ep.host, port = ep.port, tls = session.is_tls(), "connected to the IMAP server");
        Ok(session)
    }

    /// Connects and logs in.
    pub async fn open(ep: &Endpoint, creds: &Credentials) -> Result<Session> {
        let mut s = Session::connect(ep).await?;
        s.login(creds).await?;
        Ok(s)
    }

    /// The server's greeting text.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// The host this session talks to.
    pub fn host(&self) -> &str {
        &self.conn.host
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    /// The capabilities as last announced.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The folder currently selected, if any.
    pub fn selected(&self) -> Option<&Selected> {
        self.selected.as_ref()
    }

    /// Changes the longest wait for any read or write.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.conn.set_timeout(timeout);
    }

    fn protocol(&self, command: &'static str, detail: String) -> ImapError {
        ImapError::Protocol {
            host: self.conn.host.clone(),
            command,
            detail,
        }
    }

    fn refused(
        &self,
        command: &'static str,
        folder: Option<&str>,
        status: StatusResponse,
    ) -> ImapError {
        ImapError::Refused {
            host: self.conn.host.clone(),
            command,
            folder: folder.map(|f| self.decode_name(f)),
            status: Box::new(status),
        }
    }

    fn decode_name(&self, raw: &str) -> String {
        if self.utf8 {
            raw.to_string()
        } else {
            crate::utf7::decode_lossless_or_raw(raw)
        }
    }

    /// The wire form of a decoded folder name for this server.
    pub fn encode_name(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            crate::utf7::encode(name)
        }
    }

    fn check(
        &mut self,
        verb: &'static str,
        folder: Option<&str>,
        status: StatusResponse,
    ) -> Result<StatusResponse> {
        if let Some(ResponseCode::Capability(c)) = &status.code {
            self.caps = Capabilities::from_atoms(c);
        }
        match status.kind {
            StatusKind::Ok => Ok(status),
            _ => Err(self.refused(verb, folder, status)),
        }
    }

    /// Sends a command and waits for it, failing on NO/BAD; untagged data is ignored except
    /// capabilities.
    async fn simple(
        &mut self,
        verb: &'static str,
        command: &[u8],
        folder: Option<&str>,
    ) -> Result<StatusResponse> {
        self.ensure_idle_pipeline().await?;
        let tag = self.conn.send(command).await?;
        let mut caps = None;
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Data(Response::Capabilities(c)) = p {
                    caps = Some(capability_atoms(c));
                }
            })
            .await?;
        if let Some(c) = caps {
            self.caps = Capabilities::from_atoms(c);
        }
        self.check(verb, folder, status)
    }

    /// Body fetches must be collected before other commands share the connection.
    async fn ensure_idle_pipeline(&mut self) -> Result<()> {
        if !self.fetches.is_empty() {
            while let Some(ev) = self.next_body().await? {
                drop(ev);
            }
        }
        self.conn.drain_literal().await
    }

    fn require_selected(&self, verb: &'static str) -> Result<()> {
        if self.selected.is_none() {
            return Err(self.protocol(verb, "no folder is selected".into()));
        }
        Ok(())
    }

    /// Odd data the server sent since the last call, each worked around (see
    /// [`ServerAnomaly`]).
    pub fn take_anomalies(&mut self) -> Vec<ServerAnomaly> {
        std::mem::take(&mut self.anomalies)
    }

    /// The `[ALERT]` texts the server sent since the last call (each once), from the greeting on: RFC
    /// 3501 says they must be shown to the user ("System shutdown in 10 minutes", Gmail's
    /// "Please log in via your web browser"). A refusal that carried one also keeps it in
    /// its error.
    pub fn take_alerts(&mut self) -> Vec<String> {
        self.conn.take_alerts()
    }

    /// Ends the session politely. Errors are ignored: the connection is going away anyway.
    pub async fn logout(mut self) {
        if self.ensure_idle_pipeline().await.is_ok() {
            if let Ok(tag) = self.conn.send(b"LOGOUT").await {
                let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.wait(&tag, |_| {}))
                    .await;
            }
        }
        self.conn.shutdown().await;
    }
}
