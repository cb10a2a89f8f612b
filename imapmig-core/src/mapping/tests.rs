//! Tests for folder planning: the server flavours we meet (Dovecot/Gmail `/` without prefix,
//! Courier/Cyrus/Exchange-style `.` with `INBOX.`), every localized name, unified mode,
//! filters, renames, escapes, collisions, and a property test over arbitrary names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::model::SpecialUse::{self, All, Archive, Drafts, Flagged, Important, Junk, Sent, Trash};
use crate::utf7;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A folder as a server would list it: `raw` is the modified UTF-7 of `name`, the special use
/// parsed from the attributes.
fn folder(name: &str, delim: char, attrs: &[&str]) -> Folder {
    Folder {
        name: name.to_string(),
        raw: utf7::encode(name),
        delimiter: Some(delim),
        attributes: attrs.iter().map(|a| a.to_string()).collect(),
        special_use: attrs.iter().find_map(|a| SpecialUse::from_attribute(a)),
    }
}

fn folders(delim: char, spec: &[(&str, &[&str])]) -> Vec<Folder> {
    spec.iter().map(|(n, a)| folder(n, delim, a)).collect()
}

fn plain(delim: char, names: &[&str]) -> Vec<Folder> {
    names.iter().map(|n| folder(n, delim, &[])).collect()
}

fn dest(folders: Vec<Folder>, delimiter: char, prefix: &str) -> Destination {
    Destination {
        folders,
        delimiter,
        personal_prefix: prefix.to_string(),
        utf8: false,
    }
}

/// A Dovecot-like `/` destination without prefix, special-use attributes on the usual names.
fn dovecot_dest() -> Destination {
    dest(
        folders(
            '/',
            &[
                ("INBOX", &[]),
                ("Sent", &["\\Sent"]),
                ("Drafts", &["\\Drafts"]),
                ("Trash", &["\\Trash"]),
                ("Junk", &["\\Junk"]),
                ("Archive", &["\\Archive"]),
            ],
        ),
        '/',
        "",
    )
}

/// An Exchange/Courier-like `.` destination with prefix `INBOX.` and Outlook names, with or
/// without the special-use attributes.
fn outlook_dest(with_attrs: bool) -> Destination {
    let a = |attr: &'static str| -> Vec<&'static str> {
        if with_attrs {
            vec![attr]
        } else {
            vec![]
        }
    };
    let spec = [
        ("INBOX", vec![]),
        ("INBOX.Sent Items", a("\\Sent")),
        ("INBOX.Drafts", a("\\Drafts")),
        ("INBOX.Deleted Items", a("\\Trash")),
        ("INBOX.Junk E-mail", a("\\Junk")),
        ("INBOX.Archive", a("\\Archive")),
    ];
    dest(
        spec.iter().map(|(n, a)| folder(n, '.', a)).collect(),
        '.',
        "INBOX.",
    )
}

fn mapping() -> PlanOptions {
    PlanOptions::default()
}

fn entry<'p>(plan: &'p FolderPlan, source: &str) -> &'p PlanEntry {
    plan.entries
        .iter()
        .find(|e| e.source.name == source)
        .unwrap_or_else(|| panic!("no entry for {source}:\n{}", plan.render()))
}

fn target<'p>(plan: &'p FolderPlan, source: &str) -> &'p str {
    &entry(plan, source).target
}

fn exclusion<'p>(plan: &'p FolderPlan, source: &str) -> Option<&'p Exclusion> {
    plan.excluded
        .iter()
        .find(|(f, _)| f.name == source)
        .map(|(_, why)| why)
}

fn has_note(plan: &FolderPlan, needle: &str) -> bool {
    plan.notes.iter().any(|n| n.contains(needle))
}

// ---------------------------------------------------------------------------------------------
// Server flavours, both ways

#[test]
fn slash_with_attributes_to_dot_inbox_with_attributes() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("Drafts", &["\\Drafts"]),
            ("Trash", &["\\Trash"]),
            ("Junk", &["\\Junk"]),
            ("Archive", &["\\Archive"]),
            ("Work", &[]),
            ("Work/Projects", &[]),
        ],
    );
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX"), "INBOX");
    assert_eq!(entry(&plan, "INBOX").reason, Reason::Inbox);
    for (s, t, u) in [
        ("Sent", "INBOX.Sent Items", Sent),
        ("Drafts", "INBOX.Drafts", Drafts),
        ("Trash", "INBOX.Deleted Items", Trash),
        ("Junk", "INBOX.Junk E-mail", Junk),
        ("Archive", "INBOX.Archive", Archive),
    ] {
        let e = entry(&plan, s);
        assert_eq!(e.target, t);
        assert!(e.exists, "{s}");
        assert_eq!(e.special_use, Some(u));
        assert_eq!(e.reason, Reason::SpecialUse(u, Detection::Attribute));
        assert_eq!(e.target_raw, utf7::encode(t));
    }
    assert_eq!(target(&plan, "Work"), "INBOX.Work");
    assert_eq!(target(&plan, "Work/Projects"), "INBOX.Work.Projects");
    assert!(!entry(&plan, "Work").exists);
    assert_eq!(entry(&plan, "Work/Projects").reason, Reason::SameTree);
    assert!(plan.excluded.is_empty());
}

#[test]
fn slash_with_attributes_to_dot_inbox_found_by_name() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("Trash", &["\\Trash"]),
            ("Junk", &["\\Junk"]),
            ("Drafts", &["\\Drafts"]),
            ("Archive", &["\\Archive"]),
        ],
    );
    let plan = super::plan(&src, &outlook_dest(false), &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent"), "INBOX.Sent Items");
    assert_eq!(target(&plan, "Trash"), "INBOX.Deleted Items");
    assert_eq!(target(&plan, "Junk"), "INBOX.Junk E-mail");
    assert_eq!(target(&plan, "Drafts"), "INBOX.Drafts");
    assert_eq!(target(&plan, "Archive"), "INBOX.Archive");
    assert!(plan.entries.iter().all(|e| e.exists));
}

