//! The one classifier, seen from the engine's errors: every failure is named by its type and
//! the side it carries, never by its words.

use super::*;
use crate::imap::ImapError;
use crate::wire::{ResponseCode, StatusKind, StatusResponse};

fn classify_(e: &EngineError) -> Classified {
    e.classify()
}

fn refused(code: Option<ResponseCode>, text: &str) -> EngineError {
    EngineError::Server {
        side: Side::Destination,
        source: crate::imap::error::refused_append(code, text).into(),
    }
}

#[test]
fn failures_are_named() {
    let auth = EngineError::Server {
        side: Side::Source,
        source: ImapError::AuthenticationFailed {
            host: "h".into(),
            user: "u".into(),
            server_says: "no".into(),
        }
        .into(),
    };
    assert_eq!(classify_(&auth).category, FailureCategory::Authentication);
    assert!(!classify_(&auth).transient);
    let io = EngineError::Server {
        side: Side::Source,
        source: ImapError::Connect {
            host: "h".into(),
            port: 1,
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        }
        .into(),
    };
    let c = classify_(&io);
    assert_eq!(
        (c.category, c.transient, c.throttled),
        (FailureCategory::Connection, true, false)
    );
    let quota = refused(Some(ResponseCode::OverQuota), "Quota exceeded");
    assert_eq!(classify_(&quota).category, FailureCategory::Quota);
    let limit = refused(Some(ResponseCode::Limit), "slow down");
    assert!(classify_(&limit).throttled && classify_(&limit).transient);
    let o365 = refused(
        None,
        "Request is throttled. Suggested Backoff Time: 100 milliseconds",
    );
    assert_eq!(classify_(&o365).category, FailureCategory::Throttled);
    let bye = EngineError::Server {
        side: Side::Source,
        source: ImapError::Closed {
            host: "h".into(),
            bye: Some("Maximum number of connections from user+IP exceeded".into()),
        }
        .into(),
    };
    assert!(classify_(&bye).throttled);
    let tls = EngineError::Server {
        side: Side::Source,
        source: ImapError::Tls {
            host: "h".into(),
            detail: "bad cert".into(),
        }
        .into(),
    };
    assert_eq!(classify_(&tls).category, FailureCategory::Tls);
    assert_eq!(
        classify_(&EngineError::Cancelled).category,
        FailureCategory::Internal
    );
    // POP3 errors are named by their kind, as IMAP's are.
    let pop3 = |kind, transient| EngineError::Server {
        side: Side::Source,
        source: crate::source::AccessError::Server {
            server: "pop3://h:110".into(),
            detail: "login as u refused: -ERR nope".into(),
            transient,
            kind,
        },
    };
    let c = classify_(&pop3(ErrorKind::Authentication, false));
    assert_eq!(c.category, FailureCategory::Authentication);
    assert!(!c.transient);
    let c = classify_(&pop3(ErrorKind::Connection, true));
    assert_eq!(c.category, FailureCategory::Connection);
    assert!(c.transient);
    let c = classify_(&pop3(ErrorKind::Tls, false));
    assert_eq!(c.category, FailureCategory::Tls);
    let c = classify_(&pop3(ErrorKind::Server, false));
    assert_eq!(c.category, FailureCategory::Configuration);
}

fn refused_on(side: Side, folder: Option<&str>, command: &'static str, text: &str) -> EngineError {
    let source = ImapError::Refused {
        host: "h".into(),
        command,
        folder: folder.map(Into::into),
        status: Box::new(StatusResponse {
            tag: Some("a1".into()),
            kind: StatusKind::No,
            code: Some(ResponseCode::Other {
                name: "SERVERBUG".into(),
                args: String::new(),
            }),
            text: text.into(),
        }),
    }
    .into();
    match folder {
        Some(f) => EngineError::Folder {
            side,
            folder: f.into(),
            source,
        },
        None => EngineError::Server { side, source },
    }
}

/// The exactly-once issue: an account whose source refused EXAMINE (`NO [SERVERBUG]`) was
/// filed under destination_refused. The side the engine's error carries decides, typed or
/// as text.
#[test]
fn a_source_refusal_is_never_filed_as_destination_refused() {
    for (side, want) in [
        (Side::Source, FailureCategory::SourceRefused),
        (Side::Destination, FailureCategory::DestinationRefused),
    ] {
        for e in [
            refused_on(side, Some("Work"), "EXAMINE", "Internal error occurred"),
            refused_on(side, None, "LIST", "Internal error occurred"),
        ] {
            let typed = classify_(&e);
            assert_eq!(typed.category, want, "{e}");
            assert!(!typed.transient);
            assert_eq!(typed.side, Some(side), "{e}");
            let f = FolderFailure::of("Work", &e);
            assert_eq!((f.category, f.side), (want, Some(side)), "{e}");
        }
    }
}

/// The folder's name is the user's: words in it never decide the category.
#[test]
fn folder_names_do_not_decide_the_category() {
    for name in [
        "Atlas",
        "Quota exceeded",
        "cannot connect",
        "sync state",
        "a \"destination, folder\" b",
        "Try again later",
    ] {
        let e = refused_on(
            Side::Source,
            Some(name),
            "EXAMINE",
            "Internal error occurred",
        );
        let f = FolderFailure::of(name, &e);
        assert_eq!(
            (f.category, f.transient, f.throttled),
            (FailureCategory::SourceRefused, false, false),
            "{e}"
        );
    }
}

#[test]
fn folder_failures_are_named() {
    let full = FolderFailure::of(
        "X",
        &refused(Some(ResponseCode::OverQuota), "Quota exceeded"),
    );
    assert_eq!(
        (full.category, full.kind),
        (FailureCategory::Quota, ErrorKind::Quota)
    );
    let closed = EngineError::Folder {
        side: Side::Source,
        folder: "X".into(),
        source: ImapError::Closed {
            host: "h".into(),
            bye: None,
        }
        .into(),
    };
    assert!(FolderFailure::of("X", &closed).transient);
    let create = EngineError::Folder {
        side: Side::Destination,
        folder: "X".into(),
        source: ImapError::Refused {
            host: "h".into(),
            command: "CREATE",
            folder: Some("X".into()),
            status: Box::new(StatusResponse {
                tag: Some("a1".into()),
                kind: StatusKind::No,
                code: None,
                text: "invalid name".into(),
            }),
        }
        .into(),
    };
    assert_eq!(
        FolderFailure::of("X", &create).category,
        FailureCategory::DestinationRefused
    );
    // The server's suggested wait travels with the failure.
    let o365 = refused(
        None,
        "Request is throttled. Suggested Backoff Time: 100 milliseconds",
    );
    assert_eq!(
        classify_(&o365).backoff,
        Some(std::time::Duration::from_millis(100))
    );
}
