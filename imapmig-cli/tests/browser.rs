//! The web console in a real headless Chromium, against the real `imapmig serve` process and
//! real Dovecot servers: what an admin and an employee actually click. Each page visited is
//! saved as a screenshot under `target/screenshots/` (CI checks they exist).
//!
//! A missing Chromium or chromedriver fails these tests (install `chromium chromium-driver`
//! or run scripts/setup); they are never skipped.

use imapmig_testsupport as common;

use std::path::Path;
use std::time::Duration;

use common::browser::Browser;
use common::console::Console;

fn serve(state: &Path, extra: &[&str]) -> Console {
    Console::start(Path::new(env!("CARGO_BIN_EXE_imapmig")), state, extra)
}

/// Logs `page` in with the console's token, starting from `/`.
async fn log_in(b: &common::browser::Page, console: &Console) {
    b.open(&console.url("/")).await;
    b.find("input#token").await;
    b.fill("input#token", console.token()).await;
    b.click("button#login").await;
    b.wait_path("/tasks", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_logs_in_with_the_token_and_not_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let console = serve(&dir.path().join("state.sqlite"), &["--no-run"]);
    let b = Browser::start().await;

    // `/` without a session leads to the login page.
    b.open(&console.url("/")).await;
    b.wait_path("/login", Duration::from_secs(10)).await;
    b.find("input#token").await;
    b.screenshot("login").await;

    // A wrong token: the page says so, and no session starts.
    b.fill("input#token", "imt_not-the-token").await;
    b.click("button#login").await;
    let said = b.text("#login-error").await;
    assert!(said.contains("not the admin token"), "{said}");
    assert_eq!(b.path().await, "/login");
    let cookies = b.client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "imapmig_session"),
        "a session after a wrong token: {cookies:?}"
    );
    b.screenshot("login-refused").await;

    // The right token: a session cookie, HttpOnly and SameSite=Strict, and the task list.
    b.fill("input#token", console.token()).await;
    b.click("button#login").await;
    b.wait_path("/tasks", Duration::from_secs(10)).await;
    let cookies = b.client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "imapmig_session")
        .unwrap_or_else(|| panic!("no session cookie after logging in: {cookies:?}"));
    assert_eq!(session.http_only(), Some(true), "{session:?}");
    // (fantoccini does not re-export the cookie crate's SameSite.)
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Strict)",
        "{session:?}"
    );
    // The token itself is nowhere in the page.
    assert!(!b.source().await.contains(console.token()));

    // A second browser has no session: it is sent to the login page.
    let other = b.session().await;
    other.open(&console.url("/")).await;
    other.wait_path("/login", Duration::from_secs(10)).await;
    // And logs in the same way.
    log_in(&other, &console).await;
}
