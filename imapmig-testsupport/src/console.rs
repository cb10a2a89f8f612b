//! The web console as the integration tests drive it: a real `imapmig serve` process on a
//! loopback port it picks itself, its admin token read from its standard output, and an HTTP
//! client that logs in and keeps the session cookie and CSRF token.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `imapmig serve`; killed when dropped.
pub struct Console {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token it printed (first start of this state file), if it printed one.
    pub token: Option<String>,
    /// The state file.
    pub state: PathBuf,
    /// Its standard error so far is collected here (lines), for failure messages.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Console {
    /// Starts `bin serve --state STATE --listen 127.0.0.1:0 EXTRA...` and waits until it
    /// listens. `bin` is the `imapmig` binary (`env!("CARGO_BIN_EXE_imapmig")` in the CLI's
    /// tests).
    pub fn start(bin: &Path, state: &Path, extra: &[&str]) -> Console {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--state")
            .arg(state)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("IMAPMIG_STATE_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start imapmig serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<(bool, String)>();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((true, line));
            }
        });
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx2.send((false, line));
            }
        });
        let mut token = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let base = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, line)) if line.starts_with("imt_") => token = Some(line),
                Ok((false, line)) => {
                    if let Some(rest) = line.split("console on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or_default();
                        break url.trim_end_matches('/').to_string();
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "imapmig serve did not start listening: {:?}",
                        lines.lock().unwrap()
                    );
                }
            }
        };
        // The token is printed before the listening line; give its reader a moment.
        if token.is_none() {
            while let Ok((out, line)) = rx.recv_timeout(Duration::from_millis(200)) {
                if out && line.starts_with("imt_") {
                    token = Some(line);
                }
            }
        }
        Console {
            child,
            base,
            token,
            state: state.to_path_buf(),
            stderr: lines,
        }
    }

    /// The admin token; panics when this start did not print one.
    pub fn token(&self) -> &str {
        self.token
            .as_deref()
            .expect("the console printed no admin token")
    }

    /// An absolute URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything it wrote on standard error so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bin` (the `imapmig` binary) for one task of one state file: `$IMAPMIG_STATE` and
/// `$IMAPMIG_TASK` set, no state key from the environment.
pub fn cli(bin: &Path, state: &Path, task: &str) -> Command {
    let mut c = Command::new(bin);
    c.env("IMAPMIG_STATE", state)
        .env("IMAPMIG_TASK", task)
        .env_remove("IMAPMIG_STATE_KEY");
    c
}

/// Runs a command that must succeed; fails the test with its output otherwise.
pub fn ok(mut c: Command) -> Output {
    let out = c.output().expect("run imapmig");
    assert!(
        out.status.success(),
        "imapmig failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The value of `name="csrf"`'s hidden input in a page (the first form's).
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.split("value=\"").nth(1)?;
    Some(v[..v.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found() {
        let page =
            r#"<form><input type="hidden" name="csrf" value="abc-_1"><input name="x"></form>"#;
        assert_eq!(csrf_in(page).as_deref(), Some("abc-_1"));
        assert_eq!(csrf_in("<p>none</p>"), None);
    }
}
