//! Python bindings for imapmig (filled by the bindings work).
