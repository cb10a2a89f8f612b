//! Batch migrations through the library against real Dovecot servers: the status machine
//! driven by the scheduler (waiting for credentials, failing logins, pause, resume, stop,
//! incremental passes), and throttling that costs a host connections.

use imapmig_testsupport as common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::batch::task::{Auth, ServerSettings, Transport};
use imapmig_core::batch::{
    AccountReport, BatchError, BatchStore, FailureCategory, ImportOptions, LiveSnapshot,
    RunSummary, Scheduler, SchedulerOptions, Selection, Status, TaskSettings,
};
use imapmig_core::secret::Secret;
use imapmig_testkit::{Dovecot, Flavour};
use tokio_util::sync::CancellationToken;

fn server(d: &Dovecot) -> ServerSettings {
    let mut s = ServerSettings::new(d.host());
    s.port = d.imap_port();
    s.transport = Transport::Cleartext;
    s.timeout = Duration::from_secs(30);
    s
}

/// A task whose destination logs in through Dovecot's master user.
fn settings(src: &Dovecot, dst: &Dovecot) -> TaskSettings {
    let mut destination = server(dst);
    destination.auth = Auth::MasterUser {
        master: dst.master_user().name,
        separator: "*".into(),
    };
    let mut s = TaskSettings::new(server(src), destination);
    s.schedule.interval = Duration::from_secs(2);
    s.retry.base = Duration::from_secs(1);
    s.retry.max = Duration::from_secs(2);
    s.retry.max_attempts = 3;
    s
}

fn fast() -> SchedulerOptions {
    SchedulerOptions {
        tick: Duration::from_millis(100),
        flush: Duration::from_millis(200),
        engine_retries: 4,
        engine_backoff: Duration::from_millis(200),
        throttle_cooldown: Duration::from_secs(1),
        ..SchedulerOptions::default()
    }
}

fn spawn(
    store: &Arc<BatchStore>,
    options: SchedulerOptions,
) -> (CancellationToken, tokio::task::JoinHandle<RunSummary>) {
    let cancel = CancellationToken::new();
    let sched = Scheduler::new(store.clone(), "t").with_options(options);
    let c = cancel.clone();
    let handle = tokio::spawn(async move { sched.run(c, None).await.expect("scheduler") });
    (cancel, handle)
}

fn by_target<'a>(list: &'a [AccountReport], target: &str) -> &'a AccountReport {
    list.iter()
        .find(|a| a.target == target)
        .unwrap_or_else(|| panic!("no account {target}"))
}

