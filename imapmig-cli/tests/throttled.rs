//! `migrate` against a source that throttles its first logins: it backs off and retries as
//! `imapmig run` does, instead of giving up at once. The source is a real Dovecot behind the
//! fault-injection proxy of the test kit, which answers the first logins `NO [UNAVAILABLE]`.

use imapmig_testsupport as common;

use std::process::Command;

use common::*;
use imapmig_testkit::{Dovecot, FaultProxy, Flavour};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_first_login_is_retried_not_fatal() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (su, du) = (src.user("alice"), dst.user("alice"));
    fill(
        &account(&src, &su),
        &[
            seed("INBOX", message("one", 2), "", None),
            seed("INBOX", message("two", 2), "\\Seen", None),
        ],
    )
    .await;
    let proxy = FaultProxy::start(
        format!("{}:{}", src.host(), src.imap_port())
            .parse()
            .expect("address"),
    );
    proxy.refuse_logins_for("NO [UNAVAILABLE] Temporary failure, try later", 2);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imapmig"));
    cmd.args(["migrate", "--json", "--connections", "1", "--state"])
        .arg(dir.path().join("state.sqlite"));
    side_flags(
        &mut cmd,
        "src",
        proxy.host(),
        proxy.port(),
        &su.name,
        &su.password,
    );
    side_flags(
        &mut cmd,
        "dst",
        dst.host(),
        dst.imap_port(),
        &du.name,
        &du.password,
    );
    let out = cmd.output().expect("run imapmig");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.logins_refused(), 2, "both throttled logins were met");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["copied"], 2, "{report}");
}
