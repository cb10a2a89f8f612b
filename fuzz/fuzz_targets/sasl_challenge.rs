//! The `+` continuation a server sends after a failed OAuth exchange is untrusted input that
//! ends up in error messages: decoding it must never panic, stay bounded, and contain no raw
//! control characters.
#![no_main]

use base64::Engine as _;
use imapmig_core::sasl::{decode_challenge_error, CHALLENGE_ERROR_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The raw bytes as the challenge text: mostly not base64, which exercises rejection.
    if let Ok(text) = std::str::from_utf8(data) {
        check(decode_challenge_error(text));
    }
    // The raw bytes as the decoded document: always valid base64, which exercises the
    // lossy-UTF-8, escaping and truncation paths.
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    check(decode_challenge_error(&encoded));
});

fn check(decoded: Option<String>) {
    if let Some(text) = decoded {
        assert!(!text.is_empty());
        assert!(text.len() <= CHALLENGE_ERROR_MAX, "{} bytes", text.len());
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}
