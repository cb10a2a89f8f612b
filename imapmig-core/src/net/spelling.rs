//! How [`Security`] and [`AuthMethod`] are written in JSON: the task settings, the C
//! configuration and [`crate::config`] all use these words, so there is one spelling of each.
//!
//! Kept apart from the settings and from the clients: the words are data, no client reads them.

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AuthMethod, Security};

const SECURITY: &[&str] = &["tls", "starttls", "cleartext", "none"];
const METHODS: &[&str] = &["auto", "login", "plain", "xoauth2", "oauthbearer"];

impl Security {
    /// The word for it: `tls`, `starttls` or `cleartext`.
    pub fn name(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Cleartext => "cleartext",
        }
    }

    /// Reads `tls`, `starttls`, `cleartext` or its other name `none`.
    pub fn from_name(name: &str) -> Option<Security> {
        match name {
            "tls" => Some(Security::Tls),
            "starttls" => Some(Security::StartTls),
            "cleartext" | "none" => Some(Security::Cleartext),
            _ => None,
        }
    }
}

impl AuthMethod {
    /// The word for it: `auto`, `login`, `plain`, `xoauth2` or `oauthbearer`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Auto => "auto",
            AuthMethod::Login => "login",
            AuthMethod::Plain => "plain",
            AuthMethod::XOAuth2 => "xoauth2",
            AuthMethod::OAuthBearer => "oauthbearer",
        }
    }

    /// Reads the word [`AuthMethod::name`] writes.
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        METHODS.iter().position(|m| *m == name).map(|i| {
            [
                AuthMethod::Auto,
                AuthMethod::Login,
                AuthMethod::Plain,
                AuthMethod::XOAuth2,
                AuthMethod::OAuthBearer,
            ][i]
        })
    }
}

impl Serialize for Security {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Security {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        Security::from_name(&name).ok_or_else(|| D::Error::unknown_variant(&name, SECURITY))
    }
}

impl Serialize for AuthMethod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for AuthMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        AuthMethod::from_name(&name).ok_or_else(|| D::Error::unknown_variant(&name, METHODS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back() {
        for s in [Security::Tls, Security::StartTls, Security::Cleartext] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Security>(&json).unwrap(), s);
        }
        assert_eq!(Security::from_name("none"), Some(Security::Cleartext));
        for m in METHODS {
            let method = AuthMethod::from_name(m).unwrap();
            assert_eq!(method.name(), *m);
        }
        let e = serde_json::from_str::<Security>("\"ssl\"").unwrap_err();
        assert!(e.to_string().contains("unknown variant `ssl`"), "{e}");
    }
}
