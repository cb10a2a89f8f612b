//! Folders: NAMESPACE, LIST (with SPECIAL-USE and LIST-STATUS), STATUS, SELECT, EXAMINE,
//! UNSELECT, CREATE, SUBSCRIBE and GETQUOTAROOT, and what they report.
//!
//! Commands address a folder by its wire name exactly as the server listed it; the decoded
//! name is for people and plans and is never sent back. A LIST entry that cannot be read must
//! never vanish: it is left out and reported as a [`ServerAnomaly`].

use std::collections::HashMap;

use imap_proto::{MailboxDatum, Response};

use super::codec::{
    astring_text, attribute_name, name_was_mangled, parse_namespace, quote, status_from_attrs,
};
use super::{ServerAnomaly, Session};
use crate::imap::error::{ImapError, Result};
use crate::model::{Folder, SpecialUse, UidValidity};
use crate::wire::response::Parsed;
use crate::wire::ResponseCode;

/// What SELECT or EXAMINE reported about a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    /// The folder's wire name.
    pub raw: String,
    /// Number of messages.
    pub exists: u32,
    /// UIDVALIDITY.
    pub uid_validity: Option<UidValidity>,
    /// The UID the next message will get.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ, where CONDSTORE is on for the folder.
    pub highest_modseq: Option<u64>,
    /// The flags a client may set; `\*` among them means any new keyword.
    pub permanent_flags: Option<Vec<String>>,
    /// Whether the folder was opened read-only.
    pub read_only: bool,
}

impl Selected {
    /// Whether a keyword the folder does not know yet can be stored.
    pub fn accepts_new_keywords(&self) -> bool {
        match &self.permanent_flags {
            Some(f) => f.iter().any(|x| x == "\\*"),
            // No PERMANENTFLAGS: RFC 3501 says all flags can be changed permanently.
            None => true,
        }
    }

    /// Whether `flag` can be stored permanently here.
    pub fn accepts(&self, flag: &str) -> bool {
        crate::model::permanently_stored(self.permanent_flags.as_deref(), flag)
    }
}

/// STATUS of a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderStatus {
    /// Number of messages.
    pub messages: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// UIDVALIDITY.
    pub uid_validity: Option<UidValidity>,
    /// Unseen messages.
    pub unseen: Option<u32>,
    /// HIGHESTMODSEQ (CONDSTORE).
    pub highest_modseq: Option<u64>,
}

/// The personal namespace (RFC 2342): where a user's own folders live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// The prefix, e.g. `INBOX.` or empty.
    pub prefix: String,
    /// The hierarchy separator, if the server has one.
    pub delimiter: Option<char>,
}

/// One resource of a quota root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The quota root's name.
    pub root: String,
    /// `STORAGE` (in KiB) or `MESSAGE` (count), or another resource name.
    pub resource: String,
    /// What is used.
    pub usage: u64,
    /// The limit.
    pub limit: u64,
}

