//! Tests of the state store: every method, the crash-safety guarantees, damaged files, and a
//! model-based property test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::model::{Flags, Uid, UidValidity};

const ACCOUNT: &str = "ü@例子.com";
const INBOX: &str = "收件箱";
const ODD: &str = "O'Brien \"quoted\" 100%_done";

/// A unique state file path under the temp dir, removed (with its WAL and SHM) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "imapmig-state-test-{}-{name}-{n}.sqlite",
            std::process::id()
        ));
        let db = TempDb(path);
        db.remove();
        db
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn folder_rec(validity: u32) -> FolderRecord {
    FolderRecord {
        source_uidvalidity: UidValidity(validity),
        dest_folder: "Archiv/已发送".to_string(),
        dest_uidvalidity: Some(UidValidity(77)),
        highest_modseq: Some(1234),
        updated_at: 1_700_000_000,
        selection: Some("since=2020-01-01 before=- on=internaldate max=-".to_string()),
    }
}

fn copied_rec(uid: u32, dst: Option<u32>) -> CopiedRecord {
    let mut fingerprint = [0u8; 32];
    fingerprint[..4].copy_from_slice(&uid.to_be_bytes());
    fingerprint[31] = 0xff;
    CopiedRecord {
        src_uid: Uid(uid),
        dst_uid: dst.map(Uid),
        fingerprint,
        flags: ["\\Seen", "$Forwarded"].into_iter().collect(),
        size: 1000 + u64::from(uid),
    }
}

fn pend(uid: u32, floor: u32) -> PendingRecord {
    PendingRecord {
        src_uid: Uid(uid),
        dst_floor: floor,
    }
}

fn uids_of_copied(s: &dyn StateStore, account: &str, folder: &str) -> Vec<u32> {
    s.copied(account, folder)
        .unwrap()
        .iter()
        .map(|c| c.src_uid.0)
        .collect()
}

fn uids_of_pending(s: &dyn StateStore, account: &str, folder: &str) -> Vec<u32> {
    s.pending(account, folder)
        .unwrap()
        .iter()
        .map(|p| p.src_uid.0)
        .collect()
}

fn mem() -> SqliteStore {
    SqliteStore::open_in_memory().unwrap()
}

#[test]
fn store_is_send_sync_and_object_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    let s = mem();
    let _: &dyn StateStore = &s;
}

#[test]
fn folder_records_round_trip_and_replace() {
    let s = mem();
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), None);
    let rec = folder_rec(5);
    s.put_folder(ACCOUNT, INBOX, &rec).unwrap();
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), Some(rec.clone()));

    let newer = FolderRecord {
        dest_uidvalidity: None,
        highest_modseq: None,
        updated_at: -1,
        selection: None,
        ..folder_rec(6)
    };
    s.put_folder(ACCOUNT, INBOX, &newer).unwrap();
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), Some(newer.clone()));

    // Extremes survive the trip through SQLite's signed integers.
    let extreme = FolderRecord {
        source_uidvalidity: UidValidity(u32::MAX),
        dest_uidvalidity: Some(UidValidity(u32::MAX)),
        highest_modseq: Some(i64::MAX as u64),
        ..folder_rec(1)
    };
    s.put_folder(ACCOUNT, ODD, &extreme).unwrap();
    assert_eq!(s.folder(ACCOUNT, ODD).unwrap(), Some(extreme.clone()));

    // Names are compared exactly: no case folding, no LIKE wildcards.
    assert_eq!(s.folder(ACCOUNT, "收件箱 ").unwrap(), None);
    assert_eq!(s.folder("Ü@例子.com", INBOX).unwrap(), None);
    assert_eq!(
        s.folder(ACCOUNT, "O'Brien \"quoted\" 100%%done").unwrap(),
        None
    );

    let folders = s.folders(ACCOUNT).unwrap();
    let mut expected = vec![(INBOX.to_string(), newer), (ODD.to_string(), extreme)];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(folders, expected);
    assert!(s.folders("nobody").unwrap().is_empty());
}

#[test]
fn put_folder_refuses_modseq_beyond_i64() {
    let s = mem();
    let rec = FolderRecord {
        highest_modseq: Some(u64::MAX),
        ..folder_rec(1)
    };
    let err = s.put_folder(ACCOUNT, INBOX, &rec).unwrap_err();
    assert!(matches!(err, StateError::InvalidInput { .. }), "{err}");
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), None);
}

#[test]
fn copied_rows_come_back_ordered_and_counted() {
    let s = mem();
    assert!(s.copied(ACCOUNT, INBOX).unwrap().is_empty());
    assert_eq!(s.copied_count(ACCOUNT, INBOX).unwrap(), 0);
    let batch: Vec<_> = [30, 2, 1000, 7]
        .into_iter()
        .map(|u| copied_rec(u, Some(u + 100)))
        .collect();
    s.commit_copied(ACCOUNT, INBOX, &batch).unwrap();
    s.commit_copied(ACCOUNT, INBOX, &[copied_rec(u32::MAX, None)])
        .unwrap();
    let got = s.copied(ACCOUNT, INBOX).unwrap();
    assert_eq!(
        got.iter().map(|c| c.src_uid.0).collect::<Vec<_>>(),
        vec![2, 7, 30, 1000, u32::MAX]
    );
    assert_eq!(got[0], copied_rec(2, Some(102)));
    assert_eq!(got[4], copied_rec(u32::MAX, None));
    assert_eq!(s.copied_count(ACCOUNT, INBOX).unwrap(), 5);
    // Other folders and accounts see nothing.
    assert_eq!(s.copied_count(ACCOUNT, ODD).unwrap(), 0);
    assert_eq!(s.copied_count("other", INBOX).unwrap(), 0);
}

