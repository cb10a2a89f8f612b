//! Progress events for callers: the core's flat JSON events, thinned out
//! ([`imapmig_core::engine::events`]), shared with the other language face.

pub use imapmig_core::engine::events::sink;
