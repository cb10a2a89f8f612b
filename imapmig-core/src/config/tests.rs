//! Tests of the configuration model and of task edits.

use super::*;
use crate::batch::task::{Auth, ServerSettings, TaskSettings};
use crate::imap::Security;
use crate::source::MboxFlavor;

fn parse(json: &str) -> MigrationConfig {
    serde_json::from_str(json).unwrap()
}

const SERVER: &str = r#"{"host":"h","user":"u","password":"p"}"#;

#[test]
fn defaults_are_the_engines() {
    let c = MigrationConfig::default();
    let e = MigrationOptions::default();
    assert_eq!(
        (c.connections, c.batch, c.retries),
        (e.connections, e.batch, e.retries)
    );
    assert_eq!(c.backoff, e.backoff);
    assert_eq!(parse("{}"), c);
}

#[test]
fn every_kind_of_source_resolves() {
    let c = parse(&format!(r#"{{"source":{SERVER},"destination":{SERVER}}}"#));
    let r = c.resolve().unwrap();
    assert!(matches!(&r.source, SourceSpec::Imap(a) if a.endpoint.port == 993));
    assert!(matches!(r.destination, Some(SinkSpec::Imap(_))));

    let c = parse(
        r#"{"source":{"kind":"maildir","path":"/m"},"destination":{"kind":"maildir","path":"/d"}}"#,
    );
    let r = c.resolve().unwrap();
    assert!(matches!(&r.source, SourceSpec::Maildir(m) if m.path == Path::new("/m")));
    assert!(matches!(&r.destination, Some(SinkSpec::Maildir(m)) if m.path == Path::new("/d")));

    let c =
        parse(r#"{"source":{"kind":"mbox","path":"/x.mbox","flavor":"mboxcl2"},"mode":"unified"}"#);
    let r = c.resolve().unwrap();
    assert!(matches!(&r.source, SourceSpec::Mbox(m) if m.flavor == MboxFlavor::Mboxcl2));
    assert_eq!(
        r.options.plan.mode,
        Mode::Unified {
            root: "Migrated".into(),
            address: "x.mbox".into()
        }
    );

    let pop3 = r#"{"kind":"pop3","host":"h","user":"u","password":"p","tls":"none"}"#;
    let c = parse(&format!(r#"{{"source":{pop3},"state":"/s/state.sqlite"}}"#));
    match c.resolve().unwrap().source {
        SourceSpec::Pop3(p) => {
            assert_eq!(p.account.endpoint.port, 110);
            assert_eq!(p.account.endpoint.security, Security::Cleartext);
            assert_eq!(p.uid_map, Path::new("/s/state.sqlite.pop3-uids/u@h_110"));
        }
        other => panic!("{other:?}"),
    }
    let e = parse(&format!(r#"{{"source":{pop3}}}"#))
        .resolve()
        .unwrap_err();
    assert_eq!(e.field(), Some("uid_map"));
}

#[test]
fn fields_of_another_kind_and_mbox_destinations_are_refused() {
    for (json, says) in [
        (
            r#"{"source":{"kind":"maildir","path":"/m","host":"h"}}"#,
            "host",
        ),
        (
            r#"{"source":{"host":"h","user":"u","password":"p","path":"/m"}}"#,
            "path",
        ),
        (r#"{"source":{"kind":"maildir"}}"#, "path"),
        (r#"{"destination":{"kind":"mbox","path":"/m"}}"#, "mbox"),
        (r#"{"destination":{"kind":"pop3","host":"h"}}"#, "IMAP"),
        (
            r#"{"source":{"host":"h","user":"u","password":"p","colour":1}}"#,
            "colour",
        ),
    ] {
        let e = serde_json::from_str::<MigrationConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{json}: {e}");
    }
}

#[test]
fn bad_values_name_their_field() {
    let source = format!(r#""source":{SERVER}"#);
    for (extra, field) in [
        (r#""since":"yesterday""#, "since"),
        (r#""since":"2024-02-01","before":"2024-01-01""#, "since"),
        (r#""include":["["]"#, "include"),
        (r#""exclude":["a/{b"]"#, "exclude"),
        (r#""renames":{"":"x"}"#, "renames"),
        (r#""mode":"unified","unified_root":"a//b""#, "unified_root"),
        (r#""exclude_special":["spam"]"#, "exclude_special"),
    ] {
        let c = parse(&format!("{{{source},{extra}}}"));
        assert_eq!(c.resolve().unwrap_err().field(), Some(field), "{extra}");
    }
    let mut r = parse(&format!(r#"{{{source},"destination":{SERVER}}}"#))
        .resolve()
        .unwrap();
    assert_eq!(r.open_state().err().unwrap().field(), Some("state"));
}

#[test]
fn renames_read_as_an_object_or_as_pairs_in_order() {
    let a = parse(r#"{"renames":{"b":"x","a":"y"}}"#);
    let b = parse(r#"{"renames":[["b","x"],["a","y"]]}"#);
    assert_eq!(
        a.renames,
        vec![("b".into(), "x".into()), ("a".into(), "y".into())]
    );
    assert_eq!(a, b);
}

fn task() -> TaskSettings {
    TaskSettings::new(
        ServerSettings::new("old.example"),
        ServerSettings::new("new.example"),
    )
}

fn patch(json: &str) -> SettingsPatch {
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_port_follows_tls_and_protocol_unless_given() {
    let mut s = task();
    patch(r#"{"source":{"transport":"starttls"}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(s.source.port, 143);
    patch(r#"{"source":{"protocol":"pop3"}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(s.source.port, 110);
    patch(r#"{"source":{"transport":"tls","port":1995}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(s.source.port, 1995);
    patch(r#"{"source":{"host":"moved.example"}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(
        (s.source.port, s.source.host.as_str()),
        (1995, "moved.example")
    );
}

#[test]
fn the_full_settings_are_a_patch_that_sets_everything() {
    let mut wanted = task();
    wanted.source.auth = Auth::MasterUser {
        master: "m".into(),
        separator: "#".into(),
    };
    wanted.messages.since = Some(time::macros::date!(2020 - 01 - 01));
    wanted.messages.max_size = Some(5);
    wanted.folders.exclude_special = vec![crate::model::SpecialUse::Junk];
    wanted.schedule.start_at = Some(time::macros::datetime!(2030-01-02 03:04:05 UTC));
    let json = serde_json::to_string(&wanted).unwrap();
    let mut s = task();
    let logins = patch(&json).apply(&mut s).unwrap();
    assert_eq!(s, wanted);
    assert!(logins.source && !logins.destination);
}

#[test]
fn logins_change_by_parts() {
    let mut s = task();
    let e = patch(r#"{"destination":{"auth":{"kind":"admin"}}}"#)
        .apply(&mut s.clone())
        .unwrap_err();
    assert_eq!(e.setting(), "destination.admin");
    let logins = patch(r#"{"destination":{"auth":{"kind":"admin"},"admin":"root"}}"#)
        .apply(&mut s)
        .unwrap();
    assert!(logins.destination);
    assert_eq!(
        s.destination.auth,
        Auth::Admin {
            user: "root".into()
        }
    );
    // The name alone changes the admin; the kind is kept.
    patch(r#"{"destination":{"admin":"boss"}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(
        s.destination.auth,
        Auth::Admin {
            user: "boss".into()
        }
    );
    let e = patch(r#"{"source":{"admin":"boss"}}"#)
        .apply(&mut s)
        .unwrap_err();
    assert_eq!(e.setting(), "source.admin");
    patch(r#"{"source":{"mechanism":"login"}}"#)
        .apply(&mut s)
        .unwrap();
    assert_eq!(
        s.source.auth,
        Auth::Password {
            mechanism: crate::batch::task::PasswordMechanism::Login
        }
    );
}

#[test]
fn edits_are_checked_with_what_the_task_has() {
    let mut s = task();
    patch(r#"{"messages":{"before":"2024-01-01"}}"#)
        .apply(&mut s)
        .unwrap();
    let e = patch(r#"{"messages":{"since":"2024-01-01"}}"#)
        .apply(&mut s.clone())
        .unwrap_err();
    assert_eq!(e.setting(), "messages.since");
    patch(
        r#"{"messages":{"before":null,"max_size":0},"schedule":{"window":"2d","start_at":"now"}}"#,
    )
    .apply(&mut s)
    .unwrap();
    assert_eq!(s.messages.before, None);
    assert_eq!(s.messages.max_size, None);
    assert_eq!(s.schedule.window, Duration::from_secs(2 * 86_400));
    for (json, setting) in [
        (r#"{"folders":{"include":["["]}}"#, "folders.include"),
        (r#"{"folders":{"renames":[["","x"]]}}"#, "folders.renames"),
        (
            r#"{"folders":{"exclude_special":["spam"]}}"#,
            "folders.exclude_special",
        ),
        (r#"{"limits":{"accounts":0}}"#, "limits.accounts"),
    ] {
        assert_eq!(
            patch(json).apply(&mut s.clone()).unwrap_err().setting(),
            setting,
            "{json}"
        );
    }
    assert!(serde_json::from_str::<SettingsPatch>(r#"{"folders":{"colour":1}}"#).is_err());
}
