//! Who logs in for one account, on each side: the source login forms a CSV may hold and the
//! engine [`Account`]s built from them and the task's settings.
//!
//! The source column of a CSV names a login in one of three forms:
//!
//! * `user1` or `user1@old.example`: the mailbox owner logs in with their own password;
//! * `admin@old.example/user1`: an Exchange-style delegate login, "log in as the admin, act
//!   for user1" (SASL PLAIN with `user1` as the authorization identity, the admin's password);
//! * `user1*master`: a Dovecot-style master-user login (`LOGIN "user1*master"` with the
//!   master's password).
//!
//! Nothing here does I/O.

use std::fmt;

use crate::engine::Account;
use crate::imap::{AuthMethod, Credentials};
use crate::secret::Secret;

use super::task::{Auth, ServerSettings};

/// A source login as the CSV wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceLogin {
    /// The mailbox owner logs in.
    User(String),
    /// An admin logs in and acts for `user` (`admin/user`).
    Delegate {
        /// Who logs in.
        admin: String,
        /// Whose mailbox is read.
        user: String,
    },
    /// A master user logs in as `user*master`.
    Master {
        /// Whose mailbox is read.
        user: String,
        /// The master user's name.
        master: String,
    },
}

/// Why a source login cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Nothing was given.
    #[error("the source login is empty")]
    Empty,
    /// A space, control character or quote: no server has such login names, and they are the
    /// usual sign of a shifted column or a stray quote.
    #[error("the source login {0:?} holds a space, quote or control character")]
    BadCharacter(String),
    /// `admin/user` or `user*master` with one side empty, or both forms at once.
    #[error("the source login {0:?} is neither `user`, `admin/user` nor `user*master`")]
    BadForm(String),
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
}

impl SourceLogin {
    /// Parses the source column.
    pub fn parse(text: &str) -> Result<SourceLogin, LoginError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(LoginError::Empty);
        }
        if !plain_name(t) {
            return Err(LoginError::BadCharacter(t.to_string()));
        }
        let form = || LoginError::BadForm(t.to_string());
        match (t.split_once('/'), t.rsplit_once('*')) {
            (Some(_), Some(_)) => Err(form()),
            (Some((admin, user)), None) => {
                if admin.is_empty() || user.is_empty() || user.contains('/') {
                    return Err(form());
                }
                Ok(SourceLogin::Delegate {
                    admin: admin.to_string(),
                    user: user.to_string(),
                })
            }
            (None, Some((user, master))) => {
                if user.is_empty() || master.is_empty() {
                    return Err(form());
                }
                Ok(SourceLogin::Master {
                    user: user.to_string(),
                    master: master.to_string(),
                })
            }
            (None, None) => Ok(SourceLogin::User(t.to_string())),
        }
    }

    /// Whose mailbox is read.
    pub fn mailbox(&self) -> &str {
        match self {
            SourceLogin::User(u) => u,
            SourceLogin::Delegate { user, .. } | SourceLogin::Master { user, .. } => user,
        }
    }
}

impl fmt::Display for SourceLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceLogin::User(u) => f.write_str(u),
            SourceLogin::Delegate { admin, user } => write!(f, "{admin}/{user}"),
            SourceLogin::Master { user, master } => write!(f, "{user}*{master}"),
        }
    }
}

/// What a login of one side is missing, so the account waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MissingSecret;

/// The credentials of `mailbox` on a server with `auth`, from the account's own secret and the
/// task's. A login form given per account (`admin/user`, `user*master`) wins over the task's
/// auth kind, and then the account's secret is the admin's or master's password.
pub(crate) fn credentials(
    auth: &Auth,
    login: &SourceLogin,
    own_secret: Option<&Secret>,
    task_secret: Option<&Secret>,
) -> Result<Credentials, MissingSecret> {
    let own = || own_secret.cloned().ok_or(MissingSecret);
    let task = || task_secret.cloned().ok_or(MissingSecret);
    Ok(match login {
        SourceLogin::Delegate { admin, user } => Credentials {
            user: admin.clone(),
            secret: own()?,
            method: AuthMethod::Plain,
            authzid: Some(user.clone()),
        },
        SourceLogin::Master { user, master } => Credentials {
            user: format!("{user}*{master}"),
            secret: own()?,
            method: match auth {
                Auth::Password { .. } => auth.method(),
                _ => AuthMethod::Auto,
            },
            authzid: None,
        },
        SourceLogin::User(user) => match auth {
            Auth::Password { .. } | Auth::OAuth2 { .. } => Credentials {
                user: user.clone(),
                secret: own()?,
                method: auth.method(),
                authzid: None,
            },
            Auth::Admin { user: admin } => Credentials {
                user: admin.clone(),
                secret: task()?,
                method: AuthMethod::Plain,
                authzid: Some(user.clone()),
            },
            Auth::MasterUser { master, separator } => Credentials {
                user: format!("{user}{separator}{master}"),
                secret: task()?,
                method: AuthMethod::Auto,
                authzid: None,
            },
        },
    })
}

