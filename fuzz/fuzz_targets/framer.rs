//! The server byte stream, cut into reads at arbitrary points, through the sans-IO framer with
//! small limits. Whatever the bytes and the cuts:
//!
//! * it never panics, and memory stays within the limits (no frame is larger than allowed);
//! * a streamed literal delivers exactly its announced length, in non-empty chunks no larger
//!   than `max_chunk`, between a `LiteralStart` and a `LiteralEnd`, and never more;
//! * the frames do not depend on where the reads were cut: the same bytes in one piece give
//!   the same frames (literal chunks merged), and an error in one run is an error in the other.
//!
//! Input layout: byte 0 picks the limits, byte 1 seeds the read sizes, the rest is the stream.
#![no_main]

use bytes::BytesMut;
use imapmig_core::wire::{Frame, Framer, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [pick, seed, stream @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_inline_literal: [0, 1, 8, 64][usize::from(pick & 3)],
        max_line: [48, 200, 1024, 4096][usize::from((pick >> 2) & 3)],
        max_chunk: [1, 3, 16, 256][usize::from((pick >> 4) & 3)],
    };
    let whole = run(limits, stream, |_| stream.len().max(1));
    let mut rng = u32::from(*seed) | 0x100;
    let cut = run(limits, stream, |_| {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Mostly tiny reads (the interesting splits), sometimes big ones.
        match rng % 8 {
            0 => 1 + (rng >> 8) as usize % 512,
            _ => 1 + (rng >> 8) as usize % 7,
        }
    });
    assert_eq!(
        whole.frames, cut.frames,
        "frames depend on how the reads were cut"
    );
    assert_eq!(
        whole.failed, cut.failed,
        "an error depends on how the reads were cut"
    );
});

/// A frame with literal chunks merged, so runs with different read sizes compare equal.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Line(Vec<u8>),
    Start { head: Vec<u8>, len: u64 },
    Data(Vec<u8>),
    End,
}

struct Run {
    frames: Vec<Seen>,
    failed: bool,
}

fn run(limits: Limits, stream: &[u8], mut read_size: impl FnMut(usize) -> usize) -> Run {
    let mut framer = Framer::new(limits);
    let mut buf = BytesMut::new();
    let mut frames: Vec<Seen> = Vec::new();
    // Bytes of the current streamed literal still to come; None outside one.
    let mut literal_left: Option<u64> = None;
    let mut at = 0;
    let mut reads = 0;
    while at < stream.len() {
        let n = read_size(reads).min(stream.len() - at);
        reads += 1;
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        loop {
            let frame = match framer.next_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    return Run {
                        frames,
                        failed: true,
                    }
                }
            };
            match frame {
                Frame::Line(l) => {
                    assert!(literal_left.is_none(), "a line inside a streamed literal");
                    assert!(l.ends_with(b"\n"), "a line without its end: {l:?}");
                    assert!(l.len() <= limits.max_line, "line of {} bytes", l.len());
                    frames.push(Seen::Line(l.to_vec()));
                }
                Frame::LiteralStart { head, len } => {
                    assert!(literal_left.is_none(), "a literal inside a literal");
                    assert!(
                        len > limits.max_inline_literal as u64,
                        "a small literal ({len}) was streamed"
                    );
                    assert!(
                        head.len() <= limits.max_line,
                        "head of {} bytes",
                        head.len()
                    );
                    literal_left = Some(len);
                    frames.push(Seen::Start {
                        head: head.to_vec(),
                        len,
                    });
                }
                Frame::LiteralData(d) => {
                    let left = literal_left.expect("literal data outside a literal");
                    assert!(!d.is_empty(), "an empty chunk");
                    assert!(d.len() <= limits.max_chunk, "chunk of {} bytes", d.len());
                    assert!(d.len() as u64 <= left, "more literal bytes than announced");
                    literal_left = Some(left - d.len() as u64);
                    match frames.last_mut() {
                        Some(Seen::Data(v)) => v.extend_from_slice(&d),
                        _ => frames.push(Seen::Data(d.to_vec())),
                    }
                }
                Frame::LiteralEnd => {
                    assert_eq!(literal_left, Some(0), "a literal ended short");
                    literal_left = None;
                    frames.push(Seen::End);
                }
            }
        }
        // Memory stays bounded: what is held is at most a line (a streamed literal's bytes
        // are handed on as they come, never kept).
        assert!(
            buf.len() <= limits.max_line + limits.max_inline_literal + 1024,
            "{} bytes buffered",
            buf.len()
        );
    }
    Run {
        frames,
        failed: false,
    }
}
