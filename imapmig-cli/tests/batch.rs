//! A batch migration end to end, with the real `imapmig` binary against real Dovecot servers:
//! a task of 50 accounts (three with wrong passwords, one without a password that gets one
//! later, one with a message the destination refuses) runs to "synced"; `imapmig run` is
//! killed with SIGKILL mid-run and restarted; new mail is carried by the next incremental pass;
//! nothing is copied twice and nothing is lost; the exported CSV matches the real state of
//! every account; the audit log tells what happened.

use imapmig_testsupport as common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::batch::{AccountReport, BatchStore, Status};
use imapmig_core::engine::{self, MessageFilter};
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};

const ACCOUNTS: usize = 50;
const WRONG_PASSWORD: [usize; 3] = [10, 20, 30];
const NO_PASSWORD: usize = 40;
const REFUSED: usize = 7;
/// Accounts that get new mail after the first pass.
const NEW_MAIL: [usize; 5] = [1, 2, 3, 4, 5];
/// The destination's size limit; one message of account REFUSED is over it.
const SIZE_LIMIT: u64 = 20_000;

fn source_user(i: usize) -> String {
    format!("u{i:02}")
}

fn target(i: usize) -> String {
    format!("u{i:02}@x.example")
}

fn imapmig(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imapmig"));
    c.env("IMAPMIG_STATE", state).env("IMAPMIG_TASK", "company");
    c
}