#[test]
fn dot_inbox_outlook_with_attributes_to_slash() {
    let src = folders(
        '.',
        &[
            ("INBOX", &[]),
            ("INBOX.Sent Items", &["\\Sent"]),
            ("INBOX.Deleted Items", &["\\Trash"]),
            ("INBOX.Junk E-mail", &["\\Junk"]),
            ("INBOX.Drafts", &["\\Drafts"]),
            ("INBOX.Archive", &["\\Archive"]),
            ("INBOX.Work", &[]),
            ("INBOX.Work.Projects", &[]),
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX"), "INBOX");
    assert_eq!(target(&plan, "INBOX.Sent Items"), "Sent");
    assert_eq!(target(&plan, "INBOX.Deleted Items"), "Trash");
    assert_eq!(target(&plan, "INBOX.Junk E-mail"), "Junk");
    assert_eq!(target(&plan, "INBOX.Drafts"), "Drafts");
    assert_eq!(target(&plan, "INBOX.Archive"), "Archive");
    assert_eq!(target(&plan, "INBOX.Work"), "Work");
    assert_eq!(target(&plan, "INBOX.Work.Projects"), "Work/Projects");
    assert!(has_note(&plan, "prefix `INBOX.` detected"));
}

#[test]
fn dot_inbox_outlook_by_name_to_slash() {
    let src = plain(
        '.',
        &[
            "INBOX",
            "INBOX.Sent Items",
            "INBOX.Deleted Items",
            "INBOX.Junk E-mail",
            "INBOX.Drafts",
            "INBOX.Archive",
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    for (s, t, u) in [
        ("INBOX.Sent Items", "Sent", Sent),
        ("INBOX.Deleted Items", "Trash", Trash),
        ("INBOX.Junk E-mail", "Junk", Junk),
        ("INBOX.Drafts", "Drafts", Drafts),
        ("INBOX.Archive", "Archive", Archive),
    ] {
        let e = entry(&plan, s);
        assert_eq!(e.target, t);
        assert_eq!(e.reason, Reason::SpecialUse(u, Detection::LocalizedName));
    }
}

#[test]
fn dot_inbox_to_dot_inbox_and_slash_to_slash() {
    let src = plain('.', &["INBOX", "INBOX.Sent Items", "INBOX.Work.Q1"]);
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX.Sent Items"), "INBOX.Sent Items");
    assert_eq!(target(&plan, "INBOX.Work.Q1"), "INBOX.Work.Q1");

    let src = folders('/', &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("A/B", &[])]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent"), "Sent");
    assert_eq!(target(&plan, "A/B"), "A/B");
}

#[test]
fn missing_special_folders_are_planned_new_with_their_use() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent Items", &[]),
            ("Gelöschte Elemente", &[]),
            ("Spam", &["\\Junk"]),
            ("Brouillons", &[]),
            ("Archiv", &[]),
        ],
    );
    let d = dest(plain('.', &["INBOX"]), '.', "INBOX.");
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    for (s, t, u) in [
        ("Sent Items", "INBOX.Sent", Sent),
        ("Gelöschte Elemente", "INBOX.Trash", Trash),
        ("Spam", "INBOX.Junk", Junk),
        ("Brouillons", "INBOX.Drafts", Drafts),
        ("Archiv", "INBOX.Archive", Archive),
    ] {
        let e = entry(&plan, s);
        assert_eq!(e.target, t, "{s}");
        assert!(!e.exists);
        assert_eq!(e.special_use, Some(u));
    }
    // Onto a `/` destination without prefix they are top-level.
    let d = dest(plain('/', &["INBOX"]), '/', "");
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent Items"), "Sent");
}

#[test]
fn existing_folder_without_attribute_is_reused_by_canonical_name() {
    // The destination has a plain "Sent" (recognised by name), which is reused.
    let src = folders('/', &[("INBOX", &[]), ("Sent Messages", &["\\Sent"])]);
    let d = dest(plain('/', &["INBOX", "Sent"]), '/', "");
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    let e = entry(&plan, "Sent Messages");
    assert_eq!(e.target, "Sent");
    assert!(e.exists);
}

#[test]
fn gmail_source_to_dovecot() {
    let src = folders(
        '/',
        &[
            ("INBOX", &["\\HasNoChildren"]),
            ("[Gmail]", &["\\Noselect", "\\HasChildren"]),
            ("[Gmail]/All Mail", &["\\All"]),
            ("[Gmail]/Drafts", &["\\Drafts"]),
            ("[Gmail]/Important", &["\\Important"]),
            ("[Gmail]/Sent Mail", &["\\Sent"]),
            ("[Gmail]/Spam", &["\\Junk"]),
            ("[Gmail]/Starred", &["\\Flagged"]),
            ("[Gmail]/Bin", &["\\Trash"]),
            ("Receipts", &[]),
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "[Gmail]/Sent Mail"), "Sent");
    assert_eq!(target(&plan, "[Gmail]/Drafts"), "Drafts");
    assert_eq!(target(&plan, "[Gmail]/Spam"), "Junk");
    assert_eq!(target(&plan, "[Gmail]/Bin"), "Trash");
    assert_eq!(target(&plan, "Receipts"), "Receipts");
    assert_eq!(
        exclusion(&plan, "[Gmail]/All Mail"),
        Some(&Exclusion::Virtual(All))
    );
    assert_eq!(
        exclusion(&plan, "[Gmail]/Starred"),
        Some(&Exclusion::Virtual(Flagged))
    );
    assert_eq!(
        exclusion(&plan, "[Gmail]/Important"),
        Some(&Exclusion::Virtual(Important))
    );
    assert_eq!(exclusion(&plan, "[Gmail]"), Some(&Exclusion::NotSelectable));
    assert!(has_note(&plan, "archived without any label"));
    assert_eq!(plan.entries.len(), 6);
}

#[test]
fn gmail_all_mail_is_recognised_by_name_too_and_can_be_included() {
    let src = plain('/', &["INBOX", "[Gmail]/All Mail", "[Google Mail]/Starred"]);
    let plan_default = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(
        exclusion(&plan_default, "[Gmail]/All Mail"),
        Some(&Exclusion::Virtual(All))
    );
    assert_eq!(
        exclusion(&plan_default, "[Google Mail]/Starred"),
        Some(&Exclusion::Virtual(Flagged))
    );

    let opts = PlanOptions {
        include_virtual: true,
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    // The destination has no \All folder: the folder keeps its place, with no use to create.
    let e = entry(&plan, "[Gmail]/All Mail");
    assert_eq!(e.target, "[Gmail]/All Mail");
    assert_eq!(e.special_use, None);
    assert_eq!(e.reason, Reason::SameTree);

    // Gmail to Gmail: it lands in the destination's All Mail.
    let gmail = dest(
        folders(
            '/',
            &[("INBOX", &[]), ("[Gmail]/Alle Nachrichten", &["\\All"])],
        ),
        '/',
        "",
    );
    let plan = super::plan(&src, &gmail, &opts).unwrap();
    let e = entry(&plan, "[Gmail]/All Mail");
    assert_eq!(e.target, "[Gmail]/Alle Nachrichten");
    assert_eq!(e.reason, Reason::SpecialUse(All, Detection::LocalizedName));
    assert!(e.exists);
}

// ---------------------------------------------------------------------------------------------
// Localized names

const LOCALIZED: &[(&str, SpecialUse)] = &[
    ("Sent", Sent),
    ("Sent Items", Sent),
    ("Sent Messages", Sent),
    ("Sent Mail", Sent),
    ("Drafts", Drafts),
    ("Draft", Drafts),
    ("Trash", Trash),
    ("Deleted Items", Trash),
    ("Deleted Messages", Trash),
    ("Bin", Trash),
    ("Junk", Junk),
    ("Spam", Junk),
    ("Junk E-mail", Junk),
    ("Junk Email", Junk),
    ("Bulk Mail", Junk),
    ("Archive", Archive),
    ("Archives", Archive),
    // German
    ("Gesendet", Sent),
    ("Gesendete Elemente", Sent),
    ("Gesendete Objekte", Sent),
    ("Entwürfe", Drafts),
    ("Papierkorb", Trash),
    ("Gelöschte Elemente", Trash),
    ("Gelöschte Objekte", Trash),
    ("Junk-E-Mail", Junk),
    ("Archiv", Archive),
    // French
    ("Envoyés", Sent),
    ("Éléments envoyés", Sent),
    ("Messages envoyés", Sent),
    ("Brouillons", Drafts),
    ("Corbeille", Trash),
    ("Éléments supprimés", Trash),
    ("Courrier indésirable", Junk),
    ("Indésirables", Junk),
    // Spanish
    ("Enviados", Sent),
    ("Elementos enviados", Sent),
    ("Borradores", Drafts),
    ("Papelera", Trash),
    ("Elementos eliminados", Trash),
    ("Correo no deseado", Junk),
    ("Archivo", Archive),
    // Italian
    ("Posta inviata", Sent),
    ("Inviata", Sent),
    ("Elementi inviati", Sent),
    ("Bozze", Drafts),
    ("Cestino", Trash),
    ("Posta eliminata", Trash),
    ("Elementi eliminati", Trash),
    ("Posta indesiderata", Junk),
    ("Archivio", Archive),
    // Portuguese
    ("Enviadas", Sent),
    ("Itens enviados", Sent),
    ("Itens Enviados", Sent),
    ("Rascunhos", Drafts),
    ("Lixeira", Trash),
    ("Lixo", Trash),
    ("Itens excluídos", Trash),
    ("Itens eliminados", Trash),
    ("Lixo eletrônico", Junk),
    ("Arquivo", Archive),
    // Russian
    ("Отправленные", Sent),
    ("Черновики", Drafts),
    ("Удаленные", Trash),
    ("Удалённые", Trash),
    ("Корзина", Trash),
    ("Спам", Junk),
    ("Нежелательная почта", Junk),
    ("Архив", Archive),
    // Chinese, simplified
    ("已发送", Sent),
    ("已发送邮件", Sent),
    ("草稿", Drafts),
    ("草稿箱", Drafts),
    ("已删除", Trash),
    ("已删除邮件", Trash),
    ("垃圾邮件", Junk),
    ("归档", Archive),
    // Chinese, traditional
    ("已發送", Sent),
    ("寄件備份", Sent),
    ("已刪除", Trash),
    ("垃圾郵件", Junk),
    ("封存", Archive),
    // Japanese
    ("送信済み", Sent),
    ("送信済みアイテム", Sent),
    ("下書き", Drafts),
    ("ゴミ箱", Trash),
    ("削除済みアイテム", Trash),
    ("迷惑メール", Junk),
    ("アーカイブ", Archive),
    // Korean
    ("보낸편지함", Sent),
    ("보낸 편지함", Sent),
    ("임시보관함", Drafts),
    ("지운편지함", Trash),
    ("휴지통", Trash),
    ("스팸편지함", Junk),
    ("정크 메일", Junk),
    ("보관함", Archive),
];

/// The destination's folder for each use, named so that no source name equals it.
fn attr_dest() -> Destination {
    dest(
        folders(
            '/',
            &[
                ("INBOX", &[]),
                ("X-Sent", &["\\Sent"]),
                ("X-Drafts", &["\\Drafts"]),
                ("X-Trash", &["\\Trash"]),
                ("X-Junk", &["\\Junk"]),
                ("X-Archive", &["\\Archive"]),
            ],
        ),
        '/',
        "",
    )
}

fn attr_dest_name(u: SpecialUse) -> String {
    format!("X-{}{}", u.name()[..1].to_uppercase(), &u.name()[1..])
}

#[test]
fn every_localized_name_is_detected_without_attributes() {
    for (name, u) in LOCALIZED {
        for spelled in [name.to_string(), name.to_uppercase(), name.to_lowercase()] {
            // Top level on a `/` server, and under the `INBOX.` prefix on a `.` server.
            for (src, sname) in [
                (plain('/', &["INBOX", &spelled]), spelled.clone()),
                (
                    plain('.', &["INBOX", &format!("INBOX.{spelled}")]),
                    format!("INBOX.{spelled}"),
                ),
            ] {
                let plan = super::plan(&src, &attr_dest(), &mapping()).unwrap();
                let e = entry(&plan, &sname);
                assert_eq!(e.target, attr_dest_name(*u), "{sname}");
                assert_eq!(
                    e.reason,
                    Reason::SpecialUse(*u, Detection::LocalizedName),
                    "{sname}"
                );
            }
        }
    }
}

#[test]
fn every_localized_name_is_found_on_the_destination() {
    for (name, u) in LOCALIZED {
        let src = folders('/', &[("INBOX", &[]), ("S", &[u.attribute()])]);
        let d = dest(
            plain('.', &["INBOX", &format!("INBOX.{name}")]),
            '.',
            "INBOX.",
        );
        let plan = super::plan(&src, &d, &mapping()).unwrap();
        let e = entry(&plan, "S");
        assert_eq!(e.target, format!("INBOX.{name}"));
        assert!(e.exists);
    }
}

#[test]
fn localized_names_only_count_at_the_top() {
    let src = plain(
        '/',
        &[
            "INBOX",
            "Clients/Sent",
            "INBOX/Trash",
            "Projects/Archive/2019",
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "Clients/Sent"), "Clients/Sent");
    assert_eq!(entry(&plan, "Clients/Sent").reason, Reason::SameTree);
    assert_eq!(target(&plan, "INBOX/Trash"), "INBOX/Trash");
    assert_eq!(
        target(&plan, "Projects/Archive/2019"),
        "Projects/Archive/2019"
    );
    // Near misses: accents are strict, and extra words do not match.
    let src = plain('/', &["INBOX", "Envoyes", "Sent Items Old"]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "Envoyes"), "Envoyes");
    assert_eq!(target(&plan, "Sent Items Old"), "Sent Items Old");
}

#[test]
fn attributes_count_at_any_depth() {
    let src = folders('/', &[("INBOX", &[]), ("Mail/Outbox Copy", &["\\Sent"])]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "Mail/Outbox Copy"), "Sent");
}