#[test]
fn commit_copied_replaces_and_last_of_batch_wins() {
    let s = mem();
    s.commit_copied(ACCOUNT, INBOX, &[copied_rec(1, Some(10))])
        .unwrap();
    let mut again = copied_rec(1, Some(11));
    again.flags = Flags::new();
    again.size = 0;
    let mut last = copied_rec(1, None);
    last.fingerprint = [7; 32];
    s.commit_copied(ACCOUNT, INBOX, &[again, last.clone()])
        .unwrap();
    assert_eq!(s.copied(ACCOUNT, INBOX).unwrap(), vec![last]);
}

#[test]
fn add_pending_keeps_the_lowest_floor() {
    let s = mem();
    s.add_pending(ACCOUNT, INBOX, &[pend(5, 100), pend(3, 100)])
        .unwrap();
    s.add_pending(ACCOUNT, INBOX, &[pend(5, 120), pend(3, 90), pend(9, 120)])
        .unwrap();
    assert_eq!(
        s.pending(ACCOUNT, INBOX).unwrap(),
        vec![pend(3, 90), pend(5, 100), pend(9, 120)]
    );
    assert!(s.pending(ACCOUNT, ODD).unwrap().is_empty());
}

#[test]
fn add_pending_refuses_a_copied_uid_and_records_nothing() {
    let s = mem();
    s.commit_copied(ACCOUNT, INBOX, &[copied_rec(4, Some(40))])
        .unwrap();
    let err = s
        .add_pending(ACCOUNT, INBOX, &[pend(1, 50), pend(4, 50), pend(6, 50)])
        .unwrap_err();
    match &err {
        StateError::AlreadyCopied { uid, folder, .. } => {
            assert_eq!(*uid, Uid(4));
            assert_eq!(folder, INBOX);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(s.pending(ACCOUNT, INBOX).unwrap().is_empty());
    // The same UID in another folder is a different message.
    s.add_pending(ACCOUNT, ODD, &[pend(4, 50)]).unwrap();
}

#[test]
fn commit_copied_swaps_pending_for_copied_atomically() {
    let s = mem();
    s.add_pending(ACCOUNT, INBOX, &[pend(1, 10), pend(2, 10), pend(3, 10)])
        .unwrap();
    s.add_pending(ACCOUNT, ODD, &[pend(1, 10)]).unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[copied_rec(1, Some(10)), copied_rec(2, Some(11))],
    )
    .unwrap();
    assert_eq!(uids_of_pending(&s, ACCOUNT, INBOX), vec![3]);
    assert_eq!(uids_of_copied(&s, ACCOUNT, INBOX), vec![1, 2]);
    // Another folder's pending row of the same UID is untouched.
    assert_eq!(uids_of_pending(&s, ACCOUNT, ODD), vec![1]);

    // A batch that fails half-way leaves nothing behind: neither copied rows nor removed
    // pending rows.
    let mut bad = copied_rec(9, Some(19));
    bad.size = u64::MAX;
    let err = s
        .commit_copied(ACCOUNT, INBOX, &[copied_rec(3, Some(12)), bad])
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("UID 9"), "{err}");
    assert_eq!(uids_of_pending(&s, ACCOUNT, INBOX), vec![3]);
    assert_eq!(uids_of_copied(&s, ACCOUNT, INBOX), vec![1, 2]);
}

#[test]
fn drop_pending_removes_only_what_it_names() {
    let s = mem();
    s.add_pending(ACCOUNT, INBOX, &[pend(1, 10), pend(2, 10), pend(3, 10)])
        .unwrap();
    s.drop_pending(ACCOUNT, INBOX, &[Uid(2), Uid(99)]).unwrap();
    assert_eq!(uids_of_pending(&s, ACCOUNT, INBOX), vec![1, 3]);
    s.drop_pending(ACCOUNT, INBOX, &[]).unwrap();
    s.drop_pending(ACCOUNT, ODD, &[Uid(1)]).unwrap();
    assert_eq!(uids_of_pending(&s, ACCOUNT, INBOX), vec![1, 3]);
}

#[test]
fn update_flags_and_highest_modseq() {
    let s = mem();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[copied_rec(1, Some(1)), copied_rec(2, Some(2))],
    )
    .unwrap();
    let answered: Flags = ["\\Answered", "Work"].into_iter().collect();
    s.update_flags(
        ACCOUNT,
        INBOX,
        &[(Uid(2), answered.clone()), (Uid(42), answered.clone())],
        Some(9999),
    )
    .unwrap();
    let copied = s.copied(ACCOUNT, INBOX).unwrap();
    assert_eq!(copied[0].flags, copied_rec(1, None).flags);
    assert_eq!(copied[1].flags, answered);
    assert_eq!(copied.len(), 2, "a change for an unknown UID adds no row");
    let rec = s.folder(ACCOUNT, INBOX).unwrap().unwrap();
    assert_eq!(rec.highest_modseq, Some(9999));
    assert!(rec.updated_at > folder_rec(1).updated_at);

    // No MODSEQ: the folder's is kept.
    s.update_flags(ACCOUNT, INBOX, &[(Uid(1), Flags::new())], None)
        .unwrap();
    assert_eq!(s.copied(ACCOUNT, INBOX).unwrap()[0].flags, Flags::new());
    assert_eq!(
        s.folder(ACCOUNT, INBOX).unwrap().unwrap().highest_modseq,
        Some(9999)
    );

    // A MODSEQ for a folder without a record fails, and the flags of the call are rolled back.
    s.commit_copied(ACCOUNT, ODD, &[copied_rec(1, Some(1))])
        .unwrap();
    let err = s
        .update_flags(ACCOUNT, ODD, &[(Uid(1), Flags::new())], Some(5))
        .unwrap_err();
    assert!(matches!(err, StateError::UnknownFolder { .. }), "{err}");
    assert_eq!(
        s.copied(ACCOUNT, ODD).unwrap()[0].flags,
        copied_rec(1, None).flags
    );
    // Without a MODSEQ it needs no record.
    s.update_flags(ACCOUNT, ODD, &[(Uid(1), Flags::new())], None)
        .unwrap();
}

