//! One response line from the server, as the framer hands it on, through the parsers: the
//! hand-written status parser and imap-proto's grammar for everything else. No input may
//! panic, and what comes out must be sane:
//!
//! * `parse_line` and `parse_status` agree on whether the line is a status response;
//! * a status response's text never keeps the line end;
//! * `describe()` (what users see in errors) works on anything parsed;
//! * an `APPENDUID` set never expands past its cap.
#![no_main]

use imapmig_core::wire::response::{parse_line, parse_status, parse_uid_set, Parsed};
use imapmig_core::wire::ResponseCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = parse_status(data);
    let parsed = parse_line(data);
    match (&parsed, &status) {
        (Parsed::Status(a), Some(b)) => assert_eq!(a, b),
        (Parsed::Status(_), None) => panic!("parse_line found a status parse_status did not"),
        (Parsed::Continue(_), _) => assert_eq!(data.first(), Some(&b'+')),
        (_, Some(s)) => panic!("parse_status found {s:?}, parse_line did not"),
        _ => {}
    }
    if let Some(s) = &status {
        let shown = s.describe();
        // The framer ends a status line at its first LF; the parser drops the line end.
        if memchr_lf(data).is_none_or(|at| at + 1 == data.len()) {
            assert!(!s.text.contains('\n'), "{:?}", s.text);
        }
        if data.ends_with(b"\r\n") && !data[..data.len() - 2].contains(&b'\r') {
            assert!(!s.text.contains('\r'), "{:?}", s.text);
        }
        if let Some(tag) = &s.tag {
            assert!(!tag.is_empty() && !tag.contains(' '), "{tag:?}");
        }
        match &s.code {
            Some(ResponseCode::AppendUid { uids, .. }) => {
                assert!(
                    !uids.is_empty() && uids.len() <= 100_000,
                    "{} UIDs",
                    uids.len()
                );
                assert!(uids.iter().all(|&u| u > 0));
            }
            _ => {}
        }
        assert!(shown.len() <= data.len() * 4 + 64);
    }
    // The UID set parser on its own, as APPENDUID feeds it.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(set) = parse_uid_set(text) {
            assert!(set.len() <= 100_000);
            assert!(set.iter().all(|&u| u > 0));
        }
    }
});

fn memchr_lf(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}
