//! Test certificates, made once per process with the `openssl` CLI.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// PEM texts of a private CA and a server certificate it signed.
pub(crate) struct TlsMaterial {
    /// The CA certificate (what clients trust).
    pub ca_pem: String,
    /// The server certificate (SAN: IP 127.0.0.1, DNS localhost).
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

const SERVER_EXTENSIONS: &str = "\
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// The process-wide test CA and server certificate; panics with a clear
/// message if they cannot be made.
pub(crate) fn material() -> &'static TlsMaterial {
    static TLS: OnceLock<Result<TlsMaterial, String>> = OnceLock::new();
    match TLS.get_or_init(generate) {
        Ok(m) => m,
        Err(e) => panic!("imapmig-testkit: cannot create test TLS certificates: {e}"),
    }
}

fn generate() -> Result<TlsMaterial, String> {
    let openssl = crate::sys::find_executable("openssl", &["/usr/bin", "/usr/local/bin"]).ok_or(
        "the `openssl` command is not installed (Debian/Ubuntu: `apt-get install openssl`)",
    )?;
    let dir = tempfile::Builder::new()
        .prefix("imapmig-tls-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let d = dir.path();
    std::fs::write(d.join("server.ext"), SERVER_EXTENSIONS).map_err(|e| e.to_string())?;
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(d)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", openssl.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`openssl {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    // P-256 keys: generated instantly, supported by rustls/ring and Dovecot.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=imapmig-testkit CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])?;
    let serial = format!("0x{}", crate::sys::random_hex(8));
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        &serial,
        "-days",
        "3650",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    let read = |name: &str| -> Result<String, String> {
        std::fs::read_to_string(d.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    };
    Ok(TlsMaterial {
        ca_pem: read("ca.pem")?,
        cert_pem: read("server.pem")?,
        key_pem: read("server.key")?,
    })
}

/// Writes `contents` to `path` with the given mode (created fresh).
pub(crate) fn write_private(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(contents.as_bytes())
}