#[test]
fn remap_source_moves_uids_drops_the_rest_and_resets_modseq() {
    let s = mem();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.put_folder(ACCOUNT, ODD, &folder_rec(1)).unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[5, 7, 8].map(|u| copied_rec(u, Some(u + 100))),
    )
    .unwrap();
    s.add_pending(ACCOUNT, INBOX, &[pend(9, 200), pend(10, 200)])
        .unwrap();
    s.commit_copied(ACCOUNT, ODD, &[copied_rec(5, Some(1))])
        .unwrap();

    // Old and new UIDs overlap: 5 -> 7 while 7 -> 9, 9 (pending) -> 5; 8 and 10 vanished.
    let map = [(Uid(5), Uid(7)), (Uid(7), Uid(9)), (Uid(9), Uid(5))];
    s.remap_source(ACCOUNT, INBOX, UidValidity(2), &map)
        .unwrap();

    let copied = s.copied(ACCOUNT, INBOX).unwrap();
    let expected = vec![
        CopiedRecord {
            src_uid: Uid(7),
            ..copied_rec(5, Some(105))
        },
        CopiedRecord {
            src_uid: Uid(9),
            ..copied_rec(7, Some(107))
        },
    ];
    assert_eq!(copied, expected);
    assert_eq!(s.pending(ACCOUNT, INBOX).unwrap(), vec![pend(5, 200)]);
    let rec = s.folder(ACCOUNT, INBOX).unwrap().unwrap();
    assert_eq!(rec.source_uidvalidity, UidValidity(2));
    assert_eq!(rec.highest_modseq, None);
    assert_eq!(rec.dest_uidvalidity, folder_rec(1).dest_uidvalidity);
    // The other folder is untouched.
    assert_eq!(uids_of_copied(&s, ACCOUNT, ODD), vec![5]);
    assert_eq!(
        s.folder(ACCOUNT, ODD).unwrap().unwrap().source_uidvalidity,
        UidValidity(1)
    );

    // An empty map empties the folder but keeps its record.
    s.remap_source(ACCOUNT, INBOX, UidValidity(3), &[]).unwrap();
    assert_eq!(s.copied_count(ACCOUNT, INBOX).unwrap(), 0);
    assert!(s.pending(ACCOUNT, INBOX).unwrap().is_empty());
    assert_eq!(
        s.folder(ACCOUNT, INBOX)
            .unwrap()
            .unwrap()
            .source_uidvalidity,
        UidValidity(3)
    );
}

#[test]
fn remap_refuses_bad_maps_and_unknown_folders_without_changes() {
    let s = mem();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.commit_copied(ACCOUNT, INBOX, &[1, 2].map(|u| copied_rec(u, Some(u))))
        .unwrap();
    let before = s.copied(ACCOUNT, INBOX).unwrap();
    for map in [
        vec![(Uid(1), Uid(3)), (Uid(1), Uid(4))],
        vec![(Uid(1), Uid(3)), (Uid(2), Uid(3))],
    ] {
        let err = s
            .remap_source(ACCOUNT, INBOX, UidValidity(2), &map)
            .unwrap_err();
        assert!(matches!(err, StateError::InvalidInput { .. }), "{err}");
        let err = s
            .remap_dest(ACCOUNT, INBOX, UidValidity(2), &map)
            .unwrap_err();
        assert!(matches!(err, StateError::InvalidInput { .. }), "{err}");
    }
    assert_eq!(s.copied(ACCOUNT, INBOX).unwrap(), before);
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), Some(folder_rec(1)));

    s.commit_copied(ACCOUNT, ODD, &[copied_rec(1, Some(1))])
        .unwrap();
    let err = s
        .remap_source(ACCOUNT, ODD, UidValidity(2), &[(Uid(1), Uid(2))])
        .unwrap_err();
    assert!(matches!(err, StateError::UnknownFolder { .. }), "{err}");
    let err = s.remap_dest(ACCOUNT, ODD, UidValidity(2), &[]).unwrap_err();
    assert!(matches!(err, StateError::UnknownFolder { .. }), "{err}");
    assert_eq!(uids_of_copied(&s, ACCOUNT, ODD), vec![1]);
}

