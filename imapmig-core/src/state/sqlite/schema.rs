//! The state file's schema: its tables (in [`MIGRATIONS`]), its version in
//! `PRAGMA user_version`, and the mark that tells an imapmig state file from any other SQLite
//! file (`PRAGMA application_id`). A file of another application, or of a newer imapmig, is
//! refused before anything in it is changed.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::state::StateError;

/// The schema version this build writes, and the newest it can read.
const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id` of an imapmig state file: "IMMG".
const APPLICATION_ID: i64 = 0x494D_4D47;

/// `MIGRATIONS[i]` takes a file from schema version `i` to `i + 1`.
const MIGRATIONS: [&str; 2] = [
    "
    CREATE TABLE folder (
        account            TEXT    NOT NULL,
        folder             TEXT    NOT NULL,
        source_uidvalidity INTEGER NOT NULL,
        dest_folder        TEXT    NOT NULL,
        dest_uidvalidity   INTEGER,
        highest_modseq     INTEGER,
        updated_at         INTEGER NOT NULL,
        PRIMARY KEY (account, folder)
    ) WITHOUT ROWID;
    CREATE TABLE copied (
        account     TEXT    NOT NULL,
        folder      TEXT    NOT NULL,
        src_uid     INTEGER NOT NULL,
        dst_uid     INTEGER,
        fingerprint BLOB    NOT NULL,
        flags       TEXT    NOT NULL,
        size        INTEGER NOT NULL,
        PRIMARY KEY (account, folder, src_uid)
    ) WITHOUT ROWID;
    CREATE TABLE pending (
        account   TEXT    NOT NULL,
        folder    TEXT    NOT NULL,
        src_uid   INTEGER NOT NULL,
        dst_floor INTEGER NOT NULL,
        PRIMARY KEY (account, folder, src_uid)
    ) WITHOUT ROWID;
",
    "
    -- Version 2: the message selection a folder's HIGHESTMODSEQ was recorded under (NULL in
    -- older rows: their next pass reads the folder in full once).
    ALTER TABLE folder ADD COLUMN selection TEXT;
",
];

/// Fails unless the file is empty or an imapmig state file this build can read.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: path.to_path_buf(),
        source,
    };
    // One read transaction: another process may be creating the schema at this very moment,
    // and three separate reads could see half of its work (no mark yet, but tables already).
    let snapshot = conn.unchecked_transaction().map_err(open_err)?;
    let objects: i64 = snapshot
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(open_err)?;
    let app_id: i64 = snapshot
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(open_err)?;
    let version: i64 = snapshot
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    snapshot.finish().map_err(open_err)?;
    let foreign = |detail: String| StateError::Foreign {
        path: path.to_path_buf(),
        detail,
    };
    if app_id == APPLICATION_ID {
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        return Ok(());
    }
    if app_id != 0 {
        return Err(foreign(format!("its application id is {app_id:#x}")));
    }
    if version != 0 || objects != 0 {
        return Err(foreign(format!(
            "it holds {objects} schema objects (user_version {version}) but no imapmig mark"
        )));
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; a file already there is left
/// alone. The version is read inside the write transaction, so two processes opening a new file
/// at once migrate it once.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(open_err)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(open_err)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    tx.commit().map_err(open_err)
}
