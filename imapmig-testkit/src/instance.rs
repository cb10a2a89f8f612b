//! What every private server instance shares, whichever server it is: a
//! temporary directory, free loopback ports, a process group that dies with
//! the test process (the watchdog), readiness polling and log tails.
//!
//! It never knows which server it runs: the server modules (`Dovecot` in
//! the crate root, [`crate::cyrus`], [`crate::courier`], [`crate::mailutils`])
//! say what to spawn and what a ready port looks like.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

/// How long a start waits for the server to greet on every port.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a start is retried when a chosen port was taken meanwhile.
pub(crate) const PORT_ATTEMPTS: usize = 8;
/// How long a stopping instance may take before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_millis(300);

/// Why one start attempt failed.
pub(crate) enum StartError {
    /// A chosen port was taken by someone else meanwhile: pick new ones.
    PortInUse,
    /// Anything else: give up with this message.
    Failed(String),
}

/// `n` distinct free loopback ports (bound at once, then released).
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|e| panic!("imapmig-testkit: cannot bind a loopback port: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// What a port said when probed.
pub(crate) enum Greeting {
    /// Nothing listening yet (connection refused).
    NotYet,
    /// Something answered with this line.
    Ours(String),
    /// Something accepted but did not greet sensibly.
    Foreign,
}

/// Connects to `127.0.0.1:port` and reads one line.
pub(crate) fn greeting(port: u16) -> Greeting {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Greeting::NotYet;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    match BufReader::new(&stream).read_line(&mut line) {
        Ok(n) if n > 0 => Greeting::Ours(line),
        // Accepted then closed: a listener that is not serving yet.
        Ok(_) => Greeting::NotYet,
        Err(_) => Greeting::Foreign,
    }
}

/// How [`wait_ready`] decides that one port is served by this instance.
pub(crate) enum Probe {
    /// A plain-text greeting starting with `prefix` and, if given,
    /// containing `token` (a mark of this very instance).
    Greets {
        port: u16,
        prefix: &'static str,
        token: Option<String>,
    },
    /// Anything accepts connections there (an implicit-TLS port, which
    /// says nothing before the handshake).
    Accepts { port: u16 },
}

/// Creates an instance's root directory `<tmp>/<prefix>XXXX`, reachable by
/// unprivileged server users.
pub(crate) fn make_instance_dir(prefix: &str, as_root: bool) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    // Unix socket paths are limited to ~108 bytes and server configs treat
    // spaces and `%` specially: use $TMPDIR only if it is short and plain
    // (and, as root, traversable by the unprivileged server users).
    let preferred = std::env::temp_dir();
    let plain = |p: &Path| {
        let s = p.to_string_lossy();
        s.len() <= 48
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    };
    let parent = if plain(&preferred) && (!as_root || sys::traversable_by_others(&preferred)) {
        preferred
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .unwrap_or_else(|e| {
            panic!(
                "imapmig-testkit: cannot create a temporary directory in {}: {e}",
                parent.display()
            )
        });
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("imapmig-testkit: chmod {}: {e}", dir.path().display()));
    dir
}

/// Creates `root/rel` with `mode`, owned by `owner` when running as root.
pub(crate) fn make_dir(root: &Path, rel: &str, owner: Option<(u32, u32)>, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    std::fs::create_dir_all(&p)
        .unwrap_or_else(|e| panic!("imapmig-testkit: cannot create {}: {e}", p.display()));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("imapmig-testkit: chmod {}: {e}", p.display()));
    if let (true, Some((uid, gid))) = (sys::euid() == 0, owner) {
        sys::chown(&p, uid, gid)
            .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", p.display()));
    }
    p
}

/// Writes `text` to `path` (created or replaced) with `mode`, owned by
/// `owner` when running as root.
pub(crate) fn write_file(path: &Path, text: &str, mode: u32, owner: Option<(u32, u32)>) {
    crate::tls::write_private(path, text, mode)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            // `mode` only applies to a new file.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| match (sys::euid() == 0, owner) {
            (true, Some((uid, gid))) => sys::chown(path, uid, gid),
            _ => Ok(()),
        })
        .unwrap_or_else(|e| panic!("imapmig-testkit: cannot write {}: {e}", path.display()));
}

