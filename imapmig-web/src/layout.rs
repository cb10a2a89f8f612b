//! The page frame and the vendored assets: one stylesheet and one small script, compiled into
//! the binary and served under `/assets/`, so the console works with no network beyond it.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The stylesheet.
pub const CSS: &str = include_str!("assets/console.css");
/// The script (live updates).
pub const JS: &str = include_str!("assets/console.js");

/// `GET /assets/console.css`.
pub async fn css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

/// `GET /assets/console.js`.
pub async fn js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · imapmig" }
        link rel="stylesheet" href="/assets/console.css";
        script src="/assets/console.js" defer {}
    }
}

/// Which part of the admin console a page belongs to (the current tab).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// The task's overview.
    Overview,
    /// The accounts table and account pages.
    Accounts,
    /// CSV import.
    Import,
    /// Self-service invitations.
    Invitations,
    /// The task's settings.
    Settings,
    /// The audit log.
    Audit,
    /// None of them (the task list, say).
    None,
}

/// What the admin frame needs to know of the session: the CSRF token of its logout form, when
/// the admin is logged in with a session (not a bearer token).
pub trait Session {
    /// The token, or `None` without a session.
    fn logout_csrf(&self) -> Option<&str>;
}

/// An admin page: the top bar (the task's tabs, logout) and `body`.
pub fn admin_page(
    title: &str,
    admin: &impl Session,
    task: Option<&str>,
    tab: Tab,
    body: Markup,
) -> Markup {
    let tabs: [(Tab, &str, &str); 6] = [
        (Tab::Overview, "", "Overview"),
        (Tab::Accounts, "/accounts", "Accounts"),
        (Tab::Import, "/import", "Import"),
        (Tab::Invitations, "/invitations", "Invitations"),
        (Tab::Settings, "/settings", "Settings"),
        (Tab::Audit, "/audit", "Audit log"),
    ];
    html! {
        (head(title))
        body {
            header.top {
                a.brand href="/tasks" { "imapmig" }
                @if let Some(t) = task {
                    nav {
                        span.muted { "Task " strong { (t) } " · " }
                        @for (which, path, label) in tabs {
                            a.current[which == tab] href={ "/tasks/" (url_escape(t)) (path) } { (label) }
                        }
                    }
                }
                @if let Some(csrf) = admin.logout_csrf() {
                    form method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(csrf);
                        button.secondary type="submit" id="logout" { "Log out" }
                    }
                }
            }
            main { (body) }
        }
    }
}

/// A page without the admin's frame (login, self-service, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (head(title))
        body {
            header.top { span.brand { "imapmig" } }
            main { div.narrow { h1 { (title) } (body) } }
        }
    }
}

/// A progress bar for `done` of `total` (a `<progress>` element: the page's content security
/// policy allows no inline styles).
pub fn bar(done: u64, total: u64) -> Markup {
    html! {
        progress.bar value=(done.min(total)) max=(total.max(1)) title={ (done) " of " (total) } {
            (done) " of " (total)
        }
    }
}

/// Bytes in words: `1.4 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Raw HTML that is known to be safe (constant markup only, never user data).
pub fn trusted(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

/// Percent-escapes a value for a query string.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_400_000), "1.4 MB");
    }

    #[test]
    fn user_text_is_escaped() {
        struct NoSession;
        impl Session for NoSession {
            fn logout_csrf(&self) -> Option<&str> {
                None
            }
        }
        let admin = NoSession;
        let page = admin_page(
            "<x>",
            &admin,
            Some("t<script>"),
            Tab::Overview,
            html! { "a&b" },
        )
        .into_string();
        assert!(!page.contains("<script>"));
        assert!(page.contains("a&amp;b"));
    }
}