// ---------------------------------------------------------------------------------------------
// Special-use competition, children, merges

#[test]
fn subfolders_follow_a_mapped_parent() {
    let src = plain(
        '.',
        &[
            "INBOX",
            "INBOX.Sent Items",
            "INBOX.Sent Items.2019",
            "INBOX.Sent Items.2019.Q1",
            "INBOX.Deleted Items.Old",
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX.Sent Items.2019"), "Sent/2019");
    assert_eq!(target(&plan, "INBOX.Sent Items.2019.Q1"), "Sent/2019/Q1");
    assert_eq!(
        entry(&plan, "INBOX.Sent Items.2019").reason,
        Reason::FollowsParent("INBOX.Sent Items".into())
    );
    assert_eq!(entry(&plan, "INBOX.Sent Items.2019").special_use, None);
    // The parent is not listed at all: its name is not a mapped folder, so nothing to follow.
    assert_eq!(
        target(&plan, "INBOX.Deleted Items.Old"),
        "Deleted Items/Old"
    );
}

#[test]
fn subfolders_follow_onto_an_outlook_destination() {
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Sent/2019", &[])],
    );
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent/2019"), "INBOX.Sent Items.2019");
    assert!(!entry(&plan, "Sent/2019").exists);
    assert_eq!(
        entry(&plan, "Sent/2019").target_raw,
        "INBOX.Sent Items.2019"
    );
}

#[test]
fn attribute_beats_name_and_the_other_keeps_its_place() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent Items", &[]),
            ("Sent", &["\\Sent"]),
            ("Sent Items/2018", &[]),
        ],
    );
    let d = dest(
        folders('/', &[("INBOX", &[]), ("Gesendet", &["\\Sent"])]),
        '/',
        "",
    );
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent"), "Gesendet");
    assert_eq!(target(&plan, "Sent Items"), "Sent Items");
    assert_eq!(entry(&plan, "Sent Items").reason, Reason::SameTree);
    assert_eq!(entry(&plan, "Sent Items").special_use, None);
    assert_eq!(target(&plan, "Sent Items/2018"), "Sent Items/2018");
    assert!(has_note(
        &plan,
        "`Sent Items` also looks like the sent folder"
    ));
}

#[test]
fn first_listed_wins_between_names() {
    let src = plain('/', &["INBOX", "Trash", "Deleted Items"]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "Trash"), "Trash");
    assert_eq!(target(&plan, "Deleted Items"), "Deleted Items");
    assert!(has_note(
        &plan,
        "`Deleted Items` also looks like the trash folder"
    ));
}

#[test]
fn special_use_merge_when_the_other_sits_on_the_destination_folder() {
    // Source: a real \Sent folder and an old "Sent Items"; destination sent folder is
    // "Sent Items". Both land there: the documented special-use merge.
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Sent Items", &[])],
    );
    let d = dest(
        folders('/', &[("INBOX", &[]), ("Sent Items", &["\\Sent"])]),
        '/',
        "",
    );
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    let a = entry(&plan, "Sent");
    let b = entry(&plan, "Sent Items");
    assert_eq!(a.target, "Sent Items");
    assert_eq!(b.target, "Sent Items");
    assert_eq!(a.reason, Reason::SpecialUse(Sent, Detection::Attribute));
    assert_eq!(b.reason, Reason::SpecialUse(Sent, Detection::LocalizedName));
    assert!(has_note(&plan, "merged"));
    assert!(!has_note(&plan, "keeps its own place"));
}

// ---------------------------------------------------------------------------------------------
// INBOX and prefixes

