//! The login check behind the self-service pages: the password a user typed is tried against
//! the account's source server at once, and the answer is put in words the user can act on
//! ([`Outcome`]). The password goes from the form into a [`Secret`], from there into the engine
//! account, and (only when the login worked) into the store; it is never logged or shown.

use std::time::Duration;

use imapmig_core::batch::Status;
use imapmig_core::engine::{self, EngineError, FailureCategory, Side};
use imapmig_core::imap::error::ImapError;
use imapmig_core::net::Protocol;
use imapmig_core::secret::Secret;
use imapmig_core::source::AccessError;

use crate::error::AppError;
use crate::state::{AppState, RateLimiter};

/// How long the check may take, connecting and logging in included.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// Checks allowed per account in [`ATTEMPT_WINDOW`] (from any address, by link or open form).
pub const ACCOUNT_ATTEMPTS: usize = 5;
/// Checks allowed per client address in [`ATTEMPT_WINDOW`].
pub const CLIENT_ATTEMPTS: usize = 20;
/// The window of both limits.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// What a check came to, as the user sees it (`#outcome[data-outcome=...]`, `"outcome"` in
/// JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The login worked and the account starts.
    Ok,
    /// The server refused the password.
    WrongPassword,
    /// The server refused because IMAP (or POP) access is off, or it wants an app password or
    /// a login on its web site first.
    ImapDisabled,
    /// The server could not be reached, did not answer in time, or was busy.
    Unreachable,
    /// TLS with the server failed (the admin's settings, not the user's password).
    Tls,
    /// The server refused for another reason; its words (never a secret).
    Refused(String),
    /// Too many attempts for this account or from this address.
    RateLimited,
    /// The invitation was used already.
    Used,
    /// The open form: the password is right, but the account's move is under way already (or
    /// was stopped by the admin); nothing changed.
    AlreadyStarted,
    /// The open form: the address is not in a task, or the password was refused; the two are
    /// told apart to nobody.
    NotStarted,
}

impl Outcome {
    /// The name in `data-outcome` and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::WrongPassword => "wrong_password",
            Outcome::ImapDisabled => "imap_disabled",
            Outcome::Unreachable => "unreachable",
            Outcome::Tls => "tls",
            Outcome::Refused(_) => "refused",
            Outcome::RateLimited => "rate_limited",
            Outcome::Used => "used",
            Outcome::AlreadyStarted => "already_started",
            Outcome::NotStarted => "not_started",
        }
    }

    /// The HTTP status of the answer: 200 when it worked, 422 when the user can fix it (the
    /// password, the mailbox's settings), 503 when the server side failed, 429 for too many
    /// attempts, 410 for a used link.
    pub fn status_code(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Outcome::Ok | Outcome::AlreadyStarted => StatusCode::OK,
            Outcome::WrongPassword
            | Outcome::ImapDisabled
            | Outcome::Refused(_)
            | Outcome::NotStarted => StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::Unreachable | Outcome::Tls => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Used => StatusCode::GONE,
        }
    }

    /// What happened, in plain words.
    pub fn message(&self) -> String {
        match self {
            Outcome::Ok => "Your old mail server accepted the password. Your mail is being \
                            moved now; you can close this page or keep it open to follow."
                .into(),
            Outcome::WrongPassword => "The old mail server did not accept this password. \
                                       Check it, or use an app password if your provider \
                                       requires one."
                .into(),
            Outcome::ImapDisabled => "The old mail server refused the login because access \
                                      for mail programs (IMAP/POP) is turned off, or because it \
                                      wants an app password or a login on its web site first."
                .into(),
            Outcome::Unreachable => "The old mail server could not be reached just now.".into(),
            Outcome::Tls => "A secure connection to the old mail server could not be made.".into(),
            Outcome::Refused(words) => format!("The old mail server refused: {words}"),
            Outcome::RateLimited => "Too many attempts.".into(),
            Outcome::Used => "This link was used already: the migration has started.".into(),
            Outcome::AlreadyStarted => {
                "The move of this mailbox has already started; nothing was changed.".into()
            }
            Outcome::NotStarted => {
                "We could not start a migration for this address with this password.".into()
            }
        }
    }

    /// What the user can do about it.
    pub fn what_to_do(&self) -> &'static str {
        match self {
            Outcome::Ok => {
                "Nothing more to do. Do not change the old password until the move \
                            is finished."
            }
            Outcome::WrongPassword => {
                "Type the password again. If your provider uses \
                                       two-step verification, make an app password in its \
                                       security settings and use that instead."
            }
            Outcome::ImapDisabled => {
                "Open the old mailbox's settings on its web site, turn on \
                                      IMAP access (or make an app password), then try again \
                                      here."
            }
            Outcome::Unreachable => {
                "There is nothing wrong with your password that we know \
                                     of. Try again later; if it keeps failing, tell the \
                                     administrator who sent you this link."
            }
            Outcome::Tls => {
                "This is a setting on our side: tell the administrator who sent \
                             you this link."
            }
            Outcome::Refused(_) => {
                "If the words above do not tell you what to change, tell \
                                    the administrator who sent you this link."
            }
            Outcome::RateLimited => "Wait a quarter of an hour, then try again.",
            Outcome::Used => "Open the link again to follow the progress.",
            Outcome::AlreadyStarted => {
                "Nothing to do. If you changed the old password, tell \
                                        your administrator."
            }
            Outcome::NotStarted => {
                "Check the address and the password. If they are right, \
                                    ask your administrator whether your mailbox is part of the \
                                    move."
            }
        }
    }
}

