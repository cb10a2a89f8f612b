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
