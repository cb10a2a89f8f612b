//! The three contenders, each run as its own process so that the kernel measures it alone:
//! the real `imapmig` CLI (release build), `mbsync` (Debian's isync) with a generated IMAP→IMAP
//! channel, and the raw ceiling — this benchmark binary itself, re-run in child mode.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imapmig_core::engine::Account;
use imapmig_core::imap::{BodyEvent, Credentials, Endpoint, Security, Session};
use imapmig_core::model::{Folder, MessageMeta, Uid};

use crate::measure::{self, ServerCpu, Usage};

/// How to log in to one account of one server.
#[derive(Clone, Debug)]
pub struct Login {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Login {
    pub fn account(&self) -> Account {
        let mut endpoint = Endpoint::new(&self.host, self.port, Security::Cleartext);
        endpoint.timeout = Duration::from_secs(300);
        Account {
            endpoint,
            credentials: Credentials::password(self.user.clone(), self.password.clone()),
        }
    }
}

/// What every run needs.
pub struct Bench {
    /// Scratch space: state files, mbsync configurations, logs of each run.
    pub work: PathBuf,
    pub imapmig_bin: PathBuf,
    pub connections: usize,
    pub batch: usize,
    pub server_cpu: ServerCpu,
}

/// One measured run of a contender.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub usage: Usage,
    /// CPU seconds the source and the destination Dovecot spent meanwhile.
    pub server_cpu: Vec<f64>,
    /// Busy CPU seconds of the whole machine meanwhile.
    pub machine_cpu: f64,
}

impl Bench {
    /// Runs `cmd` to completion, measured (see [`measure::run`]); panics if it fails.
    pub fn measured(&self, name: &str, cmd: Command) -> Measured {
        let out = self.work.join(format!("{name}.stdout"));
        let err = self.work.join(format!("{name}.stderr"));
        let rss = self.work.join(format!("{name}.rss"));
        self.server_cpu.settle();
        let s0 = self.server_cpu.read();
        let m0 = measure::machine_busy();
        let usage = measure::run(
            cmd,
            File::create(&out).expect("a log file"),
            File::create(&err).expect("a log file"),
            &rss,
        );
        self.server_cpu.settle();
        let s1 = self.server_cpu.read();
        let m1 = measure::machine_busy();
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        if usage.exit != 0 {
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            panic!(
                "{name} failed (exit {}):\n{}\n{}",
                usage.exit,
                tail(&stdout, 20),
                tail(&stderr, 40)
            );
        }
        Measured {
            usage,
            server_cpu: s1.iter().zip(&s0).map(|(a, b)| a - b).collect(),
            machine_cpu: m1 - m0,
        }
    }

    /// `imapmig migrate` from `src` to `dst`, keeping its state in `state` (the same file
    /// again for an incremental pass).
    pub fn imapmig(&self, name: &str, src: &Login, dst: &Login, state: &Path) -> Measured {
        let mut cmd = Command::new(&self.imapmig_bin);
        cmd.arg("migrate");
        for (side, l) in [("src", src), ("dst", dst)] {
            cmd.arg(format!("--{side}-host"))
                .arg(&l.host)
                .arg(format!("--{side}-port"))
                .arg(l.port.to_string())
                .arg(format!("--{side}-user"))
                .arg(&l.user)
                .arg(format!("--{side}-tls"))
                .arg("none");
        }
        cmd.arg("--state")
            .arg(state)
            .arg("--json")
            .arg("--connections")
            .arg(self.connections.to_string())
            .arg("--batch")
            .arg(self.batch.to_string())
            .env("IMAPMIG_SRC_PASSWORD", &src.password)
            .env("IMAPMIG_DST_PASSWORD", &dst.password);
        self.measured(name, cmd)
    }

    /// Writes the mbsync configuration of one channel (once; later passes reuse it and its
    /// sync state, which is what makes them incremental).
    pub fn mbsync_config(&self, channel: &str, src: &Login, dst: &Login) -> PathBuf {
        let dir = self.work.join(format!("mbsync-{channel}"));
        let state = dir.join("state");
        std::fs::create_dir_all(&state).expect("mbsync state dir");
        let conf = dir.join("mbsyncrc");
        if conf.exists() {
            return conf;
        }
        let account = |name: &str, l: &Login| {
            format!(
                "IMAPAccount {name}\nHost {}\nPort {}\nUser {}\nPass {}\nSSLType None\nAuthMechs LOGIN\nTimeout 300\n\n\
                 IMAPStore {name}-store\nAccount {name}\n\n",
                l.host, l.port, l.user, l.password
            )
        };
        let text = format!(
            "# Generated by imapmig's benches/e2e: an IMAP-to-IMAP copy, new mail and flags\n\
             # pulled from the far side (source) to the near side (destination).\n\n{}{}\
             Channel {channel}\nFar :src-store:\nNear :dst-store:\nPatterns *\nCreate Near\n\
             Sync Pull\nCopyArrivalDate yes\nSyncState {}/\n",
            account("src", src),
            account("dst", dst),
            state.display()
        );
        std::fs::write(&conf, text).expect("write mbsyncrc");
        conf
    }

