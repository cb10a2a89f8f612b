//! The `imapmig` binary with the other kinds of source and destination: an IMAP mailbox backed
//! up with `--dst maildir:PATH`, restored with `--src maildir:PATH` and checked with
//! `imapmig verify` against the original; a POP3 inbox with `--src-protocol pop3`, run twice;
//! an archive with `--src mbox:PATH`.

use imapmig_testsupport as common;

use std::process::{Command, Output};

use common::*;
use imapmig_testkit::{Dovecot, Flavour, TestUser};

fn imapmig(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imapmig"));
    c.args(args);
    c
}

fn server(c: &mut Command, side: &str, d: &Dovecot, u: &TestUser, port: u16) {
    c.arg(format!("--{side}-host"))
        .arg(d.host())
        .arg(format!("--{side}-port"))
        .arg(port.to_string())
        .arg(format!("--{side}-user"))
        .arg(&u.name)
        .arg(format!("--{side}-tls"))
        .arg("none")
        .env(
            if side == "src" {
                "IMAPMIG_SRC_PASSWORD"
            } else {
                "IMAPMIG_DST_PASSWORD"
            },
            &u.password,
        );
}

fn run(mut c: Command) -> (Output, serde_json::Value) {
    let out = c.output().expect("run imapmig");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "imapmig failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mailbox() -> Vec<Seed> {
    vec![
        seed(
            "INBOX",
            message("hello", 3),
            "\\Seen",
            Some("01-Feb-2015 10:00:00 +0100"),
        ),
        seed("INBOX", message("flagged", 2), "\\Flagged $Forwarded", None),
        seed(
            "Sent",
            message("sent", 2),
            "\\Seen \\Answered",
            Some("05-May-2012 12:00:00 +0900"),
        ),
        seed("Projects/已发送", message("chinese", 2), "$Work", None),
        seed("Entwürfe & Notizen", message("german", 2), "\\Draft", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_maildir_restore_and_verify_with_the_binary() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (su, du) = (src.user("jo"), dst.user("jo"));
    fill(&account(&src, &su), &mailbox()).await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("backup");
    let tree_arg = format!("maildir:{}", tree.display());
    let state = dir.path().join("state.sqlite");

    let mut backup = imapmig(&["migrate", "--json", "--dst", &tree_arg, "--state"]);
    backup.arg(&state);
    server(&mut backup, "src", &src, &su, src.imap_port());
    let (out, report) = run(backup);
    ok(&out);
    assert_eq!(report["copied"], 5, "{report}");

    let mut restore = imapmig(&["migrate", "--json", "--src", &tree_arg, "--state"]);
    restore.arg(&state);
    server(&mut restore, "dst", &dst, &du, dst.imap_port());
    let (out, report) = run(restore);
    ok(&out);
    assert_eq!(report["copied"], 5, "{report}");

    // The original against the final destination: identical.
    let mut verify = imapmig(&["verify", "--json"]);
    server(&mut verify, "src", &src, &su, src.imap_port());
    server(&mut verify, "dst", &dst, &du, dst.imap_port());
    let (out, v) = run(verify);
    ok(&out);
    let differences: usize = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["differences"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(differences, 0, "{v}");
    // And the backup against the original.
    let mut verify = imapmig(&["verify", "--dst", &tree_arg]);
    server(&mut verify, "src", &src, &su, src.imap_port());
    let out = verify.output().unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_inbox_twice_then_an_mbox_archive() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (su, du) = (src.user("kim"), dst.user("kim"));
    fill(&account(&src, &su), &mailbox()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let pop3 = || {
        let mut c = imapmig(&["migrate", "--json", "--src-protocol", "pop3", "--state"]);
        c.arg(&state);
        server(&mut c, "src", &src, &su, src.pop3_port());
        server(&mut c, "dst", &dst, &du, dst.imap_port());
        c
    };
    let (out, report) = run(pop3());
    ok(&out);
    assert_eq!(report["copied"], 2, "only the inbox: {report}");
    let (out, report) = run(pop3());
    ok(&out);
    assert_eq!(report["copied"], 0, "{report}");
    assert!(
        dir.path().join("state.sqlite.pop3-uids").is_dir(),
        "the UID table lives beside the state file"
    );

    // An mbox archive into the same destination.
    let archive = dir.path().join("old.mbox");
    std::fs::write(
        &archive,
        "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\n>From quoted\n\n\
         From b@example.org Tue Jan  2 00:00:00 2001\nSubject: two\n\nbody\n\n",
    )
    .unwrap();
    let mut c = imapmig(&["migrate", "--json", "--state"]);
    c.arg(&state)
        .arg("--src")
        .arg(format!("mbox:{}", archive.display()));
    server(&mut c, "dst", &dst, &du, dst.imap_port());
    let (out, report) = run(c);
    ok(&out);
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(count(&account(&dst, &du), "INBOX.old").await, 2);

    // analyze and check know the other kinds too.
    let mut c = imapmig(&["analyze", "--json", "--src"]);
    c.arg(format!("mbox:{}", archive.display()));
    let (out, a) = run(c);
    ok(&out);
    assert_eq!(a["messages"], 2, "{a}");
    assert_eq!(a["folders"][0]["name"], "old", "{a}");
    // A date range on a local store: the second message (2 Jan 2001) only.
    let mut c = imapmig(&["analyze", "--json", "--since", "2001-01-02", "--src"]);
    c.arg(format!("mbox:{}", archive.display()));
    let (out, a) = run(c);
    ok(&out);
    assert_eq!(
        (a["messages"].clone(), a["in_date_range"].clone()),
        (2.into(), 1.into()),
        "{a}"
    );
    let mut c = imapmig(&["check", "--json", "--src-protocol", "pop3"]);
    server(&mut c, "src", &src, &su, src.pop3_port());
    let (out, checked) = run(c);
    ok(&out);
    let caps = checked[0]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "UIDL"), "{checked}");
}

/// Every message file in a Maildir++ tree.
fn maildir_files(tree: &std::path::Path) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(tree) else {
        return 0;
    };
    let mut dirs = vec![tree.to_path_buf()];
    dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    for d in dirs {
        for sub in ["cur", "new"] {
            n += std::fs::read_dir(d.join(sub)).map_or(0, |r| r.count());
        }
    }
    n
}

/// `kill -9` in the middle of a backup into a Maildir, three times, then a run to the end:
/// every message is in the tree exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backups_into_a_maildir_leave_every_message_exactly_once() {
    let src = Dovecot::start(Flavour::Slash);
    let su = src.user("lou");
    let mut seeds = Vec::new();
    for i in 0..300 {
        let folder = ["INBOX", "Work", "Work/Old"][i % 3];
        seeds.push(seed(
            folder,
            message(&format!("m{i}"), 20 + i % 40),
            "\\Seen",
            None,
        ));
    }
    fill(&account(&src, &su), &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("backup");
    let tree_arg = format!("maildir:{}", tree.display());
    let state = dir.path().join("state.sqlite");
    let command = || {
        let mut c = imapmig(&[
            "migrate", "--json", "--batch", "8", "--dst", &tree_arg, "--state",
        ]);
        c.arg(&state);
        server(&mut c, "src", &src, &su, src.imap_port());
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let mut interrupted = 0;
    for kill_at in [30, 120, 210] {
        let mut child = command().spawn().unwrap();
        let started = std::time::Instant::now();
        while maildir_files(&tree) < kill_at && started.elapsed().as_secs() < 60 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        println!("killed at {} files", maildir_files(&tree));
    }
    assert!(
        interrupted >= 2,
        "the runs finished before they could be killed"
    );
    let mut last = command();
    last.stdout(std::process::Stdio::piped());
    let (out, report) = run(last);
    ok(&out);
    assert!(report["copied"].as_u64().unwrap() < 300, "{report}");
    assert_eq!(maildir_files(&tree), 300);
    let mut verify = imapmig(&["verify", "--json", "--dst", &tree_arg]);
    server(&mut verify, "src", &src, &su, src.imap_port());
    let (out, v) = run(verify);
    ok(&out);
    for f in v["folders"].as_array().unwrap() {
        assert_eq!(f["extra_on_destination"], 0, "{v}");
    }
}

/// An mbox directory with a file that is not an mbox, and a Maildir with an entry it cannot
/// take, used to be migrated with exit status 0 and the entry never mentioned. The report now
/// names each with its path and why, and the exit status says something was left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_entries_not_imported_are_reported_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("Mail");
    std::fs::create_dir_all(&mail).unwrap();
    std::fs::write(
        mail.join("Inbox"),
        "From a@example.org Mon Jan  1 00:00:00 2001\nSubject: one\n\nbody\n\n",
    )
    .unwrap();
    let notes = mail.join("notes.txt");
    std::fs::write(&notes, "Subject: not an mbox\n\nhello\n").unwrap();
    let out_dir = dir.path().join("out");
    let migrate = |src: String, json: bool| {
        let mut c = imapmig(&["migrate", "--state"]);
        c.arg(dir.path().join("state.sqlite"))
            .arg("--src")
            .arg(src)
            .arg("--dst")
            .arg(format!("maildir:{}", out_dir.display()));
        if json {
            c.arg("--json");
        }
        c
    };
    let (out, report) = run(migrate(format!("mbox:{}", mail.display()), true));
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["copied"], 1, "{report}");
    let listed = report["not_imported"].as_array().expect("not_imported");
    assert_eq!(listed.len(), 1, "{report}");
    assert_eq!(listed[0]["path"], notes.display().to_string(), "{report}");
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("`From `"),
        "{report}"
    );
    // The text report names it too.
    let (out, _) = run(migrate(format!("mbox:{}", mail.display()), false));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("not imported: {}", notes.display())),
        "{text}"
    );

    // A Maildir with a directory where a message file should be.
    let maildir = dir.path().join("md");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1700000000.1.host:2,S"),
        "Subject: kept\r\n\r\nbody\r\n",
    )
    .unwrap();
    let odd = maildir.join("cur/1700000001.2.host:2,");
    std::fs::create_dir_all(&odd).unwrap();
    let (out, report) = run(migrate(format!("maildir:{}", maildir.display()), true));
    assert_eq!(out.status.code(), Some(1), "{report}");
    let folders = report["folders"].as_array().expect("folders");
    let entries: Vec<&serde_json::Value> = folders
        .iter()
        .flat_map(|f| f["not_imported"].as_array().unwrap().iter())
        .chain(report["not_imported"].as_array().unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == odd.display().to_string()),
        "{report}"
    );
}
