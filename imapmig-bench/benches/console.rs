//! The web console at the size of a real task: 10,000 accounts in one task, the console served
//! in this process over loopback HTTP, and the pages an admin opens timed from request to the
//! last byte of the answer (median and slowest of 20 each). Beside them, the store calls the
//! account list makes, timed alone, to tell the store's share from the page's.
//!
//! Run: `cargo bench --bench console` (the store is made in a temporary folder; about a
//! minute). Settings (environment): `IMAPMIG_BENCH_CONSOLE_ACCOUNTS` (10000),
//! `IMAPMIG_BENCH_CONSOLE_REQUESTS` (20). Timings are never asserted: this is how we look at
//! them. Every request must answer 200, though: a route that is missing fails the run.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imapmig_core::batch::task::{Auth, ServerSettings};
use imapmig_core::batch::{
    AccountQuery, AccountSort, BatchStore, ImportOptions, Selection, Status, TaskSettings,
};
use imapmig_core::secret::Secret;
use imapmig_web::{ensure_admin_token, ServeOptions};
use tokio_util::sync::CancellationToken;

const TASK: &str = "t";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: do nothing heavy.
        println!("console: a benchmark of the web console's pages; run it with `cargo bench --bench console`");
        return;
    }
    let accounts: usize = env_or("IMAPMIG_BENCH_CONSOLE_ACCOUNTS", 10_000);
    let requests: usize = env_or("IMAPMIG_BENCH_CONSOLE_REQUESTS", 20).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(accounts, requests));
}

/// A task of `n` accounts: every tenth imported without a password (waiting for
/// credentials), some paused, some stopped, the rest not started.
fn fill(store: &BatchStore, dir: &Path, n: usize) {
    // The destination through one admin login, as large migrations usually are: the CSV needs
    // no destination passwords.
    let mut destination = ServerSettings::new("new.example");
    destination.auth = Auth::Admin {
        user: "migration-admin".into(),
    };
    let settings = TaskSettings::new(ServerSettings::new("old.example"), destination);
    store
        .create_task(
            TASK,
            &settings,
            None,
            Some(Secret::new("the admin's password")),
        )
        .unwrap_or_else(|e| panic!("create the task: {e}"));
    let mut csv = String::from("target,source,password\r\n");
    for i in 0..n {
        let password = if i % 10 == 3 {
            String::new()
        } else {
            format!("pw-{i}")
        };
        csv.push_str(&format!(
            "user{i}@new.example,user{i}@old.example,{password}\r\n"
        ));
    }
    let file = dir.join("accounts.csv");
    std::fs::write(&file, csv).expect("write the CSV");
    let started = Instant::now();
    let report = store
        .import_csv(TASK, &file, ImportOptions::default())
        .unwrap_or_else(|e| panic!("import: {}", first_line(&e.to_string())));
    eprintln!(
        "imported {} accounts ({} waiting for credentials) in {:.1?}",
        report.added,
        report.waiting_for_credentials,
        started.elapsed()
    );
    let pick = |every: usize, at: usize| -> Vec<String> {
        (0..n)
            .filter(|i| i % every == at)
            .map(|i| format!("user{i}@new.example"))
            .collect()
    };
    store
        .pause(TASK, Selection::Names(&pick(7, 1)))
        .unwrap_or_else(|e| panic!("pause some: {}", first_line(&e.to_string())));
    store
        .stop(TASK, Selection::Names(&pick(13, 2)))
        .unwrap_or_else(|e| panic!("stop some: {}", first_line(&e.to_string())));
}

/// An error's first line, at most 300 characters (an import error lists every bad row).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// Milliseconds of a duration.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, max) of the timings.
fn median_max(mut t: Vec<Duration>) -> (Duration, Duration) {
    t.sort();
    (t[t.len() / 2], *t.last().expect("timings"))
}

