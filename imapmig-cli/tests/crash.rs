//! Crash safety, for real: the `imapmig` process is killed with SIGKILL at seeded random
//! instants while it copies, then run again; every message must end up on the destination
//! exactly once.

use imapmig_testsupport as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::engine::{self, MessageFilter};
use imapmig_testkit::{Dovecot, Flavour, TestUser};

/// The state key the runs share.
const ACCOUNT: &str = "crash-test";

/// A small, seeded generator: the kill points are random but the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn migrate_command(
    src: &Dovecot,
    su: &TestUser,
    dst: &Dovecot,
    du: &TestUser,
    state: &std::path::Path,
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imapmig"));
    c.args(["migrate", "--src-host", src.host(), "--src-port"])
        .arg(src.imap_port().to_string())
        .args(["--src-user", &su.name, "--src-tls", "none"])
        .args(["--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-user", &du.name, "--dst-tls", "none", "--state"])
        .arg(state)
        .args(["--batch", "16", "--json", "--account-key", ACCOUNT])
        .env("IMAPMIG_SRC_PASSWORD", &su.password)
        .env("IMAPMIG_DST_PASSWORD", &du.password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// How many messages the state file records as copied so far (0 before it exists).
fn copied_so_far(state: &std::path::Path) -> u64 {
    use imapmig_core::state::StateStore;
    if !state.exists() {
        return 0;
    }
    let Ok(store) = imapmig_core::state::SqliteStore::open(state) else {
        return 0;
    };
    let Ok(folders) = store.folders(ACCOUNT) else {
        return 0;
    };
    folders
        .iter()
        .map(|(f, _)| store.copied_count(ACCOUNT, f).unwrap_or(0))
        .sum()
}

/// Runs the migration and kills it once `after_copied` messages are recorded as copied, plus
/// `jitter`; returns whether it was still running (so the kill really interrupted it).
/// Kill points are set in progress rather than in time, so a slow or busy machine moves them
/// in time but not in what they interrupt.
fn run_and_kill(
    mut cmd: Command,
    state: &std::path::Path,
    after_copied: u64,
    jitter: Duration,
) -> bool {
    let mut child = cmd.spawn().expect("start imapmig");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("imapmig failed: {status}: {err}");
            }
            return false;
        }
        if copied_so_far(state) >= after_copied {
            std::thread::sleep(jitter);
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // SIGKILL: no destructor, no flush, no goodbye.
            child.kill().expect("kill");
            let _ = child.wait();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn run_to_end(mut cmd: Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("run imapmig");
    assert!(
        out.status.success(),
        "imapmig exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn mailbox() -> Vec<Seed> {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut seeds = Vec::new();
    for i in 0..180 {
        let folder = match i % 3 {
            0 => "INBOX",
            1 => "Archive/2019",
            _ => "Kunden/Müller & Söhne",
        };
        // Mostly small; every 25th large enough to be streamed rather than inlined.
        let lines = if i % 25 == 7 {
            9_000
        } else {
            20 + (rng.next() % 400) as usize
        };
        seeds.push(seed(folder, message(&format!("msg {i}"), lines), "", None));
        // Now and then an exact duplicate: two identical messages stay two.
        if i % 40 == 3 {
            seeds.push(seed(folder, message(&format!("msg {i}"), lines), "", None));
        }
    }
    seeds
}

#[test]
fn kill_minus_nine_at_random_points_then_rerun_leaves_every_message_exactly_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let su = src.user("source");
    let sa = account(&src, &su);
    let seeds = mailbox();
    rt.block_on(fill(&sa, &seeds));
    let dir = tempfile::tempdir().unwrap();

    // An uninterrupted run, for reference.
    let reference = dst.user("reference");
    let full = run_to_end(migrate_command(
        &src,
        &su,
        &dst,
        &reference,
        &dir.path().join("ref.sqlite"),
    ));
    eprintln!(
        "an uninterrupted migration of {} messages takes {full:?}",
        seeds.len()
    );
    let total = seeds.len() as u64;

    let mut rng = XorShift(0x00c0_ffee_0000_0042);
    let rounds = 20;
    let mut interrupted = 0;
    for round in 0..rounds {
        let du = dst.user(&format!("round{round}"));
        let state = dir.path().join(format!("round{round}.sqlite"));
        // Two kills at random instants, each into a run that resumes the previous one.
        // Two kills, each into a run that resumes the previous one: once a seeded random
        // share of the mailbox is recorded, after a seeded random few milliseconds more (so
        // the kill lands anywhere in a batch: fetching, appending, committing).
        let first = rng.next() % (total * 3 / 4);
        let second = first + 1 + rng.next() % (total - first - 1).max(1);
        for target in [first, second.min(total - 1)] {
            let jitter = Duration::from_micros(rng.next() % 20_000);
            if run_and_kill(
                migrate_command(&src, &su, &dst, &du, &state),
                &state,
                target,
                jitter,
            ) {
                interrupted += 1;
            }
        }
        run_to_end(migrate_command(&src, &su, &dst, &du, &state));
        let da = account(&dst, &du);
        let v = rt
            .block_on(engine::verify(
                &sa,
                &da,
                &Default::default(),
                &MessageFilter::default(),
            ))
            .expect("verify");
        assert!(v.is_identical(), "round {round}: {v:#?}");
        let mut total = 0;
        for f in &v.folders {
            assert_eq!(
                f.extra_on_destination, 0,
                "round {round}: duplicates in {}: {f:#?}",
                f.target
            );
            assert_eq!(f.source_messages, f.matched, "round {round}: {f:#?}");
            total += f.matched;
        }
        assert_eq!(total as usize, seeds.len(), "round {round}");
    }
    eprintln!(
        "{interrupted} of {} runs were killed mid-migration",
        rounds * 2
    );
    // The test is only worth something if most kills landed while copying.
    assert!(
        interrupted >= rounds,
        "only {interrupted} kills interrupted a migration"
    );
}