/// Polls until `pred` holds for the account list, or fails after `secs` with the list.
async fn wait_for(
    store: &BatchStore,
    secs: u64,
    what: &str,
    pred: impl Fn(&[AccountReport]) -> bool,
) -> Vec<AccountReport> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = store.accounts("t").unwrap();
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of(list: &[AccountReport], target: &str) -> Status {
    by_target(list, target).status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_credentials_pauses_and_incremental_passes() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let names = ["ann", "bob", "cy", "dee"];
    for n in names {
        let u = src.user(n);
        fill(
            &account(&src, &u),
            &[
                seed("INBOX", message(&format!("{n} one"), 5), "\\Seen", None),
                seed("Work", message(&format!("{n} two"), 5), "", None),
            ],
        )
        .await;
    }
    let ann = src.user("ann");
    let cy = src.user("cy");
    let dee = src.user("dee");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    store
        .create_task(
            "t",
            &settings(&src, &dst),
            None,
            Some(Secret::new(dst.master_user().password)),
        )
        .unwrap();
    // Targets are addresses; the destination's users are named after them. bob has no
    // password yet, cy a wrong one.
    let csv = format!(
        "target,source,password\nann@x.example,ann,{}\nbob@x.example,bob,\ncy@x.example,cy,wrong-{}\ndee@x.example,dee,{}\n",
        ann.password, cy.password, dee.password
    );
    let file = dir.path().join("accounts.csv");
    std::fs::write(&file, csv).unwrap();
    for n in names {
        dst.user(&format!("{n}@x.example"));
    }
    let r = store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    assert_eq!((r.added, r.waiting_for_credentials), (4, 1));

    let (cancel, handle) = spawn(&store, fast());
    let list = wait_for(&store, 60, "ann and dee synced, cy failed", |l| {
        status_of(l, "ann@x.example") == Status::Synced
            && status_of(l, "dee@x.example") == Status::Synced
            && status_of(l, "cy@x.example") == Status::Failed
    })
    .await;
    assert_eq!(
        status_of(&list, "bob@x.example"),
        Status::WaitingForCredentials
    );
    let cy_report = by_target(&list, "cy@x.example");
    assert_eq!(cy_report.failure, Some(FailureCategory::Authentication));
    assert!(
        cy_report
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("refused the login"),
        "{cy_report:?}"
    );
    assert!(
        !cy_report
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("wrong-"),
        "a password leaked"
    );
    let ann_report = by_target(&list, "ann@x.example");
    assert_eq!(ann_report.messages, 2, "{ann_report:?}");
    assert_eq!(
        ann_report.folders_done, ann_report.folders_total,
        "{ann_report:?}"
    );

    // Credentials: bob starts, cy is fixed.
    store
        .supply_credentials("t", "bob", Secret::new(src.user("bob").password))
        .unwrap();
    store
        .supply_credentials("t", "cy@x.example", Secret::new(cy.password.clone()))
        .unwrap();
    wait_for(&store, 60, "bob and cy synced", |l| {
        status_of(l, "bob@x.example") == Status::Synced
            && status_of(l, "cy@x.example") == Status::Synced
    })
    .await;

    // Pause ann, deliver new mail to ann and dee: only dee's arrives, until ann resumes.
    let paused = vec!["ann@x.example".to_string()];
    store.pause("t", Selection::Names(&paused)).unwrap();
    wait_for(&store, 30, "ann paused", |l| {
        status_of(l, "ann@x.example") == Status::Paused
    })
    .await;
    fill(
        &account(&src, &ann),
        &[seed("INBOX", message("ann new", 3), "", None)],
    )
    .await;
    fill(
        &account(&src, &dee),
        &[seed("INBOX", message("dee new", 3), "", None)],
    )
    .await;
    let list = wait_for(&store, 30, "dee's new mail copied", |l| {
        by_target(l, "dee@x.example").messages == 3
    })
    .await;
    assert_eq!(by_target(&list, "ann@x.example").messages, 2);
    let dst_ann = account(&dst, &dst.user("ann@x.example"));
    assert_eq!(
        count(&dst_ann, "INBOX").await,
        1,
        "nothing copied while paused"
    );
    store.resume("t", Selection::Names(&paused)).unwrap();
    wait_for(&store, 30, "ann's new mail copied", |l| {
        by_target(l, "ann@x.example").messages == 3
    })
    .await;
    assert_eq!(count(&dst_ann, "INBOX").await, 2);

    // Stop everyone: no more passes.
    store.stop("t", Selection::All).unwrap();
    wait_for(&store, 30, "all stopped", |l| {
        l.iter().all(|a| a.status == Status::Stopped)
    })
    .await;
    cancel.cancel();
    let summary = handle.await.unwrap();
    assert!(summary.passes >= 6, "{summary:#?}");
    assert_eq!(summary.passes_failed, 1, "{summary:#?}");

    // The audit log tells the story, without secrets.
    let log = store.audit("t", None, 100_000).unwrap();
    let kinds: Vec<String> = log
        .iter()
        .map(|r| r.event["event"].as_str().unwrap_or("").to_string())
        .collect();
    for k in [
        "task_created",
        "accounts_imported",
        "pass_started",
        "folder_done",
        "pass_finished",
        "credentials_supplied",
        "status_changed",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} event: {kinds:?}");
    }
    let text: String = log.iter().map(|r| r.to_json_line() + "\n").collect();
    for secret in [&ann.password, &cy.password, &dst.master_user().password] {
        assert!(
            !text.contains(secret.as_str()),
            "a password is in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_source_gets_fewer_connections() {
    // One connection per user and IP: an account that opens four is throttled by the server.
    let src = one_connection_per_user();
    let dst = Dovecot::start(Flavour::Slash);
    let u = src.user("tom");
    let mut seeds = Vec::new();
    // Enough mail that the pass asks for its four connections (a light one would use one).
    for f in ["INBOX", "A", "B", "C", "D", "E"] {
        for i in 0..50 {
            seeds.push(seed(f, message(&format!("{f} {i}"), 20), "", None));
        }
    }
    fill(&account(&src, &u), &seeds).await;
    dst.user("tom@x.example");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    let mut s = settings(&src, &dst);
    s.limits.per_source_host = 8;
    s.limits.connections_per_account = 4;
    store
        .create_task("t", &s, None, Some(Secret::new(dst.master_user().password)))
        .unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(&file, format!("tom@x.example,tom,{}\n", u.password)).unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();

    let cancel = CancellationToken::new();
    let summary = Scheduler::new(store.clone(), "t")
        .with_options(SchedulerOptions {
            until_idle: true,
            ..fast()
        })
        .run(cancel, None)
        .await
        .unwrap();
    let list = store.accounts("t").unwrap();
    assert_eq!(list[0].status, Status::Synced, "{list:#?}");
    assert_eq!(list[0].messages, 300, "{list:#?}");
    let source = summary
        .hosts
        .iter()
        .find(|h| h.side == imapmig_core::engine::Side::Source)
        .unwrap();
    eprintln!("source host after throttling: {source:?}");
    assert!(source.throttle_events >= 1, "{summary:#?}");
    assert!(source.limit < source.configured, "{summary:#?}");
    let log = store.audit("t", None, 10_000).unwrap();
    assert!(
        log.iter()
            .any(|r| r.event["event"] == "throttled" && r.event["side"] == "source"),
        "{:#?}",
        log.iter().map(|r| r.to_json_line()).collect::<Vec<_>>()
    );
    let v = imapmig_core::engine::verify(
        &account(&src, &u),
        &account(&dst, &dst.user("tom@x.example")),
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop3_source_migrates_its_inbox_and_later_only_new_mail() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    let mut s = settings(&src, &dst);
    s.source.protocol = imapmig_core::batch::task::Protocol::Pop3;
    s.source.port = src.pop3_port();
    store
        .create_task("t", &s, None, Some(Secret::new(dst.master_user().password)))
        .unwrap();
    let mut csv = String::new();
    let mut users = Vec::new();
    for n in ["pia", "pet"] {
        let u = src.user(n);
        fill(
            &account(&src, &u),
            &[
                seed("INBOX", message(&format!("{n} 1"), 4), "", None),
                seed("INBOX", message(&format!("{n} 2"), 4), "", None),
                // POP3 sees the inbox only.
                seed("Work", message(&format!("{n} work"), 4), "", None),
            ],
        )
        .await;
        dst.user(&format!("{n}@x.example"));
        csv.push_str(&format!("{n}@x.example,{n},{}\n", u.password));
        users.push(u);
    }
    // One account whose POP3 login is refused: failed, named an authentication failure.
    let pam = src.user("pam");
    dst.user("pam@x.example");
    csv.push_str(&format!("pam@x.example,pam,not-{}\n", pam.password));
    let file = dir.path().join("a.csv");
    std::fs::write(&file, csv).unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    let run = || {
        Scheduler::new(store.clone(), "t")
            .with_options(SchedulerOptions {
                until_idle: true,
                ..fast()
            })
            .run(CancellationToken::new(), None)
    };
    // The first run watched: however long the flush interval, the last snapshot goes out
    // before an idle run ends.
    let last: Arc<Mutex<Option<LiveSnapshot>>> = Arc::default();
    let seen = last.clone();
    Scheduler::new(store.clone(), "t")
        .with_options(SchedulerOptions {
            until_idle: true,
            flush: Duration::from_secs(3600),
            ..fast()
        })
        .run(
            CancellationToken::new(),
            Some(Arc::new(move |s: &LiveSnapshot| {
                *seen.lock().unwrap() = Some(s.clone());
            })),
        )
        .await
        .unwrap();
    let list = store.accounts("t").unwrap();
    for n in ["pia", "pet"] {
        let a = by_target(&list, &format!("{n}@x.example"));
        assert!(a.status == Status::Synced && a.messages == 2, "{a:#?}");
    }
    let refused = by_target(&list, "pam@x.example");
    assert_eq!(refused.status, Status::Failed, "{refused:#?}");
    assert_eq!(
        refused.failure,
        Some(FailureCategory::Authentication),
        "{refused:#?}"
    );
    let snapshot = last
        .lock()
        .unwrap()
        .clone()
        .expect("a snapshot before the run ended");
    assert_eq!(snapshot.copied, 4, "{snapshot:#?}");
    assert!(snapshot.running.is_empty(), "{snapshot:#?}");
    let mut statuses = snapshot.statuses.clone();
    statuses.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        statuses,
        vec![(Status::Failed, 1), (Status::Synced, 2)],
        "{snapshot:#?}"
    );

    // New mail; the next pass (due at once here) copies only it.
    fill(
        &account(&src, &users[0]),
        &[seed("INBOX", message("pia 3", 4), "", None)],
    )
    .await;
    // Its next pass is due once the task's interval (2 s) has passed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run().await.unwrap();
    let list = store.accounts("t").unwrap();
    assert_eq!(by_target(&list, "pia@x.example").messages, 3, "{list:#?}");
    assert_eq!(
        count(&account(&dst, &dst.user("pia@x.example")), "INBOX").await,
        3
    );
    assert_eq!(
        count(&account(&dst, &dst.user("pet@x.example")), "INBOX").await,
        2
    );
}

/// A message the destination cannot take (here: over the task's size limit) is reported on the
/// account for as long as it stays behind: later passes that read only what changed
/// (CONDSTORE), or skip an unchanged folder, do not make it look resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_behind_stays_reported_through_later_passes() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let u = src.user("ola");
    let mut seeds: Vec<Seed> = (0..3)
        .map(|i| seed("INBOX", message(&format!("small {i}"), 3), "", None))
        .collect();
    seeds.push(seed("INBOX", message("too big", 2_000), "", None));
    seeds.push(seed("Work", message("work", 3), "", None));
    fill(&account(&src, &u), &seeds).await;
    dst.user("ola@x.example");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    let mut s = settings(&src, &dst);
    s.messages.max_size = Some(20_000);
    store
        .create_task("t", &s, None, Some(Secret::new(dst.master_user().password)))
        .unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(&file, format!("ola@x.example,ola,{}\n", u.password)).unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    let run = || {
        Scheduler::new(store.clone(), "t")
            .with_options(SchedulerOptions {
                until_idle: true,
                ..fast()
            })
            .run(CancellationToken::new(), None)
    };
    let ola = || by_target(&store.accounts("t").unwrap(), "ola@x.example").clone();

    run().await.unwrap();
    let a = ola();
    assert_eq!(
        (a.status, a.messages, a.refused),
        (Status::Synced, 4, 1),
        "{a:#?}"
    );

    // New mail in the inbox: the next pass reads only the changes there.
    fill(
        &account(&src, &u),
        &[seed("INBOX", message("new", 3), "", None)],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run().await.unwrap();
    let a = ola();
    assert_eq!((a.messages, a.refused), (5, 1), "{a:#?}");

    // Nothing new at all: every folder is skipped as unchanged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run().await.unwrap();
    let a = ola();
    assert_eq!((a.messages, a.refused), (5, 1), "{a:#?}");
    assert!(a.passes >= 3, "{a:#?}");
}

/// The exactly-once issue: an account whose *source* refused to open a folder was filed under
/// `destination_refused`, sending the admin to the wrong server. Here the source's Dovecot
/// cannot read one folder (its maildir directory is mode 000), so it refuses EXAMINE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_source_refuses_is_a_source_refusal() {
    use std::os::unix::fs::PermissionsExt;
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let u = src.user("rex");
    fill(
        &account(&src, &u),
        &[
            seed("INBOX", message("inbox", 3), "", None),
            seed("Locked", message("locked", 3), "", None),
        ],
    )
    .await;
    let locked = src.maildir_of("rex").join("Locked");
    assert!(locked.is_dir(), "{} is not there", locked.display());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    dst.user("rex@x.example");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BatchStore::open(&dir.path().join("state.sqlite")).unwrap());
    store
        .create_task(
            "t",
            &settings(&src, &dst),
            None,
            Some(Secret::new(dst.master_user().password)),
        )
        .unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(&file, format!("rex@x.example,rex,{}\n", u.password)).unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    Scheduler::new(store.clone(), "t")
        .with_options(SchedulerOptions {
            until_idle: true,
            ..fast()
        })
        .run(CancellationToken::new(), None)
        .await
        .unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let list = store.accounts("t").unwrap();
    let a = by_target(&list, "rex@x.example");
    eprintln!("the account: {a:#?}");
    assert_eq!(a.status, Status::Failed, "{a:#?}");
    assert_eq!(a.failure, Some(FailureCategory::SourceRefused), "{a:#?}");
    let error = a.last_error.as_deref().unwrap_or("");
    assert!(
        error.contains("source") && error.contains("Locked"),
        "{a:#?}"
    );
}

