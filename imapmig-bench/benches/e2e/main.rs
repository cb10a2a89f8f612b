//! End-to-end benchmark: imapmig, mbsync and the raw ceiling side by side, in one run, against
//! the same two private Dovecot servers; then incremental passes, many small messages, and
//! memory with one very large message. Prints one table with the ratios and writes it as JSON
//! to `target/bench/e2e.json`.
//!
//! Run: `bash scripts/bench` (or `cargo bench --bench e2e`; `-- --quick` for a short run).
//! Settings (environment): see benches/README.md. Timings are never asserted anywhere: they
//! are noisy. This is how we look at them.

mod check;
mod contenders;
mod mailbox;
mod measure;
mod scaling;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};
use serde_json::{json, Value};

use check::{AccountDigest, Fidelity};
use contenders::{Bench, Login, Measured};

/// Everything the run can be told, from the environment and the command line.
struct Settings {
    messages: u64,
    large_share: f64,
    small_sizes: Vec<u64>,
    big_mb: u64,
    runs: usize,
    connections: usize,
    batch: usize,
    seed: u64,
    skip: Vec<String>,
    /// Account counts of the batch scaling runs, and messages per account.
    scale_accounts: Vec<usize>,
    scale_messages: u64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env(args: &[String]) -> Settings {
        let quick = args.iter().any(|a| a == "--quick");
        let full = args.iter().any(|a| a == "--full");
        let small_default = if quick { "2000" } else { "2000,20000" };
        let small: String = env_or("IMAPMIG_BENCH_SMALL", small_default.to_string());
        let scale_default = if quick { "20,50" } else { "20,50,100,200" };
        let scale: String = env_or("IMAPMIG_BENCH_ACCOUNTS", scale_default.to_string());
        Settings {
            messages: env_or(
                "IMAPMIG_BENCH_MESSAGES",
                if quick {
                    1000
                } else if full {
                    20_000
                } else {
                    3000
                },
            ),
            large_share: env_or("IMAPMIG_BENCH_LARGE_SHARE", 0.03),
            small_sizes: small
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("IMAPMIG_BENCH_SMALL: numbers"))
                .collect(),
            big_mb: env_or("IMAPMIG_BENCH_BIG_MB", 100),
            runs: env_or("IMAPMIG_BENCH_RUNS", if quick { 1 } else { 3 }).max(1),
            connections: env_or("IMAPMIG_BENCH_CONNECTIONS", 2),
            batch: env_or("IMAPMIG_BENCH_BATCH", 64),
            seed: env_or("IMAPMIG_BENCH_SEED", 0x1A9_2024),
            skip: std::env::var("IMAPMIG_BENCH_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            scale_accounts: scale
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("IMAPMIG_BENCH_ACCOUNTS: numbers"))
                .collect(),
            scale_messages: env_or("IMAPMIG_BENCH_ACCOUNT_MESSAGES", 200),
        }
    }

    fn skips(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s == part)
    }
}

/// One line of the table.
struct Row {
    scenario: String,
    tool: &'static str,
    /// Messages and bytes this pass had to copy.
    messages: u64,
    bytes: u64,
    /// Messages in the source account at the time.
    on_source: u64,
    m: Measured,
    check: Fidelity,
    /// Whether the check read every body (else: counted messages per folder).
    full_check: bool,
}

