//! A scriptable, misbehaving IMAP4rev1 server for integration tests: it
//! plays a migration *source* whose defects a real server cannot be made to
//! show — a malformed INTERNALDATE, UID 0 or 4294967296 in FETCH, a body
//! answered under the wrong UID, a body sent twice or not at all, a folder
//! name in 8-bit bytes, a login refused twice before it works.
//!
//! ```no_run
//! use imapmig_testkit::{BodyAnswer, ScriptedFolder, ScriptedMessage, ScriptedServer};
//!
//! let mut bad = ScriptedMessage::new(2, b"Subject: b\r\n\r\nb\r\n".to_vec());
//! bad.body_answer = BodyAnswer::AsUid(1);
//! let inbox = ScriptedFolder::new(
//!     "INBOX",
//!     7,
//!     vec![ScriptedMessage::new(1, b"Subject: a\r\n\r\na\r\n".to_vec()), bad],
//! );
//! let server = ScriptedServer::start("alice", "secret", vec![inbox]);
//! // ... migrate from (server.host(), server.port()), alice / secret ...
//! ```
//!
//! It can also play a *destination* that takes APPEND and then changes what
//! it was given, as some real servers do ([`ScriptedServer::start_destination`]
//! with [`DestinationQuirks`]): flags dropped, INTERNALDATE replaced, bare-LF
//! messages refused, 8-bit header bytes rewritten — with no UIDPLUS to tell.
//!
//! What it owns: a loopback listener, a thread per connection, and the
//! folders it was given, which never change when it plays a source (no
//! APPEND, STORE or EXPUNGE then). What it serves — exactly what the imapmig client
//! needs of a source, and announced as such: `IMAP4rev1 LITERAL+ SASL-IR
//! ID NAMESPACE AUTH=PLAIN`. Commands: CAPABILITY, NOOP, LOGOUT, ID, LOGIN,
//! AUTHENTICATE PLAIN (with or without initial response), NAMESPACE, LIST
//! (no extensions), STATUS, SELECT, EXAMINE, CLOSE, UNSELECT, SEARCH and
//! UID SEARCH, FETCH and UID FETCH. Anything else, or anything it cannot
//! parse, gets `BAD`. See [`ScriptedServer`] for the details of each.
//!
//! What it must never do: panic on client input, buffer without bound, or
//! outlive its owner: dropping the [`ScriptedServer`] closes every
//! connection and joins every thread.

mod append;
mod fetch;
mod parse;
mod session;

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::listener::{join_all, listener_accessors, Listener};
use crate::lock;

/// A folder of a [`ScriptedServer`].
#[derive(Debug, Clone, Default)]
pub struct ScriptedFolder {
    /// The name's raw bytes, as sent in LIST, STATUS and expected in
    /// SELECT/EXAMINE/STATUS (compared byte for byte; no case folding, not
    /// even for INBOX). Sent as a quoted string when it is printable 7-bit,
    /// else — or when [`ScriptedFolder::as_literal`] — as a `{N}` literal.
    pub name: Vec<u8>,
    /// Send the name as a literal even when it could be quoted.
    pub as_literal: bool,
    /// Its UIDVALIDITY.
    pub uid_validity: u32,
    /// Its messages; message sequence number = index + 1. Keep the UIDs
    /// ascending and distinct unless the test is about exactly that.
    pub messages: Vec<ScriptedMessage>,
}

impl ScriptedFolder {
    /// A folder with these messages, its name sent the normal way.
    pub fn new(
        name: impl Into<Vec<u8>>,
        uid_validity: u32,
        messages: Vec<ScriptedMessage>,
    ) -> Self {
        ScriptedFolder {
            name: name.into(),
            as_literal: false,
            uid_validity,
            messages,
        }
    }
}