/// Whether `needle` is anywhere in the store file or its WAL companions.
fn file_holds(path: &std::path::Path, needle: &str) -> bool {
    ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::read(std::path::PathBuf::from(p))
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// Secrets at rest (the exactly-once issue's last item): with a key, no password or admin
/// password is in the store file or its WAL, the migration still runs, and the store does not
/// open without the key or with another one. A store written without a key is sealed the
/// first time a key is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_state_key_no_password_is_in_the_store_file() {
    use imapmig_core::batch::seal::StateKey;
    use std::os::unix::fs::PermissionsExt;
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (ann, bob) = (src.user("ann"), src.user("bob"));
    for u in [&ann, &bob] {
        fill(
            &account(&src, u),
            &[seed(
                "INBOX",
                message(&format!("{} hi", u.name), 3),
                "",
                None,
            )],
        )
        .await;
        dst.user(&format!("{}@x.example", u.name));
    }
    let master = dst.master_user().password;
    let secrets = [
        ann.password.as_str(),
        bob.password.as_str(),
        master.as_str(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let key = || StateKey::from_text("9vJ0rj5b2m3cQ1yX7bVvV0w0eQ2rW1o8dT6pYk3sX2U=").unwrap();
    let store = Arc::new(BatchStore::open_with_key(&path, Some(key())).unwrap());
    assert!(store.seals_secrets());
    store
        .create_task(
            "t",
            &settings(&src, &dst),
            None,
            Some(Secret::new(master.clone())),
        )
        .unwrap();
    let file = dir.path().join("a.csv");
    std::fs::write(
        &file,
        format!(
            "ann@x.example,ann,{}\nbob@x.example,bob,{}\n",
            ann.password, bob.password
        ),
    )
    .unwrap();
    store
        .import_csv("t", &file, ImportOptions::default())
        .unwrap();
    assert!(
        file_holds(&path, "imapmig-sealed:v1:"),
        "nothing was sealed"
    );
    for s in secrets {
        assert!(!file_holds(&path, s), "a password is in the store file");
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    Scheduler::new(store.clone(), "t")
        .with_options(SchedulerOptions {
            until_idle: true,
            ..fast()
        })
        .run(CancellationToken::new(), None)
        .await
        .unwrap();
    let list = store.accounts("t").unwrap();
    for a in &list {
        assert_eq!((a.status, a.messages), (Status::Synced, 1), "{a:#?}");
    }
    for s in secrets {
        assert!(!file_holds(&path, s), "a password is in the store file");
    }
    drop(list);
    drop(store);

    // Without the key, or with another: a clear error that names the key and holds no secret.
    let e = BatchStore::open(&path).unwrap_err();
    assert!(matches!(e, BatchError::StateKeyNeeded { .. }), "{e}");
    let e =
        BatchStore::open_with_key(&path, Some(StateKey::from_text("other").unwrap())).unwrap_err();
    assert!(matches!(e, BatchError::WrongStateKey { .. }), "{e}");
    for e in [
        BatchStore::open(&path).unwrap_err().to_string(),
        e.to_string(),
    ] {
        assert!(e.contains("IMAPMIG_STATE_KEY"), "{e}");
        assert!(!secrets.iter().any(|s| e.contains(s)), "{e}");
    }
    BatchStore::open_with_key(&path, Some(key())).unwrap();

    // A store written without a key: its passwords are sealed the first time a key is given,
    // and no copy in clear is left behind in the file.
    let old = dir.path().join("old.sqlite");
    {
        let s = BatchStore::open(&old).unwrap();
        assert!(!s.seals_secrets());
        s.create_task(
            "t",
            &settings(&src, &dst),
            None,
            Some(Secret::new(master.clone())),
        )
        .unwrap();
        s.import_csv("t", &file, ImportOptions::default()).unwrap();
    }
    assert!(
        file_holds(&old, &ann.password),
        "the test needs a clear store"
    );
    let s = BatchStore::open_with_key(&old, Some(key())).unwrap();
    for secret in secrets {
        assert!(!file_holds(&old, secret), "a password stayed in clear");
    }
    assert_eq!(
        s.task("t").unwrap().destination_secret.unwrap().expose(),
        master
    );
}