/// The processes of one running instance, in one process group led by a
/// small `sh` watchdog. The watchdog waits for EOF on its stdin — a pipe
/// from this process — and then sends SIGTERM to the whole group: so the
/// instance stops on [`ProcessGroup::stop`] and also when the test process
/// dies in any way (panic=abort, SIGKILL, Ctrl-C).
pub(crate) struct ProcessGroup {
    watchdog: Child,
    /// Our end of the watchdog's stdin: closing it stops the instance.
    stdin: Option<ChildStdin>,
    /// The server processes we spawned (our children, so we reap them).
    children: Vec<Child>,
}

impl ProcessGroup {
    /// Starts the watchdog, named `name` in `ps`.
    pub(crate) fn start(name: &str) -> Result<ProcessGroup, StartError> {
        let mut watchdog = Command::new("/bin/sh")
            .arg("-c")
            .arg("cat >/dev/null; kill -TERM 0")
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                StartError::Failed(format!("imapmig-testkit: cannot spawn /bin/sh: {e}"))
            })?;
        let stdin = watchdog.stdin.take();
        Ok(ProcessGroup {
            watchdog,
            stdin,
            children: Vec::new(),
        })
    }

    /// The process group id (the watchdog's pid).
    pub(crate) fn pgid(&self) -> i32 {
        self.watchdog.id() as i32
    }

    /// Spawns `cmd` into the group; returns its pid.
    pub(crate) fn spawn(&mut self, cmd: &mut Command) -> Result<i32, StartError> {
        let child = cmd
            .process_group(self.pgid())
            .spawn()
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: cannot run {cmd:?}: {e}")))?;
        let pid = child.id() as i32;
        self.children.push(child);
        Ok(pid)
    }

    /// Whether any process spawned into the group has exited (without
    /// reaping it).
    pub(crate) fn any_exited(&self) -> bool {
        self.children
            .iter()
            .any(|c| sys::child_exited(c.id() as i32))
    }

    /// Stops every process of the group and waits until they are gone:
    /// SIGTERM through the watchdog, SIGKILL after [`STOP_GRACE`].
    pub(crate) fn stop(mut self) {
        let pgid = self.pgid();
        // EOF on the watchdog's stdin: it sends SIGTERM to the group.
        drop(self.stdin.take());
        // The watchdog (a zombie until reaped below) keeps the group id
        // reserved, so signalling the group cannot hit an unrelated process.
        let graceful = sys::poll_until(STOP_GRACE, || {
            self.children
                .iter()
                .all(|c| sys::child_exited(c.id() as i32))
                && !sys::group_alive(pgid)
        });
        if !graceful {
            sys::kill_group(pgid, libc::SIGKILL);
            sys::poll_until(Duration::from_secs(5), || !sys::group_alive(pgid));
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        let _ = self.watchdog.wait();
    }
}

