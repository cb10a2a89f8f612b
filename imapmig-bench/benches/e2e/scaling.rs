//! Many accounts through the batch scheduler in one process: the real `imapmig` CLI runs a task
//! (`task create`, `accounts import` of a CSV, then `run --until-idle`, the measured part) over
//! N accounts of M small messages each, for several N. Each size gets fresh destination users
//! and a fresh state file; the source accounts are shared (the first N of them).
//!
//! The task uses the scheduler's default limits (20 accounts at once, 2 connections each, 20
//! connections per source host, 40 per destination host) so that the figures say what an admin
//! gets without tuning. Destination logins go through Dovecot's master user, as a platform
//! migrating into its own servers would do.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use imapmig_testkit::Dovecot;

use crate::check::{self, Fidelity};
use crate::contenders::{Bench, Login, Measured};
use crate::mailbox;

/// The name of source account `i`.
fn source_user(i: usize) -> String {
    format!("acct{i:03}")
}

/// The name of account `i`'s destination in the run with `n` accounts.
fn destination_user(n: usize, i: usize) -> String {
    format!("s{n:03}-acct{i:03}@dest.example")
}

/// The source accounts, filled: their logins and what each holds per folder.
pub struct Sources {
    logins: Vec<Login>,
    counts: Vec<BTreeMap<String, u64>>,
    bytes: Vec<u64>,
}

/// Creates and fills `accounts` source accounts of `per_account` small messages each
/// (different generated mail in each), eight at a time.
pub async fn fill_sources(src: &Dovecot, accounts: usize, per_account: u64, seed: u64) -> Sources {
    let logins: Vec<Login> = (0..accounts)
        .map(|i| {
            let u = src.user(&source_user(i));
            Login {
                host: src.host().to_string(),
                port: src.imap_port(),
                user: u.name,
                password: u.password,
            }
        })
        .collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for (i, login) in logins.iter().enumerate() {
        let account = login.account();
        let gate = Arc::clone(&gate);
        let seed = seed ^ ((i as u64 + 1) << 32);
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let specs = mailbox::specs(seed, mailbox::small_only(), 0, per_account);
            let filled = mailbox::fill(&account, &specs).await;
            let counts = check::counts(&account).await;
            (i, filled.bytes, counts)
        });
    }
    let mut counts = vec![BTreeMap::new(); accounts];
    let mut bytes = vec![0; accounts];
    while let Some(r) = set.join_next().await {
        let (i, b, c) = r.expect("a fill task");
        counts[i] = c;
        bytes[i] = b;
    }
    Sources {
        logins,
        counts,
        bytes,
    }
}

/// What one run with `n` accounts gave.
pub struct ScaleRun {
    pub accounts: usize,
    pub messages: u64,
    pub bytes: u64,
    pub measured: Measured,
    pub check: Fidelity,
}

fn setup_ok(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Migrates the first `n` source accounts into fresh destination users with one `imapmig run
/// --until-idle`, measured, then counts every destination folder against its source.
pub async fn run(
    bench: &Bench,
    src: &Dovecot,
    dst: &Dovecot,
    sources: &Sources,
    n: usize,
) -> ScaleRun {
    assert!(
        n <= sources.logins.len(),
        "only {} source accounts",
        sources.logins.len()
    );
    let state = bench.work.join(format!("scale-{n}.sqlite"));
    let _ = std::fs::remove_file(&state);
    let master = dst.master_user();
    let cli = |args: &[&str]| {
        let mut c = Command::new(&bench.imapmig_bin);
        c.args(args)
            .arg("--state")
            .arg(&state)
            .args(["--task", "scale"]);
        c
    };

    let mut create = cli(&["task", "create"]);
    create
        .args(["--src-host", src.host(), "--src-port"])
        .arg(src.imap_port().to_string())
        .args(["--src-tls", "none", "--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(&master.name)
        .env("IMAPMIG_DST_ADMIN_PASSWORD", &master.password);
    setup_ok(create, "imapmig task create");

    let mut csv = String::from("target,source,password\n");
    for (i, l) in sources.logins.iter().take(n).enumerate() {
        let target = dst.user(&destination_user(n, i)).name;
        csv.push_str(&format!("{target},{},{}\n", l.user, l.password));
    }
    let csv_file = bench.work.join(format!("scale-{n}.csv"));
    std::fs::write(&csv_file, csv).expect("write the accounts CSV");
    let mut import = cli(&["accounts", "import"]);
    import.arg(&csv_file);
    setup_ok(import, "imapmig accounts import");

    let mut run = cli(&["run", "--until-idle", "--json"]);
    run.env_remove("IMAPMIG_DST_ADMIN_PASSWORD");
    let measured = bench.measured(&format!("scale-{n}"), run);

    let mut fid = Fidelity::default();
    for (i, counts) in sources.counts.iter().take(n).enumerate() {
        let u = dst.user(&destination_user(n, i));
        let login = Login {
            host: dst.host().to_string(),
            port: dst.imap_port(),
            user: u.name,
            password: u.password,
        };
        let got = check::counts(&login.account()).await;
        let f = check::compare_counts(counts, &got);
        fid.missing += f.missing;
        fid.extra += f.extra;
    }
    ScaleRun {
        accounts: n,
        messages: sources.counts.iter().take(n).flat_map(|c| c.values()).sum(),
        bytes: sources.bytes.iter().take(n).sum(),
        measured,
        check: fid,
    }
}
