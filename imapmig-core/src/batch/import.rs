//! Accounts from CSV: reading, and validating every row before anything is imported.
//!
//! Two layouts are read, as admins already have them:
//!
//! * `target,source,password[,target_password]`, with or without a header row;
//! * Microsoft 365's migration batch file `EmailAddress,UserName,Password` (header required):
//!   `EmailAddress` is the target mailbox, `UserName` and `Password` the source login.
//!
//! With a header, columns are found by name in any order and unknown columns are ignored (a note
//! says so). Without one, columns are positional. The delimiter is a comma, or a semicolon or
//! tab when the first line has no comma (spreadsheets in many locales write `;`). A UTF-8 BOM
//! and CRLF line ends are accepted. One line is one row: a quoted value cannot span lines, so a
//! stray quote spoils its own line only. UTF-16 and other non-UTF-8 files are refused with the
//! line where the first bad byte is, since a wrongly decoded password would only fail at login.
//!
//! The source column may hold `admin/user` (log in as the admin, act for user) or `user*master`
//! (Dovecot master user); see [`SourceLogin`]. An empty password means the account waits for
//! credentials.
//!
//! Every problem is a [`RowError`] with the line it is on (1-based, as an editor shows it) and
//! never holds a password. This module is pure: [`parse_accounts`] reads bytes and returns rows
//! and errors; the store imports them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

use super::login::{LoginError, SourceLogin};

/// Which layout a file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvLayout {
    /// `target,source,password[,target_password]`.
    TargetSourcePassword,
    /// Microsoft 365's `EmailAddress,UserName,Password`.
    Microsoft365,
}

/// One good row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// The line it starts on.
    pub line: u64,
    /// The destination mailbox (an address).
    pub target: String,
    /// The source login.
    pub source: SourceLogin,
    /// The source password or token; `None` when the cell was empty.
    pub password: Option<Secret>,
    /// The destination password or token, for destinations where each account logs in itself.
    pub target_password: Option<Secret>,
}

/// What is wrong with one row.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowProblem {
    /// A required cell is missing or empty.
    MissingColumn {
        /// The column's name.
        column: &'static str,
    },
    /// More cells than the layout has (without a header).
    TooManyColumns {
        /// How many were found.
        found: usize,
        /// How many the layout has at most.
        expected: usize,
    },
    /// The target is not an e-mail address.
    NotAnAddress {
        /// The column's name.
        column: &'static str,
        /// A short excerpt of the value (never a password).
        value: String,
    },
    /// The source login cannot be used (it quotes a short excerpt of the login).
    BadLogin(LoginError),
    /// A quote was opened and not closed on the same line. A value never spans lines, so the
    /// line is bad and the next line is read as a fresh row.
    UnclosedQuote,
    /// The line is longer than any row can be; it was skipped to its end without being held.
    LineTooLong {
        /// The limit, in bytes ([`MAX_LINE_BYTES`]).
        limit: usize,
    },
    /// Text follows a closing quote (`"abc"def`): a quote inside a value must be doubled.
    TextAfterQuote,
    /// The same source and target were already given.
    Duplicate {
        /// The line of the first.
        first_line: u64,
    },
    /// In mapping mode one target can receive only one source mailbox.
    SharedTarget {
        /// The target.
        target: String,
        /// The source already going there.
        other_source: String,
        /// Its line, when in this file (else it is already in the task).
        other_line: Option<u64>,
    },
    /// The account (same source and target) is already in the task.
    AlreadyInTask,
    /// The destination logs in per account and this row has no target password.
    MissingTargetPassword,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::MissingColumn { column } => write!(f, "the {column} column is missing or empty"),
            RowProblem::TooManyColumns { found, expected } => write!(
                f,
                "{found} columns, expected at most {expected} (target,source,password,target_password); a comma inside a value needs quotes"
            ),
            RowProblem::NotAnAddress { column, value } => {
                write!(f, "{column} {value:?} is not an e-mail address")
            }
            RowProblem::BadLogin(e) => write!(f, "{e}"),
            RowProblem::UnclosedQuote => f.write_str(
                "a quoted value runs over the end of the line: a quote was opened and never closed (a value cannot span lines)",
            ),
            RowProblem::LineTooLong { limit } => write!(
                f,
                "the line is longer than {limit} bytes: no account row is that long, so it was skipped unread"
            ),
            RowProblem::TextAfterQuote => f.write_str(
                "text follows a closing quote: a quote inside a quoted value must be doubled (\"\")",
            ),
            RowProblem::Duplicate { first_line } => {
                write!(f, "the same source and target are already on line {first_line}")
            }
            RowProblem::SharedTarget {
                target,
                other_source,
                other_line,
            } => {
                write!(f, "target {target:?} already receives {other_source:?}")?;
                match other_line {
                    Some(l) => write!(f, " (line {l})")?,
                    None => f.write_str(" (already in the task)")?,
                }
                f.write_str("; in mapping mode two sources cannot share one target (use unified mode)")
            }
            RowProblem::AlreadyInTask => {
                f.write_str("this source and target are already in the task (use update to change them)")
            }
            RowProblem::MissingTargetPassword => f.write_str(
                "the destination logs in per account, but the target_password column is empty",
            ),
        }
    }
}