/// Words by which servers say that the login failed because mail-program access is off or
/// needs something else first. No response code tells this apart (RFC 5530 has only
/// AUTHENTICATIONFAILED), and the reading only chooses the words the user is shown: it never
/// changes what the console does.
fn says_access_disabled(words: &str) -> bool {
    let w = words.to_ascii_lowercase();
    let protocol = w.contains("imap") || w.contains("pop");
    let off = w.contains("disabled") || w.contains("not enabled") || w.contains("turned off");
    (protocol && off)
        || [
            "application-specific password",
            "application specific password",
            "app password",
            "app-specific password",
            "web login required",
            "webalert",
            "log in via your web browser",
            "login via your web browser",
            "sign in via your web browser",
        ]
        .iter()
        .any(|p| w.contains(p))
}

/// The server's own words in a failure, when it said any.
fn server_words(e: &EngineError) -> Option<String> {
    match e.access()? {
        AccessError::Imap(ImapError::AuthenticationFailed { server_says, .. }) => {
            Some(server_says.clone())
        }
        AccessError::Imap(ImapError::Refused { status, .. }) => Some(status.describe()),
        AccessError::Imap(ImapError::Closed { bye, .. }) => bye.clone(),
        AccessError::Server { detail, .. } => Some(detail.clone()),
        _ => None,
    }
}

/// What a failed check means for the user.
pub fn classify(e: &EngineError) -> Outcome {
    let words = server_words(e);
    if words.as_deref().is_some_and(says_access_disabled) {
        return Outcome::ImapDisabled;
    }
    let c = e.classify();
    match c.category {
        FailureCategory::Authentication => Outcome::WrongPassword,
        FailureCategory::Connection | FailureCategory::Throttled => Outcome::Unreachable,
        FailureCategory::Tls => Outcome::Tls,
        _ if c.transient => Outcome::Unreachable,
        _ => Outcome::Refused(words.unwrap_or_else(|| e.to_string())),
    }
}

/// Counts an attempt against the client address and the account; `false` when either has
/// used up its attempts.
pub fn allow(state: &AppState, client: std::net::IpAddr, task: &str, id: i64) -> bool {
    allow_client(state, client)
        && state.attempts.allow(
            &format!("selfservice/account/{task}/{id}"),
            ACCOUNT_ATTEMPTS,
            ATTEMPT_WINDOW,
        )
}

/// Counts an attempt against the client address only (before an account is known).
pub fn allow_client(state: &AppState, client: std::net::IpAddr) -> bool {
    state.attempts.allow(
        &RateLimiter::client("selfservice", client),
        CLIENT_ATTEMPTS,
        ATTEMPT_WINDOW,
    )
}