#[test]
fn remap_dest_moves_dst_uids_drops_vanished_and_lowers_floors() {
    let s = mem();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[
            copied_rec(1, Some(11)),
            copied_rec(2, None),
            copied_rec(3, Some(13)),
        ],
    )
    .unwrap();
    s.add_pending(ACCOUNT, INBOX, &[pend(4, 14), pend(5, 14)])
        .unwrap();
    // Destination UIDs may swap: 1 now at 13's old place, 2 (no UIDPLUS before) found at 1.
    s.remap_dest(
        ACCOUNT,
        INBOX,
        UidValidity(500),
        &[(Uid(1), Uid(13)), (Uid(2), Uid(1)), (Uid(77), Uid(2))],
    )
    .unwrap();
    assert_eq!(
        s.copied(ACCOUNT, INBOX).unwrap(),
        vec![copied_rec(1, Some(13)), copied_rec(2, Some(1))]
    );
    assert_eq!(
        s.pending(ACCOUNT, INBOX).unwrap(),
        vec![pend(4, 1), pend(5, 1)]
    );
    let rec = s.folder(ACCOUNT, INBOX).unwrap().unwrap();
    assert_eq!(rec.dest_uidvalidity, Some(UidValidity(500)));
    assert_eq!(rec.source_uidvalidity, UidValidity(1));
    assert_eq!(rec.highest_modseq, folder_rec(1).highest_modseq);
}

#[test]
fn forget_folder_and_account_touch_nothing_else() {
    let s = mem();
    // Names that would match each other under LIKE or a prefix search.
    let accounts = [ACCOUNT, "a_b", "a%b", "axb"];
    for account in accounts {
        for folder in [INBOX, ODD, "INBOX", "inbox"] {
            s.put_folder(account, folder, &folder_rec(1)).unwrap();
            s.commit_copied(account, folder, &[copied_rec(1, Some(1))])
                .unwrap();
            s.add_pending(account, folder, &[pend(2, 2)]).unwrap();
        }
    }
    s.forget_folder("a_b", "INBOX").unwrap();
    assert_eq!(s.folder("a_b", "INBOX").unwrap(), None);
    assert_eq!(s.copied_count("a_b", "INBOX").unwrap(), 0);
    assert!(s.pending("a_b", "INBOX").unwrap().is_empty());
    assert_eq!(s.copied_count("a_b", "inbox").unwrap(), 1);
    assert_eq!(s.folders("a_b").unwrap().len(), 3);

    s.forget_account("a%b").unwrap();
    assert!(s.folders("a%b").unwrap().is_empty());
    assert_eq!(s.copied_count("a%b", INBOX).unwrap(), 0);
    assert!(s.pending("a%b", ODD).unwrap().is_empty());
    for account in [ACCOUNT, "axb"] {
        assert_eq!(s.folders(account).unwrap().len(), 4);
        assert_eq!(s.copied_count(account, ODD).unwrap(), 1);
        assert_eq!(uids_of_pending(&s, account, ODD), vec![2]);
    }
    // Forgetting what is not there is no error.
    s.forget_account("nobody").unwrap();
    s.forget_folder("nobody", "nothing").unwrap();
}

#[test]
fn file_store_keeps_everything_across_reopen() {
    let db = TempDb::new("reopen");
    {
        let s = SqliteStore::open(db.path()).unwrap();
        assert_eq!(s.path(), db.path());
        s.put_folder(ACCOUNT, INBOX, &folder_rec(3)).unwrap();
        s.commit_copied(ACCOUNT, INBOX, &[copied_rec(1, Some(2))])
            .unwrap();
        s.add_pending(ACCOUNT, INBOX, &[pend(2, 3)]).unwrap();
    }
    let s = SqliteStore::open_with(db.path(), Durability::Full).unwrap();
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), Some(folder_rec(3)));
    assert_eq!(
        s.copied(ACCOUNT, INBOX).unwrap(),
        vec![copied_rec(1, Some(2))]
    );
    assert_eq!(s.pending(ACCOUNT, INBOX).unwrap(), vec![pend(2, 3)]);
    let journal: String = s
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn store_dropped_without_close_loses_no_committed_row() {
    let db = TempDb::new("forget");
    let s = SqliteStore::open(db.path()).unwrap();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.add_pending(ACCOUNT, INBOX, &[pend(1, 10), pend(2, 10), pend(3, 10)])
        .unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[copied_rec(1, Some(10)), copied_rec(2, Some(11))],
    )
    .unwrap();
    // No destructor: the connection is never closed, the WAL never checkpointed.
    std::mem::forget(s);
    assert!(Path::new(&format!("{}-wal", db.path().display())).exists());

    let s = SqliteStore::open(db.path()).unwrap();
    assert_eq!(s.folder(ACCOUNT, INBOX).unwrap(), Some(folder_rec(1)));
    assert_eq!(uids_of_copied(&s, ACCOUNT, INBOX), vec![1, 2]);
    assert_eq!(s.pending(ACCOUNT, INBOX).unwrap(), vec![pend(3, 10)]);
}

/// Set for the child process of [`kill_9_mid_run_loses_no_committed_batch`].
const CRASH_CHILD_ENV: &str = "IMAPMIG_STATE_CRASH_CHILD";
const CRASH_BATCH: u32 = 50;

/// Not a test by itself: the body of the child process the crash test kills. It runs the engine's
/// protocol (pending, then copied) batch after batch and says on stdout what has committed.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let s = SqliteStore::open(Path::new(&path)).unwrap();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    for batch in 0..10_000u32 {
        let uids: Vec<u32> = (batch * CRASH_BATCH + 1..=(batch + 1) * CRASH_BATCH).collect();
        let pending: Vec<_> = uids.iter().map(|&u| pend(u, u)).collect();
        s.add_pending(ACCOUNT, INBOX, &pending).unwrap();
        println!("pending {batch}");
        let copied: Vec<_> = uids.iter().map(|&u| copied_rec(u, Some(u))).collect();
        s.commit_copied(ACCOUNT, INBOX, &copied).unwrap();
        println!("committed {batch}");
    }
}