#[test]
fn inbox_children_stay_under_inbox() {
    let src = plain(
        '/',
        &["INBOX", "INBOX/Sub", "INBOX/Sub/Deeper", "inbox/Lower"],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX/Sub"), "INBOX/Sub");
    assert_eq!(target(&plan, "INBOX/Sub/Deeper"), "INBOX/Sub/Deeper");
    assert_eq!(target(&plan, "inbox/Lower"), "INBOX/Lower");
    assert!(!has_note(&plan, "detected"));

    // Onto an `INBOX.` destination, INBOX's children are its top-level folders.
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX/Sub"), "INBOX.Sub");
    assert_eq!(target(&plan, "INBOX/Sub/Deeper"), "INBOX.Sub.Deeper");
}

#[test]
fn source_prefix_detection_and_override() {
    // Not every folder is under INBOX.: no prefix, INBOX.X stays a child of INBOX.
    let src = plain('.', &["INBOX", "INBOX.X", "Top"]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX.X"), "INBOX/X");
    assert_eq!(target(&plan, "Top"), "Top");

    // The caller knows better (NAMESPACE said there is no prefix).
    let src = plain('.', &["INBOX", "INBOX.X"]);
    let opts = PlanOptions {
        source_prefix: Some(String::new()),
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    assert_eq!(target(&plan, "INBOX.X"), "INBOX/X");

    // An explicit prefix on a `/` server (Cyrus with unixhierarchysep).
    let src = plain('/', &["INBOX", "INBOX/Work", "Shared/Stuff"]);
    let opts = PlanOptions {
        source_prefix: Some("INBOX/".into()),
        ..mapping()
    };
    let plan = super::plan(&src, &outlook_dest(true), &opts).unwrap();
    assert_eq!(target(&plan, "INBOX/Work"), "INBOX.Work");
    assert_eq!(target(&plan, "Shared/Stuff"), "INBOX.Shared.Stuff");
}

#[test]
fn destination_prefix_gets_its_separator() {
    let src = plain('/', &["INBOX", "Work"]);
    let d = dest(plain('.', &["INBOX"]), '.', "INBOX");
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(target(&plan, "Work"), "INBOX.Work");
    assert!(has_note(&plan, "taken as `INBOX.`"));

    let d = dest(plain('.', &["INBOX"]), '.', "INBOX..");
    assert_eq!(
        plan_err(&src, &d, &mapping()),
        PlanError::InvalidPrefix {
            prefix: "INBOX..".into()
        }
    );
}

fn plan_err(src: &[Folder], d: &Destination, opts: &PlanOptions) -> PlanError {
    match super::plan(src, d, opts) {
        Ok(p) => panic!("expected an error, got:\n{}", p.render()),
        Err(e) => e,
    }
}

#[test]
fn flat_source_without_delimiter() {
    let mut f = folder("a/b", '/', &[]);
    f.delimiter = None;
    let src = vec![folder("INBOX", '/', &[]), f];
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "a/b"), "a%2Fb");
    assert_eq!(entry(&plan, "a/b").reason, Reason::Escaped);
}

// ---------------------------------------------------------------------------------------------
// Unified mode

fn unified(root: &str, address: &str) -> PlanOptions {
    PlanOptions {
        mode: Mode::Unified {
            root: root.into(),
            address: address.into(),
        },
        ..PlanOptions::default()
    }
}

#[test]
fn unified_with_root() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent Items", &["\\Sent"]),
            ("Sent Items/2019", &[]),
        ],
    );
    let plan = super::plan(
        &src,
        &dovecot_dest(),
        &unified("Migrated", "user@old.example"),
    )
    .unwrap();
    assert_eq!(target(&plan, "INBOX"), "Migrated/user@old.example/INBOX");
    assert_eq!(
        target(&plan, "Sent Items"),
        "Migrated/user@old.example/Sent Items"
    );
    assert_eq!(
        target(&plan, "Sent Items/2019"),
        "Migrated/user@old.example/Sent Items/2019"
    );
    assert!(plan.entries.iter().all(|e| e.reason == Reason::Unified));
    assert!(plan.entries.iter().all(|e| e.special_use.is_none()));
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
}

#[test]
fn unified_without_root_and_nested_root() {
    let src = plain('.', &["INBOX", "INBOX.Work"]);
    let plan = super::plan(&src, &dovecot_dest(), &unified("", "user@old.example")).unwrap();
    assert_eq!(target(&plan, "INBOX"), "user@old.example/INBOX");
    // The Courier prefix is stripped in unified mode too.
    assert_eq!(target(&plan, "INBOX.Work"), "user@old.example/Work");

    let plan = super::plan(&src, &dovecot_dest(), &unified("Old/2024", "u@x")).unwrap();
    assert_eq!(target(&plan, "INBOX.Work"), "Old/2024/u@x/Work");
}

#[test]
fn unified_on_a_dot_destination_escapes_the_address_once() {
    let src = plain('/', &["INBOX", "Sent", "A/B"]);
    let plan = super::plan(
        &src,
        &outlook_dest(true),
        &unified("Migrated", "user@old.example"),
    )
    .unwrap();
    assert_eq!(
        target(&plan, "INBOX"),
        "INBOX.Migrated.user@old%2Eexample.INBOX"
    );
    assert_eq!(
        target(&plan, "A/B"),
        "INBOX.Migrated.user@old%2Eexample.A.B"
    );
    let notes: Vec<_> = plan
        .notes
        .iter()
        .filter(|n| n.contains("user@old%2Eexample"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        unescape_segment("user@old%2Eexample").unwrap(),
        "user@old.example"
    );
}

#[test]
fn unified_options_are_validated() {
    let src = plain('/', &["INBOX"]);
    assert_eq!(
        plan_err(&src, &dovecot_dest(), &unified("a//b", "u@x")),
        PlanError::InvalidRoot {
            root: "a//b".into()
        }
    );
    assert_eq!(
        plan_err(&src, &dovecot_dest(), &unified("/a", "u@x")),
        PlanError::InvalidRoot { root: "/a".into() }
    );
    assert_eq!(
        plan_err(&src, &dovecot_dest(), &unified("a", "")),
        PlanError::EmptyAddress
    );
}

#[test]
fn unified_with_renames_and_virtual_exclusion() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Old", &[]),
            ("Old/Sub", &[]),
            ("All", &["\\All"]),
        ],
    );
    let opts = PlanOptions {
        renames: vec![("Old".into(), "New/Name".into())],
        ..unified("M", "u@x")
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    assert_eq!(target(&plan, "Old/Sub"), "M/u@x/New/Name/Sub");
    assert_eq!(entry(&plan, "Old").reason, Reason::Rename);
    assert_eq!(exclusion(&plan, "All"), Some(&Exclusion::Virtual(All)));
}

// ---------------------------------------------------------------------------------------------
// Filters

#[test]
fn include_and_exclude_patterns() {
    let src = plain(
        '.',
        &[
            "INBOX",
            "INBOX.Archive",
            "INBOX.Archive.2019",
            "INBOX.Archive.2019.Q1",
            "INBOX.Work",
        ],
    );
    let opts = PlanOptions {
        exclude: vec!["Archive/**".into()],
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    assert_eq!(target(&plan, "INBOX.Archive"), "Archive");
    assert_eq!(
        exclusion(&plan, "INBOX.Archive.2019"),
        Some(&Exclusion::ExcludePattern("Archive/**".into()))
    );
    assert!(exclusion(&plan, "INBOX.Archive.2019.Q1").is_some());

    // Excluding the parent alone keeps its children (they still follow it).
    let opts = PlanOptions {
        exclude: vec!["Archive".into()],
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    assert!(exclusion(&plan, "INBOX.Archive").is_some());
    assert_eq!(target(&plan, "INBOX.Archive.2019"), "Archive/2019");

    let opts = PlanOptions {
        include: vec!["INBOX".into(), "Work{,/**}".into()],
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    let copied: Vec<_> = plan
        .entries
        .iter()
        .map(|e| e.source.name.as_str())
        .collect();
    assert_eq!(copied, ["INBOX", "INBOX.Work"]);
    assert_eq!(
        exclusion(&plan, "INBOX.Archive"),
        Some(&Exclusion::IncludeMissed)
    );
}

#[test]
fn invalid_pattern_is_an_error() {
    let opts = PlanOptions {
        include: vec!["[".into()],
        ..mapping()
    };
    let err = plan_err(&plain('/', &["INBOX"]), &dovecot_dest(), &opts);
    assert!(matches!(err, PlanError::InvalidPattern { pattern, .. } if pattern == "["));
}

#[test]
fn exclude_special_uses_name_detection_and_takes_subfolders() {
    let src = plain(
        '/',
        &["INBOX", "Papierkorb", "Papierkorb/Alt", "Junk", "Work"],
    );
    let opts = PlanOptions {
        exclude_special: vec![Trash, Junk],
        ..mapping()
    };
    let plan = super::plan(&src, &dovecot_dest(), &opts).unwrap();
    assert_eq!(
        exclusion(&plan, "Papierkorb"),
        Some(&Exclusion::SpecialUse(Trash))
    );
    assert_eq!(
        exclusion(&plan, "Papierkorb/Alt"),
        Some(&Exclusion::SpecialUse(Trash))
    );
    assert_eq!(exclusion(&plan, "Junk"), Some(&Exclusion::SpecialUse(Junk)));
    assert_eq!(plan.entries.len(), 2);
}

#[test]
fn not_selectable_folders_are_excluded_but_their_children_go() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Parent", &["\\Noselect"]),
            ("Parent/Child", &[]),
        ],
    );
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(exclusion(&plan, "Parent"), Some(&Exclusion::NotSelectable));
    assert_eq!(target(&plan, "Parent/Child"), "Parent/Child");
}