/// Tries `secret` against the source server of account `id`: `Ok(None)` when the login
/// worked, `Ok(Some(outcome))` when it did not. Changes nothing in the store.
pub async fn try_login(
    state: &AppState,
    task: &str,
    id: i64,
    secret: &Secret,
) -> Result<Option<Outcome>, AppError> {
    let (t, s) = (task.to_string(), secret.clone());
    let (protocol, account) = state
        .with_store(move |store| store.source_account(&t, id, Some(&s)))
        .await?;
    let check = async {
        match protocol {
            Protocol::Pop3 => engine::check_pop3(&account).await,
            _ => engine::check(Side::Source, &account).await,
        }
    };
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(classify(&e)),
        Err(_) => Some(Outcome::Unreachable),
    };
    match &outcome {
        None => tracing::info!(
            task,
            account = id,
            "self-service: the source accepted the login"
        ),
        Some(o) => {
            tracing::info!(
                task,
                account = id,
                outcome = o.as_str(),
                "self-service: login check failed"
            )
        }
    }
    Ok(outcome)
}

/// Whether an account may be given credentials through self-service: it waits for them, or
/// failed because its login was refused.
pub fn takes_credentials(status: Status, failure: Option<FailureCategory>) -> bool {
    status == Status::WaitingForCredentials
        || (status == Status::Failed && failure == Some(FailureCategory::Authentication))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imapmig_core::wire::{StatusKind, StatusResponse};

    fn auth_failed(words: &str) -> EngineError {
        EngineError::Server {
            side: Side::Source,
            source: AccessError::Imap(ImapError::AuthenticationFailed {
                host: "old.example".into(),
                user: "u".into(),
                server_says: words.into(),
            }),
        }
    }

    #[test]
    fn refused_logins_become_wrong_password_or_access_disabled() {
        assert_eq!(
            classify(&auth_failed(
                "[AUTHENTICATIONFAILED] Authentication failed."
            )),
            Outcome::WrongPassword
        );
        for words in [
            "[ALERT] Your account is not enabled for IMAP use.",
            "[ALERT] Application-specific password required: https://support.google.com/",
            "[WEBALERT https://accounts.google.com/] Web login required.",
            "IMAP access is disabled for this mailbox",
            "POP3 is turned off for this account",
        ] {
            assert_eq!(
                classify(&auth_failed(words)),
                Outcome::ImapDisabled,
                "{words}"
            );
        }
    }

    #[test]
    fn connection_failures_are_unreachable_and_other_refusals_keep_their_words() {
        let connect = EngineError::Server {
            side: Side::Source,
            source: AccessError::Imap(ImapError::Connect {
                host: "old.example".into(),
                port: 993,
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            }),
        };
        assert_eq!(classify(&connect), Outcome::Unreachable);
        let tls = EngineError::Server {
            side: Side::Source,
            source: AccessError::Imap(ImapError::Tls {
                host: "old.example".into(),
                detail: "unknown issuer".into(),
            }),
        };
        assert_eq!(classify(&tls), Outcome::Tls);
        let refused = EngineError::Server {
            side: Side::Source,
            source: AccessError::Imap(ImapError::Refused {
                host: "old.example".into(),
                command: "LIST",
                folder: None,
                status: Box::new(StatusResponse {
                    tag: Some("a3".into()),
                    kind: StatusKind::No,
                    code: None,
                    text: "mailbox locked by the provider".into(),
                }),
            }),
        };
        assert_eq!(
            classify(&refused),
            Outcome::Refused("mailbox locked by the provider".into())
        );
    }

    #[test]
    fn only_waiting_or_refused_accounts_take_credentials() {
        assert!(takes_credentials(Status::WaitingForCredentials, None));
        assert!(takes_credentials(
            Status::Failed,
            Some(FailureCategory::Authentication)
        ));
        assert!(!takes_credentials(
            Status::Failed,
            Some(FailureCategory::Quota)
        ));
        assert!(!takes_credentials(Status::Running, None));
    }
}
