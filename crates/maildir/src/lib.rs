//! A durable Maildir++ writer, and everything about a Maildir on disk
//! that a delivery agent needs: folder names (modified UTF-7), flags and
//! keywords (Dovecot's `dovecot-keywords`), dot-locking, shared directory
//! fsyncs, quota (`maildirsize`), subscriptions, Courier-IMAP's keyword and
//! subscription files ([`courier`], chosen by [`Readers`]), hard-linking a
//! durable message into another folder ([`Maildir::save_linked`]), cleaning `tmp/`, and
//! Sieve script files in Pigeonhole's layout ([`sieve_scripts`]). Must not
//! know who sent the mail or why it goes to this folder, and must never
//! leave a partial file behind: a save either returns a durable message or
//! an error with nothing left in `tmp/`, `new/` or `cur/`.
//!
//! # The durable-write protocol
//!
//! [`Maildir::save`] writes the message to `tmp/<unique>` (created with
//! O_EXCL, mode 0600), sets its mtime to the receive time (IMAP servers
//! show it as INTERNALDATE), fsyncs the file (data and mtime), links it
//! into `new/` (or `cur/` with `:2,FLAGS`) without replacing anything,
//! removes the `tmp/` name, and fsyncs the directory that received it (a
//! new folder's parent too). Only then does it return: the caller may
//! acknowledge the message. Concurrent saves into one directory share its
//! fsync, but each waits for one that began after its own link.
//!
//! ```
//! use std::time::SystemTime;
//! use mailstow_maildir::{Body, Content, Flags, FolderEncoding, Maildir};
//!
//! let home = tempfile::tempdir().unwrap();
//! let md = Maildir::new(home.path().join("Maildir"), None, FolderEncoding::Utf7, "mx.example.org");
//! let message = b"Subject: hello\r\n\r\nHi.\r\n";
//! let trace = b"Delivered-To: alice@example.org\r\n";
//! let mut flags = Flags::default();
//! flags.insert_imap("\\Seen");
//! flags.insert_imap("$Important");
//! let content = Content {
//!     header: trace,
//!     body: Body::Bytes(message),
//!     // LFs without a CR before them; Dovecot trusts the W= size it gives.
//!     bare_lf: 0,
//! };
//! // "Lists.Rust" is created (create = true) as .Lists.Rust/ with tmp, new, cur.
//! let saved = md.save("Lists.Rust", true, &flags, &content, SystemTime::now()).unwrap();
//! assert!(saved.path.starts_with(home.path().join("Maildir/.Lists.Rust/cur")));
//! assert_eq!(saved.size, (trace.len() + message.len()) as u64);
//! // The file is durable: its data, its name and its folder are on disk.
//! assert_eq!(std::fs::read(&saved.path).unwrap(), [&trace[..], &message[..]].concat());
//! assert_eq!(md.message_files("Lists.Rust").unwrap(), vec![saved.path.clone()]);
//! ```

pub mod courier;
mod dirsync;
pub mod dotlock;
mod filename;
mod flush;
pub mod fsops;
mod keywords;
mod line_ends;
mod link;
mod names;
pub mod quota;
pub mod sieve_scripts;
mod subscriptions;
pub mod tmpclean;

use std::collections::BTreeSet;
use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fsops::TmpGuard;

pub use filename::count_bare_lf;
pub use flush::Flush;
pub use line_ends::{to_lf, ToLf};
pub use link::Source;
pub use names::{display_name, storage_name, FolderEncoding};

/// Tries at a fresh unique name before giving up (each collision is already
/// all but impossible).
const NAME_ATTEMPTS: usize = 5;

/// Who owns created files and directories: when Some and we run as root,
/// every file and directory we create is chowned to it before it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// A message body to write after the prepended header block.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    Bytes(&'a [u8]),
    /// Bytes `0..len` of a spool file, read at explicit offsets: the file's
    /// seek position is neither used nor moved, so one file can be saved
    /// for many recipients.
    File {
        file: &'a File,
        len: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// What a save writes: our header lines, then the message as received.
#[derive(Clone, Copy, Debug)]
pub struct Content<'a> {
    /// Lines prepended by us (Return-Path, Delivered-To, Received), each ending CRLF.
    pub header: &'a [u8],
    pub body: Body<'a>,
    /// LF bytes not preceded by CR in header + body ([`count_bare_lf`]).
    /// Trusted: a wrong count makes Dovecot drop the client (docs/maildir.md,
    /// 'File names').
    pub bare_lf: u64,
}

impl Content<'_> {
    /// S: the file size.
    pub fn size(&self) -> u64 {
        self.header.len() as u64 + self.body.len()
    }

    /// W: RFC822.SIZE, each bare LF counted as CRLF.
    pub fn vsize(&self) -> u64 {
        self.size() + self.bare_lf
    }
}

/// Longest keyword accepted, in bytes. (Dovecot's IMAP refuses to create
/// keywords longer than `mail_max_keyword_length`, 50 by default, but shows
/// longer ones it finds in `dovecot-keywords`.)
pub const MAX_KEYWORD_LEN: usize = 128;
/// Keywords one message may carry; a folder has only 26 letters anyway.
pub const MAX_MESSAGE_KEYWORDS: usize = 64;

/// IMAP flags of a message: the system flags, stored as Maildir info
/// letters, and keywords, stored as letters a..z through the folder's
/// `dovecot-keywords`. Default: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub draft: bool,
    pub flagged: bool,
    pub answered: bool,
    pub seen: bool,
    pub deleted: bool,
    /// Valid keywords ([`is_keyword`]), distinct ignoring ASCII case, in the
    /// order inserted; private so that nothing else gets in.
    keywords: Vec<String>,
}

impl Flags {
    /// Adds an IMAP flag: a system flag (`\Seen`, any case) or a keyword
    /// ([`is_keyword`]; one already present in another case is kept as it
    /// was). False, and nothing changed, for `\Recent`, any other `\name`,
    /// an invalid keyword, or a keyword beyond [`MAX_MESSAGE_KEYWORDS`].
    pub fn insert_imap(&mut self, name: &str) -> bool {
        let flag = match name.to_ascii_lowercase().as_str() {
            "\\draft" => &mut self.draft,
            "\\flagged" => &mut self.flagged,
            "\\answered" => &mut self.answered,
            "\\seen" => &mut self.seen,
            "\\deleted" => &mut self.deleted,
            _ => return self.insert_keyword(name),
        };
        *flag = true;
        true
    }

