//! A fault-injection TCP proxy for integration tests: it sits in front of a
//! real server (a private [`Dovecot`](crate::Dovecot)) and breaks the
//! connection where a test says — after exactly N bytes, inside the literal
//! of a given command — makes the port look dead for a while, or refuses
//! logins in the server's place.
//!
//! ```no_run
//! use std::time::Duration;
//! use imapmig_testkit::{Direction, Dovecot, FaultProxy, Flavour};
//!
//! let server = Dovecot::start(Flavour::Slash);
//! let proxy = FaultProxy::start(server.imap_addr());
//! // Cut the first APPEND 200 bytes in, i.e. inside its message literal,
//! // and keep the port dead for a second after that.
//! proxy.cut_at_pattern(Direction::ToServer, b"APPEND", 200);
//! proxy.stay_down_after_cut(Duration::from_secs(1));
//! // ... point the client at (proxy.host(), proxy.port()) ...
//! assert!(proxy.wait_for_cut(Duration::from_secs(10)));
//! ```
//!
//! What it owns: a loopback listener, and for each accepted client one
//! upstream connection and two forwarding threads (std threads, no async
//! runtime). Bytes are forwarded as they come, through a 16 KiB buffer per
//! direction; the client→server stream is examined line by line only while
//! logins are refused, and even then holds back at most one command line.
//!
//! What it must never do: hang a test or outlive its owner. Dropping the
//! [`FaultProxy`] stops the listener, closes every live connection (both
//! sides) and joins every thread it started; no wait anywhere is unbounded.

mod gate;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gate::{Action, ClientStream, Refusals};

use crate::listener::{join_all, listener_accessors, Listener};
use crate::lock;

/// Size of the read buffer of each forwarding direction.
const BUFFER: usize = 16 * 1024;
/// How long an accepted client waits for the upstream connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A direction of the forwarded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the server (commands, APPEND literals).
    ToServer,
    /// From the server to the client (greeting, responses, FETCH literals).
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A TCP proxy on `127.0.0.1:<free port>` in front of one upstream server,
/// with faults on demand. See the [module docs](self).
///
/// Dropping it stops the listener and closes every live connection; all its
/// threads have ended when `drop` returns.
pub struct FaultProxy {
    listener: Listener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr())
            .field("upstream", &self.shared.upstream)
            .field("connections", &self.connections())
            .field("cuts", &self.cuts())
            .finish_non_exhaustive()
    }
}

/// A cut waiting for its byte.
#[derive(Debug)]
enum Armed {
    /// After `remaining` more bytes (on connection `conn` only, when set).
    Count { remaining: u64, conn: Option<u64> },
    /// `offset` bytes after the start of the first `pattern`; `tails` holds
    /// the last `pattern.len() - 1` bytes seen per connection, so a pattern
    /// split across two reads is found.
    Pattern {
        pattern: Vec<u8>,
        offset: u64,
        tails: HashMap<u64, Vec<u8>>,
    },
}

/// Everything a test changes, under one lock.
#[derive(Debug, Default)]
struct Control {
    /// The armed cut and its direction.
    armed: Option<(Direction, Armed)>,
    /// How many cuts have been armed / how many of those have fired: the
    /// last armed cut has fired when they are equal.
    arms: u64,
    armed_fired: u64,
    /// Down by hand.
    down: bool,
    /// Down until then (after a cut, see `stay_down_after_cut`).
    down_until: Option<Instant>,
    /// How long to stay down after the next cut.
    down_after_cut: Option<Duration>,
    /// The answer to give to refused logins, and how many are left
    /// (`None`: no limit).
    refuse: Option<(String, Option<u64>)>,
}

impl Control {
    fn is_down(&mut self, now: Instant) -> bool {
        if self.down_until.is_some_and(|t| now >= t) {
            self.down_until = None;
        }
        self.down || self.down_until.is_some()
    }
}

/// One proxied connection: the two sockets (clones used to shut them down).
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Writes to the client come from both threads (server bytes, and
    /// answers to refused logins): one at a time.
    client_writes: Mutex<()>,
    /// Forwarding threads finished; the second one unregisters the
    /// connection.
    finished: AtomicU8,
}