/// Whether an account with this login needs a secret of its own on a server with `auth`.
pub(crate) fn needs_own_secret(auth: &Auth, login: &SourceLogin) -> bool {
    !matches!(login, SourceLogin::User(_)) || auth.per_account()
}

/// The engine account for one side.
pub(crate) fn account(
    server: &ServerSettings,
    login: &SourceLogin,
    own_secret: Option<&Secret>,
    task_secret: Option<&Secret>,
) -> Result<Account, MissingSecret> {
    Ok(Account {
        endpoint: server.endpoint(),
        credentials: credentials(&server.auth, login, own_secret, task_secret)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::task::{PasswordMechanism, TokenMechanism};

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            SourceLogin::parse(" user1@old.example ").unwrap(),
            SourceLogin::User("user1@old.example".into())
        );
        let d = SourceLogin::parse("admin@example.com/user1").unwrap();
        assert_eq!(
            d,
            SourceLogin::Delegate {
                admin: "admin@example.com".into(),
                user: "user1".into()
            }
        );
        assert_eq!(d.mailbox(), "user1");
        assert_eq!(d.to_string(), "admin@example.com/user1");
        let m = SourceLogin::parse("user1*master").unwrap();
        assert_eq!(m.mailbox(), "user1");
        assert_eq!(m.to_string(), "user1*master");
    }

    #[test]
    fn malformed_logins_say_why() {
        assert_eq!(SourceLogin::parse("  "), Err(LoginError::Empty));
        for bad in ["/user", "admin/", "a/b/c", "*master", "user*", "a/b*c"] {
            assert!(
                matches!(SourceLogin::parse(bad), Err(LoginError::BadForm(_))),
                "{bad}"
            );
        }
        for bad in ["two words", "quo\"te", "tab\there"] {
            assert!(
                matches!(SourceLogin::parse(bad), Err(LoginError::BadCharacter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_follow_the_login_form_then_the_task() {
        let pw = Auth::Password {
            mechanism: PasswordMechanism::Auto,
        };
        let own = Secret::new("own");
        let task = Secret::new("task");
        let user = SourceLogin::User("u1".into());
        let c = credentials(&pw, &user, Some(&own), None).unwrap();
        assert_eq!(
            (c.user.as_str(), c.secret.expose(), c.authzid),
            ("u1", "own", None)
        );
        assert_eq!(
            credentials(&pw, &user, None, Some(&task)),
            Err(MissingSecret)
        );

        let delegate = SourceLogin::parse("admin/u1").unwrap();
        let c = credentials(&pw, &delegate, Some(&own), None).unwrap();
        assert_eq!(c.user, "admin");
        assert_eq!(c.authzid.as_deref(), Some("u1"));
        assert_eq!(c.method, AuthMethod::Plain);

        let admin = Auth::Admin {
            user: "root".into(),
        };
        let c = credentials(&admin, &user, None, Some(&task)).unwrap();
        assert_eq!((c.user.as_str(), c.secret.expose()), ("root", "task"));
        assert_eq!(c.authzid.as_deref(), Some("u1"));
        assert!(!needs_own_secret(&admin, &user));
        assert!(needs_own_secret(&admin, &delegate));

        let master = Auth::MasterUser {
            master: "m".into(),
            separator: "*".into(),
        };
        let c = credentials(&master, &user, None, Some(&task)).unwrap();
        assert_eq!(c.user, "u1*m");

        let oauth = Auth::OAuth2 {
            mechanism: TokenMechanism::OAuthBearer,
        };
        let c = credentials(&oauth, &user, Some(&own), None).unwrap();
        assert_eq!(c.method, AuthMethod::OAuthBearer);
    }
}