impl Row {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.m.usage.wall.max(1e-6)
    }
    fn msg_s(&self) -> f64 {
        self.messages as f64 / self.m.usage.wall.max(1e-6)
    }
    fn server_cpu(&self) -> f64 {
        self.m.server_cpu.iter().sum()
    }
    fn others_cpu(&self) -> f64 {
        (self.m.machine_cpu - self.server_cpu() - self.m.usage.cpu()).max(0.0)
    }
    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "tool": self.tool,
            "messages": self.messages,
            "bytes": self.bytes,
            "messages_on_source": self.on_source,
            "wall_s": self.m.usage.wall,
            "messages_per_s": self.msg_s(),
            "mb_per_s": self.mb_s(),
            "cpu_user_s": self.m.usage.user,
            "cpu_sys_s": self.m.usage.sys,
            "peak_rss_kib": self.m.usage.max_rss_kib,
            "peak_rss_measured_by": if self.m.usage.rss_exact { "GNU time %M" } else { "wait4 ru_maxrss (upper bound: includes the benchmark's own peak)" },
            "server_cpu_s": { "source": self.m.server_cpu.first(), "destination": self.m.server_cpu.get(1) },
            "machine_busy_cpu_s": self.m.machine_cpu,
            "other_processes_cpu_s": self.others_cpu(),
            "client_cpu_s_per_gb": (self.bytes > 0).then(|| self.m.usage.cpu() / (self.bytes as f64 / 1e9)),
            "server_cpu_s_per_gb": (self.bytes > 0).then(|| self.server_cpu() / (self.bytes as f64 / 1e9)),
            "check": {
                "method": if self.full_check { "every body hashed, flags and INTERNALDATE compared" } else { "messages counted per folder" },
                "complete": self.check.complete(),
                "exact": self.check.exact(),
                "missing": self.check.missing,
                "extra": self.check.extra,
                "altered_by_x_tuid_header": self.check.altered,
                "flags_differ": self.check.flags_differ,
                "keywords_lost": self.check.keywords_lost,
                "dates_differ": self.check.dates_differ,
            },
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--ceiling-child") {
        std::process::exit(contenders::ceiling_child());
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: do nothing heavy.
        println!("e2e: an end-to-end benchmark; run it with `cargo bench --bench e2e` (see benches/README.md)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run(Settings::from_env(&args)));
}

fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/e2e-<hash>
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The release `imapmig` binary: `$IMAPMIG_BIN`, or built now with cargo (cargo does not hold
/// its lock while a benchmark runs, so this works from inside `cargo bench`).
fn imapmig_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IMAPMIG_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    eprintln!("bench: building the release imapmig CLI (cargo build --release -p imapmig-cli)...");
    let st = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "imapmig-cli"])
        .status()
        .expect("run cargo");
    assert!(st.success(), "cargo build --release -p imapmig-cli failed");
    let exe = std::env::current_exe().expect("own path");
    let release = exe
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target_dir().join("release"));
    let bin = release.join("imapmig");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

fn first_line_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "not found".into())
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let dovecot = ["/usr/sbin/dovecot", "dovecot"]
        .iter()
        .map(|d| first_line_of(d, &["--version"]))
        .find(|v| v != "not found")
        .unwrap_or_else(|| "not found".into());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "dovecot": dovecot,
        "mbsync": first_line_of("mbsync", &["--version"]),
        "load_average_at_start": measure::load_average(),
    })
}

fn say(t0: Instant, msg: &str) {
    eprintln!("[{:>6.1}s] {msg}", t0.elapsed().as_secs_f64());
}

fn login(d: &Dovecot, user: &str) -> Login {
    // Tool names like "ceiling+multi" make user names; Dovecot reads '+' as a detail separator.
    let u = d.user(&user.replace('+', "-"));
    Login {
        host: d.host().to_string(),
        port: d.imap_port(),
        user: u.name,
        password: u.password,
    }
}

/// Gives every folder of `user` a new UIDVALIDITY (from `base` up), as a server that renumbers
/// its folders between sessions would; returns how many folders.
fn new_uid_validities(d: &Dovecot, user: &str, base: u32) -> u32 {
    let list = d.doveadm_ok(&["mailbox", "list", "-u", user]);
    let mut n = 0;
    for folder in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let validity = (base + n).to_string();
        d.doveadm_ok(&[
            "mailbox",
            "update",
            "-u",
            user,
            "--uid-validity",
            &validity,
            folder,
        ]);
        n += 1;
    }
    n
}

fn counts_of(d: &AccountDigest) -> BTreeMap<String, u64> {
    d.iter().map(|(k, v)| (k.clone(), v.messages())).collect()
}

struct Ctx {
    bench: Bench,
    src: Dovecot,
    dst: Dovecot,
    rows: Vec<Row>,
    t0: Instant,
}