#[test]
fn duplicates_are_planned_once() {
    let src = plain('/', &["INBOX", "A", "A"]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(plan.entries.len(), 2);
    assert_eq!(exclusion(&plan, "A"), Some(&Exclusion::Duplicate));
}

// ---------------------------------------------------------------------------------------------
// Renames

#[test]
fn renames_carry_children_and_come_first() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Old Name", &[]),
            ("Old Name/Sub", &[]),
            ("Sent", &["\\Sent"]),
            ("Sent/2019", &[]),
            ("Misc", &[]),
        ],
    );
    let opts = PlanOptions {
        renames: vec![
            ("Old Name".into(), "New/Name".into()),
            ("Sent".into(), "Old Sent".into()),
            ("Misc".into(), "inbox/Misc".into()),
            ("Nowhere".into(), "X".into()),
        ],
        ..mapping()
    };
    let plan = super::plan(&src, &outlook_dest(true), &opts).unwrap();
    assert_eq!(target(&plan, "Old Name"), "INBOX.New.Name");
    assert_eq!(target(&plan, "Old Name/Sub"), "INBOX.New.Name.Sub");
    // The rename beats the special use, and the children go along.
    assert_eq!(target(&plan, "Sent"), "INBOX.Old Sent");
    assert_eq!(target(&plan, "Sent/2019"), "INBOX.Old Sent.2019");
    assert_eq!(entry(&plan, "Sent").special_use, None);
    assert_eq!(entry(&plan, "Sent/2019").reason, Reason::Rename);
    // A rename under INBOX on an `INBOX.` destination.
    assert_eq!(target(&plan, "Misc"), "INBOX.Misc");
    assert!(has_note(&plan, "rename `Nowhere` = `X` matched no"));
}

#[test]
fn rename_onto_a_dot_destination_escapes_dots() {
    let src = plain('/', &["INBOX", "A"]);
    let opts = PlanOptions {
        renames: vec![("A".into(), "Projects/v1.2".into())],
        ..mapping()
    };
    let plan = super::plan(&src, &outlook_dest(true), &opts).unwrap();
    assert_eq!(target(&plan, "A"), "INBOX.Projects.v1%2E2");
    assert_eq!(entry(&plan, "A").reason, Reason::Rename);
    assert!(has_note(&plan, "`v1.2` is written `v1%2E2`"));
}

#[test]
fn invalid_renames_are_errors() {
    let src = plain('/', &["INBOX"]);
    for (from, to) in [("", "x"), ("a", ""), ("a", "b//c"), ("a/", "b")] {
        let opts = PlanOptions {
            renames: vec![(from.into(), to.into())],
            ..mapping()
        };
        let err = plan_err(&src, &dovecot_dest(), &opts);
        assert!(
            matches!(err, PlanError::InvalidRename { .. }),
            "{from}={to}: {err}"
        );
    }
    let opts = PlanOptions {
        renames: vec![("a".into(), "b".into()), ("a".into(), "c".into())],
        ..mapping()
    };
    let err = plan_err(&src, &dovecot_dest(), &opts);
    assert!(err.to_string().contains("more than once"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Escaping

#[test]
fn names_the_destination_cannot_hold_are_escaped_reversibly() {
    let src = plain(
        '/',
        &[
            "INBOX",
            "v1.2",
            "v1.2/notes",
            "Q*",
            "100%",
            " padded ",
            "tab\there",
            "a%2Eb",
        ],
    );
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    let expect = [
        ("v1.2", "INBOX.v1%2E2"),
        ("v1.2/notes", "INBOX.v1%2E2.notes"),
        ("Q*", "INBOX.Q%2A"),
        ("100%", "INBOX.100%25"),
        (" padded ", "INBOX.%20padded%20"),
        ("tab\there", "INBOX.tab%09here"),
        ("a%2Eb", "INBOX.a%252Eb"),
    ];
    for (s, t) in expect {
        assert_eq!(target(&plan, s), t);
        // Round trip: each destination segment unescapes to the source segment.
        let back: Vec<String> = t
            .strip_prefix("INBOX.")
            .unwrap()
            .split('.')
            .map(|seg| unescape_segment(seg).unwrap().into_owned())
            .collect();
        assert_eq!(back.join("/"), s);
    }
    assert_eq!(entry(&plan, "v1.2").reason, Reason::Escaped);
    // The raw name is the modified UTF-7 of the escaped name.
    assert_eq!(entry(&plan, "v1.2").target_raw, "INBOX.v1%2E2");
    // One note for `v1.2`, none repeated for its child.
    assert_eq!(
        plan.notes.iter().filter(|n| n.contains("`v1.2`")).count(),
        1,
        "{:?}",
        plan.notes
    );
    assert!(has_note(&plan, "hierarchy separator"));
    assert!(has_note(&plan, "wildcards"));
    // The same names are fine on a `/` destination, except the wildcards and spaces.
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "v1.2"), "v1.2");
    assert_eq!(entry(&plan, "v1.2").reason, Reason::SameTree);
    assert_eq!(target(&plan, "Q*"), "Q%2A");
}

#[test]
fn escaped_child_of_a_mapped_parent_is_noted() {
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Sent/a.b", &[])],
    );
    let plan = super::plan(&src, &outlook_dest(true), &mapping()).unwrap();
    assert_eq!(target(&plan, "Sent/a.b"), "INBOX.Sent Items.a%2Eb");
    assert_eq!(
        entry(&plan, "Sent/a.b").reason,
        Reason::FollowsParent("Sent".into())
    );
    assert!(has_note(
        &plan,
        "`Sent/a.b` stored as `INBOX.Sent Items.a%2Eb`"
    ));
}

#[test]
fn empty_segments_are_escaped() {
    let src = plain('/', &["INBOX", "a//b", "trailing/"]);
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    assert_eq!(target(&plan, "a//b"), "a/%FF/b");
    assert_eq!(target(&plan, "trailing/"), "trailing/%FF");
}

// ---------------------------------------------------------------------------------------------
// Collisions

#[test]
fn inbox_and_a_folder_named_inbox_collide() {
    let src = plain('.', &["INBOX", "INBOX.Inbox"]);
    let err = plan_err(&src, &dovecot_dest(), &mapping());
    assert_eq!(
        err,
        PlanError::Collision {
            a: "INBOX".into(),
            b: "INBOX.Inbox".into(),
            target: "INBOX".into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("`INBOX`") && msg.contains("`INBOX.Inbox`") && msg.contains("rename"));
}

#[test]
fn inbox_child_and_top_level_collide_on_a_dot_inbox_destination() {
    let src = plain('/', &["INBOX", "Sub", "INBOX/Sub"]);
    let err = plan_err(&src, &outlook_dest(true), &mapping());
    assert_eq!(
        err,
        PlanError::Collision {
            a: "Sub".into(),
            b: "INBOX/Sub".into(),
            target: "INBOX.Sub".into()
        }
    );
    // A rename resolves it.
    let opts = PlanOptions {
        renames: vec![("INBOX/Sub".into(), "Sub from INBOX".into())],
        ..mapping()
    };
    let plan = super::plan(&src, &outlook_dest(true), &opts).unwrap();
    assert_eq!(target(&plan, "INBOX/Sub"), "INBOX.Sub from INBOX");
}

#[test]
fn a_custom_folder_on_the_destination_sent_folder_collides() {
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Outbox Copy", &[])],
    );
    let d = dest(
        folders('/', &[("INBOX", &[]), ("Outbox Copy", &["\\Sent"])]),
        '/',
        "",
    );
    let err = plan_err(&src, &d, &mapping());
    assert!(
        matches!(&err, PlanError::Collision { a, b, target }
            if a == "Sent" && b == "Outbox Copy" && target == "Outbox Copy"),
        "{err}"
    );
}

