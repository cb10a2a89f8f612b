//! Accounts from CSV, through the public API and a real store file: ten thousand rows import
//! and validate fast, and malformed files get clear errors with line numbers.

use std::path::Path;
use std::time::Instant;

use imapmig_core::batch::import::{parse_accounts, CsvLayout};
use imapmig_core::batch::task::{Auth, ServerSettings};
use imapmig_core::batch::{BatchError, BatchStore, ImportOptions, Status, TaskSettings};
use imapmig_core::secret::Secret;

fn store(dir: &tempfile::TempDir) -> BatchStore {
    let s = BatchStore::open(&dir.path().join("state.sqlite")).expect("store");
    // The destination is reached through an admin login acting for each target.
    let mut destination = ServerSettings::new("new.example");
    destination.auth = Auth::Admin {
        user: "admin@new.example".into(),
    };
    s.create_task(
        "big",
        &TaskSettings::new(ServerSettings::new("old.example"), destination),
        None,
        Some(Secret::new("admin-pw")),
    )
    .expect("task");
    s
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn import_err(s: &BatchStore, file: &Path) -> String {
    let e = s
        .import_csv("big", file, ImportOptions::default())
        .expect_err("the file should be refused");
    e.to_string()
}

#[test]
fn ten_thousand_rows_import_and_validate_in_well_under_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let mut csv = String::from("\u{feff}target,source,password\r\n");
    for i in 0..10_000 {
        match i % 4 {
            0 => csv.push_str(&format!(
                "user{i}@new.example,user{i}@old.example,pw-{i}\r\n"
            )),
            1 => csv.push_str(&format!(
                "user{i}@new.example,admin@old.example/user{i},\"admin, pw\"\r\n"
            )),
            2 => csv.push_str(&format!("user{i}@new.example,user{i}*master,m-pw\r\n")),
            _ => csv.push_str(&format!("user{i}@new.example,user{i}@old.example,\r\n")),
        }
    }
    let file = write(&dir, "accounts.csv", csv.as_bytes());

    let started = Instant::now();
    let parsed = parse_accounts(&file, csv.as_bytes(), false, false).unwrap();
    let parse_time = started.elapsed();
    assert_eq!(parsed.rows.len(), 10_000);
    assert!(
        parsed.errors.is_empty(),
        "{:?}",
        &parsed.errors[..3.min(parsed.errors.len())]
    );

    let started = Instant::now();
    let r = s
        .import_csv("big", &file, ImportOptions::default())
        .unwrap_or_else(|e| panic!("{}", &e.to_string()[..500.min(e.to_string().len())]));
    let total = started.elapsed();
    eprintln!(
        "10,000 CSV rows: parsed and validated in {parse_time:?}; read, validated and imported into SQLite in {total:?}"
    );
    assert_eq!(r.added, 10_000);
    assert_eq!(r.waiting_for_credentials, 2_500);
    assert!(r.header);
    assert!(total.as_secs_f64() < 5.0, "import took {total:?}");

    let accounts = s.accounts("big").unwrap();
    assert_eq!(accounts.len(), 10_000);
    let waiting = accounts
        .iter()
        .filter(|a| a.status == Status::WaitingForCredentials)
        .count();
    assert_eq!(waiting, 2_500);
    assert_eq!(accounts[1].source, "admin@old.example/user1");
    assert_eq!(accounts[2].source, "user2*master");

    // Importing the same file again: every row is already in the task, nothing changes.
    let started = Instant::now();
    let e = import_err(&s, &file);
    eprintln!(
        "re-validating 10,000 rows against the task: {:?}",
        started.elapsed()
    );
    assert!(
        e.contains("10000 bad row(s), nothing imported"),
        "{}",
        &e[..200]
    );
    assert!(e.contains("line 2: this source and target are already in the task"));
    assert_eq!(s.accounts("big").unwrap().len(), 10_000);
}