impl Conn {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

struct Shared {
    upstream: SocketAddr,
    control: Mutex<Control>,
    /// Signalled when a cut has fired.
    fired: Condvar,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: AtomicU64,
    refused_connections: AtomicU64,
    bytes: [AtomicU64; 2],
    cuts: AtomicU64,
    logins_refused: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free loopback port. It forwards
    /// faithfully until told otherwise.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream,
            control: Mutex::new(Control::default()),
            fired: Condvar::new(),
            live: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
            cuts: AtomicU64::new(0),
            logins_refused: AtomicU64::new(0),
        });
        let listener = Listener::start("fault-proxy-accept", shared.clone(), accept);
        FaultProxy { listener, shared }
    }

    listener_accessors!();

    /// The server the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Arms one cut: when the bytes forwarded in `dir` (counted over all
    /// connections from this call on) reach `after`, the proxy forwards
    /// exactly up to that byte and then closes both sockets of the
    /// connection carrying it — a hard cut, in the middle of a literal if
    /// that is where it falls. `after == 0` cuts the next connection to
    /// carry any byte in `dir`, before that byte.
    ///
    /// One-shot: re-arm for another. Arming replaces a cut still waiting.
    pub fn cut_after(&self, dir: Direction, after: u64) {
        self.arm(
            dir,
            Armed::Count {
                remaining: after,
                conn: None,
            },
        );
    }

    /// Arms one cut at the first occurrence of `pattern` in `dir` (searched
    /// per connection, across read boundaries, in the bytes forwarded from
    /// this call on), `offset` bytes after the pattern's start: the bytes
    /// before that point are forwarded, then both sockets of that connection
    /// are closed. `cut_at_pattern(ToServer, b"APPEND", 200)` cuts 200 bytes
    /// into the first APPEND command, inside its literal.
    ///
    /// When `offset` is shorter than the pattern and the pattern straddles
    /// two reads, the bytes up to the end of the first read are already
    /// gone: the cut then falls at the start of the second read, a little
    /// later than asked. One-shot; arming replaces a cut still waiting.
    pub fn cut_at_pattern(&self, dir: Direction, pattern: &[u8], offset: u64) {
        self.arm(
            dir,
            Armed::Pattern {
                pattern: pattern.to_vec(),
                offset,
                tails: HashMap::new(),
            },
        );
    }

    fn arm(&self, dir: Direction, armed: Armed) {
        let mut c = lock(&self.shared.control);
        if c.armed.is_some() {
            // The replaced cut will never fire; it counts as done so that
            // `wait_for_cut` waits for the new one only.
            c.armed_fired = c.arms;
        }
        c.armed = Some((dir, armed));
        c.arms += 1;
    }

    /// After the next cut fires (an armed one or [`FaultProxy::cut_all`]),
    /// stay down for `d`: new connections are accepted and closed at once,
    /// so the port looks dead; afterwards the proxy forwards again.
    pub fn stay_down_after_cut(&self, d: Duration) {
        lock(&self.shared.control).down_after_cut = Some(d);
    }

    /// Down now (`true`) or up again (`false`), by hand. While down, new
    /// connections are accepted and closed at once; live ones are left alone
    /// (see [`FaultProxy::cut_all`]). `set_down(false)` also ends a down
    /// period started by [`FaultProxy::stay_down_after_cut`].
    pub fn set_down(&self, down: bool) {
        let mut c = lock(&self.shared.control);
        c.down = down;
        if !down {
            c.down_until = None;
        }
    }

    /// Whether new connections are refused right now.
    pub fn is_down(&self) -> bool {
        lock(&self.shared.control).is_down(Instant::now())
    }

    /// Closes every live connection now (both sockets of each). Counts as
    /// one cut for [`FaultProxy::cuts`] and starts a pending
    /// [`FaultProxy::stay_down_after_cut`] period; an armed cut stays armed.
    pub fn cut_all(&self) {
        {
            let mut c = lock(&self.shared.control);
            if let Some(d) = c.down_after_cut.take() {
                c.down_until = Some(Instant::now() + d);
            }
        }
        let conns: Vec<Arc<Conn>> = lock(&self.shared.live).values().cloned().collect();
        for conn in conns {
            conn.close();
        }
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
    }

    /// While `Some(answer)`, the proxy answers every client LOGIN and
    /// AUTHENTICATE command itself with `<tag> <answer>` (e.g. `NO
    /// [UNAVAILABLE] Temporary failure, try later`) instead of forwarding it;
    /// the greeting, CAPABILITY and everything else still come from the
    /// server. A LOGIN with synchronising literals gets the `+ go ahead` the
    /// server would have sent; an AUTHENTICATE is answered at once, with or
    /// without initial response. `None` restores forwarding.
    ///
    /// Applies to commands that start after the call, also on connections
    /// already open.
    pub fn refuse_logins(&self, answer: Option<String>) {
        lock(&self.shared.control).refuse = answer.map(|a| (a, None));
    }

    /// Like [`FaultProxy::refuse_logins`], for the next `n` logins only
    /// (counted over all connections); later ones are forwarded.
    pub fn refuse_logins_for(&self, answer: &str, n: u64) {
        lock(&self.shared.control).refuse = Some((answer.to_string(), Some(n)));
    }

    /// Client connections accepted so far, including those closed at once
    /// because the proxy was down.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Client connections closed at once because the proxy was down (or the
    /// server could not be reached).
    pub fn connections_refused(&self) -> u64 {
        self.shared.refused_connections.load(Ordering::SeqCst)
    }

    /// Connections being forwarded right now.
    pub fn live_connections(&self) -> usize {
        lock(&self.shared.live).len()
    }

    /// Bytes forwarded in `dir` so far, over all connections (answers the
    /// proxy gives itself to refused logins are not counted).
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.shared.bytes[dir.index()].load(Ordering::SeqCst)
    }

    /// Cuts so far: armed cuts that fired, plus calls of
    /// [`FaultProxy::cut_all`].
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Logins the proxy has refused in the server's place.
    pub fn logins_refused(&self) -> u64 {
        self.shared.logins_refused.load(Ordering::SeqCst)
    }

    /// Blocks until the most recently armed cut has fired (its connection
    /// closed), at most `timeout`; returns whether it did. `false` at once
    /// when no cut was ever armed.
    pub fn wait_for_cut(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = lock(&self.shared.control);
        loop {
            if c.arms == 0 {
                return false;
            }
            if c.armed_fired == c.arms {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = self
                .shared
                .fired
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.listener.stop();
        // No new connection can appear now; closing the sockets wakes every
        // forwarding thread out of its read or write.
        let conns: Vec<Arc<Conn>> = lock(&self.shared.live).values().cloned().collect();
        for conn in conns {
            conn.close();
        }
        join_all(&self.shared.threads);
    }
}

/// Takes new client `id`: closed at once while the proxy is down or the
/// server cannot be reached, else forwarded.
fn accept(shared: &Arc<Shared>, id: u64, client: TcpStream) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    if lock(&shared.control).is_down(Instant::now()) {
        return refuse(shared, client);
    }
    let server = match TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(_) => return refuse(shared, client),
    };
    let _ = server.set_nodelay(true);
    if let Err(()) = spawn_connection(shared, id, client, server) {
        return;
    }
    // Forget the threads that have ended, so the list stays short.
    lock(&shared.threads).retain(|t| !t.is_finished());
}

