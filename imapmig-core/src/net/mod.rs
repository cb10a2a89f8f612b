//! Reaching a server: the connection settings every layer above shares ([`Endpoint`],
//! [`Credentials`], [`Account`]) and the byte pipe under a session (IMAP or POP3): TCP,
//! optionally TLS, with a timeout on every wait.
//!
//! This is the only module that knows about sockets and TLS. A read or write that
//! makes no progress for the configured time fails with `TimedOut`, so no await in the client
//! can hang forever on a silent server.

mod settings;
mod spelling;

pub use settings::{Account, AuthMethod, Credentials, Endpoint, Security};

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::client::TlsStream;

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// Against the system's trusted roots (the default).
    #[default]
    System,
    /// Against the system's roots plus the CA certificates in this PEM file.
    CaFile(std::path::PathBuf),
    /// Not at all. For tests and lab servers only: anyone between us and the server can read
    /// the password.
    Insecure,
}

/// The protocol a server is reached over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IMAP (all folders).
    #[default]
    Imap,
    /// POP3 (the inbox only; messages keep their dates from the `Date:` header).
    Pop3,
}

/// IMAP over implicit TLS.
pub const IMAPS_PORT: u16 = 993;
/// IMAP in clear, or upgraded with STARTTLS.
pub const IMAP_PORT: u16 = 143;
/// POP3 over implicit TLS.
pub const POP3S_PORT: u16 = 995;
/// POP3 in clear, or upgraded with STLS.
pub const POP3_PORT: u16 = 110;

/// The longest wait for any single answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl Protocol {
    /// The usual port: 993/143 for IMAP, 995/110 for POP3, the first over implicit TLS.
    pub fn default_port(self, implicit_tls: bool) -> u16 {
        match (self, implicit_tls) {
            (Protocol::Imap, true) => IMAPS_PORT,
            (Protocol::Imap, false) => IMAP_PORT,
            (Protocol::Pop3, true) => POP3S_PORT,
            (Protocol::Pop3, false) => POP3_PORT,
        }
    }
}

/// The socket, before or after TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A scripted server in memory, for the client's trace tests (`imap::trace_tests`).
    #[cfg(test)]
    Memory(Box<dyn MemoryIo>),
}

/// What a test's in-memory stream must be to stand in for a socket.
#[cfg(test)]
pub(crate) trait MemoryIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

#[cfg(test)]
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> MemoryIo for T {}

/// A stream whose reads and writes fail with `TimedOut` after `timeout` without progress.
pub(crate) struct Timed {
    stream: Stream,
    timeout: Duration,
    read_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl Timed {
    pub(crate) fn new(stream: Stream, timeout: Duration) -> Timed {
        Timed {
            stream,
            timeout,
            read_deadline: None,
            write_deadline: None,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.read_deadline = None;
        self.write_deadline = None;
    }

    pub(crate) fn into_stream(self) -> Stream {
        self.stream
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }
}

impl Stream {
    /// The TCP stream of a connection still in clear, for a STARTTLS upgrade; `None` when
    /// there is none to upgrade (TLS is on already).
    pub(crate) fn into_plain(self) -> Option<TcpStream> {
        match self {
            Stream::Plain(tcp) => Some(tcp),
            _ => None,
        }
    }

    /// `TLS established (TLSv1_3, TLS13_AES_256_GCM_SHA384)`, for the protocol trace; `None`
    /// in clear.
    pub(crate) fn tls_summary(&self) -> Option<String> {
        let Stream::Tls(tls) = self else {
            return None;
        };
        let session = tls.get_ref().1;
        let version = session
            .protocol_version()
            .map_or_else(|| "unknown version".to_string(), |v| format!("{v:?}"));
        let cipher = session.negotiated_cipher_suite().map_or_else(
            || "unknown cipher".to_string(),
            |c| format!("{:?}", c.suite()),
        );
        Some(format!("TLS established ({version}, {cipher})"))
    }
}

fn poll_deadline(
    slot: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => {
            *slot = None;
            Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from the server for {} s", timeout.as_secs()),
            ))
        }
        Poll::Pending => Poll::Pending,
    }
}

