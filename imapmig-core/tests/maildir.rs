//! The Maildir sink and source: a mailbox backed up from IMAP into a Maildir++ tree and
//! restored from it, byte for byte with flags, keywords, INTERNALDATE and non-ASCII folder
//! names; the tree served by Dovecot as it is; Dovecot's own trees read; crash leftovers.

use imapmig_testsupport as common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use imapmig_core::body::{BodyEvent, FetchedBody};
use imapmig_core::engine::{self, fingerprint, MessageFilter, MigrationReport};
use imapmig_core::mapping::PlanOptions;
use imapmig_core::model::{Flags, Folder, InternalDate, Uid};
use imapmig_core::sink::{MigrationSink, SinkSpec};
use imapmig_core::source::{MaildirSpec, MigrationSource, SourceSpec};
use imapmig_core::state::SqliteStore;
use imapmig_testkit::{Dovecot, Flavour};
use tokio_util::sync::CancellationToken;

/// A mailbox with special-use folders, a custom tree with non-ASCII names, flags, keywords,
/// dates in several zones, twins, and real-world messages.
fn mailbox() -> Vec<Seed> {
    let mut seeds = vec![
        seed(
            "INBOX",
            message("hello", 3),
            "\\Seen",
            Some("01-Feb-2015 10:00:00 +0100"),
        ),
        seed(
            "INBOX",
            message("unread", 5),
            "",
            Some("02-Mar-2019 23:59:59 -0500"),
        ),
        seed("INBOX", message("flagged", 2), "\\Flagged $Forwarded", None),
        seed(
            "INBOX",
            message("twin", 2),
            "",
            Some("03-Apr-2020 08:00:00 +0000"),
        ),
        seed(
            "INBOX",
            message("twin", 2),
            "",
            Some("03-Apr-2020 08:00:00 +0000"),
        ),
        seed(
            "Sent",
            message("sent one", 4),
            "\\Seen \\Answered",
            Some("05-May-2012 12:00:00 +0900"),
        ),
        seed("Trash", message("deleted", 1), "\\Seen \\Deleted", None),
        seed(
            "Projects/2024",
            message("project", 10),
            "$Work Important $Label1",
            None,
        ),
        seed(
            "Projects/已发送",
            message("chinese", 2),
            "",
            Some("09-Sep-1999 09:09:09 +0800"),
        ),
        seed("Entwürfe & Notizen", message("german", 2), "\\Draft", None),
        seed("送信済みアイテム", message("japanese", 2), "\\Seen", None),
    ];
    // Real-world messages that Dovecot keeps byte for byte (CRLF only).
    let corpus = corpus();
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let crlf: std::collections::HashSet<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() > 5 && c[3] == "1" && c[4] == "0").then_some(c[0])
        })
        .collect();
    for (path, bytes) in corpus
        .iter()
        .filter(|(p, _)| crlf.contains(p.as_str()))
        .take(40)
    {
        let _ = path;
        seeds.push(seed("Real world", bytes.clone(), "\\Seen", None));
    }
    seeds
}