fn ok(mut c: Command) -> Output {
    let out = c.output().expect("run imapmig");
    assert!(
        out.status.success(),
        "imapmig failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn start_run(state: &Path) -> Child {
    let mut c = imapmig(state);
    c.arg("run").stdout(Stdio::null()).stderr(Stdio::piped());
    c.spawn().expect("start imapmig run")
}

/// The mailbox of one account: a few small messages in three folders; every fifth account has
/// a bigger archive (so that a kill lands while mail is being copied); account REFUSED has
/// one message over the destination's size limit.
fn mailbox(i: usize) -> Vec<Seed> {
    let mut seeds = vec![
        seed("INBOX", message(&format!("u{i} hello"), 10), "\\Seen", None),
        seed(
            "INBOX",
            message(&format!("u{i} unread"), 30),
            "",
            Some("02-Mar-2019 23:59:59 -0500"),
        ),
        seed("Notes", message(&format!("u{i} note"), 8), "\\Seen", None),
        seed(
            "Archive/2023",
            message(&format!("u{i} archived"), 12),
            "\\Flagged",
            None,
        ),
    ];
    if i % 5 == 0 {
        for k in 0..60 {
            seeds.push(seed(
                "Archive/2023",
                message(&format!("u{i} bulk {k}"), 150),
                "",
                None,
            ));
        }
    }
    if i == REFUSED {
        seeds.push(seed(
            "INBOX",
            message(&format!("u{i} too big"), 2_000),
            "",
            None,
        ));
    }
    seeds
}

fn accounts_in(store: &BatchStore) -> Vec<AccountReport> {
    store.accounts("company").expect("read the store")
}

fn by_target(list: &[AccountReport]) -> HashMap<String, &AccountReport> {
    list.iter().map(|a| (a.target.clone(), a)).collect()
}

/// Polls the store until `done` holds, failing after `secs` with the statuses.
fn wait_until(
    store: &BatchStore,
    secs: u64,
    what: &str,
    done: impl Fn(&[AccountReport]) -> bool,
) -> Vec<AccountReport> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = accounts_in(store);
        if done(&list) {
            return list;
        }
        if Instant::now() > deadline {
            let brief: Vec<String> = list
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {:?} {} {:?}",
                        a.target, a.status, a.failure, a.messages, a.last_error
                    )
                })
                .collect();
            panic!("timed out waiting until {what}:\n{}", brief.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn expected_final(i: usize) -> Status {
    if WRONG_PASSWORD.contains(&i) {
        Status::Failed
    } else {
        Status::Synced
    }
}

/// Where an account should end up: failed for a wrong password, waiting without one, else
/// synced (or already running its next incremental pass).
fn settled(i: usize, a: &AccountReport) -> bool {
    match i {
        NO_PASSWORD => a.status == Status::WaitingForCredentials,
        _ if WRONG_PASSWORD.contains(&i) => a.status == Status::Failed,
        _ => a.synced_at.is_some() && matches!(a.status, Status::Synced | Status::Running),
    }
}

/// A minimal CSV reader for the export (quoted fields, doubled quotes, CRLF or LF).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Messages of an account on the destination, over all its folders.
async fn destination_total(acct: &imapmig_core::engine::Account) -> u64 {
    let mut s = acct.open().await.expect("login");
    let folders = s.list().await.expect("list");
    let mut total = 0u64;
    for f in folders.iter().filter(|f| f.selectable()) {
        let st = s.status(&f.raw).await.expect("status");
        total += u64::from(st.messages.unwrap_or(0));
    }
    s.logout().await;
    total
}

#[test]
fn fifty_accounts_run_to_synced_survive_a_kill_and_follow_new_mail() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start_with(
        Flavour::DotInbox,
        DovecotOptions {
            max_message_size: Some(SIZE_LIMIT),
            ..DovecotOptions::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state.sqlite");

    // The mailboxes, filled in parallel.
    let seeded = Instant::now();
    let mut users = Vec::new();
    for i in 0..ACCOUNTS {
        users.push(src.user(&source_user(i)));
        dst.user(&target(i));
    }
    let mut expected_messages: Vec<u64> = (0..ACCOUNTS).map(|i| mailbox(i).len() as u64).collect();
    expected_messages[REFUSED] -= 1;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, u) in users.iter().enumerate() {
            let acct = account(&src, u);
            set.spawn(async move { fill(&acct, &mailbox(i)).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let total_seeded: u64 = (0..ACCOUNTS).map(|i| mailbox(i).len() as u64).sum();
    eprintln!(
        "seeded {ACCOUNTS} accounts with {total_seeded} messages in {:?}",
        seeded.elapsed()
    );

    // The task: per-account passwords on the source, Dovecot's master user on the destination.
    let mut create = imapmig(&state);
    create
        .args(["task", "create", "--src-host", src.host(), "--src-port"])
        .arg(src.imap_port().to_string())
        .args(["--src-tls", "none", "--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(dst.master_user().name)
        .args([
            "--interval",
            "3s",
            "--max-accounts",
            "8",
            "--per-source-host",
            "12",
        ])
        .args([
            "--per-destination-host",
            "12",
            "--connections-per-account",
            "2",
        ])
        .args(["--retries", "3", "--retry-base", "1s", "--retry-max", "2s"])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", dst.master_user().password);
    ok(create);

    let mut csv = String::from("target,source,password\r\n");
    for (i, u) in users.iter().enumerate() {
        let password = if WRONG_PASSWORD.contains(&i) {
            format!("wrong-{}", u.password)
        } else if i == NO_PASSWORD {
            String::new()
        } else {
            u.password.clone()
        };
        csv.push_str(&format!("{},{},{password}\r\n", target(i), u.name));
    }
    let csv_file = dir.path().join("accounts.csv");
    std::fs::write(&csv_file, &csv).unwrap();
    let mut import = imapmig(&state);
    import.args(["accounts", "import"]).arg(&csv_file);
    let out = ok(import);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("imported 50 account(s) (1 waiting for credentials)"),
        "{said}"
    );

    let store = BatchStore::open(&state).unwrap();

    // First run: killed with SIGKILL while accounts are being copied.
    let started = Instant::now();
    let mut first = start_run(&state);
    // Best: kill while an account's first pass has copied part of its mail; failing that,
    // while first passes are under way once a few accounts are synced. On loopback all fifty
    // first passes take a couple of seconds, so waiting longer can leave nothing to kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let l = accounts_in(&store);
        let synced = l.iter().filter(|a| a.status == Status::Synced).count();
        let first_passes: Vec<&AccountReport> = l
            .iter()
            .filter(|a| a.status == Status::Running && a.synced_at.is_none())
            .collect();
        let partial = first_passes.iter().any(|a| {
            let i: usize = a.target[1..3].parse().unwrap();
            a.messages > 0 && a.messages < expected_messages[i]
        });
        if partial || (synced >= 5 && !first_passes.is_empty()) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "the first run never got going: {l:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    first.kill().expect("kill -9");
    let _ = first.wait();
    let running_at_kill: Vec<&AccountReport> = at_kill
        .iter()
        .filter(|a| a.status == Status::Running)
        .collect();
    eprintln!(
        "killed after {:?}: {} synced, {} running ({} in their first pass, {} of them with mail copied)",
        started.elapsed(),
        at_kill.iter().filter(|a| a.status == Status::Synced).count(),
        running_at_kill.len(),
        running_at_kill.iter().filter(|a| a.synced_at.is_none()).count(),
        running_at_kill
            .iter()
            .filter(|a| a.synced_at.is_none() && a.messages > 0)
            .count()
    );
    // The dead process left its accounts "running" in the store.
    assert!(accounts_in(&store)
        .iter()
        .any(|a| a.status == Status::Running));

    // Second run: resumes, and runs every account with a good password to synced.
    let second = start_run(&state);
    let list = wait_until(&store, 90, "every account settled", |l| {
        l.len() == ACCOUNTS && l.iter().enumerate().all(|(i, a)| settled(i, a))
    });
    let first_sync = started.elapsed();
    let copied_first: u64 = list.iter().map(|a| a.messages).sum();
    let bytes_first: u64 = list.iter().map(|a| a.bytes).sum();
    let m = by_target(&list);
    for i in WRONG_PASSWORD {
        let a = m[&target(i)];
        assert_eq!(
            a.failure,
            Some(imapmig_core::batch::FailureCategory::Authentication),
            "{a:?}"
        );
        assert!(
            !a.last_error.as_deref().unwrap_or("").contains("wrong-"),
            "password in an error"
        );
    }
    let refused = m[&target(REFUSED)];
    assert_eq!(refused.refused, 1, "{refused:?}");
    assert!(
        refused.last_error.as_deref().unwrap_or("").contains("UID"),
        "{refused:?}"
    );

    // The account without a password gets one (as when its user logs in on the platform).
    let mut creds = imapmig(&state);
    creds
        .args(["credentials", &target(NO_PASSWORD)])
        .env("IMAPMIG_PASSWORD", &users[NO_PASSWORD].password);
    ok(creds);
    wait_until(&store, 60, "the late account synced", |l| {
        l.iter()
            .find(|a| a.target == target(NO_PASSWORD))
            .is_some_and(|a| a.synced_at.is_some())
    });

    // New mail on some sources: the next incremental pass copies it.
    rt.block_on(async {
        for i in NEW_MAIL {
            fill(
                &account(&src, &users[i]),
                &[
                    seed("INBOX", message(&format!("u{i} new 1"), 5), "", None),
                    seed("INBOX", message(&format!("u{i} new 2"), 5), "", None),
                ],
            )
            .await;
        }
    });
    for i in NEW_MAIL {
        expected_messages[i] += 2;
    }
    let delivered = Instant::now();
    wait_until(&store, 60, "the new mail copied", |l| {
        NEW_MAIL.iter().all(|i| {
            l.iter()
                .any(|a| a.target == target(*i) && a.messages == expected_messages[*i])
        })
    });
    eprintln!(
        "new mail copied by the next incremental pass {:?} after delivery",
        delivered.elapsed()
    );

    // Stop the scheduler (SIGINT): passes end at a message boundary, exit 130, a summary.
    let pid = second.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    let out = second.wait_with_output().expect("wait for imapmig run");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    eprintln!("the restarted scheduler's own summary:\n{stderr}");
    assert!(stderr.contains("put back after a crash"), "{stderr}");

    // No duplicates, no losses: every account verified against its source, message by message.
    let final_list = accounts_in(&store);
    let m = by_target(&final_list);
    rt.block_on(async {
        for i in 0..ACCOUNTS {
            if WRONG_PASSWORD.contains(&i) {
                continue;
            }
            let sa = account(&src, &users[i]);
            let da = account(&dst, &dst.user(&target(i)));
            let v = engine::verify(&sa, &da, &Default::default(), &MessageFilter::default())
                .await
                .expect("verify");
            for f in &v.folders {
                assert_eq!(
                    f.extra_on_destination, 0,
                    "account {i}: duplicates in {}: {f:#?}",
                    f.target
                );
            }
            if i == REFUSED {
                assert_eq!(
                    v.difference_count(),
                    1,
                    "account {i}: only the refused message may be missing: {v:#?}"
                );
            } else {
                assert!(v.is_identical(), "account {i}: {v:#?}");
            }
            let on_destination = destination_total(&da).await;
            assert_eq!(on_destination, expected_messages[i], "account {i}");
            assert_eq!(
                m[&target(i)].messages,
                on_destination,
                "account {i}: the store's count"
            );
        }
        for i in WRONG_PASSWORD {
            let da = account(&dst, &dst.user(&target(i)));
            assert_eq!(
                destination_total(&da).await,
                0,
                "account {i} must have nothing"
            );
        }
    });

    // The exported CSV matches the real state of every account.
    let mut export = imapmig(&state);
    export.args(["status", "--format", "csv"]);
    let out = ok(export);
    let rows = parse_csv(&String::from_utf8_lossy(&out.stdout));
    let header = &rows[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (c_target, c_status, c_failure, c_messages, c_refused, c_source) = (
        col("target"),
        col("status"),
        col("failure"),
        col("messages"),
        col("refused"),
        col("source"),
    );
    assert_eq!(rows.len(), ACCOUNTS + 1);
    rt.block_on(async {
        for row in &rows[1..] {
            let i: usize = row[c_target][1..3].parse().unwrap();
            assert_eq!(row[c_source], source_user(i));
            assert_eq!(row[c_status], expected_final(i).as_str(), "{row:?}");
            let da = account(&dst, &dst.user(&target(i)));
            let real = destination_total(&da).await;
            assert_eq!(row[c_messages].parse::<u64>().unwrap(), real, "{row:?}");
            assert_eq!(
                row[c_refused],
                if i == REFUSED { "1" } else { "0" },
                "{row:?}"
            );
            if WRONG_PASSWORD.contains(&i) {
                assert_eq!(row[c_failure], "authentication", "{row:?}");
            } else {
                assert_eq!(row[c_failure], "", "{row:?}");
            }
        }
    });
    for u in &users {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&u.password),
            "a password in the export"
        );
    }
    let mut json = imapmig(&state);
    json.args(["status", "--format", "json"]);
    let out = ok(json);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), ACCOUNTS);

    // The audit log: what happened when.
    let mut audit = imapmig(&state);
    audit.arg("audit");
    let out = ok(audit);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert!(of("pass_started") >= ACCOUNTS, "{}", of("pass_started"));
    assert!(of("folder_done") >= ACCOUNTS, "{}", of("folder_done"));
    assert_eq!(of("credentials_supplied"), 1);
    let refusals: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "message_refused")
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "a refusal is logged once, not on every pass: {refusals:#?}"
    );
    assert_eq!(refusals[0]["account"], target(REFUSED));
    assert!(
        refusals[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("LIMIT"),
        "{refusals:#?}"
    );
    let synced_events = events
        .iter()
        .filter(|e| {
            e["event"] == "status_changed"
                && e["to"] == "synced"
                && e["reason"] == "first complete pass"
        })
        .count();
    assert_eq!(synced_events, ACCOUNTS - WRONG_PASSWORD.len());
    assert!(events.iter().any(|e| e["event"] == "status_changed"
        && e["from"] == "running"
        && e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("scheduler stopped during the pass")));
    for u in &users {
        assert!(!text.contains(&u.password), "a password in the audit log");
    }

    let mb = bytes_first as f64 / 1e6;
    let secs = first_sync.as_secs_f64();
    eprintln!(
        "THROUGHPUT: {copied_first} messages ({mb:.2} MB) of {} accounts on the destination {secs:.1} s after the first start, \
         including the kill and restart: {:.1} msg/s, {:.2} MB/s",
        ACCOUNTS - WRONG_PASSWORD.len() - 1,
        copied_first as f64 / secs,
        mb / secs
    );
}