    /// `mbsync -a` on a configuration from [`Bench::mbsync_config`].
    pub fn mbsync(&self, name: &str, conf: &Path) -> Measured {
        let mut cmd = Command::new("mbsync");
        cmd.arg("-c").arg(conf).arg("-a");
        self.measured(name, cmd)
    }

    /// The raw ceiling: this binary in child mode (see [`ceiling_child`]); with `multiappend`,
    /// messages go to the destination in MULTIAPPEND commands (RFC 3502) of up to
    /// [`MULTIAPPEND_BATCH`] messages instead of one APPEND each.
    pub fn ceiling(&self, name: &str, src: &Login, dst: &Login, multiappend: bool) -> Measured {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut cmd = Command::new(exe);
        cmd.arg("--ceiling-child").env(
            CEILING_ENV,
            [
                src.host.as_str(),
                &src.port.to_string(),
                &src.user,
                &src.password,
                &dst.host,
                &dst.port.to_string(),
                &dst.user,
                &dst.password,
                &self.connections.to_string(),
                if multiappend { "multi" } else { "single" },
            ]
            .join("\n"),
        );
        self.measured(name, cmd)
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

const CEILING_ENV: &str = "IMAPMIG_BENCH_CEILING";
/// Body fetches kept in flight on the source connection.
const FETCH_WINDOW: usize = 64;
/// APPENDs sent before the oldest one's completion is read.
const APPEND_DEPTH: usize = 64;

/// Child mode: copies every folder of the source account to the destination account with
/// nothing but the protocol — pipelined `UID FETCH BODY.PEEK[]` streamed into pipelined
/// APPENDs (flags and INTERNALDATE kept, into the SELECTed target folder), folders spread over
/// the same number of connection pairs imapmig gets. No state, no fingerprints, no planning,
/// no per-batch waits: the fastest the two servers allow this client.
pub fn ceiling_child() -> i32 {
    let spec = std::env::var(CEILING_ENV).unwrap_or_default();
    let f: Vec<&str> = spec.split('\n').collect();
    if f.len() != 10 {
        eprintln!("ceiling: bad {CEILING_ENV}");
        return 2;
    }
    let login = |i: usize| Login {
        host: f[i].into(),
        port: f[i + 1].parse().unwrap_or(143),
        user: f[i + 2].into(),
        password: f[i + 3].into(),
    };
    let (src, dst) = (login(0).account(), login(4).account());
    let connections: usize = f[8].parse().unwrap_or(2);
    let multi = f[9] == "multi";
    let dst_login = login(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match rt.block_on(ceiling(src, dst, dst_login, connections.max(1), multi)) {
        Ok((n, bytes)) => {
            println!("{{\"copied\":{n},\"bytes\":{bytes}}}");
            0
        }
        Err(e) => {
            eprintln!("ceiling: {e}");
            1
        }
    }
}

async fn ceiling(
    src: Account,
    dst: Account,
    dst_login: Login,
    connections: usize,
    multi: bool,
) -> Result<(u64, u64), String> {
    let e = |e: imapmig_core::imap::ImapError| e.to_string();
    let mut s = src.open().await.map_err(e)?;
    let mut d = dst.open().await.map_err(e)?;
    let folders: Vec<Folder> = s
        .list()
        .await
        .map_err(e)?
        .into_iter()
        .filter(|f| f.selectable())
        .collect();
    let existing: HashSet<String> = d
        .list()
        .await
        .map_err(e)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    // Both servers have the same layout, so a name's wire form is the same on both.
    let mut missing: Vec<&Folder> = folders
        .iter()
        .filter(|f| !existing.contains(&f.name))
        .collect();
    missing.sort_by_key(|f| f.name.len());
    for f in missing {
        d.create(&f.raw).await.map_err(e)?;
    }
    let queue = Arc::new(Mutex::new(folders.into_iter().collect::<VecDeque<_>>()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut first = Some((s, d));
    for _ in 0..connections {
        let queue = queue.clone();
        let pair = first.take();
        let (src, dst, dst_login) = (src.clone(), dst.clone(), dst_login.clone());
        tasks.spawn(async move {
            let (mut s, mut d) = match pair {
                Some(p) => p,
                None => (src.open().await.map_err(e)?, dst.open().await.map_err(e)?),
            };
            let mut raw = if multi {
                Some(RawDst::open(&dst_login).await.map_err(|e| e.to_string())?)
            } else {
                None
            };
            let mut total = (0u64, 0u64);
            loop {
                let next = queue.lock().expect("queue").pop_front();
                let Some(f) = next else { break };
                let (n, b) = match raw.as_mut() {
                    Some(r) => copy_folder_multi(&mut s, r, &f).await?,
                    None => copy_folder(&mut s, &mut d, &f).await.map_err(e)?,
                };
                total.0 += n;
                total.1 += b;
            }
            s.logout().await;
            d.logout().await;
            Ok::<_, String>(total)
        });
    }
    let mut total = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (n, b) = r.map_err(|e| e.to_string())??;
        total.0 += n;
        total.1 += b;
    }
    Ok(total)
}

async fn copy_folder(
    s: &mut Session,
    d: &mut Session,
    f: &Folder,
) -> Result<(u64, u64), imapmig_core::imap::ImapError> {
    s.examine(&f.raw).await?;
    d.select(&f.raw).await?;
    let metas = s.fetch_meta("1:*", None).await?;
    let by_uid: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    let mut next = uids.len().min(FETCH_WINDOW);
    if next > 0 {
        s.send_fetch_bodies(&uids[..next]).await?;
    }
    let mut tags: VecDeque<String> = VecDeque::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        {
            let Some(ev) = s.next_body().await? else {
                break;
            };
            match ev {
                BodyEvent::Body(mut b) => {
                    let Some(m) = by_uid.get(&b.uid) else {
                        continue;
                    };
                    let mut flags = m.flags.clone();
                    flags.remove("\\Recent");
                    let tag = d
                        .append_send_fetched(
                            &f.raw,
                            &flags,
                            m.internal_date.as_ref(),
                            &mut b,
                            |_| {},
                        )
                        .await?;
                    tags.push_back(tag);
                    n += 1;
                    bytes += b.len;
                }
                BodyEvent::Missing(uid)
                | BodyEvent::Failed(uid, _)
                | BodyEvent::Withheld { uid, .. }
                | BodyEvent::Unasked { uid, .. } => {
                    eprintln!("ceiling: {}: UID {uid} could not be fetched", f.name);
                }
            }
        }
        if s.fetches_in_flight() <= FETCH_WINDOW / 2 && next < uids.len() {
            let k = (uids.len() - next).min(FETCH_WINDOW / 2);
            s.send_fetch_bodies(&uids[next..next + k]).await?;
            next += k;
        }
        while tags.len() > APPEND_DEPTH {
            if let Some(t) = tags.pop_front() {
                d.append_wait(&t, &f.raw).await?;
            }
        }
    }
    for t in tags {
        d.append_wait(&t, &f.raw).await?;
    }
    Ok((n, bytes))
}

/// Messages per MULTIAPPEND command (and at most [`MULTIAPPEND_BYTES`] of them).
pub const MULTIAPPEND_BATCH: usize = 50;
const MULTIAPPEND_BYTES: u64 = 8 * 1024 * 1024;
/// MULTIAPPEND commands sent before the oldest one's completion is read.
const MULTIAPPEND_DEPTH: usize = 4;

/// A bare destination connection for MULTIAPPEND, which `Session` does not offer: just
/// enough IMAP to log in, SELECT, and stream many messages into one APPEND command.
struct RawDst {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::io::BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    next: u64,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl RawDst {
    async fn open(l: &Login) -> std::io::Result<RawDst> {
        use tokio::io::AsyncBufReadExt;
        let sock = tokio::net::TcpStream::connect((l.host.as_str(), l.port)).await?;
        sock.set_nodelay(true)?;
        let (r, w) = sock.into_split();
        let mut d = RawDst {
            r: tokio::io::BufReader::with_capacity(64 * 1024, r),
            w: tokio::io::BufWriter::with_capacity(256 * 1024, w),
            next: 0,
        };
        let mut greeting = String::new();
        d.r.read_line(&mut greeting).await?;
        d.command(&format!(
            "LOGIN {} {}",
            quoted(&l.user),
            quoted(&l.password)
        ))
        .await?;
        Ok(d)
    }

    fn tag(&mut self) -> String {
        self.next += 1;
        format!("r{}", self.next)
    }

    /// Reads until the tagged completion of `tag`; fails unless it is OK.
    async fn wait(&mut self, tag: &str) -> std::io::Result<()> {
        use tokio::io::AsyncBufReadExt;
        let prefix = format!("{tag} ");
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other(
                    "the destination closed the connection",
                ));
            }
            if let Some(rest) = line.strip_prefix(&prefix) {
                return if rest.starts_with("OK") {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "destination: {}",
                        line.trim_end()
                    )))
                };
            }
        }
    }

    async fn command(&mut self, cmd: &str) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let tag = self.tag();
        self.w
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await?;
        self.w.flush().await?;
        self.wait(&tag).await
    }
}