/// A bad row: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RowError {
    /// The line (1-based).
    pub line: u64,
    /// What is wrong.
    pub problem: RowProblem,
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{}: line {line}: {detail}", path.display())]
    Encoding {
        /// The file.
        path: PathBuf,
        /// The line of the first bad byte.
        line: u64,
        /// What it looks like and what to do.
        detail: String,
    },
    /// The header row names no usable columns.
    #[error("{}: line {line}: {detail}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: u64,
        /// What is missing.
        detail: String,
    },
    /// The file holds no account.
    #[error("{}: no accounts in the file", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// A read file: its good rows and its bad ones.
#[derive(Debug)]
pub struct ParsedCsv {
    /// The layout found.
    pub layout: CsvLayout,
    /// Whether the first row was a header.
    pub header: bool,
    /// The rows that passed validation, in file order.
    pub rows: Vec<AccountRow>,
    /// The rows that did not, in file order.
    pub errors: Vec<RowError>,
    /// Things worth knowing (ignored columns, the delimiter used).
    pub notes: Vec<String>,
}

/// Column positions.
#[derive(Clone, Copy, Debug)]
struct Columns {
    target: usize,
    source: usize,
    password: Option<usize>,
    target_password: Option<usize>,
    /// Without a header: the most cells a row may have.
    max: Option<usize>,
}

const TARGET_NAMES: [&str; 6] = [
    "target",
    "emailaddress",
    "email",
    "destination",
    "target_address",
    "mailbox",
];
const SOURCE_NAMES: [&str; 6] = [
    "source",
    "username",
    "user",
    "login",
    "source_login",
    "source_user",
];
const PASSWORD_NAMES: [&str; 3] = ["password", "source_password", "pass"];
const TARGET_PASSWORD_NAMES: [&str; 2] = ["target_password", "destination_password"];

fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_header_name(name: &str) -> bool {
    let n = normalise(name);
    [
        &TARGET_NAMES[..],
        &SOURCE_NAMES,
        &PASSWORD_NAMES,
        &TARGET_PASSWORD_NAMES,
    ]
    .iter()
    .any(|names| names.contains(&n.as_str()))
}

/// Whether `s` looks like an e-mail address: one `@`, a local part and a domain of labels,
/// nothing a mail system would refuse outright.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.is_empty() || domain.len() > 255 {
        return false;
    }
    let bad_local = |c: char| c.is_whitespace() || c.is_control() || "\"(),:;<>@[\\]".contains(c);
    if local.chars().any(bad_local)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

/// The longest line read. A longer line is a bad row ([`RowProblem::LineTooLong`]) and is
/// skipped to its end without being held: no address, login or password comes near it, and a
/// file must not be able to make the import hold it whole (a 50 MB line once did).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How many characters of a bad value an error quotes.
const EXCERPT_CHARS: usize = 48;

/// A short excerpt of a value for an error: its first characters and its length when it is
/// longer. Never used on a password column.
fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// Lines of a byte stream, ended by CR, LF or CRLF, each held only while it is at most
/// [`MAX_LINE_BYTES`] long; a longer one is read to its end in buffer-sized pieces and dropped.
struct Lines<R> {
    inner: R,
    /// The number of the line returned last (1-based).
    line: u64,
    /// The last line ended with CR: an LF right after it belongs to it.
    after_cr: bool,
    limit: usize,
}