/// A real `kill -9` (SIGKILL) of a process in the middle of writing: every batch it reported
/// committed is there, whole, and nothing is both pending and copied.
#[cfg(unix)]
#[test]
fn kill_9_mid_run_loses_no_committed_batch() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let db = TempDb::new("kill9");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state::tests::crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, db.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut seen = Vec::new();
    // Let it get going, then kill it wherever it is.
    while out.read_line(&mut line).unwrap() > 0 {
        seen.push(std::mem::take(&mut line));
        if seen.iter().filter(|l| l.starts_with("committed")).count() >= 40 {
            break;
        }
    }
    // A few milliseconds more, varying from run to run, so the kill lands anywhere in a
    // transaction rather than right after a commit.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 20)
        .unwrap_or(7);
    std::thread::sleep(std::time::Duration::from_millis(u64::from(jitter)));
    child.kill().unwrap(); // SIGKILL on Unix.
    child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    seen.extend(rest.lines().map(str::to_string));
    let last_committed: u32 = seen
        .iter()
        .filter_map(|l| l.trim().strip_prefix("committed "))
        .filter_map(|n| n.parse().ok())
        .max()
        .expect("the child reported no commit");

    let s = SqliteStore::open(db.path()).unwrap();
    let copied = uids_of_copied(&s, ACCOUNT, INBOX);
    let pending = uids_of_pending(&s, ACCOUNT, INBOX);
    let n = u32::try_from(copied.len()).unwrap();
    assert_eq!(n % CRASH_BATCH, 0, "a batch was committed in part");
    assert!(
        n >= (last_committed + 1) * CRASH_BATCH,
        "reported {last_committed} committed, found {n} rows"
    );
    assert_eq!(copied, (1..=n).collect::<Vec<_>>());
    // Pending is empty or exactly the batch after the last copied one.
    assert!(
        pending.is_empty() || pending == (n + 1..=n + CRASH_BATCH).collect::<Vec<_>>(),
        "pending {pending:?} after {n} copied"
    );
    println!(
        "kill -9 after batch {last_committed} reported: {n} rows copied, {} pending",
        pending.len()
    );
}

#[test]
fn schema_newer_than_this_build_is_refused_untouched() {
    let db = TempDb::new("newer");
    drop(SqliteStore::open(db.path()).unwrap());
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = SqliteStore::open(db.path()).unwrap_err();
    match &err {
        StateError::SchemaTooNew {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, db.path());
            assert_eq!((*found, *supported), (99, 2));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(&db.path().display().to_string()));
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn a_version_1_file_is_upgraded_in_place() {
    let db = TempDb::new("v1");
    drop(SqliteStore::open(db.path()).unwrap());
    // Make it what version 1 wrote: no `selection` column, one folder row.
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.execute_batch(
            "ALTER TABLE folder DROP COLUMN selection;
             INSERT INTO folder (account, folder, source_uidvalidity, dest_folder,
                 dest_uidvalidity, highest_modseq, updated_at)
                 VALUES ('a', 'INBOX', 7, 'INBOX', 9, 1234, 1700000000);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(db.path()).unwrap();
    let rec = s.folder("a", "INBOX").unwrap().expect("the row survives");
    assert_eq!(rec.highest_modseq, Some(1234));
    assert_eq!(rec.selection, None);
    let put = FolderRecord {
        selection: Some("since=- before=- on=- max=-".into()),
        ..rec
    };
    s.put_folder("a", "INBOX", &put).unwrap();
    assert_eq!(s.folder("a", "INBOX").unwrap(), Some(put));
    drop(s);
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

#[test]
fn foreign_and_garbage_files_are_refused() {
    let db = TempDb::new("foreign");
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.execute_batch("CREATE TABLE contacts (name TEXT);")
            .unwrap();
    }
    let err = SqliteStore::open(db.path()).unwrap_err();
    assert!(matches!(err, StateError::Foreign { .. }), "{err}");
    // Left as it was: not switched to WAL, no tables of ours.
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    drop(conn);

    let other_app = TempDb::new("other-app");
    {
        let conn = rusqlite::Connection::open(other_app.path()).unwrap();
        conn.pragma_update(None, "application_id", 42).unwrap();
    }
    let err = SqliteStore::open(other_app.path()).unwrap_err();
    assert!(matches!(err, StateError::Foreign { .. }), "{err}");

    let garbage = TempDb::new("garbage");
    std::fs::write(garbage.path(), vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(garbage.path()).unwrap_err();
    assert!(matches!(err, StateError::Open { .. }), "{err}");
    assert!(err
        .to_string()
        .contains(&garbage.path().display().to_string()));

    let missing = std::env::temp_dir()
        .join("imapmig-no-such-dir-for-state")
        .join("state.sqlite");
    let err = SqliteStore::open(&missing).unwrap_err();
    assert!(matches!(err, StateError::Open { .. }), "{err}");
}

#[test]
fn damaged_rows_are_errors_not_panics() {
    let s = mem();
    s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
    s.commit_copied(
        ACCOUNT,
        INBOX,
        &[copied_rec(6, Some(6)), copied_rec(7, Some(7))],
    )
    .unwrap();
    s.add_pending(ACCOUNT, INBOX, &[pend(8, 8)]).unwrap();
    let damage = |sql: &str| {
        s.lock().execute(sql, []).unwrap();
    };

    damage("UPDATE copied SET fingerprint = x'0102' WHERE src_uid = 7");
    let err = s.copied(ACCOUNT, INBOX).unwrap_err();
    match &err {
        StateError::Corrupt {
            account,
            folder,
            uid,
            detail,
            ..
        } => {
            assert_eq!((account.as_str(), folder.as_str()), (ACCOUNT, INBOX));
            assert_eq!(*uid, Some(Uid(7)));
            assert!(detail.contains("2 bytes"), "{detail}");
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(ACCOUNT) && msg.contains(INBOX) && msg.contains("UID 7"),
        "{msg}"
    );

    for (sql, what) in [
        (
            "UPDATE copied SET fingerprint = 'text' WHERE src_uid = 7",
            "fingerprint",
        ),
        (
            "UPDATE copied SET fingerprint = zeroblob(32), size = -1 WHERE src_uid = 7",
            "size",
        ),
        (
            "UPDATE copied SET size = 1, flags = x'ff' WHERE src_uid = 7",
            "flags",
        ),
        (
            "UPDATE copied SET flags = '', dst_uid = 5000000000 WHERE src_uid = 7",
            "dst_uid",
        ),
        (
            "UPDATE copied SET dst_uid = 'seven' WHERE src_uid = 7",
            "dst_uid",
        ),
    ] {
        damage(sql);
        let err = s.copied(ACCOUNT, INBOX).unwrap_err();
        let ok = matches!(&err, StateError::Corrupt { uid: Some(Uid(7)), detail, .. }
            if detail.contains(what));
        assert!(ok, "{sql}: {err}");
    }
    damage("UPDATE copied SET dst_uid = 7 WHERE src_uid = 7");
    assert_eq!(s.copied(ACCOUNT, INBOX).unwrap().len(), 2);

    damage("UPDATE copied SET src_uid = -3 WHERE src_uid = 7");
    let err = s.copied(ACCOUNT, INBOX).unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { uid: None, .. }),
        "{err}"
    );

    damage("UPDATE pending SET dst_floor = 'x'");
    let err = s.pending(ACCOUNT, INBOX).unwrap_err();
    assert!(
        matches!(
            &err,
            StateError::Corrupt {
                uid: Some(Uid(8)),
                ..
            }
        ),
        "{err}"
    );

    damage("UPDATE folder SET highest_modseq = -5");
    let err = s.folder(ACCOUNT, INBOX).unwrap_err();
    assert!(matches!(&err, StateError::Corrupt { .. }), "{err}");
    let err = s.folders(ACCOUNT).unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { folder, .. } if folder == INBOX),
        "{err}"
    );
}