async fn migrate_specs(
    source: &SourceSpec,
    dest: &SinkSpec,
    key: &str,
    state: std::sync::Arc<SqliteStore>,
) -> MigrationReport {
    engine::migrate_between(
        source,
        dest,
        &options(key),
        state,
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_to_maildir_and_back_is_identical() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (sa, da) = (
        account(&src, &src.user("eve")),
        account(&dst, &dst.user("eve")),
    );
    let seeds = mailbox();
    fill(&sa, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("backup");
    let state = state_file(&dir);
    let imap_src = SourceSpec::Imap(sa.clone());
    let maildir = MaildirSpec::new(&tree);

    // Backup.
    let backup = migrate_specs(
        &imap_src,
        &SinkSpec::Maildir(maildir.clone()),
        "backup",
        state.clone(),
    )
    .await;
    assert!(backup.is_complete(), "{backup:#?}");
    assert_eq!(backup.copied as usize, seeds.len(), "{backup:#?}");
    let plan = PlanOptions::default();
    let v = engine::verify_between(
        &imap_src,
        &SinkSpec::Maildir(maildir.clone()),
        &plan,
        &MessageFilter::default(),
    )
    .await
    .unwrap();
    assert!(v.is_identical(), "{v:#?}");

    // What is on disk is plain Dovecot Maildir++.
    assert!(
        tree.join(".Projects.&XfJT0ZAB-/cur").is_dir(),
        "{:?}",
        ls(&tree)
    );
    assert!(tree
        .join(".Entw&APw-rfe &- Notizen/maildirfolder")
        .is_file());
    assert_eq!(
        std::fs::read_to_string(tree.join(".Sent/imapmig-special-use")).unwrap(),
        "\\Sent\n"
    );
    let uidlist = std::fs::read_to_string(tree.join(".Projects.2024/dovecot-uidlist")).unwrap();
    assert!(
        uidlist.starts_with("3 V") && uidlist.contains(" N2 G"),
        "{uidlist}"
    );
    let keywords = std::fs::read_to_string(tree.join(".Projects.2024/dovecot-keywords")).unwrap();
    for k in ["$Work", "Important", "$Label1"] {
        assert!(keywords.contains(k), "{keywords}");
    }
    let sent = ls(&tree.join(".Sent/cur"));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].ends_with(":2,RS"), "{sent:?}");
    let mtime = std::fs::metadata(tree.join(".Sent/cur").join(&sent[0]))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        time::OffsetDateTime::from(mtime).unix_timestamp(),
        InternalDate::parse_imap("05-May-2012 12:00:00 +0900")
            .unwrap()
            .unix()
    );

    // A second backup run copies nothing.
    let again = migrate_specs(
        &imap_src,
        &SinkSpec::Maildir(maildir.clone()),
        "backup",
        state.clone(),
    )
    .await;
    assert_eq!(again.copied, 0, "{again:#?}");

    // Restore onto another server.
    let restore_src = SourceSpec::Maildir(maildir.clone());
    let restore = migrate_specs(
        &restore_src,
        &SinkSpec::Imap(da.clone()),
        "restore",
        state.clone(),
    )
    .await;
    assert!(restore.is_complete(), "{restore:#?}");
    assert_eq!(restore.copied as usize, seeds.len());
    // The final destination is identical to the original source: bodies, flags, dates, names.
    let v = engine::verify(&sa, &da, &plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
    assert!(
        v.folders.iter().all(|f| f.extra_on_destination == 0),
        "{v:#?}"
    );
    assert_eq!(snapshot(&sa).await, snapshot(&da).await);
    let restore_again =
        migrate_specs(&restore_src, &SinkSpec::Imap(da.clone()), "restore", state).await;
    assert_eq!(restore_again.copied, 0, "{restore_again:#?}");
}

fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// (UIDVALIDITY, UID → (flags, INTERNALDATE, fingerprint)) of a folder, as any source sees it.
async fn folder_view(
    spec: &SourceSpec,
    folder: &Folder,
) -> (u32, BTreeMap<u32, (String, i64, String)>) {
    let mut s = spec.open().await.expect("open");
    let opened = s.open_folder(folder).await.expect("open folder");
    let metas = s.messages().await.expect("messages");
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    s.request_bodies(&uids).await.unwrap();
    let mut fps = BTreeMap::new();
    while let Some(ev) = s.next_body().await.unwrap() {
        if let BodyEvent::Body(mut b) = ev {
            let uid = b.uid;
            let mut all = Vec::new();
            while let Some(c) = b.chunk().await.unwrap() {
                all.extend_from_slice(&c);
            }
            fps.insert(uid.0, fingerprint::hex(&fingerprint::fingerprint(&all)));
        }
    }
    s.close().await;
    let view = metas
        .iter()
        .map(|m| {
            (
                m.uid.0,
                (
                    m.flags.to_line(),
                    m.internal_date.map(|d| d.unix()).unwrap_or(0),
                    fps.get(&m.uid.0).cloned().unwrap_or_default(),
                ),
            )
        })
        .collect();
    (opened.uid_validity.0, view)
}

fn folder(name: &str, raw: &str, delimiter: char) -> Folder {
    Folder {
        name: name.into(),
        raw: raw.into(),
        delimiter: Some(delimiter),
        attributes: Vec::new(),
        special_use: None,
    }
}