/// A message of a [`ScriptedFolder`].
#[derive(Debug, Clone)]
pub struct ScriptedMessage {
    /// Its UID: what FETCH and SEARCH report, and what UID sets select.
    pub uid: u32,
    /// The flags, sent verbatim inside `FLAGS (...)`, e.g. `\Seen $Label1`.
    pub flags: String,
    /// The internal date, sent verbatim inside quotes — so it may be
    /// malformed on purpose. SEARCH's date keys read its `d-Mon-yyyy` part
    /// (a message whose date cannot be read matches no date key).
    pub internal_date: String,
    /// The whole message.
    pub body: Vec<u8>,
    /// Sent verbatim, inside `* n FETCH (...)`, instead of the generated
    /// `UID n FLAGS (..) INTERNALDATE ".." RFC822.SIZE n`, in the answer to
    /// a FETCH that asks for no body (so a test can send `UID 0`, `UID -3`,
    /// `UID 4294967296`, no UID at all ...). A body FETCH follows
    /// [`ScriptedMessage::body_answer`] instead.
    pub meta_override: Option<String>,
    /// How a FETCH of the body (`BODY[]`, `BODY.PEEK[]`, `RFC822`) of this
    /// message is answered.
    pub body_answer: BodyAnswer,
}

impl ScriptedMessage {
    /// A well-behaved message: no flags, internal date
    /// `01-Jan-2024 12:00:00 +0000`, answered normally.
    pub fn new(uid: u32, body: Vec<u8>) -> Self {
        ScriptedMessage {
            uid,
            flags: String::new(),
            internal_date: "01-Jan-2024 12:00:00 +0000".to_string(),
            body,
            meta_override: None,
            body_answer: BodyAnswer::Normal,
        }
    }
}

impl Default for ScriptedMessage {
    fn default() -> Self {
        ScriptedMessage::new(1, Vec::new())
    }
}

/// How a body FETCH for one message is answered. "That message" below is
/// the message of the folder with that UID; when there is none, the asked
/// message's own body and sequence number stand in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyAnswer {
    /// `* n FETCH (UID u BODY[] {len}\r\n...)`.
    #[default]
    Normal,
    /// `* n FETCH (UID u BODY[] NIL)`.
    Nil,
    /// The FETCH response carries this other UID, and that message's body
    /// (and flags, date, sequence number).
    AsUid(u32),
    /// First an unsolicited FETCH with the body of that other UID, then the
    /// asked one normally.
    AlsoSend(u32),
    /// No response at all for this message (the command still completes OK).
    Omit,
}

/// A command as the server received it, shown to the hook of
/// [`ScriptedServer::start_with_hook`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Command {
    /// Which connection (0 for the first accepted).
    pub connection: u64,
    /// Which command of that connection (0 for the first).
    pub index_in_connection: u64,
    /// The tag.
    pub tag: String,
    /// The command name, upper-cased; `UID FETCH`, `UID SEARCH` for UID
    /// commands.
    pub name: String,
    /// The rest, as sent (literals in wire form: `{5}\r\nalice`), bytes that
    /// are not UTF-8 replaced.
    pub args: String,
}

/// How a scripted destination ([`ScriptedServer::start_destination`]) changes
/// what APPEND gives it. Every quirk is off by default: then it keeps flags,
/// dates and bytes as given. It never announces UIDPLUS or MULTIAPPEND, so
/// nothing tells a client what was stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DestinationQuirks {
    /// Answer `OK APPEND completed` but store no flags (as GNU Mailutils
    /// does). `UID STORE` is honoured.
    pub drop_flags: bool,
    /// Store every message with the INTERNALDATE [`REPLACED_DATE`] instead
    /// of the APPEND argument (GNU Mailutils takes it from a header).
    pub replace_dates: bool,
    /// Refuse a message with an LF not preceded by CR:
    /// `NO Message contains bare newlines` (Cyrus).
    pub refuse_bare_lf: bool,
    /// Replace each 8-bit byte of the header section with `X` (Cyrus's
    /// default `munge8bit`).
    pub munge_8bit_headers: bool,
}