impl Ctx {
    /// Runs one first pass of `tool` into a fresh destination user and checks every message.
    #[allow(clippy::too_many_arguments)]
    async fn first_pass(
        &mut self,
        scenario: &str,
        tool: &'static str,
        src: &Login,
        dst_user: &str,
        source: &AccountDigest,
    ) -> Login {
        let dst = login(&self.dst, dst_user);
        say(self.t0, &format!("{scenario}: {tool} -> {dst_user}"));
        let m = self.run_tool(tool, dst_user, src, &dst);
        let copy = check::digest(&dst.account()).await;
        let fid = check::compare(source, &copy);
        let (messages, bytes) = check::total(source);
        if !fid.complete() {
            eprintln!(
                "bench: WARNING: {tool} did not copy everything: {}",
                fid.describe()
            );
        }
        self.rows.push(Row {
            scenario: scenario.into(),
            tool,
            messages,
            bytes,
            on_source: messages,
            m,
            check: fid,
            full_check: true,
        });
        dst
    }

    fn run_tool(&self, tool: &str, dst_user: &str, src: &Login, dst: &Login) -> Measured {
        let name = format!("{tool}-{dst_user}-{}", self.rows.len());
        match tool {
            "imapmig" => {
                let state = self.bench.work.join(format!("{dst_user}.sqlite"));
                self.bench.imapmig(&name, src, dst, &state)
            }
            "mbsync" => {
                let conf = self.bench.mbsync_config(dst_user, src, dst);
                self.bench.mbsync(&name, &conf)
            }
            // imapmig with a state file it has never seen (lost, fresh, another one): what
            // re-matching a full destination by content costs instead of copying it again.
            "imapmig, no state" => {
                let state = self
                    .bench
                    .work
                    .join(format!("{dst_user}-fresh-{}.sqlite", self.rows.len()));
                self.bench.imapmig(&name, src, dst, &state)
            }
            "ceiling" => self.bench.ceiling(&name, src, dst, false),
            "ceiling+multi" => self.bench.ceiling(&name, src, dst, true),
            other => unreachable!("no tool {other}"),
        }
    }

    /// Runs `tool` again into a destination it filled before; checks counts per folder.
    #[allow(clippy::too_many_arguments)]
    async fn incremental(
        &mut self,
        scenario: &str,
        tool: &'static str,
        src: &Login,
        dst_user: &str,
        source_counts: &BTreeMap<String, u64>,
        new: (u64, u64),
    ) {
        let dst = login(&self.dst, dst_user);
        say(self.t0, &format!("{scenario}: {tool} -> {dst_user}"));
        let m = self.run_tool(tool, dst_user, src, &dst);
        let counts = check::counts(&dst.account()).await;
        let fid = check::compare_counts(source_counts, &counts);
        if !fid.complete() {
            eprintln!("bench: WARNING: {tool}: {}", fid.describe());
        }
        self.rows.push(Row {
            scenario: scenario.into(),
            tool,
            messages: new.0,
            bytes: new.1,
            on_source: source_counts.values().sum(),
            m,
            check: fid,
            full_check: false,
        });
    }
}

