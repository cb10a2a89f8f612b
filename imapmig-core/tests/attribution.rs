//! A failure is put on the side that failed. The source is a real Dovecot behind the
//! fault-injection proxy of the test kit, which cuts its connection in the middle of a
//! message body and then keeps its port dead.

use imapmig_testsupport as common;

use common::*;
use imapmig_core::engine::{ErrorKind, Side};
use imapmig_testkit::{Direction, Dovecot, FaultProxy, Flavour};

/// A message of about `kib` KiB whose body carries `marker` half-way.
fn large(subject: &str, kib: usize, marker: &str) -> Vec<u8> {
    let mut v = message(subject, 2);
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy\r\n";
    for i in 0..kib * 1024 / line.len() {
        if i == kib * 512 / line.len() {
            v.extend_from_slice(format!("{marker}\r\n").as_bytes());
        }
        v.extend_from_slice(line.as_bytes());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_cut_mid_literal_is_a_source_failure() {
    let src_server = Dovecot::start(Flavour::Slash);
    let dst_server = Dovecot::start(Flavour::Slash);
    let user = src_server.user("alice");
    let direct = account(&src_server, &user);
    fill(
        &direct,
        &[
            seed("INBOX", message("small", 3), "", None),
            seed(
                "INBOX",
                large("big", 2048, "CUT-HERE-MARKER"),
                "\\Seen",
                None,
            ),
        ],
    )
    .await;
    let proxy = FaultProxy::start(
        format!("{}:{}", src_server.host(), src_server.imap_port())
            .parse()
            .expect("address"),
    );
    let mut src = direct.clone();
    src.endpoint.host = proxy.host().to_string();
    src.endpoint.port = proxy.port();
    let dst = account(&dst_server, &dst_server.user("alice"));

    // Cut the source in the middle of the big body, while the destination is receiving it.
    proxy.cut_at_pattern(Direction::ToClient, b"CUT-HERE-MARKER", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options("k");
    opts.connections = 1;
    // No retry: the failure reported is the cut itself.
    opts.retries = 0;
    opts.plan.include = vec!["INBOX".into()];
    let report = migrate(&src, &dst, &opts, state_file(&dir)).await;
    assert!(proxy.cuts() >= 1, "the cut fired");
    assert!(!report.is_complete(), "{report:?}");
    let failure = report
        .failed_folders
        .iter()
        .find(|f| f.folder == "INBOX")
        .unwrap_or_else(|| panic!("INBOX failed: {report:?}"));
    assert_eq!(failure.side, Some(Side::Source), "{failure:?}");
    assert_eq!(failure.kind, ErrorKind::Connection, "{failure:?}");
    assert!(
        failure.message.starts_with("source"),
        "the message names the source: {failure:?}"
    );
}