/// [`copy_folder`] with the destination side in MULTIAPPEND commands.
async fn copy_folder_multi(
    s: &mut Session,
    d: &mut RawDst,
    f: &Folder,
) -> Result<(u64, u64), String> {
    use tokio::io::AsyncWriteExt;
    let e = |e: imapmig_core::imap::ImapError| e.to_string();
    let io = |e: std::io::Error| e.to_string();
    s.examine(&f.raw).await.map_err(e)?;
    let target = quoted(&f.raw);
    d.command(&format!("SELECT {target}")).await.map_err(io)?;
    let metas = s.fetch_meta("1:*", None).await.map_err(e)?;
    let by_uid: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    let mut next = uids.len().min(FETCH_WINDOW);
    if next > 0 {
        s.send_fetch_bodies(&uids[..next]).await.map_err(e)?;
    }
    let mut tags: VecDeque<String> = VecDeque::new();
    // The MULTIAPPEND command being written: its tag, messages and bytes so far.
    let mut open: Option<(String, usize, u64)> = None;
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        {
            let Some(ev) = s.next_body().await.map_err(e)? else {
                break;
            };
            match ev {
                BodyEvent::Body(mut b) => {
                    let Some(m) = by_uid.get(&b.uid) else {
                        continue;
                    };
                    let mut flags = m.flags.clone();
                    flags.remove("\\Recent");
                    if open.is_none() {
                        let tag = d.tag();
                        d.w.write_all(format!("{tag} APPEND {target}").as_bytes())
                            .await
                            .map_err(io)?;
                        open = Some((tag, 0, 0));
                    }
                    let date = m
                        .internal_date
                        .as_ref()
                        .map(|t| format!(" \"{}\"", t.to_imap()))
                        .unwrap_or_default();
                    d.w.write_all(
                        format!(" {}{date} {{{}+}}\r\n", flags.to_imap_list(), b.len).as_bytes(),
                    )
                    .await
                    .map_err(io)?;
                    while let Some(c) = b.chunk().await.map_err(e)? {
                        d.w.write_all(&c).await.map_err(io)?;
                    }
                    n += 1;
                    bytes += b.len;
                    if let Some((_, count, size)) = open.as_mut() {
                        *count += 1;
                        *size += b.len;
                    }
                }
                BodyEvent::Missing(uid)
                | BodyEvent::Failed(uid, _)
                | BodyEvent::Withheld { uid, .. }
                | BodyEvent::Unasked { uid, .. } => {
                    eprintln!("ceiling: {}: UID {uid} could not be fetched", f.name);
                }
            }
        }
        let full = open
            .as_ref()
            .is_some_and(|(_, c, b)| *c >= MULTIAPPEND_BATCH || *b >= MULTIAPPEND_BYTES);
        if full {
            if let Some((tag, _, _)) = open.take() {
                d.w.write_all(b"\r\n").await.map_err(io)?;
                d.w.flush().await.map_err(io)?;
                tags.push_back(tag);
            }
        }
        if s.fetches_in_flight() <= FETCH_WINDOW / 2 && next < uids.len() {
            let k = (uids.len() - next).min(FETCH_WINDOW / 2);
            s.send_fetch_bodies(&uids[next..next + k])
                .await
                .map_err(e)?;
            next += k;
        }
        while tags.len() > MULTIAPPEND_DEPTH {
            if let Some(t) = tags.pop_front() {
                d.wait(&t).await.map_err(io)?;
            }
        }
    }
    if let Some((tag, _, _)) = open.take() {
        d.w.write_all(b"\r\n").await.map_err(io)?;
        tags.push_back(tag);
    }
    d.w.flush().await.map_err(io)?;
    for t in tags {
        d.wait(&t).await.map_err(io)?;
    }
    Ok((n, bytes))
}
