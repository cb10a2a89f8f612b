//! The engine account an account's source login becomes, built from `batch_account` and
//! `batch_task` exactly as a pass builds it (see [`crate::batch::login::account`]), for a page
//! that checks a password before it is stored.

use super::BatchStore;
use crate::batch::error::BatchError;
use crate::batch::login::account;
use crate::engine::Account;
use crate::net::Protocol;
use crate::secret::Secret;

impl BatchStore {
    /// The source server account `id` of the task uses (pinned when it started, else the
    /// task's), and the engine account that logs in there. `secret` stands in for the
    /// account's own password or token (to test one a user typed); `None` uses the stored one.
    /// Fails with [`BatchError::MissingCredentials`] when a password or token it needs is not
    /// there.
    pub fn source_account(
        &self,
        task: &str,
        id: i64,
        secret: Option<&Secret>,
    ) -> Result<(Protocol, Account), BatchError> {
        let conn = self.lock();
        let t = self.task_in(&conn, task)?;
        let Some(a) = self.load_accounts(&conn, task, Some(&[id]))?.pop() else {
            return Err(BatchError::UnknownAccount {
                task: task.to_string(),
                name: format!("#{id}"),
            });
        };
        let (source, _) = a.servers(self, &t)?;
        let login = a.login(self, task)?;
        let stored = match (secret, &a.password) {
            (None, Some(sealed)) => Some(self.open_secret(
                task,
                Some(&a.target),
                "batch_account",
                "password",
                sealed.expose(),
            )?),
            _ => None,
        };
        let own = secret.or(stored.as_ref());
        let engine = account(&source, &login, own, t.source_secret.as_ref()).map_err(|_| {
            BatchError::MissingCredentials {
                task: task.to_string(),
                account: a.target.clone(),
            }
        })?;
        Ok((source.protocol, engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::ImportOptions;

    #[test]
    fn a_candidate_secret_stands_in_for_the_stored_one() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,stored-pw\nu2@new.example,admin/u2,\n",
            ImportOptions::default(),
        )
        .unwrap();
        let a = s.accounts("t").unwrap();
        let (protocol, stored) = s.source_account("t", a[0].id, None).unwrap();
        assert_eq!(protocol, Protocol::Imap);
        assert_eq!(stored.credentials.user, "u1");
        assert_eq!(stored.credentials.secret.expose(), "stored-pw");
        assert_eq!(stored.endpoint.host, "old.example");
        let typed = Secret::new("typed-pw");
        let (_, candidate) = s.source_account("t", a[0].id, Some(&typed)).unwrap();
        assert_eq!(candidate.credentials.secret.expose(), "typed-pw");

        // A delegate login without its admin's password cannot log in.
        let e = s.source_account("t", a[1].id, None).unwrap_err();
        assert!(matches!(e, BatchError::MissingCredentials { .. }), "{e}");
        let (_, delegate) = s.source_account("t", a[1].id, Some(&typed)).unwrap();
        assert_eq!(
            (
                delegate.credentials.user.as_str(),
                delegate.credentials.authzid.as_deref()
            ),
            ("admin", Some("u2"))
        );
        assert!(matches!(
            s.source_account("t", 999_999, None),
            Err(BatchError::UnknownAccount { .. })
        ));
        std::fs::remove_dir_all(dir).ok();
    }
}
