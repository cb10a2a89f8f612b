//! The `imapmig` command line as outside tools call it: the migrate contract, check, analyze,
//! verify, JSON output and exit statuses, against real Dovecot servers.

use imapmig_testsupport as common;

use std::process::{Command, Output};

use common::*;
use imapmig_testkit::{Dovecot, Flavour, TestUser};

fn imapmig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imapmig"))
}

/// `--src-*` and `--dst-*` flags for two servers, passwords in the environment.
fn with_servers<'a>(
    cmd: &'a mut Command,
    src: &Dovecot,
    su: &TestUser,
    dst: &Dovecot,
    du: &TestUser,
) -> &'a mut Command {
    side_flags(
        cmd,
        "src",
        src.host(),
        src.imap_port(),
        &su.name,
        &su.password,
    );
    side_flags(
        cmd,
        "dst",
        dst.host(),
        dst.imap_port(),
        &du.name,
        &du.password,
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run imapmig");
    eprintln!(
        "imapmig exited {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

struct Setup {
    src: Dovecot,
    dst: Dovecot,
    su: TestUser,
    du: TestUser,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (su, du) = (src.user("alice"), dst.user("alice"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(
        &account(&src, &su),
        &[
            seed(
                "INBOX",
                message("one", 3),
                "\\Seen",
                Some("01-Feb-2015 10:00:00 +0100"),
            ),
            seed("INBOX", message("two", 3), "$Forwarded", None),
            seed("Sent", message("sent", 3), "\\Seen", None),
            seed("Projekte/Büro", message("office", 40), "", None),
            seed("Junk", message("spam", 3), "", None),
        ],
    ));
    Setup {
        src,
        dst,
        su,
        du,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn migrate_then_verify_through_the_contract() {
    let s = setup();
    let state = s.dir.path().join("state.sqlite");
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du)
        .args(["--mode", "mapping", "--exclude", "Junk", "--state"])
        .arg(&state)
        .arg("--json");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(report["copied"], 4, "{report}");
    let targets: Vec<String> = report["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["target"].as_str().unwrap().to_string())
        .collect();
    assert!(
        targets.contains(&"INBOX.Sent Items".to_string()),
        "{targets:?}"
    );
    assert!(
        targets.contains(&"INBOX.Projekte.Büro".to_string()),
        "{targets:?}"
    );
    assert!(!targets.iter().any(|t| t.contains("Junk")), "{targets:?}");

    let mut cmd = imapmig();
    cmd.arg("verify");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du).args(["--exclude", "Junk", "--json"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "verify must pass after migrate");
    let v = json(&out);
    assert!(v["folders"].as_array().unwrap().len() >= 3);

    // Without the exclusion, Junk was never copied: verify says so and fails.
    let mut cmd = imapmig();
    cmd.arg("verify");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Missing"));

    // A second migrate copies nothing.
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du)
        .args(["--exclude", "Junk", "--state"])
        .arg(&state)
        .arg("--json");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["copied"], 0);
}

#[test]
fn dry_run_prints_the_plan_and_copies_nothing() {
    let s = setup();
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du)
        .arg("--state")
        .arg(s.dir.path().join("state.sqlite"))
        .arg("--dry-run");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INBOX.Sent Items"), "{text}");
    assert!(text.contains("INBOX.Junk E-mail"), "{text}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(count(&account(&s.dst, &s.du), "INBOX")), 0);
}

#[test]
fn check_and_analyze_report_the_servers() {
    let s = setup();
    let mut cmd = imapmig();
    cmd.arg("check");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du).arg("--json");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v[0]["side"], "source");
    assert_eq!(v[0]["separator"], "/");
    assert_eq!(v[1]["namespace_prefix"], "INBOX.");
    assert!(v[0]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "UIDPLUS"));

    // Only one side is enough for `check`.
    let out = run(imapmig()
        .args(["check", "--src-host", s.src.host(), "--src-port"])
        .arg(s.src.imap_port().to_string())
        .args(["--src-user", &s.su.name, "--src-tls", "none"])
        .env("IMAPMIG_SRC_PASSWORD", &s.su.password));
    assert_eq!(out.status.code(), Some(0));

    let mut cmd = imapmig();
    cmd.arg("analyze");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du).args(["--max-size", "500", "--json"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["messages"], 5);
    assert_eq!(v["over_size_limit"], 1, "{v}");
    assert!(v["plan"].as_str().unwrap().contains("INBOX.Projekte.Büro"));
    let sent = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Sent")
        .unwrap()
        .clone();
    assert_eq!(sent["special_use"], "sent");
    assert!(v["in_date_range"].is_null(), "{v}");

    // With a date range: how much of the mail is in it ("one" arrived in 2015, the rest now).
    let mut cmd = imapmig();
    cmd.arg("analyze");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du).args(["--before", "2020-01-01", "--json"]);
    let v = json(&run(&mut cmd));
    assert_eq!(v["messages"], 5);
    assert_eq!(v["in_date_range"], 1, "{v}");
    let inbox = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .unwrap()
        .clone();
    assert_eq!(
        (inbox["messages"].clone(), inbox["in_date_range"].clone()),
        (2.into(), 1.into())
    );
    assert!(v["in_date_range_bytes"].as_u64().unwrap() < v["bytes"].as_u64().unwrap());
}