/// One line read by [`Lines`].
enum Line {
    /// The line's bytes are in the caller's buffer, without the line end.
    Text,
    /// The line was longer than the limit; the buffer is empty.
    TooLong,
}

impl<R: std::io::BufRead> Lines<R> {
    fn new(inner: R, limit: usize) -> Lines<R> {
        Lines {
            inner,
            line: 0,
            after_cr: false,
            limit,
        }
    }

    /// The next line and its number, or `None` at the end of the stream.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<(u64, Line)>> {
        buf.clear();
        let mut too_long = false;
        let mut started = false;
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            if std::mem::take(&mut self.after_cr) && avail[0] == b'\n' {
                self.inner.consume(1);
                continue;
            }
            started = true;
            let (piece, used, ended) = match memchr::memchr2(b'\r', b'\n', avail) {
                Some(i) => {
                    self.after_cr = avail[i] == b'\r';
                    (&avail[..i], i + 1, true)
                }
                None => (avail, avail.len(), false),
            };
            if !too_long {
                if buf.len() + piece.len() > self.limit {
                    too_long = true;
                    buf.clear();
                    buf.shrink_to(self.limit);
                } else {
                    buf.extend_from_slice(piece);
                }
            }
            self.inner.consume(used);
            if ended {
                break;
            }
        }
        self.line += 1;
        Ok(Some((
            self.line,
            if too_long { Line::TooLong } else { Line::Text },
        )))
    }
}

/// Checks one line's encoding; returns its text (without a BOM on the first line).
fn decode<'a>(path: &Path, line: u64, bytes: &'a [u8]) -> Result<&'a str, CsvError> {
    let enc = |detail: &str| CsvError::Encoding {
        path: path.to_path_buf(),
        line,
        detail: detail.to_string(),
    };
    let mut body = bytes;
    if line == 1 {
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(enc(
                "the file is UTF-16 (a spreadsheet's \"Unicode text\"): save it as \"CSV UTF-8\"",
            ));
        }
        body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    }
    if memchr::memchr(0, body).is_some() {
        return Err(enc(
            "the file holds NUL bytes (UTF-16 without a byte order mark?): save it as \"CSV UTF-8\"",
        ));
    }
    std::str::from_utf8(body).map_err(|_| {
        enc("not UTF-8 (perhaps Windows-1252 or Latin-1): save the file as \"CSV UTF-8\" so that names and passwords keep their characters")
    })
}

/// The delimiter, from the first line that holds a row.
fn delimiter(first: &str) -> u8 {
    if first.contains(',') {
        b','
    } else if first.contains(';') {
        b';'
    } else if first.contains('\t') {
        b'\t'
    } else {
        b','
    }
}

/// Reads and validates the accounts of a CSV file held in memory; see [`read_accounts`].
pub fn parse_accounts(
    path: &Path,
    bytes: &[u8],
    shared_targets: bool,
    target_password_required: bool,
) -> Result<ParsedCsv, CsvError> {
    read_accounts(path, bytes, shared_targets, target_password_required)
}

