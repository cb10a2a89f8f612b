//! The `imapmig` command line without servers: usage errors, output into closed pipes, and
//! hostile input files, with the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn imapmig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imapmig"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run imapmig");
    let clip = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(4000)]).into_owned();
    eprintln!(
        "imapmig exited {}\nstdout: {}\nstderr: {}",
        out.status,
        clip(&out.stdout),
        clip(&out.stderr)
    );
    out
}

/// A task in a fresh store; nothing is contacted.
fn task(state: &Path) {
    let out = run(imapmig()
        .env("IMAPMIG_STATE", state)
        .args(["task", "create", "--src-host", "old.example"])
        .args(["--dst-host", "new.example"]));
    assert!(out.status.success());
}

/// The exactly-once issue's 50 MB CSV line: it was echoed whole to stderr and the process
/// peaked at 155 MB. Now it is one bad row, named by its line, read with a bounded buffer.
#[test]
fn a_fifty_megabyte_csv_line_is_named_briefly_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    task(&state);
    let csv = dir.path().join("huge.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        f.write_all(b"target,source,password\na@new.example,a,pw-a\n")
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..50 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b",huge,secret-pw\nb@new.example,b,pw-b\n")
            .unwrap();
    }
    let rss = dir.path().join("rss");
    let out = run(Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&rss)
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_imapmig"))
        .env("IMAPMIG_STATE", &state)
        .args(["accounts", "import"])
        .arg(&csv));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.len() < 2_000,
        "stderr is {} bytes long",
        stderr.len()
    );
    assert!(
        stderr.contains("line 3: the line is longer than 65536 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-pw"));
    let peak_kb: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("the peak RSS from /usr/bin/time");
    assert!(peak_kb < 40 * 1024, "peak RSS {peak_kb} kB");
}

/// Runs `imapmig ARGS` and asserts a usage error: exit 2, a message naming `flag`, no panic.
fn assert_usage(args: &[&str], envs: &[(&str, &Path)], flag: &str) {
    let mut cmd = imapmig();
    cmd.args(args)
        .env("IMAPMIG_SRC_PASSWORD", "src-secret")
        .env("IMAPMIG_DST_PASSWORD", "dst-secret");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should be a usage error: {stderr}"
    );
    assert!(
        stderr.contains(flag),
        "{args:?}: {flag} not named in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// The exactly-once issue's usage errors: a bad --map or --include glob exited 5 (a failure
/// of the run), port 0 and an empty date range were accepted. Each is a usage error (2)
/// naming its flag, before anything is contacted, in every command that takes the flag.
#[test]
fn bad_flags_are_usage_errors_that_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("src");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let src = format!("maildir:{}", maildir.display());
    let dst = format!("maildir:{}", dir.path().join("dst").display());
    let state = dir.path().join("state.sqlite");
    let state_flag = state.to_str().unwrap();
    let local = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "migrate".into(),
            "--src".into(),
            src.clone(),
            "--dst".into(),
            dst.clone(),
            "--state".into(),
            state_flag.into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let servers = |cmd: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [cmd, "--src-host", "127.0.0.1", "--src-user", "u"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if cmd != "analyze" {
            v.extend(
                ["--dst-host", "127.0.0.1", "--dst-user", "u"]
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |args: Vec<String>, flag: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_usage(&a, &[], flag);
    };

    check(local(&["--map", "=x"]), "--map");
    check(local(&["--map", "Old="]), "--map");
    check(local(&["--include", "["]), "--include");
    check(local(&["--exclude", "a/{b"]), "--exclude");
    check(
        local(&["--mode", "unified", "--unified-root", "a//b"]),
        "--unified-root",
    );
    check(
        local(&["--since", "2024-02-01", "--before", "2024-01-01"]),
        "--since",
    );
    check(
        local(&["--since", "2024-01-01", "--before", "2024-01-01"]),
        "--before",
    );
    for cmd in ["migrate", "verify", "analyze", "check"] {
        check(servers(cmd, &["--src-port", "0"]), "--src-port");
    }
    for cmd in ["migrate", "verify", "check"] {
        check(servers(cmd, &["--dst-port", "0"]), "--dst-port");
    }
    check(servers("verify", &["--include", "["]), "--include");
    check(
        servers(
            "analyze",
            &["--since", "2030-01-01", "--before", "2020-01-01"],
        ),
        "--since",
    );

    // The task commands take the same flags.
    let store = dir.path().join("task.sqlite");
    let env: &[(&str, &Path)] = &[("IMAPMIG_STATE", &store)];
    fn create<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "task",
            "create",
            "--src-host",
            "old.example",
            "--dst-host",
            "new.example",
        ];
        v.extend_from_slice(extra);
        v
    }
    assert_usage(&create(&["--src-port", "0"]), env, "--src-port");
    assert_usage(&create(&["--dst-port", "0"]), env, "--dst-port");
    assert_usage(&create(&["--map", "=x"]), env, "--map");
    assert_usage(&create(&["--include", "["]), env, "--include");
    assert_usage(
        &create(&["--since", "2024-02-01", "--before", "2024-01-01"]),
        env,
        "--since",
    );
    // Nothing was created by the refused commands; a good one works, and edits are checked
    // against what the task already has.
    task(&store);
    fn edit<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["task", "edit"];
        v.extend_from_slice(extra);
        v
    }
    let out = run(imapmig().env("IMAPMIG_STATE", &store).args([
        "task",
        "edit",
        "--before",
        "2024-01-01",
    ]));
    assert!(out.status.success());
    assert_usage(&edit(&["--since", "2024-01-01"]), env, "--since");
    assert_usage(&edit(&["--exclude", "["]), env, "--exclude");
    assert_usage(&edit(&["--dst-port", "0"]), env, "--dst-port");
}

