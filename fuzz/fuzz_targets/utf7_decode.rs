//! Mailbox names as a server might send them: `decode` must never panic, and whatever it
//! accepts must be a canonical spelling (the only tolerated variant is a run of characters split
//! over adjacent shift sequences), so that one folder never has two wire names.
#![no_main]

use imapmig_core::utf7;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names reach `decode` as `&str`; non-UTF-8 bytes are the framer's problem, not ours.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let fallback = utf7::decode_lossless_or_raw(raw);
    let Ok(name) = utf7::decode(raw) else {
        assert_eq!(fallback, raw, "an invalid name must be kept as it came");
        return;
    };
    assert_eq!(fallback, name);

    let wire = utf7::encode(&name);
    assert_eq!(
        utf7::decode(&wire).as_deref(),
        Ok(name.as_str()),
        "re-encoding {raw:?} as {wire:?} does not decode back"
    );
    assert!(
        wire == raw || has_adjacent_shifts(raw),
        "{raw:?} was accepted but its canonical form is {wire:?}"
    );
});

/// Whether a shift sequence may directly follow another (`-&` then not `-`). Over-approximates:
/// a direct `-` before a shift sequence matches too, which only makes the check above weaker.
fn has_adjacent_shifts(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| matches!(w, [b'-', b'&', next] if *next != b'-'))
}
