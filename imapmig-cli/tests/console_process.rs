//! `imapmig serve` as a process: over TLS (the session cookie is then `Secure`), serving only
//! with `--no-run`, and serving beside a separate `imapmig run` on the same state file — the
//! console waits while the other process holds the task and takes the migrating over when it
//! is gone, with nothing copied twice. Real Dovecot servers, the real binary.

use imapmig_testsupport as common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::console::{ok, Console};
use common::*;
use imapmig_core::batch::{BatchStore, Status};
use imapmig_testkit::{Dovecot, Flavour};

const TASK: &str = "t";
const ACCOUNTS: usize = 3;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_imapmig"))
}

fn imapmig(state: &Path) -> Command {
    common::console::cli(bin(), state, TASK)
}

/// A task of ACCOUNTS accounts from `src` to `dst`, each with four messages; incremental
/// passes every 2 s.
fn task(state: &Path, src: &Dovecot, dst: &Dovecot, rt: &tokio::runtime::Runtime) {
    let mut create = imapmig(state);
    create
        .args(["task", "create", "--src-host", src.host(), "--src-port"])
        .arg(src.imap_port().to_string())
        .args(["--src-tls", "none", "--dst-host", dst.host(), "--dst-port"])
        .arg(dst.imap_port().to_string())
        .args(["--dst-tls", "none", "--dst-auth", "master", "--dst-admin"])
        .arg(dst.master_user().name)
        .args(["--interval", "2s"])
        .env("IMAPMIG_DST_ADMIN_PASSWORD", dst.master_user().password);
    ok(create);
    let mut csv = String::from("target,source,password\n");
    for i in 0..ACCOUNTS {
        let u = src.user(&format!("s{i}"));
        dst.user(&format!("d{i}@x.example"));
        rt.block_on(fill(
            &account(src, &u),
            &[
                seed("INBOX", message(&format!("s{i} one"), 5), "\\Seen", None),
                seed("INBOX", message(&format!("s{i} two"), 9), "", None),
                seed(
                    "Work",
                    message(&format!("s{i} three"), 7),
                    "\\Flagged",
                    None,
                ),
                seed("Work/Old", message(&format!("s{i} four"), 3), "", None),
            ],
        ));
        csv.push_str(&format!("d{i}@x.example,{},{}\n", u.name, u.password));
    }
    let file = state.with_file_name("accounts.csv");
    std::fs::write(&file, csv).unwrap();
    let mut import = imapmig(state);
    import.args(["accounts", "import"]).arg(&file);
    ok(import);
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_synced(store: &BatchStore) -> bool {
    let list = store.accounts(TASK).unwrap();
    list.len() == ACCOUNTS && list.iter().all(|a| a.status == Status::Synced)
}

fn messages(store: &BatchStore) -> u64 {
    store
        .accounts(TASK)
        .unwrap()
        .iter()
        .map(|a| a.messages)
        .sum()
}

fn start_run(state: &Path) -> Child {
    let mut c = imapmig(state);
    c.arg("run").stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().expect("start imapmig run")
}

#[test]
fn over_tls_the_console_answers_and_its_session_cookie_is_secure() {
    // The Dovecot instance is here for its test certificate (SAN 127.0.0.1) and CA.
    let d = Dovecot::start(Flavour::Slash);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let cert = d.dir().join("tls/server.pem");
    let key = d.dir().join("tls/server.key");
    let console = Console::start(
        bin(),
        &state,
        &[
            "--no-run",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(console.base.starts_with("https://"), "{}", console.base);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(d.ca_file()).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = client.get(console.url("/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let r = client
            .post(console.url("/api/login"))
            .json(&serde_json::json!({ "token": console.token() }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(cookie.contains(attr), "{attr} missing in {cookie}");
        }
        // Plain HTTP to the TLS port gets no page.
        let plain = reqwest::Client::new()
            .get(console.url("/login").replacen("https://", "http://", 1))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(
            plain.map(|r| !r.status().is_success()).unwrap_or(true),
            "plain HTTP must not be answered on the TLS port"
        );
    });
    // The token is printed once: a second start prints none.
    let old = console.token().to_string();
    drop(console);
    let again = Console::start(bin(), &state, &["--no-run"]);
    assert!(
        again.token.is_none(),
        "a second start must not print a token"
    );

    // A reset by another process on the same file: the running console refuses the old
    // token at once and takes the new one.
    let tasks = |token: &str| {
        reqwest::blocking::Client::new()
            .get(again.url("/api/tasks"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(tasks(&old), 200);
    let reset = Console::start(bin(), &state, &["--no-run", "--reset-admin-token"]);
    let new = reset.token.clone().expect("a reset prints the new token");
    assert_ne!(new, old);
    assert_eq!(tasks(&old), 401, "the old token must stop working");
    assert_eq!(tasks(&new), 200);
}

#[test]
fn serving_beside_a_separate_run_then_taking_over_when_it_is_gone() {
    let (src, dst) = (
        Dovecot::start(Flavour::Slash),
        Dovecot::start(Flavour::Slash),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let rt = tokio::runtime::Runtime::new().unwrap();
    task(&state, &src, &dst, &rt);
    let store = BatchStore::open(&state).unwrap();

    // With --no-run the console migrates nothing and holds no lease.
    let serving_only = Console::start(bin(), &state, &["--no-run"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(store.scheduler_holder(TASK).unwrap().is_none());
    assert!(store
        .accounts(TASK)
        .unwrap()
        .iter()
        .all(|a| a.status == Status::NotStarted));
    drop(serving_only);

    // A separate `imapmig run` migrates; a console started beside it serves and waits.
    let mut run = start_run(&state);
    wait_for("the separate run syncs every account", 60, || {
        all_synced(&store)
    });
    let console = Console::start(bin(), &state, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let holder = store.scheduler_holder(TASK).unwrap().expect("a scheduler");
    assert_eq!(holder.pid, i64::from(run.id()), "the run keeps the task");
    let r = reqwest::blocking::Client::new()
        .get(console.url("/login"))
        .send()
        .expect("the console answers beside the run");
    assert_eq!(r.status(), 200);

    // The run dies; the console takes the task over and carries new mail, copied once.
    run.kill().unwrap();
    let _ = run.wait();
    let before = messages(&store);
    assert_eq!(before, (ACCOUNTS * 4) as u64);
    let u = src.user("s1");
    rt.block_on(fill(
        &account(&src, &u),
        &[seed("INBOX", message("s1 new", 4), "", None)],
    ));
    wait_for("the console's scheduler takes the task over", 40, || {
        store
            .scheduler_holder(TASK)
            .unwrap()
            .is_some_and(|h| h.pid == i64::from(console.child.id()))
    });
    wait_for("the new message is carried", 40, || {
        messages(&store) == before + 1
    });
    let d1 = dst.user("d1@x.example");
    let copied = rt.block_on(snapshot(&account(&dst, &d1)));
    let total: usize = copied.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        total, 5,
        "every message once on the destination: {copied:?}"
    );
}
