//! The schedulers `imapmig serve` runs: one per task of the store, started when the task
//! appears. When another process (`imapmig run`, another console) holds a task's lease, this
//! one waits and tries again, so the console serves beside it and takes over when it stops.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use imapmig_core::batch::{BatchError, BatchStore, Scheduler};
use tokio_util::sync::CancellationToken;

/// How often the runner looks for new tasks, and retries a task another process runs.
pub const RETRY: Duration = Duration::from_secs(5);

/// Runs the schedulers of every task in the store until `cancel`; returns when all of them
/// have stopped (running passes end at a message boundary and are resumed by the next run).
pub async fn run_schedulers(store: Arc<BatchStore>, cancel: CancellationToken) {
    let mut started: HashSet<String> = HashSet::new();
    let mut running = tokio::task::JoinSet::new();
    loop {
        let s = store.clone();
        let tasks = tokio::task::spawn_blocking(move || s.tasks())
            .await
            .unwrap_or_else(|e| Err(BatchError::Internal(e.to_string())));
        match tasks {
            Ok(tasks) => {
                for t in tasks {
                    if started.insert(t.clone()) {
                        running.spawn(run_one(store.clone(), t, cancel.clone()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the tasks"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
    while running.join_next().await.is_some() {}
}

async fn run_one(store: Arc<BatchStore>, task: String, cancel: CancellationToken) {
    let mut said_locked = false;
    while !cancel.is_cancelled() {
        match Scheduler::new(store.clone(), task.clone())
            .run(cancel.clone(), None)
            .await
        {
            Ok(_) => return,
            Err(BatchError::Locked { owner, .. }) => {
                if !said_locked {
                    tracing::info!(task = %task, %owner, "another process runs this task; waiting to take over");
                    said_locked = true;
                }
            }
            Err(e) => {
                tracing::error!(task = %task, error = %e, "the scheduler stopped; restarting it")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
