//! Re-runs keep each folder where earlier runs copied it: the folder plan may change under a
//! re-run (the destination gained folders, the options changed), the messages must not be
//! copied a second time.

use imapmig_testsupport as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::batch::task::{Auth, ServerSettings, Transport};
use imapmig_core::batch::{BatchStore, ImportOptions, Scheduler, SchedulerOptions, TaskSettings};
use imapmig_core::secret::Secret;
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};
use tokio_util::sync::CancellationToken;

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
async fn two_drafts_folders(acct: &imapmig_core::engine::Account) {
    let mut seeds = vec![seed("INBOX", message("inbox one", 2), "\\Seen", None)];
    for i in 0..4 {
        seeds.push(seed(
            "Drafts",
            message(&format!("draft {i}"), 3),
            "\\Draft",
            None,
        ));
    }
    for i in 0..5 {
        seeds.push(seed(
            "Entwürfe",
            message(&format!("entwurf {i}"), 3),
            "",
            None,
        ));
    }
    fill(acct, &seeds).await;
}

fn target_of<'r>(r: &'r imapmig_core::engine::MigrationReport, source: &str) -> &'r str {
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
        assert_eq!(
            target_of(&again, "Entwürfe"),
            "INBOX.Entwürfe",
            "pass {pass}"
        );
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

/// A source with a custom folder beside INBOX and the two drafts folders.
async fn with_projects(acct: &imapmig_core::engine::Account) {
    two_drafts_folders(acct).await;
    let seeds: Vec<Seed> = (0..3)
        .map(|i| seed("Projects", message(&format!("project {i}"), 2), "", None))
        .collect();
    fill(acct, &seeds).await;
}

/// Issue item 1, second half: when the admin changes the options so that folders map
/// elsewhere, nothing is copied afresh until the admin says so (remap); then each folder is
/// copied once into its new place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_options_keep_copied_folders_until_remap_moves_them() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (su, du) = (src.user("jo"), dst.user("jo"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    with_projects(&sa).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("jo");
    let first = migrate(&sa, &da, &opts, state.clone()).await;
    assert_eq!(first.copied, 13, "{first:#?}");
    let json = serde_json::to_value(&first).unwrap();
    for f in json["folders"].as_array().unwrap() {
        // Nothing new in the report of a plain run.
        for field in ["planned_target", "remapped_from", "recreated"] {
            assert!(f.get(field).is_none(), "{field} in {f}");
        }
    }
    let after_first = snapshot(&da).await;

    // The admin switches to unified mode.
    let mut unified = opts.clone();
    unified.plan.mode = imapmig_core::mapping::Mode::Unified {
        root: "Migrated".into(),
        address: "jo@old.example".into(),
    };
    let kept = migrate(&sa, &da, &unified, state.clone()).await;
    assert_eq!(kept.exit_status(), 0, "{kept:#?}");
    assert_eq!(kept.copied, 0, "{kept:#?}");
    for f in &kept.folders {
        let planned = format!("Migrated/jo@old.example/{}", f.source);
        assert_eq!(
            f.planned_target.as_deref(),
            Some(planned.as_str()),
            "{f:#?}"
        );
        assert!(f.notes.iter().any(|n| n.contains("remap")), "{f:#?}");
    }
    assert_eq!(target_of(&kept, "Projects"), "Projects");
    assert_eq!(target_of(&kept, "Entwürfe"), "Entwürfe");
    let json = serde_json::to_value(&kept).unwrap();
    assert!(json["folders"][0]["planned_target"].is_string(), "{json}");
    assert_eq!(
        snapshot(&da).await,
        after_first,
        "nothing moved, nothing created"
    );

    // The admin asks for the move: each folder is copied once into its new place.
    unified.plan.remap = true;
    let moved = migrate(&sa, &da, &unified, state.clone()).await;
    assert_eq!(moved.exit_status(), 0, "{moved:#?}");
    assert_eq!(moved.copied, 13, "{moved:#?}");
    for f in &moved.folders {
        assert_eq!(f.target, format!("Migrated/jo@old.example/{}", f.source));
        assert!(f.remapped_from.is_some(), "{f:#?}");
    }
    assert_eq!(count(&da, "Migrated/jo@old.example/Drafts").await, 4);
    assert_eq!(count(&da, "Migrated/jo@old.example/Entwürfe").await, 5);
    assert_eq!(count(&da, "Migrated/jo@old.example/Projects").await, 3);
    // The old copies stay where they were.
    assert_eq!(count(&da, "Projects").await, 3);

    // And the new places are kept from now on, remap or not.
    for remap in [true, false] {
        unified.plan.remap = remap;
        let again = migrate(&sa, &da, &unified, state.clone()).await;
        assert_eq!(again.copied, 0, "remap {remap}: {again:#?}");
        assert_eq!(count(&da, "Migrated/jo@old.example/Drafts").await, 4);
    }
}