/// Reads and validates the accounts of a CSV file (see the module documentation), one line at
/// a time: a line is held only while it is at most [`MAX_LINE_BYTES`] long.
///
/// `path` only names the file in errors. `shared_targets` allows several sources to feed one
/// target (unified mode); `target_password_required` makes an empty `target_password` a row
/// error (destinations where each account logs in itself).
pub fn read_accounts(
    path: &Path,
    reader: impl std::io::BufRead,
    shared_targets: bool,
    target_password_required: bool,
) -> Result<ParsedCsv, CsvError> {
    let mut out = ParsedCsv {
        layout: CsvLayout::TargetSourcePassword,
        header: false,
        rows: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let mut delim: Option<u8> = None;
    let mut cols: Option<Columns> = None;
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut by_target: HashMap<String, (String, u64)> = HashMap::new();
    let mut lines = Lines::new(reader, MAX_LINE_BYTES);
    let mut buf = Vec::new();
    loop {
        let next = lines.next_line(&mut buf).map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let Some((line, read)) = next else { break };
        if let Line::TooLong = read {
            out.errors.push(RowError {
                line,
                problem: RowProblem::LineTooLong {
                    limit: MAX_LINE_BYTES,
                },
            });
            continue;
        }
        let text = decode(path, line, &buf)?;
        if text.starts_with('#') || text.trim().is_empty() {
            continue;
        }
        let delim = *delim.get_or_insert_with(|| {
            let d = delimiter(text);
            if d != b',' {
                out.notes
                    .push(format!("the file uses {:?} between values", char::from(d)));
            }
            d
        });
        let record = match split_record(text, delim) {
            Ok(r) => r,
            Err(problem) => {
                out.errors.push(RowError { line, problem });
                continue;
            }
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let columns = match cols {
            Some(c) => c,
            None => {
                // A header names columns and holds no address; a first data row always has one.
                let c = if record.iter().any(|n| is_header_name(n))
                    && !record.iter().any(|n| is_address(n.trim()))
                {
                    out.header = true;
                    header_columns(path, line, &record, &mut out)?
                } else {
                    Columns {
                        target: 0,
                        source: 1,
                        password: Some(2),
                        target_password: Some(3),
                        max: Some(4),
                    }
                };
                cols = Some(c);
                if out.header {
                    continue;
                }
                c
            }
        };
        match row(&record, line, columns, target_password_required) {
            Ok(r) => {
                let key = (
                    r.source.mailbox().to_ascii_lowercase(),
                    r.target.to_ascii_lowercase(),
                );
                if let Some(first) = seen.get(&key) {
                    out.errors.push(RowError {
                        line,
                        problem: RowProblem::Duplicate { first_line: *first },
                    });
                    continue;
                }
                if !shared_targets {
                    match by_target.get(&key.1) {
                        Some((other, other_line)) if other.to_ascii_lowercase() != key.0 => {
                            out.errors.push(RowError {
                                line,
                                problem: RowProblem::SharedTarget {
                                    target: r.target.clone(),
                                    other_source: other.clone(),
                                    other_line: Some(*other_line),
                                },
                            });
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            by_target.insert(key.1.clone(), (r.source.mailbox().to_string(), line));
                        }
                    }
                }
                seen.insert(key, line);
                out.rows.push(r);
            }
            Err(problem) => out.errors.push(RowError { line, problem }),
        }
    }
    if out.rows.is_empty() && out.errors.is_empty() {
        return Err(CsvError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

fn header_columns(
    path: &Path,
    line: u64,
    record: &[String],
    out: &mut ParsedCsv,
) -> Result<Columns, CsvError> {
    let names: Vec<String> = record.iter().map(|n| normalise(n)).collect();
    let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
    let m365 = names.iter().any(|n| n == "emailaddress") && names.iter().any(|n| n == "username");
    if m365 {
        out.layout = CsvLayout::Microsoft365;
    }
    let header = |detail: String| CsvError::Header {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let target = find(&TARGET_NAMES).ok_or_else(|| {
        header(format!(
            "the header has no target column (one of {}); found {}",
            TARGET_NAMES.join(", "),
            excerpt(&record.join(", "))
        ))
    })?;
    let source = find(&SOURCE_NAMES).ok_or_else(|| {
        header(format!(
            "the header has no source column (one of {}); found {}",
            SOURCE_NAMES.join(", "),
            excerpt(&record.join(", "))
        ))
    })?;
    let password = find(&PASSWORD_NAMES);
    let target_password = find(&TARGET_PASSWORD_NAMES);
    let used = [Some(target), Some(source), password, target_password];
    let ignored: Vec<&str> = record
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(&Some(*i)))
        .map(|(_, n)| n.as_str())
        .collect();
    if !ignored.is_empty() {
        out.notes
            .push(format!("ignored columns: {}", ignored.join(", ")));
    }
    if password.is_none() {
        out.notes
            .push("no password column: every account waits for credentials".into());
    }
    Ok(Columns {
        target,
        source,
        password,
        target_password,
        max: None,
    })
}

fn row(
    record: &[String],
    line: u64,
    c: Columns,
    target_password_required: bool,
) -> Result<AccountRow, RowProblem> {
    if let Some(max) = c.max {
        // Trailing empty cells (a spreadsheet's "a,b,c,,") are harmless.
        let used = (0..record.len())
            .rev()
            .find(|i| !record[*i].is_empty())
            .map_or(0, |i| i + 1);
        if used > max {
            return Err(RowProblem::TooManyColumns {
                found: used,
                expected: max,
            });
        }
    }
    let cell = |i: usize| record.get(i).map_or("", String::as_str);
    let target = cell(c.target).trim();
    if target.is_empty() {
        return Err(RowProblem::MissingColumn { column: "target" });
    }
    if !is_address(target) {
        return Err(RowProblem::NotAnAddress {
            column: "target",
            value: excerpt(target),
        });
    }
    let source_text = cell(c.source);
    if source_text.trim().is_empty() {
        return Err(RowProblem::MissingColumn { column: "source" });
    }
    let source = SourceLogin::parse(source_text).map_err(|e| {
        RowProblem::BadLogin(match e {
            LoginError::BadCharacter(v) => LoginError::BadCharacter(excerpt(&v)),
            LoginError::BadForm(v) => LoginError::BadForm(excerpt(&v)),
            other => other,
        })
    })?;
    // Passwords are taken as written: leading and trailing spaces can be part of one.
    let secret = |i: Option<usize>| {
        i.map(cell)
            .filter(|p| !p.is_empty())
            .map(|p| Secret::new(p.to_string()))
    };
    let password = secret(c.password);
    let target_password = secret(c.target_password);
    if target_password_required && target_password.is_none() {
        return Err(RowProblem::MissingTargetPassword);
    }
    Ok(AccountRow {
        line,
        target: target.to_string(),
        source,
        password,
        target_password,
    })
}

/// Splits one line into values: RFC 4180 quoting (`""` for a quote inside a quoted value),
/// except that a quoted value never spans lines: no address, login or password holds a line
/// break, and a stray quote must cost its own line, never every line after it. (The `csv`
/// crate is not used: its positions drift with CRLF and blank lines, and it lets a quote run
/// on to the end of the file.)
fn split_record(line: &str, delim: u8) -> Result<Vec<String>, RowProblem> {
    let t = line.as_bytes();
    let mut at = 0;
    let mut fields = Vec::new();
    loop {
        if t.get(at) == Some(&b'"') {
            at += 1;
            let mut value = String::new();
            loop {
                let Some(q) = memchr::memchr(b'"', &t[at..]).map(|i| at + i) else {
                    return Err(RowProblem::UnclosedQuote);
                };
                // Quotes and delimiters are ASCII, so these are char boundaries.
                value.push_str(&line[at..q]);
                at = q + 1;
                if t.get(at) == Some(&b'"') {
                    value.push('"');
                    at += 1;
                } else {
                    break;
                }
            }
            fields.push(value);
            match t.get(at) {
                None => {}
                Some(b) if *b == delim => {}
                Some(_) => return Err(RowProblem::TextAfterQuote),
            }
        } else {
            let end = memchr::memchr(delim, &t[at..]).map_or(t.len(), |i| at + i);
            fields.push(line[at..end].to_string());
            at = end;
        }
        if at >= t.len() {
            return Ok(fields);
        }
        at += 1; // the delimiter
        if at == t.len() {
            fields.push(String::new());
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> ParsedCsv {
        parse_accounts(Path::new("a.csv"), text, false, false).unwrap()
    }

    fn problems(p: &ParsedCsv) -> Vec<String> {
        p.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn headerless_three_columns() {
        let p = parse(b"u1@new.example,u1@old.example,pw1\nu2@new.example,u2,\n");
        assert!(!p.header);
        assert_eq!(p.rows.len(), 2, "{:?}", problems(&p));
        assert_eq!(p.rows[0].password.as_ref().map(Secret::expose), Some("pw1"));
        assert_eq!(p.rows[1].password, None);
        assert_eq!(p.rows[1].line, 2);
    }

    #[test]
    fn header_bom_crlf_and_quotes() {
        let p = parse(
            b"\xEF\xBB\xBFtarget,source,password\r\n\"u1@new.example\",\"u1\",\"p,w \"\"1\"\"\"\r\n\r\nu2@new.example,admin@old.example/u2,secret\r\n",
        );
        assert!(p.header);
        assert_eq!(p.rows.len(), 2, "{:?}", problems(&p));
        assert_eq!(p.rows[0].password.as_ref().unwrap().expose(), "p,w \"1\"");
        assert_eq!(p.rows[1].line, 4);
        assert!(matches!(p.rows[1].source, SourceLogin::Delegate { .. }));
    }

    #[test]
    fn microsoft_365_layout() {
        let p = parse(b"EmailAddress,UserName,Password\nann@contoso.com,ann@old.example,pw\n");
        assert_eq!(p.layout, CsvLayout::Microsoft365);
        assert_eq!(p.rows[0].target, "ann@contoso.com");
        assert_eq!(
            p.rows[0].source,
            SourceLogin::User("ann@old.example".into())
        );
        // Columns in another order, extra columns ignored with a note.
        let p = parse(b"Password;UserName;Department;EmailAddress\npw;bob;Sales;bob@contoso.com\n");
        assert_eq!(p.rows[0].target, "bob@contoso.com");
        assert!(
            p.notes.iter().any(|n| n.contains("Department")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn bad_rows_are_named_with_their_lines() {
        let p = parse(
            b"target,source,password\n\
              u1@new.example,u1,pw\n\
              not-an-address,u2,pw\n\
              u3@new.example\n\
              ,u4,pw\n\
              u1@new.example,u1,other\n\
              u1@new.example,someone-else,pw\n\
              u7@new.example,two words,pw\n",
        );
        let e = problems(&p);
        assert_eq!(p.rows.len(), 1);
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(
            e[0].starts_with("line 3: target \"not-an-address\" is not an e-mail address"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("line 4: the source column is missing"),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("line 5: the target column is missing"),
            "{e:#?}"
        );
        assert!(
            e[3].starts_with("line 6: the same source and target are already on line 2"),
            "{e:#?}"
        );
        assert!(
            e[4].starts_with("line 7: target \"u1@new.example\" already receives \"u1\" (line 2)"),
            "{e:#?}"
        );
        assert!(
            e[5].starts_with("line 8: the source login \"two words\""),
            "{e:#?}"
        );
        // Passwords never appear in a message.
        assert!(!e.iter().any(|m| m.contains("other")), "{e:#?}");
    }

    #[test]
    fn unified_mode_lets_sources_share_a_target() {
        let text = b"all@new.example,a,pw\nall@new.example,b,pw\n";
        let p = parse_accounts(Path::new("a.csv"), text, true, false).unwrap();
        assert_eq!(p.rows.len(), 2);
        assert!(p.errors.is_empty());
    }

    #[test]
    fn encodings_are_refused_with_the_line() {
        let e = parse_accounts(Path::new("a.csv"), b"\xFF\xFEt\0a\0", false, false).unwrap_err();
        assert!(e.to_string().contains("UTF-16"), "{e}");
        let e = parse_accounts(
            Path::new("a.csv"),
            b"a@b.c,a,pw\nm\xFCller@b.c,m,pw\n",
            false,
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("UTF-8"),
            "{e}"
        );
        let e = parse_accounts(Path::new("a.csv"), b"a\0b", false, false).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn an_unclosed_quote_spoils_its_own_line_only() {
        let p = parse(b"u1@new.example,u1,\"pw\nu2@new.example,u2,pw\r\nu3@new.example,\"u3\r\nu4@new.example,u4,\"pw\"\n");
        assert_eq!(
            p.errors,
            vec![
                RowError {
                    line: 1,
                    problem: RowProblem::UnclosedQuote
                },
                RowError {
                    line: 3,
                    problem: RowProblem::UnclosedQuote
                }
            ]
        );
        let lines: Vec<u64> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4]);
    }

    #[test]
    fn quote_mistakes_are_named() {
        let p = parse(b"a@b.c,\"a\"x,pw\nb@b.c,b,\"two\nlines\"\nc@b.c,c,pw\n");
        assert_eq!(
            p.errors[0],
            RowError {
                line: 1,
                problem: RowProblem::TextAfterQuote
            }
        );
        // A value spanning two lines is two bad lines, each named.
        assert_eq!(
            p.errors[1],
            RowError {
                line: 2,
                problem: RowProblem::UnclosedQuote
            }
        );
        assert_eq!(p.errors[2].line, 3);
        assert_eq!(p.errors.len(), 3);
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].line, 4);
    }

    #[test]
    fn header_problems_and_empty_files() {
        let e = parse_accounts(
            Path::new("a.csv"),
            b"target,password\nx@y.z,pw\n",
            false,
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("line 1") && e.to_string().contains("no source column"),
            "{e}"
        );
        let e = parse_accounts(Path::new("a.csv"), b"\n\n# nothing\n", false, false).unwrap_err();
        assert!(matches!(e, CsvError::Empty { .. }));
        let p = parse(b"a@b.c,a,pw,tpw,extra\n");
        assert!(matches!(
            p.errors[0].problem,
            RowProblem::TooManyColumns { found: 5, .. }
        ));
        let p = parse(b"a@b.c,a,pw,,\n");
        assert!(p.errors.is_empty(), "{:?}", problems(&p));
    }

    #[test]
    fn target_passwords_when_the_destination_needs_them() {
        let p = parse_accounts(
            Path::new("a.csv"),
            b"a@b.c,a,pw,dpw\nd@b.c,d,pw\n",
            false,
            true,
        )
        .unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].target_password.as_ref().unwrap().expose(), "dpw");
        assert_eq!(p.errors[0].problem, RowProblem::MissingTargetPassword);
    }

    /// A reader that hands out one byte per `fill_buf`, to split every CRLF across reads.
    struct ByteAtATime<'a>(&'a [u8]);

    impl std::io::Read for ByteAtATime<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_rows_and_lines() {
        let text =
            b"target,source,password\r\na@b.c,a,pw\r\n\r\nb@b.c,b,\"p\"\"w\"\rc@b.c,c,pw\nbad,x,pw";
        let whole = parse(text);
        let slow = read_accounts(
            Path::new("a.csv"),
            std::io::BufReader::with_capacity(1, ByteAtATime(text)),
            false,
            false,
        )
        .unwrap();
        let lines = |p: &ParsedCsv| p.rows.iter().map(|r| r.line).collect::<Vec<_>>();
        assert_eq!(lines(&whole), vec![2, 4, 5]);
        assert_eq!(lines(&slow), lines(&whole));
        assert_eq!(slow.rows[1].password.as_ref().unwrap().expose(), "p\"w");
        assert_eq!(problems(&slow), problems(&whole));
        assert!(problems(&whole)[0].starts_with("line 6: target \"bad\""));
    }

    #[test]
    fn an_overlong_line_is_named_and_the_next_one_read() {
        let mut text = b"a@b.c,a,pw\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        text.extend_from_slice(b",y,secret\nb@b.c,b,pw\n");
        // Exactly the limit is still a line.
        text.extend(std::iter::repeat_n(b'z', MAX_LINE_BYTES));
        text.push(b'\n');
        let p = parse(&text);
        let e = problems(&p);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(
            e[0],
            format!("line 2: the line is longer than {MAX_LINE_BYTES} bytes: no account row is that long, so it was skipped unread")
        );
        // The line at the limit is read, and its value quoted as an excerpt only.
        assert!(e[1].starts_with("line 4: target \"zzzz"), "{e:?}");
        assert!(e[1].contains(&format!("({MAX_LINE_BYTES} bytes)")), "{e:?}");
        assert!(e[1].len() < 200, "{e:?}");
    }

    #[test]
    fn bad_values_are_quoted_as_short_excerpts() {
        let long = "é".repeat(300);
        let p = parse(format!("a@b.c,{long} x,pw\n").as_bytes());
        let e = problems(&p);
        assert!(e[0].starts_with("line 1: the source login \"éé"), "{e:?}");
        assert!(e[0].contains("… (602 bytes)"), "{e:?}");
        assert!(e[0].len() < 300, "{e:?}");
    }

    #[test]
    fn addresses() {
        for ok in [
            "a@b.c",
            "first.last+tag@sub.example.org",
            "ü@bücher.de",
            "u1@localhost",
        ] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.c", "a@", "a b@c.d", "a@b..c", "a@-b.c", ".a@b.c", "a@b@c", "<a@b.c>",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }
}
