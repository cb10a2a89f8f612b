//! The JSON that users and the bindings read, pinned byte for byte: a migration report, the
//! progress events (as the engine serialises them and as Python and C receive them), stored
//! task settings, an account status export, a task summary, a run summary and audit events.
//!
//! Each value below sets every field to something other than its default, so that a renamed,
//! dropped, reordered or newly skipped field changes the text. The expected texts are in
//! `tests/snapshots/`; a change to them is a change users see and must be made on purpose
//! (`IMAPMIG_BLESS=1 cargo test -p imapmig-core --test json_snapshots` rewrites them, and the
//! README says what changed).

use std::path::PathBuf;
use std::time::Duration;

use imapmig_core::access::SkippedEntry;
use imapmig_core::batch::audit::AuditEvent;
use imapmig_core::batch::slots::HostUsage;
use imapmig_core::batch::task::{
    Auth, CertificateCheck, ConcurrencyLimits, FolderMode, FolderOptions, MessageOptions, Protocol,
    RetryPolicy, Schedule, ServerSettings, TokenMechanism, Transport,
};
use imapmig_core::batch::{
    AccountReport, EditScope, FailureCategory, RunSummary, Status, TaskSettings, TaskSummary,
};
use imapmig_core::engine::events::flatten;
use imapmig_core::engine::{
    Alterations, Anomaly, ErrorKind, FolderFailure, FolderReport, MigrationReport, ProgressEvent,
    Side, SkippedMessage,
};
use imapmig_core::model::SpecialUse;
use time::macros::{date, datetime};