/// The custom part of the mailbox (no special-use names, which servers configure themselves).
fn custom_folders() -> Vec<Seed> {
    mailbox()
        .into_iter()
        .filter(|s| s.folder != "Sent" && s.folder != "Trash" && s.folder != "Real world")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_serves_our_tree_with_our_uids() {
    let src = Dovecot::start(Flavour::Slash);
    let sa = account(&src, &src.user("fay"));
    fill(&sa, &custom_folders()).await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let maildir = MaildirSpec::new(&tree);
    let r = migrate_specs(
        &SourceSpec::Imap(sa),
        &SinkSpec::Maildir(maildir.clone()),
        "fay",
        state_file(&dir),
    )
    .await;
    assert!(r.is_complete(), "{r:#?}");

    // Hand the tree to a Maildir++ Dovecot as a user's mail.
    let served = Dovecot::start(Flavour::DotInbox);
    let user = served.user("fay");
    let home = served.maildir_of("fay");
    std::fs::create_dir_all(home.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(&home)
        .status()
        .unwrap();
    assert!(status.success());
    // Owned by the mail user, as mail Dovecot delivered itself would be.
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("--reference={}", home.parent().unwrap().display()))
        .arg(&home)
        .status()
        .unwrap();
    assert!(status.success());
    let da = account(&served, &user);

    for (name, raw) in [
        ("INBOX", "INBOX"),
        ("Projects.2024", "Projects.2024"),
        ("Projects.已发送", "Projects.&XfJT0ZAB-"),
        ("Entwürfe & Notizen", "Entw&APw-rfe &- Notizen"),
    ] {
        let ours = folder_view(
            &SourceSpec::Maildir(maildir.clone()),
            &folder(name, raw, '.'),
        )
        .await;
        let imap_raw = if raw == "INBOX" {
            raw.to_string()
        } else {
            format!("INBOX.{raw}")
        };
        let imap_name = if name == "INBOX" {
            name.to_string()
        } else {
            format!("INBOX.{name}")
        };
        let theirs = folder_view(
            &SourceSpec::Imap(da.clone()),
            &folder(&imap_name, &imap_raw, '.'),
        )
        .await;
        assert_eq!(
            ours,
            theirs,
            "{name}: our view and Dovecot's differ\n{}",
            served.log_tail(20)
        );
        assert!(!ours.1.is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecots_own_maildir_reads_with_its_uids() {
    let d = Dovecot::start(Flavour::DotInbox);
    let u = d.user("gus");
    let da = account(&d, &u);
    let seeds: Vec<Seed> = custom_folders()
        .into_iter()
        .map(|mut s| {
            if s.folder != "INBOX" {
                s.folder = format!("INBOX.{}", s.folder.replace('/', "."));
            }
            s
        })
        .collect();
    fill(&da, &seeds).await;
    // Let Dovecot write its keyword and UID files out.
    let mut s = da.open().await.unwrap();
    s.noop().await.unwrap();
    s.logout().await;
    let tree = MaildirSpec::new(d.maildir_of("gus"));
    let mut listed: Vec<String> = {
        let mut src = SourceSpec::Maildir(tree.clone()).open().await.unwrap();
        let l = src.list_folders().await.unwrap();
        // Dovecot's own files (indexes, uidlists, subscriptions...) are not reported.
        assert_eq!(src.take_skipped(), []);
        for f in &l.folders {
            src.open_folder(f).await.unwrap();
            src.messages().await.unwrap();
            assert_eq!(src.take_skipped(), [], "{}", f.name);
        }
        src.close().await;
        l.folders.into_iter().map(|f| f.name).collect()
    };
    listed.sort();
    for want in [
        "INBOX",
        "Projects.2024",
        "Projects.已发送",
        "Entwürfe & Notizen",
    ] {
        assert!(listed.iter().any(|n| n == want), "{want} not in {listed:?}");
    }
    for (name, raw) in [
        ("INBOX", "INBOX"),
        ("Projects.2024", "Projects.2024"),
        ("Projects.已发送", "Projects.&XfJT0ZAB-"),
    ] {
        let ours = folder_view(&SourceSpec::Maildir(tree.clone()), &folder(name, raw, '.')).await;
        let imap_raw = if raw == "INBOX" {
            raw.to_string()
        } else {
            format!("INBOX.{raw}")
        };
        let theirs =
            folder_view(&SourceSpec::Imap(da.clone()), &folder(name, &imap_raw, '.')).await;
        assert_eq!(ours, theirs, "{name}");
    }
}

async fn append(
    sink: &mut imapmig_core::sink::AnySink,
    body: &[u8],
    flags: &str,
    date: &str,
) -> Uid {
    let mut b = FetchedBody::from_bytes(Uid(1), bytes::Bytes::copy_from_slice(body));
    let date = InternalDate::parse_imap(date).unwrap();
    let t = sink
        .append(&Flags::from_line(flags), Some(&date), &mut b, &mut |_| {})
        .await
        .unwrap();
    sink.finish_append(t).await.unwrap().expect("a UID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_uidlist_missed_gets_the_next_uid_and_sources_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("t");
    let spec = SinkSpec::Maildir(MaildirSpec::new(&tree));
    let mut sink = spec.open().await.unwrap();
    let opened = sink.open_folder("INBOX").await.unwrap();
    assert_eq!(opened.uid_next, Some(1));
    assert!(opened.reports_uids);
    let validity = opened.uid_validity;
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        let uid = append(
            &mut sink,
            &message(m, 2),
            "\\Seen Work",
            "01-Jan-2020 00:00:00 +0000",
        )
        .await;
        assert_eq!(uid, Uid(i as u32 + 1));
    }
    sink.close().await;
    // A crash between the rename into cur/ and the uidlist: the file is there, unlisted.
    let leftover = message("leftover", 1);
    std::fs::write(tree.join("cur/1999999999.M1P1.host,S=1:2,S"), &leftover).unwrap();
    let mut sink = spec.open().await.unwrap();
    let opened = sink.open_folder("INBOX").await.unwrap();
    assert_eq!(opened.uid_validity, validity);
    assert_eq!(opened.uid_next, Some(5));
    assert_eq!(sink.uids_from(4).await.unwrap(), vec![Uid(4)]);
    let fps = sink.fingerprints(&[Uid(4)]).await.unwrap();
    assert_eq!(
        fps[&Uid(4)].fingerprint,
        fingerprint::fingerprint(&leftover)
    );
    // Flags are changed by renaming.
    sink.store_flags(&[Uid(1)], &Flags::from_line("\\Flagged"))
        .await
        .unwrap();
    sink.close().await;
    let names = ls(&tree.join("cur"));
    assert!(
        names.iter().filter(|n| n.ends_with(":2,F")).count() == 1,
        "{names:?}"
    );
    assert!(std::fs::read_to_string(tree.join("dovecot-uidlist"))
        .unwrap()
        .contains(" N5 "));

    // A plain Maildir (no uidlist) read as a source: UIDs by name, nothing written, and a new
    // file changes the UIDVALIDITY.
    let plain = dir.path().join("plain");
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(plain.join(s)).unwrap();
    }
    std::fs::write(plain.join("cur/200.b.h:2,S"), message("two", 1)).unwrap();
    std::fs::write(plain.join("new/100.a.h"), message("one", 1)).unwrap();
    let inbox = folder("INBOX", "INBOX", '.');
    let src = SourceSpec::Maildir(MaildirSpec::new(&plain));
    let (v1, view1) = folder_view(&src, &inbox).await;
    let (v2, view2) = folder_view(&src, &inbox).await;
    assert_eq!((v1, &view1), (v2, &view2));
    assert_eq!(view1.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        view1[&1].2,
        fingerprint::hex(&fingerprint::fingerprint(&message("one", 1)))
    );
    assert_eq!(view1[&2].0, "\\Seen");
    std::fs::write(plain.join("new/300.c.h"), message("three", 1)).unwrap();
    let (v3, view3) = folder_view(&src, &inbox).await;
    assert_ne!(v3, v1);
    assert_eq!(view3.len(), 3);
    assert_eq!(ls(&plain), ["cur", "new", "tmp"]);
}

/// Regression: entries of a Maildir that the source passed over (subdirectories and links in
/// cur/, hidden files, names that are not UTF-8, a second file for one message, folder
/// directories without cur/, a tree in plain subdirectories) were dropped without a word.
/// Each is now reported with its path and why; Dovecot's own files and tmp/ are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maildir_source_reports_every_entry_it_does_not_import() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    for d in [
        "cur",
        "new",
        "tmp",
        ".Good/cur",
        ".Good/new",
        ".Broken/new",
        "Plain/cur",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::create_dir_all(root.join("..Odd/cur")).unwrap();
    std::fs::create_dir_all(root.join("sieve")).unwrap();
    let m = |s: &str| message(s, 1);
    std::fs::write(root.join("cur/100.a.h:2,S"), m("a")).unwrap();
    std::fs::write(root.join("cur/200.dup.h:2,S"), m("dup")).unwrap();
    std::fs::write(root.join(".Good/cur/300.g.h:2,"), m("g")).unwrap();
    std::fs::write(root.join(".Good/maildirfolder"), "").unwrap();
    std::fs::write(root.join(".Broken/new/400.b.h"), m("b")).unwrap();
    // Not reported: deliveries that never finished, Dovecot's and the user's own files.
    std::fs::write(root.join("tmp/500.t.h"), m("t")).unwrap();
    std::fs::write(root.join("subscriptions"), "Good\n").unwrap();
    std::fs::write(root.join("dovecot.index.log"), "").unwrap();
    std::fs::write(root.join(".dovecot.lda-dupes"), "").unwrap();
    // Reported.
    let sub = root.join("cur/sub");
    std::fs::create_dir(&sub).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, m("outside the tree")).unwrap();
    let link = root.join("cur/600.link.h:2,S");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let hidden = root.join("cur/.700.h.h:2,S");
    std::fs::write(&hidden, m("hidden")).unwrap();
    let socket = root.join("cur/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let bad_name = root
        .join("new")
        .join(std::ffi::OsStr::from_bytes(b"800.\xff.h"));
    std::fs::write(&bad_name, m("bad name")).unwrap();
    let dup = root.join("new/200.dup.h");
    std::fs::write(&dup, m("dup, again")).unwrap();
    let gone = root.join(".Gone");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &gone).unwrap();
    let (broken, plain, odd) = (root.join(".Broken"), root.join("Plain"), root.join("..Odd"));

    let p = |path: &Path| path.display().to_string();
    let by_path = |skipped: Vec<imapmig_core::source::SkippedEntry>| -> BTreeMap<String, String> {
        skipped.into_iter().map(|s| (s.path, s.reason)).collect()
    };
    let mut src = SourceSpec::Maildir(MaildirSpec::new(&root))
        .open()
        .await
        .unwrap();
    let listed = src.list_folders().await.unwrap();
    let names: Vec<&str> = listed.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["INBOX", "Good"]);
    let skipped = by_path(src.take_skipped());
    let reason = |s: &BTreeMap<String, String>, path: &Path| {
        s.get(&p(path))
            .unwrap_or_else(|| panic!("{} not reported: {s:#?}", p(path)))
            .clone()
    };
    assert!(
        reason(&skipped, &broken).contains("no cur/"),
        "{skipped:#?}"
    );
    assert!(reason(&skipped, &plain).contains("`.Name`"), "{skipped:#?}");
    assert!(
        reason(&skipped, &odd).contains("empty level"),
        "{skipped:#?}"
    );
    assert!(
        reason(&skipped, &gone).contains("cannot be read"),
        "{skipped:#?}"
    );
    assert_eq!(skipped.len(), 4, "{skipped:#?}");

    src.open_folder(&listed.folders[0]).await.unwrap();
    let metas = src.messages().await.unwrap();
    assert_eq!(metas.len(), 2, "{metas:?}");
    let skipped = by_path(src.take_skipped());
    assert!(reason(&skipped, &sub).contains("directory"), "{skipped:#?}");
    assert!(reason(&skipped, &link).contains("link"), "{skipped:#?}");
    assert!(reason(&skipped, &hidden).contains("`.`"), "{skipped:#?}");
    assert!(
        reason(&skipped, &socket).contains("not a regular file"),
        "{skipped:#?}"
    );
    assert!(
        reason(&skipped, &bad_name).contains("UTF-8"),
        "{skipped:#?}"
    );
    assert!(
        reason(&skipped, &dup).contains(&p(&root.join("cur/200.dup.h:2,S"))),
        "{skipped:#?}"
    );
    assert_eq!(skipped.len(), 6, "{skipped:#?}");

    // A message file that cannot be read when its turn comes is refused on its own, with its
    // path and the reason, and the folder goes on.
    let first = root.join("cur/100.a.h:2,S");
    std::fs::remove_file(&first).unwrap();
    std::os::unix::fs::symlink(&first, &first).unwrap();
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    src.request_bodies(&uids).await.unwrap();
    let (mut bodies, mut failed) = (0, Vec::new());
    while let Some(ev) = src.next_body().await.unwrap() {
        match ev {
            BodyEvent::Body(_) => bodies += 1,
            BodyEvent::Failed(_, status) => failed.push(status.text),
            BodyEvent::Missing(uid) => panic!("{uid:?} missing"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    assert_eq!(bodies, 1);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains(&p(&first)), "{failed:?}");

    src.open_folder(&listed.folders[1]).await.unwrap();
    assert_eq!(src.messages().await.unwrap().len(), 1);
    assert!(src.take_skipped().is_empty());
    src.close().await;
}