use std::future::Future;

impl AsyncRead for Timed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_read(cx, buf),
        };
        match res {
            Poll::Ready(r) => {
                this.read_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => poll_deadline(&mut this.read_deadline, this.timeout, cx).map(Err),
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_write(cx, buf),
        };
        match res {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => poll_deadline(&mut this.write_deadline, this.timeout, cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_flush(cx),
        };
        match res {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => poll_deadline(&mut this.write_deadline, this.timeout, cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(test)]
            Stream::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Builds the rustls configuration for a verification choice. Errors are human-readable and
/// name the CA file.
pub(crate) fn client_config(verify: &TlsVerify) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        TlsVerify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth(),
        TlsVerify::System => builder
            .with_root_certificates(system_roots())
            .with_no_client_auth(),
        TlsVerify::CaFile(path) => {
            let mut roots = system_roots();
            let pinned = add_ca_file(&mut roots, path)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("TLS setup with the CA file {}: {e}", path.display()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(CaFileVerifier { webpki, pinned }))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    // A machine without a system store still works with an explicit CA file, so errors in
    // individual system certificates are not fatal.
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Adds the certificates of a PEM file to `roots`; returns them too, for [`CaFileVerifier`].
fn add_ca_file(
    roots: &mut RootCertStore,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let mut added = Vec::new();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate in {} is unusable: {e}", path.display()))?;
        added.push(cert);
    }
    if added.is_empty() {
        return Err(format!(
            "the CA file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(added)
}

/// Wraps a connected TCP stream in TLS.
pub(crate) async fn tls_handshake(
    tcp: TcpStream,
    host: &str,
    verify: &TlsVerify,
    timeout: Duration,
) -> Result<Stream, String> {
    let config = client_config(verify)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(explain_tls_error(&e, host)),
        Err(_) => Err(format!(
            "the TLS handshake did not finish within {} s",
            timeout.as_secs()
        )),
    }
}

/// The verifier for [`TlsVerify::Insecure`]: accepts any certificate but still checks that the
/// handshake signatures are sound, so the session keys are at least the server's.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What to pass to trust a server's own certificate, for the messages below. The library does
/// not know which side a connection is; the flags of both are named.
const CA_FILE_FLAGS: &str = "--src-ca-file/--dst-ca-file";

/// A TLS failure in words a user can act on. rustls's own text (`invalid peer certificate:
/// Other(OtherError(CaUsedAsEndEntity))`) names the check, not the remedy.
fn explain_tls_error(e: &io::Error, host: &str) -> String {
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match cert {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by an authority this machine trusts; pass \
             the authority's certificate (or the server's own, if it is self-signed) with \
             {CA_FILE_FLAGS}"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the server's certificate is not made out for {host:?}; connect by a name the \
                 certificate lists"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired; the server's administrator must renew it"
                .to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet; check this machine's clock".to_string()
        }
        CertificateError::Revoked => "the server's certificate has been revoked".to_string(),
        // webpki's reasons come only as an opaque `OtherError`; its debug form is the one
        // place that names this one (rustls-webpki is not a direct dependency to match on).
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            format!(
                "the server's certificate is self-signed (a CA certificate used as the server's \
                 own); pass that certificate with {CA_FILE_FLAGS}"
            )
        }
        other => format!("the server's certificate was not accepted: {other:?}"),
    }
}

/// The verifier for [`TlsVerify::CaFile`]: the usual WebPKI checks against the system roots
/// plus the file's certificates, and one more way to pass: the server presents a certificate
/// that is byte for byte one of the file's. That is how a self-signed server certificate is
/// trusted (WebPKI refuses a CA certificate used as the server's own, and a self-signed
/// certificate often is one). The server name and the handshake signatures are still checked.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    // The handshake signatures are checked as WebPKI checks them, pinned certificate or not.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