/// Polls `probes` until each is satisfied. A spawned process that exits
/// meanwhile ends the wait: with [`StartError::PortInUse`] if `log()` then
/// says an address was in use, else with a failure.
pub(crate) fn wait_ready(
    group: &ProcessGroup,
    probes: &[Probe],
    log: &dyn Fn() -> String,
) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    let mut next = 0;
    while next < probes.len() {
        if group.any_exited() {
            return Err(exited(log));
        }
        let (port, ready) = match &probes[next] {
            Probe::Greets {
                port,
                prefix,
                token,
            } => match greeting(*port) {
                Greeting::Ours(line)
                    if line.starts_with(prefix)
                        && token.as_ref().is_none_or(|t| line.contains(t.as_str())) =>
                {
                    (*port, true)
                }
                Greeting::Ours(_) | Greeting::Foreign => return Err(StartError::PortInUse),
                Greeting::NotYet => (*port, false),
            },
            Probe::Accepts { port } => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                (
                    *port,
                    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok(),
                )
            }
        };
        if ready {
            next += 1;
            continue;
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(format!(
                "nothing served 127.0.0.1:{port} within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    // A port may have answered for another server that took it first: ours
    // then fails to bind and exits at once.
    std::thread::sleep(Duration::from_millis(50));
    if group.any_exited() {
        return Err(exited(log));
    }
    Ok(())
}

/// Why a server process exited during the start, judged from its log.
fn exited(log: &dyn Fn() -> String) -> StartError {
    if log()
        .to_ascii_lowercase()
        .contains("address already in use")
    {
        StartError::PortInUse
    } else {
        StartError::Failed("a server process exited".to_string())
    }
}

/// The last `n` lines of `log`, labelled with `what`, for panic messages.
pub(crate) fn tail(what: &str, log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(n);
    format!(
        "--- {what} (last {} lines) ---\n{}\n--- end of {what} ---",
        lines.len() - start,
        lines[start..].join("\n")
    )
}

/// Reads a file of the instance, or `""`.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The full IMAP name of a folder given by its path components on a server
/// with personal namespace `prefix` and hierarchy separator `sep` (the rule
/// of `Flavour::folder_name`, for the servers whose namespace is fixed).
pub(crate) fn folder_name(prefix: &str, sep: char, parts: &[&str]) -> String {
    let mut buf = [0u8; 4];
    format!("{prefix}{}", parts.join(sep.encode_utf8(&mut buf)))
}

/// Where the privately unpacked servers live (see `scripts/setup`):
/// `$IMAPMIG_TESTKIT_OPT` or `/opt/imapmig-testkit`.
pub(crate) fn opt_root() -> PathBuf {
    std::env::var_os("IMAPMIG_TESTKIT_OPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/imapmig-testkit"))
}

/// Panics, naming the setup command, unless every path in `needed` exists.
/// `server` names the server for the message.
pub(crate) fn require(server: &str, needed: &[&Path]) {
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "imapmig-testkit: {server} is not installed (missing: {}); run `bash scripts/setup` \
         as root (it installs the Debian packages and unpacks the conflicting ones under {})",
        missing.join(", "),
        opt_root().display()
    );
}

/// Panics unless this process runs as root; `server` and `why` explain.
pub(crate) fn require_root(server: &str, why: &str) {
    assert!(
        sys::euid() == 0,
        "imapmig-testkit: a private {server} needs root ({why}); run the tests as root, as CI does"
    );
}

/// A throwaway IMAP conversation with a private server (for admin chores
/// like creating a user's mailbox): sends each command after the greeting
/// and returns every line read, failing on any tagged reply but `OK`.
pub(crate) fn imap_chat(port: u16, commands: &[String]) -> Result<Vec<String>, String> {
    use std::io::Write;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let mut read_line = |lines: &mut Vec<String>| -> Result<String, String> {
        let mut l = String::new();
        match reader.read_line(&mut l) {
            Ok(0) => Err(format!(
                "{addr} closed the connection; read so far: {lines:?}"
            )),
            Ok(_) => {
                lines.push(l.clone());
                Ok(l)
            }
            Err(e) => Err(format!("reading from {addr}: {e}")),
        }
    };
    read_line(&mut lines)?;
    for (i, cmd) in commands.iter().enumerate() {
        let tag = format!("k{i}");
        writer
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .map_err(|e| format!("writing to {addr}: {e}"))?;
        loop {
            let l = read_line(&mut lines)?;
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                if !rest.starts_with("OK") {
                    // Never repeat a password: name the command only.
                    let verb = cmd.split(' ').next().unwrap_or_default();
                    return Err(format!("{verb} failed: {}", l.trim_end()));
                }
                break;
            }
        }
    }
    Ok(lines)
}

/// A SHA-512 crypt of `password` (`openssl passwd -6`), for user files
/// checked with crypt(3).
pub(crate) fn crypt_sha512(password: &str) -> String {
    use std::io::Write;
    let openssl = sys::find_executable("openssl", &["/usr/bin", "/usr/local/bin"])
        .expect("imapmig-testkit: `openssl` is not installed; run `bash scripts/setup`");
    let mut child = Command::new(openssl)
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("imapmig-testkit: cannot run openssl: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{password}");
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("imapmig-testkit: openssl passwd: {e}"));
    assert!(
        out.status.success(),
        "imapmig-testkit: `openssl passwd -6` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
