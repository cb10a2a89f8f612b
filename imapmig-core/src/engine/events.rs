//! Progress events as flat JSON objects, with per-message events thinned out: what the
//! Python and C faces deliver to their callers.
//!
//! The engine reports every copied message; a caller wants a few updates a second. Folder
//! events (`planned`, `folder_started`, `message_skipped`, `retrying`, `folder_done`) pass
//! through one for one; `message_copied` events are counted and turned into a `progress`
//! event at most once per interval (and always before the next folder event, so the counts
//! a caller last saw are exact when a folder ends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ProgressEvent, ProgressSink};
use serde_json::{json, Map, Value};

/// `FolderStarted` → `folder_started`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An engine event as `{"type": "folder_started", ...its fields}`.
pub fn flatten(event: &ProgressEvent) -> Value {
    let mut out = Map::new();
    match serde_json::to_value(event) {
        Ok(Value::Object(tagged)) => {
            if let Some((name, content)) = tagged.into_iter().next() {
                out.insert("type".into(), snake_case(&name).into());
                match content {
                    Value::Object(fields) => out.extend(fields),
                    other => {
                        out.insert("value".into(), other);
                    }
                }
            }
        }
        Ok(Value::String(name)) => {
            out.insert("type".into(), snake_case(&name).into());
        }
        _ => {
            out.insert("type".into(), "unknown".into());
        }
    }
    Value::Object(out)
}

#[derive(Default)]
struct Counts {
    last_emit: Option<Instant>,
    /// Copies counted since the last `progress` event.
    unreported: u64,
    folder: String,
    per_folder: HashMap<String, (u64, u64)>,
    total: (u64, u64),
}

impl Counts {
    fn progress(&mut self, now: Instant) -> Value {
        self.unreported = 0;
        self.last_emit = Some(now);
        let (copied, bytes) = self
            .per_folder
            .get(&self.folder)
            .copied()
            .unwrap_or_default();
        json!({
            "type": "progress",
            "folder": self.folder,
            "copied": copied,
            "bytes": bytes,
            "total_copied": self.total.0,
            "total_bytes": self.total.1,
        })
    }
}

/// A progress sink for the engine that hands thinned-out JSON events to `deliver`.
pub fn sink<F>(interval: Duration, deliver: F) -> ProgressSink
where
    F: Fn(Value) + Send + Sync + 'static,
{
    let counts = Mutex::new(Counts::default());
    Arc::new(move |event: &ProgressEvent| {
        let Ok(mut c) = counts.lock() else { return };
        let now = Instant::now();
        if let ProgressEvent::MessageCopied { folder, bytes, .. } = event {
            let entry = c.per_folder.entry(folder.clone()).or_default();
            entry.0 += 1;
            entry.1 += bytes;
            c.total.0 += 1;
            c.total.1 += bytes;
            c.unreported += 1;
            if c.folder != *folder {
                c.folder.clone_from(folder);
            }
            if c.last_emit
                .is_none_or(|t| now.duration_since(t) >= interval)
            {
                deliver(c.progress(now));
            }
            return;
        }
        if c.unreported > 0 {
            deliver(c.progress(now));
        }
        drop(c);
        deliver(flatten(event));
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FolderReport;

    #[test]
    fn events_are_flat_with_a_snake_case_type() {
        let v = flatten(&ProgressEvent::FolderStarted {
            folder: "INBOX".into(),
            to_copy: 3,
            bytes: 10,
        });
        assert_eq!(
            v,
            json!({"type":"folder_started","folder":"INBOX","to_copy":3,"bytes":10})
        );
        let v = flatten(&ProgressEvent::FolderDone(FolderReport {
            source: "INBOX".into(),
            copied: 2,
            ..FolderReport::default()
        }));
        assert_eq!(v["type"], "folder_done");
        assert_eq!(v["copied"], 2);
        assert_eq!(v["source"], "INBOX");
    }

    #[test]
    fn copies_are_thinned_and_flushed_before_folder_events() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let s = sink(Duration::from_secs(3600), move |v| {
            g.lock().unwrap().push(v)
        });
        for uid in 1..=5 {
            s(&ProgressEvent::MessageCopied {
                folder: "INBOX".into(),
                uid,
                bytes: 100,
            });
        }
        s(&ProgressEvent::FolderDone(FolderReport::default()));
        let got = got.lock().unwrap();
        let types: Vec<&str> = got.iter().map(|v| v["type"].as_str().unwrap()).collect();
        // The first copy is reported at once, the other four before the folder event.
        assert_eq!(types, ["progress", "progress", "folder_done"]);
        assert_eq!(got[1]["copied"], 5);
        assert_eq!(got[1]["total_bytes"], 500);
    }
}
