//! The checked-in C header is what cbindgen makes of the current source.
//!
//! `IMAPMIG_BLESS=1 cargo test -p imapmig-ffi --test header` rewrites it.

use std::path::Path;

#[test]
fn checked_in_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");
    let path = crate_dir.join("include/imapmig.h");
    if std::env::var_os("IMAPMIG_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/imapmig.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/imapmig.h is out of date with the Rust source; regenerate it with\n  \
         IMAPMIG_BLESS=1 cargo test -p imapmig-ffi --test header\nand check in the result"
    );
}