fn refuse(shared: &Shared, client: TcpStream) {
    shared.refused_connections.fetch_add(1, Ordering::SeqCst);
    let _ = client.shutdown(Shutdown::Both);
}

fn spawn_connection(
    shared: &Arc<Shared>,
    id: u64,
    client: TcpStream,
    server: TcpStream,
) -> Result<(), ()> {
    let clones = (|| {
        Ok::<_, std::io::Error>((
            client.try_clone()?,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ))
    })();
    let Ok((client_read, server_read, client_close, server_close)) = clones else {
        refuse(shared, client);
        return Err(());
    };
    let conn = Arc::new(Conn {
        client: client_close,
        server: server_close,
        client_writes: Mutex::new(()),
        finished: AtomicU8::new(0),
    });
    lock(&shared.live).insert(id, conn.clone());
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new().name(name.into()).spawn(f)
    };
    let to_server = {
        let (shared, conn) = (shared.clone(), conn.clone());
        spawn(
            "fault-proxy-c2s",
            Box::new(move || {
                pump_to_server(&shared, id, &conn, client_read, server);
                finish(&shared, id, &conn);
            }),
        )
    };
    let to_client = {
        let (shared, conn) = (shared.clone(), conn.clone());
        spawn(
            "fault-proxy-s2c",
            Box::new(move || {
                pump_to_client(&shared, id, &conn, server_read, client);
                finish(&shared, id, &conn);
            }),
        )
    };
    let mut threads = lock(&shared.threads);
    let mut ok = true;
    for t in [to_server, to_client] {
        match t {
            Ok(t) => threads.push(t),
            Err(_) => ok = false,
        }
    }
    if !ok {
        // A thread that did start sees the closed sockets and ends.
        conn.close();
        lock(&shared.live).remove(&id);
        return Err(());
    }
    Ok(())
}

