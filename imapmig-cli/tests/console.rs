//! The admin console over HTTP, with the real `imapmig serve` (and, for a migration, real
//! Dovecot servers): who is let in and who is not; an admin who logs in through the form,
//! imports a CSV (a bad row first: nothing is imported and the line is named), starts the task,
//! finds the account with a wrong password among the failed ones and exports exactly what
//! `imapmig status` prints; and the JSON API driven with the admin token.

use imapmig_testsupport as common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::console::{csrf_in, ok, Console};
use common::*;
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const TASK: &str = "company";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn imapmig(state: &Path) -> Command {
    common::console::cli(Path::new(env!("CARGO_BIN_EXE_imapmig")), state, TASK)
}

/// A task whose servers are never reached (its start is far in the future).
fn idle_task(state: &Path) {
    let mut c = imapmig(state);
    c.args([
        "task",
        "create",
        "--src-host",
        "127.0.0.1",
        "--src-port",
        "9",
        "--src-tls",
        "none",
        "--dst-host",
        "127.0.0.1",
        "--dst-port",
        "9",
        "--dst-tls",
        "none",
        "--dst-auth",
        "master",
        "--dst-admin",
        "master",
        "--start-at",
        "2099-01-01T00:00:00Z",
    ])
    .env("IMAPMIG_DST_ADMIN_PASSWORD", "master-password");
    ok(c);
}

