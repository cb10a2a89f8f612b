//! A minimal line-based IMAP client over a plain `TcpStream`, shared by the
//! testkit's tests: each adds the commands it needs in an `impl Imap` of its
//! own.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A minimal line-based IMAP session on `127.0.0.1`.
pub struct Imap {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub next_tag: u32,
    pub greeting: String,
}

impl Imap {
    /// Connects to `127.0.0.1:port` and reads the greeting; every read
    /// waits at most `read_timeout`.
    pub fn connect(port: u16, read_timeout: Duration) -> Imap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(read_timeout)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        Imap {
            reader,
            writer,
            next_tag: 1,
            greeting,
        }
    }

    /// The next line, as bytes (they need not be UTF-8).
    pub fn raw_line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        let n = self.reader.read_until(b'\n', &mut l).unwrap();
        assert!(n > 0, "connection closed");
        l
    }

    /// The next line.
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.reader.read_line(&mut l).unwrap();
        assert!(n > 0, "connection closed");
        l
    }

    /// A fresh tag: `t1`, `t2`, ...
    pub fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends `cmd` and returns (untagged lines, tagged completion line).
    pub fn cmd(&mut self, cmd: &str) -> (Vec<String>, String) {
        let tag = self.tag();
        write!(self.writer, "{tag} {cmd}\r\n").unwrap();
        self.collect(&tag)
    }

    /// The lines up to the one tagged `tag`: (untagged lines, tagged line).
    pub fn collect(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let l = self.line();
            if l.strip_prefix(tag).is_some_and(|r| r.starts_with(' ')) {
                return (untagged, l);
            }
            untagged.push(l);
        }
    }
}
