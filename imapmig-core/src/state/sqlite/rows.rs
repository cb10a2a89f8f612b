//! Values in and out of the state file: the context every call reports its errors with
//! ([`Ctx`]), column readers and row decoders that describe damage instead of panicking, and
//! the checks on what a caller hands in (sizes above SQLite's integers, UID maps that are not
//! one to one).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::Row;

use crate::model::{Flags, Uid, UidValidity};
use crate::state::{CopiedRecord, FolderRecord, PendingRecord, StateError};

/// Where an operation happens, for its errors.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) account: &'a str,
    pub(super) folder: Option<&'a str>,
}

impl Ctx<'_> {
    pub(super) fn sql(
        &self,
        what: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Sqlite {
            what,
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder.map(str::to_string),
            source: Box::new(source),
        }
    }

    pub(super) fn folder(&self) -> String {
        self.folder.unwrap_or_default().to_string()
    }

    pub(super) fn corrupt(&self, uid: Option<Uid>, detail: String) -> StateError {
        StateError::Corrupt {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
            uid,
            detail,
        }
    }

    pub(super) fn unknown_folder(&self) -> StateError {
        StateError::UnknownFolder {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
        }
    }

    pub(super) fn invalid_input(&self, detail: String) -> StateError {
        StateError::InvalidInput {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
            detail,
        }
    }
}

// Column readers: a value of the wrong type or range is a description of the damage, turned
// into `StateError::Corrupt` by the caller, which knows the row.

fn col_i64(row: &Row<'_>, idx: usize, name: &str) -> Result<i64, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Integer(i)) => Ok(i),
        Ok(other) => Err(format!("{name} is {:?}, not an integer", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_opt_i64(row: &Row<'_>, idx: usize, name: &str) -> Result<Option<i64>, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Null) => Ok(None),
        Ok(ValueRef::Integer(i)) => Ok(Some(i)),
        Ok(other) => Err(format!("{name} is {:?}, not an integer", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

pub(super) fn col_text(row: &Row<'_>, idx: usize, name: &str) -> Result<String, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t)
            .map(str::to_string)
            .map_err(|e| format!("{name} is not UTF-8: {e}")),
        Ok(other) => Err(format!("{name} is {:?}, not text", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_opt_text(row: &Row<'_>, idx: usize, name: &str) -> Result<Option<String>, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Null) => Ok(None),
        Ok(_) => col_text(row, idx, name).map(Some),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_u32(row: &Row<'_>, idx: usize, name: &str) -> Result<u32, String> {
    to_u32(col_i64(row, idx, name)?, name)
}

fn to_u32(v: i64, name: &str) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{name} {v} is out of range"))
}

pub(super) fn to_u64(v: i64, name: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{name} {v} is negative"))
}

pub(super) fn decode_folder(row: &Row<'_>, first: usize) -> Result<FolderRecord, String> {
    Ok(FolderRecord {
        source_uidvalidity: UidValidity(col_u32(row, first, "source_uidvalidity")?),
        dest_folder: col_text(row, first + 1, "dest_folder")?,
        dest_uidvalidity: col_opt_i64(row, first + 2, "dest_uidvalidity")?
            .map(|v| to_u32(v, "dest_uidvalidity").map(UidValidity))
            .transpose()?,
        highest_modseq: col_opt_i64(row, first + 3, "highest_modseq")?
            .map(|v| to_u64(v, "highest_modseq"))
            .transpose()?,
        updated_at: col_i64(row, first + 4, "updated_at")?,
        selection: col_opt_text(row, first + 5, "selection")?,
    })
}

/// Decodes `src_uid, dst_uid, fingerprint, flags, size`; on damage, the UID if it was readable.
pub(super) fn decode_copied(row: &Row<'_>) -> Result<CopiedRecord, (Option<Uid>, String)> {
    let src_uid = Uid(col_u32(row, 0, "src_uid").map_err(|d| (None, d))?);
    let at = |d| (Some(src_uid), d);
    let dst_uid = col_opt_i64(row, 1, "dst_uid")
        .and_then(|v| v.map(|v| to_u32(v, "dst_uid").map(Uid)).transpose())
        .map_err(at)?;
    let fingerprint = match row.get_ref(2) {
        Ok(ValueRef::Blob(b)) => <[u8; 32]>::try_from(b)
            .map_err(|_| at(format!("fingerprint is {} bytes, not 32", b.len())))?,
        Ok(other) => {
            return Err(at(format!(
                "fingerprint is {:?}, not a blob",
                other.data_type()
            )))
        }
        Err(e) => return Err(at(format!("fingerprint: {e}"))),
    };
    let flags = Flags::from_line(&col_text(row, 3, "flags").map_err(at)?);
    let size = col_i64(row, 4, "size")
        .and_then(|v| to_u64(v, "size"))
        .map_err(at)?;
    Ok(CopiedRecord {
        src_uid,
        dst_uid,
        fingerprint,
        flags,
        size,
    })
}

pub(super) fn decode_pending(row: &Row<'_>) -> Result<PendingRecord, (Option<Uid>, String)> {
    let src_uid = Uid(col_u32(row, 0, "src_uid").map_err(|d| (None, d))?);
    let dst_floor = col_u32(row, 1, "dst_floor").map_err(|d| (Some(src_uid), d))?;
    Ok(PendingRecord { src_uid, dst_floor })
}

/// A size or MODSEQ as SQLite's signed integer; IMAP keeps both below 2^63.
pub(super) fn to_i64(
    ctx: &Ctx<'_>,
    v: u64,
    name: &str,
    uid: Option<Uid>,
) -> Result<i64, StateError> {
    i64::try_from(v).map_err(|_| {
        let at = uid.map(|u| format!(" of UID {u}")).unwrap_or_default();
        ctx.invalid_input(format!("{name}{at} is {v}, above 2^63 - 1"))
    })
}

pub(super) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Checks that a UID map is a one-to-one function: no key twice, no value twice.
pub(super) fn check_map(
    ctx: &Ctx<'_>,
    map: &[(Uid, Uid)],
    key: &str,
) -> Result<HashMap<i64, i64>, StateError> {
    let mut by_key = HashMap::with_capacity(map.len());
    let mut values = HashSet::with_capacity(map.len());
    for &(k, v) in map {
        if by_key.insert(i64::from(k.0), i64::from(v.0)).is_some() {
            return Err(ctx.invalid_input(format!("{key} UID {k} is mapped twice")));
        }
        if !values.insert(v) {
            return Err(ctx.invalid_input(format!(
                "two UIDs are mapped to UID {v}, which would merge two messages"
            )));
        }
    }
    Ok(by_key)
}
