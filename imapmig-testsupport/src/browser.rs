//! A real headless Chromium driven over WebDriver, for the console's browser tests.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port as a child process and opens
//! a session in headless Chromium; [`Browser::session`] opens another, with its own cookies (a
//! second person at another computer). The helpers wait with deadlines and, when a wait runs
//! out, save a screenshot and say which page they were on, so a failure explains itself.
//!
//! A missing browser fails the test with words that say what to install: these tests are never
//! skipped. Dropping the [`Browser`] ends its sessions (which quits Chromium) and kills the
//! driver, also when a test panics.

use std::io::{Read, Seek, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// Where Chromium and its WebDriver are (Debian's `chromium` and `chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// See [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait helper waits unless told otherwise.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long the driver may take to start answering.
const DRIVER_START: Duration = Duration::from_secs(30);

/// A `chromedriver` process and the sessions opened on it, with its first session's helpers
/// (it derefs to that [`Page`]).
pub struct Browser {
    /// The first session.
    pub page: Page,
    driver: Driver,
}

/// The driver process; on drop it ends every session and is killed.
struct Driver {
    child: Child,
    port: u16,
    sessions: Mutex<Vec<String>>,
}

/// One browser session (a window with its own cookies) and the helpers the tests use on it.
#[derive(Clone)]
pub struct Page {
    /// The WebDriver client, for anything the helpers do not cover.
    pub client: Client,
}

impl Browser {
    /// Starts `chromedriver` and opens a headless Chromium session. Panics with what to
    /// install when either program is missing.
    pub async fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the console's browser tests need headless Chromium and its \
                 WebDriver. Install them with `apt-get install chromium chromium-driver \
                 fonts-dejavu-core` or run scripts/setup (package {package})."
            );
        }
        let port = free_port();
        // Its log goes to a file nobody has to read: a pipe left unread would stop it once full.
        let log = tempfile::tempfile().expect("a file for chromedriver's log");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.try_clone().expect("chromedriver's log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some(status) = driver.try_wait().expect("chromedriver's status") {
                let mut err = String::new();
                let mut log = log;
                let _ = log.seek(std::io::SeekFrom::Start(0));
                let _ = log.read_to_string(&mut err);
                panic!("chromedriver exited at start ({status}): {err}");
            }
            if driver_ready(port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not answer on port {port} within {DRIVER_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Held from here on, so that a session that fails to start still ends the driver.
        let driver = Driver {
            child: driver,
            port,
            sessions: Mutex::new(Vec::new()),
        };
        let page = driver.session().await;
        Browser { page, driver }
    }

    /// Opens another session: a fresh Chromium profile, no cookies shared with the others.
    pub async fn session(&self) -> Page {
        self.driver.session().await
    }
}

impl Driver {
    pub async fn session(&self) -> Page {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // CI runs as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--lang=en-US",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium ({CHROMIUM}): {e}. Is the `chromium` \
                     package installed and the same version as `chromium-driver`?"
                )
            });
        if let Ok(Some(id)) = client.session_id().await {
            self.sessions.lock().unwrap().push(id);
        }
        Page { client }
    }
}