    fn insert_keyword(&mut self, name: &str) -> bool {
        if !is_keyword(name) {
            return false;
        }
        if self.keywords.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return true;
        }
        if self.keywords.len() >= MAX_MESSAGE_KEYWORDS {
            return false;
        }
        self.keywords.push(name.to_owned());
        true
    }

    /// The keywords, in the order inserted.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// No system flag and no keyword.
    pub fn is_empty(&self) -> bool {
        *self == Flags::default()
    }

    /// The system flags' info letters in ASCII order, as Dovecot writes
    /// them after `:2,` (keyword letters, a..z, follow them).
    pub fn letters(&self) -> String {
        [
            (self.draft, 'D'),
            (self.flagged, 'F'),
            (self.answered, 'R'),
            (self.seen, 'S'),
            (self.deleted, 'T'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, letter)| letter)
        .collect()
    }
}

/// Is `name` an IMAP keyword (RFC 3501 flag-keyword = atom)? 1 to
/// [`MAX_KEYWORD_LEN`] ASCII bytes, no space, control character or atom
/// special `(){%*"\]`; so no `\`-name either.
pub fn is_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEYWORD_LEN
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

/// A message made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The file in new/ or cur/.
    pub path: PathBuf,
    /// The name up to ':', the message's permanent identity (index key).
    pub base: String,
    /// The folder's storage name; "" for INBOX.
    pub storage_name: String,
    /// S: bytes in the file.
    pub size: u64,
    /// W: RFC822.SIZE.
    pub vsize: u64,
    /// This save created the folder's directory (for INBOX: the Maildir).
    pub created_folder: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid folder name {name:?}: {reason}")]
    InvalidFolder { name: String, reason: &'static str },
    #[error("no such folder: {0:?}")]
    NoSuchFolder(String),
    /// ENOSPC or EDQUOT, at any step.
    #[error("no space (disk full or over quota) at {}", path.display())]
    NoSpace { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Maps an I/O error at `path` during `op`, recognising a full disk or quota.
pub fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| match source.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => StoreError::NoSpace {
            path: path.to_owned(),
        },
        _ => StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        },
    }
}

/// Whose own files the store keeps for keywords or subscriptions
/// (docs/compatibility.md): Dovecot's (`dovecot-keywords` letters,
/// `subscriptions`), Courier-IMAP's (`courierimapkeywords/`,
/// `courierimapsubscribed`) or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum Readers {
    #[default]
    Dovecot,
    Courier,
    Both,
}

impl Readers {
    pub fn dovecot(self) -> bool {
        matches!(self, Readers::Dovecot | Readers::Both)
    }

    pub fn courier(self) -> bool {
        matches!(self, Readers::Courier | Readers::Both)
    }
}

/// One user's Maildir (the root is INBOX; folders are `.Name` inside it).
#[derive(Clone, Debug)]
pub struct Maildir {
    root: PathBuf,
    /// Where keywords go (letters and/or Courier's update files).
    keyword_files: Readers,
    /// Which subscriptions files a created folder is added to.
    subscription_files: Readers,
    /// Every message goes to cur/ with `:2,` (Courier numbers only what it
    /// finds in cur/ by its courierimapuiddb: see docs/maildir.md).
    always_cur: bool,
    /// The owner to chown to: set only when running as root.
    chown: Option<Owner>,
    /// How saved files and their links are made durable.
    flush: Flush,
    encoding: FolderEncoding,
    /// Host part of unique names, escaped.
    name_host: String,
    /// Host as written into lock files (`pid:host`): the kernel's host name,
    /// as Dovecot writes and compares it to break a dead process's lock.
    lock_host: String,
}