fn finish(shared: &Shared, id: u64, conn: &Conn) {
    if conn.finished.fetch_add(1, Ordering::SeqCst) == 1 {
        lock(&shared.live).remove(&id);
    }
}

/// Reads the next bytes of `from` into `buf`; `None` once it has ended:
/// at EOF, passed on to `to` as a half-close, or on an error, with the
/// connection closed.
fn read_or_end(conn: &Conn, from: &mut TcpStream, buf: &mut [u8], to: &TcpStream) -> Option<usize> {
    loop {
        match from.read(buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return None;
            }
            Ok(n) => return Some(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.close();
                return None;
            }
        }
    }
}

/// Server → client: plain bytes.
fn pump_to_client(shared: &Shared, id: u64, conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    while let Some(n) = read_or_end(conn, &mut from, &mut buf, &to) {
        let _w = lock(&conn.client_writes);
        if !forward(shared, id, conn, Direction::ToClient, &buf[..n], &mut to) {
            return;
        }
    }
}

/// Client → server: plain bytes, seen through the [`ClientStream`] that
/// takes refused logins out.
fn pump_to_server(shared: &Shared, id: u64, conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    let mut stream = ClientStream::default();
    let mut actions = Vec::new();
    while let Some(n) = read_or_end(conn, &mut from, &mut buf, &to) {
        stream.feed(&buf[..n], &mut SharedRefusals(shared), &mut actions);
        for action in actions.drain(..) {
            let ok = match action {
                Action::Forward(bytes) => {
                    forward(shared, id, conn, Direction::ToServer, &bytes, &mut to)
                }
                Action::Reply(bytes) => {
                    let _w = lock(&conn.client_writes);
                    (&conn.client).write_all(&bytes).is_ok()
                }
            };
            if !ok {
                return conn.close();
            }
        }
    }
}

/// Writes `data` on, unless an armed cut falls inside it: then only the
/// bytes before the cut are written and the connection is closed. Returns
/// whether to go on.
fn forward(
    shared: &Shared,
    id: u64,
    conn: &Conn,
    dir: Direction,
    data: &[u8],
    to: &mut TcpStream,
) -> bool {
    let (n, cut) = admit(&mut lock(&shared.control), id, dir, data);
    if n > 0 {
        if to.write_all(&data[..n]).is_err() {
            match cut {
                Some(seq) => fire(shared, conn, seq),
                None => conn.close(),
            }
            return false;
        }
        shared.bytes[dir.index()].fetch_add(n as u64, Ordering::SeqCst);
    }
    match cut {
        Some(seq) => {
            fire(shared, conn, seq);
            false
        }
        None => true,
    }
}

/// Carries out the cut that [`admit`] decided (the `seq`-th armed one).
fn fire(shared: &Shared, conn: &Conn, seq: u64) {
    {
        // Down before the sockets close: a client that reconnects the
        // moment it sees EOF must find the port dead.
        let mut c = lock(&shared.control);
        if let Some(d) = c.down_after_cut.take() {
            c.down_until = Some(Instant::now() + d);
        }
    }
    conn.close();
    shared.cuts.fetch_add(1, Ordering::SeqCst);
    let mut c = lock(&shared.control);
    c.armed_fired = c.armed_fired.max(seq);
    shared.fired.notify_all();
}

/// How many bytes of `data` (on connection `id`, in `dir`) may be forwarded,
/// and whether the armed cut falls right after them: then it is disarmed
/// and its number (see [`Control::arms`]) returned.
fn admit(control: &mut Control, id: u64, dir: Direction, data: &[u8]) -> (usize, Option<u64>) {
    let seq = control.arms;
    let Some((armed_dir, armed)) = &mut control.armed else {
        return (data.len(), None);
    };
    if *armed_dir != dir {
        return (data.len(), None);
    }
    let len = data.len() as u64;
    match armed {
        Armed::Count { conn: Some(c), .. } if *c != id => (data.len(), None),
        Armed::Count { remaining, .. } => {
            if *remaining <= len {
                let n = *remaining as usize;
                control.armed = None;
                (n, Some(seq))
            } else {
                *remaining -= len;
                (data.len(), None)
            }
        }
        Armed::Pattern {
            pattern,
            offset,
            tails,
        } => {
            let tail = tails.remove(&id).unwrap_or_default();
            let mut window = tail;
            let from_tail = window.len();
            window.extend_from_slice(data);
            let found = if pattern.is_empty() {
                Some(0)
            } else {
                window
                    .windows(pattern.len())
                    .position(|w| w == pattern.as_slice())
            };
            match found {
                Some(at) => {
                    // The cut point, counted from the start of `data`.
                    let point = (at as u64)
                        .saturating_add(*offset)
                        .saturating_sub(from_tail as u64);
                    if point <= len {
                        control.armed = None;
                        (point as usize, Some(seq))
                    } else {
                        *armed = Armed::Count {
                            remaining: point - len,
                            conn: Some(id),
                        };
                        (data.len(), None)
                    }
                }
                None => {
                    let keep = pattern.len().saturating_sub(1);
                    let start = window.len().saturating_sub(keep);
                    window.drain(..start);
                    tails.insert(id, window);
                    (data.len(), None)
                }
            }
        }
    }
}

