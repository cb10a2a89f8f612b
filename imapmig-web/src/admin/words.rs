//! What the admin pages share: how times, spans, rates, statuses, controls and audit events
//! read, the task's URLs, and the notice an action leaves for the next page.

use imapmig_core::batch::audit::AuditRecord;
use imapmig_core::batch::{ControlReport, FailureCategory, Status};
use maud::{html, Markup};
use time::OffsetDateTime;

use crate::layout::url_escape;

/// Failure categories, in the order the console offers them.
pub const FAILURES: [FailureCategory; 9] = FailureCategory::ALL;

/// `/tasks/{task}` with the name escaped, plus `rest`.
pub fn task_url(task: &str, rest: &str) -> String {
    format!("/tasks/{}{rest}", url_escape(task))
}

/// A status as a badge.
pub fn status_badge(s: Status) -> Markup {
    html! { span class={ "status " (s.as_str()) } { (s.as_str().replace('_', " ")) } }
}

/// A time as the console shows it (UTC, to the second); empty for none.
pub fn when(t: Option<OffsetDateTime>) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_default()
}

/// A duration in words: `3 h 20 min`, `45 s`, `2 d 4 h`.
pub fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A rate per second in words: `12.5/s`.
pub fn per_second(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// `?done=...`: the message an action leaves for the page it returns to.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Done {
    /// The message.
    pub done: Option<String>,
}

/// A message after an action, shown at the top of the next page (`?done=...`).
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text.filter(|t| !t.is_empty()) {
            p.notice id="notice" { (t) }
        }
    }
}

/// A control's result in words.
pub fn control_words(what: &str, r: &ControlReport) -> String {
    let mut s = format!("{what}: {} account(s) changed", r.changed);
    if r.requested > 0 {
        s.push_str(&format!(
            ", {} running account(s) asked to stop at the next message",
            r.requested
        ));
    }
    if r.unchanged > 0 {
        s.push_str(&format!(", {} unchanged", r.unchanged));
    }
    s.push('.');
    s
}

/// An audit event's fields (other than its kind) in words.
pub fn event_fields(r: &AuditRecord) -> String {
    match &r.event {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "event")
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// An audit event's kind.
pub fn event_kind(r: &AuditRecord) -> &str {
    r.event.get("event").and_then(|v| v.as_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_well() {
        assert_eq!(span(45), "45 s");
        assert_eq!(span(600), "10 min");
        assert_eq!(span(3600 * 3 + 1200), "3 h 20 min");
        assert_eq!(span(86_400 * 2 + 3600 * 4), "2 d 4 h");
    }

    #[test]
    fn task_urls_escape_the_name() {
        assert_eq!(task_url("a b", "/accounts"), "/tasks/a%20b/accounts");
    }
}
