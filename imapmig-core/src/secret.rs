//! [`Secret`]: a password, token or credential-bearing payload that never prints itself.
//!
//! Credentials pass through error messages, progress events, `tracing` spans and the Python and
//! C faces. A plain `String` anywhere on that path ends up in a log sooner or later; a type whose
//! `Debug` and `Display` print `***` cannot. The value is reachable only through
//! [`Secret::expose`], so every place that really sends it is easy to find with a grep.
//!
//! There is deliberately no `Serialize`: reports, state files and audit logs are serialized, and
//! a secret must not be able to reach one by accident. Deserializing is allowed, since that is
//! how credentials come in from configuration files.

use std::fmt;

use zeroize::Zeroizing;

/// What `Display` prints in place of the value.
const MASK: &str = "***";

/// A password or token. Prints as `***`, compares without an early exit, and is zeroed when
/// dropped.
///
/// Zeroing on drop covers this value's own buffer. Copies made before it was wrapped (a
/// `String` that grew while the password was read, a parser's buffer) are the job of whoever
/// made them, which is why constructors take the `String` by value instead of copying it.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value. A `String` is moved in without a copy.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Default for Secret {
    /// The empty secret (a form field left blank, say).
    fn default() -> Self {
        Secret::new(String::new())
    }
}

impl PartialEq for Secret {
    /// Compares without stopping at the first differing byte, so the time taken says nothing
    /// about how much of a guess was right. The length is not hidden.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(")?;
        f.write_str(MASK)?;
        f.write_str(")")
    }
}

impl fmt::Display for Secret {
    /// Prints `***`, never the value: `to_string()` is not a way to expose it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(MASK)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-correct-horse";

    #[derive(Debug)]
    #[allow(dead_code)] // Only read through Debug, which is the point of the test.
    struct Account {
        user: String,
        password: Secret,
        token: Option<Secret>,
    }

    #[test]
    fn expose_gives_the_value_back() {
        assert_eq!(Secret::new(PASSWORD).expose(), PASSWORD);
        assert_eq!(Secret::from(PASSWORD.to_owned()).expose(), PASSWORD);
        assert_eq!(Secret::from(PASSWORD).expose(), PASSWORD);
    }

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new(PASSWORD);
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.to_string(), "***");
        for rendered in [
            format!("{secret:#?}"),
            format!("{secret:>40}"),
            format!("{secret:<40?}"),
            format!("{:?}", Some(&secret)),
        ] {
            assert!(!rendered.contains(PASSWORD), "{rendered}");
            assert!(rendered.contains(MASK), "{rendered}");
        }
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("[{:>5}]", Secret::new(PASSWORD)), "[  ***]");
    }

    #[test]
    fn containing_structs_do_not_leak() {
        let account = Account {
            user: "alice@example.com".to_owned(),
            password: Secret::new(PASSWORD),
            token: Some(Secret::new("ya29.token-value")),
        };
        for rendered in [format!("{account:?}"), format!("{account:#?}")] {
            assert!(rendered.contains("alice@example.com"), "{rendered}");
            assert!(!rendered.contains(PASSWORD), "{rendered}");
            assert!(!rendered.contains("ya29.token-value"), "{rendered}");
        }
    }

    #[test]
    fn equality_compares_values() {
        let a = Secret::new("abcdef");
        assert_eq!(a, a.clone());
        assert_eq!(a, Secret::new(String::from("abcdef")));
        assert_ne!(a, Secret::new("abcdeg"));
        assert_ne!(a, Secret::new("bbcdef"));
        assert_ne!(a, Secret::new("abcde"));
        assert_ne!(a, Secret::new("abcdefg"));
        assert_ne!(Secret::new(""), Secret::new("\0"));
        assert_eq!(Secret::new(""), Secret::new(""));
    }

    #[test]
    fn deserializes_from_a_string() {
        let secret: Secret = serde_json::from_str("\"s3cr\\u00e9t\"").unwrap();
        assert_eq!(secret.expose(), "s3crét");
        assert!(serde_json::from_str::<Secret>("42").is_err());
    }
}