impl Session {
    /// The personal namespace (RFC 2342), or the empty prefix when NAMESPACE is not supported.
    pub async fn namespace(&mut self) -> Result<Namespace> {
        if !self.caps.has("NAMESPACE") {
            return Ok(Namespace::default());
        }
        self.ensure_idle_pipeline().await?;
        let tag = self.conn.send(b"NAMESPACE").await?;
        let mut found = None;
        let mut unparsed = Vec::new();
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Unknown(line) = p {
                    unparsed.push(line.to_vec());
                }
            })
            .await?;
        self.check("NAMESPACE", None, status)?;
        for line in unparsed {
            if let Some(ns) = parse_namespace(&line) {
                found = Some(ns);
            }
        }
        Ok(found.unwrap_or_default())
    }

    /// Every folder (`LIST "" "*"`, with special-use attributes where the server offers them).
    pub async fn list(&mut self) -> Result<Vec<Folder>> {
        Ok(self
            .list_inner(false)
            .await?
            .into_iter()
            .map(|(f, _)| f)
            .collect())
    }

    /// Every folder with its STATUS, in one round trip where LIST-STATUS is offered, else with
    /// one STATUS per folder.
    pub async fn list_with_status(&mut self) -> Result<Vec<(Folder, FolderStatus)>> {
        if self.caps.has("LIST-STATUS") {
            let got = self.list_inner(true).await?;
            return Ok(got
                .into_iter()
                .map(|(f, s)| (f, s.unwrap_or_default()))
                .collect());
        }
        let folders = self.list().await?;
        let mut out = Vec::with_capacity(folders.len());
        for f in folders {
            let st = if f.selectable() {
                self.status(&f.raw).await?
            } else {
                FolderStatus::default()
            };
            out.push((f, st));
        }
        Ok(out)
    }

    async fn list_inner(
        &mut self,
        with_status: bool,
    ) -> Result<Vec<(Folder, Option<FolderStatus>)>> {
        self.ensure_idle_pipeline().await?;
        let special = self.caps.has("SPECIAL-USE") && self.caps.has("LIST-EXTENDED");
        let mut returns = Vec::new();
        if special {
            returns.push("SPECIAL-USE".to_string());
        }
        if with_status {
            let modseq = if self.caps.has("CONDSTORE") {
                " HIGHESTMODSEQ"
            } else {
                ""
            };
            returns.push(format!(
                "STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN{modseq})"
            ));
        }
        let cmd = if returns.is_empty() {
            "LIST \"\" \"*\"".to_string()
        } else {
            format!("LIST \"\" \"*\" RETURN ({})", returns.join(" "))
        };
        let tag = self.conn.send(cmd.as_bytes()).await?;
        let mut folders: Vec<Folder> = Vec::new();
        let mut statuses: HashMap<String, FolderStatus> = HashMap::new();
        let mut odd = Vec::new();
        let utf8 = self.utf8;
        let status = self
            .conn
            .wait_raw(&tag, |line, p| match p {
                Parsed::Data(Response::MailboxData(MailboxDatum::List(l)))
                    if name_was_mangled(line, &l.name) =>
                {
                    odd.push(ServerAnomaly {
                        uid: None,
                        detail: format!(
                            "the source listed a folder whose name is not UTF-8 ({:?}); it cannot be named back to the server and was not copied",
                            crate::wire::excerpt(line)
                        ),
                    });
                }
                Parsed::Data(Response::MailboxData(MailboxDatum::List(l))) => {
                    let raw = astring_text(line, &l.name);
                    let attributes: Vec<String> =
                        l.name_attributes.iter().map(attribute_name).collect();
                    let special_use = attributes
                        .iter()
                        .find_map(|a| SpecialUse::from_attribute(a));
                    let name = if utf8 {
                        raw.clone()
                    } else {
                        crate::utf7::decode_lossless_or_raw(&raw)
                    };
                    folders.push(Folder {
                        name,
                        raw,
                        delimiter: l.delimiter.as_ref().and_then(|d| d.chars().next()),
                        attributes,
                        special_use,
                    });
                }
                Parsed::Data(Response::MailboxData(MailboxDatum::Status { mailbox, status })) => {
                    statuses.insert(astring_text(line, mailbox), status_from_attrs(status));
                }
                Parsed::Unknown(line)
                    if line.len() > 6 && line[..6].eq_ignore_ascii_case(b"* LIST") =>
                {
                    // One entry we cannot read must not cost the others: it is left out,
                    // and reported so that it does not vanish without a word.
                    odd.push(ServerAnomaly {
                        uid: None,
                        detail: format!(
                            "the source listed a folder in a form that cannot be read ({:?}); it was not copied",
                            crate::wire::excerpt(line)
                        ),
                    });
                }
                _ => {}
            })
            .await?;
        self.check("LIST", None, status)?;
        self.anomalies.extend(odd);
        Ok(folders
            .into_iter()
            .map(|f| {
                let st = statuses.remove(&f.raw);
                (f, st)
            })
            .collect())
    }

    /// STATUS of one folder, by wire name.
    pub async fn status(&mut self, raw: &str) -> Result<FolderStatus> {
        self.ensure_idle_pipeline().await?;
        let modseq = if self.caps.has("CONDSTORE") {
            " HIGHESTMODSEQ"
        } else {
            ""
        };
        let tag = self
            .send_named(
                "STATUS",
                raw,
                &format!(" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN{modseq})"),
            )
            .await?;
        let mut st = FolderStatus::default();
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Data(Response::MailboxData(MailboxDatum::Status {
                    status, ..
                })) = p
                {
                    st = status_from_attrs(status);
                }
            })
            .await?;
        self.check("STATUS", Some(raw), status)?;
        Ok(st)
    }

    /// Opens a folder for reading and writing (`SELECT`, with CONDSTORE where offered).
    pub async fn select(&mut self, raw: &str) -> Result<&Selected> {
        self.open_folder("SELECT", raw).await
    }

    /// Opens a folder read-only (`EXAMINE`): reading never changes `\Seen` or `\Recent`.
    pub async fn examine(&mut self, raw: &str) -> Result<&Selected> {
        self.open_folder("EXAMINE", raw).await
    }

    async fn open_folder(&mut self, verb: &'static str, raw: &str) -> Result<&Selected> {
        self.ensure_idle_pipeline().await?;
        self.selected = None;
        let condstore = if self.caps.has("CONDSTORE") {
            " (CONDSTORE)"
        } else {
            ""
        };
        let tag = self.send_named(verb, raw, condstore).await?;
        let mut sel = Selected {
            raw: raw.to_string(),
            read_only: verb == "EXAMINE",
            ..Selected::default()
        };
        let status = self
            .conn
            .wait(&tag, |p| match p {
                Parsed::Data(Response::MailboxData(MailboxDatum::Exists(n))) => sel.exists = *n,
                Parsed::Status(s) => match &s.code {
                    Some(ResponseCode::UidValidity(v)) => sel.uid_validity = Some(UidValidity(*v)),
                    Some(ResponseCode::UidNext(v)) => sel.uid_next = Some(*v),
                    Some(ResponseCode::HighestModSeq(v)) => sel.highest_modseq = Some(*v),
                    Some(ResponseCode::PermanentFlags(f)) => sel.permanent_flags = Some(f.clone()),
                    _ => {}
                },
                _ => {}
            })
            .await?;
        let status = self.check(verb, Some(raw), status)?;
        match status.code {
            Some(ResponseCode::ReadOnly) => sel.read_only = true,
            Some(ResponseCode::ReadWrite) => sel.read_only = false,
            _ => {}
        }
        Ok(self.selected.insert(sel))
    }

    /// Sends `verb <folder name><after>`: the name quoted, or as a literal when it holds 8-bit
    /// bytes a quoted string cannot carry (a name some servers list that way, and expect back
    /// the same way). Returns the tag.
    async fn send_named(&mut self, verb: &'static str, raw: &str, after: &str) -> Result<String> {
        if self.utf8 || raw.is_ascii() {
            let cmd = format!("{verb} {}{after}", quote(raw, "folder name")?);
            return self.conn.send(cmd.as_bytes()).await;
        }
        let len = raw.len();
        let nonsync = self.caps.has("LITERAL+") || (self.caps.has("LITERAL-") && len <= 4096);
        if nonsync {
            let mut cmd = format!("{verb} {{{len}+}}\r\n").into_bytes();
            cmd.extend_from_slice(raw.as_bytes());
            cmd.extend_from_slice(after.as_bytes());
            return self.conn.send(&cmd).await;
        }
        let tag = self.conn.tag();
        self.conn
            .write(format!("{tag} {verb} {{{len}}}\r\n").as_bytes())
            .await?;
        self.conn.flush().await?;
        if let Err(status) = self.conn.wait_continuation(&tag, |_| {}).await? {
            return Err(self.refused(verb, Some(raw), status));
        }
        self.conn.write(raw.as_bytes()).await?;
        self.conn.write(after.as_bytes()).await?;
        self.conn.write(b"\r\n").await?;
        self.conn.flush().await?;
        Ok(tag)
    }

    /// Creates a folder (by wire name). Succeeds if it already exists.
    pub async fn create(&mut self, raw: &str) -> Result<()> {
        self.create_with_use(raw, None).await
    }

    /// Creates a folder, asking for a special use where the server supports CREATE-SPECIAL-USE.
    /// Succeeds if it already exists.
    pub async fn create_with_use(&mut self, raw: &str, use_: Option<SpecialUse>) -> Result<()> {
        let mut cmd = format!("CREATE {}", quote(raw, "folder name")?);
        if let (Some(u), true) = (use_, self.caps.has("CREATE-SPECIAL-USE")) {
            cmd.push_str(&format!(" (USE ({}))", u.attribute()));
        }
        match self.simple("CREATE", cmd.as_bytes(), Some(raw)).await {
            Ok(_) => Ok(()),
            Err(ImapError::Refused { status, .. })
                if matches!(&status.code, Some(ResponseCode::Other { name, .. }) if name == "ALREADYEXISTS")
                    || status.text.to_ascii_lowercase().contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Subscribes to a folder.
    pub async fn subscribe(&mut self, raw: &str) -> Result<()> {
        let cmd = format!("SUBSCRIBE {}", quote(raw, "folder name")?);
        self.simple("SUBSCRIBE", cmd.as_bytes(), Some(raw))
            .await
            .map(|_| ())
    }

    /// Quota usage for the quota roots of a folder (RFC 2087), empty when QUOTA is missing.
    pub async fn quota(&mut self, raw: &str) -> Result<Vec<QuotaUsage>> {
        if !self.caps.has("QUOTA") {
            return Ok(Vec::new());
        }
        self.ensure_idle_pipeline().await?;
        let cmd = format!("GETQUOTAROOT {}", quote(raw, "folder name")?);
        let tag = self.conn.send(cmd.as_bytes()).await?;
        let mut out = Vec::new();
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Data(Response::Quota(q)) = p {
                    for r in &q.resources {
                        out.push(QuotaUsage {
                            root: q.root_name.to_string(),
                            resource: format!("{:?}", r.name).to_ascii_uppercase(),
                            usage: r.usage,
                            limit: r.limit,
                        });
                    }
                }
            })
            .await?;
        self.check("GETQUOTAROOT", Some(raw), status)?;
        Ok(out)
    }

    /// UNSELECT (RFC 3691): leaves the selected folder without expunging anything (CLOSE would
    /// expunge `\Deleted` messages). Needs the `UNSELECT` capability.
    pub async fn unselect(&mut self) -> Result<()> {
        if !self.caps.has("UNSELECT") {
            return Err(ImapError::MissingCapability {
                host: self.conn.host.clone(),
                capability: "UNSELECT",
                needed_for: "leave a folder without expunging it",
            });
        }
        self.simple("UNSELECT", b"UNSELECT", None).await?;
        self.selected = None;
        Ok(())
    }
}
