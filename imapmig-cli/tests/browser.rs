//! The web console in a real headless Chromium, against the real `imapmig serve` process and
//! real Dovecot servers: what an admin and an employee actually click. Each page visited is
//! saved as a screenshot under `target/screenshots/` (CI checks they exist).
//!
//! A missing Chromium or chromedriver fails these tests (install `chromium chromium-driver`
//! or run scripts/setup); they are never skipped.

use imapmig_testsupport as common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{Browser, Page};
use common::console::{ok, Console};
use common::*;
use imapmig_core::batch::BatchStore;
use imapmig_testkit::{Dovecot, Flavour, TestUser};

const TASK: &str = "company";

/// How long accounts may take to reach their end state (a wrong password is retried once).
const SETTLE: Duration = Duration::from_secs(180);

fn serve(state: &Path, extra: &[&str]) -> Console {
    Console::start(Path::new(env!("CARGO_BIN_EXE_imapmig")), state, extra)
}

fn imapmig(state: &Path) -> Command {
    common::console::cli(Path::new(env!("CARGO_BIN_EXE_imapmig")), state, TASK)
}

/// Source and destination Dovecot with `n` users (`w0`… on the source, `w0@x.example`… on the
/// destination), each source mailbox with three messages in two folders.
struct Servers {
    src: Dovecot,
    dst: Dovecot,
    users: Vec<TestUser>,
}

fn target(i: usize) -> String {
    format!("w{i}@x.example")
}

async fn servers(n: usize) -> Servers {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let users: Vec<TestUser> = (0..n).map(|i| src.user(&format!("w{i}"))).collect();
    for i in 0..n {
        dst.user(&target(i));
    }
    for (i, u) in users.iter().enumerate() {
        let seeds = vec![
            seed("INBOX", message(&format!("w{i} hello"), 10), "\\Seen", None),
            seed("INBOX", message(&format!("w{i} unread"), 20), "", None),
            seed("Notes", message(&format!("w{i} note"), 5), "", None),
        ];
        fill(&account(&src, u), &seeds).await;
    }
    Servers { src, dst, users }
}

