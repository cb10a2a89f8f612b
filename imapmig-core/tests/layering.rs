//! The layers of `imapmig-core` import only downwards.
//!
//! Every `crate::…` path in the library's sources (in `use` lines and in code, not in comments)
//! is checked against a table of layers: a module may name its own layer's module and any module
//! of a lower layer, never one of its own layer or above. When a type that lower layers need
//! lives in a higher one, the layers form a circle (engine ⇄ source ⇄ sink once did); this test
//! keeps them from coming back. A new module must be given its place in [`LAYERS`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, bottom up. A unit is a top-level module (`engine`) or, where a module's error
/// type sits below the rest of it, a submodule (`imap::error`): the longest unit a path starts
/// with is the one it names.
const LAYERS: &[&[&str]] = &[
    // Words that need nothing else.
    &["utf7", "secret", "failure", "model"],
    // Codecs and pure decisions: IMAP framing and response values, SASL, the folder planner,
    // the message filter.
    &["wire", "sasl", "mapping", "filter"],
    // The IMAP client's error, protocol traces.
    &["imap::error", "trace"],
    // Bodies as byte streams, what reading a store can fail with, connection settings and
    // TCP/TLS.
    &["body", "access", "net"],
    // The databases under the stores (SQLite, PostgreSQL over TLS), then the sync state on them.
    &["db"],
    &["state"],
    // Content fingerprints, Maildir's on-disk format.
    &["fingerprint", "maildir"],
    // The IMAP and POP3 clients.
    &["imap", "pop3"],
    &["source"],
    &["sink"],
    &["engine"],
    &["batch"],
    // One model of a migration and of a task edit, which every face translates into.
    &["config"],
];

/// The crate root may name everything.
const ROOT: &str = "lib";

fn rank(unit: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&unit))
}

/// The unit a `crate::` path names: the longest unit of the table it starts with.
fn unit_of(path: &str) -> String {
    let segments: Vec<&str> = path.split("::").collect();
    for n in (1..=segments.len()).rev() {
        let candidate = segments[..n].join("::");
        if rank(&candidate).is_some() {
            return candidate;
        }
    }
    segments[0].to_string()
}

/// Every path written after `crate::` in `code`, with `use crate::{a::b, c}` groups expanded
/// one level (`a::b`, `c`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `imapmig_core::…` or a word ending in `crate` is not this crate's root.
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                let item = item.trim();
                if !item.is_empty() {
                    out.push(path_prefix(item));
                }
            }
            rest = &group[end..];
        } else {
            out.push(path_prefix(rest));
        }
    }
    out
}

fn path_prefix(s: &str) -> String {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches(':').to_string()
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The unit a source file belongs to, from its path under `src/`.
fn unit_of_file(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    unit_of(&parts.join("::"))
}

/// Code without its comments (`//` to the end of a line, `/* */`) and without the contents
/// of its string literals: a path in a message or a doc comment imports nothing.
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    let mut block = 0usize;
    while let Some(c) = chars.next() {
        if c == '\n' {
            out.push('\n');
            continue;
        }
        if block > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                block -= 1;
            }
            continue;
        }
        if in_string {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_string = false;
                out.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '\'' => {
                // A char literal ('"', '\'', '\u{22}') must not open a string; a lifetime
                // passes through.
                out.push(c);
                let mut look = chars.clone();
                if look.next() == Some('\\') {
                    for n in chars.by_ref() {
                        if n == '\'' {
                            break;
                        }
                    }
                } else if look.next() == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                block += 1;
            }
            _ => out.push(c),
        }
    }
    out
}

/// An import that goes up or sideways: `file:line: unit -> unit (path)`.
fn violations(file_unit: &str, source: &str, file: &str) -> Vec<String> {
    if file_unit == ROOT {
        return Vec::new();
    }
    let Some(own) = rank(file_unit) else {
        return vec![format!(
            "{file}: module `{file_unit}` has no place in the layer table of tests/layering.rs"
        )];
    };
    let mut out = Vec::new();
    for (n, line) in strip_comments(source).lines().enumerate() {
        for path in crate_paths(line) {
            let unit = unit_of(&path);
            if unit == file_unit {
                continue;
            }
            match rank(&unit) {
                Some(r) if r < own => {}
                // `crate::imap` from inside `imap::error` is the unit's own parent: upwards.
                Some(_) => out.push(format!(
                    "{file}:{}: `{file_unit}` (layer {own}) imports `crate::{path}` from `{unit}` (layer {})",
                    n + 1,
                    rank(&unit).unwrap()
                )),
                None => out.push(format!(
                    "{file}:{}: `crate::{path}` names `{unit}`, which has no place in the layer table",
                    n + 1
                )),
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut all = Vec::new();
    let mut units = BTreeSet::new();
    for f in &files {
        let relative = f.strip_prefix(&src).unwrap();
        let unit = unit_of_file(relative);
        units.insert(unit.clone());
        let text = std::fs::read_to_string(f).unwrap();
        all.extend(violations(&unit, &text, &relative.display().to_string()));
    }
    assert!(
        all.is_empty(),
        "imports against the layering:\n{}",
        all.join("\n")
    );
    // Every unit of the table exists, so the table cannot silently rot.
    for unit in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            units.contains(*unit),
            "the layer table names `{unit}`, which is not a module"
        );
    }
}

/// The cycles this crate once had, as the lines that made them: each is refused.
#[test]
fn the_old_cycles_are_refused() {
    let old = [
        // engine owned vocabulary the layers below needed.
        ("source", "use crate::engine::{Account, DateField};"),
        ("sink", "use crate::engine::fingerprint::Fingerprinter;"),
        ("source", "let set = crate::engine::uid_set::format(&uids);"),
        // ErrorKind lived in source, and the sink reached into the source's Maildir store.
        ("imap::error", "use crate::source::ErrorKind;"),
        ("maildir", "use crate::source::maildir::store;"),
        // POP3 borrowed the IMAP transport; body and session imported each other.
        ("net", "use crate::imap::transport::Stream;"),
        ("body", "use crate::imap::conn::Connection;"),
        (
            "fingerprint",
            "pub fn f() -> Result<(), crate::imap::ImapError> {",
        ),
        // Siblings of one layer do not import each other either.
        ("mapping", "use crate::state::StateStore;"),
    ];
    for (unit, line) in old {
        assert!(
            !violations(unit, line, "old.rs").is_empty(),
            "`{line}` in `{unit}` should be refused"
        );
    }
    // What is allowed stays allowed, and comments do not count.
    for (unit, line) in [
        (
            "engine",
            "use crate::{source::AnySource, sink::{AnySink, SinkSpec}};",
        ),
        ("body", "use crate::imap::error::{ImapError, Result};"),
        ("source", "/// See [`crate::engine::migrate`]."),
        ("wire", "let s = \"crate::engine\"; // crate::batch"),
    ] {
        assert_eq!(
            violations(unit, line, "ok.rs"),
            Vec::<String>::new(),
            "`{line}` in `{unit}`"
        );
    }
}

#[test]
fn grouped_imports_are_read_one_by_one() {
    assert_eq!(
        crate_paths("use crate::{a::b::{C, D}, e, f::G as H};"),
        vec!["a::b", "e", "f::G"]
    );
    assert_eq!(
        crate_paths("x: imapmig_core::engine::X"),
        Vec::<String>::new()
    );
    assert_eq!(unit_of("imap::error::ImapError"), "imap::error");
    assert_eq!(unit_of("imap::ImapError"), "imap");
}
