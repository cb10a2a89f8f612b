//! Self-service invitations (`batch_invitation`): a link the admin sends to a mailbox's user,
//! who gives their own password or token through it. Only a hash of the link's token is
//! stored, so the file cannot be used to accept an invitation. An invitation works once,
//! until it expires, and a newer one for the same account withdraws it.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use time::OffsetDateTime;

use super::{at, now, BatchStore};
use crate::batch::audit::AuditEvent;
use crate::batch::error::{BatchError, InvitationRefusal};
use crate::batch::status::Status;
use crate::secret::Secret;

/// An invitation, and the account it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// The task.
    pub task: String,
    /// The account's id in the task.
    pub account: i64,
    /// The account's destination mailbox.
    pub target: String,
    /// The account's source login.
    pub source: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

/// Errors about an invitation found by its token name no task until it is found.
const NO_TASK: &str = "";

impl BatchStore {
    /// Stores a new invitation for account `id` of the task. The caller made a random token and
    /// passes only its hash (hex SHA-256, say). An older unused invitation of the same account
    /// is withdrawn.
    pub fn create_invitation(
        &self,
        task: &str,
        id: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<(), BatchError> {
        let when = now();
        self.write("make an invitation", task, |tx| {
            self.task_in(tx, task)?;
            let Some(a) = self.load_accounts(tx, task, Some(&[id]))?.pop() else {
                return Err(BatchError::UnknownAccount {
                    task: task.to_string(),
                    name: format!("#{id}"),
                });
            };
            let err = self.sql("make an invitation", task, Some(&a.target));
            tx.execute(
                "DELETE FROM batch_invitation WHERE account = ?1 AND used_at IS NULL",
                [id],
            )
            .map_err(&err)?;
            tx.execute(
                "INSERT INTO batch_invitation (token_hash, task, account, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token_hash, task, id, when, expires_at.unix_timestamp()],
            )
            .map_err(&err)?;
            self.audit_in(
                tx,
                task,
                Some(id),
                &AuditEvent::InvitationCreated { expires_at },
                when,
            )
        })
    }

    /// The invitation with this token hash, in any task, or `None`.
    pub fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>, BatchError> {
        let conn = self.lock();
        self.invitation_in(&conn, token_hash)
    }

    fn invitation_in(
        &self,
        conn: &rusqlite::Connection,
        token_hash: &str,
    ) -> Result<Option<Invitation>, BatchError> {
        conn.prepare_cached(
            "SELECT i.task, i.account, a.target, a.source, i.created_at, i.expires_at, i.used_at
             FROM batch_invitation i JOIN batch_account a ON a.id = i.account
             WHERE i.token_hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row([token_hash], |r| {
                Ok(Invitation {
                    task: r.get(0)?,
                    account: r.get(1)?,
                    target: r.get(2)?,
                    source: r.get(3)?,
                    created_at: at(r.get(4)?),
                    expires_at: at(r.get(5)?),
                    used_at: r.get::<_, Option<i64>>(6)?.map(at),
                })
            })
            .optional()
        })
        .map_err(self.sql("read an invitation", NO_TASK, None))
    }

    /// Accepts an invitation: in one transaction, refuses an unknown, used or expired one
    /// ([`BatchError::Invitation`], nothing changed), marks it used and supplies the account's
    /// password or token as [`BatchStore::supply_credentials`] does. Returns the account's
    /// new status.
    pub fn accept_invitation(
        &self,
        token_hash: &str,
        secret: Secret,
    ) -> Result<Status, BatchError> {
        let when = now();
        self.write("accept an invitation", NO_TASK, |tx| {
            let refuse = |refusal| Err(BatchError::Invitation { refusal });
            let Some(inv) = self.invitation_in(tx, token_hash)? else {
                return refuse(InvitationRefusal::Unknown);
            };
            if inv.used_at.is_some() {
                return refuse(InvitationRefusal::Used);
            }
            if inv.expires_at.unix_timestamp() <= when {
                return refuse(InvitationRefusal::Expired);
            }
            self.use_invitation(tx, &inv, token_hash, when)?;
            let t = self.task_in(tx, &inv.task)?;
            self.set_credentials_in(tx, &t, inv.account, &secret, when)
        })
    }

