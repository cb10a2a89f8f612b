//! The POP3 client (RFC 1939 with CAPA, STLS, SASL and response codes): the connection and its
//! multi-line responses. Beside the IMAP client, below the sources that use it; it knows
//! nothing of folders, messages' identity or the migration.

pub(crate) mod client;
mod dot;