async fn run(accounts: usize, requests: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BatchStore::open(&dir.path().join("state.sqlite")).expect("open the store");
    fill(&store, dir.path(), accounts);
    let token = ensure_admin_token(&store, false)
        .expect("admin token")
        .expect("a new store makes a token");
    let store = Arc::new(store);

    // The store's own share: the queries behind the account list.
    let mut rows: Vec<(String, Duration, Duration, usize)> = Vec::new();
    let store_calls: [(&str, AccountQuery); 3] = [
        (
            "store: account_page first 50",
            AccountQuery {
                limit: 50,
                ..AccountQuery::default()
            },
        ),
        (
            "store: account_page status=paused",
            AccountQuery {
                status: Some(Status::Paused),
                limit: 50,
                ..AccountQuery::default()
            },
        ),
        (
            "store: account_page search user1234",
            AccountQuery {
                search: Some("user1234".into()),
                sort: AccountSort::Messages,
                descending: true,
                limit: 50,
                ..AccountQuery::default()
            },
        ),
    ];
    for (name, q) in store_calls {
        let mut t = Vec::new();
        for _ in 0..requests {
            let s = Instant::now();
            let page = store.account_page(TASK, &q).expect("account page");
            t.push(s.elapsed());
            std::hint::black_box(page);
        }
        let (med, max) = median_max(t);
        rows.push((name.to_string(), med, max, 0));
    }
    {
        let mut t = Vec::new();
        for _ in 0..requests {
            let s = Instant::now();
            std::hint::black_box(store.summary(TASK).expect("summary"));
            t.push(s.elapsed());
        }
        let (med, max) = median_max(t);
        rows.push(("store: summary".into(), med, max, 0));
    }

    // The console, in this process, on a loopback port of its choosing.
    let cancel = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let server = tokio::spawn(imapmig_web::serve(
        store.clone(),
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            run_schedulers: false,
            ..ServeOptions::default()
        },
        cancel.clone(),
        move |addr| {
            let _ = tx.send(addr);
        },
    ));
    let addr = rx.await.expect("the console listens");
    let base = format!("http://{addr}");

    // One client, connections kept alive: the timings are the console's, not TCP's.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()
        .expect("HTTP client");
    let login = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "token": token.0.expose() }))
        .send()
        .await
        .expect("POST /api/login");
    assert_eq!(login.status(), 200, "POST /api/login");
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("imapmig_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();

    let pages = [
        "/tasks/t/accounts",
        "/tasks/t/accounts?page=150",
        "/tasks/t/accounts?status=paused",
        "/tasks/t/accounts?q=user1234",
        "/tasks/t/accounts?sort=messages&dir=desc",
        "/tasks/t",
        "/api/tasks/t/accounts",
        "/tasks/t/export.csv",
    ];
    for path in pages {
        let url = format!("{base}{path}");
        let mut t = Vec::new();
        let mut size = 0;
        // One request first, untimed: it opens the connection and checks the route is there.
        for round in 0..=requests {
            let s = Instant::now();
            let r = client
                .get(&url)
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = r.status();
            let body = r
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let took = s.elapsed();
            assert_eq!(
                status,
                200,
                "GET {path}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            size = body.len();
            if round > 0 {
                t.push(took);
            }
        }
        let (med, max) = median_max(t);
        rows.push((format!("GET {path}"), med, max, size));
    }
    cancel.cancel();
    let _ = server.await;

    println!();
    println!(
        "console: {accounts} accounts in one task, {requests} requests each (loopback, one keep-alive client)"
    );
    println!(
        "{:<48} {:>10} {:>10} {:>12}",
        "request", "median ms", "max ms", "body bytes"
    );
    for (name, med, max, size) in rows {
        let size = if size == 0 {
            "-".to_string()
        } else {
            size.to_string()
        };
        println!("{name:<48} {:>10.2} {:>10.2} {size:>12}", ms(med), ms(max));
    }
}
