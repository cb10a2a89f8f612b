//! The header reader against real mail: for every message of the shared corpus
//! (`../shared/corpus`, see its SOURCES.md), how many fields it finds, the `Date:` field, the
//! arrival date (topmost `Received:`, else `Date:`) and the date of the mbox `From ` line the
//! corpus removed, compared with `corpus_dates.tsv`.
//!
//! The expectations were recorded with the hand-written field splitter this module had before
//! it used mail-parser, so a change in what the reader sees in real mail shows up here as a
//! line of difference. After a deliberate change, rewrite the file with
//! `IMAPMIG_BLESS=1 cargo test -p imapmig-core corpus_dates` and review its diff.
//!
//! mail-parser reads every date of the corpus as the old splitter did. One line differs from
//! the old recording, on purpose: `enmime/0044.eml` begins with ` From: ...`; the old splitter
//! took a first line that begins with white space for a continuation of nothing and dropped it,
//! mail-parser reads the field it is (6 fields, not 5). Compared field by field, the values
//! differ otherwise only where the old splitter was wrong or the input is broken: unfolding
//! now keeps the white space before a line break (RFC 5322 §2.2.3 removes only the CRLF; the
//! old splitter trimmed it from a field's first line, in 89 messages), and in 4 damaged
//! headers (`rspamd/0083.eml`: `From` and its colon on two lines) a line with no colon no
//! longer glues the continuation after it to the field before.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{arrival_date, date_field, fields, header_block, MAX_HEADER_BYTES};
use crate::model::InternalDate;
use crate::source::mbox::scan::from_line_date;

const EXPECTED: &str = include_str!("corpus_dates.tsv");

fn corpus_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("../shared/corpus"))
        .find(|dir| dir.join("MANIFEST.tsv").exists())
        .unwrap_or_else(|| {
            panic!(
                "the shared corpus is missing: the tests need ../shared/corpus beside the \
                 repository (looked up from {})",
                here.display()
            )
        })
}

fn shown(date: Option<InternalDate>) -> String {
    date.map_or_else(|| "-".to_string(), |d| d.to_imap())
}

/// One line per corpus message, as `corpus_dates.tsv` holds them.
fn observed() -> String {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let mut out = String::from("path\tfields\tdate\tarrival\tfrom_line\n");
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let path = cols[0];
        let bytes = std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        // As the sources read them: at most MAX_HEADER_BYTES of the head.
        let head = &bytes[..bytes.len().min(MAX_HEADER_BYTES)];
        let f = fields(header_block(head));
        let from_line = cols
            .get(10)
            .filter(|l| !l.is_empty())
            .map(|l| shown(from_line_date(l.as_bytes())))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{path}\t{}\t{}\t{}\t{from_line}",
            f.len(),
            shown(date_field(&f)),
            shown(arrival_date(&f)),
        );
    }
    out
}

#[test]
fn corpus_dates_are_read_as_recorded() {
    let seen = observed();
    if std::env::var_os("IMAPMIG_BLESS").is_some() {
        let file =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/source/headers/corpus_dates.tsv");
        std::fs::write(&file, &seen).expect("write corpus_dates.tsv");
        return;
    }
    let differ: Vec<String> = EXPECTED
        .lines()
        .zip(seen.lines())
        .filter(|(want, got)| want != got)
        .map(|(want, got)| format!("  recorded {want}\n  now      {got}"))
        .collect();
    assert_eq!(
        EXPECTED.lines().count(),
        seen.lines().count(),
        "the corpus and corpus_dates.tsv disagree on the number of messages"
    );
    assert!(
        differ.is_empty(),
        "{} corpus messages are read differently:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
