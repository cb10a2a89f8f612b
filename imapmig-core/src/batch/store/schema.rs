//! The batch tables and their schema version: `batch_meta` holds the version, and
//! [`MIGRATIONS`] take the tables from one version to the next, in the transaction that opens
//! the store. The version is the batch store's own, never `PRAGMA user_version` (which the
//! sync state owns).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::batch::error::BatchError;

/// The batch schema version this build writes, and the newest it reads.
const SCHEMA_VERSION: i64 = 2;

/// `MIGRATIONS[i]` takes the batch tables from version `i` to `i + 1`.
const MIGRATIONS: [&str; 2] = [
    "
    CREATE TABLE batch_task (
        name               TEXT    PRIMARY KEY,
        settings           TEXT    NOT NULL,
        source_secret      TEXT,
        destination_secret TEXT,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL
    );
    CREATE TABLE batch_account (
        id              INTEGER PRIMARY KEY,
        task            TEXT    NOT NULL REFERENCES batch_task(name),
        source          TEXT    NOT NULL,
        mailbox         TEXT    NOT NULL COLLATE NOCASE,
        target          TEXT    NOT NULL COLLATE NOCASE,
        password        TEXT,
        target_password TEXT,
        status          TEXT    NOT NULL,
        failure         TEXT,
        control         TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        folders_done    INTEGER NOT NULL DEFAULT 0,
        folders_total   INTEGER NOT NULL DEFAULT 0,
        messages        INTEGER NOT NULL DEFAULT 0,
        bytes           INTEGER NOT NULL DEFAULT 0,
        refused         INTEGER NOT NULL DEFAULT 0,
        passes          INTEGER NOT NULL DEFAULT 0,
        source_pin      TEXT,
        destination_pin TEXT,
        source_host     TEXT,
        destination_host TEXT,
        csv_line        INTEGER,
        created_at      INTEGER NOT NULL,
        started_at      INTEGER,
        synced_at       INTEGER,
        last_pass_at    INTEGER,
        next_run_at     INTEGER,
        window_ends_at  INTEGER,
        updated_at      INTEGER NOT NULL,
        UNIQUE (task, mailbox, target)
    );
    CREATE INDEX batch_account_due ON batch_account (task, status, next_run_at);
    CREATE INDEX batch_account_target ON batch_account (task, target);
    CREATE TABLE batch_refusal (
        account  INTEGER NOT NULL,
        folder   TEXT    NOT NULL,
        uid      INTEGER NOT NULL,
        reason   TEXT    NOT NULL,
        first_at INTEGER NOT NULL,
        last_at  INTEGER NOT NULL,
        PRIMARY KEY (account, folder, uid)
    ) WITHOUT ROWID;
    CREATE TABLE batch_audit (
        id      INTEGER PRIMARY KEY,
        task    TEXT    NOT NULL,
        account INTEGER,
        at      INTEGER NOT NULL,
        event   TEXT    NOT NULL
    );
    CREATE INDEX batch_audit_task ON batch_audit (task, id);
    CREATE TABLE batch_lease (
        task         TEXT    PRIMARY KEY,
        pid          INTEGER NOT NULL,
        host         TEXT    NOT NULL,
        token        TEXT    NOT NULL,
        heartbeat_at INTEGER NOT NULL
    ) WITHOUT ROWID;
",
    "
    CREATE INDEX batch_account_synced ON batch_account (task, synced_at);
    CREATE TABLE batch_console (
        name       TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE batch_invitation (
        token_hash TEXT    PRIMARY KEY,
        task       TEXT    NOT NULL REFERENCES batch_task(name),
        account    INTEGER NOT NULL REFERENCES batch_account(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX batch_invitation_account ON batch_invitation (account);
    CREATE INDEX batch_audit_account ON batch_audit (account, id);
",
];

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), BatchError> {
    let open_err = |source| BatchError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS batch_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    )
    .map_err(open_err)?;
    let version: i64 = tx
        .query_row(
            "SELECT value FROM batch_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(open_err)?
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(BatchError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return tx.commit().map_err(open_err);
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(open_err)?;
    }
    tx.execute(
        "INSERT INTO batch_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = ?1",
        [SCHEMA_VERSION],
    )
    .map_err(open_err)?;
    tx.commit().map_err(open_err)
}
