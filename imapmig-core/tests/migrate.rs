//! The migration engine against real Dovecot servers: folder mapping both ways, unified mode,
//! filters, re-runs, incremental mail, flag changes, UIDVALIDITY resets, refusals.

use imapmig_testsupport as common;

use common::*;
use imapmig_core::engine::{self, MessageFilter};
use imapmig_core::mapping::{Mode, PlanOptions};
use imapmig_core::model::SpecialUse;
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};

/// A source mailbox with system folders, a custom tree, non-ASCII names, flags and old dates.
fn mailbox(flavour: Flavour) -> Vec<Seed> {
    let f = |parts: &[&str]| {
        if parts == ["INBOX"] {
            "INBOX".to_string()
        } else {
            flavour.folder_name(parts)
        }
    };
    let sent = flavour.folder_name(&[flavour.special_use_names()[0].0]);
    let trash = flavour.folder_name(&[flavour.special_use_names()[1].0]);
    vec![
        seed(
            &f(&["INBOX"]),
            message("hello", 3),
            "\\Seen",
            Some("01-Feb-2015 10:00:00 +0100"),
        ),
        seed(
            &f(&["INBOX"]),
            message("unread", 5),
            "",
            Some("02-Mar-2019 23:59:59 -0500"),
        ),
        seed(
            &f(&["INBOX"]),
            message("flagged", 2),
            "\\Flagged $Forwarded",
            None,
        ),
        // Two identical messages are two messages.
        seed(
            &f(&["INBOX"]),
            message("twin", 2),
            "",
            Some("03-Apr-2020 08:00:00 +0000"),
        ),
        seed(
            &f(&["INBOX"]),
            message("twin", 2),
            "",
            Some("03-Apr-2020 08:00:00 +0000"),
        ),
        seed(
            &sent,
            message("sent one", 4),
            "\\Seen \\Answered",
            Some("05-May-2012 12:00:00 +0900"),
        ),
        seed(&trash, message("deleted", 1), "\\Seen \\Deleted", None),
        seed(
            &f(&["Projects", "2024"]),
            message("project", 10),
            "$Work",
            None,
        ),
        seed(&f(&["Projects", "已发送"]), message("chinese", 2), "", None),
        seed(
            &f(&["Entwürfe & Notizen"]),
            message("german", 2),
            "\\Draft",
            None,
        ),
        seed(
            &f(&["送信済みアイテム"]),
            message("japanese", 2),
            "\\Seen",
            None,
        ),
    ]
}

/// The decoded destination name a source folder should land in, for the two flavours.
fn expected_target(dst: Flavour, parts: &[&str]) -> String {
    dst.folder_name(parts)
}