#[test]
fn errors_name_the_file_account_and_folder() {
    let db = TempDb::new("messages");
    let s = SqliteStore::open(db.path()).unwrap();
    let err = s.update_flags(ACCOUNT, ODD, &[], Some(1)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&db.path().display().to_string()), "{msg}");
    assert!(msg.contains(ACCOUNT), "{msg}");
    assert!(msg.contains("O'Brien \\\"quoted\\\" 100%_done"), "{msg}");
}

#[test]
fn two_stores_on_one_file_write_concurrently() {
    let db = TempDb::new("shared");
    let a = SqliteStore::open(db.path()).unwrap();
    let b = SqliteStore::open(db.path()).unwrap();
    std::thread::scope(|scope| {
        for (store, folder) in [(&a, INBOX), (&b, ODD)] {
            scope.spawn(move || {
                for batch in 0..40u32 {
                    let uids = batch * 10 + 1..=batch * 10 + 10;
                    let p: Vec<_> = uids.clone().map(|u| pend(u, u)).collect();
                    store.add_pending(ACCOUNT, folder, &p).unwrap();
                    let c: Vec<_> = uids.map(|u| copied_rec(u, Some(u))).collect();
                    store.commit_copied(ACCOUNT, folder, &c).unwrap();
                }
            });
        }
    });
    for folder in [INBOX, ODD] {
        assert_eq!(a.copied_count(ACCOUNT, folder).unwrap(), 400);
        assert_eq!(b.copied_count(ACCOUNT, folder).unwrap(), 400);
        assert!(b.pending(ACCOUNT, folder).unwrap().is_empty());
    }
}

/// The engine's hot path: 20,000 messages as 200 batches of 100, each batch recorded pending,
/// then committed. Prints the figure; asserts only on the result, never on time.
#[test]
fn batch_commit_throughput() {
    const TOTAL: u32 = 20_000;
    const BATCH: u32 = 100;
    for durability in [Durability::Normal, Durability::Full] {
        let db = TempDb::new("throughput");
        let s = SqliteStore::open_with(db.path(), durability).unwrap();
        s.put_folder(ACCOUNT, INBOX, &folder_rec(1)).unwrap();
        let start = Instant::now();
        let mut commit_time = std::time::Duration::ZERO;
        for batch in 0..TOTAL / BATCH {
            let uids = batch * BATCH + 1..=(batch + 1) * BATCH;
            let p: Vec<_> = uids.clone().map(|u| pend(u, u)).collect();
            s.add_pending(ACCOUNT, INBOX, &p).unwrap();
            let c: Vec<_> = uids.map(|u| copied_rec(u, Some(u))).collect();
            let t = Instant::now();
            s.commit_copied(ACCOUNT, INBOX, &c).unwrap();
            commit_time += t.elapsed();
        }
        let total = start.elapsed();
        assert_eq!(s.copied_count(ACCOUNT, INBOX).unwrap(), u64::from(TOTAL));
        assert!(s.pending(ACCOUNT, INBOX).unwrap().is_empty());
        let read = Instant::now();
        assert_eq!(s.copied(ACCOUNT, INBOX).unwrap().len(), TOTAL as usize);
        let read = read.elapsed();
        println!(
            "state throughput ({durability:?}): {TOTAL} rows in batches of {BATCH}: \
             commit_copied {:.0} rows/s ({:.1} ms), pending+commit {:.0} rows/s ({:.1} ms); \
             copied() read-back {:.1} ms",
            f64::from(TOTAL) / commit_time.as_secs_f64(),
            commit_time.as_secs_f64() * 1e3,
            f64::from(TOTAL) / total.as_secs_f64(),
            total.as_secs_f64() * 1e3,
            read.as_secs_f64() * 1e3,
        );
    }
}