#[test]
fn malformed_files_are_refused_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);

    // Wrong encoding: Latin-1 on line 3.
    let f = write(
        &dir,
        "latin1.csv",
        b"target,source,password\na@new.example,a,pw\nm\xfcller@new.example,m,pw\n",
    );
    let e = import_err(&s, &f);
    assert!(e.contains("line 3") && e.contains("not UTF-8"), "{e}");

    // UTF-16 with its byte order mark, as spreadsheets save "Unicode text".
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "target,source,password\r\na@new.example,a,pw\r\n".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let f = write(&dir, "utf16.csv", &utf16);
    let e = import_err(&s, &f);
    assert!(e.contains("UTF-16"), "{e}");

    // Missing columns, a bad address, a shifted row, a duplicate, two sources onto one target.
    let f = write(
        &dir,
        "bad.csv",
        b"target,source,password\r\n\
          ok@new.example,ok,pw\r\n\
          only-target@new.example\r\n\
          ,nobody,pw\r\n\
          not an address,x,pw\r\n\
          ok@new.example,ok,again\r\n\
          ok@new.example,intruder,pw\r\n",
    );
    let e = import_err(&s, &f);
    for expected in [
        "5 bad row(s), nothing imported",
        "line 3: the source column is missing or empty",
        "line 4: the target column is missing or empty",
        "line 5: target \"not an address\" is not an e-mail address",
        "line 6: the same source and target are already on line 2",
        "line 7: target \"ok@new.example\" already receives \"ok\" (line 2)",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
    assert!(
        !e.contains("again"),
        "a password leaked into the error:\n{e}"
    );
    assert!(
        s.accounts("big").unwrap().is_empty(),
        "nothing may be imported"
    );

    // Quotes: escaped quotes and commas inside quotes are fine; an unclosed quote is named.
    let f = write(
        &dir,
        "quotes.csv",
        b"q1@new.example,q1,\"p,\"\"w\"\"\"\nq2@new.example,q2,\"unclosed\nq3@new.example,q3,pw\n",
    );
    let e = import_err(&s, &f);
    assert!(
        e.contains("line 2: a quoted value runs over the end of the line"),
        "{e}"
    );

    // Too many columns without a header (an unquoted comma in a password).
    let f = write(&dir, "commas.csv", b"c@new.example,c,pass,word,more\n");
    let e = import_err(&s, &f);
    assert!(e.contains("line 1: 5 columns, expected at most 4"), "{e}");

    // A header without a source column.
    let f = write(
        &dir,
        "header.csv",
        b"EmailAddress,Password\na@new.example,pw\n",
    );
    let e = import_err(&s, &f);
    assert!(
        e.contains("line 1") && e.contains("no source column"),
        "{e}"
    );

    // An empty file.
    let f = write(&dir, "empty.csv", b"\xEF\xBB\xBF\r\n\r\n");
    assert!(matches!(
        s.import_csv("big", &f, ImportOptions::default()),
        Err(BatchError::Csv(_))
    ));

    // BOM + CRLF + Microsoft 365 layout + semicolons + --skip-bad-rows: the good rows go in.
    let f = write(
        &dir,
        "m365.csv",
        b"\xEF\xBB\xBFEmailAddress;UserName;Password\r\nann@new.example;ann@old.example;pw\r\nbroken;bob;pw\r\ncy@new.example;admin@old.example/cy;pw\r\n",
    );
    let e = import_err(&s, &f);
    assert!(e.contains("line 3: target \"broken\""), "{e}");
    let r = s
        .import_csv(
            "big",
            &f,
            ImportOptions {
                skip_bad_rows: true,
                ..ImportOptions::default()
            },
        )
        .unwrap();
    assert_eq!(r.layout, CsvLayout::Microsoft365);
    assert_eq!((r.added, r.skipped.len()), (2, 1));
    assert_eq!(r.skipped[0].line, 3);
    let a = s.accounts("big").unwrap();
    assert_eq!(a[0].target, "ann@new.example");
    assert_eq!(a[1].source, "admin@old.example/cy");
}

/// The exactly-once issue's CSV case: a stray quote on line 7,777 of 10,000 rows used to swallow
/// every row after it ("imported 7,775, skipped 1"). A record never spans lines: the line with
/// the stray quote is a bad row named by its number, and the rows after it are read as usual.
#[test]
fn a_stray_quote_costs_its_own_line_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let mut csv = String::from("target,source,password\n");
    for line in 2..=10_001 {
        if line == 7_777 {
            csv.push_str(&format!("u{line}@new.example,u{line},\"stray-pw\n"));
        } else {
            csv.push_str(&format!("u{line}@new.example,u{line},pw-{line}\n"));
        }
    }
    let file = write(&dir, "stray.csv", csv.as_bytes());

    // Without --skip-bad-rows: exactly the one bad line is named, nothing is imported.
    let e = import_err(&s, &file);
    assert!(e.contains("1 bad row(s), nothing imported"), "{e}");
    assert!(
        e.contains("line 7777: a quoted value runs over the end of the line"),
        "{e}"
    );
    assert!(!e.contains("stray-pw"), "a password leaked: {e}");

    // With it: every row is either imported or named.
    let r = s
        .import_csv(
            "big",
            &file,
            ImportOptions {
                skip_bad_rows: true,
                ..ImportOptions::default()
            },
        )
        .unwrap();
    let lines: Vec<u64> = r.skipped.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![7_777]);
    assert_eq!(r.added + r.skipped.len() as u64, 10_000);
    let accounts = s.accounts("big").unwrap();
    assert_eq!(accounts.len(), 9_999);
    assert!(accounts.iter().any(|a| a.target == "u7778@new.example"));
    assert!(accounts.iter().any(|a| a.target == "u10001@new.example"));
}

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb * 1024
}

/// The exactly-once issue's 50 MB line: it used to be read whole, copied, and echoed whole into
/// the error (50 MB of stderr, 155 MB RSS). A line over the limit is a bad row named by its
/// number and length limit, read with a bounded buffer; errors quote a short excerpt only.
#[test]
fn a_fifty_megabyte_line_is_a_bad_row_and_costs_no_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let path = dir.path().join("huge.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"target,source,password\na@new.example,a,pw-a\n")
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..50 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b",huge,secret-pw\nb@new.example,b,pw-b\n")
            .unwrap();
        // A long but legal line is named with a clipped excerpt, not in full.
        f.write_all(&vec![b'y'; 10_000]).unwrap();
        f.write_all(b"@new.example,c,pw-c\n").unwrap();
    }
    let before = peak_rss();

    let e = import_err(&s, &path);
    let after = peak_rss();
    // Held whole, the line alone would add 50 MB (and its copies more); the other tests of this
    // file run beside this one, so leave them room.
    assert!(
        after < before + (24 << 20),
        "peak RSS grew from {} MB to {} MB",
        before >> 20,
        after >> 20
    );
    assert!(e.len() < 2_000, "the error is {} bytes long", e.len());
    assert!(
        e.contains("line 3: the line is longer than 65536 bytes"),
        "{e}"
    );
    assert!(e.contains("line 5: target \"yyyy"), "{e}");
    assert!(!e.contains("secret-pw"), "{e}");

    let r = s
        .import_csv(
            "big",
            &path,
            ImportOptions {
                skip_bad_rows: true,
                ..ImportOptions::default()
            },
        )
        .unwrap();
    assert_eq!(r.added, 2);
    let lines: Vec<u64> = r.skipped.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 5]);
    assert!(peak_rss() < before + (24 << 20));
}
