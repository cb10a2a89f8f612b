//! Re-runs keep each folder where earlier runs copied it: the folder plan may change under a
//! re-run (the destination gained folders, the options changed), the messages must not be
//! copied a second time.

mod common;

use common::*;
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};

/// A destination like Courier or Mailutils: `INBOX.` prefix, `.` separator, no folder with a
/// special-use attribute.
fn courier_like() -> Dovecot {
    Dovecot::start_with(
        Flavour::DotInbox,
        DovecotOptions {
            special_use_folders: false,
            ..DovecotOptions::default()
        },
    )
}

/// Two drafts folders on the source: `Drafts` (with `\Drafts`, created by the server) and a
/// German `Entwürfe` (a drafts folder by its name), plus INBOX.
async fn two_drafts_folders(acct: &imapmig::engine::Account) {
    let mut seeds = vec![seed("INBOX", message("inbox one", 2), "\\Seen", None)];
    for i in 0..4 {
        seeds.push(seed("Drafts", message(&format!("draft {i}"), 3), "\\Draft", None));
    }
    for i in 0..5 {
        seeds.push(seed("Entwürfe", message(&format!("entwurf {i}"), 3), "", None));
    }
    fill(acct, &seeds).await;
}

fn target_of<'r>(r: &'r imapmig::engine::MigrationReport, source: &str) -> &'r str {
    r.folders
        .iter()
        .find(|f| f.source == source)
        .map(|f| f.target.as_str())
        .unwrap_or_else(|| panic!("no report for {source}: {r:#?}"))
}

/// Issue item 1: against a destination without SPECIAL-USE the first run sends `Drafts` to
/// `INBOX.Drafts` (new) and `Entwürfe` to `INBOX.Entwürfe` (new); the re-run sees two drafts
/// folders on the destination and must not move either folder, nor copy anything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_like_rerun_with_two_drafts_folders_copies_nothing_twice() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = courier_like();
    let (su, du) = (src.user("ida"), dst.user("ida"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    two_drafts_folders(&sa).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("ida");

    let first = migrate(&sa, &da, &opts, state.clone()).await;
    assert_eq!(first.exit_status(), 0, "{first:#?}");
    assert_eq!(first.copied, 10, "{first:#?}");
    assert_eq!(target_of(&first, "Drafts"), "INBOX.Drafts");
    assert_eq!(target_of(&first, "Entwürfe"), "INBOX.Entwürfe");
    let after_first = snapshot(&da).await;

    for pass in 2..=3 {
        let again = migrate(&sa, &da, &opts, state.clone()).await;
        assert_eq!(again.exit_status(), 0, "pass {pass}: {again:#?}");
        assert_eq!(again.copied, 0, "pass {pass}: {again:#?}");
        assert_eq!(target_of(&again, "Drafts"), "INBOX.Drafts", "pass {pass}");
        assert_eq!(target_of(&again, "Entwürfe"), "INBOX.Entwürfe", "pass {pass}");
        assert!(
            again
                .folders
                .iter()
                .flat_map(|f| &f.notes)
                .all(|n| !n.contains("afresh")),
            "pass {pass}: {again:#?}"
        );
        assert_eq!(count(&da, "INBOX").await, 1, "pass {pass}");
        assert_eq!(count(&da, "INBOX.Drafts").await, 4, "pass {pass}");
        assert_eq!(count(&da, "INBOX.Entwürfe").await, 5, "pass {pass}");
        assert_eq!(snapshot(&da).await, after_first, "pass {pass}");
    }
}
