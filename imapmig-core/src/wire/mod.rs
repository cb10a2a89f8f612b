//! The wire layer: IMAP server bytes in, frames and parsed responses out; no I/O.
//!
//! [`framer`] splits the stream into lines and literals (streaming large literals without ever
//! holding them); [`response`] turns a complete line into a typed status response or hands the
//! data responses to imap-proto's grammar. Nothing here reads a socket or panics on input.

pub mod framer;
pub mod response;
pub mod uid_set;

pub use framer::{Frame, Framer, Limits};
pub use response::{Parsed, ResponseCode, StatusKind, StatusResponse};
pub use uid_set::{parse_uid_set, uid_set};

/// What can be wrong with the bytes a server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A response line grew past the limit without ending. The server is broken or hostile;
    /// the connection cannot be used any more.
    #[error(
        "the server sent a response line longer than {limit} bytes; giving up on this connection"
    )]
    LineTooLong {
        /// The limit that was passed.
        limit: usize,
    },
    /// A literal announcement whose size is not a number IMAP allows.
    #[error("the server announced an impossible literal size {announced:?}")]
    BadLiteral {
        /// The announcement as sent (cut to 40 characters).
        announced: String,
    },
    /// A response the grammar does not accept, where the client needs to understand it.
    #[error("cannot parse the server's response: {excerpt:?}")]
    Unparsable {
        /// The start of the line (at most 200 characters, lossily decoded).
        excerpt: String,
    },
}

impl WireError {
    /// An [`WireError::Unparsable`] quoting the start of `line`.
    pub fn unparsable(line: &[u8]) -> WireError {
        WireError::Unparsable {
            excerpt: excerpt(line),
        }
    }
}

/// The start of a line for error messages: at most 200 characters, lossily decoded, CRLF cut.
pub fn excerpt(line: &[u8]) -> String {
    let cut = &line[..line.len().min(200)];
    String::from_utf8_lossy(cut)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}