#[test]
fn renames_onto_the_same_name_collide() {
    let src = plain('/', &["INBOX", "A", "B"]);
    let opts = PlanOptions {
        renames: vec![("A".into(), "C".into()), ("B".into(), "C".into())],
        ..mapping()
    };
    assert!(matches!(
        plan_err(&src, &dovecot_dest(), &opts),
        PlanError::Collision { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Wire forms, rendering, odd destinations

#[test]
fn raw_names_are_modified_utf7_unless_utf8_is_enabled() {
    let src = plain('/', &["INBOX", "Entwürfe/Alt", "Ünïcode & co"]);
    let d = dest(
        vec![
            folder("INBOX", '/', &[]),
            folder("Entwürfe", '/', &["\\Drafts"]),
        ],
        '/',
        "",
    );
    let plan_7 = super::plan(&src, &d, &mapping()).unwrap();
    let e = entry(&plan_7, "Ünïcode & co");
    assert_eq!(e.target, "Ünïcode & co");
    assert_eq!(e.target_raw, utf7::encode("Ünïcode & co"));
    assert_eq!(utf7::decode(&e.target_raw).unwrap(), e.target);
    assert_eq!(target(&plan_7, "Entwürfe/Alt"), "Entwürfe/Alt");

    let d8 = Destination { utf8: true, ..d };
    let plan_8 = super::plan(&src, &d8, &mapping()).unwrap();
    assert_eq!(entry(&plan_8, "Ünïcode & co").target_raw, "Ünïcode & co");
}

#[test]
fn existing_destination_folders_keep_their_listed_raw_name() {
    let src = folders('/', &[("INBOX", &[]), ("Sent", &["\\Sent"])]);
    let mut sent = folder("Gesendete Objekte", '/', &["\\Sent"]);
    sent.raw = "Gesendete Objekte".into();
    let d = dest(vec![folder("INBOX", '/', &[]), sent], '/', "");
    let plan = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(entry(&plan, "Sent").target_raw, "Gesendete Objekte");
    assert_eq!(entry(&plan, "INBOX").target_raw, "INBOX");
    assert!(entry(&plan, "INBOX").exists);
}

#[test]
fn unsupported_destination_separators_are_refused() {
    let src = plain('/', &["INBOX"]);
    for delim in ['%', '0', 'A', '\n'] {
        let d = dest(vec![], delim, "");
        assert_eq!(
            plan_err(&src, &d, &mapping()),
            PlanError::UnsupportedDelimiter { delimiter: delim }
        );
    }
}

#[test]
fn render_shows_targets_reasons_exclusions_and_notes() {
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("v1.2", &[]),
            ("[Gmail]/All Mail", &["\\All"]),
        ],
    );
    let text = super::plan(&src, &outlook_dest(true), &mapping())
        .unwrap()
        .render();
    assert!(
        text.contains("Folder plan: 3 to copy, 1 not copied"),
        "{text}"
    );
    assert!(
        text.contains("  Sent   ->  INBOX.Sent Items    sent folder"),
        "{text}"
    );
    assert!(text.contains("sent folder (\\Sent attribute)"), "{text}");
    assert!(text.contains("INBOX.v1%2E2 (new)"), "{text}");
    assert!(text.contains("Not copied:"), "{text}");
    assert!(text.contains("virtual folder (\\All)"), "{text}");
    assert!(text.contains("Notes:"), "{text}");
}

#[test]
fn empty_source_gives_an_empty_plan() {
    let plan = super::plan(&[], &dovecot_dest(), &mapping()).unwrap();
    assert!(plan.entries.is_empty() && plan.excluded.is_empty());
    assert!(plan.render().contains("0 to copy"));
}

#[test]
fn planner_is_reusable_across_accounts() {
    let planner = Planner::new(&PlanOptions {
        exclude: vec!["Tmp{,/**}".into()],
        ..mapping()
    })
    .unwrap();
    for _ in 0..3 {
        let plan = planner
            .plan(&plain('/', &["INBOX", "Tmp", "Keep"]), &dovecot_dest())
            .unwrap();
        assert_eq!(plan.entries.len(), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Scale

#[test]
fn twenty_thousand_folders_plan_in_linear_time() {
    // 20,000 folders, 5 deep, on a Courier-style source with many special-use children. A
    // quadratic pass (every folder against every folder) would take minutes here even in
    // release; the linear one takes well under a second in debug.
    let mut names = vec!["INBOX".to_string(), "INBOX.Sent Items".to_string()];
    for i in 0..4_000 {
        names.push(format!("INBOX.P{i}"));
        names.push(format!("INBOX.P{i}.a"));
        names.push(format!("INBOX.P{i}.a.b"));
        names.push(format!("INBOX.P{i}.a.b.c"));
        names.push(format!("INBOX.Sent Items.{i}"));
    }
    let src: Vec<Folder> = names.iter().map(|n| folder(n, '.', &[])).collect();
    let start = Instant::now();
    let plan = super::plan(&src, &dovecot_dest(), &mapping()).unwrap();
    let took = start.elapsed();
    assert_eq!(plan.entries.len(), names.len());
    assert_eq!(target(&plan, "INBOX.Sent Items.3999"), "Sent/3999");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        // Arbitrary text, separators and wildcards included.
        "[a-zA-Z0-9 ./\\\\*%&\u{0}-\u{1f}éü已]{0,12}",
        // Names the rules care about.
        prop::sample::select(vec![
            "INBOX",
            "inbox",
            "Inbox",
            "Sent",
            "Sent Items",
            "Trash",
            "Junk",
            "Drafts",
            "Archive",
            "INBOX.Sent",
            "INBOX/Sent",
            "[Gmail]/All Mail",
            "[Gmail]/Sent Mail",
            "Papierkorb",
            "已发送",
            "a.b",
            "a/b",
            "",
            ".",
            "/",
            "INBOX.",
            "INBOX/",
        ])
        .prop_map(String::from),
        // Trees.
        prop::collection::vec("[a-zA-Z. *]{0,4}", 1..4).prop_map(|segs| segs.join("/")),
    ]
}

fn folder_strategy() -> impl Strategy<Value = Folder> {
    (
        name_strategy(),
        prop::option::of(prop::sample::select(vec!['/', '.', '\\', ':'])),
        prop::sample::select(vec![
            vec![],
            vec!["\\Sent"],
            vec!["\\Trash"],
            vec!["\\All"],
            vec!["\\Noselect"],
            vec!["\\Junk", "\\HasChildren"],
        ]),
    )
        .prop_map(|(name, delim, attrs)| {
            let mut f = folder(&name, delim.unwrap_or('/'), &attrs);
            f.delimiter = delim;
            f
        })
}

fn options_strategy() -> impl Strategy<Value = PlanOptions> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::select(vec!["", "Migrated", "M/2024"]),
        prop::sample::select(vec!["user@old.example", "a/b.c", " x "]),
        prop::option::of(prop::sample::select(vec!["", "INBOX.", "INBOX/"])),
    )
        .prop_map(
            |(unified, include_virtual, root, address, prefix)| PlanOptions {
                mode: if unified {
                    Mode::Unified {
                        root: root.into(),
                        address: address.into(),
                    }
                } else {
                    Mode::Mapping
                },
                include_virtual,
                source_prefix: prefix.map(String::from),
                exclude_special: vec![],
                ..PlanOptions::default()
            },
        )
}

fn dest_strategy() -> impl Strategy<Value = Destination> {
    (
        prop::sample::select(vec!['/', '.', '\\', ':', '^']),
        prop::sample::select(vec!["", "INBOX."]),
        prop::collection::vec(folder_strategy(), 0..6),
        prop::bool::ANY,
    )
        .prop_map(|(delim, prefix, folders, utf8)| {
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("INBOX{delim}")
            };
            Destination {
                folders,
                delimiter: delim,
                personal_prefix: prefix,
                utf8,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_never_panics_and_targets_are_distinct(
        src in prop::collection::vec(folder_strategy(), 0..24),
        d in dest_strategy(),
        opts in options_strategy(),
    ) {
        let result = super::plan(&src, &d, &opts);
        let plan = match result {
            Ok(p) => p,
            // Two folders landing in one place is a legitimate outcome for arbitrary input.
            Err(PlanError::Collision { a, b, .. }) => {
                prop_assert!(src.iter().any(|f| f.name == a) && src.iter().any(|f| f.name == b));
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
        };
        prop_assert_eq!(plan.entries.len() + plan.excluded.len(), src.len());
        let _ = plan.render();
        let mut by_target: HashMap<String, Vec<&PlanEntry>> = HashMap::new();
        for e in &plan.entries {
            prop_assert!(!e.target.is_empty());
            let body = e.target.strip_prefix(d.personal_prefix.as_str()).unwrap_or(&e.target);
            // Names the destination already has are its business; ours must be clean.
            let under_existing = d.folders.iter().any(|f| e.target.starts_with(f.name.as_str()));
            if !under_existing {
                prop_assert!(
                    body.split(d.delimiter).all(|s| !s.is_empty()),
                    "empty segment in {:?}", e.target
                );
                prop_assert!(!e.target.contains('*'), "wildcard in {:?}", e.target);
            }
            if e.exists {
                // An existing folder's raw name is whatever the destination listed.
            } else if d.utf8 {
                prop_assert_eq!(&e.target_raw, &e.target);
            } else {
                let decoded = utf7::decode(&e.target_raw).ok();
                prop_assert_eq!(decoded.as_deref(), Some(e.target.as_str()));
            }
            let key = if e.target.eq_ignore_ascii_case("INBOX") { "INBOX".to_string() } else { e.target.clone() };
            by_target.entry(key).or_default().push(e);
        }
        for (t, group) in by_target {
            if group.len() > 1 {
                // Only the documented special-use merge shares a target.
                let uses: Vec<_> = group.iter().map(|e| match e.reason {
                    Reason::SpecialUse(u, _) => Some(u),
                    _ => None,
                }).collect();
                prop_assert!(
                    uses.iter().all(|u| u.is_some() && *u == uses[0]),
                    "{} shared by {:?}", t, group.iter().map(|e| &e.source.name).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn mapping_a_slash_tree_is_reversible(
        segs in prop::collection::vec(prop::collection::vec("[a-z.*% ]{0,5}", 1..4), 1..12),
    ) {
        // Custom folders (no special names possible: lower-case a-z only rarely spells one,
        // and then it maps elsewhere, which we skip) keep their tree: undoing the escape gives
        // the source name back.
        let names: Vec<String> = segs.iter().map(|s| format!("x{}", s.join("/"))).collect();
        let mut src = vec![folder("INBOX", '/', &[])];
        src.extend(names.iter().map(|n| folder(n, '/', &[])));
        let d = dest(vec![], '.', "INBOX.");
        let Ok(plan) = super::plan(&src, &d, &mapping()) else {
            return Err(TestCaseError::fail("no collisions are possible here"));
        };
        for e in plan.entries.iter().filter(|e| !e.source.is_inbox()) {
            let body = e.target.strip_prefix("INBOX.").unwrap();
            let back: Vec<String> = body
                .split('.')
                .map(|s| unescape_segment(s).unwrap().into_owned())
                .collect();
            prop_assert_eq!(back.join("/"), e.source.name.clone());
        }
    }
}

#[test]
fn destination_attribute_beats_a_misleading_name() {
    // On the destination "Archive" carries `\Sent`: it is the sent folder, and the archive
    // has to be created.
    let src = folders(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("Archive", &["\\Archive"]),
        ],
    );
    let d = dest(
        folders('/', &[("INBOX", &[]), ("Archive", &["\\Sent"])]),
        '/',
        "",
    );
    let err = plan_err(&src, &d, &mapping());
    // Both would land in "Archive": the sent folder by attribute, the archive by its new
    // canonical name. Never merged, because they are different uses.
    assert!(
        matches!(&err, PlanError::Collision { a, b, target }
            if a == "Sent" && b == "Archive" && target == "Archive"),
        "{err}"
    );
}

#[test]
fn gmail_destination_by_attributes() {
    let src = plain('.', &["INBOX", "INBOX.Sent Items", "INBOX.Sent Items.Old"]);
    let gmail = dest(
        folders(
            '/',
            &[
                ("INBOX", &[]),
                ("[Gmail]", &["\\Noselect"]),
                ("[Gmail]/Gesendet", &["\\Sent"]),
            ],
        ),
        '/',
        "",
    );
    let plan = super::plan(&src, &gmail, &mapping()).unwrap();
    assert_eq!(target(&plan, "INBOX.Sent Items"), "[Gmail]/Gesendet");
    assert_eq!(
        target(&plan, "INBOX.Sent Items.Old"),
        "[Gmail]/Gesendet/Old"
    );
}

// ---------------------------------------------------------------------------------------------
// Re-runs: a copied folder keeps its destination

/// The folders a first run created, added to the destination as a server without SPECIAL-USE
/// lists them (no attributes), in reverse order so that list order cannot help.
fn after_first_run(d: &Destination, first: &FolderPlan) -> Destination {
    let mut after = d.clone();
    for e in first.entries.iter().filter(|e| !e.exists) {
        if !after.folders.iter().any(|f| f.name == e.target) {
            after.folders.push(Folder {
                name: e.target.clone(),
                raw: e.target_raw.clone(),
                delimiter: Some(d.delimiter),
                attributes: vec![],
                special_use: None,
            });
        }
    }
    after.folders.reverse();
    after
}

fn earlier_of(plan: &FolderPlan) -> EarlierTargets {
    plan.entries
        .iter()
        .map(|e| (e.source.name.clone(), e.target.clone()))
        .collect()
}

fn plan_after(
    src: &[Folder],
    d: &Destination,
    opts: &PlanOptions,
    earlier: &EarlierTargets,
) -> Result<FolderPlan, PlanError> {
    Planner::new(opts)?.plan_after(src, d, earlier)
}

/// Issue item 1: a Courier-like destination (no SPECIAL-USE) that the first run gave both
/// `INBOX.Drafts` and `INBOX.Entwürfe`.
#[test]
fn courier_rerun_keeps_the_drafts_folder_it_copied_into() {
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Drafts", &["\\Drafts"]), ("Entwürfe", &[])],
    );
    let d = dest(plain('.', &["INBOX"]), '.', "INBOX.");
    let first = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(target(&first, "Drafts"), "INBOX.Drafts");
    assert_eq!(target(&first, "Entwürfe"), "INBOX.Entwürfe");
    let after = dest(
        plain('.', &["INBOX", "INBOX.Entwürfe", "INBOX.Drafts"]),
        '.',
        "INBOX.",
    );

    // Without its history the planner takes the first drafts folder listed: the defect.
    let blind = super::plan(&src, &after, &mapping()).unwrap();
    assert_eq!(target(&blind, "Drafts"), "INBOX.Entwürfe");

    let again = plan_after(&src, &after, &mapping(), &earlier_of(&first)).unwrap();
    assert_eq!(target(&again, "Drafts"), "INBOX.Drafts");
    assert_eq!(target(&again, "Entwürfe"), "INBOX.Entwürfe");
    assert!(matches!(
        entry(&again, "Drafts").reason,
        Reason::SpecialUse(Drafts, Detection::Attribute)
    ));
    assert!(entry(&again, "Drafts").exists && entry(&again, "Entwürfe").exists);
    assert!(
        has_note(
            &again,
            "`INBOX.Drafts` is the destination's drafts folder again"
        ),
        "{:?}",
        again.notes
    );
    assert!(!has_note(&again, "merged"), "{:?}", again.notes);
}

#[test]
fn changed_options_keep_copied_folders_and_name_the_planned_place() {
    let src = folders('/', &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Work", &[])]);
    let d = dovecot_dest();
    let first = super::plan(&src, &d, &mapping()).unwrap();
    let d = after_first_run(&d, &first);
    // The admin switches to unified mode, and a new folder appears on the source.
    let mut src2 = src.clone();
    src2.push(folder("Later", '/', &[]));
    let opts = unified("Migrated", "old@example.org");
    let again = plan_after(&src2, &d, &opts, &earlier_of(&first)).unwrap();
    for (name, kept, planned) in [
        ("INBOX", "INBOX", "Migrated/old@example.org/INBOX"),
        ("Sent", "Sent", "Migrated/old@example.org/Sent"),
        ("Work", "Work", "Migrated/old@example.org/Work"),
    ] {
        let e = entry(&again, name);
        assert_eq!(e.target, kept);
        assert_eq!(
            e.reason,
            Reason::CopiedBefore {
                planned: planned.into()
            }
        );
        assert!(e.exists);
        assert!(
            has_note(&again, &format!("`{name}` stays in `{kept}`")),
            "{:?}",
            again.notes
        );
    }
    // Never copied: goes where the options say.
    assert_eq!(target(&again, "Later"), "Migrated/old@example.org/Later");
    assert!(again.render().contains("copied here before"));

    // With remap the options are followed, and the notes say what moves.
    let remap = PlanOptions {
        remap: true,
        ..opts
    };
    let moved = plan_after(&src2, &d, &remap, &earlier_of(&first)).unwrap();
    assert_eq!(target(&moved, "Work"), "Migrated/old@example.org/Work");
    assert_eq!(entry(&moved, "Work").reason, Reason::Unified);
    assert!(
        has_note(
            &moved,
            "`Work` moves from `Work` to `Migrated/old@example.org/Work`"
        ),
        "{:?}",
        moved.notes
    );
}

#[test]
fn a_copied_folder_gone_from_the_destination_is_planned_anew_in_its_place() {
    let src = plain('/', &["INBOX", "Projects"]);
    let d = dest(plain('/', &["INBOX"]), '/', "");
    let earlier: EarlierTargets = [("INBOX", "INBOX"), ("Projects", "Old/Projects")]
        .into_iter()
        .collect();
    let plan = plan_after(&src, &d, &mapping(), &earlier).unwrap();
    let e = entry(&plan, "Projects");
    assert_eq!(e.target, "Old/Projects");
    assert!(!e.exists, "to be created again");
    assert_eq!(
        e.reason,
        Reason::CopiedBefore {
            planned: "Projects".into()
        }
    );
    assert!(has_note(&plan, "no longer has"), "{:?}", plan.notes);

    // The same when the plan agrees with the record.
    let earlier: EarlierTargets = [("Projects", "Projects")].into_iter().collect();
    let plan = plan_after(&src, &d, &mapping(), &earlier).unwrap();
    assert!(!entry(&plan, "Projects").exists);
    assert_eq!(entry(&plan, "Projects").reason, Reason::SameTree);
    assert!(has_note(&plan, "no longer has"), "{:?}", plan.notes);
}

#[test]
fn a_kept_folder_never_takes_in_another_folder() {
    // `A` was copied into `A`; the admin now renames `A` to `B` and `C` to `A`.
    let src = plain('/', &["INBOX", "A", "C"]);
    let d = dest(plain('/', &["INBOX", "A"]), '/', "");
    let earlier: EarlierTargets = [("A", "A")].into_iter().collect();
    let opts = PlanOptions {
        renames: vec![("A".into(), "B".into()), ("C".into(), "A".into())],
        ..mapping()
    };
    let err = plan_after(&src, &d, &opts, &earlier).unwrap_err();
    assert_eq!(
        err,
        PlanError::Occupied {
            folder: "C".into(),
            target: "A".into(),
            holder: "A".into(),
            planned: "B".into(),
        }
    );
    // Moving `A` as asked lets `C` in: the admin said so.
    let remap = PlanOptions {
        remap: true,
        ..opts
    };
    let plan = plan_after(&src, &d, &remap, &earlier).unwrap();
    assert_eq!(target(&plan, "A"), "B");
    assert_eq!(target(&plan, "C"), "A");
}

#[test]
fn a_kept_drafts_folder_merges_with_a_new_one_of_the_same_use() {
    // The first run had only `Entwürfe`, which went to the destination's `INBOX.Drafts`; now
    // the source also has a `Drafts` with `\Drafts`, which wins the use.
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Drafts", &["\\Drafts"]), ("Entwürfe", &[])],
    );
    let d = dest(plain('.', &["INBOX", "INBOX.Drafts"]), '.', "INBOX.");
    let earlier: EarlierTargets = [("Entwürfe", "INBOX.Drafts")].into_iter().collect();
    let plan = plan_after(&src, &d, &mapping(), &earlier).unwrap();
    assert_eq!(target(&plan, "Drafts"), "INBOX.Drafts");
    assert_eq!(target(&plan, "Entwürfe"), "INBOX.Drafts");
    assert_eq!(
        entry(&plan, "Entwürfe").reason,
        Reason::CopiedBefore {
            planned: "INBOX.Entwürfe".into()
        }
    );
    assert!(has_note(&plan, "special-use merge"), "{:?}", plan.notes);
}

#[test]
fn folders_merged_before_stay_merged() {
    // Both went to `Sent Items` (a special-use merge); now `Sent Items` is renamed away.
    let src = folders(
        '/',
        &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Sent Items", &[])],
    );
    let d = dest(
        folders('/', &[("INBOX", &[]), ("Sent Items", &["\\Sent"])]),
        '/',
        "",
    );
    let first = super::plan(&src, &d, &mapping()).unwrap();
    assert_eq!(target(&first, "Sent"), "Sent Items");
    assert_eq!(target(&first, "Sent Items"), "Sent Items");
    let opts = PlanOptions {
        renames: vec![("Sent Items".into(), "Old Sent".into())],
        ..mapping()
    };
    let again = plan_after(&src, &d, &opts, &earlier_of(&first)).unwrap();
    assert_eq!(target(&again, "Sent"), "Sent Items");
    assert_eq!(target(&again, "Sent Items"), "Sent Items");
    assert_eq!(
        entry(&again, "Sent Items").reason,
        Reason::CopiedBefore {
            planned: "Old Sent".into()
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The guarantee behind re-runs: whatever the first run created on the destination, and
    /// in whatever order the destination lists it, the same options plan every folder where
    /// the first run put it.
    #[test]
    fn a_rerun_plans_every_folder_where_the_first_run_put_it(
        src in prop::collection::vec(folder_strategy(), 0..16),
        d in dest_strategy(),
        opts in options_strategy(),
    ) {
        let Ok(first) = super::plan(&src, &d, &opts) else {
            return Ok(());
        };
        let after = after_first_run(&d, &first);
        let again = plan_after(&src, &after, &opts, &earlier_of(&first));
        let again = match again {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\nfirst:\n{}", first.render()))),
        };
        prop_assert_eq!(again.entries.len(), first.entries.len());
        for (a, b) in first.entries.iter().zip(&again.entries) {
            prop_assert_eq!(&a.source.name, &b.source.name);
            prop_assert_eq!(&a.target, &b.target, "first:\n{}\nagain:\n{}", first.render(), again.render());
            prop_assert!(b.exists);
            // Kept against the plan only where the plan now picks a folder the first run
            // created for another source folder (a virtual folder without a destination
            // folder of its use, say, which then finds one by name).
            if let Reason::CopiedBefore { planned } = &b.reason {
                prop_assert!(
                    first.entries.iter().any(|e| !e.exists && &e.target == planned),
                    "kept against the plan:\nfirst:\n{}\nagain:\n{}", first.render(), again.render()
                );
            }
        }
    }
}