    fn use_invitation(
        &self,
        tx: &Transaction<'_>,
        inv: &Invitation,
        token_hash: &str,
        when: i64,
    ) -> Result<(), BatchError> {
        tx.execute(
            "UPDATE batch_invitation SET used_at = ?2 WHERE token_hash = ?1",
            params![token_hash, when],
        )
        .map_err(self.sql("accept an invitation", &inv.task, Some(&inv.target)))?;
        self.audit_in(
            tx,
            &inv.task,
            Some(inv.account),
            &AuditEvent::InvitationAccepted,
            when,
        )
    }

    /// The ids of the task's accounts waiting for credentials, in order (whom to invite).
    pub fn waiting_for_credentials(&self, task: &str) -> Result<Vec<i64>, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        conn.prepare_cached(
            "SELECT id FROM batch_account WHERE task = ?1 AND status = ?2 ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map(params![task, Status::WaitingForCredentials.as_str()], |r| {
                r.get(0)
            })?
            .collect()
        })
        .map_err(self.sql("find accounts waiting for credentials", task, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::ImportOptions;

    fn in_a_day() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::days(1)
    }

    #[test]
    fn an_invitation_supplies_credentials_once() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,\nu2@new.example,u2,pw\nu3@new.example,u3,\n",
            ImportOptions::default(),
        )
        .unwrap();
        let waiting = s.waiting_for_credentials("t").unwrap();
        let a = s.accounts("t").unwrap();
        assert_eq!(waiting, vec![a[0].id, a[2].id]);
        let id = waiting[0];

        s.create_invitation("t", id, "hash-old", in_a_day())
            .unwrap();
        // A newer invitation withdraws the older unused one.
        s.create_invitation("t", id, "hash-new", in_a_day())
            .unwrap();
        assert_eq!(s.invitation("hash-old").unwrap(), None);
        let inv = s.invitation("hash-new").unwrap().unwrap();
        assert_eq!(
            (
                inv.task.as_str(),
                inv.account,
                inv.target.as_str(),
                inv.source.as_str()
            ),
            ("t", id, "u1@new.example", "u1")
        );
        assert_eq!(inv.used_at, None);

        let refused = |hash: &str| match s.accept_invitation(hash, Secret::new("s3cret-pw")) {
            Err(BatchError::Invitation { refusal }) => refusal,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused("hash-old"), InvitationRefusal::Unknown);
        assert_eq!(
            s.accept_invitation("hash-new", Secret::new("s3cret-pw"))
                .unwrap(),
            Status::Scheduled
        );
        assert!(s.invitation("hash-new").unwrap().unwrap().used_at.is_some());
        assert!(s.account("t", id).unwrap().has_credentials);
        assert_eq!(refused("hash-new"), InvitationRefusal::Used);
        // A used invitation stays when a new one is made.
        s.create_invitation("t", id, "hash-third", in_a_day())
            .unwrap();
        assert!(s.invitation("hash-new").unwrap().is_some());

        // An expired one changes nothing.
        let other = waiting[1];
        s.create_invitation(
            "t",
            other,
            "hash-late",
            OffsetDateTime::now_utc() - time::Duration::seconds(1),
        )
        .unwrap();
        assert_eq!(refused("hash-late"), InvitationRefusal::Expired);
        assert_eq!(
            s.account("t", other).unwrap().status,
            Status::WaitingForCredentials
        );
        assert_eq!(s.waiting_for_credentials("t").unwrap(), vec![other]);
        assert!(matches!(
            s.create_invitation("t", 999_999, "x", in_a_day()),
            Err(BatchError::UnknownAccount { .. })
        ));
        assert_eq!(
            BatchError::Invitation {
                refusal: InvitationRefusal::Expired
            }
            .kind(),
            crate::batch::BatchErrorKind::NotAllowed
        );

        let log = s.audit("t", None, 1000).unwrap();
        let kinds: Vec<_> = log
            .iter()
            .filter(|r| r.account.as_deref() == Some("u1@new.example"))
            .map(|r| r.event["event"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "invitation_created",
                "invitation_created",
                "invitation_accepted",
                "credentials_supplied",
                "status_changed",
                "invitation_created",
            ]
        );
        assert!(log.iter().all(|r| !r.to_json_line().contains("s3cret-pw")));
        assert!(log.iter().all(|r| !r.to_json_line().contains("hash-")));
        std::fs::remove_dir_all(dir).ok();
    }
}