/// [`Refusals`] read from the proxy's control.
struct SharedRefusals<'a>(&'a Shared);

impl Refusals for SharedRefusals<'_> {
    fn active(&mut self) -> bool {
        lock(&self.0.control)
            .refuse
            .as_ref()
            .is_some_and(|(_, n)| n.is_none_or(|n| n > 0))
    }

    fn take(&mut self) -> Option<String> {
        let mut c = lock(&self.0.control);
        let (answer, left) = c.refuse.as_mut()?;
        match left {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        let answer = answer.clone();
        drop(c);
        self.0.logins_refused.fetch_add(1, Ordering::SeqCst);
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(dir: Direction, armed: Armed) -> Control {
        Control {
            armed: Some((dir, armed)),
            arms: 1,
            ..Control::default()
        }
    }

    /// A control with a count cut armed, on any connection.
    fn count_cut(dir: Direction, remaining: u64) -> Control {
        control(
            dir,
            Armed::Count {
                remaining,
                conn: None,
            },
        )
    }

    /// A control with a pattern cut armed.
    fn pattern_cut(dir: Direction, pattern: &[u8], offset: u64) -> Control {
        control(
            dir,
            Armed::Pattern {
                pattern: pattern.to_vec(),
                offset,
                tails: HashMap::new(),
            },
        )
    }

    #[test]
    fn a_count_cut_spans_reads_and_connections() {
        let mut c = count_cut(Direction::ToClient, 10);
        assert_eq!(
            admit(&mut c, 0, Direction::ToServer, b"0123456789abc"),
            (13, None)
        );
        assert_eq!(admit(&mut c, 0, Direction::ToClient, b"0123"), (4, None));
        assert_eq!(
            admit(&mut c, 1, Direction::ToClient, b"456789abc"),
            (6, Some(1))
        );
        assert!(c.armed.is_none());
        assert_eq!(admit(&mut c, 1, Direction::ToClient, b"abc"), (3, None));
    }

    #[test]
    fn a_pattern_split_across_reads_is_found() {
        let mut c = pattern_cut(Direction::ToServer, b"APPEND", 10);
        assert_eq!(
            admit(&mut c, 7, Direction::ToServer, b"a NOOP\r\nb APP"),
            (13, None)
        );
        // Another connection's bytes do not complete it.
        assert_eq!(admit(&mut c, 8, Direction::ToServer, b"END"), (3, None));
        // "APPEND" starts 3 bytes before this read: the cut is 7 bytes in.
        assert_eq!(
            admit(&mut c, 7, Direction::ToServer, b"END INBOX {5}"),
            (7, Some(1))
        );
    }

    #[test]
    fn a_pattern_cut_beyond_the_read_follows_that_connection() {
        let mut c = pattern_cut(Direction::ToClient, b"FETCH", 20);
        assert_eq!(
            admit(&mut c, 1, Direction::ToClient, b"* 1 FETCH (UID"),
            (14, None)
        );
        assert_eq!(
            admit(&mut c, 2, Direction::ToClient, b"0123456789"),
            (10, None)
        );
        assert_eq!(
            admit(&mut c, 1, Direction::ToClient, b"0123456789"),
            (10, Some(1))
        );
    }

    #[test]
    fn after_zero_cuts_before_the_next_byte() {
        let mut c = count_cut(Direction::ToServer, 0);
        assert_eq!(admit(&mut c, 0, Direction::ToServer, b"x"), (0, Some(1)));
    }
}
