//! Micro benchmarks of the hot paths (criterion): framing a FETCH stream, parsing metadata
//! responses, modified UTF-7, and planning 5,000 folders.
//!
//! Run: `cargo bench --bench micro` (results under target/criterion/). Under `cargo test
//! --all-targets` each benchmark runs once, as a smoke test.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imapmig_core::mapping::{self, Destination, Mode, PlanOptions};
use imapmig_core::model::{Folder, SpecialUse};
use imapmig_core::utf7;
use imapmig_core::wire::response::parse_line;
use imapmig_core::wire::{Frame, Framer, Limits};

/// Bytes the client asks of the socket per read (as `imap::conn` does).
const READ: usize = 64 * 1024;

/// A server's answer to `n` pipelined `UID FETCH uid (UID BODY.PEEK[])`, bodies of `size` bytes.
fn fetch_stream(n: usize, size: usize) -> Vec<u8> {
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    let mut body = Vec::with_capacity(size);
    while body.len() < size {
        let take = line.len().min(size - body.len());
        body.extend_from_slice(&line[..take]);
    }
    let mut out = Vec::with_capacity(n * (size + 80));
    for i in 1..=n {
        out.extend_from_slice(
            format!("* {i} FETCH (UID {} BODY[] {{{size}}}\r\n", 1000 + i).as_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(b")\r\n");
        out.extend_from_slice(
            format!("m{i} OK Fetch completed (0.001 + 0.000 secs).\r\n").as_bytes(),
        );
    }
    out
}

/// Frames a whole stream fed in socket-sized reads; optionally parses every line.
fn frame(stream: &[u8], parse: bool) -> usize {
    let mut framer = Framer::new(Limits::default());
    let mut buf = BytesMut::with_capacity(READ);
    let mut n = 0;
    for piece in stream.chunks(READ) {
        buf.extend_from_slice(piece);
        while let Some(f) = framer.next_frame(&mut buf).expect("a valid stream") {
            if parse {
                if let Frame::Line(l) = &f {
                    black_box(parse_line(l));
                }
            }
            black_box(&f);
            n += 1;
        }
    }
    n
}

fn framing(c: &mut Criterion) {
    let mut g = c.benchmark_group("fetch_stream");
    // 12 KB bodies stay inside their line; 1 MB bodies are streamed out of band in chunks.
    for (label, n, size) in [("200x12KB", 200, 12_000), ("8x1MB", 8, 1_000_000)] {
        let stream = fetch_stream(n, size);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_with_input(BenchmarkId::new("frame", label), &stream, |b, s| {
            b.iter(|| frame(s, false))
        });
        g.bench_with_input(
            BenchmarkId::new("frame_and_parse", label),
            &stream,
            |b, s| b.iter(|| frame(s, true)),
        );
    }
    g.finish();
}

fn metadata(c: &mut Criterion) {
    // What `UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ)` brings, line by line.
    let flags = [
        "\\Seen",
        "\\Seen \\Answered",
        "",
        "\\Seen $Forwarded Work",
        "\\Flagged \\Seen $Label1",
    ];
    let lines: Vec<Vec<u8>> = (1..=2000)
        .map(|i| {
            format!(
                "* {i} FETCH (UID {} MODSEQ ({}) FLAGS ({}) INTERNALDATE \"{:02}-Mar-20{:02} 10:{:02}:33 +0100\" RFC822.SIZE {})\r\n",
                i * 3,
                50_000 + i,
                flags[i % flags.len()],
                1 + i % 28,
                10 + i % 14,
                i % 60,
                2_000 + i * 37 % 60_000
            )
            .into_bytes()
        })
        .collect();
    let mut g = c.benchmark_group("fetch_metadata");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_2000_lines", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                if let imapmig_core::wire::Parsed::Data(r) = parse_line(l) {
                    black_box(&r);
                    n += 1;
                }
            }
            assert_eq!(n, lines.len());
        })
    });
    g.finish();
}