impl Maildir {
    /// No I/O: the Maildir is created by the first save.
    pub fn new(
        root: PathBuf,
        owner: Option<Owner>,
        encoding: FolderEncoding,
        hostname: &str,
    ) -> Maildir {
        Maildir {
            root,
            keyword_files: Readers::Dovecot,
            subscription_files: Readers::Dovecot,
            always_cur: false,
            chown: owner.filter(|_| nix::unistd::geteuid().is_root()),
            flush: Flush::PerFile,
            encoding,
            name_host: filename::escape_host(hostname),
            lock_host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| hostname.to_owned()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The same Maildir keeping `keywords` readers' keyword files and
    /// `subscriptions` readers' subscription files.
    pub fn with_readers(mut self, keywords: Readers, subscriptions: Readers) -> Maildir {
        self.keyword_files = keywords;
        self.subscription_files = subscriptions;
        self
    }

    /// The same Maildir saving every message into cur/ (`:2,<flags>`),
    /// never new/.
    pub fn with_always_cur(mut self, always_cur: bool) -> Maildir {
        self.always_cur = always_cur;
        self
    }

    /// The same Maildir making its saves durable as `flush` says.
    pub fn with_flush(mut self, flush: Flush) -> Maildir {
        self.flush = flush;
        self
    }

    /// Where keywords go.
    pub fn keyword_files(&self) -> Readers {
        self.keyword_files
    }

    /// Does this folder exist? INBOX exists when the Maildir root does.
    pub fn folder_exists(&self, folder: &str) -> Result<bool, StoreError> {
        let dir = self.folder_dir(&storage_name(folder, self.encoding)?);
        is_dir(&dir)
    }

    /// Create the Maildir (and the home above it) if missing, with the
    /// store's modes and owners; for state kept beside the mailbox.
    pub fn create(&self) -> Result<(), StoreError> {
        let root = self.root.clone();
        self.ensure_folder("INBOX", "", &root, true).map(|_| ())
    }

    /// The message files of `folder` (new/ then cur/), sorted by name; for
    /// tools that re-read what is stored (`sieve filter`). A missing folder
    /// is `NoSuchFolder`.
    pub fn message_files(&self, folder: &str) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.folder_dir(&storage_name(folder, self.encoding)?);
        if !is_dir(&dir)? {
            return Err(StoreError::NoSuchFolder(folder.to_owned()));
        }
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let d = dir.join(sub);
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("readdir", &d)(e)),
            };
            let mut names: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            names.sort();
            files.extend(names);
        }
        Ok(files)
    }

    /// Durably saves one message into `folder`, into new/ without flags or
    /// cur/ with them (always cur/ with [`Maildir::with_always_cur`]), its
    /// mtime (IMAP INTERNALDATE) set to `received`.
    /// Creates the Maildir on first delivery; creates a missing folder only
    /// when `create` (else [`StoreError::NoSuchFolder`]). For Dovecot
    /// ([`Readers`]), keywords become
    /// letters through the folder's `dovecot-keywords`, extended under
    /// `dovecot-uidlist.lock` when needed (a lock held past 10 s is an
    /// error); those beyond its 26 letters are left out with a warning. For
    /// Courier, they go to the message's `courierimapkeywords/` update file,
    /// written before the message is published.
    pub fn save(
        &self,
        folder: &str,
        create: bool,
        flags: &Flags,
        content: &Content<'_>,
        received: SystemTime,
    ) -> Result<Saved, StoreError> {
        let storage = storage_name(folder, self.encoding)?;
        let dir = self.folder_dir(&storage);
        let created_folder = self.ensure_folder(folder, &storage, &dir, create)?;
        let info = self.info(&dir, flags)?;
        let (size, vsize) = (content.size(), content.vsize());
        let (file, tmp, base) = self.create_tmp(&dir, size, vsize)?;
        write_durably(file, tmp.path(), content, received, self.flush)?;
        let sizes = (size, vsize);
        let (path, base) =
            self.publish_with_keywords(tmp, base, &dir, info.as_deref(), flags, sizes)?;
        Ok(Saved {
            path,
            base,
            storage_name: storage,
            size,
            vsize,
            created_folder,
        })
    }

    /// [`Maildir::publish`], with Courier's keyword update file written
    /// first when keywords go there (so Courier never sees the message
    /// without them), moved if the message got another base name, and
    /// taken back if the message was not published.
    fn publish_with_keywords(
        &self,
        tmp: TmpGuard,
        base: String,
        dir: &Path,
        info: Option<&str>,
        flags: &Flags,
        (size, vsize): (u64, u64),
    ) -> Result<(PathBuf, String), StoreError> {
        let keywords = flags.keywords();
        if !self.keyword_files.courier() || keywords.is_empty() {
            return self.publish(tmp, base, dir, info, size, vsize);
        }
        courier::set_keywords(dir, &base, keywords, self.chown)?;
        match self.publish(tmp, base.clone(), dir, info, size, vsize) {
            Err(e) => {
                courier::remove_keywords(dir, &base);
                Err(e)
            }
            Ok((path, new_base)) if new_base != base => {
                courier::remove_keywords(dir, &base);
                courier::set_keywords(dir, &new_base, keywords, self.chown)?;
                Ok((path, new_base))
            }
            Ok(published) => Ok(published),
        }
    }

    /// The info suffix (`:2,<flags><letters>`) a message with `flags` gets,
    /// extending `dovecot-keywords` when keywords go there; None for new/.
    fn info(&self, dir: &Path, flags: &Flags) -> Result<Option<String>, StoreError> {
        let letters = if self.keyword_files.dovecot() {
            keywords::letters(
                dir,
                flags.keywords(),
                self.chown,
                &self.lock_host,
                dotlock::WAIT,
            )?
        } else {
            String::new()
        };
        let system = flags.letters();
        if system.is_empty() && letters.is_empty() && !self.always_cur {
            return Ok(None);
        }
        Ok(Some(format!(":2,{system}{letters}")))
    }

    /// The owner created files get (Some only when running as root).
    pub fn chown(&self) -> Option<Owner> {
        self.chown
    }

    /// The host name lock files carry (`pid:host`).
    pub fn lock_host(&self) -> &str {
        &self.lock_host
    }

    pub fn encoding(&self) -> FolderEncoding {
        self.encoding
    }

    /// The storage names of the folders on disk ("" for INBOX first, then
    /// every `.name` directory holding a cur/), sorted. A missing Maildir
    /// has none.
    pub fn folders(&self) -> Result<Vec<String>, StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("readdir", &self.root)(e)),
        };
        let mut names = vec![String::new()];
        for entry in entries {
            let entry = entry.map_err(io_err("readdir", &self.root))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(storage) = name.strip_prefix('.') else {
                continue;
            };
            // A symlinked folder is not ours to read (see `refuse_symlink`).
            let real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if storage.is_empty()
                || storage == "."
                || !real_dir
                || !entry.path().join("cur").is_dir()
            {
                continue;
            }
            names.push(storage.to_owned());
        }
        names[1..].sort();
        Ok(names)
    }

    /// The directory of the folder with this storage name ("" = INBOX).
    pub fn folder_dir(&self, storage: &str) -> PathBuf {
        if storage.is_empty() {
            self.root.clone()
        } else {
            self.root.join(format!(".{storage}"))
        }
    }

    /// Makes sure the folder's tmp/, new/ and cur/ exist, creating (and
    /// fsyncing) whatever is missing. Returns whether this call created the
    /// folder directory.
    fn ensure_folder(
        &self,
        folder: &str,
        storage: &str,
        dir: &Path,
        create: bool,
    ) -> Result<bool, StoreError> {
        // tmp/ is made last, so it stands for a complete folder. No part of
        // the mailbox may be a symlink: written through as root, one would
        // let whoever can write the Maildir direct our files anywhere.
        if is_dir(&dir.join("tmp"))? {
            let mut inside = vec![self.root.clone(), dir.to_owned()];
            inside.extend(["tmp", "new", "cur"].map(|s| dir.join(s)));
            for p in &inside {
                refuse_symlink(p)?;
            }
            return Ok(false);
        }
        let inbox = storage.is_empty();
        if !inbox && !create && !is_dir(dir)? {
            return Err(StoreError::NoSuchFolder(folder.to_owned()));
        }
        let mut made = Vec::new();
        let missing: Vec<&Path> = self
            .root
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.is_dir())
            .collect();
        // The home ({home}/Maildir's parent) and the Maildir belong to the
        // user, 0700. Directories above the home (mail_root/domain) are
        // shared by the users below them: 0711, and owned by the mail owner
        // so that Dovecot, running as that owner, can create the home of a
        // user who has no mail yet (one shared mail uid, as with vmail; with
        // a uid per user, create these directories beforehand).
        let home = self.root.parent();
        for parent in missing.into_iter().rev() {
            if parent == self.root || Some(parent) == home {
                self.make_dir(parent, &mut made)?;
            } else if fsops::make_dir_mode(parent, fsops::SHARED_DIR_MODE, self.chown)? {
                made.push(parent.to_owned());
            }
        }
        self.make_subdirs(&self.root, &mut made)?;
        if !inbox {
            self.make_dir(dir, &mut made)?;
            let marker = dir.join("maildirfolder");
            match fsops::create_file(&marker, self.chown) {
                Ok(file) => {
                    fsops::close(file).map_err(io_err("close", &marker))?;
                    made.push(marker);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", &marker)(e)),
            }
            self.make_subdirs(dir, &mut made)?;
        }
        // Each new entry is durable once it and the directory holding it are synced.
        let to_sync: BTreeSet<&Path> = made
            .iter()
            .flat_map(|p| [Some(p.as_path()), p.parent()])
            .flatten()
            .collect();
        for path in to_sync {
            fsops::fsync_path(path)?;
        }
        let created = made.iter().any(|p| p == dir);
        if created && !inbox {
            self.subscribe(storage);
        }
        Ok(created)
    }

    /// Adds a folder just created to the configured subscriptions files.
    /// Failures are logged: the folder exists and the mail matters more; a
    /// retry would not subscribe either.
    fn subscribe(&self, storage: &str) {
        let wait = dotlock::WAIT;
        let (owner, host) = (self.chown, self.lock_host.as_str());
        if self.subscription_files.dovecot() {
            if let Err(e) = subscriptions::subscribe(&self.root, storage, owner, host, wait) {
                tracing::warn!(folder = storage, error = %e, "could not subscribe new folder");
            }
        }
        if self.subscription_files.courier() {
            if let Err(e) = courier::subscribe(&self.root, storage, owner, host, wait) {
                tracing::warn!(folder = storage, error = %e, "could not subscribe new folder in courierimapsubscribed");
            }
        }
    }

    /// cur/, new/, then tmp/ (see `ensure_folder`).
    fn make_subdirs(&self, dir: &Path, made: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        for sub in ["cur", "new", "tmp"] {
            self.make_dir(&dir.join(sub), made)?;
        }
        Ok(())
    }

    fn make_dir(&self, path: &Path, made: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        if fsops::make_dir(path, self.chown)? {
            made.push(path.to_owned());
        }
        Ok(())
    }

    /// A new file in `dir`/tmp/ under a fresh unique base name.
    fn create_tmp(
        &self,
        dir: &Path,
        size: u64,
        vsize: u64,
    ) -> Result<(File, TmpGuard, String), StoreError> {
        let tmp_dir = dir.join("tmp");
        for _ in 0..NAME_ATTEMPTS {
            let base = self.unique_base(size, vsize);
            let path = tmp_dir.join(&base);
            match fsops::create_file(&path, self.chown) {
                Ok(file) => return Ok((file, TmpGuard::new(path), base)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
        let source = io::Error::new(io::ErrorKind::AlreadyExists, "no unused unique name");
        Err(StoreError::Io {
            op: "create a file in",
            path: tmp_dir,
            source,
        })
    }

    fn unique_base(&self, size: u64, vsize: u64) -> String {
        filename::unique_base(SystemTime::now(), &self.name_host, size, vsize)
    }

    /// Links the finished tmp file into new/ (no `info`) or cur/ (`info`,
    /// `:2,<letters>`), never replacing a file, unlinks the tmp name and
    /// fsyncs the directory. Returns the final path and base name (a fresh
    /// one if `base` was taken).
    fn publish(
        &self,
        tmp: TmpGuard,
        mut base: String,
        dir: &Path,
        info: Option<&str>,
        size: u64,
        vsize: u64,
    ) -> Result<(PathBuf, String), StoreError> {
        let (sub, info) = match info {
            None => ("new", ""),
            Some(info) => ("cur", info),
        };
        let dest_dir = dir.join(sub);
        // Grouped: opened before the link, so that its flush sees errors after it.
        let grouped_dir = match self.flush {
            Flush::Grouped => Some(File::open(&dest_dir).map_err(io_err("open", &dest_dir))?),
            Flush::PerFile => None,
        };
        let mut attempt = 1;
        let dest = loop {
            let dest = dest_dir.join(format!("{base}{info}"));
            match fsops::move_new(tmp.path(), &dest) {
                Ok(moved) => break (dest, moved),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                    attempt += 1;
                    base = self.unique_base(size, vsize);
                }
                Err(e) => return Err(io_err("move to", &dest)(e)),
            }
        };
        let dest = match dest {
            (dest, true) => {
                tmp.disarm();
                dest
            }
            (dest, false) => {
                if let Err(e) = tmp.remove() {
                    // Delivered all the same; Dovecot deletes tmp/ files after 36 h.
                    tracing::warn!(error = %e, "could not remove tmp file");
                }
                dest
            }
        };
        if let Err(e) = self.sync_dir(&dest_dir, grouped_dir.as_ref()) {
            // Not durable, so not delivered: take it back rather than have the retry duplicate it.
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        Ok((dest, base))
    }
}

impl Maildir {
    /// Makes the entries just linked into `dir` durable: shared with the
    /// other deliveries syncing `dir` (per-file), or with every delivery on
    /// its file system (grouped, through `opened`, the directory opened
    /// before the link).
    fn sync_dir(&self, dir: &Path, opened: Option<&File>) -> Result<(), StoreError> {
        match opened {
            None => fsops::fsync_dir_shared(dir),
            Some(_) if skip_flush("dir") => Ok(()),
            Some(d) => {
                let t = std::time::Instant::now();
                let synced = flush::dir_grouped(d);
                fsynced(Synced::Directory, t.elapsed());
                synced.map_err(io_err("fsync", dir))
            }
        }
    }
}

/// Writes header and body, checks the length, sets the times, fsyncs and
/// closes, reporting every error.
fn write_durably(
    file: File,
    path: &Path,
    content: &Content<'_>,
    received: SystemTime,
    flush: Flush,
) -> Result<(), StoreError> {
    (&file)
        .write_all(content.header)
        .map_err(io_err("write", path))?;
    let body = match content.body {
        Body::Bytes(bytes) => {
            (&file).write_all(bytes).map_err(io_err("write", path))?;
            bytes.len() as u64
        }
        Body::File { file: src, len } => {
            fsops::copy_range(src, &file, len).map_err(io_err("copy body to", path))?
        }
    };
    let written = content.header.len() as u64 + body;
    if written != content.size() {
        let why = format!("body ended after {written} of {} bytes", content.size());
        return Err(io_err("write", path)(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            why,
        )));
    }
    // The mtime is the INTERNALDATE; the atime stays now, so that a tmp/
    // sweep (which judges a file by the later of the two) never takes a
    // message dated back (`sieve filter --apply` refiles old mail) for a
    // leftover while it is being saved.
    let times = FileTimes::new()
        .set_accessed(SystemTime::now())
        .set_modified(received);
    file.set_times(times)
        .map_err(io_err("set times of", path))?;
    let t = std::time::Instant::now();
    let synced = match flush {
        _ if skip_flush("file") => Ok(()),
        Flush::PerFile => file.sync_all(),
        Flush::Grouped => flush::file_grouped(&file),
    };
    fsynced(Synced::File, t.elapsed());
    synced.map_err(io_err("fsync", path))?;
    fsops::close(file).map_err(io_err("close", path))
}

/// Test builds only (feature `fault-injection`): `MAILSTOW_SKIP_FLUSH=file`
/// (a message's fsync) or `dir` (every directory fsync) skips that flush,
/// so that the durability checks of tests/durability.rs are seen to fail.
#[cfg(feature = "fault-injection")]
pub(crate) fn skip_flush(kind: &str) -> bool {
    std::env::var_os("MAILSTOW_SKIP_FLUSH").is_some_and(|v| v == kind)
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) fn skip_flush(_kind: &str) -> bool {
    false
}

/// The keyword names of a folder directory by letter index (a = 0), from
/// its `dovecot-keywords`.
pub fn keyword_names(folder_dir: &Path) -> Result<Vec<Option<String>>, StoreError> {
    keywords::names(folder_dir)
}

/// An error when `path` is a symbolic link (a missing path is fine).
fn refuse_symlink(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StoreError::Io {
            op: "refuse",
            path: path.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link inside the mailbox",
            ),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// Ok(false) when nothing is there; other errors (permissions) are reported.
fn is_dir(path: &Path) -> Result<bool, StoreError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// What an fsync was for, as the observer set with [`observe_fsyncs`] is
/// told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    /// A message file (or another file this crate made durable).
    File,
    /// A directory, after a rename or a creation in it.
    Directory,
}

impl Synced {
    pub fn as_str(self) -> &'static str {
        match self {
            Synced::File => "file",
            Synced::Directory => "directory",
        }
    }
}