impl std::ops::Deref for Browser {
    type Target = Page;
    fn deref(&self) -> &Page {
        &self.page
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending a session quits its Chromium; a driver killed first would leave it running.
        // Plain blocking HTTP: drop may run while a panic unwinds the test's runtime.
        for id in self.sessions.lock().unwrap().drain(..) {
            let _ = raw_request(self.port, "DELETE", &format!("/session/{id}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Page {
    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .to_string()
    }

    /// The path of the page's URL now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .path()
            .to_string()
    }

    /// The element `css` names, waiting up to [`WAIT`] for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css, WAIT).await
    }

    /// The element `css` names, if the page has it now.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// Every element `css` names now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Waits up to `timeout` for an element `css` names; on timeout saves a screenshot and
    /// panics, naming the page.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() > deadline {
                self.fail(&format!("no element {css} within {timeout:?}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` until the attribute `attr` of the element `css` names satisfies
    /// `want`, and returns its value. The element may be replaced meanwhile (a live refresh):
    /// it is looked up again each time.
    pub async fn wait_attr(
        &self,
        css: &str,
        attr: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(e) = self.try_find(css).await {
                // A stale element (replaced between find and read) just means: look again.
                if let Ok(Some(v)) = e.attr(attr).await {
                    if want(&v) {
                        return v;
                    }
                    last = Some(v);
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "{css}[{attr}] did not become what was wanted within {timeout:?} \
                     (last value: {last:?})"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits up to `timeout` until the visible text of the element `css` names satisfies
    /// `want`, and returns it (looked up again each time, as [`Page::wait_attr`]).
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(e) = self.try_find(css).await {
                if let Ok(t) = e.text().await {
                    if want(&t) {
                        return t;
                    }
                    last = Some(t);
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the text of {css} did not become what was wanted within {timeout:?} \
                     (last: {last:?})"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits up to `timeout` until the page's URL path is `path`.
    pub async fn wait_path(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.path().await == path {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("the page did not reach {path} within {timeout:?}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the input `css` names, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear()
            .await
            .unwrap_or_else(|err| panic!("clear {css}: {err}"));
        // Not echoed on failure: the text may be a password.
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    /// Clicks the element `css` names.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Picks the option with value `value` of the select `css` names.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in {css}: {e}"));
    }

    /// The visible text of the element `css` names.
    pub async fn text(&self, css: &str) -> String {
        let mut tries = 0;
        loop {
            match self.find(css).await.text().await {
                Ok(t) => return t,
                // The live refresh may replace the element between finding and reading it.
                Err(e) if tries < STALE_RETRIES && stale(&e) => tries += 1,
                Err(e) => panic!("text of {css}: {e}"),
            }
        }
    }

    /// An attribute of the element `css` names.
    pub async fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let mut tries = 0;
        loop {
            match self.find(css).await.attr(attr).await {
                Ok(v) => return v,
                // As for `text`: the element may have been replaced meanwhile.
                Err(e) if tries < STALE_RETRIES && stale(&e) => tries += 1,
                Err(e) => panic!("{attr} of {css}: {e}"),
            }
        }
    }

    /// Chooses the file `path` in the `input[type=file]` `css` names (chromedriver takes the
    /// path as the keys typed).
    pub async fn upload(&self, css: &str, path: &Path) {
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.find(css)
            .await
            .send_keys(&path.to_string_lossy())
            .await
            .unwrap_or_else(|e| panic!("choose {} in {css}: {e}", path.display()));
    }

    /// The whole page's HTML now.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Forgets every cookie of this session's current site.
    pub async fn delete_cookies(&self) {
        self.client
            .delete_all_cookies()
            .await
            .expect("delete cookies");
    }

    /// Saves a screenshot as `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(format!("{}.png", file_name(name)));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Saves a screenshot of the page as it is and panics with `what`, the URL and the start
    /// of the page's text.
    pub async fn fail(&self, what: &str) -> ! {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                let dir = screenshot_dir().join("failures");
                let path = dir.join(format!("{}.png", file_name(what)));
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(&path, png);
                path.display().to_string()
            }
            Err(e) => format!("(no screenshot: {e})"),
        };
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let text: String = text.chars().take(1500).collect();
        panic!("{what}\n  page: {url}\n  screenshot: {shot}\n  text: {text}");
    }
}

/// `target/screenshots`: under `CARGO_TARGET_DIR` when set, else the target directory the test
/// binary was built in (the first folder above it holding cargo's `CACHEDIR.TAG`), else the
/// workspace's `target`.
pub fn screenshot_dir() -> PathBuf {
    target_dir().join("screenshots")
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return dir;
        }
        return workspace_root().join(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|a| a.join("CACHEDIR.TAG").exists())
        {
            return dir.to_path_buf();
        }
    }
    workspace_root().join("target")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds imapmig-testsupport")
        .to_path_buf()
}

/// A name safe as a file name: letters, digits, `-` and `_`, the rest `_`, at most 80.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether the driver answers `GET /status` with ready.
fn driver_ready(port: u16) -> bool {
    raw_request(port, "GET", "/status")
        .map(|body| body.contains("\"ready\":true") || body.contains("\"ready\": true"))
        .unwrap_or(false)
}

/// One blocking HTTP/1.1 request to the driver; the response as text.
fn raw_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )?;
    // chromedriver keeps the connection open whatever the request asks: read up to the end
    // of the body its Content-Length announces, not to the end of the stream.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
    }
    let out = String::from_utf8_lossy(&buf).into_owned();
    Ok(out)
}

/// How often a read is retried when the page replaced the element meanwhile.
const STALE_RETRIES: usize = 20;

/// Whether a WebDriver error says the element is no longer in the page (replaced by the live
/// refresh between finding and reading it).
fn stale(e: &fantoccini::error::CmdError) -> bool {
    matches!(
        e,
        fantoccini::error::CmdError::Standard(w)
            if w.error == fantoccini::error::ErrorStatus::StaleElementReference
    )
}