/// The task, with the CLI: the destination through Dovecot's master user, a wrong password
/// retried once, a pass every six hours (so a synced account stays synced while the test
/// looks), starting at `start_at` when given.
fn create_task(state: &Path, s: &Servers, start_at: Option<&str>) {
    let mut create = imapmig(state);
    create
        .args(["task", "create", "--src-host", s.src.host(), "--src-port"])
        .arg(s.src.imap_port().to_string())
        .args([
            "--src-tls",
            "none",
            "--dst-host",
            s.dst.host(),
            "--dst-port",
        ])
        .arg(s.dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(s.dst.master_user().name)
        .args(["--interval", "6h"])
        .args(["--retries", "1", "--retry-base", "1s", "--retry-max", "1s"])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", s.dst.master_user().password);
    if let Some(at) = start_at {
        create.args(["--start-at", at]);
    }
    ok(create);
}

/// Logs `page` in with the console's token, starting from `/`.
async fn log_in(b: &Page, console: &Console) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_imports_starts_watches_and_finds_the_failed_account() {
    let s = servers(3).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    create_task(&state, &s, Some("2099-01-01T00:00:00Z"));
    let console = serve(&state, &[]);
    let b = Browser::start().await;

    // The files: one with a bad address on line 3, then the fixed one (w1's password wrong).
    let line = |i: usize, password: &str| format!("{},{},{password}\n", target(i), s.users[i].name);
    let bad = dir.path().join("accounts.csv");
    std::fs::write(
        &bad,
        format!(
            "target,source,password\n{}not-an-address,{},{}\n{}",
            line(0, &s.users[0].password),
            s.users[1].name,
            s.users[1].password,
            line(2, &s.users[2].password)
        ),
    )
    .unwrap();
    let good = dir.path().join("fixed.csv");
    std::fs::write(
        &good,
        format!(
            "target,source,password\n{}{}{}",
            line(0, &s.users[0].password),
            line(1, "wrong-password"),
            line(2, &s.users[2].password)
        ),
    )
    .unwrap();

    // Log in; the task list leads to the task.
    b.open(&console.url("/")).await;
    b.find("input#token").await;
    b.screenshot("admin-login").await;
    b.fill("input#token", console.token()).await;
    b.click("button#login").await;
    b.wait_path("/tasks", Duration::from_secs(10)).await;
    b.click("a.task").await;
    b.wait_path(&format!("/tasks/{TASK}"), Duration::from_secs(10))
        .await;

    // Import: the bad file is refused with its line named, nothing imported.
    b.click("nav a[href$='/import']").await;
    b.upload("input#csv", &bad).await;
    b.click("button#import").await;
    let row = b.find("li.bad-row[data-line='3']").await;
    let said = row.text().await.unwrap();
    assert!(said.contains("3"), "{said}");
    assert_eq!(b.find_all("li.bad-row").await.len(), 1);
    let page = b.source().await;
    assert!(
        !page.contains(&s.users[1].password),
        "a password in the page"
    );
    b.screenshot("admin-import-with-errors").await;
    // The fixed file.
    b.upload("input#csv", &good).await;
    b.click("button#import").await;
    let result = b.find("#import-result").await;
    assert_eq!(
        result.attr("data-added").await.unwrap().as_deref(),
        Some("3")
    );
    b.screenshot("admin-import-done").await;

    // The accounts page, open before the start: it must follow the statuses by itself.
    b.click("nav a[href$='/accounts']").await;
    b.find("table#accounts").await;
    assert_eq!(b.find_all("tr.account").await.len(), 3);
    let before = b
        .attr(
            &format!("tr.account[data-target='{}']", target(0)),
            "data-status",
        )
        .await
        .unwrap();
    assert_ne!(before, "synced");
    // A mark that a reload would wipe out.
    b.client
        .execute("window.imapmigStayed = true; return true;", vec![])
        .await
        .unwrap();
    let watching = b.url().await;

    // A second admin, at another browser, starts the task from the overview.
    let other = b.session().await;
    log_in(&other, &console).await;
    other.open(&console.url(&format!("/tasks/{TASK}"))).await;
    for status in imapmig_core::batch::Status::ALL {
        other.find(&format!("#count-{}", status.as_str())).await;
    }
    other.click("button#start-now").await;
    let notice = other.text("main").await;
    assert!(notice.contains("starts now"), "{notice}");
    let export = other.attr("a#export-csv", "href").await.unwrap();
    assert!(
        export.ends_with(&format!("/tasks/{TASK}/export.csv")),
        "{export}"
    );

    // The first admin's page changes row by row without being reloaded.
    for i in [0, 2] {
        b.wait_attr(
            &format!("tr.account[data-target='{}']", target(i)),
            "data-status",
            SETTLE,
            |v| v == "synced",
        )
        .await;
    }
    b.wait_attr(
        &format!("tr.account[data-target='{}']", target(1)),
        "data-status",
        SETTLE,
        |v| v == "failed",
    )
    .await;
    let stayed = b
        .client
        .execute("return window.imapmigStayed === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        stayed,
        serde_json::Value::Bool(true),
        "the page was reloaded"
    );
    assert_eq!(b.url().await, watching);
    b.screenshot("admin-accounts").await;
    other.open(&console.url(&format!("/tasks/{TASK}"))).await;
    other
        .wait_text("#count-synced", SETTLE, |t| t.trim() == "2")
        .await;
    other
        .wait_text("#count-failed", SETTLE, |t| t.trim() == "1")
        .await;
    other.screenshot("admin-overview").await;

    // Only the failed ones.
    b.select("select#status", "failed").await;
    b.click("button#apply").await;
    b.wait_text("span#matching", Duration::from_secs(10), |t| {
        t.trim() == "1"
    })
    .await;
    assert!(b.url().await.contains("status=failed"), "{}", b.url().await);
    assert_eq!(b.find_all("tr.account").await.len(), 1);
    // Read through the page, not the element: the live refresh may replace the row meanwhile.
    assert_eq!(
        b.attr("tr.account", "data-target").await.as_deref(),
        Some(target(1).as_str())
    );
    b.screenshot("admin-accounts-failed").await;

    // Its page: failed, with its audit trail; no password anywhere.
    b.click(&format!("tr.account[data-target='{}'] a", target(1)))
        .await;
    b.wait_attr(
        "#account-status",
        "data-status",
        Duration::from_secs(10),
        |v| v == "failed",
    )
    .await;
    b.find("table#account-audit").await;
    assert!(!b.source().await.contains("wrong-password"));
    b.screenshot("admin-account").await;

    // Settings and the audit log.
    b.click("nav a[href$='/settings']").await;
    b.find("button#save").await;
    b.screenshot("admin-settings").await;
    b.click("nav a[href$='/audit']").await;
    b.find("table#audit-log").await;
    let audit = b.text("table#audit-log").await;
    assert!(!audit.contains("wrong-password"));
    b.screenshot("admin-audit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_employee_types_a_wrong_then_the_right_password_and_watches_the_move() {
    let s = servers(2).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    create_task(&state, &s, None);
    // Imported without passwords: the accounts wait for their owners.
    let csv = dir.path().join("people.csv");
    let mut rows = String::from("target,source,password\n");
    for (i, u) in s.users.iter().enumerate() {
        rows.push_str(&format!("{},{},\n", target(i), u.name));
    }
    std::fs::write(&csv, rows).unwrap();
    let mut import = imapmig(&state);
    import.args(["accounts", "import"]).arg(&csv);
    ok(import);
    let id = BatchStore::open(&state)
        .unwrap()
        .accounts(TASK)
        .unwrap()
        .into_iter()
        .find(|a| a.target == target(0))
        .expect("the account")
        .id;
    let console = serve(&state, &[]);
    let b = Browser::start().await;

    // The admin makes a link for the first account.
    log_in(&b, &console).await;
    b.open(&console.url(&format!("/tasks/{TASK}/invitations")))
        .await;
    b.click(&format!("input[name='ids'][value='{id}']")).await;
    b.screenshot("invitations").await;
    b.click("button#invite").await;
    let link = b
        .attr(&format!("a.invitation-link[data-account='{id}']"), "href")
        .await
        .expect("the link");
    assert!(
        link.starts_with(&format!("{}/invite/", console.base)),
        "{link}"
    );
    b.screenshot("invitations-made").await;

    // The employee, at another browser without the admin's cookies.
    let e = b.session().await;
    e.open(&link).await;
    e.find("input#password").await;
    let page = e.text("body").await;
    assert!(page.contains(&target(0)), "{page}");
    e.screenshot("self-service").await;
    e.fill("input#password", "not-my-password").await;
    e.click("button#start-migration").await;
    e.wait_attr("#outcome", "data-outcome", Duration::from_secs(30), |v| {
        v == "wrong_password"
    })
    .await;
    assert!(!e.source().await.contains("not-my-password"));
    e.screenshot("self-service-wrong-password").await;

    e.fill("input#password", &s.users[0].password).await;
    e.click("button#start-migration").await;
    e.wait_attr("#outcome", "data-outcome", Duration::from_secs(30), |v| {
        v == "ok"
    })
    .await;
    // The page follows the move by itself until it is done, without being reloaded.
    let first = e
        .attr("#account-status", "data-status")
        .await
        .expect("the account's status");
    e.client
        .execute("window.imapmigStayed = true; return true;", vec![])
        .await
        .unwrap();
    e.wait_attr("#account-status", "data-status", SETTLE, |v| v == "synced")
        .await;
    let stayed = e
        .client
        .execute("return window.imapmigStayed === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        stayed,
        serde_json::Value::Bool(true),
        "the page was reloaded"
    );
    eprintln!("the employee's page showed {first} first, then synced");
    assert!(!e.source().await.contains(&s.users[0].password));
    e.screenshot("self-service-progress").await;

    // The admin sees it too; the other account still waits.
    b.open(&console.url(&format!("/tasks/{TASK}/accounts")))
        .await;
    assert_eq!(
        b.attr(
            &format!("tr.account[data-target='{}']", target(0)),
            "data-status"
        )
        .await
        .as_deref(),
        Some("synced")
    );
    assert_eq!(
        b.attr(
            &format!("tr.account[data-target='{}']", target(1)),
            "data-status"
        )
        .await
        .as_deref(),
        Some("waiting_for_credentials")
    );
}
