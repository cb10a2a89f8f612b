//! Employee self-service end to end, with the real `imapmig serve` process and real Dovecot
//! servers: the admin invites accounts that wait for credentials (page, CSV, API); the employee
//! behind a link is told a wrong password in plain words (nothing changes), gives the right one,
//! and the account runs to synced with every message on the destination; a used link, an
//! expired link, a missing CSRF token and too many attempts are refused; an unreachable source
//! is said so; the open form starts only accounts in a task with the right password; no
//! password appears in the audit log or the console's output.

use imapmig_testsupport as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::console::{csrf_in, ok, Console};
use common::*;
use imapmig_core::batch::{AccountReport, BatchStore, Status};
use imapmig_core::engine::{self, MessageFilter};
use imapmig_testkit::{Dovecot, Flavour, TestUser};
use reqwest::StatusCode;

const TASK: &str = "company";
/// A wrong password, distinctive enough to be searched for in logs.
const WRONG: &str = "Wr0ng-Passw0rd-7Qx";

fn imapmig(state: &Path) -> Command {
    common::console::cli(Path::new(env!("CARGO_BIN_EXE_imapmig")), state, TASK)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A task from `src` to `dst` (Dovecot's master user on the destination) and accounts
/// `(target, source login)` imported without passwords: all wait for credentials.
fn task_against(
    state: &Path,
    src: (&str, u16),
    dst: (&str, u16, &str, &str),
    rows: &[(String, String)],
) {
    let mut create = imapmig(state);
    create
        .args(["task", "create", "--src-host", src.0, "--src-port"])
        .arg(src.1.to_string())
        .args(["--src-tls", "none", "--dst-host", dst.0, "--dst-port"])
        .arg(dst.1.to_string())
        .args([
            "--dst-tls",
            "none",
            "--dst-auth",
            "master",
            "--dst-admin",
            dst.2,
        ])
        .args([
            "--interval",
            "3s",
            "--retries",
            "1",
            "--retry-base",
            "1s",
            "--retry-max",
            "1s",
        ])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", dst.3);
    ok(create);
    let mut csv = String::from("target,source,password\r\n");
    for (target, source) in rows {
        csv.push_str(&format!("{target},{source},\r\n"));
    }
    let file = state.with_file_name("accounts.csv");
    std::fs::write(&file, csv).unwrap();
    let mut import = imapmig(state);
    import.args(["accounts", "import"]).arg(&file);
    let out = ok(import);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("({} waiting for credentials)", rows.len())),
        "{said}"
    );
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An admin client with a session; returns it and its CSRF token.
async fn admin(console: &Console) -> (reqwest::Client, String) {
    let c = client();
    let r = c
        .post(console.url("/api/login"))
        .json(&serde_json::json!({ "token": console.token() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    (c, v["csrf"].as_str().unwrap().to_string())
}

/// The link of `a.invitation-link[data-account=id]` in a page.
fn link_in(html: &str, id: i64) -> String {
    let marker = format!("data-account=\"{id}\" href=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no link for account {id} in {html}"))
        + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// The `data-outcome` of a page.
fn outcome_in(html: &str) -> String {
    let at = html
        .find("data-outcome=\"")
        .unwrap_or_else(|| panic!("no outcome in {html}"))
        + "data-outcome=\"".len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

fn accounts(store: &BatchStore) -> Vec<AccountReport> {
    store.accounts(TASK).expect("read the store")
}

fn account_named(store: &BatchStore, target: &str) -> AccountReport {
    accounts(store)
        .into_iter()
        .find(|a| a.target == target)
        .unwrap_or_else(|| panic!("no account {target}"))
}

fn wait_for(
    store: &BatchStore,
    target: &str,
    secs: u64,
    done: impl Fn(&AccountReport) -> bool,
) -> AccountReport {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let a = account_named(store, target);
        if done(&a) {
            return a;
        }
        assert!(Instant::now() < deadline, "timed out: {a:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn audit_text(state: &Path) -> String {
    let mut audit = imapmig(state);
    audit.arg("audit");
    String::from_utf8_lossy(&ok(audit).stdout).to_string()
}

fn mailbox(who: &str) -> Vec<Seed> {
    vec![
        seed(
            "INBOX",
            message(&format!("{who} hello"), 10),
            "\\Seen",
            None,
        ),
        seed(
            "INBOX",
            message(&format!("{who} unread"), 30),
            "",
            Some("02-Mar-2019 23:59:59 -0500"),
        ),
        seed("Notes", message(&format!("{who} note"), 8), "\\Seen", None),
        seed(
            "Archive/2023",
            message(&format!("{who} archived"), 12),
            "\\Flagged",
            None,
        ),
        seed(
            "Archive/2023",
            message(&format!("{who} more"), 40),
            "",
            None,
        ),
    ]
}

/// Source and destination Dovecot with `n` users, the source mailboxes seeded.
struct Servers {
    src: Dovecot,
    dst: Dovecot,
    users: Vec<TestUser>,
}

fn target(i: usize) -> String {
    format!("emp{i}@new.example")
}

fn servers(rt: &tokio::runtime::Runtime, n: usize) -> Servers {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let users: Vec<TestUser> = (0..n).map(|i| src.user(&format!("emp{i}"))).collect();
    for i in 0..n {
        dst.user(&target(i));
    }
    rt.block_on(async {
        for u in &users {
            fill(&account(&src, u), &mailbox(&u.name)).await;
        }
    });
    Servers { src, dst, users }
}

fn task_on(state: &Path, s: &Servers) {
    let rows: Vec<(String, String)> = s
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (target(i), u.name.clone()))
        .collect();
    task_against(
        state,
        (s.src.host(), s.src.imap_port()),
        (
            s.dst.host(),
            s.dst.imap_port(),
            &s.dst.master_user().name,
            &s.dst.master_user().password,
        ),
        &rows,
    );
}

/// Every message of the source account is on the destination, once.
async fn verify_moved(s: &Servers, i: usize) {
    let sa = account(&s.src, &s.users[i]);
    let da = account(&s.dst, &s.dst.user(&target(i)));
    let v = engine::verify(&sa, &da, &Default::default(), &MessageFilter::default())
        .await
        .expect("verify");
    assert!(v.is_identical(), "account {i}: {v:#?}");
    let copied: usize = v.folders.iter().map(|f| f.source_messages as usize).sum();
    assert_eq!(copied, mailbox(&s.users[i].name).len(), "{v:#?}");
}

fn no_secrets(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!text.contains(s), "a secret in {what}: {text}");
    }
}

#[test]
fn an_invited_employee_starts_the_move_with_the_right_password() {
    let rt = runtime();
    let s = servers(&rt, 3);
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state.sqlite");
    task_on(&state, &s);
    let store = BatchStore::open(&state).unwrap();
    let ids: Vec<i64> = (0..3)
        .map(|i| account_named(&store, &target(i)).id)
        .collect();
    let console = Console::start(Path::new(env!("CARGO_BIN_EXE_imapmig")), &state, &[]);
    let right = s.users[0].password.clone();

    let mut tokens = Vec::new();
    rt.block_on(async {
        let (admin, csrf) = admin(&console).await;
        // The page lists the accounts waiting for credentials.
        let page = admin
            .get(console.url(&format!("/tasks/{TASK}/invitations")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        for id in &ids {
            assert!(
                html.contains(&format!("name=\"ids\" value=\"{id}\"")),
                "{html}"
            );
        }
        // Links as a page, for the first account.
        let r = admin
            .post(console.url(&format!("/tasks/{TASK}/invitations")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("ids", &ids[0].to_string()),
                ("format", "html"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        let link = link_in(&html, ids[0]);
        assert!(
            link.starts_with(&format!("{}/invite/", console.base)),
            "{link}"
        );
        tokens.push(link.clone());
        // As CSV, for the third, named by its address.
        let r = admin
            .post(console.url(&format!("/tasks/{TASK}/invitations")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("account", &target(2)),
                ("format", "csv"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let disposition = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "target,source,link,expires_at");
        assert_eq!(lines.len(), 2, "{csv}");
        assert!(
            lines[1].starts_with(&format!(
                "{},{},{}/invite/",
                target(2),
                s.users[2].name,
                console.base
            )),
            "{csv}"
        );
        // Through the API, for the second; the form without its CSRF token is refused.
        let r = admin
            .post(console.url(&format!("/tasks/{TASK}/invitations")))
            .form(&[("ids", ids[1].to_string().as_str()), ("format", "html")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = admin
            .post(console.url(&format!("/api/tasks/{TASK}/invitations")))
            .header("X-CSRF-Token", &csrf)
            .json(&serde_json::json!({ "accounts": [format!("#{}", ids[1])] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v[0]["account"], ids[1]);
        assert_eq!(v[0]["target"], target(1));
        tokens.push(v[0]["link"].as_str().unwrap().to_string());
    });
    let (link0, link1) = (tokens[0].clone(), tokens[1].clone());
    let hash0 = imapmig_web::auth::token_hash(token_of(&link0));
    assert!(
        store.invitation(&hash0).unwrap().is_some(),
        "the store keeps the hash"
    );

    rt.block_on(async {
        // The employee: a browser of their own, without the admin's cookies.
        let emp = client();
        let r = emp.get(&link0).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&s.users[0].name) && html.contains(&target(0)),
            "{html}"
        );
        assert!(html.contains("id=\"password\"") && html.contains("id=\"start-migration\""));
        let csrf = csrf_in(&html).expect("a CSRF token in the form");

        // Without the visitor cookie, or with a wrong token: refused, nothing checked.
        let r = client()
            .post(&link0)
            .form(&[("csrf", csrf.as_str()), ("password", right.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = emp
            .post(&link0)
            .form(&[("csrf", "forged"), ("password", right.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            account_named(&store, &target(0)).status,
            Status::WaitingForCredentials
        );

        // A wrong password: said so; the account still waits, the link still works.
        let r = emp
            .post(&link0)
            .form(&[("csrf", csrf.as_str()), ("password", WRONG)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert_eq!(outcome_in(&html), "wrong_password", "{html}");
        assert!(html.contains("did not accept this password"), "{html}");
        assert!(!html.contains(WRONG), "the password echoed");
        let a = account_named(&store, &target(0));
        assert_eq!(a.status, Status::WaitingForCredentials);
        assert!(!a.has_credentials);
        assert_eq!(store.invitation(&hash0).unwrap().unwrap().used_at, None);

        // The right one: the account starts.
        let r = emp
            .post(&link0)
            .form(&[("csrf", csrf.as_str()), ("password", right.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert_eq!(outcome_in(&html), "ok", "{html}");
        assert!(html.contains("id=\"account-status\""), "{html}");
        assert!(!html.contains(&right), "the password echoed");
        assert!(store.invitation(&hash0).unwrap().unwrap().used_at.is_some());
    });

    let a = wait_for(&store, &target(0), 90, |a| a.synced_at.is_some());
    assert_eq!(a.messages, mailbox(&s.users[0].name).len() as u64, "{a:#?}");
    rt.block_on(verify_moved(&s, 0));
    let supplied = |text: &str| {
        text.lines()
            .filter(|l| l.contains("credentials_supplied"))
            .count()
    };
    let before = supplied(&audit_text(&state));
    assert_eq!(before, 1);

    rt.block_on(async {
        let emp = client();
        // Afterwards the link shows the progress, and its fragment too.
        let html = emp.get(&link0).send().await.unwrap().text().await.unwrap();
        assert!(
            html.contains("id=\"account-status\"") && html.contains("data-poll=\"/invite/"),
            "{html}"
        );
        assert!(!html.contains("id=\"password\""), "{html}");
        let frag = emp
            .get(format!("{link0}/status"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            frag.contains("data-status=\"synced\"") || frag.contains("data-status=\"running\""),
            "{frag}"
        );
        // A second password on a used link: 410, nothing changes.
        let csrf = csrf_in(
            &emp.get(console.url("/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let r = emp
            .post(&link0)
            .form(&[("csrf", csrf.as_str()), ("password", WRONG)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GONE);
        assert_eq!(outcome_in(&r.text().await.unwrap()), "used");
        let r = emp
            .post(format!(
                "{}/credentials",
                link0.replace("/invite/", "/api/invitations/")
            ))
            .header("X-CSRF-Token", &csrf)
            .json(&serde_json::json!({ "password": WRONG }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GONE);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["outcome"], "used");

        // The API twin: whose mailbox, and too many wrong passwords are refused with 429.
        let api = link1.replace("/invite/", "/api/invitations/");
        let bare = reqwest::Client::new();
        let v: serde_json::Value = bare.get(&api).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["target"], target(1));
        assert_eq!(v["used"], false);
        for n in 0..5 {
            let r = bare
                .post(format!("{api}/credentials"))
                .json(&serde_json::json!({ "password": WRONG }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "attempt {n}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["outcome"], "wrong_password");
            assert_eq!(v["status"], "waiting_for_credentials");
        }
        let r = bare
            .post(format!("{api}/credentials"))
            .json(&serde_json::json!({ "password": s.users[1].password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["outcome"], "rate_limited");
        // Unknown links: 404.
        let r = bare
            .get(console.url("/invite/nosuchtoken"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.text().await.unwrap().contains("new link"));
    });
    assert_eq!(
        account_named(&store, &target(1)).status,
        Status::WaitingForCredentials
    );
    assert_eq!(supplied(&audit_text(&state)), before, "nothing changed");

    let audit = audit_text(&state);
    assert!(audit.contains("invitation_accepted"), "{audit}");
    let secrets: Vec<&str> = vec![
        WRONG,
        &right,
        &s.users[1].password,
        token_of(&link0),
        token_of(&link1),
    ];
    no_secrets(&audit, &secrets, "the audit log");
    no_secrets(&console.stderr_text(), &secrets, "the console's output");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_source_and_an_expired_link_are_said_so() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state.sqlite");
    let port = closed_port();
    task_against(
        &state,
        ("127.0.0.1", port),
        ("127.0.0.1", port, "admin", "admin-pw"),
        &[
            ("a@new.example".into(), "a".into()),
            ("b@new.example".into(), "b".into()),
        ],
    );
    let console = Console::start(
        Path::new(env!("CARGO_BIN_EXE_imapmig")),
        &state,
        &[
            "--invitation-ttl",
            "2s",
            "--public-url",
            "https://migrate.example.com/",
        ],
    );
    rt.block_on(async {
        let (admin, csrf) = admin(&console).await;
        let r = admin
            .post(console.url(&format!("/api/tasks/{TASK}/invitations")))
            .header("X-CSRF-Token", &csrf)
            .json(&serde_json::json!({ "all": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        let links: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["link"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(links.len(), 2);
        assert!(
            links[0].starts_with("https://migrate.example.com/invite/"),
            "{links:?}"
        );
        let local = |l: &str| console.url(&format!("/invite/{}", token_of(l)));

        // The source does not answer: said so, nothing changes.
        let emp = client();
        let html = emp
            .get(local(&links[0]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = csrf_in(&html).unwrap();
        let r = emp
            .post(local(&links[0]))
            .form(&[("csrf", token.as_str()), ("password", WRONG)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let html = r.text().await.unwrap();
        assert_eq!(outcome_in(&html), "unreachable", "{html}");
        assert!(html.contains("could not be reached"), "{html}");

        // Two seconds later both links have expired.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r = emp.get(local(&links[1])).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::GONE);
        assert!(r.text().await.unwrap().contains("new link"));
        let r = emp
            .post(local(&links[1]))
            .form(&[("csrf", token.as_str()), ("password", WRONG)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::GONE);

        // Without --open-form there is no open form.
        let r = emp.get(console.url("/self-service")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    });
    let store = BatchStore::open(&state).unwrap();
    assert!(accounts(&store)
        .iter()
        .all(|a| a.status == Status::WaitingForCredentials && !a.has_credentials));
    no_secrets(&audit_text(&state), &[WRONG], "the audit log");
    no_secrets(&console.stderr_text(), &[WRONG], "the console's output");
}

#[test]
fn the_open_form_starts_only_an_account_in_a_task_with_its_right_password() {
    let rt = runtime();
    let s = servers(&rt, 1);
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state.sqlite");
    task_on(&state, &s);
    let store = BatchStore::open(&state).unwrap();
    let console = Console::start(
        Path::new(env!("CARGO_BIN_EXE_imapmig")),
        &state,
        &["--open-form"],
    );
    let right = s.users[0].password.clone();
    rt.block_on(async {
        let emp = client();
        let r = emp.get(console.url("/self-service")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(html.contains("id=\"address\"") && html.contains("id=\"password\""));
        let csrf = csrf_in(&html).unwrap();
        let post = |address: String, password: String| {
            let emp = emp.clone();
            let csrf = csrf.clone();
            let url = console.url("/self-service");
            async move {
                let r = emp
                    .post(url)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("address", address.as_str()),
                        ("password", password.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        // An address in no task, and a known one with a wrong password: the same answer.
        let (st_unknown, unknown) = post("nobody@old.example".into(), right.clone()).await;
        let (st_wrong, wrong) = post(s.users[0].name.clone(), WRONG.into()).await;
        assert_eq!(st_unknown, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(st_wrong, st_unknown);
        assert_eq!(outcome_in(&unknown), "not_started");
        assert_eq!(outcome_in(&wrong), "not_started");
        assert!(unknown.contains("could not start a migration for this address with this password"));
        assert!(!unknown.contains(&right) && !wrong.contains(WRONG), "a password echoed");
        assert_eq!(account_named(&store, &target(0)).status, Status::WaitingForCredentials);

        // The right address and password: it starts.
        let (st, html) = post(s.users[0].name.clone(), right.clone()).await;
        assert_eq!(st, StatusCode::OK, "{html}");
        assert_eq!(outcome_in(&html), "ok", "{html}");
        assert!(html.contains("id=\"account-status\""), "{html}");
    });
    wait_for(&store, &target(0), 90, |a| a.synced_at.is_some());
    rt.block_on(verify_moved(&s, 0));
    rt.block_on(async {
        // The API twin: the account runs already; nothing changes.
        let r = reqwest::Client::new()
            .post(console.url("/api/self-service"))
            .json(&serde_json::json!({ "address": target(0), "password": right }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["outcome"], "already_started");
    });
    let audit = audit_text(&state);
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("credentials_supplied"))
            .count(),
        1
    );
    no_secrets(&audit, &[WRONG, &right], "the audit log");
    no_secrets(
        &console.stderr_text(),
        &[WRONG, &right],
        "the console's output",
    );
}
