//! What the self-service page tells an employee, against each kind of source: a POP3 source
//! (real Dovecot: a wrong password, then the right one, which starts the account), an IMAPS
//! source whose certificate the console does not trust (real Dovecot with the test kit's own
//! CA: "tls"), and a server that refuses the login because IMAP access is off (played by the
//! test kit's scripted server, since no real server here can be told to say so: "imap_disabled").
//! In each case nothing is stored unless the login worked.

use imapmig_testsupport as common;

use std::path::Path;
use std::process::Command;

use common::console::{csrf_in, ok, Console};
use imapmig_core::batch::{BatchStore, Status};
use imapmig_testkit::{Dovecot, Flavour, ScriptedServer};
use reqwest::StatusCode;

const TASK: &str = "company";
const WRONG: &str = "Wr0ng-Passw0rd-7Qx";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_imapmig"))
}

fn imapmig(state: &Path) -> Command {
    common::console::cli(bin(), state, TASK)
}

/// A task from `src` (extra flags say protocol and TLS) to `dst`, with one account waiting
/// for credentials: `user` → `user@new.example`.
fn task(state: &Path, src: (&str, u16), src_flags: &[&str], dst: &Dovecot, user: &str) {
    let mut create = imapmig(state);
    create
        .args(["task", "create", "--src-host", src.0, "--src-port"])
        .arg(src.1.to_string())
        .args(src_flags)
        .args(["--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(dst.master_user().name)
        .args(["--retries", "1", "--retry-base", "1s", "--retry-max", "1s"])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", dst.master_user().password);
    ok(create);
    dst.user(&format!("{user}@new.example"));
    let file = state.with_file_name("accounts.csv");
    std::fs::write(
        &file,
        format!("target,source,password\r\n{user}@new.example,{user},\r\n"),
    )
    .unwrap();
    let mut import = imapmig(state);
    import.args(["accounts", "import"]).arg(&file);
    ok(import);
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The one invitation link of the task, made through the API with the admin token.
async fn invitation(console: &Console) -> String {
    let r = client()
        .post(console.url(&format!("/api/tasks/{TASK}/invitations")))
        .bearer_auth(console.token())
        .json(&serde_json::json!({ "all": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    let link = v[0]["link"].as_str().unwrap();
    console.url(&format!("/invite/{}", link.rsplit('/').next().unwrap()))
}

/// Types `password` into the page behind `link` as a fresh browser would; returns the HTTP
/// status and the page's `data-outcome`.
async fn submit(link: &str, password: &str) -> (StatusCode, String, String) {
    let emp = client();
    let page = emp.get(link).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&page).expect("a form with its CSRF token");
    let r = emp
        .post(link)
        .form(&[("csrf", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let html = r.text().await.unwrap();
    let at = html
        .find("data-outcome=\"")
        .unwrap_or_else(|| panic!("no outcome in {html}"))
        + "data-outcome=\"".len();
    let outcome = html[at..at + html[at..].find('"').unwrap()].to_string();
    (status, outcome, html)
}

fn the_account(state: &Path) -> imapmig_core::batch::AccountReport {
    BatchStore::open(state).unwrap().accounts(TASK).unwrap()[0].clone()
}

fn still_waiting(state: &Path) {
    let a = the_account(state);
    assert_eq!(a.status, Status::WaitingForCredentials, "{a:?}");
    assert!(!a.has_credentials);
}

#[test]
fn a_pop3_source_is_checked_over_pop3() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let u = src.user("carol");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    task(
        &state,
        (src.host(), src.pop3_port()),
        &["--src-protocol", "pop3", "--src-tls", "none"],
        &dst,
        &u.name,
    );
    let console = Console::start(bin(), &state, &["--no-run"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let link = invitation(&console).await;
        let (status, outcome, html) = submit(&link, WRONG).await;
        assert_eq!(
            (status, outcome.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "wrong_password"),
            "{html}"
        );
        still_waiting(&state);
        let (status, outcome, html) = submit(&link, &u.password).await;
        assert_eq!((status, outcome.as_str()), (StatusCode::OK, "ok"), "{html}");
        assert!(!html.contains(&u.password), "the password is shown back");
    });
    let a = the_account(&state);
    assert!(a.has_credentials);
    assert_eq!(a.status, Status::Scheduled, "{a:?}");
}

#[test]
fn an_untrusted_certificate_is_a_tls_problem_not_a_wrong_password() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let u = src.user("dave");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    // Implicit TLS with the certificate checked against the system's roots, which do not
    // include the test kit's CA.
    task(
        &state,
        (src.host(), src.imaps_port()),
        &["--src-tls", "tls"],
        &dst,
        &u.name,
    );
    let console = Console::start(bin(), &state, &["--no-run"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let link = invitation(&console).await;
        let (status, outcome, html) = submit(&link, &u.password).await;
        assert_eq!(
            (status, outcome.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "tls"),
            "{html}"
        );
    });
    still_waiting(&state);
}

#[test]
fn a_server_with_imap_access_off_is_said_so() {
    // Scripted: every login (LOGIN or AUTHENTICATE) is refused the way providers word it.
    let server = ScriptedServer::start_with_hook("erin", "right-pw", vec![], |cmd| {
        (cmd.name == "LOGIN" || cmd.name == "AUTHENTICATE").then(|| {
            format!(
                "{} NO [ALERT] IMAP access is disabled for this account: enable it in your \
                 webmail settings\r\n",
                cmd.tag
            )
            .into_bytes()
        })
    });
    let dst = Dovecot::start(Flavour::Slash);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    task(
        &state,
        (server.host(), server.port()),
        &["--src-tls", "none"],
        &dst,
        "erin",
    );
    let console = Console::start(bin(), &state, &["--no-run"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let link = invitation(&console).await;
        let (status, outcome, html) = submit(&link, "right-pw").await;
        assert_eq!(
            (status, outcome.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "imap_disabled"),
            "{html}"
        );
    });
    assert!(server.login_attempts() >= 1, "the login was really tried");
    still_waiting(&state);
}
