//! The result of filtering one recipient's copy: what to store where, what
//! to send, what to refuse and what to remember, as plain values; and its
//! JSON form for `mailstow sieve test`. Must not carry out anything.

use std::sync::Arc;

use serde_json::json;

/// Where and how one copy is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// IMAP folder name as the script gave it ("INBOX" for keep).
    pub folder: String,
    /// IMAP flags: system flags with a backslash, keywords as written.
    pub flags: Vec<String>,
    /// `fileinto :create`.
    pub create: bool,
    /// The implicit keep (no script action put it there).
    pub implicit: bool,
    /// An edited message (editheader); None is the original.
    pub message: Option<Arc<Vec<u8>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutKind {
    Redirect,
    Vacation,
    Notify,
}

/// A message handed to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub kind: OutKind,
    pub to: Vec<String>,
    /// Redirect: the message (None = original); vacation/notify: the
    /// generated message.
    pub message: Option<Arc<Vec<u8>>>,
    /// Vacation: the id (and seconds) to remember once the reply is sent.
    pub remember: Option<(String, u64)>,
    /// A short description for logs and `sieve test` (vacation subject,
    /// notify method).
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: String,
    pub extended: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Deduplicated by folder (INBOX in any case is one), flags merged.
    pub stores: Vec<Store>,
    /// A script said `discard` (informational: no store means no copy).
    pub discarded: bool,
    pub reject: Option<Reject>,
    pub outgoing: Vec<Outgoing>,
    /// Duplicate-tracking ids to record once delivery succeeded.
    pub remember: Vec<(String, u64)>,
    /// Compile and runtime errors, already logged.
    pub errors: Vec<PlanError>,
    /// Things the host did differently from what the script asked without
    /// the script failing (a redirect skipped as a loop), already logged.
    pub notes: Vec<String>,
    /// The tests and events seen, for `sieve test --trace`.
    pub trace: Vec<String>,
    /// At least one script was found and run (or failed to compile): the
    /// plan is a filter's, not only the default keep.
    pub ran: bool,
}

/// Whether a script failed to compile or failed while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Compile,
    Runtime,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Compile => "compile",
            ErrorKind::Runtime => "runtime",
        }
    }
}

/// One script's failure: "script: problem".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub kind: ErrorKind,
    pub text: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Plan {
    /// Add a store, merging it into an earlier one for the same folder.
    pub fn store(&mut self, s: Store) {
        let same = |a: &str, b: &str| {
            a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
        };
        if let Some(prev) = self.stores.iter_mut().find(|p| same(&p.folder, &s.folder)) {
            for f in s.flags {
                if !prev.flags.iter().any(|g| g.eq_ignore_ascii_case(&f)) {
                    prev.flags.push(f);
                }
            }
            prev.create |= s.create;
            prev.implicit &= s.implicit;
            if prev.message.is_none() {
                prev.message = s.message;
            }
            return;
        }
        self.stores.push(s);
    }

    /// The plan as `sieve test --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut actions = Vec::new();
        for s in &self.stores {
            actions.push(json!({
                "type": "store",
                "folder": if s.folder.eq_ignore_ascii_case("INBOX") { "INBOX" } else { s.folder.as_str() },
                "flags": s.flags,
                "implicit": s.implicit,
            }));
        }
        if self.discarded && self.stores.is_empty() {
            actions.push(json!({"type": "discard"}));
        }
        if let Some(r) = &self.reject {
            actions.push(json!({"type": "reject", "reason": r.reason, "ereject": r.extended}));
        }
        for o in &self.outgoing {
            match o.kind {
                OutKind::Redirect => {
                    for to in &o.to {
                        actions.push(json!({"type": "redirect", "to": to}));
                    }
                }
                OutKind::Vacation => {
                    for to in &o.to {
                        actions.push(json!({"type": "vacation", "to": to, "subject": o.note}));
                    }
                }
                OutKind::Notify => {
                    actions.push(json!({"type": "notify", "method": o.note, "to": o.to}));
                }
            }
        }
        let errors: Vec<&str> = self.errors.iter().map(|e| e.text.as_str()).collect();
        json!({ "actions": actions, "errors": errors, "notes": self.notes })
    }

    /// The plan as `sieve test` prints it for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.stores {
            let kind = if s.implicit {
                "keep (implicit)"
            } else {
                "store"
            };
            out.push_str(&format!("{kind}: {}", s.folder));
            if !s.flags.is_empty() {
                out.push_str(&format!(" flags {}", s.flags.join(" ")));
            }
            if s.message.is_some() {
                out.push_str(" (edited message)");
            }
            out.push('\n');
        }
        if self.discarded && self.stores.is_empty() {
            out.push_str("discard\n");
        }
        if let Some(r) = &self.reject {
            let kind = if r.extended { "ereject" } else { "reject" };
            out.push_str(&format!("{kind}: {}\n", r.reason));
        }
        for o in &self.outgoing {
            let kind = match o.kind {
                OutKind::Redirect => "redirect",
                OutKind::Vacation => "vacation reply",
                OutKind::Notify => "notify",
            };
            out.push_str(&format!("{kind} to {}", o.to.join(", ")));
            if !o.note.is_empty() {
                out.push_str(&format!(" ({})", o.note));
            }
            out.push('\n');
        }
        for (id, secs) in &self.remember {
            out.push_str(&format!("remember duplicate id {id:?} for {secs} s\n"));
        }
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if out.is_empty() {
            out.push_str("(no action: the message is dropped)\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(folder: &str, flags: &[&str], implicit: bool) -> Store {
        Store {
            folder: folder.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            create: false,
            implicit,
            message: None,
        }
    }

    #[test]
    fn inbox_in_any_case_is_stored_once_with_merged_flags() {
        let mut p = Plan::default();
        p.store(store("inbox", &["\\Seen"], false));
        p.store(store("Work", &[], false));
        p.store(store("INBOX", &["\\Flagged", "\\seen"], true));
        assert_eq!(p.stores.len(), 2);
        assert_eq!(p.stores[0].flags, vec!["\\Seen", "\\Flagged"]);
        assert!(!p.stores[0].implicit, "an explicit store stays explicit");
        let j = p.to_json();
        assert_eq!(j["actions"][0]["folder"], "INBOX");
    }
}