#[test]
fn exit_statuses_name_the_failure_and_never_show_the_password() {
    let s = setup();
    // Wrong password: exit 3, and the password is nowhere in the output.
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du)
        .env("IMAPMIG_SRC_PASSWORD", "Wr0ng-Secret-Value")
        .arg("--state")
        .arg(s.dir.path().join("state.sqlite"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("refused the login"), "{all}");
    assert!(!all.contains("Wr0ng-Secret-Value"));
    assert!(!all.contains(&s.du.password));

    // The same over POP3: a refused login is exit 3 whatever the protocol.
    let out = run(imapmig()
        .args([
            "check",
            "--src-protocol",
            "pop3",
            "--src-host",
            s.src.host(),
        ])
        .args(["--src-port", &s.src.pop3_port().to_string()])
        .args(["--src-user", &s.su.name, "--src-tls", "none"])
        .env("IMAPMIG_SRC_PASSWORD", "Wr0ng-Secret-Value"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!format!("{out:?}").contains("Wr0ng-Secret-Value"));

    // Nobody listening: exit 4.
    let out = run(imapmig()
        .args([
            "check",
            "--src-host",
            "127.0.0.1",
            "--src-port",
            "1",
            "--src-user",
            "x",
        ])
        .args(["--src-tls", "none"])
        .env("IMAPMIG_SRC_PASSWORD", "x"));
    assert_eq!(out.status.code(), Some(4));

    // STARTTLS to a certificate nobody vouches for: exit 4; with its CA file: fine.
    let starttls = |extra: &[&str]| {
        let mut c = imapmig();
        c.args(["check", "--src-host", s.src.host(), "--src-port"])
            .arg(s.src.imap_port().to_string())
            .args(["--src-user", &s.su.name, "--src-tls", "starttls"])
            .args(extra)
            .env("IMAPMIG_SRC_PASSWORD", &s.su.password);
        run(&mut c)
    };
    assert_eq!(starttls(&[]).status.code(), Some(4));
    let ca = s.src.ca_file().to_string_lossy().to_string();
    assert_eq!(starttls(&["--src-ca-file", &ca]).status.code(), Some(0));

    // No password at all, or a bad date: exit 2 with a clear message.
    let out = run(imapmig()
        .args(["check", "--src-host", "127.0.0.1", "--src-user", "x"])
        .env_remove("IMAPMIG_SRC_PASSWORD"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IMAPMIG_SRC_PASSWORD"));
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &s.src, &s.su, &s.dst, &s.du).args(["--since", "2020-13-01"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

#[test]
fn refused_messages_make_the_exit_status_one_and_are_listed() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start_with(
        Flavour::Slash,
        imapmig_testkit::DovecotOptions {
            max_message_size: Some(10_000),
            ..Default::default()
        },
    );
    let (su, du) = (src.user("bob"), dst.user("bob"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(
        &account(&src, &su),
        &[
            seed("INBOX", message("small", 3), "", None),
            seed("INBOX", message("large", 2000), "", None),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = imapmig();
    cmd.arg("migrate");
    with_servers(&mut cmd, &src, &su, &dst, &du)
        .arg("--state")
        .arg(dir.path().join("s.sqlite"))
        .arg("--json");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let inbox = report["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"] == "INBOX")
        .unwrap()
        .clone();
    assert_eq!(inbox["copied"], 1);
    assert_eq!(inbox["refused"][0]["uid"], 2);
    assert!(inbox["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("LIMIT"));
}
