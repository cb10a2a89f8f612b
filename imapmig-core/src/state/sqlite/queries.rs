//! The [`StateStore`] contract on SQLite: one query (or one transaction) per call, each
//! selecting on a prefix of its table's primary key.

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};

use super::rows::{
    check_map, col_text, decode_copied, decode_folder, decode_pending, now, to_i64, to_u64, Ctx,
};
use super::SqliteStore;
use crate::model::{Flags, Uid, UidValidity};
use crate::state::{CopiedRecord, FolderRecord, PendingRecord, StateError, StateStore};

impl StateStore for SqliteStore {
    fn folder(&self, account: &str, folder: &str) -> Result<Option<FolderRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT source_uidvalidity, dest_folder, dest_uidvalidity, highest_modseq, \
                 updated_at, selection FROM folder WHERE account = ?1 AND folder = ?2",
            )
            .map_err(ctx.sql("read folder"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read folder"))?;
        match rows.next().map_err(ctx.sql("read folder"))? {
            Some(row) => decode_folder(row, 0)
                .map(Some)
                .map_err(|d| ctx.corrupt(None, d)),
            None => Ok(None),
        }
    }

    fn put_folder(
        &self,
        account: &str,
        folder: &str,
        rec: &FolderRecord,
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        let modseq = rec
            .highest_modseq
            .map(|m| to_i64(&ctx, m, "HIGHESTMODSEQ", None))
            .transpose()?;
        self.write(&ctx, "store folder", |tx| {
            tx.prepare_cached(
                "INSERT INTO folder (account, folder, source_uidvalidity, dest_folder, \
                 dest_uidvalidity, highest_modseq, updated_at, selection) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (account, folder) DO UPDATE SET \
                 source_uidvalidity = excluded.source_uidvalidity, \
                 dest_folder = excluded.dest_folder, \
                 dest_uidvalidity = excluded.dest_uidvalidity, \
                 highest_modseq = excluded.highest_modseq, \
                 updated_at = excluded.updated_at, \
                 selection = excluded.selection",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    account,
                    folder,
                    rec.source_uidvalidity.0,
                    rec.dest_folder,
                    rec.dest_uidvalidity.map(|v| v.0),
                    modseq,
                    rec.updated_at,
                    rec.selection,
                ])
            })
            .map_err(ctx.sql("store folder"))?;
            Ok(())
        })
    }

    fn folders(&self, account: &str) -> Result<Vec<(String, FolderRecord)>, StateError> {
        let ctx = self.ctx(account, None);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT folder, source_uidvalidity, dest_folder, dest_uidvalidity, \
                 highest_modseq, updated_at, selection FROM folder WHERE account = ?1 \
                 ORDER BY folder",
            )
            .map_err(ctx.sql("list folders"))?;
        let mut rows = stmt
            .query(params![account])
            .map_err(ctx.sql("list folders"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("list folders"))? {
            let name = col_text(row, 0, "folder").map_err(|d| ctx.corrupt(None, d))?;
            let rec = decode_folder(row, 1).map_err(|d| {
                Ctx {
                    folder: Some(&name),
                    ..self.ctx(account, None)
                }
                .corrupt(None, d)
            })?;
            out.push((name, rec));
        }
        Ok(out)
    }

    fn copied(&self, account: &str, folder: &str) -> Result<Vec<CopiedRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT src_uid, dst_uid, fingerprint, flags, size FROM copied \
                 WHERE account = ?1 AND folder = ?2 ORDER BY src_uid",
            )
            .map_err(ctx.sql("read copied"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read copied"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("read copied"))? {
            out.push(decode_copied(row).map_err(|(uid, d)| ctx.corrupt(uid, d))?);
        }
        Ok(out)
    }

    fn copied_count(&self, account: &str, folder: &str) -> Result<u64, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM copied WHERE account = ?1 AND folder = ?2")
            .and_then(|mut stmt| stmt.query_row(params![account, folder], |r| r.get(0)))
            .map_err(ctx.sql("count copied"))?;
        to_u64(n, "count").map_err(|d| ctx.corrupt(None, d))
    }

    fn add_pending(
        &self,
        account: &str,
        folder: &str,
        batch: &[PendingRecord],
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "add pending", |tx| {
            let mut is_copied = tx
                .prepare_cached(
                    "SELECT 1 FROM copied WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("add pending"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending (account, folder, src_uid, dst_floor) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account, folder, src_uid) \
                     DO UPDATE SET dst_floor = min(dst_floor, excluded.dst_floor)",
                )
                .map_err(ctx.sql("add pending"))?;
            for p in batch {
                let copied = is_copied
                    .query_row(params![account, folder, p.src_uid.0], |_| Ok(()))
                    .optional()
                    .map_err(ctx.sql("add pending"))?;
                if copied.is_some() {
                    return Err(StateError::AlreadyCopied {
                        file: self.path.clone(),
                        account: account.to_string(),
                        folder: folder.to_string(),
                        uid: p.src_uid,
                    });
                }
                insert
                    .execute(params![account, folder, p.src_uid.0, p.dst_floor])
                    .map_err(ctx.sql("add pending"))?;
            }
            Ok(())
        })
    }

    fn pending(&self, account: &str, folder: &str) -> Result<Vec<PendingRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT src_uid, dst_floor FROM pending \
                 WHERE account = ?1 AND folder = ?2 ORDER BY src_uid",
            )
            .map_err(ctx.sql("read pending"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read pending"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("read pending"))? {
            out.push(decode_pending(row).map_err(|(uid, d)| ctx.corrupt(uid, d))?);
        }
        Ok(out)
    }

    fn commit_copied(
        &self,
        account: &str,
        folder: &str,
        batch: &[CopiedRecord],
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "commit copied", |tx| {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO copied (account, folder, src_uid, dst_uid, fingerprint, flags, \
                     size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (account, folder, src_uid) DO UPDATE SET \
                     dst_uid = excluded.dst_uid, fingerprint = excluded.fingerprint, \
                     flags = excluded.flags, size = excluded.size",
                )
                .map_err(ctx.sql("commit copied"))?;
            let mut unpend = tx
                .prepare_cached(
                    "DELETE FROM pending WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("commit copied"))?;
            for c in batch {
                upsert
                    .execute(params![
                        account,
                        folder,
                        c.src_uid.0,
                        c.dst_uid.map(|u| u.0),
                        &c.fingerprint[..],
                        c.flags.to_line(),
                        to_i64(&ctx, c.size, "size", Some(c.src_uid))?,
                    ])
                    .map_err(ctx.sql("commit copied"))?;
                unpend
                    .execute(params![account, folder, c.src_uid.0])
                    .map_err(ctx.sql("commit copied"))?;
            }
            Ok(())
        })
    }

    fn drop_pending(&self, account: &str, folder: &str, uids: &[Uid]) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "drop pending", |tx| {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM pending WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("drop pending"))?;
            for uid in uids {
                delete
                    .execute(params![account, folder, uid.0])
                    .map_err(ctx.sql("drop pending"))?;
            }
            Ok(())
        })
    }

    fn update_flags(
        &self,
        account: &str,
        folder: &str,
        changes: &[(Uid, Flags)],
        highest_modseq: Option<u64>,
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "update flags", |tx| {
            let mut update = tx
                .prepare_cached(
                    "UPDATE copied SET flags = ?4 \
                     WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("update flags"))?;
            for (uid, flags) in changes {
                update
                    .execute(params![account, folder, uid.0, flags.to_line()])
                    .map_err(ctx.sql("update flags"))?;
            }
            if let Some(modseq) = highest_modseq {
                let modseq = to_i64(&ctx, modseq, "HIGHESTMODSEQ", None)?;
                let n = tx
                    .prepare_cached(
                        "UPDATE folder SET highest_modseq = ?3, updated_at = ?4 \
                         WHERE account = ?1 AND folder = ?2",
                    )
                    .and_then(|mut stmt| stmt.execute(params![account, folder, modseq, now()]))
                    .map_err(ctx.sql("update flags"))?;
                if n == 0 {
                    return Err(ctx.unknown_folder());
                }
            }
            Ok(())
        })
    }

    fn remap_source(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError> {
        const WHAT: &str = "remap source UIDs";
        let ctx = self.ctx(account, Some(folder));
        let map = check_map(&ctx, map, "source")?;
        self.write(&ctx, WHAT, |tx| {
            let n = tx
                .execute(
                    "UPDATE folder SET source_uidvalidity = ?3, highest_modseq = NULL, \
                     updated_at = ?4 WHERE account = ?1 AND folder = ?2",
                    params![account, folder, new_validity.0, now()],
                )
                .map_err(ctx.sql(WHAT))?;
            if n == 0 {
                return Err(ctx.unknown_folder());
            }
            // UIDs are the primary key and old and new ranges overlap (old 5 -> new 7 while
            // old 7 -> new 9), so read the survivors, empty the folder and write them back.
            let copied = {
                let mut stmt = tx
                    .prepare(
                        "SELECT src_uid, dst_uid, fingerprint, flags, size FROM copied \
                         WHERE account = ?1 AND folder = ?2",
                    )
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| {
                        Ok((
                            r.get::<_, Value>(0)?,
                            r.get::<_, Value>(1)?,
                            r.get::<_, Value>(2)?,
                            r.get::<_, Value>(3)?,
                            r.get::<_, Value>(4)?,
                        ))
                    })
                    .map_err(ctx.sql(WHAT))?;
                let mut keep = Vec::new();
                for row in rows {
                    let (src, dst, fp, flags, size) = row.map_err(ctx.sql(WHAT))?;
                    if let Value::Integer(old) = src {
                        if let Some(&new) = map.get(&old) {
                            keep.push((new, dst, fp, flags, size));
                        }
                    }
                }
                keep
            };
            let pending = {
                let mut stmt = tx
                    .prepare(
                        "SELECT src_uid, dst_floor FROM pending WHERE account = ?1 AND folder = ?2",
                    )
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| {
                        Ok((r.get::<_, Value>(0)?, r.get::<_, Value>(1)?))
                    })
                    .map_err(ctx.sql(WHAT))?;
                let mut keep = Vec::new();
                for row in rows {
                    let (src, floor) = row.map_err(ctx.sql(WHAT))?;
                    if let Value::Integer(old) = src {
                        if let Some(&new) = map.get(&old) {
                            keep.push((new, floor));
                        }
                    }
                }
                keep
            };
            tx.execute(
                "DELETE FROM copied WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            tx.execute(
                "DELETE FROM pending WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO copied (account, folder, src_uid, dst_uid, fingerprint, flags, \
                     size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(ctx.sql(WHAT))?;
            for (uid, dst, fp, flags, size) in copied {
                insert
                    .execute(params![account, folder, uid, dst, fp, flags, size])
                    .map_err(ctx.sql(WHAT))?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending (account, folder, src_uid, dst_floor) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(ctx.sql(WHAT))?;
            for (uid, floor) in pending {
                insert
                    .execute(params![account, folder, uid, floor])
                    .map_err(ctx.sql(WHAT))?;
            }
            Ok(())
        })
    }

    fn remap_dest(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError> {
        const WHAT: &str = "remap destination UIDs";
        let ctx = self.ctx(account, Some(folder));
        let map = check_map(&ctx, map, "source")?;
        self.write(&ctx, WHAT, |tx| {
            let n = tx
                .execute(
                    "UPDATE folder SET dest_uidvalidity = ?3, updated_at = ?4 \
                     WHERE account = ?1 AND folder = ?2",
                    params![account, folder, new_validity.0, now()],
                )
                .map_err(ctx.sql(WHAT))?;
            if n == 0 {
                return Err(ctx.unknown_folder());
            }
            // Only dst_uid changes, which is no key: update in place, delete the rest.
            let uids = {
                let mut stmt = tx
                    .prepare("SELECT src_uid FROM copied WHERE account = ?1 AND folder = ?2")
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| r.get::<_, Value>(0))
                    .map_err(ctx.sql(WHAT))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(ctx.sql(WHAT))?
            };
            let mut update = tx
                .prepare_cached(
                    "UPDATE copied SET dst_uid = ?4 \
                     WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql(WHAT))?;
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM copied WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql(WHAT))?;
            for src in uids {
                let new = match src {
                    Value::Integer(i) => map.get(&i).copied(),
                    _ => None,
                };
                match new {
                    Some(dst) => update.execute(params![account, folder, src, dst]),
                    None => delete.execute(params![account, folder, src]),
                }
                .map_err(ctx.sql(WHAT))?;
            }
            tx.execute(
                "UPDATE pending SET dst_floor = 1 WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            Ok(())
        })
    }

    fn forget_folder(&self, account: &str, folder: &str) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "forget folder", |tx| {
            for sql in [
                "DELETE FROM copied WHERE account = ?1 AND folder = ?2",
                "DELETE FROM pending WHERE account = ?1 AND folder = ?2",
                "DELETE FROM folder WHERE account = ?1 AND folder = ?2",
            ] {
                tx.execute(sql, params![account, folder])
                    .map_err(ctx.sql("forget folder"))?;
            }
            Ok(())
        })
    }

    fn forget_account(&self, account: &str) -> Result<(), StateError> {
        let ctx = self.ctx(account, None);
        self.write(&ctx, "forget account", |tx| {
            for sql in [
                "DELETE FROM copied WHERE account = ?1",
                "DELETE FROM pending WHERE account = ?1",
                "DELETE FROM folder WHERE account = ?1",
            ] {
                tx.execute(sql, params![account])
                    .map_err(ctx.sql("forget account"))?;
            }
            Ok(())
        })
    }
}
