//! C ABI for imapmig (filled by the bindings work).