fn utf7_names(c: &mut Criterion) {
    let names: Vec<String> = [
        "INBOX",
        "Sent Items",
        "Archive/2019/Q3",
        "Entwürfe & Notizen",
        "Gesendete Elemente",
        "已发送",
        "送信済みアイテム",
        "Отправленные",
        "Reisen/Größe/Österreich",
        "Projekte/über & unter",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let encoded: Vec<String> = names.iter().map(|n| utf7::encode(n)).collect();
    let mut g = c.benchmark_group("modified_utf7");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            for n in &names {
                black_box(utf7::encode(black_box(n)));
            }
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            for n in &encoded {
                black_box(utf7::decode(black_box(n)).expect("valid"));
            }
        })
    });
    g.finish();
}

fn folder(name: &str, attrs: &[&str], special: Option<SpecialUse>) -> Folder {
    Folder {
        name: name.to_string(),
        raw: utf7::encode(name),
        delimiter: Some('/'),
        attributes: attrs.iter().map(|a| a.to_string()).collect(),
        special_use: special,
    }
}

/// 5,000 source folders: the special ones, then a deep custom tree with some non-ASCII names.
fn source_folders(n: usize) -> Vec<Folder> {
    let mut v = vec![
        folder("INBOX", &["\\HasChildren"], None),
        folder("Sent", &["\\Sent"], Some(SpecialUse::Sent)),
        folder("Drafts", &["\\Drafts"], Some(SpecialUse::Drafts)),
        folder("Trash", &["\\Trash"], Some(SpecialUse::Trash)),
        folder("Junk", &["\\Junk"], Some(SpecialUse::Junk)),
        folder("Archive", &["\\Archive"], Some(SpecialUse::Archive)),
        folder("Gesendete Elemente", &[], None),
    ];
    let words = [
        "Projects", "Kunden", "客户", "Reisen", "Größe", "Lists", "2019", "2020",
    ];
    let mut i = 0;
    while v.len() < n {
        let top = words[i % words.len()];
        let mid = format!("{} {}", words[(i / 8) % words.len()], i / 64);
        let name = if i % 3 == 0 {
            format!("{top}/{mid}")
        } else {
            format!("{top}/{mid}/Sub {i}")
        };
        v.push(folder(&name, &["\\HasNoChildren"], None));
        i += 1;
    }
    v
}

fn destination() -> Destination {
    let f = |name: &str, attrs: &[&str], special: Option<SpecialUse>| Folder {
        name: name.to_string(),
        raw: name.to_string(),
        delimiter: Some('.'),
        attributes: attrs.iter().map(|a| a.to_string()).collect(),
        special_use: special,
    };
    Destination {
        folders: vec![
            f("INBOX", &[], None),
            f("INBOX.Sent Items", &["\\Sent"], Some(SpecialUse::Sent)),
            f("INBOX.Deleted Items", &["\\Trash"], Some(SpecialUse::Trash)),
            f("INBOX.Junk E-mail", &["\\Junk"], Some(SpecialUse::Junk)),
            f("INBOX.Drafts", &["\\Drafts"], Some(SpecialUse::Drafts)),
            f("INBOX.Archive", &["\\Archive"], Some(SpecialUse::Archive)),
        ],
        delimiter: '.',
        personal_prefix: "INBOX.".into(),
        utf8: false,
    }
}

fn planning(c: &mut Criterion) {
    let src = source_folders(5_000);
    let dst = destination();
    let mut g = c.benchmark_group("folder_plan");
    g.throughput(Throughput::Elements(src.len() as u64));
    g.sample_size(20);
    for (label, mode) in [
        ("mapping_5000", Mode::Mapping),
        (
            "unified_5000",
            Mode::Unified {
                root: "Migrated".into(),
                address: "alice@old.example".into(),
            },
        ),
    ] {
        let opts = PlanOptions {
            mode,
            exclude: vec!["Lists/**".into()],
            ..PlanOptions::default()
        };
        g.bench_function(label, |b| {
            b.iter(|| {
                let p = mapping::plan(black_box(&src), &dst, &opts).expect("a plan");
                black_box(p.entries.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, framing, metadata, utf7_names, planning);
criterion_main!(benches);
