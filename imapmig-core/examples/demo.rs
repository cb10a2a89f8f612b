//! The demo: two private Dovecot servers on loopback, a generated mailbox on the first, a
//! migration to the second, then a verification against the source.
//!
//! Run it with `bash scripts/demo` (installs Dovecot if needed), or `cargo run --release
//! -p imapmig-core --example demo` when Dovecot is already installed.

use std::sync::Arc;
use std::time::Duration;

use imapmig_core::engine::{self, Account, MessageFilter, MigrationOptions, ProgressEvent};
use imapmig_core::imap::{Credentials, Endpoint, Security};
use imapmig_core::model::{Flags, InternalDate};
use imapmig_core::state::SqliteStore;
use imapmig_testkit::{Dovecot, Flavour, TestUser};
use tokio_util::sync::CancellationToken;

fn account(d: &Dovecot, u: &TestUser) -> Account {
    let mut endpoint = Endpoint::new(d.host(), d.imap_port(), Security::Cleartext);
    endpoint.timeout = Duration::from_secs(60);
    Account {
        endpoint,
        credentials: Credentials::password(u.name.clone(), u.password.clone()),
    }
}

/// A small but real-looking mailbox: system folders, a custom tree, names in several scripts,
/// flags and keywords, dates over the years.
fn generated_mailbox() -> Vec<(&'static str, String, &'static str, String)> {
    let folders = [
        ("INBOX", ""),
        ("Sent", "\\Seen"),
        ("Drafts", "\\Draft"),
        ("Trash", "\\Seen \\Deleted"),
        ("Projects/2024", "$Work"),
        ("Projects/已发送", "\\Seen"),
        ("Entwürfe & Notizen", "\\Flagged"),
        ("送信済みアイテム", "\\Seen \\Answered"),
    ];
    let months = ["Jan", "Mar", "Jun", "Sep", "Dec"];
    let mut out = Vec::new();
    for (i, (folder, flags)) in folders.iter().enumerate() {
        for n in 0..(6 + i * 2) {
            let year = 2009 + (n * 3 + i) % 16;
            let date = format!(
                "{:02}-{}-{year} 09:{:02}:00 +0100",
                1 + n % 28,
                months[n % 5],
                n % 60
            );
            let body = format!(
                "From: Demo <demo@old.example>\r\nTo: you@new.example\r\nSubject: {folder} #{n}\r\nDate: Mon, 1 Jan {year} 09:00:00 +0100\r\nMessage-ID: <{i}.{n}@demo>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMessage {n} in {folder}. Grüße, 你好, こんにちは.\r\n{}",
                "Lorem ipsum dolor sit amet.\r\n".repeat(1 + n * 20)
            );
            out.push((*folder, body, *flags, date));
        }
    }
    out
}

#[tokio::main]
async fn main() {
    println!("starting two private Dovecot servers on loopback...");
    let old = Dovecot::start(Flavour::Slash);
    let new = Dovecot::start(Flavour::DotInbox);
    let (ou, nu) = (old.user("demo"), new.user("demo"));
    let (src, dst) = (account(&old, &ou), account(&new, &nu));
    println!(
        "  source      127.0.0.1:{} (separator '/', folders Sent/Trash/Junk/Drafts/Archive)",
        old.imap_port()
    );
    println!(
        "  destination 127.0.0.1:{} (separator '.', prefix INBOX., Outlook names)",
        new.imap_port()
    );

    let mailbox = generated_mailbox();
    {
        let mut s = src.open().await.expect("log in to the source");
        let mut made = std::collections::HashSet::new();
        for (folder, body, flags, date) in &mailbox {
            let raw = s.encode_name(folder);
            if *folder != "INBOX" && made.insert(raw.clone()) {
                s.create(&raw).await.expect("create a folder");
            }
            let date = InternalDate::parse_imap(date);
            s.append(
                &raw,
                &Flags::from_line(flags),
                date.as_ref(),
                body.as_bytes(),
            )
            .await
            .expect("fill the source");
        }
        s.logout().await;
    }
    println!("filled the source with {} messages\n", mailbox.len());

    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = Arc::new(SqliteStore::open(&dir.path().join("state.sqlite")).expect("state"));
    let options = MigrationOptions {
        account_key: "demo".into(),
        ..MigrationOptions::default()
    };
    let progress: engine::ProgressSink = Arc::new(|ev: &ProgressEvent| {
        if let ProgressEvent::FolderDone(f) = ev {
            println!(
                "  {:<24} -> {:<32} {:>3} copied",
                f.source, f.target, f.copied
            );
        }
    });
    println!("migrating (folder mapping mode):");
    let report = engine::migrate(
        &src,
        &dst,
        &options,
        state.clone(),
        Some(progress),
        CancellationToken::new(),
    )
    .await
    .expect("migration");
    println!(
        "copied {} messages, {:.2} MB in {:.2} s\n",
        report.copied,
        report.bytes as f64 / 1e6,
        report.seconds
    );

    println!("verifying against the source (content hashes, flags, INTERNALDATE)...");
    let v = engine::verify(&src, &dst, &options.plan, &MessageFilter::default())
        .await
        .expect("verification");
    for f in &v.folders {
        println!(
            "  {:<24} {:>3} on source, {:>3} identical on destination",
            f.source, f.source_messages, f.matched
        );
    }
    let again = engine::migrate(&src, &dst, &options, state, None, CancellationToken::new())
        .await
        .expect("second run");
    println!(
        "a second run copied {} messages (nothing is copied twice)",
        again.copied
    );
    if v.is_identical() && again.copied == 0 {
        println!("\nverified: every message is on the destination, byte for byte.");
    } else {
        eprintln!(
            "\nverification found {} difference(s)",
            v.difference_count()
        );
        std::process::exit(1);
    }
}