async fn mapping_mode_between(src_flavour: Flavour, dst_flavour: Flavour) {
    let src = Dovecot::start(src_flavour);
    let dst = Dovecot::start(dst_flavour);
    let (su, du) = (src.user("alice"), dst.user("alice"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    fill(&sa, &mailbox(src_flavour)).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("alice");

    let report = migrate(&sa, &da, &opts, state.clone()).await;
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.copied, 11, "{report:#?}");

    // System folders landed on the destination's own.
    let dst_sent = dst_flavour.folder_name(&[dst_flavour.special_use_names()[0].0]);
    let dst_trash = dst_flavour.folder_name(&[dst_flavour.special_use_names()[1].0]);
    assert_eq!(count(&da, &dst_sent).await, 1);
    assert_eq!(count(&da, &dst_trash).await, 1);
    assert_eq!(count(&da, "INBOX").await, 5);
    // Custom folders kept their tree, in the destination's syntax, non-ASCII intact.
    assert_eq!(
        count(&da, &expected_target(dst_flavour, &["Projects", "2024"])).await,
        1
    );
    assert_eq!(
        count(&da, &expected_target(dst_flavour, &["Projects", "已发送"])).await,
        1
    );
    assert_eq!(
        count(&da, &expected_target(dst_flavour, &["Entwürfe & Notizen"])).await,
        1
    );
    assert_eq!(
        count(&da, &expected_target(dst_flavour, &["送信済みアイテム"])).await,
        1
    );

    // The library's own verification, against the source.
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
    assert!(
        v.folders.iter().all(|f| f.extra_on_destination == 0),
        "{v:#?}"
    );

    // A re-run copies nothing.
    let again = migrate(&sa, &da, &opts, state).await;
    assert_eq!(again.copied, 0, "{again:#?}");
    assert_eq!(count(&da, "INBOX").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_mode_slash_to_dot_inbox() {
    mapping_mode_between(Flavour::Slash, Flavour::DotInbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_mode_dot_inbox_to_slash() {
    mapping_mode_between(Flavour::DotInbox, Flavour::Slash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_mode_same_flavour_keeps_everything_identical() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("bob")),
        account(&dst, &dst.user("bob")),
    );
    fill(&sa, &mailbox(Flavour::Slash)).await;
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(&sa, &da, &options("bob"), state_file(&dir)).await;
    assert!(report.is_complete());
    // Same layout on both sides: the snapshots (bodies, flags, dates per folder) are equal.
    assert_eq!(snapshot(&sa).await, snapshot(&da).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_mode_puts_everything_under_the_address() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (sa, da) = (
        account(&src, &src.user("carol")),
        account(&dst, &dst.user("carol")),
    );
    fill(&sa, &mailbox(Flavour::Slash)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("carol");
    opts.plan.mode = Mode::Unified {
        root: "Migrated".into(),
        address: "carol@old.example".into(),
    };
    let report = migrate(&sa, &da, &opts, state_file(&dir)).await;
    assert!(report.is_complete(), "{report:#?}");
    // The address's dots are escaped so that they do not split the folder on a '.' server.
    let root = report.folders[0].target.clone();
    assert!(
        root.starts_with("INBOX.Migrated.carol@old%2Eexample"),
        "{root}"
    );
    let targets: Vec<&str> = report.folders.iter().map(|f| f.target.as_str()).collect();
    assert!(
        targets.contains(&"INBOX.Migrated.carol@old%2Eexample.INBOX"),
        "{targets:?}"
    );
    assert!(
        targets.contains(&"INBOX.Migrated.carol@old%2Eexample.Sent"),
        "{targets:?}"
    );
    assert_eq!(
        count(&da, "INBOX.Migrated.carol@old%2Eexample.Projects.已发送").await,
        1
    );
    // Nothing went into the destination's own folders.
    assert_eq!(count(&da, "INBOX").await, 0);
    assert_eq!(count(&da, "INBOX.Sent Items").await, 0);
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_exclude_and_special_use_exclusion() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("dave")),
        account(&dst, &dst.user("dave")),
    );
    fill(&sa, &mailbox(Flavour::Slash)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("dave");
    opts.plan = PlanOptions {
        exclude: vec!["Projects/**".into()],
        exclude_special: vec![SpecialUse::Trash, SpecialUse::Junk],
        ..PlanOptions::default()
    };
    let report = migrate(&sa, &da, &opts, state_file(&dir)).await;
    let sources: Vec<&str> = report.folders.iter().map(|f| f.source.as_str()).collect();
    assert!(
        !sources.iter().any(|s| s.starts_with("Projects/")),
        "{sources:?}"
    );
    assert!(!sources.contains(&"Trash"), "{sources:?}");
    assert!(
        sources.contains(&"INBOX") && sources.contains(&"Sent"),
        "{sources:?}"
    );
    assert_eq!(count(&da, "Trash").await, 0);
    assert_eq!(count(&da, "Sent").await, 1);

    // Only INBOX, via include.
    let dst2 = Dovecot::start(Flavour::Slash);
    let da2 = account(&dst2, &dst2.user("dave"));
    let mut only = options("dave-inbox");
    only.plan.include = vec!["INBOX".into()];
    let report = migrate(&sa, &da2, &only, state_file(&dir)).await;
    assert_eq!(report.folders.len(), 1, "{report:#?}");
    assert_eq!(report.copied, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_range_on_internaldate_and_on_header() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("erin")),
        account(&dst, &dst.user("erin")),
    );
    let dated = |subject: &str, header_date: &str| {
        let mut m = format!("Date: {header_date}\r\n").into_bytes();
        m.extend(message(subject, 2));
        m
    };
    fill(
        &sa,
        &[
            seed(
                "INBOX",
                dated("old", "Mon, 1 Jan 2001 10:00:00 +0000"),
                "",
                Some("01-Jan-2010 10:00:00 +0000"),
            ),
            seed(
                "INBOX",
                dated("mid", "Tue, 1 Jan 2002 10:00:00 +0000"),
                "",
                Some("01-Jun-2015 10:00:00 +0000"),
            ),
            seed(
                "INBOX",
                dated("new", "Wed, 1 Jan 2003 10:00:00 +0000"),
                "",
                Some("01-Jan-2020 10:00:00 +0000"),
            ),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("erin");
    opts.plan.include = vec!["INBOX".into()];
    opts.filter.since = Some(time::macros::date!(2015 - 01 - 01));
    opts.filter.before = Some(time::macros::date!(2019 - 01 - 01));
    let r = migrate(&sa, &da, &opts, state_file(&dir)).await;
    assert_eq!(
        (r.folders[0].copied, r.folders[0].skipped_by_filter),
        (1, 2),
        "{r:#?}"
    );
    let snap = snapshot(&da).await;
    let inbox = &snap.iter().find(|(n, _)| n == "INBOX").unwrap().1;
    assert!(String::from_utf8_lossy(&inbox[0].0).contains("Subject: mid"));

    // Staged: the rest of the history follows in a run without a range. The source folder has
    // not changed since, but it was last read for another selection: read again, not skipped.
    let mut everything = opts.clone();
    everything.filter = MessageFilter::default();
    let r = migrate(&sa, &da, &everything, state_file(&dir)).await;
    assert_eq!(
        (r.folders[0].copied, r.folders[0].already_there),
        (2, 1),
        "{r:#?}"
    );
    let r = migrate(&sa, &da, &everything, state_file(&dir)).await;
    assert!(r.folders[0].unchanged && r.copied == 0, "{r:#?}");
    assert_eq!(count(&da, "INBOX").await, 3);

    // On the Date header instead: only "new" (2003) is on or after 2002-06-01.
    let dst2 = Dovecot::start(Flavour::Slash);
    let da2 = account(&dst2, &dst2.user("erin"));
    let mut by_header = options("erin-header");
    by_header.plan.include = vec!["INBOX".into()];
    by_header.filter.since = Some(time::macros::date!(2002 - 06 - 01));
    by_header.filter.date_field = engine::DateField::Header;
    let r = migrate(&sa, &da2, &by_header, state_file(&dir)).await;
    assert_eq!(r.folders[0].copied, 1, "{r:#?}");
    let snap = snapshot(&da2).await;
    let inbox = &snap.iter().find(|(n, _)| n == "INBOX").unwrap().1;
    assert!(String::from_utf8_lossy(&inbox[0].0).contains("Subject: new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_and_flag_changes_are_carried_by_the_next_run() {
    let src = Dovecot::start(Flavour::DotInbox);
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("frank")),
        account(&dst, &dst.user("frank")),
    );
    fill(&sa, &mailbox(Flavour::DotInbox)).await;
    let archive: Vec<Seed> = (0..40)
        .map(|i| seed("INBOX", message(&format!("old {i}"), 2), "\\Seen", None))
        .collect();
    fill(&sa, &archive).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("frank");
    migrate(&sa, &da, &opts, state.clone()).await;

    // New mail arrives; a message is read and flagged on the source.
    fill(&sa, &[seed("INBOX", message("later", 3), "", None)]).await;
    {
        let mut s = sa.open().await.unwrap();
        s.select("INBOX").await.unwrap();
        let metas = s.fetch_meta("1:*", None).await.unwrap();
        let first = metas[1].uid; // "unread"
        s.uid_store(
            &first.to_string(),
            "+",
            &imapmig_core::model::Flags::from_line("\\Seen \\Flagged $Important"),
        )
        .await
        .unwrap();
        s.logout().await;
    }
    let r = migrate(&sa, &da, &opts, state.clone()).await;
    assert_eq!(r.copied, 1, "{r:#?}");
    let inbox = r.folders.iter().find(|f| f.source == "INBOX").unwrap();
    assert_eq!(inbox.flags_updated, 1, "{inbox:#?}");
    // Only what changed was read (CHANGEDSINCE): the new message and the re-flagged one, not
    // the whole inbox; the counts still cover every message.
    let in_inbox = u64::from(count(&sa, "INBOX").await);
    assert!(in_inbox > 40, "{in_inbox}");
    assert_eq!(inbox.listed, 2, "{inbox:#?}");
    assert_eq!(inbox.found, in_inbox, "{inbox:#?}");
    assert_eq!(inbox.already_there, in_inbox - 1, "{inbox:#?}");
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");

    // Nothing changed: the folders are skipped by HIGHESTMODSEQ, nothing copied.
    let r = migrate(&sa, &da, &opts, state).await;
    assert_eq!(r.copied, 0);
    assert!(r.folders.iter().all(|f| f.unchanged), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_reset_on_either_side_copies_nothing_twice() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (su, du) = (src.user("gina"), dst.user("gina"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    fill(&sa, &mailbox(Flavour::Slash)).await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let opts = options("gina");
    migrate(&sa, &da, &opts, state.clone()).await;

    // The source's INBOX gets a new UIDVALIDITY (as after a server rebuild), and a new message.
    src.doveadm_ok(&[
        "mailbox",
        "update",
        "-u",
        &su.name,
        "--uid-validity",
        "12345",
        "INBOX",
    ]);
    fill(&sa, &[seed("INBOX", message("after reset", 2), "", None)]).await;
    let r = migrate(&sa, &da, &opts, state.clone()).await;
    let inbox = r.folders.iter().find(|f| f.source == "INBOX").unwrap();
    assert_eq!(inbox.copied, 1, "{inbox:#?}");
    assert!(
        inbox.notes.iter().any(|n| n.contains("UIDVALIDITY")),
        "{inbox:#?}"
    );
    assert_eq!(count(&da, "INBOX").await, 6);

    // Now the destination's INBOX is reset.
    dst.doveadm_ok(&[
        "mailbox",
        "update",
        "-u",
        &du.name,
        "--uid-validity",
        "777",
        "INBOX",
    ]);
    let r = migrate(&sa, &da, &opts, state).await;
    let inbox = r.folders.iter().find(|f| f.source == "INBOX").unwrap();
    assert_eq!(inbox.copied, 0, "{inbox:#?}");
    assert_eq!(count(&da, "INBOX").await, 6);
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_refusing_a_message_is_reported_and_the_rest_goes() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start_with(
        Flavour::Slash,
        DovecotOptions {
            max_message_size: Some(20_000),
            ..DovecotOptions::default()
        },
    );
    let (sa, da) = (
        account(&src, &src.user("hank")),
        account(&dst, &dst.user("hank")),
    );
    fill(
        &sa,
        &[
            seed("INBOX", message("small", 3), "", None),
            seed("INBOX", message("big", 3000), "", None),
            seed("INBOX", message("small too", 3), "\\Seen", None),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = state_file(&dir);
    let mut opts = options("hank");
    opts.plan.include = vec!["INBOX".into()];
    let r = migrate(&sa, &da, &opts, state.clone()).await;
    assert!(!r.is_complete());
    let inbox = &r.folders[0];
    assert_eq!(inbox.copied, 2, "{inbox:#?}");
    assert_eq!(inbox.refused.len(), 1, "{inbox:#?}");
    assert_eq!(inbox.refused[0].uid, 2);
    assert!(inbox.refused[0].reason.contains("LIMIT"), "{inbox:#?}");
    assert_eq!(count(&da, "INBOX").await, 2);

    // A re-run tries the refused message again (the limit may have been raised) and
    // copies nothing twice.
    let r = migrate(&sa, &da, &opts, state).await;
    assert_eq!(r.folders[0].copied, 0);
    assert_eq!(r.folders[0].refused.len(), 1);
    assert_eq!(count(&da, "INBOX").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_copies_nothing_and_renders_the_plan() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (sa, da) = (
        account(&src, &src.user("ivy")),
        account(&dst, &dst.user("ivy")),
    );
    fill(&sa, &mailbox(Flavour::Slash)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("ivy");
    opts.dry_run = true;
    let r = migrate(&sa, &da, &opts, state_file(&dir)).await;
    assert!(r.dry_run);
    assert_eq!(r.copied, 0);
    assert!(r.plan.contains("INBOX.Sent Items"), "{}", r.plan);
    assert_eq!(r.folders.iter().map(|f| f.found).sum::<u64>(), 11);
    assert_eq!(count(&da, "INBOX").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_message_survives_byte_exact() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (sa, da) = (
        account(&src, &src.user("corpus")),
        account(&dst, &dst.user("corpus")),
    );
    // One source folder per corpus source directory.
    let corpus = corpus();
    let seeds: Vec<Seed> = corpus
        .iter()
        .map(|(path, bytes)| {
            let dir = path.split('/').next().unwrap_or("misc");
            seed(&format!("corpus/{dir}"), bytes.clone(), "", None)
        })
        .collect();
    fill(&sa, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("corpus");
    opts.connections = 3;
    let r = migrate(&sa, &da, &opts, state_file(&dir)).await;
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.copied as usize, corpus.len());
    println!(
        "corpus: {} messages, {:.1} MB in {:.1} s",
        r.copied,
        r.bytes as f64 / 1e6,
        r.seconds
    );
    // What the destination returns equals what the source returned, byte for byte.
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(
        v.is_identical(),
        "{:#?}",
        v.folders
            .iter()
            .filter(|f| !f.differences.is_empty())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        v.folders.iter().map(|f| f.matched).sum::<u64>() as usize,
        corpus.len()
    );
}

fn collecting_sink() -> (
    engine::ProgressSink,
    std::sync::Arc<std::sync::Mutex<Vec<engine::ProgressEvent>>>,
) {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let e = events.clone();
    let sink: engine::ProgressSink = std::sync::Arc::new(move |ev: &engine::ProgressEvent| {
        e.lock().unwrap().push(ev.clone());
    });
    (sink, events)
}

/// A pass with little to do (a small account, an incremental pass with a little new mail)
/// logs in once a side, whatever `connections` says: a source that allows one connection per
/// user sees no second attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_pass_uses_one_connection() {
    let src = one_connection_per_user();
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("one")),
        account(&dst, &dst.user("one")),
    );
    let seeds: Vec<Seed> = ["INBOX", "A", "B", "C"]
        .iter()
        .flat_map(|f| (0..10).map(move |i| seed(f, message(&format!("{f} {i}"), 5), "", None)))
        .collect();
    fill(&sa, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("one");
    opts.connections = 4;
    for (pass, expected) in [(1, 40), (2, 0)] {
        let (sink, events) = collecting_sink();
        let r = engine::migrate(
            &sa,
            &da,
            &opts,
            state_file(&dir),
            Some(sink),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(r.is_complete(), "pass {pass}: {r:#?}");
        assert_eq!(r.copied, expected, "pass {pass}");
        let events = events.lock().unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, engine::ProgressEvent::ConnectionsReduced { .. })),
            "pass {pass} tried a second connection: {events:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_limiting_connections_gets_fewer_and_the_migration_completes() {
    // The source allows one connection per user: the planning connection.
    let src = one_connection_per_user();
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("lim")),
        account(&dst, &dst.user("lim")),
    );
    // Enough mail that the pass asks for more than one connection (a light one would not).
    let mut seeds = Vec::new();
    for f in ["INBOX", "A", "B", "C", "D", "E"] {
        for i in 0..50 {
            seeds.push(seed(f, message(&format!("{f} {i}"), 20), "", None));
        }
    }
    fill(&sa, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("lim");
    opts.connections = 4;
    let (sink, events) = collecting_sink();
    let r = engine::migrate(
        &sa,
        &da,
        &opts,
        state_file(&dir),
        Some(sink),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("migration completes with fewer connections");
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.copied, 300);
    let reduced = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, engine::ProgressEvent::ConnectionsReduced { .. }))
        .count();
    assert!(reduced >= 1, "no worker gave way to the connection limit");
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_reopened_and_the_copy_resumes() {
    let src = std::sync::Arc::new(Dovecot::start(Flavour::Slash));
    let dst = std::sync::Arc::new(Dovecot::start(Flavour::DotInbox));
    let (su, du) = (src.user("kicked"), dst.user("kicked"));
    let (sa, da) = (account(&src, &su), account(&dst, &du));
    let seeds: Vec<Seed> = (0..400)
        .map(|i| seed("INBOX", message(&format!("m{i}"), 100 + i % 300), "", None))
        .collect();
    fill(&sa, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("kicked");
    opts.batch = 16;
    opts.backoff = std::time::Duration::from_millis(50);

    // After 60 and 200 messages, the servers throw the user out: first the source, then the
    // destination (`doveadm kick`, as an admin or a restart would).
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let copied = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (c, events) = (
        copied.clone(),
        std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let ev = events.clone();
    let sink: engine::ProgressSink = std::sync::Arc::new(move |e: &engine::ProgressEvent| {
        if let engine::ProgressEvent::MessageCopied { .. } = e {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == 60 || n == 200 {
                let _ = tx.send(n);
            }
        }
        ev.lock().unwrap().push(e.clone());
    });
    let (s2, d2, sn, dn) = (src.clone(), dst.clone(), su.name.clone(), du.name.clone());
    let kicker = std::thread::spawn(move || {
        let mut kicks = 0;
        while let Ok(n) = rx.recv() {
            let out = if n == 60 {
                s2.doveadm(&["kick", &sn])
            } else {
                d2.doveadm(&["kick", &dn])
            };
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            kicks += 1;
        }
        kicks
    });
    let r = engine::migrate(
        &sa,
        &da,
        &opts,
        state_file(&dir),
        Some(sink),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("the migration survives dropped connections");
    assert!(r.is_complete(), "{r:#?}");
    // The sink (and with it the sender) went away with the migration: the kicker ends.
    let kicks = kicker.join().unwrap();
    assert_eq!(kicks, 2);
    let retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, engine::ProgressEvent::Retrying { .. }))
        .count();
    assert!(
        retries >= 2,
        "expected a retry after each kick, saw {retries}"
    );
    let v = engine::verify(&sa, &da, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
    assert!(
        v.folders.iter().all(|f| f.extra_on_destination == 0),
        "{v:#?}"
    );
}

/// The source's CHANGEDSINCE read hands out exactly what changed since a HIGHESTMODSEQ: nothing
/// for the current one, the new message for the one before it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changedsince_hands_out_only_what_changed() {
    use imapmig_core::source::{ImapSource, MigrationSource};
    let d = Dovecot::start(Flavour::Slash);
    let acct = account(&d, &d.user("cs"));
    fill(
        &acct,
        &[
            seed("INBOX", message("one", 2), "", None),
            seed("INBOX", message("two", 2), "\\Seen", None),
        ],
    )
    .await;
    let mut src = ImapSource::open(&acct).await.unwrap();
    let list = src.list_folders().await.unwrap();
    let inbox = list.folders.iter().find(|f| f.name == "INBOX").unwrap();
    let opened = src.open_folder(inbox).await.unwrap();
    let modseq = opened.highest_modseq.expect("Dovecot has CONDSTORE");
    // What changed since the folder's current state: nothing.
    assert_eq!(
        src.messages_changed_since(modseq).await.unwrap(),
        Some(Vec::new())
    );
    // A message arrives: since that state, it alone has changed.
    fill(&acct, &[seed("INBOX", message("three", 2), "", None)]).await;
    src.open_folder(inbox).await.unwrap();
    let all = src.messages().await.unwrap();
    assert_eq!(all.len(), 3);
    let changed = src.messages_changed_since(modseq).await.unwrap().unwrap();
    assert_eq!(
        changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![all[2].uid]
    );
    src.close().await;
}