impl DestinationQuirks {
    /// Every quirk on.
    pub fn all() -> Self {
        DestinationQuirks {
            drop_flags: true,
            replace_dates: true,
            refuse_bare_lf: true,
            munge_8bit_headers: true,
        }
    }
}

/// The INTERNALDATE a destination with [`DestinationQuirks::replace_dates`]
/// gives every appended message.
pub const REPLACED_DATE: &str = "01-Jan-2000 00:00:00 +0000";

/// The hook of [`ScriptedServer::start_with_hook`].
type Hook = dyn Fn(&Command) -> Option<Vec<u8>> + Send + Sync;

/// A scripted IMAP server on `127.0.0.1:<free port>`; see the
/// [module docs](self) for what it serves.
///
/// Details a test may rely on:
/// - Greeting `* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID NAMESPACE
///   AUTH=PLAIN] Scripted server ready.`; after login the capabilities
///   (in the tagged OK) lose `SASL-IR` and `AUTH=PLAIN`.
/// - One user. A wrong login gets `NO [AUTHENTICATIONFAILED]`. Commands
///   other than CAPABILITY, NOOP, LOGOUT, ID, LOGIN and AUTHENTICATE need a
///   login (else `BAD`); SEARCH, FETCH and CLOSE need a selected folder.
/// - Hierarchy delimiter `/`; NAMESPACE `(("" "/")) NIL NIL`. LIST takes a
///   reference and a pattern (`*` and `%` wildcards), lists each matching
///   folder with no attributes, and `LIST "" ""` gives the delimiter.
/// - STATUS: MESSAGES, RECENT (always 0), UIDNEXT, UIDVALIDITY, UNSEEN.
///   UIDNEXT is the largest UID + 1. SELECT and EXAMINE send FLAGS,
///   PERMANENTFLAGS, EXISTS, RECENT, UIDVALIDITY, UIDNEXT; EXAMINE is
///   `[READ-ONLY]`, SELECT `[READ-WRITE]` (nothing can change anyway).
/// - SEARCH keys: ALL, a sequence set, UID set, SINCE/BEFORE/ON and
///   SENTSINCE/SENTBEFORE/SENTON (all on the internal date), LARGER,
///   SMALLER, the flag keys (SEEN, UNSEEN, ... KEYWORD, UNKEYWORD), NOT,
///   OR; optional `CHARSET US-ASCII|UTF-8`.
/// - FETCH items: UID, FLAGS, INTERNALDATE, RFC822.SIZE, FAST, BODY[],
///   BODY.PEEK[], RFC822 (no partial fetches, no other sections; no
///   CHANGEDSINCE). UID FETCH always includes UID. `*` is the largest UID
///   (UID FETCH) or the message count (FETCH); a message number beyond the
///   count is `BAD`, a UID not in the folder is silently skipped.
pub struct ScriptedServer {
    listener: Listener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr())
            .field("folders", &lock(&self.shared.folders).len())
            .field("logins", &self.logins())
            .finish_non_exhaustive()
    }
}

struct Shared {
    user: String,
    password: String,
    folders: Mutex<Vec<ScriptedFolder>>,
    /// Set when playing a destination: APPEND, UID STORE, CREATE and
    /// SUBSCRIBE are served.
    destination: Option<DestinationQuirks>,
    hook: Option<Box<Hook>>,
    /// A clone of each open connection, to close it on drop.
    live: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: AtomicU64,
    logins: AtomicU64,
    login_attempts: AtomicU64,
    commands: Mutex<Vec<String>>,
}