static FSYNC_OBSERVER: std::sync::OnceLock<fn(Synced, std::time::Duration)> =
    std::sync::OnceLock::new();

/// Have `observer` told how long each fsync took (a metrics recorder, say).
/// Set once per process; false when one was set already.
pub fn observe_fsyncs(observer: fn(Synced, std::time::Duration)) -> bool {
    FSYNC_OBSERVER.set(observer).is_ok()
}

fn fsynced(kind: Synced, took: std::time::Duration) {
    if let Some(observe) = FSYNC_OBSERVER.get() {
        observe(kind, took);
    }
}

/// For tests (of this crate and of crates that read Maildirs): saves a
/// small message with `subject` into `folder` (created when missing) with
/// `flags`; returns it and its bytes. Panics on failure.
#[cfg(any(test, feature = "test-support"))]
pub fn save_test_message(
    maildir: &Maildir,
    folder: &str,
    subject: &str,
    flags: &[&str],
) -> (Saved, Vec<u8>) {
    let msg = format!("Subject: {subject}\r\n\r\nbody\r\n").into_bytes();
    let content = Content {
        header: b"",
        body: Body::Bytes(&msg),
        bare_lf: 0,
    };
    let mut f = Flags::default();
    for flag in flags {
        f.insert_imap(flag);
    }
    let saved = maildir
        .save(folder, true, &f, &content, SystemTime::now())
        .unwrap();
    (saved, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn symlinks_inside_the_mailbox_are_refused_and_nothing_is_written_through_them() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let root = tmp.path().join("Maildir");
        let md = maildir(&root);
        md.save(
            "INBOX",
            false,
            &Flags::default(),
            &content(Body::Bytes(BODY)),
            received(),
        )
        .unwrap();
        for sub in ["new", ".Evil"] {
            let link = root.join(sub);
            if link.exists() {
                fs::rename(&link, root.join(format!("{sub}.old"))).unwrap();
            }
            for d in ["tmp", "new", "cur"] {
                fs::create_dir_all(elsewhere.path().join(d)).unwrap();
            }
            std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
        }
        for folder in ["INBOX", "Evil"] {
            let e = md
                .save(
                    folder,
                    false,
                    &Flags::default(),
                    &content(Body::Bytes(BODY)),
                    received(),
                )
                .unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{folder}: {e}");
        }
        for d in ["tmp", "new", "cur"] {
            assert_eq!(fs::read_dir(elsewhere.path().join(d)).unwrap().count(), 0);
        }
    }
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, UNIX_EPOCH};

    const HEADER: &[u8] = b"Return-Path: <a@example.org>\r\nDelivered-To: u@example.com\r\n";
    const BODY: &[u8] = b"Subject: hi\n\nline one\r\nline two\nlast\n";

    fn received() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_614_592_800)
    }

    fn maildir(root: &Path) -> Maildir {
        Maildir::new(root.to_owned(), None, FolderEncoding::Utf7, "mx,1")
    }

    /// Saves BODY into `folder` (created), unflagged, received at `received()`.
    fn save_body(md: &Maildir, folder: &str) -> Result<Saved, StoreError> {
        md.save(
            folder,
            true,
            &Flags::default(),
            &content(Body::Bytes(BODY)),
            received(),
        )
    }

    fn content(body: Body<'_>) -> Content<'_> {
        let (h, cr) = count_bare_lf(false, HEADER);
        let (b, _) = count_bare_lf(cr, BODY);
        Content {
            header: HEADER,
            body,
            bare_lf: h + b,
        }
    }

    fn message() -> Vec<u8> {
        [HEADER, BODY].concat()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_save_lands_in_new_with_exact_name_sizes_bytes_and_mtime() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root);
        let saved = md
            .save(
                "INBOX",
                false,
                &Flags::default(),
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();

        let size = message().len() as u64;
        assert_eq!((saved.size, saved.vsize), (size, size + 4));
        assert_eq!(saved.storage_name, "");
        assert!(saved.created_folder);
        assert_eq!(saved.path, root.join("new").join(&saved.base));
        let prefix = format!("P{}Q", std::process::id());
        assert!(saved.base.contains(&prefix), "{}", saved.base);
        assert!(
            saved
                .base
                .ends_with(&format!(".mx\\0541,S={size},W={}", size + 4)),
            "{}",
            saved.base
        );

        assert_eq!(fs::read(&saved.path).unwrap(), message());
        let meta = fs::metadata(&saved.path).unwrap();
        assert_eq!(meta.len(), size);
        assert_eq!(meta.modified().unwrap(), received());
        // Dated back, but not for the tmp/ sweep, which also reads the
        // atime: that is the time of the save.
        let a_minute_ago = SystemTime::now() - Duration::from_secs(60);
        assert!(meta.accessed().unwrap() > a_minute_ago, "{meta:?}");
        assert_eq!(mode(&saved.path), 0o600);
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(mode(&root.join(sub)), 0o700);
        }
        assert_eq!(mode(&root), 0o700);
        assert!(names_in(&root.join("tmp")).is_empty());
        assert!(!root.join("maildirfolder").exists());

        let again = md
            .save(
                "inbox",
                false,
                &Flags::default(),
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();
        assert!(!again.created_folder);
        assert_ne!(again.base, saved.base);
    }

    #[test]
    fn missing_home_is_created_0700_and_shared_parents_0711() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("example.com/alice/Maildir");
        maildir(&root)
            .save(
                "INBOX",
                false,
                &Flags::default(),
                &content(Body::Bytes(b"")),
                received(),
            )
            .unwrap();
        assert_eq!(mode(&home.path().join("example.com")), 0o711);
        assert_eq!(mode(&home.path().join("example.com/alice")), 0o700);
        assert_eq!(names_in(&root.join("new")).len(), 1);
    }

    #[test]
    fn flagged_mail_goes_to_cur_with_letters_in_ascii_order() {
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let mut flags = Flags::default();
        assert!(flags.insert_imap("\\Seen") && flags.insert_imap("\\FLAGGED"));
        assert!(!flags.insert_imap("\\Recent"));
        let saved = md
            .save(
                "INBOX",
                false,
                &flags,
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();
        assert_eq!(
            saved.path,
            home.path().join("cur").join(format!("{}:2,FS", saved.base))
        );
        assert!(names_in(&home.path().join("new")).is_empty());
        assert!(!home.path().join("dovecot-keywords").exists());
        let all = Flags {
            draft: true,
            flagged: true,
            answered: true,
            seen: true,
            deleted: true,
            ..Flags::default()
        };
        assert_eq!(all.letters(), "DFRST");
        assert_eq!(Flags::default().letters(), "");
    }

    fn flags_of(names: &[&str]) -> Flags {
        let mut flags = Flags::default();
        for name in names {
            assert!(flags.insert_imap(name), "{name}");
        }
        flags
    }

    #[test]
    fn insert_imap_takes_system_flags_and_valid_keywords_only() {
        let mut flags = Flags::default();
        for good in [
            "$Important",
            "$label1",
            "Junk",
            "NonJunk",
            "a.b-c_d+e/f'g[h",
        ] {
            assert!(flags.insert_imap(good), "{good}");
        }
        let longest = "k".repeat(MAX_KEYWORD_LEN);
        assert!(flags.insert_imap(&longest));
        let too_long = "k".repeat(MAX_KEYWORD_LEN + 1);
        for bad in [
            "",
            "a b",
            "a\tb",
            "a\r\nb",
            "nul\0",
            "del\x7f",
            "(x",
            "x)",
            "{3}",
            "a%",
            "a*",
            "\"q\"",
            "back\\slash",
            "]",
            "\\Recent",
            "\\recent",
            "\\X",
            "Réçu",
            &too_long,
        ] {
            assert!(!flags.insert_imap(bad), "{bad:?}");
        }
        // The same keyword in another case is not added twice.
        assert!(flags.insert_imap("$IMPORTANT") && flags.insert_imap("junk"));
        assert_eq!(
            flags.keywords(),
            [
                "$Important",
                "$label1",
                "Junk",
                "NonJunk",
                "a.b-c_d+e/f'g[h",
                &longest
            ]
        );
        assert!(!flags.seen && flags.letters().is_empty() && !flags.is_empty());

        let mut many = Flags::default();
        for i in 0..MAX_MESSAGE_KEYWORDS {
            assert!(many.insert_imap(&format!("k{i}")));
        }
        assert!(!many.insert_imap("one-more"));
        assert!(many.insert_imap("K0"));
        assert_eq!(many.keywords().len(), MAX_MESSAGE_KEYWORDS);
    }

    #[test]
    fn keywords_become_letters_after_the_system_flags() {
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let body = content(Body::Bytes(BODY));
        let flags = flags_of(&["$Important", "\\Seen", "Work", "\\Answered"]);
        let saved = md.save("INBOX", false, &flags, &body, received()).unwrap();
        let name = format!("{}:2,RSab", saved.base);
        assert_eq!(saved.path, home.path().join("cur").join(name));
        let keywords = home.path().join("dovecot-keywords");
        assert_eq!(fs::read(&keywords).unwrap(), b"0 $Important\n1 Work\n");
        assert_eq!(mode(&keywords), 0o600);
        assert!(!home.path().join("dovecot-uidlist.lock").exists());
        assert!(!home.path().join("dovecot-keywords.lock").exists());

        // Keywords alone put a message in cur/ too; known names keep their letters.
        let saved = md
            .save("INBOX", false, &flags_of(&["work"]), &body, received())
            .unwrap();
        let name = format!("{}:2,b", saved.base);
        assert_eq!(saved.path, home.path().join("cur").join(name));
        assert_eq!(fs::read(&keywords).unwrap(), b"0 $Important\n1 Work\n");
        assert_eq!(fs::read(&saved.path).unwrap(), message());
    }

    #[test]
    fn each_folder_has_its_own_keyword_letters() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root);
        let body = content(Body::Bytes(BODY));
        md.save("INBOX", false, &flags_of(&["A", "B"]), &body, received())
            .unwrap();
        let saved = md
            .save("Lists", true, &flags_of(&["B"]), &body, received())
            .unwrap();
        assert!(saved.path.to_string_lossy().ends_with(":2,a"));
        assert_eq!(
            fs::read(root.join(".Lists/dovecot-keywords")).unwrap(),
            b"0 B\n"
        );
        assert_eq!(
            fs::read(root.join("dovecot-keywords")).unwrap(),
            b"0 A\n1 B\n"
        );
    }

    #[test]
    fn keywords_beyond_26_letters_are_left_out_but_the_mail_is_saved() {
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let names: Vec<String> = (0..27).map(|i| format!("k{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let saved = md
            .save(
                "INBOX",
                false,
                &flags_of(&names),
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();
        let name = format!("{}:2,abcdefghijklmnopqrstuvwxyz", saved.base);
        assert_eq!(saved.path, home.path().join("cur").join(name));
        let file = fs::read_to_string(home.path().join("dovecot-keywords")).unwrap();
        assert_eq!(file.lines().count(), 26);
        assert!(
            file.ends_with("25 k25\n") && !file.contains("k26"),
            "{file}"
        );
    }

    #[test]
    fn a_stale_uidlist_lock_of_a_dead_process_is_taken_over() {
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let body = content(Body::Bytes(BODY));
        md.save("INBOX", false, &Flags::default(), &body, received())
            .unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let lock = home.path().join("dovecot-uidlist.lock");
        fs::write(&lock, format!("{dead}:{}", md.lock_host)).unwrap();
        let saved = md
            .save("INBOX", false, &flags_of(&["$Junk"]), &body, received())
            .unwrap();
        assert!(saved.path.to_string_lossy().ends_with(":2,a"));
        assert!(!lock.exists());
    }

    #[test]
    fn concurrent_saves_adding_different_keywords_all_get_distinct_letters() {
        const N: usize = 8;
        let home = tempfile::tempdir().unwrap();
        let md = Arc::new(maildir(home.path()));
        md.save(
            "INBOX",
            false,
            &Flags::default(),
            &content(Body::Bytes(BODY)),
            received(),
        )
        .unwrap();
        let barrier = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|i| {
                let (md, barrier) = (md.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let flags = flags_of(&[&format!("kw{i}")]);
                    barrier.wait();
                    md.save(
                        "INBOX",
                        false,
                        &flags,
                        &content(Body::Bytes(BODY)),
                        received(),
                    )
                })
            })
            .collect();
        let saved: Vec<Saved> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        let file = fs::read_to_string(home.path().join("dovecot-keywords")).unwrap();
        let mut letters = Vec::new();
        for (i, s) in saved.iter().enumerate() {
            let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
            let (_, letter) = name.rsplit_once(":2,").unwrap();
            let index = letter.as_bytes()[0] - b'a';
            assert!(file.contains(&format!("{index} kw{i}\n")), "{file} {name}");
            letters.push(letter.to_owned());
        }
        letters.sort();
        letters.dedup();
        assert_eq!(letters.len(), N);
        assert_eq!(file.lines().count(), N);
        assert!(!home.path().join("dovecot-uidlist.lock").exists());
    }

    fn keyworded() -> Flags {
        let mut f = Flags::default();
        f.insert_imap("$Label1");
        f.insert_imap("project-x");
        f
    }

    #[test]
    fn courier_keywords_go_to_an_update_file_and_the_message_stays_in_new() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root).with_readers(Readers::Courier, Readers::Courier);
        let saved = md
            .save(
                "INBOX",
                true,
                &keyworded(),
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();
        assert_eq!(saved.path, root.join("new").join(&saved.base));
        let kw = root.join(courier::KEYWORD_DIR).join(&saved.base);
        assert_eq!(fs::read(kw).unwrap(), b"$Label1\nproject-x\n");
        assert!(!root.join("dovecot-keywords").exists());
        assert_eq!(names_in(&root.join("tmp")), Vec::<String>::new());
    }

    #[test]
    fn both_readers_get_letters_and_update_files_and_subscriptions() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root).with_readers(Readers::Both, Readers::Both);
        let mut flags = keyworded();
        flags.insert_imap("\\Flagged");
        let saved = md
            .save(
                "Reçus",
                true,
                &flags,
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap();
        let dir = root.join(".Re&AOc-us");
        assert_eq!(
            saved.path,
            dir.join("cur").join(format!("{}:2,Fab", saved.base))
        );
        assert_eq!(
            fs::read(dir.join("dovecot-keywords")).unwrap(),
            b"0 $Label1\n1 project-x\n"
        );
        let kws = courier::folder_keywords(&dir).unwrap();
        assert_eq!(kws[&saved.base], ["$Label1", "project-x"]);
        assert_eq!(
            fs::read(root.join("subscriptions")).unwrap(),
            b"V\t2\n\nRe&AOc-us\n"
        );
        assert_eq!(courier::subscribed(&root).unwrap(), ["INBOX.Re&AOc-us"]);
    }

    #[test]
    fn courier_only_subscriptions_leave_dovecots_file_alone_and_always_cur_has_no_new() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = Maildir::new(root.clone(), None, FolderEncoding::Utf8, "h")
            .with_readers(Readers::Dovecot, Readers::Courier)
            .with_always_cur(true);
        let saved = save_body(&md, "Reçus").unwrap();
        let dir = root.join(".Reçus");
        assert_eq!(
            saved.path,
            dir.join("cur").join(format!("{}:2,", saved.base))
        );
        assert!(!root.join("subscriptions").exists());
        assert_eq!(courier::subscribed(&root).unwrap(), ["INBOX.Reçus"]);
    }

    #[test]
    fn a_new_folder_gets_maildirfolder_subdirs_modes_and_a_v2_subscription() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root);
        let saved = save_body(&md, "Lists.rust").unwrap();
        let dir = root.join(".Lists.rust");
        assert!(saved.created_folder);
        assert_eq!(saved.storage_name, "Lists.rust");
        assert_eq!(saved.path, dir.join("new").join(&saved.base));
        assert_eq!(names_in(&dir), ["cur", "maildirfolder", "new", "tmp"]);
        assert_eq!(fs::metadata(dir.join("maildirfolder")).unwrap().len(), 0);
        assert_eq!(mode(&dir.join("maildirfolder")), 0o600);
        for d in [
            &dir,
            &dir.join("tmp"),
            &dir.join("new"),
            &dir.join("cur"),
            &root.join("new"),
        ] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        let subscriptions = root.join("subscriptions");
        assert_eq!(fs::read(&subscriptions).unwrap(), b"V\t2\n\nLists\trust\n");
        assert_eq!(mode(&subscriptions), 0o600);

        let saved = save_body(&md, "Reçus").unwrap();
        assert_eq!(
            saved.path.parent().unwrap().parent().unwrap(),
            root.join(".Re&AOc-us")
        );
        assert_eq!(
            fs::read(&subscriptions).unwrap(),
            b"V\t2\n\nLists\trust\nRe&AOc-us\n"
        );
        assert!(md.folder_exists("Reçus").unwrap());
        assert!(md.folder_exists("INBOX").unwrap());
        assert!(!md.folder_exists("Lists").unwrap());
    }

    #[test]
    fn a_missing_folder_is_not_created_without_create() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("Maildir");
        let md = maildir(&root);
        assert!(!md.folder_exists("INBOX").unwrap());
        let err = md
            .save(
                "Archive",
                false,
                &Flags::default(),
                &content(Body::Bytes(BODY)),
                received(),
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NoSuchFolder(ref f) if f == "Archive"),
            "{err}"
        );
        assert!(!root.exists());
        let err = save_body(&md, "a/b").unwrap_err();
        assert!(matches!(err, StoreError::InvalidFolder { .. }), "{err}");
        assert!(!root.exists());
    }

    #[test]
    fn a_file_body_is_read_positionally_so_it_can_be_saved_twice() {
        use std::io::{Seek, SeekFrom};
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let mut spool = tempfile::tempfile().unwrap();
        spool.write_all(BODY).unwrap();
        spool.write_all(b"trailing bytes beyond len").unwrap();
        spool.seek(SeekFrom::Start(5)).unwrap();
        let body = Body::File {
            file: &spool,
            len: BODY.len() as u64,
        };
        for folder in ["INBOX", "Copies"] {
            let saved = md
                .save(folder, true, &Flags::default(), &content(body), received())
                .unwrap();
            assert_eq!(fs::read(&saved.path).unwrap(), message(), "{folder}");
            assert_eq!(saved.size, message().len() as u64);
        }
        assert_eq!(spool.stream_position().unwrap(), 5);
    }

    #[test]
    fn a_failed_save_leaves_nothing_behind() {
        let home = tempfile::tempdir().unwrap();
        let md = maildir(home.path());
        let mut spool = tempfile::tempfile().unwrap();
        spool.write_all(BODY).unwrap();
        let short = Body::File {
            file: &spool,
            len: BODY.len() as u64 + 10,
        };
        let err = md
            .save(
                "INBOX",
                false,
                &Flags::default(),
                &content(short),
                received(),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Io { op: "write", .. }), "{err}");
        for sub in ["tmp", "new", "cur"] {
            assert!(names_in(&home.path().join(sub)).is_empty(), "{sub}");
        }
    }

    #[test]
    fn full_disk_and_quota_errors_are_no_space() {
        let path = Path::new("/x");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let err = io_err("write", path)(io::Error::from_raw_os_error(errno));
            assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
        }
        let err = io_err("fsync", path)(io::Error::from_raw_os_error(libc::EIO));
        assert!(err.to_string().starts_with("fsync /x: "), "{err}");
    }

    #[test]
    fn concurrent_saves_creating_the_same_folder_all_succeed() {
        const N: usize = 8;
        let home = tempfile::tempdir().unwrap();
        let md = Arc::new(maildir(home.path()));
        let barrier = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let (md, barrier) = (md.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    md.save(
                        "Shared.Box",
                        true,
                        &Flags::default(),
                        &content(Body::Bytes(BODY)),
                        received(),
                    )
                })
            })
            .collect();
        let saved: Vec<Saved> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert_eq!(saved.iter().filter(|s| s.created_folder).count(), 1);
        assert_eq!(names_in(&home.path().join(".Shared.Box/new")).len(), N);
        assert_eq!(
            fs::read(home.path().join("subscriptions")).unwrap(),
            b"V\t2\n\nShared\tBox\n"
        );
    }

    #[test]
    fn as_root_everything_created_belongs_to_the_owner() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root to give files to another uid; the tests run as root"
        );
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("u/Maildir");
        let owner = Owner {
            uid: 65534,
            gid: 65534,
        };
        let md = Maildir::new(root.clone(), Some(owner), FolderEncoding::Utf7, "mx");
        let mut flags = Flags {
            seen: true,
            ..Flags::default()
        };
        assert!(flags.insert_imap("$Work"));
        md.save(
            "INBOX",
            false,
            &flags,
            &content(Body::Bytes(BODY)),
            received(),
        )
        .unwrap();
        md.save(
            "Sub.Folder",
            true,
            &Flags::default(),
            &content(Body::Bytes(BODY)),
            received(),
        )
        .unwrap();
        let mut stack = vec![home.path().join("u")];
        let mut seen = 0;
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                path.display()
            );
            seen += 1;
            if meta.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
        }
        // u, Maildir, its tmp/new/cur, 2 messages, subscriptions,
        // dovecot-keywords, .Sub.Folder with 4 entries.
        assert_eq!(seen, 2 + 3 + 2 + 1 + 1 + 5);
    }
}