fn client(redirects: bool) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(if redirects {
            Policy::limited(5)
        } else {
            Policy::none()
        })
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Logs in through the login form; returns the page it lands on.
async fn login_form(c: &Client, console: &Console, token: &str) -> (StatusCode, String) {
    let page = c
        .get(console.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&page).expect("the login form has a CSRF field");
    let r = c
        .post(console.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("next", "/tasks"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

async fn get_text(c: &Client, url: String) -> (StatusCode, String) {
    let r = c.get(url).send().await.unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

async fn get_json(c: &Client, url: String) -> Value {
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn requests_without_a_session_or_a_csrf_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    idle_task(&state);
    let console = Console::start(
        Path::new(env!("CARGO_BIN_EXE_imapmig")),
        &state,
        &["--no-run"],
    );
    let token = console.token().to_string();
    runtime().block_on(async {
        let anon = client(false);
        // Pages send strangers to the login page; the API says 401.
        for path in [
            "/tasks",
            "/tasks/company",
            "/tasks/company/accounts",
            "/tasks/company/export.csv",
        ] {
            let r = anon.get(console.url(path)).send().await.unwrap();
            assert!(r.status().is_redirection(), "{path}: {}", r.status());
            assert!(
                location(&r).starts_with("/login"),
                "{path}: {}",
                location(&r)
            );
        }
        for path in [
            "/api/tasks",
            "/api/tasks/company",
            "/api/tasks/company/export",
        ] {
            let r = anon.get(console.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["kind"], "unauthorized");
        }
        // A wrong bearer token, a wrong token in the form.
        let r = anon
            .get(console.url("/api/tasks"))
            .bearer_auth("imt_not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let (status, page) = login_form(&anon, &console, "imt_not-the-token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("login-error"), "{page}");
        let r = anon.get(console.url("/tasks")).send().await.unwrap();
        assert!(r.status().is_redirection());

        // Logged in: a changing request needs the session's CSRF token.
        let admin = client(false);
        let (status, _) = login_form(&admin, &console, &token).await;
        assert!(status.is_redirection(), "{status}");
        let (status, overview) = get_text(&admin, console.url("/tasks/company")).await;
        assert_eq!(status, StatusCode::OK);
        let csrf = csrf_in(&overview).unwrap();
        for form in [vec![], vec![("csrf", "wrong")]] {
            let r = admin
                .post(console.url("/tasks/company/pause-all"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?}");
        }
        let r = admin
            .post(console.url("/api/tasks/company/start"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "a cookie without X-CSRF-Token"
        );
        let r = admin
            .post(console.url("/tasks/company/pause-all"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());

        // The settings form: a bad field is named and nothing is stored; a good one saves.
        let (status, page) = get_text(&admin, console.url("/tasks/company/settings")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("id=\"save\""));
        let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf.clone())];
        for (k, v) in [
            ("src_host", "127.0.0.1"),
            ("src_port", "9"),
            ("src_tls", "cleartext"),
            ("dst_host", "127.0.0.1"),
            ("dst_port", "9"),
            ("dst_tls", "cleartext"),
            ("include", ""),
            ("exclude", ""),
            ("since", "2020-13-45"),
            ("before", ""),
            ("max_size", ""),
            ("start_at", "2099-01-01T00:00:00Z"),
            ("window", "30d"),
            ("interval", "2h"),
            ("max_accounts", "4"),
            ("per_source_host", "8"),
            ("per_destination_host", "8"),
            ("connections_per_account", "1"),
            ("retries", "3"),
            ("retry_base", "1m"),
            ("retry_max", "1h"),
            ("apply_to", "not_started"),
        ] {
            form.push((k.into(), v.into()));
        }
        let r = admin
            .post(console.url("/tasks/company/settings"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text().await.unwrap();
        assert!(page.contains("data-field=\"since\""), "{page}");
        for f in form.iter_mut().filter(|(k, _)| k == "since") {
            f.1 = "2020-01-01".into();
        }
        let r = admin
            .post(console.url("/tasks/company/settings"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        let (_, page) = get_text(&admin, console.url(&location(&r))).await;
        assert!(
            page.contains("schedule.interval") && page.contains("messages.since"),
            "{page}"
        );

        // The bulk form acts on the ticked accounts.
        let mut import = imapmig(&state);
        let csv = dir.path().join("a.csv");
        std::fs::write(
            &csv,
            "target,source,password\na@x.example,a,pw\nb@x.example,b,pw\n",
        )
        .unwrap();
        import.args(["accounts", "import"]).arg(&csv);
        ok(import);
        let r = admin
            .post(console.url("/tasks/company/accounts/actions"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("ids", "1"),
                ("ids", "2"),
                ("action", "pause"),
                ("back", "?sort=target"),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection());
        let (_, page) = get_text(&admin, console.url(&location(&r))).await;
        assert!(page.contains("Pause: 2 account(s) changed"), "{page}");
        assert_eq!(page.matches("data-status=\"paused\"").count(), 2, "{page}");

        // Logout ends the session.
        let r = admin
            .post(console.url("/logout"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection());
        let r = admin.get(console.url("/tasks")).send().await.unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        assert!(location(&r).starts_with("/login"));
        let r = admin.get(console.url("/api/tasks")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    });
}

/// Polls the accounts API until `done` holds, failing after `secs` with what it saw.
async fn wait_for(
    c: &Client,
    console: &Console,
    secs: u64,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let page = get_json(c, console.url("/api/tasks/company/accounts?per_page=500")).await;
        let list = page["accounts"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting until {what}: {list:#?}\n{}",
                console.stderr_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rows_of(page: &str) -> usize {
    page.matches("<tr class=\"account\"").count()
}

#[test]
fn an_admin_imports_starts_finds_the_failure_and_exports_what_status_prints() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start_with(Flavour::DotInbox, DovecotOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let users: Vec<_> = (0..3).map(|i| src.user(&format!("w{i}"))).collect();
    for i in 0..3 {
        dst.user(&format!("w{i}@x.example"));
    }
    let rt = runtime();
    rt.block_on(async {
        for (i, u) in users.iter().enumerate() {
            let seeds = vec![
                seed("INBOX", message(&format!("w{i} hello"), 10), "\\Seen", None),
                seed("Notes", message(&format!("w{i} note"), 5), "", None),
            ];
            fill(&account(&src, u), &seeds).await;
        }
    });
    let mut create = imapmig(&state);
    create
        .args(["task", "create", "--src-host", src.host(), "--src-port"])
        .arg(src.imap_port().to_string())
        .args(["--src-tls", "none", "--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(dst.master_user().name)
        .args(["--start-at", "2099-01-01T00:00:00Z", "--interval", "6h"])
        .args(["--retries", "1", "--retry-base", "1s", "--retry-max", "1s"])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", dst.master_user().password);
    ok(create);

    let console = Console::start(Path::new(env!("CARGO_BIN_EXE_imapmig")), &state, &[]);
    let token = console.token().to_string();
    let line = |i: usize, password: &str| format!("w{i}@x.example,{},{password}\n", users[i].name);
    let good = format!(
        "target,source,password\n{}{}{}",
        line(0, &users[0].password),
        line(1, "wrong-password"),
        line(2, &users[2].password)
    );
    let bad = format!(
        "target,source,password\n{}not-an-address,{},{}\n{}",
        line(0, &users[0].password),
        users[1].name,
        users[1].password,
        line(2, &users[2].password)
    );

    rt.block_on(async {
        let c = client(true);
        let (status, landing) = login_form(&c, &console, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(landing.contains("class=\"task\""), "{landing}");

        // A bad row: 422, the line named, nothing imported.
        let import_page = get_text(&c, console.url("/tasks/company/import")).await.1;
        let csrf = csrf_in(&import_page).unwrap();
        let upload = |csv: String| {
            reqwest::multipart::Form::new().part(
                "csv",
                reqwest::multipart::Part::bytes(csv.into_bytes())
                    .file_name("accounts.csv")
                    .mime_str("text/csv")
                    .unwrap(),
            )
        };
        let r = c
            .post(console.url(&format!("/tasks/company/import?csrf={csrf}")))
            .multipart(upload(bad))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = r.text().await.unwrap();
        assert!(page.contains("data-line=\"3\""), "{page}");
        assert!(page.contains("Line 3:") && page.contains("accounts.csv"), "{page}");
        assert!(!page.contains(&users[1].password), "a password in the page");
        let none = get_json(&c, console.url("/api/tasks/company/accounts")).await;
        assert_eq!(none["matching"], 0);

        // The fixed file.
        let r = c
            .post(console.url(&format!("/tasks/company/import?csrf={csrf}")))
            .multipart(upload(good))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(page.contains("id=\"import-result\""), "{page}");
        assert!(page.contains("data-added=\"3\""), "{page}");

        // Start now: the start time was in 2099.
        let overview = get_text(&c, console.url("/tasks/company")).await.1;
        assert!(overview.contains("id=\"count-not_started\"") || overview.contains("id=\"count-scheduled\""));
        for s in ["not_started", "scheduled", "waiting_for_credentials", "running", "paused", "synced", "failed", "stopped"] {
            assert!(overview.contains(&format!("id=\"count-{s}\"")), "count-{s}");
        }
        let csrf = csrf_in(&overview).unwrap();
        let r = c
            .post(console.url("/tasks/company/start"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("starts now"));
        let settings = get_json(&c, console.url("/api/tasks/company/settings")).await;
        assert!(settings["settings"]["schedule"]["start_at"].is_null(), "{settings}");

        // Two accounts reach synced, the one with the wrong password fails (authentication).
        let list = wait_for(&c, &console, 180, "two synced and one failed", |l| {
            l.len() == 3
                && l.iter().filter(|a| a["status"] == "synced").count() == 2
                && l.iter().filter(|a| a["status"] == "failed").count() == 1
        })
        .await;
        let failed = list.iter().find(|a| a["status"] == "failed").unwrap();
        assert_eq!(failed["target"], "w1@x.example");
        assert_eq!(failed["failure"], "authentication");

        let (_, page) = get_text(&c, console.url("/tasks/company/accounts?status=failed")).await;
        assert_eq!(rows_of(&page), 1, "{page}");
        assert!(page.contains("data-target=\"w1@x.example\""));
        assert!(page.contains("<span id=\"matching\">1</span>"), "{page}");
        let by_category = get_json(
            &c,
            console.url("/api/tasks/company/accounts?status=failed&failure=authentication"),
        )
        .await;
        assert_eq!(by_category["matching"], 1);
        let (_, all) = get_text(&c, console.url("/tasks/company/accounts?sort=target&dir=desc")).await;
        assert_eq!(rows_of(&all), 3);
        assert!(all.find("w2@x.example").unwrap() < all.find("w0@x.example").unwrap());

        // The failed account's page, and a synced one's folders from the sync state.
        let id = failed["id"].as_i64().unwrap();
        let (_, page) = get_text(&c, console.url(&format!("/tasks/company/accounts/{id}"))).await;
        assert!(page.contains("id=\"account-status\" data-status=\"failed\""), "{page}");
        assert!(page.contains("id=\"account-audit\""));
        let synced = list.iter().find(|a| a["target"] == "w0@x.example").unwrap();
        let detail = get_json(
            &c,
            console.url(&format!("/api/tasks/company/accounts/{}", synced["id"])),
        )
        .await;
        let folders = detail["folders"].as_array().unwrap();
        let copied: u64 = folders.iter().map(|f| f["copied"].as_u64().unwrap()).sum();
        assert_eq!(copied, 2, "{detail}");

        // The overview knows who migrates.
        let o = get_json(&c, console.url("/api/tasks/company")).await;
        assert_eq!(o["statuses"]["synced"], 2);
        assert_eq!(o["scheduler"]["who"], "this_process", "{o}");
        assert_eq!(o["eta"]["remaining"], 1);

        // The export is what `imapmig status` prints, at a quiet moment (nothing is due for
        // six hours; compared until two reads agree).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c.get(console.url("/tasks/company/export.csv")).send().await.unwrap();
            assert!(r
                .headers()
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("attachment"));
            let csv = r.text().await.unwrap();
            let mut status = imapmig(&state);
            status.args(["status", "--format", "csv"]);
            let cli = String::from_utf8(ok(status).stdout).unwrap();
            let json = c
                .get(console.url("/tasks/company/export.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let mut status = imapmig(&state);
            status.args(["status", "--format", "json"]);
            let cli_json = String::from_utf8(ok(status).stdout).unwrap();
            if csv == cli && json == cli_json {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the export differs from imapmig status:\n{csv}\n---\n{cli}\n---\n{json}\n---\n{cli_json}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

#[test]
fn the_api_with_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    idle_task(&state);
    let console = Console::start(Path::new(env!("CARGO_BIN_EXE_imapmig")), &state, &[]);
    let token = console.token().to_string();
    runtime().block_on(async {
        let c = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let get = |path: &str| c.get(console.url(path)).bearer_auth(&token).send();

        let tasks: Value = get("/api/tasks").await.unwrap().json().await.unwrap();
        assert_eq!(tasks[0]["name"], TASK);

        // Import with a bad row: 422 with every bad row, nothing imported.
        let bad = "target,source,password\na@x.example,a,pw\nnot-an-address,b,pw\nc@x.example,c,\n";
        let r = c
            .post(console.url("/api/tasks/company/import?filename=people.csv"))
            .bearer_auth(&token)
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["kind"], "unprocessable");
        assert_eq!(v["rows"][0]["line"], 3, "{v}");
        assert!(v["error"].as_str().unwrap().contains("people.csv"));
        let page: Value = get("/api/tasks/company/accounts")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["matching"], 0);
        // Skipping the bad row imports the others.
        let r = c
            .post(console.url("/api/tasks/company/import?skip_bad_rows=1"))
            .bearer_auth(&token)
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["added"], 2);
        assert_eq!(v["waiting_for_credentials"], 1);
        assert_eq!(v["skipped"][0]["line"], 3);

        // A page, sorted and filtered.
        let page: Value = get("/api/tasks/company/accounts?sort=target&dir=desc&per_page=1")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["matching"], 2);
        assert_eq!(page["accounts"].as_array().unwrap().len(), 1);
        assert_eq!(page["accounts"][0]["target"], "c@x.example");
        let waiting: Value = get("/api/tasks/company/accounts?status=waiting_for_credentials")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(waiting["matching"], 1);
        let r = get("/api/tasks/company/accounts?status=done")
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = get("/api/tasks/nosuch/accounts").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.json::<Value>().await.unwrap()["kind"], "not_found");

        // Pause and resume one account.
        let a = page["accounts"][0]["id"].as_i64().unwrap();
        let r = c
            .post(console.url(&format!("/api/tasks/company/accounts/{a}/pause")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["changed"], 1);
        let one: Value = get(&format!("/api/tasks/company/accounts/{a}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["account"]["status"], "paused");
        let r = c
            .post(console.url("/api/tasks/company/actions"))
            .bearer_auth(&token)
            .json(&json!({"action": "resume", "accounts": [format!("#{a}")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["changed"], 1);
        let one: Value = get(&format!("/api/tasks/company/accounts/{a}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_ne!(one["account"]["status"], "paused");
        let r = c
            .post(console.url("/api/tasks/company/actions"))
            .bearer_auth(&token)
            .json(&json!({"action": "explode", "all": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // Credentials for the waiting account; the password never comes back.
        let w = waiting["accounts"][0]["id"].as_i64().unwrap();
        let r = c
            .put(console.url(&format!("/api/tasks/company/accounts/{w}/credentials")))
            .bearer_auth(&token)
            .json(&json!({"password": "s3cret-pw"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_ne!(v["status"], "waiting_for_credentials");

        // Settings: a good patch, a bad one.
        let r = c
            .patch(console.url("/api/tasks/company/settings"))
            .bearer_auth(&token)
            .json(&json!({"limits": {"accounts": 3}, "schedule": {"interval": "30m"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let changed: Vec<&str> = v["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(changed.contains(&"limits.accounts"), "{v}");
        let s: Value = get("/api/tasks/company/settings")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(s["settings"]["limits"]["accounts"], 3);
        let r = c
            .patch(console.url("/api/tasks/company/settings"))
            .bearer_auth(&token)
            .json(&json!({"limits": {"accounts": 0}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["setting"], "limits.accounts", "{v}");
        let r = c
            .patch(console.url("/api/tasks/company/settings"))
            .bearer_auth(&token)
            .json(&json!({"limits": {"acounts": 3}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // The audit log tells it, a page at a time, and holds no password.
        let log: Value = get("/api/tasks/company/audit?limit=1000")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["event"].as_str().unwrap_or(""))
            .collect();
        for want in [
            "accounts_imported",
            "task_edited",
            "credentials_supplied",
            "status_changed",
        ] {
            assert!(events.contains(&want), "{want} in {events:?}");
        }
        assert!(!log.to_string().contains("s3cret-pw"));
        let first = log[0]["id"].as_i64().unwrap();
        let next: Value = get(&format!("/api/tasks/company/audit?after={first}&limit=1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(next.as_array().unwrap().len(), 1);
        assert!(next[0]["id"].as_i64().unwrap() > first);

        // The export through the API.
        let r = get("/api/tasks/company/export?format=json").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    });
}