// ---- Model-based property test ----

const SCOPES: [(&str, &str); 3] = [(ACCOUNT, INBOX), (ACCOUNT, ODD), ("a%_'\"", INBOX)];

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u32),
    AddPending(usize, Vec<(u32, u32)>),
    Commit(usize, Vec<(u32, Option<u32>, u8, bool, u16)>),
    Drop(usize, Vec<u32>),
    Flags(usize, Vec<(u32, bool)>, Option<u64>),
    RemapSource(usize, u32, Vec<(u32, u32)>),
    RemapDest(usize, u32, Vec<(u32, u32)>),
    Forget(usize),
    ForgetAccount(usize),
}

fn uid() -> impl Strategy<Value = u32> {
    1u32..12
}

fn op() -> impl Strategy<Value = Op> {
    let scope = 0..SCOPES.len();
    prop_oneof![
        1 => (scope.clone(), 1u32..4).prop_map(|(s, v)| Op::Put(s, v)),
        4 => (scope.clone(), prop::collection::vec((uid(), 1u32..50), 0..6))
            .prop_map(|(s, b)| Op::AddPending(s, b)),
        4 => (
            scope.clone(),
            prop::collection::vec(
                (uid(), prop::option::of(1u32..50), any::<u8>(), any::<bool>(), any::<u16>()),
                0..6
            )
        )
            .prop_map(|(s, b)| Op::Commit(s, b)),
        2 => (scope.clone(), prop::collection::vec(uid(), 0..6)).prop_map(|(s, u)| Op::Drop(s, u)),
        2 => (
            scope.clone(),
            prop::collection::vec((uid(), any::<bool>()), 0..6),
            prop::option::of(0u64..1000)
        )
            .prop_map(|(s, c, m)| Op::Flags(s, c, m)),
        1 => (scope.clone(), 1u32..9, prop::collection::vec((uid(), uid()), 0..8))
            .prop_map(|(s, v, m)| Op::RemapSource(s, v, m)),
        1 => (scope.clone(), 1u32..9, prop::collection::vec((uid(), 1u32..50), 0..8))
            .prop_map(|(s, v, m)| Op::RemapDest(s, v, m)),
        1 => scope.clone().prop_map(Op::Forget),
        1 => scope.prop_map(Op::ForgetAccount),
    ]
}

#[derive(Clone, Debug, Default)]
struct ModelFolder {
    record: Option<FolderRecord>,
    pending: BTreeMap<u32, u32>,
    copied: BTreeMap<u32, CopiedRecord>,
}

fn flags_of(seen: bool) -> Flags {
    if seen {
        ["\\Seen"].into_iter().collect()
    } else {
        ["$Label1"].into_iter().collect()
    }
}

fn map_ok(map: &[(u32, u32)]) -> bool {
    let keys: std::collections::BTreeSet<_> = map.iter().map(|m| m.0).collect();
    let values: std::collections::BTreeSet<_> = map.iter().map(|m| m.1).collect();
    keys.len() == map.len() && values.len() == map.len()
}

/// Applies `op` to the model; returns whether the store must accept it.
fn apply(model: &mut [ModelFolder], op: &Op) -> bool {
    match op {
        Op::Put(s, v) => {
            model[*s].record = Some(FolderRecord {
                highest_modseq: None,
                ..folder_rec(*v)
            });
            true
        }
        Op::AddPending(s, batch) => {
            let m = &mut model[*s];
            if batch.iter().any(|(u, _)| m.copied.contains_key(u)) {
                return false;
            }
            for &(u, floor) in batch {
                let f = m.pending.entry(u).or_insert(floor);
                *f = (*f).min(floor);
            }
            true
        }
        Op::Commit(s, batch) => {
            let m = &mut model[*s];
            for &(u, dst, fp, seen, size) in batch {
                m.copied.insert(
                    u,
                    CopiedRecord {
                        src_uid: Uid(u),
                        dst_uid: dst.map(Uid),
                        fingerprint: [fp; 32],
                        flags: flags_of(seen),
                        size: u64::from(size),
                    },
                );
                m.pending.remove(&u);
            }
            true
        }
        Op::Drop(s, uids) => {
            for u in uids {
                model[*s].pending.remove(u);
            }
            true
        }
        Op::Flags(s, changes, modseq) => {
            let m = &mut model[*s];
            if modseq.is_some() && m.record.is_none() {
                return false;
            }
            for &(u, seen) in changes {
                if let Some(c) = m.copied.get_mut(&u) {
                    c.flags = flags_of(seen);
                }
            }
            if let (Some(r), Some(ms)) = (m.record.as_mut(), modseq) {
                r.highest_modseq = Some(*ms);
            }
            true
        }
        Op::RemapSource(s, v, map) => {
            let m = &mut model[*s];
            if !map_ok(map) || m.record.is_none() {
                return false;
            }
            let old_copied = std::mem::take(&mut m.copied);
            let old_pending = std::mem::take(&mut m.pending);
            for &(old, new) in map {
                if let Some(c) = old_copied.get(&old) {
                    m.copied.insert(
                        new,
                        CopiedRecord {
                            src_uid: Uid(new),
                            ..c.clone()
                        },
                    );
                }
                if let Some(&floor) = old_pending.get(&old) {
                    m.pending.insert(new, floor);
                }
            }
            if let Some(r) = m.record.as_mut() {
                r.source_uidvalidity = UidValidity(*v);
                r.highest_modseq = None;
            }
            true
        }
        Op::RemapDest(s, v, map) => {
            let m = &mut model[*s];
            if !map_ok(map) || m.record.is_none() {
                return false;
            }
            let lookup: BTreeMap<u32, u32> = map.iter().copied().collect();
            m.copied.retain(|u, c| match lookup.get(u) {
                Some(&dst) => {
                    c.dst_uid = Some(Uid(dst));
                    true
                }
                None => false,
            });
            for floor in m.pending.values_mut() {
                *floor = 1;
            }
            if let Some(r) = m.record.as_mut() {
                r.dest_uidvalidity = Some(UidValidity(*v));
            }
            true
        }
        Op::Forget(s) => {
            model[*s] = ModelFolder::default();
            true
        }
        Op::ForgetAccount(s) => {
            let account = SCOPES[*s].0;
            for (i, scope) in SCOPES.iter().enumerate() {
                if scope.0 == account {
                    model[i] = ModelFolder::default();
                }
            }
            true
        }
    }
}