/// Runs `imapmig ARGS` with its standard output a pipe that the reader closes at once (as
/// `| head` does once it has its lines).
fn into_closed_pipe(args: &[&str], state: &Path) -> Output {
    use std::process::Stdio;
    let mut child = imapmig()
        .args(args)
        .env("IMAPMIG_STATE", state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start imapmig");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait for imapmig")
}

/// The exactly-once issue's `imapmig status … | head`: a closed pipe made the CLI panic with a
/// backtrace. Every command that prints much ends quietly, with status 141 (as if SIGPIPE had
/// ended it, what a shell reports for `… | head` under `set -o pipefail`).
#[test]
fn a_closed_pipe_ends_every_long_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    task(&state);
    let mut csv = String::from("target,source,password,target_password\n");
    for i in 0..2_000 {
        csv.push_str(&format!("user{i}@new.example,user{i},pw-{i},tpw-{i}\n"));
    }
    let file = dir.path().join("accounts.csv");
    std::fs::write(&file, csv).unwrap();
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .args(["accounts", "import"])
        .arg(&file));
    assert!(out.status.success());
    // Two thousand audit records.
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .args(["pause", "--all"]));
    assert!(out.status.success());
    // A source of two thousand folders, for `analyze`.
    let maildir = dir.path().join("maildir");
    for name in std::iter::once(String::new()).chain((0..2_000).map(|i| format!(".Folder {i:04}")))
    {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(&name).join(sub)).unwrap();
        }
    }
    let src = format!("maildir:{}", maildir.display());

    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["status", "--format", "csv"],
        vec!["status", "--format", "json"],
        vec!["audit"],
        vec!["analyze", "--src", &src],
        vec!["analyze", "--src", &src, "--json"],
    ];
    for args in &commands {
        // The output is larger than a pipe's buffer, so a write is sure to meet the closed end.
        let whole = run(imapmig().args(args).env("IMAPMIG_STATE", &state));
        assert!(whole.status.success(), "{args:?}");
        assert!(
            whole.stdout.len() > 128 * 1024,
            "{args:?} printed only {} bytes",
            whole.stdout.len()
        );
        let cut = into_closed_pipe(args, &state);
        let stderr = String::from_utf8_lossy(&cut.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}: nothing is said on a closed pipe");
        assert_eq!(cut.status.code(), Some(141), "{args:?}");
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn holds(p: &Path, needle: &str) -> bool {
    ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut f = p.as_os_str().to_owned();
        f.push(suffix);
        std::fs::read(std::path::PathBuf::from(f))
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// The state files and the directory imapmig creates for them are its owner's only: the sync
/// state of `migrate` (made 0644 in a 0755 directory before) as well as the batch store.
#[test]
fn state_files_are_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("src");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let xdg = dir.path().join("xdg");
    let out = run(imapmig()
        .env("XDG_STATE_HOME", &xdg)
        .env_remove("IMAPMIG_STATE")
        .arg("migrate")
        .arg(format!("--src=maildir:{}", maildir.display()))
        .arg(format!(
            "--dst=maildir:{}",
            dir.path().join("dst").display()
        )));
    assert!(out.status.success());
    let state = xdg.join("imapmig/state.sqlite");
    assert_eq!(mode(&xdg.join("imapmig")), 0o700);
    assert_eq!(mode(&xdg), 0o700);
    assert_eq!(mode(&state), 0o600);
    // The batch commands create theirs the same way.
    let nested = dir.path().join("a/b/task.sqlite");
    task(&nested);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    assert_eq!(mode(&nested), 0o600);
}

/// Secrets at rest through the CLI: with $IMAPMIG_STATE_KEY (or --state-key-file) no password
/// is in the store; without the key the store does not open and says which key it needs;
/// without any key the admin is warned that passwords are kept as written.
#[test]
fn the_state_key_keeps_passwords_out_of_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let key = "kq3S2sNqv1v9f0yQk2mJm0xU4o8tq7Qy2hJ3rN6wz8E=";
    let secrets = ["admin-pw-4f1c", "user-pw-77aa", "target-pw-9e0b"];
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .env("IMAPMIG_STATE_KEY", key)
        .env("IMAPMIG_DST_ADMIN_PASSWORD", secrets[0])
        .args(["task", "create", "--src-host", "old.example"])
        .args(["--dst-host", "new.example", "--dst-auth", "master"])
        .args(["--dst-admin", "master"]));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let csv = dir.path().join("a.csv");
    std::fs::write(
        &csv,
        format!("u@new.example,u,{}\nv@new.example,v,\n", secrets[1]),
    )
    .unwrap();
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .env("IMAPMIG_STATE_KEY", key)
        .args(["accounts", "import"])
        .arg(&csv));
    assert!(out.status.success());
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .env("IMAPMIG_STATE_KEY", key)
        .env("IMAPMIG_PASSWORD", secrets[2])
        .args(["credentials", "v@new.example"]));
    assert!(out.status.success());
    for s in secrets {
        assert!(!holds(&state, s), "{s} is in the store file");
    }
    assert!(holds(&state, "imapmig-sealed:v1:"));

    // Without the key: exit 2, the variable and the flag named, no secret.
    let out = run(imapmig().env("IMAPMIG_STATE", &state).arg("status"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("IMAPMIG_STATE_KEY") && stderr.contains("--state-key-file"),
        "{stderr}"
    );
    // A wrong key: the same.
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .env("IMAPMIG_STATE_KEY", "not the key")
        .arg("status"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another key"));
    // The key from a file (as `head -c 32 /dev/urandom | base64 > key` writes it).
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .arg("status")
        .arg("--state-key-file")
        .arg(&key_file));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("u@new.example"));
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &state)
        .arg("status")
        .arg("--state-key-file")
        .arg(dir.path().join("missing")));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-key-file"));

    // No key at all: stored as written, and said so.
    let clear = dir.path().join("clear.sqlite");
    task(&clear);
    let csv = dir.path().join("b.csv");
    std::fs::write(&csv, "w@new.example,w,pw,target-pw\n").unwrap();
    let out = run(imapmig()
        .env("IMAPMIG_STATE", &clear)
        .args(["accounts", "import"])
        .arg(&csv));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("IMAPMIG_STATE_KEY"),
        "{stderr}"
    );
}
