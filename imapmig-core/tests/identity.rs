//! The destination is the truth: a re-run never copies a message twice, whatever happened to
//! the sync state (a server spelled differently, a lost, fresh or other state file), against
//! real Dovecot servers.

use imapmig_testsupport as common;

use std::sync::Arc;

use common::*;
use imapmig_core::engine::{self, Account, MigrationOptions};
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::SourceSpec;
use imapmig_core::state::SqliteStore;
use imapmig_testkit::{Dovecot, Flavour};

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Projects/2024"];

/// 3 folders, `per_folder` messages each, two of them identical twins in every folder.
fn mailbox(per_folder: usize) -> Vec<Seed> {
    let mut seeds = Vec::new();
    for folder in FOLDERS {
        for i in 0..per_folder {
            let body = if i < 2 {
                message(&format!("twin of {folder}"), 3)
            } else {
                message(&format!("{folder} message {i}"), 2 + i % 7)
            };
            let flags = if i % 3 == 0 { "\\Seen" } else { "" };
            seeds.push(seed(
                folder,
                body,
                flags,
                Some("01-Feb-2015 10:00:00 +0100"),
            ));
        }
    }
    seeds
}

/// The key the CLI and the bindings use for this pair and state.
fn cli_options(src: &Account, dst: &Account, state: &SqliteStore) -> MigrationOptions {
    let key = engine::account_key_in(
        state,
        &SourceSpec::Imap(src.clone()),
        &SinkSpec::Imap(dst.clone()),
    )
    .expect("key");
    options(&key)
}

async fn counts(acct: &Account) -> Vec<u32> {
    let mut out = Vec::new();
    for f in FOLDERS {
        out.push(count(acct, f).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spelled_differently_or_state_lost_copies_nothing_twice() {
    let src_server = Dovecot::start(Flavour::Slash);
    let dst_server = Dovecot::start(Flavour::Slash);
    let src = account(&src_server, &src_server.user("alice"));
    let dst = account(&dst_server, &dst_server.user("alice"));
    let per_folder = 100;
    fill(&src, &mailbox(per_folder)).await;
    let all = vec![per_folder as u32; FOLDERS.len()];

    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_file(&dir);
    let first = migrate(&src, &dst, &cli_options(&src, &dst, &state), state.clone()).await;
    assert!(first.is_complete(), "{first:?}");
    assert_eq!(first.copied, (per_folder * FOLDERS.len()) as u64);
    assert_eq!(counts(&dst).await, all);

    // The same servers spelled differently: a name instead of the address.
    assert_eq!(src_server.host(), "127.0.0.1");
    let mut respelled = src.clone();
    respelled.endpoint.host = "localhost".into();
    let mut respelled_dst = dst.clone();
    respelled_dst.endpoint.host = "localhost".into();
    let again = migrate(
        &respelled,
        &respelled_dst,
        &cli_options(&respelled, &respelled_dst, &state),
        state.clone(),
    )
    .await;
    assert!(again.is_complete(), "{again:?}");
    assert_eq!(again.copied, 0, "{again:?}");
    assert_eq!(counts(&dst).await, all);

    // A fresh state file: the destination's copies are found again by content.
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh = state_file(&fresh_dir);
    let rerun = migrate(&src, &dst, &cli_options(&src, &dst, &fresh), fresh.clone()).await;
    assert!(rerun.is_complete(), "{rerun:?}");
    assert_eq!(rerun.copied, 0, "{rerun:?}");
    for f in rerun
        .folders
        .iter()
        .filter(|f| FOLDERS.contains(&f.source.as_str()))
    {
        assert_eq!(f.already_there, per_folder as u64, "{f:?}");
        assert!(
            f.notes.iter().any(|n| n.contains("no sync state")),
            "the report says what was matched: {f:?}"
        );
    }
    assert_eq!(counts(&dst).await, all);
    // Nothing was changed on the destination either: flags and dates are the source's.
    let v = engine::verify(&src, &dst, &Default::default(), &Default::default())
        .await
        .expect("verify");
    assert!(v.is_identical(), "{v:#?}");

    // Another state file again, with new mail on the source and the user's own mail on the
    // destination: only the new mail is copied, and the user's message stays.
    fill(
        &src,
        &[
            seed("INBOX", message("new one", 4), "", None),
            // A third twin: one more copy of a message the destination holds twice.
            seed("INBOX", message("twin of INBOX", 3), "", None),
        ],
    )
    .await;
    fill(
        &dst,
        &[seed(
            "Archive",
            message("written on the new server", 2),
            "",
            None,
        )],
    )
    .await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other: Arc<SqliteStore> = state_file(&other_dir);
    let third = migrate(&src, &dst, &cli_options(&src, &dst, &other), other.clone()).await;
    assert!(third.is_complete(), "{third:?}");
    assert_eq!(
        third.copied, 2,
        "the new message and the third twin: {third:?}"
    );
    assert_eq!(
        counts(&dst).await,
        vec![
            per_folder as u32 + 2,
            per_folder as u32 + 1,
            per_folder as u32
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_key_names_logins_not_hosts() {
    let server = Dovecot::start(Flavour::Slash);
    let a = account(&server, &server.user("Alice"));
    let b = account(&server, &server.user("bob"));
    let key = engine::default_account_key(&SourceSpec::Imap(a.clone()), &SinkSpec::Imap(b));
    assert_eq!(key, "imap:alice -> imap:bob");

    // State written under the key of earlier versions keeps being used.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_file(&dir);
    let dst = account(&server, &server.user("carol"));
    fill(&a, &[seed("INBOX", message("kept", 2), "", None)]).await;
    let legacy = format!(
        "{} -> {}",
        SourceSpec::Imap(a.clone()).describe(),
        SinkSpec::Imap(dst.clone()).describe()
    );
    assert_eq!(
        legacy,
        format!(
            "Alice@{host}:{port} -> carol@{host}:{port}",
            host = server.host(),
            port = server.imap_port()
        )
    );
    let first = migrate(&a, &dst, &options(&legacy), state.clone()).await;
    assert_eq!(first.copied, 1);
    let opts = cli_options(&a, &dst, &state);
    assert_eq!(opts.account_key, legacy);
}