fn run(store: &dyn StateStore, op: &Op) -> Result<(), StateError> {
    let a = |s: &usize| SCOPES[*s].0;
    let f = |s: &usize| SCOPES[*s].1;
    match op {
        Op::Put(s, v) => store.put_folder(
            a(s),
            f(s),
            &FolderRecord {
                highest_modseq: None,
                ..folder_rec(*v)
            },
        ),
        Op::AddPending(s, batch) => {
            let b: Vec<_> = batch.iter().map(|&(u, fl)| pend(u, fl)).collect();
            store.add_pending(a(s), f(s), &b)
        }
        Op::Commit(s, batch) => {
            let b: Vec<_> = batch
                .iter()
                .map(|&(u, dst, fp, seen, size)| CopiedRecord {
                    src_uid: Uid(u),
                    dst_uid: dst.map(Uid),
                    fingerprint: [fp; 32],
                    flags: flags_of(seen),
                    size: u64::from(size),
                })
                .collect();
            store.commit_copied(a(s), f(s), &b)
        }
        Op::Drop(s, uids) => {
            let u: Vec<_> = uids.iter().map(|&u| Uid(u)).collect();
            store.drop_pending(a(s), f(s), &u)
        }
        Op::Flags(s, changes, modseq) => {
            let c: Vec<_> = changes
                .iter()
                .map(|&(u, seen)| (Uid(u), flags_of(seen)))
                .collect();
            store.update_flags(a(s), f(s), &c, *modseq)
        }
        Op::RemapSource(s, v, map) => {
            let m: Vec<_> = map.iter().map(|&(o, n)| (Uid(o), Uid(n))).collect();
            store.remap_source(a(s), f(s), UidValidity(*v), &m)
        }
        Op::RemapDest(s, v, map) => {
            let m: Vec<_> = map.iter().map(|&(o, n)| (Uid(o), Uid(n))).collect();
            store.remap_dest(a(s), f(s), UidValidity(*v), &m)
        }
        Op::Forget(s) => store.forget_folder(a(s), f(s)),
        Op::ForgetAccount(s) => store.forget_account(a(s)),
    }
}

fn without_time(r: Option<FolderRecord>) -> Option<FolderRecord> {
    r.map(|r| FolderRecord { updated_at: 0, ..r })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_operation_sequences_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let store = mem();
        let mut model = vec![ModelFolder::default(); SCOPES.len()];
        for op in &ops {
            let accepted = apply(&mut model, op);
            let result = run(&store, op);
            prop_assert_eq!(result.is_ok(), accepted, "{:?}: {:?}", op, result.err());
            for (i, &(a, f)) in SCOPES.iter().enumerate() {
                let copied = store.copied(a, f).unwrap();
                let pending = store.pending(a, f).unwrap();
                prop_assert!(
                    pending.iter().all(|p| copied.iter().all(|c| c.src_uid != p.src_uid)),
                    "a UID is both pending and copied in {}/{}", a, f
                );
                let want_copied: Vec<_> = model[i].copied.values().cloned().collect();
                prop_assert_eq!(&copied, &want_copied);
                let want_pending: Vec<_> =
                    model[i].pending.iter().map(|(&u, &fl)| pend(u, fl)).collect();
                prop_assert_eq!(&pending, &want_pending);
                prop_assert_eq!(store.copied_count(a, f).unwrap(), copied.len() as u64);
                prop_assert_eq!(
                    without_time(store.folder(a, f).unwrap()),
                    without_time(model[i].record.clone())
                );
            }
        }
    }
}

/// Regression: processes opening a brand-new file at the same moment (a scheduler and a CLI,
/// or a re-run started while the last one is still creating the schema) must all succeed. The
/// identity check once read the mark, the version and the tables in three separate reads and
/// could see another process's schema half-made ("no imapmig mark"); found by the kill -9 test.
#[test]
fn concurrent_first_opens_of_a_new_file_all_succeed() {
    for round in 0..20 {
        let db = TempDb::new(&format!("race{round}"));
        let path = db.path().to_path_buf();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteStore::open(&path).map(|_| ()))
            })
            .collect();
        for t in threads {
            let res = t.join().expect("no panic");
            assert!(res.is_ok(), "round {round}: {res:?}");
        }
    }
}
