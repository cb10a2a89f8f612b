//! Any Unicode folder name, as a user or a source server might have it: encoding must give
//! printable ASCII that decodes to exactly the same name.
#![no_main]

use imapmig_core::utf7;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    let wire = utf7::encode(name);
    assert!(
        wire.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        "{name:?} encoded to non-printable {wire:?}"
    );
    assert_eq!(utf7::decode(&wire).as_deref(), Ok(name), "via {wire:?}");
});