impl ScriptedServer {
    /// Starts a server with one user and these folders.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(user: &str, password: &str, folders: Vec<ScriptedFolder>) -> ScriptedServer {
        ScriptedServer::launch(user, password, folders, None, None)
    }

    /// Starts a server that plays a destination: besides what a source
    /// serves, it takes `APPEND mailbox [(flags)] ["date"] literal`
    /// (answering `OK APPEND completed`, never APPENDUID, with `* n EXISTS`
    /// when the folder is selected), `UID STORE set [+|-]FLAGS[.SILENT]
    /// (flags)`, `CREATE` and `SUBSCRIBE`, and changes what it is given as
    /// `quirks` say. [`ScriptedServer::folders`] shows what it holds.
    pub fn start_destination(
        user: &str,
        password: &str,
        folders: Vec<ScriptedFolder>,
        quirks: DestinationQuirks,
    ) -> ScriptedServer {
        ScriptedServer::launch(user, password, folders, Some(quirks), None)
    }

    /// The folders as they are now (a destination's change as it is used).
    pub fn folders(&self) -> Vec<ScriptedFolder> {
        lock(&self.shared.folders).clone()
    }

    /// Like [`ScriptedServer::start`], with a hook called for every client
    /// command before the default handling. It returns `Some(raw bytes)` to
    /// answer the command itself — written verbatim, so it must include the
    /// tagged line (or deliberately not) — or `None` for the default. A
    /// command answered by the hook changes no state (a LOGIN it answers
    /// `OK` does not log in). For example, refuse the first two logins:
    ///
    /// ```no_run
    /// # use imapmig_testkit::ScriptedServer;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let refused = AtomicU32::new(0);
    /// let server = ScriptedServer::start_with_hook("alice", "pw", vec![], move |cmd| {
    ///     (cmd.name == "LOGIN" && refused.fetch_add(1, Ordering::SeqCst) < 2).then(|| {
    ///         format!("{} NO [UNAVAILABLE] Try later\r\n", cmd.tag).into_bytes()
    ///     })
    /// });
    /// ```
    pub fn start_with_hook(
        user: &str,
        password: &str,
        folders: Vec<ScriptedFolder>,
        hook: impl Fn(&Command) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> ScriptedServer {
        ScriptedServer::launch(user, password, folders, None, Some(Box::new(hook)))
    }

    fn launch(
        user: &str,
        password: &str,
        folders: Vec<ScriptedFolder>,
        destination: Option<DestinationQuirks>,
        hook: Option<Box<Hook>>,
    ) -> ScriptedServer {
        let shared = Arc::new(Shared {
            user: user.to_string(),
            password: password.to_string(),
            folders: Mutex::new(folders),
            destination,
            hook,
            live: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            login_attempts: AtomicU64::new(0),
            commands: Mutex::new(Vec::new()),
        });
        let listener = Listener::start("scripted-imap-accept", shared.clone(), accept);
        ScriptedServer { listener, shared }
    }

    listener_accessors!();

    /// Successful logins (LOGIN or AUTHENTICATE) so far.
    pub fn logins(&self) -> u64 {
        self.shared.logins.load(Ordering::SeqCst)
    }

    /// LOGIN and AUTHENTICATE commands received so far, successful or not
    /// (including those the hook answered).
    pub fn login_attempts(&self) -> u64 {
        self.shared.login_attempts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every command received so far, over all connections, in the order
    /// read: `tag NAME args`, literals in wire form, passwords (LOGIN's
    /// second argument, AUTHENTICATE's initial response) shown as `***`.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.shared.commands).clone()
    }

    /// Closes every open connection now (as a server crash would).
    pub fn cut_all(&self) {
        for s in lock(&self.shared.live).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.listener.stop();
        self.cut_all();
        join_all(&self.shared.threads);
    }
}

/// Serves new client `id` on a thread of its own.
fn accept(shared: &Arc<Shared>, id: u64, stream: TcpStream) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    lock(&shared.live).insert(id, clone);
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("scripted-imap-conn".into())
            .spawn(move || {
                session::serve(&shared, id, stream);
                lock(&shared.live).remove(&id);
            })
    };
    let mut threads = lock(&shared.threads);
    threads.retain(|t| !t.is_finished());
    match thread {
        Ok(t) => threads.push(t),
        Err(_) => {
            if let Some(s) = lock(&shared.live).remove(&id) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
