//! Special-use folders recognised by their name, for servers that do not announce RFC 6154
//! attributes (or that clients filled with folders named in the user's language).
//!
//! The table holds the names mail clients and servers really create, in lower case. A name is
//! only ever looked up for a folder at the top of the personal namespace (or directly under
//! Gmail's `[Gmail]` / `[Google Mail]`), never deeper: `Clients/Sent` is a customer's folder, not
//! the sent folder. Matching lower-cases the name with [`str::to_lowercase`] and is otherwise
//! exact: no accent folding (`Envoyes` is not `Envoyés`) and no Unicode normalisation.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::model::SpecialUse;

use SpecialUse::{All, Archive, Drafts, Flagged, Important, Junk, Sent, Trash};

/// Names that mean a special use wherever they sit at the top level.
const NAMES: &[(&str, SpecialUse)] = &[
    // English: Thunderbird, Apple Mail, Outlook/Exchange, Gmail, Yahoo, Outlook.com.
    ("sent", Sent),
    ("sent items", Sent),
    ("sent messages", Sent),
    ("sent mail", Sent),
    ("drafts", Drafts),
    ("draft", Drafts),
    ("trash", Trash),
    ("deleted items", Trash),
    ("deleted messages", Trash),
    ("bin", Trash),
    ("junk", Junk),
    ("spam", Junk),
    ("junk e-mail", Junk),
    ("junk email", Junk),
    ("bulk mail", Junk),
    ("archive", Archive),
    ("archives", Archive),
    // German.
    ("gesendet", Sent),
    ("gesendete elemente", Sent),
    ("gesendete objekte", Sent),
    ("entwürfe", Drafts),
    ("papierkorb", Trash),
    ("gelöschte elemente", Trash),
    ("gelöschte objekte", Trash),
    ("junk-e-mail", Junk),
    ("archiv", Archive),
    // French ("archives" is above).
    ("envoyés", Sent),
    ("éléments envoyés", Sent),
    ("messages envoyés", Sent),
    ("brouillons", Drafts),
    ("corbeille", Trash),
    ("éléments supprimés", Trash),
    ("courrier indésirable", Junk),
    ("indésirables", Junk),
    // Spanish.
    ("enviados", Sent),
    ("elementos enviados", Sent),
    ("borradores", Drafts),
    ("papelera", Trash),
    ("elementos eliminados", Trash),
    ("correo no deseado", Junk),
    ("archivo", Archive),
    // Italian.
    ("posta inviata", Sent),
    ("inviata", Sent),
    ("elementi inviati", Sent),
    ("bozze", Drafts),
    ("cestino", Trash),
    ("posta eliminata", Trash),
    ("elementi eliminati", Trash),
    ("posta indesiderata", Junk),
    ("archivio", Archive),
    // Portuguese (Brazil and Portugal).
    ("enviadas", Sent),
    ("itens enviados", Sent),
    ("rascunhos", Drafts),
    ("lixeira", Trash),
    ("lixo", Trash),
    ("itens excluídos", Trash),
    ("itens eliminados", Trash),
    ("lixo eletrônico", Junk),
    ("arquivo", Archive),
    // Russian (both spellings of "deleted": with е and with ё).
    ("отправленные", Sent),
    ("черновики", Drafts),
    ("удаленные", Trash),
    ("удалённые", Trash),
    ("корзина", Trash),
    ("спам", Junk),
    ("нежелательная почта", Junk),
    ("архив", Archive),
    // Chinese, simplified.
    ("已发送", Sent),
    ("已发送邮件", Sent),
    ("草稿", Drafts),
    ("草稿箱", Drafts),
    ("已删除", Trash),
    ("已删除邮件", Trash),
    ("垃圾邮件", Junk),
    ("归档", Archive),
    // Chinese, traditional ("草稿" is above).
    ("已發送", Sent),
    ("寄件備份", Sent),
    ("已刪除", Trash),
    ("垃圾郵件", Junk),
    ("封存", Archive),
    // Japanese.
    ("送信済み", Sent),
    ("送信済みアイテム", Sent),
    ("下書き", Drafts),
    ("ゴミ箱", Trash),
    ("削除済みアイテム", Trash),
    ("迷惑メール", Junk),
    ("アーカイブ", Archive),
    // Korean (with and without the space Outlook puts in).
    ("보낸편지함", Sent),
    ("보낸 편지함", Sent),
    ("임시보관함", Drafts),
    ("지운편지함", Trash),
    ("휴지통", Trash),
    ("스팸편지함", Junk),
    ("정크 메일", Junk),
    ("보관함", Archive),
];

