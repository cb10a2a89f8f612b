//! The scheduler's lease (`batch_lease`): one scheduler per task, proved by a token and kept
//! by a heartbeat; a stale lease, or one held by a process of this machine that is gone, is
//! taken over.

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use time::OffsetDateTime;

use super::{now, BatchStore};
use crate::batch::error::BatchError;

/// A scheduler's lease on a task is taken over when its heartbeat is older than this many
/// seconds (or at once when it was a process on this machine that no longer exists).
pub(crate) const LEASE_STALE_SECS: i64 = 20;

/// The scheduler that holds (or last held) a task's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchedulerHolder {
    /// Its process id, on `host`.
    pub pid: i64,
    /// The machine it runs on.
    pub host: String,
    /// How long ago it last said it was alive.
    pub seconds_since_heartbeat: i64,
    /// Whether it still holds the lease: its heartbeat is fresh and, when it runs on this
    /// machine, its process exists. A scheduler that is not live is taken over by the next.
    pub live: bool,
}

impl BatchStore {
    /// Who runs the task's scheduler, if any scheduler took its lease and did not give it up.
    pub fn scheduler_holder(&self, task: &str) -> Result<Option<SchedulerHolder>, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        let held: Option<(i64, String, i64)> = conn
            .query_row(
                "SELECT pid, host, heartbeat_at FROM batch_lease WHERE task = ?1",
                [task],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.sql("read the scheduler lease", task, None))?;
        Ok(held.map(|(pid, host, beat)| {
            let ago = now() - beat;
            let gone = host == host_name() && !process_alive(pid);
            SchedulerHolder {
                pid,
                live: ago < LEASE_STALE_SECS && !gone,
                host,
                seconds_since_heartbeat: ago,
            }
        }))
    }

    /// Takes the task's lease for a scheduler, or fails with [`BatchError::Locked`] while
    /// another live scheduler holds it. Returns the token that proves ownership.
    pub(crate) fn acquire_lease(&self, task: &str) -> Result<String, BatchError> {
        let pid = std::process::id();
        let host = host_name();
        let token = format!(
            "{host}:{pid}:{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let t = now();
        self.write("take the scheduler lease", task, |tx| {
            self.task_in(tx, task)?;
            let held: Option<(i64, String, i64)> = tx
                .query_row(
                    "SELECT pid, host, heartbeat_at FROM batch_lease WHERE task = ?1",
                    [task],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(self.sql("take the scheduler lease", task, None))?;
            if let Some((other_pid, other_host, beat)) = held {
                let fresh = t - beat < LEASE_STALE_SECS;
                let gone = other_host == host && !process_alive(other_pid);
                let me = other_host == host && other_pid == i64::from(pid);
                if fresh && !gone && !me {
                    return Err(BatchError::Locked {
                        task: task.to_string(),
                        owner: format!("pid {other_pid} on {other_host}"),
                        seconds_ago: t - beat,
                    });
                }
            }
            tx.execute(
                "INSERT INTO batch_lease (task, pid, host, token, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (task) DO UPDATE SET pid = ?2, host = ?3, token = ?4, heartbeat_at = ?5",
                params![task, pid, host, token, t],
            )
            .map_err(self.sql("take the scheduler lease", task, None))?;
            Ok(token.clone())
        })
    }

    /// Renews the lease; fails with [`BatchError::Locked`] if another scheduler took it over.
    pub(crate) fn heartbeat(&self, task: &str, token: &str) -> Result<(), BatchError> {
        self.write("renew the scheduler lease", task, |tx| {
            let n = tx
                .execute(
                    "UPDATE batch_lease SET heartbeat_at = ?3 WHERE task = ?1 AND token = ?2",
                    params![task, token, now()],
                )
                .map_err(self.sql("renew the scheduler lease", task, None))?;
            if n == 0 {
                return Err(BatchError::Locked {
                    task: task.to_string(),
                    owner: "another scheduler (the lease was taken over)".into(),
                    seconds_ago: 0,
                });
            }
            Ok(())
        })
    }

    /// Gives the lease up.
    pub(crate) fn release_lease(&self, task: &str, token: &str) -> Result<(), BatchError> {
        self.write("release the scheduler lease", task, |tx| {
            tx.execute(
                "DELETE FROM batch_lease WHERE task = ?1 AND token = ?2",
                params![task, token],
            )
            .map_err(self.sql("release the scheduler lease", task, None))?;
            Ok(())
        })
    }
}

/// This machine's name, for the lease.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this machine is alive. Where that cannot be told (no `/proc`), it is
/// assumed alive and the lease expires by time.
fn process_alive(pid: i64) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::tests::{settings, tempfile_dir};

    #[test]
    fn a_live_lease_locks_out_a_second_scheduler() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        assert_eq!(s.scheduler_holder("t").unwrap(), None);
        let token = s.acquire_lease("t").unwrap();
        s.heartbeat("t", &token).unwrap();
        let me = s.scheduler_holder("t").unwrap().unwrap();
        assert_eq!(me.pid, i64::from(std::process::id()));
        assert!(me.live, "{me:?}");
        // Pretend another live process on another machine holds it.
        s.lock()
            .execute("UPDATE batch_lease SET host = 'elsewhere', token = 'x'", [])
            .unwrap();
        assert!(matches!(
            s.acquire_lease("t"),
            Err(BatchError::Locked { .. })
        ));
        assert!(matches!(
            s.heartbeat("t", &token),
            Err(BatchError::Locked { .. })
        ));
        let other = s.scheduler_holder("t").unwrap().unwrap();
        assert_eq!((other.host.as_str(), other.live), ("elsewhere", true));
        // Once its heartbeat is old, it is taken over.
        s.lock()
            .execute(
                "UPDATE batch_lease SET heartbeat_at = heartbeat_at - 3600",
                [],
            )
            .unwrap();
        let token = s.acquire_lease("t").unwrap();
        // A dead process on this machine is taken over at once.
        s.lock()
            .execute("UPDATE batch_lease SET pid = 999999999, token = 'y'", [])
            .unwrap();
        assert!(!s.scheduler_holder("t").unwrap().unwrap().live);
        let token2 = s.acquire_lease("t").unwrap();
        assert_ne!(token, token2);
        s.release_lease("t", &token2).unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}