/// Compares `actual` with the snapshot `name`, or writes it when blessing.
fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    let actual = format!("{actual}\n");
    if std::env::var_os("IMAPMIG_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (IMAPMIG_BLESS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "{} changed: JSON users see must stay byte-identical.\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn skipped(uid: u32, reason: &str) -> SkippedMessage {
    SkippedMessage {
        uid,
        size: 1_234_567,
        reason: reason.into(),
        kind: Some(ErrorKind::Quota),
    }
}

/// Every kind of alteration, counted differently.
fn altered() -> Alterations {
    Alterations {
        line_endings_normalised: 1,
        flags_repaired: 2,
        flags_lost: 3,
        dates_not_kept: 4,
        headers_altered: 5,
        content_altered: 6,
    }
}

fn folder_report() -> FolderReport {
    FolderReport {
        source: "Archiv/2023 ü".into(),
        target: "Archive/2023 ü".into(),
        found: 120,
        copied: 100,
        already_there: 15,
        skipped_by_filter: 2,
        too_large: vec![skipped(7, "larger than the limit of 1000000 bytes")],
        refused: vec![skipped(9, "NO [OVERQUOTA] Mailbox is full")],
        vanished: 1,
        flags_updated: 3,
        dropped_keywords: vec!["$Custom".into()],
        bytes: 987_654,
        seconds: 1.5,
        unchanged: true,
        listed: 118,
        listed_all: true,
        notes: vec!["UIDVALIDITY changed: re-matched by content".into()],
        anomalies: vec![Anomaly {
            folder: Some("Archiv/2023 ü".into()),
            uid: Some(11),
            side: Side::Destination,
            detail: "flags not stored: \\Flagged".into(),
        }],
        not_imported: vec![SkippedEntry {
            path: "/mail/Archiv/cur/x".into(),
            reason: "not a message".into(),
        }],
        planned_target: Some("Archive/2023".into()),
        remapped_from: Some("Old/2023".into()),
        recreated: true,
        altered: altered(),
    }
}

fn migration_report() -> MigrationReport {
    MigrationReport {
        folders: vec![folder_report(), FolderReport::default()],
        plan: "INBOX -> INBOX\nArchiv/2023 ü -> Archive/2023 ü\n".into(),
        plan_notes: vec!["excluded virtual folder \"[Gmail]/All Mail\"".into()],
        failed_folders: vec![FolderFailure {
            folder: "Sent \"old\"".into(),
            side: Some(Side::Destination),
            kind: ErrorKind::Server,
            category: FailureCategory::DestinationRefused,
            transient: false,
            throttled: false,
            message: "destination, folder \"Sent \\\"old\\\"\": NO [CANNOT] bad name".into(),
        }],
        anomalies: vec![Anomaly {
            folder: None,
            uid: None,
            side: Side::Source,
            detail: "unreadable LIST entry".into(),
        }],
        not_imported: vec![SkippedEntry {
            path: "/mail/notes.txt".into(),
            reason: "not an mbox".into(),
        }],
        dry_run: true,
        copied: 100,
        bytes: 987_654,
        seconds: 2.25,
        altering_destination: Some("imap.example.net:993".into()),
        altered: altered(),
    }
}

#[test]
fn migration_report_json_is_unchanged() {
    let r = migration_report();
    check(
        "migration_report.json",
        &serde_json::to_string_pretty(&r).unwrap(),
    );
    // The compact form too: the CLI prints it on one line with --json.
    check(
        "migration_report.compact.json",
        &serde_json::to_string(&r).unwrap(),
    );
}

fn events() -> Vec<ProgressEvent> {
    vec![
        ProgressEvent::Planned { folders: 3 },
        ProgressEvent::FolderStarted {
            folder: "INBOX".into(),
            to_copy: 10,
            bytes: 2048,
        },
        ProgressEvent::MessageCopied {
            folder: "INBOX".into(),
            uid: 4,
            bytes: 512,
        },
        ProgressEvent::MessageSkipped {
            folder: "INBOX".into(),
            uid: 5,
            reason: "NO [TOOBIG] too big".into(),
        },
        ProgressEvent::FolderDone(folder_report()),
        ProgressEvent::ConnectionsReduced {
            workers: 1,
            error: "NO [UNAVAILABLE] too many connections".into(),
            side: Side::Destination,
        },
        ProgressEvent::Retrying {
            folder: "Sent".into(),
            attempt: 2,
            after_ms: 1500,
            error: "connection reset".into(),
            throttled_by: Some(Side::Source),
        },
    ]
}

#[test]
fn progress_events_json_is_unchanged() {
    let plain: Vec<String> = events()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    check("progress_events.jsonl", &plain.join("\n"));
    let flat: Vec<String> = events().iter().map(|e| flatten(e).to_string()).collect();
    check("progress_events.flat.jsonl", &flat.join("\n"));
}

fn task_settings() -> TaskSettings {
    let mut source = ServerSettings::new("old.example.com");
    source.port = 110;
    source.transport = Transport::StartTls;
    source.protocol = Protocol::Pop3;
    source.certificate = CertificateCheck::CaFile("/etc/ca.pem".into());
    source.timeout = Duration::from_secs(45);
    source.auth = Auth::Admin {
        user: "admin@old.example.com".into(),
    };
    let mut destination = ServerSettings::new("new.example.com");
    destination.transport = Transport::Cleartext;
    destination.port = 1143;
    destination.certificate = CertificateCheck::Insecure;
    destination.auth = Auth::OAuth2 {
        mechanism: TokenMechanism::OAuthBearer,
    };
    let mut s = TaskSettings::new(source, destination);
    s.folders = FolderOptions {
        mode: FolderMode::Unified {
            root: "Imported".into(),
        },
        include: vec!["INBOX*".into()],
        exclude: vec!["Trash".into()],
        exclude_special: vec![SpecialUse::Junk],
        renames: vec![("Sent Items".into(), "Sent".into())],
    };
    s.messages = MessageOptions {
        since: Some(date!(2024 - 01 - 01)),
        before: Some(date!(2025 - 06 - 30)),
        header_date: true,
        max_size: Some(25_000_000),
    };
    s.schedule = Schedule {
        start_at: Some(datetime!(2026-12-24 18:00 UTC)),
        window: Duration::from_secs(7 * 24 * 3600),
        interval: Duration::from_secs(900),
    };
    s.limits = ConcurrencyLimits {
        accounts: 5,
        per_source_host: 4,
        per_destination_host: 8,
        connections_per_account: 3,
    };
    s.retry = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_secs(10),
        max: Duration::from_secs(600),
    };
    s
}

#[test]
fn stored_task_settings_json_is_unchanged() {
    let s = task_settings();
    let stored = serde_json::to_string(&s).unwrap();
    check("task_settings.json", &stored);
    check(
        "task_settings.pretty.json",
        &serde_json::to_string_pretty(&s).unwrap(),
    );
    // What is stored reads back as the same settings.
    let back: TaskSettings = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, s);
    // A master-user login and the other spellings of the enums.
    let mut m = TaskSettings::new(
        ServerSettings::new("a.example"),
        ServerSettings::new("b.example"),
    );
    m.source.auth = Auth::MasterUser {
        master: "master".into(),
        separator: "*".into(),
    };
    check(
        "task_settings.defaults.json",
        &serde_json::to_string(&m).unwrap(),
    );
}