async fn run(cfg: Settings) {
    let t0 = Instant::now();
    let machine = machine();
    eprintln!(
        "bench: {} x {}, load {:.2}; dovecot {}, {}",
        machine["nproc"],
        machine["cpu_model"],
        machine["load_average_at_start"],
        machine["dovecot"],
        machine["mbsync"]
    );
    let bin = imapmig_binary();
    let out_dir = target_dir().join("bench");
    let work = out_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("create target/bench/work");

    say(t0, "starting two private Dovecot servers");
    let options = || DovecotOptions {
        // The generated mailboxes are large: no quota in the way.
        default_quota_kib: 1 << 40,
        ..DovecotOptions::default()
    };
    let src = Dovecot::start_with(Flavour::Slash, options());
    let dst = Dovecot::start_with(Flavour::Slash, options());
    let server_cpu = measure::ServerCpu::find(&[&src.config_file(), &dst.config_file()]);
    let mut cx = Ctx {
        bench: Bench {
            work,
            imapmig_bin: bin,
            connections: cfg.connections,
            batch: cfg.batch,
            server_cpu,
        },
        src,
        dst,
        rows: Vec::new(),
        t0,
    };
    let tools: Vec<&'static str> = ["imapmig", "mbsync", "ceiling", "ceiling+multi"]
        .into_iter()
        .filter(|t| {
            let skipped = cfg.skips(t) || (t.starts_with("ceiling") && cfg.skips("ceiling"));
            !skipped
        })
        .collect();
    let incremental_tools: Vec<&'static str> = tools
        .iter()
        .copied()
        .filter(|t| !t.starts_with("ceiling"))
        .collect();

    // 1. The realistic mailbox: first pass, incremental passes.
    let main_src = login(&cx.src, "main");
    let shape = mailbox::realistic(cfg.large_share);
    let specs = mailbox::specs(cfg.seed, shape, 0, cfg.messages);
    say(
        t0,
        &format!("filling the source with {} messages", cfg.messages),
    );
    let filled = mailbox::fill(&main_src.account(), &specs).await;
    drop(specs);
    say(
        t0,
        &format!(
            "filled: {} messages, {:.1} MB; reading it back (also the warm-up of the source)",
            filled.messages,
            filled.bytes as f64 / 1e6
        ),
    );
    let source = check::digest(&main_src.account()).await;
    let main_scenario = format!("first pass ({} msgs)", filled.messages);
    if !cfg.skips("ceiling") {
        // Warm up the destination too (and the code paths of both servers), figures discarded.
        let warm = login(&cx.dst, "warmup");
        say(t0, "warm-up copy (ceiling client, not counted)");
        let _ = cx.bench.ceiling("warmup", &main_src, &warm, false);
    }
    for run in 0..cfg.runs {
        // Rotate the order so that no tool always runs first (or on the fullest disk).
        let mut order = tools.clone();
        let n = order.len().max(1);
        order.rotate_left(run % n);
        for tool in order {
            cx.first_pass(
                &main_scenario,
                tool,
                &main_src,
                &format!("{tool}-main-{run}"),
                &source,
            )
            .await;
        }
    }
    // Unchanged passes are short and the first one after a big copy also pays for the
    // servers' index housekeeping: repeat them (interleaved) and take the median.
    let source_counts = counts_of(&source);
    for _ in 0..cfg.runs {
        for tool in &incremental_tools {
            cx.incremental(
                "incremental, nothing new",
                tool,
                &main_src,
                &format!("{tool}-main-0"),
                &source_counts,
                (0, 0),
            )
            .await;
        }
    }
    let new_n = (cfg.messages / 100).max(1);
    let new_specs = mailbox::specs(cfg.seed, shape, cfg.messages, new_n);
    say(
        t0,
        &format!("adding {new_n} new messages (1 %) to the source"),
    );
    let added = mailbox::fill(&main_src.account(), &new_specs).await;
    let counts_now = check::counts(&main_src.account()).await;
    for tool in &incremental_tools {
        cx.incremental(
            "incremental, 1 % new",
            tool,
            &main_src,
            &format!("{tool}-main-0"),
            &counts_now,
            (added.messages, added.bytes),
        )
        .await;
    }

    // 2. Many small messages: per-message costs, memory, and what an unchanged pass costs.
    if !cfg.skips("small") {
        for &n in &cfg.small_sizes {
            let user = format!("small{n}");
            let s = login(&cx.src, &user);
            let specs = mailbox::specs(cfg.seed ^ n, mailbox::small_only(), 0, n);
            say(t0, &format!("filling {user} with {n} small messages"));
            mailbox::fill(&s.account(), &specs).await;
            let digest = check::digest(&s.account()).await;
            let counts = counts_of(&digest);
            for tool in &tools {
                cx.first_pass(
                    &format!("{n} small msgs: first pass"),
                    tool,
                    &s,
                    &format!("{tool}-{user}"),
                    &digest,
                )
                .await;
            }
            for _ in 0..cfg.runs {
                for tool in &incremental_tools {
                    cx.incremental(
                        &format!("{n} small msgs: nothing new"),
                        tool,
                        &s,
                        &format!("{tool}-{user}"),
                        &counts,
                        (0, 0),
                    )
                    .await;
                }
            }
            // 1 % new in large folders: what a pass of the incremental window costs.
            let new_n = (n / 100).max(1);
            let more = mailbox::specs(cfg.seed ^ n, mailbox::small_only(), n, new_n);
            let added = mailbox::fill(&s.account(), &more).await;
            let counts_now = check::counts(&s.account()).await;
            for tool in &incremental_tools {
                cx.incremental(
                    &format!("{n} small msgs: 1 % new"),
                    tool,
                    &s,
                    &format!("{tool}-{user}"),
                    &counts_now,
                    (added.messages, added.bytes),
                )
                .await;
            }
            // The state lost on a full destination: nothing may be copied twice (the counts
            // check says so), and the re-match should cost less than the first pass.
            cx.incremental(
                &format!("{n} small msgs: state lost"),
                "imapmig, no state",
                &s,
                &format!("imapmig-{user}"),
                &counts_now,
                (0, 0),
            )
            .await;
            // A server that gives every folder a new UIDVALIDITY between sessions (GNU Mailutils
            // does, on both sides): every copied message must be recognised by content again,
            // and nothing copied twice (the counts check says so).
            let dst_user = format!("imapmig-{user}");
            let mut renumbered = 0;
            for (server, who) in [(&cx.src, s.user.as_str()), (&cx.dst, dst_user.as_str())] {
                renumbered += new_uid_validities(server, who, 1_000_000 + n as u32);
            }
            say(t0, &format!("{renumbered} folders given a new UIDVALIDITY"));
            cx.incremental(
                &format!("{n} small msgs: UIDVALIDITY changed"),
                "imapmig",
                &s,
                &dst_user,
                &counts_now,
                (0, 0),
            )
            .await;
        }
    }

    // 3. Memory: one message of 1 MB, then one of 100 MB.
    if !cfg.skips("big") {
        for mb in [1, cfg.big_mb] {
            let user = format!("one{mb}mb");
            let s = login(&cx.src, &user);
            say(t0, &format!("filling {user} with one {mb} MB message"));
            mailbox::fill(
                &s.account(),
                &[mailbox::one_large((mb * 1_000_000) as usize, mb)],
            )
            .await;
            let digest = check::digest(&s.account()).await;
            for tool in &incremental_tools {
                cx.first_pass(
                    &format!("one {mb} MB message"),
                    tool,
                    &s,
                    &format!("{tool}-{user}"),
                    &digest,
                )
                .await;
            }
        }
    }

    // 4. Many accounts through the batch scheduler, one process: how it scales.
    if !cfg.skips("scaling") {
        if let Some(&most) = cfg.scale_accounts.iter().max() {
            say(
                t0,
                &format!(
                    "filling {most} accounts with {} small messages each",
                    cfg.scale_messages
                ),
            );
            let sources = scaling::fill_sources(&cx.src, most, cfg.scale_messages, cfg.seed).await;
            for &n in &cfg.scale_accounts {
                say(
                    t0,
                    &format!("batch: {n} accounts (imapmig run --until-idle)"),
                );
                let r = scaling::run(&cx.bench, &cx.src, &cx.dst, &sources, n).await;
                if !r.check.complete() {
                    eprintln!("bench: WARNING: batch of {n}: {}", r.check.describe());
                }
                cx.rows.push(Row {
                    scenario: scale_scenario(r.accounts, cfg.scale_messages),
                    tool: "imapmig",
                    messages: r.messages,
                    bytes: r.bytes,
                    on_source: r.messages,
                    m: r.measured,
                    check: r.check,
                    full_check: false,
                });
            }
        }
    }

    let machine_end = measure::load_average();
    let (table, ratios) = report(&cx.rows, &cfg);
    println!("{table}");
    let doc = json!({
        "machine": machine,
        "load_average_at_end": machine_end,
        "settings": {
            "messages": cfg.messages,
            "large_share": cfg.large_share,
            "small_sizes": cfg.small_sizes,
            "big_mb": cfg.big_mb,
            "runs": cfg.runs,
            "imapmig_connections": cfg.connections,
            "imapmig_batch": cfg.batch,
            "seed": cfg.seed,
            "batch_accounts": cfg.scale_accounts,
            "batch_messages_per_account": cfg.scale_messages,
            "batch": "imapmig task create (scheduler defaults: 20 accounts at once, 2 connections each, 20 per source host, 40 per destination host; destination via the master user), accounts import, then run --until-idle (measured)",
            "mbsync": "IMAP->IMAP channel: Sync Pull, Create Near, CopyArrivalDate yes, defaults otherwise (FSync yes, unlimited PipelineDepth)",
            "ceiling": "same binary in child mode: pipelined FETCH BODY.PEEK[] streamed into pipelined APPEND, same connection count as imapmig",
        },
        "runs": cx.rows.iter().map(Row::json).collect::<Vec<_>>(),
        "ratios": ratios,
        "table": table,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    let path = out_dir.join("e2e.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("JSON"))
        .expect("write e2e.json");
    eprintln!(
        "bench: wrote {} ({:.0} s in all)",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    if let Ok(secs) = std::env::var("IMAPMIG_BENCH_HOLD") {
        // Keep the servers (and everything on them) up for a look by hand: passwords are in
        // <dir>/auth/passdb/<user>, the runs' state files and logs in target/bench/work.
        let secs: u64 = secs.parse().unwrap_or(600);
        for (side, d) in [("source", &cx.src), ("destination", &cx.dst)] {
            eprintln!(
                "bench: holding the {side}: 127.0.0.1:{} (dir {})",
                d.imap_port(),
                d.dir().display()
            );
        }
        eprintln!("bench: holding for {secs} s (IMAPMIG_BENCH_HOLD)");
        std::thread::sleep(std::time::Duration::from_secs(secs));
    }
}

fn scale_scenario(accounts: usize, per_account: u64) -> String {
    format!("batch: {accounts} accounts x {per_account} msgs")
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// The table, and the ratios the issue sets targets for.
fn report(rows: &[Row], cfg: &Settings) -> (String, Value) {
    let mut t = String::new();
    t.push_str(&format!(
        "{:<42} {:<13} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>7} {:>7}  {}\n",
        "scenario",
        "tool",
        "msgs",
        "MB",
        "wall s",
        "msg/s",
        "MB/s",
        "CPU s",
        "srv CPU",
        "others",
        "RSS MB",
        "check"
    ));
    // One line per (scenario, tool): the run with the median wall time (all runs are in the
    // JSON).
    let mut groups: Vec<(&str, &str, Vec<&Row>)> = Vec::new();
    for r in rows {
        match groups
            .iter_mut()
            .find(|g| g.0 == r.scenario && g.1 == r.tool)
        {
            Some(g) => g.2.push(r),
            None => groups.push((&r.scenario, r.tool, vec![r])),
        }
    }
    for (_, _, mut rs) in groups {
        rs.sort_by(|a, b| a.m.usage.wall.total_cmp(&b.m.usage.wall));
        let r = rs[rs.len() / 2];
        let bad = rs.iter().filter(|x| !x.check.complete()).count();
        let scenario = if rs.len() > 1 {
            format!("{} [median of {}]", r.scenario, rs.len())
        } else {
            r.scenario.clone()
        };
        t.push_str(&format!(
            "{:<42} {:<13} {:>6} {:>7.1} {:>7.2} {:>7.0} {:>6.1} {:>6.2} {:>7.2} {:>7.2} {:>7.1}  {}{}{}\n",
            scenario,
            r.tool,
            r.messages,
            r.bytes as f64 / 1e6,
            r.m.usage.wall,
            r.msg_s(),
            r.mb_s(),
            r.m.usage.cpu(),
            r.server_cpu(),
            r.others_cpu(),
            r.m.usage.max_rss_kib as f64 / 1024.0,
            r.check.describe(),
            if r.full_check { "" } else { " (counts)" },
            if bad > 0 && rs.len() > 1 {
                format!(" ({bad} of {} runs incomplete)", rs.len())
            } else {
                String::new()
            }
        ));
    }
    let pick = |scenario: &str, tool: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.scenario.starts_with(scenario) && r.tool == tool)
            .collect()
    };
    let valid = |rs: Vec<&Row>, f: &dyn Fn(&Row) -> f64| -> Option<f64> {
        median(
            rs.into_iter()
                .filter(|r| r.check.complete())
                .map(f)
                .collect(),
        )
    };
    let mut ratios = Vec::new();
    let mut lines = Vec::new();
    let mut target =
        |name: &str, value: Option<f64>, goal: &str, ok: Option<bool>, shown: String| {
            ratios.push(json!({ "name": name, "value": value, "target": goal, "met": ok }));
            let verdict = match ok {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "n/a",
            };
            lines.push(format!(
                "  {name:<58} {shown:>16}   target {goal:<14} {verdict}"
            ));
        };
    let first = "first pass (";
    let mb_s = |r: &Row| r.mb_s();
    let im = valid(pick(first, "imapmig"), &mb_s);
    let mb = valid(pick(first, "mbsync"), &mb_s);
    let ce = valid(pick(first, "ceiling"), &mb_s);
    let exact = pick(first, "imapmig").iter().all(|r| r.check.exact());
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b.max(1e-9));
    let r1 = ratio(im, mb);
    target(
        "first pass throughput, imapmig / mbsync (byte-exact, keywords)",
        r1,
        ">= 1.10",
        r1.map(|r| r >= 1.1 && exact),
        r1.map(|r| format!("{r:.2}x")).unwrap_or_default(),
    );
    let r2 = ratio(im, ce);
    target(
        "first pass throughput, imapmig / raw ceiling",
        r2,
        ">= 0.90",
        r2.map(|r| r >= 0.9),
        r2.map(|r| format!("{:.0} %", r * 100.0))
            .unwrap_or_default(),
    );
    let cm = valid(pick(first, "ceiling+multi"), &mb_s);
    let r3 = ratio(im, cm);
    target(
        "first pass throughput, imapmig / ceiling with MULTIAPPEND",
        r3,
        "(reference)",
        None,
        r3.map(|r| format!("{:.0} %", r * 100.0))
            .unwrap_or_default(),
    );
    let wall = |r: &Row| r.m.usage.wall;
    let largest = cfg.small_sizes.iter().max().copied();
    let smallest = cfg.small_sizes.iter().min().copied();
    if let Some(n) = largest {
        let sc = format!("{n} small msgs: nothing new");
        let a = valid(pick(&sc, "imapmig"), &wall);
        let b = valid(pick(&sc, "mbsync"), &wall);
        let r = ratio(a, b);
        target(
            &format!("nothing new on {n} msgs, time imapmig / mbsync"),
            r,
            "<= 1.00",
            r.map(|r| r <= 1.0),
            match (a, b) {
                (Some(a), Some(b)) => format!("{a:.2} s / {b:.2} s"),
                _ => String::new(),
            },
        );
    }
    if let Some(n) = largest {
        // Re-matching a full destination after the state was lost, against copying it.
        let lost = valid(
            pick(&format!("{n} small msgs: state lost"), "imapmig, no state"),
            &wall,
        );
        let renumbered = valid(
            pick(&format!("{n} small msgs: UIDVALIDITY changed"), "imapmig"),
            &wall,
        );
        let first_pass = format!("{n} small msgs: first pass");
        for tool in ["imapmig", "mbsync"] {
            let copy = valid(pick(&first_pass, tool), &wall);
            let r = ratio(lost, copy);
            target(
                &format!("state lost on {n} msgs: re-match time / {tool} first pass"),
                r,
                "(reference)",
                None,
                match (lost, copy) {
                    (Some(a), Some(b)) => format!("{a:.2} s / {b:.2} s"),
                    _ => String::new(),
                },
            );
            target(
                &format!("UIDVALIDITY changed on {n} msgs: re-match / {tool} first pass"),
                ratio(renumbered, copy),
                "(reference)",
                None,
                match (renumbered, copy) {
                    (Some(a), Some(b)) => format!("{a:.2} s / {b:.2} s"),
                    _ => String::new(),
                },
            );
        }
    }
    if let (Some(lo), Some(hi)) = (smallest, largest) {
        if lo != hi {
            for tool in ["imapmig", "mbsync"] {
                let a = valid(pick(&format!("{lo} small msgs: nothing new"), tool), &wall);
                let b = valid(pick(&format!("{hi} small msgs: nothing new"), tool), &wall);
                let r = ratio(b, a);
                // Ten times the messages in the same twelve folders: "grows with folders, not
                // messages" reads as well under 2x here.
                target(
                    &format!("nothing new, {tool}: {lo} vs {hi} msgs (12 folders)"),
                    r,
                    if tool == "imapmig" {
                        "< 2x"
                    } else {
                        "(reference)"
                    },
                    if tool == "imapmig" {
                        r.map(|r| r < 2.0)
                    } else {
                        None
                    },
                    match (a, b) {
                        (Some(a), Some(b)) => format!("{a:.2} s / {b:.2} s"),
                        _ => String::new(),
                    },
                );
            }
        }
    }
    let rss = |r: &Row| r.m.usage.max_rss_kib as f64 / 1024.0;
    let big = valid(
        pick(&format!("one {} MB message", cfg.big_mb), "imapmig"),
        &rss,
    );
    let one = valid(pick("one 1 MB message", "imapmig"), &rss);
    target(
        &format!("peak RSS, imapmig, one {} MB message", cfg.big_mb),
        big,
        "< 64 MB",
        big.map(|r| r < 64.0),
        big.map(|r| format!("{r:.1} MB")).unwrap_or_default(),
    );
    let flat = ratio(big, one);
    target(
        &format!("peak RSS, imapmig, {} MB vs 1 MB message", cfg.big_mb),
        flat,
        "within 10 %",
        flat.map(|r| (r - 1.0).abs() <= 0.10),
        match (one, big) {
            (Some(a), Some(b)) => format!("{a:.1} / {b:.1} MB"),
            _ => String::new(),
        },
    );
    if let Some(n) = largest {
        let r = valid(
            pick(&format!("{n} small msgs: first pass"), "imapmig"),
            &rss,
        );
        target(
            &format!("peak RSS, imapmig, {n} small msgs"),
            r,
            "(reference)",
            None,
            r.map(|r| format!("{r:.1} MB")).unwrap_or_default(),
        );
    }
    // Scaling: no target in numbers, but the growth from the fewest to the most accounts is
    // what the figures are for.
    let scale = |n: usize| -> Option<&Row> {
        rows.iter()
            .find(|r| r.scenario == scale_scenario(n, cfg.scale_messages) && r.check.complete())
    };
    for &n in &cfg.scale_accounts {
        if let Some(r) = scale(n) {
            target(
                &format!("batch, {n} accounts: msg/s, peak RSS"),
                Some(r.msg_s()),
                "(reference)",
                None,
                format!(
                    "{:.0} / {:.1} MB",
                    r.msg_s(),
                    r.m.usage.max_rss_kib as f64 / 1024.0
                ),
            );
        }
    }
    let fewest = cfg.scale_accounts.iter().min().copied();
    let most = cfg.scale_accounts.iter().max().copied();
    if let (Some(lo), Some(hi)) = (fewest, most) {
        if let (Some(a), Some(b), true) = (scale(lo), scale(hi), lo != hi) {
            let speed = b.msg_s() / a.msg_s().max(1e-9);
            target(
                &format!("batch, {lo} -> {hi} accounts: msg/s ratio"),
                Some(speed),
                "(reference)",
                None,
                format!("{speed:.2}x"),
            );
            let rss = b.m.usage.max_rss_kib as f64 / (a.m.usage.max_rss_kib as f64).max(1.0);
            target(
                &format!("batch, {lo} -> {hi} accounts: peak RSS ratio"),
                Some(rss),
                "(reference)",
                None,
                format!("{rss:.2}x"),
            );
        }
    }
    t.push_str("\nTargets (ratios from this one run; medians where runs > 1):\n");
    t.push_str(&lines.join("\n"));
    t.push('\n');
    (t, Value::Array(ratios))
}