/// Names that mean a special use only directly under `[Gmail]` / `[Google Mail]`: elsewhere
/// "Important" or "Starred" is just a user's folder. Gmail announces attributes anyway; this is
/// for the occasional proxy or export that drops them.
const GMAIL_NAMES: &[(&str, SpecialUse)] = &[
    ("all mail", All),
    ("starred", Flagged),
    ("important", Important),
];

/// The top-level folders under which Gmail keeps its system folders (`[Google Mail]` is what
/// older German and British accounts show).
const GMAIL_ROOTS: &[&str] = &["[gmail]", "[google mail]"];

static TABLE: LazyLock<HashMap<&'static str, SpecialUse>> =
    LazyLock::new(|| NAMES.iter().copied().collect());

/// Whether `segment` is Gmail's system-folder parent (`[Gmail]`, `[Google Mail]`).
pub(crate) fn is_gmail_root(segment: &str) -> bool {
    GMAIL_ROOTS.iter().any(|r| r.eq_ignore_ascii_case(segment))
}

/// The special use a folder's last name segment stands for. `under_gmail` says whether the
/// folder sits directly under `[Gmail]`, where Gmail's own virtual folders are recognised too.
pub(crate) fn lookup(segment: &str, under_gmail: bool) -> Option<SpecialUse> {
    let lower = segment.to_lowercase();
    if let Some(u) = TABLE.get(lower.as_str()) {
        return Some(*u);
    }
    if under_gmail {
        return GMAIL_NAMES
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, u)| *u);
    }
    None
}

/// The name a new special-use folder gets on a destination that has none. `None` for the
/// virtual uses: nobody creates an "All Mail" folder by hand.
pub(crate) fn canonical_name(special_use: SpecialUse) -> Option<&'static str> {
    match special_use {
        Sent => Some("Sent"),
        Drafts => Some("Drafts"),
        Trash => Some("Trash"),
        Junk => Some("Junk"),
        Archive => Some("Archive"),
        All | Flagged | Important => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_lower_case_and_unambiguous() {
        let mut seen: HashMap<&str, SpecialUse> = HashMap::new();
        for (name, u) in NAMES.iter().chain(GMAIL_NAMES) {
            assert_eq!(
                *name,
                name.to_lowercase(),
                "{name} must be stored lower-case"
            );
            if let Some(prev) = seen.insert(name, *u) {
                assert_eq!(prev, *u, "{name} means two different uses");
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive_but_accent_strict() {
        assert_eq!(lookup("SENT ITEMS", false), Some(Sent));
        assert_eq!(lookup("Éléments envoyés", false), Some(Sent));
        assert_eq!(lookup("Elements envoyes", false), None);
        assert_eq!(lookup("УДАЛЁННЫЕ", false), Some(Trash));
        assert_eq!(lookup("Important", false), None);
        assert_eq!(lookup("Important", true), Some(Important));
        assert_eq!(lookup("All Mail", true), Some(All));
    }

    #[test]
    fn every_mapped_use_has_a_canonical_name() {
        for (_, u) in NAMES {
            assert!(canonical_name(*u).is_some(), "{u:?}");
        }
    }
}