fn account_report() -> AccountReport {
    AccountReport {
        id: 42,
        target: "anna@new.example".into(),
        source: "admin/anna".into(),
        status: Status::Failed,
        failure: Some(FailureCategory::Quota),
        requested: Some("pause".into()),
        has_credentials: true,
        folders_done: 3,
        folders_total: 5,
        messages: 1200,
        bytes: 34_567_890,
        refused: 2,
        passes: 4,
        attempts: 1,
        last_error: Some("the destination mailbox is full".into()),
        source_server: "old.example.com:993".into(),
        destination_server: "new.example.com:143".into(),
        started_at: Some(datetime!(2026-12-01 08:00 UTC)),
        synced_at: Some(datetime!(2026-12-01 09:30 UTC)),
        last_pass_at: Some(datetime!(2026-12-02 10:00 UTC)),
        next_pass_at: Some(datetime!(2026-12-02 11:00 UTC)),
        window_ends_at: Some(datetime!(2026-12-31 00:00 UTC)),
        updated_at: datetime!(2026-12-02 10:00:05 UTC),
    }
}

#[test]
fn status_export_json_is_unchanged() {
    let mut idle = account_report();
    idle.id = 43;
    idle.status = Status::WaitingForCredentials;
    idle.failure = None;
    idle.requested = None;
    idle.has_credentials = false;
    idle.last_error = None;
    idle.started_at = None;
    idle.synced_at = None;
    idle.last_pass_at = None;
    idle.next_pass_at = None;
    let list = vec![account_report(), idle];
    check(
        "status_export.json",
        &imapmig_core::batch::report::to_json(&list),
    );
    check(
        "task_summary.json",
        &serde_json::to_string(&TaskSummary::of(&list)).unwrap(),
    );
}

#[test]
fn run_summary_json_is_unchanged() {
    let summary = RunSummary {
        passes: 9,
        passes_synced: 5,
        passes_retried: 2,
        passes_failed: 1,
        passes_cancelled: 1,
        recovered: 1,
        copied: 5000,
        bytes: 123_456_789,
        seconds: 61.5,
        peak_accounts: 4,
        hosts: vec![HostUsage {
            side: Side::Source,
            host: "old.example.com".into(),
            configured: 20,
            limit: 10,
            in_use: 0,
            accounts: 0,
            peak: 8,
            passes: 9,
            throttle_events: 1,
        }],
        statuses: vec![(Status::Synced, 3), (Status::Failed, 1)],
    };
    check(
        "run_summary.json",
        &serde_json::to_string(&summary).unwrap(),
    );
}

#[test]
fn audit_events_json_is_unchanged() {
    let events = [
        AuditEvent::TaskCreated,
        AuditEvent::TaskEdited {
            changed: vec!["source.port".into()],
            scope: EditScope::All,
        },
        AuditEvent::AccountsImported {
            file: "accounts.csv".into(),
            added: 10,
            updated: 2,
            skipped: 1,
        },
        AuditEvent::StatusChanged {
            from: Status::Running,
            to: Status::Failed,
            category: Some(FailureCategory::Authentication),
            reason: Some("LOGIN refused".into()),
        },
        AuditEvent::PassStarted {
            pass: 2,
            source_host: "old.example.com".into(),
            destination_host: "new.example.com".into(),
            connections: 2,
        },
        AuditEvent::FolderDone {
            folder: "INBOX".into(),
            target: "INBOX".into(),
            copied: 5,
            already_there: 1,
            refused: 0,
            too_large: 1,
            bytes: 4096,
        },
        AuditEvent::MessageRefused {
            folder: "INBOX".into(),
            uid: 8,
            reason: "NO too big".into(),
        },
        AuditEvent::PassFinished {
            copied: 5,
            bytes: 4096,
            seconds: 0.5,
            messages: 6,
        },
        AuditEvent::Retrying {
            attempt: 1,
            after_seconds: 30,
            error: "connection reset".into(),
        },
        AuditEvent::Throttled {
            side: "source".into(),
            host: "old.example.com".into(),
            connections: 5,
        },
        AuditEvent::CredentialsSupplied,
        AuditEvent::Requested {
            control: "pause".into(),
        },
        AuditEvent::RunNow,
        AuditEvent::InvitationCreated {
            expires_at: time::macros::datetime!(2024-05-08 07:08:09 UTC),
        },
        AuditEvent::InvitationAccepted,
    ];
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    check("audit_events.jsonl", &lines.join("\n"));
}