/// A folder deleted on the destination after it was copied is created again and copied
/// afresh, and the report says so: the destination is the truth, not our records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_folder_deleted_on_the_destination_is_created_again_and_refilled() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = courier_like();
    let (su, du) = (src.user("kim"), dst.user("kim"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    with_projects(&sa).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("kim");
    let first = migrate(&sa, &da, &opts, state.clone()).await;
    assert_eq!(first.copied, 13, "{first:#?}");
    let after_first = snapshot(&da).await;

    dst.doveadm_ok(&["mailbox", "delete", "-u", &du.name, "INBOX.Projects"]);
    dst.doveadm_ok(&["mailbox", "delete", "-u", &du.name, "INBOX.Drafts"]);
    let again = migrate(&sa, &da, &opts, state.clone()).await;
    assert_eq!(again.exit_status(), 0, "{again:#?}");
    assert_eq!(again.copied, 7, "{again:#?}");
    for name in ["Projects", "Drafts"] {
        let f = again.folders.iter().find(|f| f.source == name).unwrap();
        assert!(f.recreated, "{f:#?}");
        assert!(
            f.notes.iter().any(|n| n.contains("no longer had")),
            "{f:#?}"
        );
    }
    assert_eq!(target_of(&again, "Drafts"), "INBOX.Drafts");
    assert_eq!(target_of(&again, "Entwürfe"), "INBOX.Entwürfe");
    assert_eq!(count(&da, "INBOX.Projects").await, 3);
    assert_eq!(count(&da, "INBOX.Drafts").await, 4);
    assert_eq!(count(&da, "INBOX.Entwürfe").await, 5);
    assert_eq!(snapshot(&da).await, after_first);

    let third = migrate(&sa, &da, &opts, state).await;
    assert_eq!(third.copied, 0, "{third:#?}");
    assert!(third.folders.iter().all(|f| !f.recreated), "{third:#?}");
}

fn server(d: &Dovecot) -> ServerSettings {
    let mut s = ServerSettings::new(d.host());
    s.port = d.imap_port();
    s.transport = Transport::Cleartext;
    s.timeout = Duration::from_secs(30);
    s
}

/// The batch scheduler's incremental passes are re-runs too: the Courier case of issue item 1
/// through a batch task, pass after pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_like_incremental_batch_passes_copy_nothing_twice() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = courier_like();
    let su = src.user("lou");
    two_drafts_folders(&account(&src, &su)).await;
    let du = dst.user("lou@x.example");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    let mut destination = server(&dst);
    destination.auth = Auth::MasterUser {
        master: dst.master_user().name,
        separator: "*".into(),
    };
    let mut settings = TaskSettings::new(server(&src), destination);
    settings.schedule.interval = Duration::from_millis(500);
    store
        .create_task(
            "t",
            &settings,
            None,
            Some(Secret::new(dst.master_user().password)),
        )
        .unwrap();
    let file = dir.path().join("accounts.csv");
    std::fs::write(
        &file,
        format!(
            "target,source,password\nlou@x.example,lou,{}\n",
            su.password
        ),
    )
    .unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    let cancel = CancellationToken::new();
    let sched = Scheduler::new(store.clone(), "t").with_options(SchedulerOptions {
        tick: Duration::from_millis(100),
        flush: Duration::from_millis(200),
        ..SchedulerOptions::default()
    });
    let c = cancel.clone();
    let handle = tokio::spawn(async move { sched.run(c, None).await.expect("scheduler") });

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = store.accounts("t").unwrap();
        if list[0].passes >= 4 {
            assert_eq!(list[0].messages, 10, "{list:#?}");
            assert_eq!(list[0].last_error, None, "{list:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "timed out: {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    handle.await.unwrap();
    let da = account(&dst, &du);
    assert_eq!(count(&da, "INBOX").await, 1);
    assert_eq!(count(&da, "INBOX.Drafts").await, 4);
    assert_eq!(count(&da, "INBOX.Entwürfe").await, 5);
}
