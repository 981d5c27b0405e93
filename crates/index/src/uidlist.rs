//! Dovecot's `dovecot-uidlist` protocol (docs/maildir.md, 'dovecot-uidlist'),
//! as Dovecot 2.x implements it in
//! src/lib-storage/index/maildir/maildir-uidlist.c and
//! src/lib-storage/mailbox-uidvalidity.c: parses the file the way Dovecot
//! reads it, reads it without a lock, and under `dovecot-uidlist.lock` gives
//! delivered messages their UIDs by appending `<uid> :<base>` lines, creating
//! the file (UIDVALIDITY from the Maildir root's `dovecot-uidvalidity`
//! counter) when it is missing.
//!
//! Must never change, reorder or drop a complete line of an existing file,
//! never write to a file that Dovecot would find broken (Dovecot deletes such
//! a file and every message gets a new UID), and never hold the lock longer
//! than one read and one write. The only replacement it makes, by rename,
//! drops an incomplete last line that no reader has ever accepted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailstow_maildir::dotlock::{DotLock, WAIT};
use mailstow_maildir::fsops::{create_file, fsync_path};
use mailstow_maildir::{io_err, Owner, StoreError};

/// How long a delivery should wait for `dovecot-uidlist.lock` (Dovecot holds
/// it while it syncs a folder; its own timeout is about two minutes).
pub const LOCK_WAIT: Duration = WAIT;

/// Files larger than this are refused rather than read: a real uidlist holds
/// about 60 bytes per message.
pub const MAX_FILE_SIZE: u64 = 64 << 20;

const UIDLIST: &str = "dovecot-uidlist";
const LOCK: &str = "dovecot-uidlist.lock";
/// The name Dovecot itself writes a new uidlist under before renaming it;
/// whoever holds the lock owns it.
const TEMP: &str = "dovecot-uidlist.tmp";
/// The UIDVALIDITY counter in the Maildir root, with its marker files
/// `dovecot-uidvalidity.<8 hex>`.
const UIDVALIDITY: &str = "dovecot-uidvalidity";
/// Dovecot's RETRY_COUNT in mailbox-uidvalidity.c.
const UIDVALIDITY_TRIES: usize = 10;

/// A parsed `dovecot-uidlist` (version 3).
#[derive(Clone, Debug)]
pub struct Uidlist {
    pub version: u32,
    pub uidvalidity: u32,
    /// The header's `N`: often stale, Dovecot rewrites the header only when
    /// it rewrites the whole file. See [`Uidlist::next_uid`].
    pub header_next: u32,
    /// The mailbox GUID (`G`, 32 hex digits), when present.
    pub guid: Option<String>,
    /// Strictly ascending by UID.
    pub records: Vec<Record>,
    /// Base (up to ':') to UID, built on the first [`Uidlist::uid_of`]: a
    /// reconcile looks up every file of a folder.
    by_base: std::sync::OnceLock<HashMap<String, u32>>,
}

/// One message line: `<uid> [<ext fields>] :<base>`. Extension fields (S, W,
/// P, O, G...) are parsed and skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    /// The file name as listed (normally without `:2,<flags>`); bytes that are
    /// not UTF-8 are replaced by U+FFFD.
    pub base: String,
}

/// What [`assign`] gave out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub uidvalidity: u32,
    /// One UID per base, in the order of the bases given.
    pub uids: Vec<u32>,
}

/// Equal when the file says the same (the lookup map is a cache).
impl PartialEq for Uidlist {
    fn eq(&self, other: &Uidlist) -> bool {
        (
            self.version,
            self.uidvalidity,
            self.header_next,
            &self.guid,
            &self.records,
        ) == (
            other.version,
            other.uidvalidity,
            other.header_next,
            &other.guid,
            &other.records,
        )
    }
}

impl Eq for Uidlist {}

impl Uidlist {
    /// A list from its parts; `records` must be strictly ascending by UID.
    pub(crate) fn from_records(
        version: u32,
        uidvalidity: u32,
        header_next: u32,
        records: Vec<Record>,
    ) -> Uidlist {
        Uidlist {
            version,
            uidvalidity,
            header_next,
            guid: None,
            records,
            by_base: std::sync::OnceLock::new(),
        }
    }

    /// The UID the next new message gets: max(header N, last record + 1).
    pub fn next_uid(&self) -> u32 {
        let after_last = self.records.last().map_or(1, |r| r.uid.saturating_add(1));
        self.header_next.max(after_last)
    }

    /// The UID listed for `base`, compared up to `:` as Dovecot does; when a
    /// base is listed twice, Dovecot keeps the later line.
    pub fn uid_of(&self, base: &str) -> Option<u32> {
        let map = self.by_base.get_or_init(|| {
            // In file order, so a later line for the same base wins.
            self.records
                .iter()
                .map(|r| (base_key(&r.base).to_owned(), r.uid))
                .collect()
        });
        map.get(base_key(base)).copied()
    }

    /// Parses a whole file as Dovecot 2.x does: an incomplete last line (no
    /// LF: a writer died mid-append) is ignored; anything for which Dovecot
    /// would call the file "Broken" is an error naming the line. Version 1
    /// files (Dovecot 1.0, Courier) are refused.
    pub fn parse(text: &[u8]) -> Result<Uidlist, String> {
        parse_text(text).map(|p| p.list)
    }
}

/// Reads `folder_dir/dovecot-uidlist` without a lock (Dovecot replaces it
/// only by rename, so a read sees one whole version, possibly without the
/// last append). Ok(None) when the file does not exist.
pub fn read(folder_dir: &Path) -> Result<Option<Uidlist>, StoreError> {
    let path = folder_dir.join(UIDLIST);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let text = read_limited(&file, &path)?;
    parse_text(&text)
        .map(|p| Some(p.list))
        .map_err(|m| broken(&path, m))
}

/// Gives each of `bases` (message files already in `folder_dir`'s new/ or
/// cur/, names without `:2,`) its UID, under `dovecot-uidlist.lock`:
/// (re)opens and parses the file only after taking the lock (Dovecot may
/// have replaced it meanwhile), returns the listed UID of each base already
/// there, and appends `<uid> :<base>` for the others with UIDs from
/// max(next UID, `min_next`) upwards, then fdatasyncs and unlocks.
///
/// A missing file is created (0600, chowned to `owner`) with the header
/// `3 V<uidvalidity> N1 G<random guid>`, UIDVALIDITY taken from
/// `maildir_root`'s `dovecot-uidvalidity` counter as Dovecot allocates it,
/// written to a temp name, renamed in, the directory fsynced.
///
/// `owner` is for running as root (like [`mailstow_maildir::Maildir`]): None
/// otherwise. `lock_host` goes into the lock as `<pid>:<host>`: Dovecot on
/// the same host breaks the lock at once if our pid is gone.
///
/// Errors: the lock not taken within `wait` (`Io` with op "lock"); a file
/// Dovecot would find broken (`Io` with op "parse", kind InvalidData; the
/// file is left for Dovecot to rebuild); a base with `/`, `:`, CR, LF or NUL
/// (kind InvalidInput). On any error nothing was appended: the messages stay
/// where they are and Dovecot numbers them itself when it next syncs.
pub fn assign(
    folder_dir: &Path,
    maildir_root: &Path,
    bases: &[&str],
    min_next: u32,
    owner: Option<Owner>,
    lock_host: &str,
    wait: Duration,
) -> Result<Assigned, StoreError> {
    let path = folder_dir.join(UIDLIST);
    check_bases(bases, &path)?;
    // Threads of this process queue here rather than on the dotlock, where
    // each would sleep with backoff and retry (a long tail under load).
    let _turn = stripe(folder_dir)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _lock = DotLock::acquire(folder_dir.join(LOCK), owner, lock_host, wait)?;
    // Opened only now: a descriptor from before the lock may name a file that
    // Dovecot has since replaced, and an append to it would be lost.
    let file = match OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return create(folder_dir, maildir_root, bases, min_next, owner);
        }
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    append(folder_dir, &path, &file, bases, min_next, owner)
}

// ---------------------------------------------------------------------------
// Writing under the lock
// ---------------------------------------------------------------------------

/// What to do about a last line without LF.
enum Tail {
    /// None there.
    Clean,
    /// It reads as a valid next record once terminated (most likely only
    /// its LF was lost): write the LF, so that it counts.
    Terminate,
    /// It would not parse: terminated, it would make Dovecot delete the
    /// file; left alone, the next append would run into it. Replace the
    /// file without it.
    Drop,
}

fn append(
    folder_dir: &Path,
    path: &Path,
    file: &File,
    bases: &[&str],
    min_next: u32,
    owner: Option<Owner>,
) -> Result<Assigned, StoreError> {
    let text = read_limited(file, path)?;
    let Parsed { mut list, complete } = parse_text(&text).map_err(|m| broken(path, m))?;
    let last = list.records.last().map_or(0, |r| r.uid);
    let fragment = &text[complete..];
    let mut first = list.next_uid().max(min_next);
    let tail = if fragment.is_empty() {
        Tail::Clean
    } else {
        match parse_record(line_view(fragment), last) {
            Ok(record) => {
                list.records.push(record);
                first = first.max(list.next_uid());
                Tail::Terminate
            }
            Err(_) => {
                // Never reuse a UID that the dead writer may have announced.
                if let Some(uid) = leading_uid(fragment).filter(|&u| u > last) {
                    first = first.max(uid.saturating_add(1));
                }
                Tail::Drop
            }
        }
    };
    let (uids, lines) = number(&list, bases, first).map_err(|reason| StoreError::Io {
        op: "assign a UID in",
        path: path.to_owned(),
        source: io::Error::other(reason),
    })?;
    match tail {
        Tail::Drop => {
            tracing::warn!(
                path = %path.display(),
                fragment = %show(fragment),
                "dropping an incomplete last line"
            );
            let mut content = text[..complete].to_vec();
            content.extend_from_slice(lines.as_bytes());
            let mode = file.metadata().map_err(io_err("stat", path))?.mode() & 0o7777;
            replace(folder_dir, &content, owner, mode)?;
        }
        Tail::Clean | Tail::Terminate => {
            let mut out = Vec::with_capacity(lines.len() + 1);
            if matches!(tail, Tail::Terminate) {
                out.push(b'\n');
            }
            out.extend_from_slice(lines.as_bytes());
            if !out.is_empty() {
                write_appended(file, path, &out, text.len() as u64)?;
            }
        }
    }
    Ok(Assigned {
        uidvalidity: list.uidvalidity,
        uids,
    })
}

/// Appends `out` (the descriptor is O_APPEND) and fdatasyncs. On a failed
/// write, cuts the file back to `old_len`, so no partial line is left.
fn write_appended(file: &File, path: &Path, out: &[u8], old_len: u64) -> Result<(), StoreError> {
    let mut writer = file;
    if let Err(e) = writer.write_all(out) {
        let _ = file.set_len(old_len);
        return Err(io_err("append to", path)(e));
    }
    file.sync_data().map_err(io_err("fdatasync", path))
}

/// Creates the file for a folder that has none yet.
fn create(
    folder_dir: &Path,
    maildir_root: &Path,
    bases: &[&str],
    min_next: u32,
    owner: Option<Owner>,
) -> Result<Assigned, StoreError> {
    let path = folder_dir.join(UIDLIST);
    let empty = Uidlist {
        version: 3,
        uidvalidity: 0,
        header_next: 1,
        guid: None,
        records: Vec::new(),
        by_base: Default::default(),
    };
    let (uids, lines) =
        number(&empty, bases, min_next.max(1)).map_err(|reason| StoreError::Io {
            op: "assign a UID in",
            path: path.clone(),
            source: io::Error::other(reason),
        })?;
    let uidvalidity = next_uidvalidity(maildir_root, owner)?;
    let guid = random_guid().map_err(io_err("getrandom for", &path))?;
    let content = format!("3 V{uidvalidity} N1 G{guid}\n{lines}");
    replace(folder_dir, content.as_bytes(), owner, 0o600)?;
    Ok(Assigned { uidvalidity, uids })
}

/// Gives each base its UID: the one listed (or given earlier in this same
/// call), else the next from `first` on. Returns the UIDs and the lines to
/// append.
fn number(list: &Uidlist, bases: &[&str], first: u32) -> Result<(Vec<u32>, String), String> {
    // Later lines win, as in Dovecot.
    let mut known: HashMap<&str, u32> = list
        .records
        .iter()
        .map(|r| (base_key(&r.base), r.uid))
        .collect();
    let mut next = first;
    let mut uids = Vec::with_capacity(bases.len());
    let mut lines = String::new();
    for &base in bases {
        let key = base_key(base);
        let uid = match known.get(key) {
            Some(&uid) => uid,
            None => {
                // Dovecot refuses u32::MAX ("UID too high").
                if next == u32::MAX {
                    return Err("no UIDs left in this UIDVALIDITY".to_owned());
                }
                let uid = next;
                next += 1;
                known.insert(key, uid);
                let _ = writeln!(lines, "{uid} :{base}");
                uid
            }
        };
        uids.push(uid);
    }
    Ok((uids, lines))
}

/// Writes `content` as the folder's new uidlist with permission bits
/// `mode`: temp name, fsync, rename, fsync the directory. The caller holds
/// the lock.
fn replace(
    folder_dir: &Path,
    content: &[u8],
    owner: Option<Owner>,
    mode: u32,
) -> Result<(), StoreError> {
    let tmp = folder_dir.join(TEMP);
    let path = folder_dir.join(UIDLIST);
    // A leftover of a writer that died holding the lock (ours now).
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("unlink", &tmp)(e)),
    }
    let written = (|| {
        let file = create_file(&tmp, owner).map_err(io_err("create", &tmp))?;
        if mode != 0o600 {
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(io_err("chmod", &tmp))?;
        }
        (&file).write_all(content).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err("rename into", &path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    fsync_path(folder_dir)
}

/// Every base fit for a line of the UID file at `path` (an InvalidInput
/// error naming the first that is not): shared by Dovecot's and Courier's
/// files, which split lines the same way.
pub(crate) fn check_bases(bases: &[&str], path: &Path) -> Result<(), StoreError> {
    for base in bases {
        check_base(base).map_err(|reason| StoreError::Io {
            op: "assign a UID in",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        })?;
    }
    Ok(())
}

/// Why a base cannot be listed, if it cannot.
fn check_base(base: &str) -> Result<(), String> {
    if base.is_empty() {
        return Err("empty base name".to_owned());
    }
    // '/' makes Dovecot call the file broken, CR/LF/NUL end the line early,
    // ':' starts the flags part that is never listed.
    if let Some(c) = base
        .chars()
        .find(|c| matches!(c, '/' | ':' | '\r' | '\n' | '\0'))
    {
        return Err(format!("base name {base:?} contains {c:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

struct Parsed {
    list: Uidlist,
    /// Length of the complete lines: up to and including the last LF.
    complete: usize,
}

fn parse_text(text: &[u8]) -> Result<Parsed, String> {
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("larger than {MAX_FILE_SIZE} bytes"));
    }
    // Dovecot's line reader returns no last line without LF.
    let Some(last_lf) = memchr::memrchr(b'\n', text) else {
        return Err("line 1: no complete header line (empty file?)".to_owned());
    };
    let mut lines = text[..last_lf].split(|&b| b == b'\n').map(line_view);
    let header = lines.next().unwrap_or_default();
    let header = parse_header(header).map_err(|e| format!("line 1: {e}"))?;
    let mut records = Vec::new();
    let mut prev = 0;
    for (i, line) in lines.enumerate() {
        let record = parse_record(line, prev).map_err(|e| format!("line {}: {e}", i + 2))?;
        prev = record.uid;
        records.push(record);
    }
    Ok(Parsed {
        list: Uidlist {
            version: 3,
            uidvalidity: header.uidvalidity,
            header_next: header.next,
            guid: header.guid,
            records,
            by_base: Default::default(),
        },
        complete: last_lf + 1,
    })
}

/// A line as Dovecot's C code sees it: a CR before the LF is dropped (its
/// istream does that), and a NUL ends the string.
fn line_view(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    }
}

struct Header {
    uidvalidity: u32,
    next: u32,
    guid: Option<String>,
}

/// `<version digit> <key><value> ...`, fields separated by spaces; V, N
/// and G are read, other keys skipped (maildir_uidlist_read_header).
fn parse_header(line: &[u8]) -> Result<Header, String> {
    let (version, rest) = match line {
        [v @ b'0'..=b'9', b' ', rest @ ..] => (v - b'0', rest),
        _ => return Err("corrupted header (invalid version number)".to_owned()),
    };
    match version {
        3 => {}
        1 => {
            return Err("version 1 file (Dovecot 1.0 or Courier) is not supported; \
                 Dovecot rewrites it as version 3 when it next opens the folder"
                .to_owned())
        }
        v => return Err(format!("unsupported version {v}")),
    }
    let mut header = Header {
        uidvalidity: 0,
        next: 0,
        guid: None,
    };
    let mut i = 0;
    while i < rest.len() {
        // The key is whatever byte starts the field, even a space.
        let key = rest[i];
        let start = i + 1;
        let end = memchr::memchr(b' ', &rest[start..]).map_or(rest.len(), |p| start + p);
        let value = &rest[start..end];
        match key {
            b'V' => {
                header.uidvalidity =
                    decimal(value).ok_or_else(|| format!("invalid UIDVALIDITY {}", show(value)))?;
            }
            b'N' => {
                header.next =
                    decimal(value).ok_or_else(|| format!("invalid next UID {}", show(value)))?;
            }
            b'G' => {
                if value.len() != 32 || !value.iter().all(u8::is_ascii_hexdigit) {
                    return Err(format!("invalid mailbox GUID {}", show(value)));
                }
                header.guid = Some(String::from_utf8_lossy(value).into_owned());
            }
            _ => {}
        }
        i = end;
        while rest.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if header.uidvalidity == 0 || header.next == 0 {
        return Err(format!(
            "broken header (uidvalidity = {}, next_uid = {})",
            header.uidvalidity, header.next
        ));
    }
    Ok(header)
}

/// `<uid> [<ext> ...] :<filename>` after a line with UID `prev`
/// (maildir_uidlist_next and maildir_uidlist_read_extended).
fn parse_record(line: &[u8], prev: u32) -> Result<Record, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    // Dovecot accumulates in a uint32_t, wrapping.
    let uid = line[..digits].iter().fold(0u32, |uid, &d| {
        uid.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
    });
    let rest = &line[digits..];
    if uid == 0 || rest.first() != Some(&b' ') {
        return Err(format!("invalid data: {}", show(line)));
    }
    if uid <= prev {
        return Err(format!("UIDs not ordered ({uid} >= {prev})"));
    }
    if uid == u32::MAX {
        return Err(format!("UID too high ({uid})"));
    }
    let mut i = 0;
    while rest.get(i) == Some(&b' ') {
        i += 1;
    }
    // Extension fields: `:` counts only at the start of a field. A key that
    // is not A-Z makes Dovecot log and drop the field, not the file.
    while i < rest.len() && rest[i] != b':' {
        while i < rest.len() && rest[i] != b' ' {
            i += 1;
        }
        while rest.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if rest.get(i) == Some(&b':') {
        i += 1;
    }
    let name = &rest[i..];
    if name.is_empty() {
        return Err(format!("invalid extended fields: {}", show(line)));
    }
    if name.contains(&b'/') {
        return Err(format!("broken filename: {}", show(name)));
    }
    Ok(Record {
        uid,
        base: String::from_utf8_lossy(name).into_owned(),
    })
}

/// The UID at the start of an incomplete line, if its digits make one.
fn leading_uid(fragment: &[u8]) -> Option<u32> {
    let digits = fragment.iter().take_while(|b| b.is_ascii_digit()).count();
    decimal(&fragment[..digits]).filter(|&u| u != 0)
}

/// Dovecot's str_to_uint: ASCII digits only, at least one, no overflow.
fn decimal(v: &[u8]) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u32, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Dovecot's str_to_uint32_hex: hex digits only, at least one, no overflow.
fn hex_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u32, |n, &d| {
        let digit = char::from(d).to_digit(16)?;
        n.checked_mul(16)?.checked_add(digit)
    })
}

/// A base as Dovecot compares it: up to `:`.
fn base_key(base: &str) -> &str {
    base.split(':').next().unwrap_or(base)
}

/// Some bytes for an error message: lossy, at most 80 characters.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

fn read_limited(file: &File, path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut text = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(io_err("read", path))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(broken(path, format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    Ok(text)
}

fn broken(path: &Path, reason: String) -> StoreError {
    StoreError::Io {
        op: "parse",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, reason),
    }
}

/// One of a fixed set of mutexes, chosen by the folder's path: appends to
/// one folder from this process take turns (bounded memory, whatever the
/// number of folders; two folders may share a stripe).
fn stripe(folder_dir: &Path) -> &'static std::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static STRIPES: [std::sync::Mutex<()>; 64] = [const { std::sync::Mutex::new(()) }; 64];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    folder_dir.hash(&mut h);
    &STRIPES[(h.finish() % 64) as usize]
}

/// 32 lowercase hex digits from the kernel's random source.
fn random_guid() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable
        // part of `bytes`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

// ---------------------------------------------------------------------------
// The UIDVALIDITY counter (mailbox-uidvalidity.c)
// ---------------------------------------------------------------------------

/// A fresh UIDVALIDITY for a new folder of the Maildir at `root`, allocated
/// as Dovecot does, without a lock: `dovecot-uidvalidity` holds the last
/// value in hex (a hint); the marker file `dovecot-uidvalidity.<hex>` is the
/// truth, and renaming it from value v to v+1 is what allocates v+1 (of two
/// processes that read the same v, one rename fails with ENOENT and that one
/// tries the next value). Without a usable hint, the markers are rescanned;
/// without markers, one is created near the current Unix time.
///
/// Unlike Dovecot, errors other than "someone else took that value" are
/// returned instead of falling back to an unrecorded time-based value.
fn next_uidvalidity(root: &Path, owner: Option<Owner>) -> Result<u32, StoreError> {
    let counter = root.join(UIDVALIDITY);
    let value = match from_counter(&counter)? {
        Some(v) => v,
        None => rescan(root, &counter, owner)?,
    };
    // A lost rename would hand the value out again after a crash, to a
    // second folder.
    fsync_path(root)?;
    Ok(value)
}

/// Dovecot's fast path: read the hint, rename its marker to the next value.
/// None means "rescan".
fn from_counter(counter: &Path) -> Result<Option<u32>, StoreError> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(counter)
    {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %counter.display(), error = %e, "cannot open the UIDVALIDITY counter; rescanning");
            }
            return Ok(None);
        }
    };
    // Eight hex digits; shorter, unreadable or zero means rescan.
    let mut hint = [0u8; 8];
    if (&file).read_exact(&mut hint).is_err() {
        return Ok(None);
    }
    let Some(mut value) = hex_u32(&hint).filter(|&v| v != 0) else {
        return Ok(None);
    };
    if !bump_marker(counter, &mut value)? {
        return Ok(None);
    }
    write_hint(&file, counter, value);
    Ok(Some(value))
}

/// Without a usable hint: the highest marker is the last value; without
/// markers, start from the current time.
fn rescan(root: &Path, counter: &Path, owner: Option<Owner>) -> Result<u32, StoreError> {
    let prefix = format!("{UIDVALIDITY}.");
    let (mut min, mut max) = (u32::MAX, 0u32);
    for entry in fs::read_dir(root).map_err(io_err("read directory", root))? {
        let entry = entry.map_err(io_err("read directory", root))?;
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if let Some(v) = hex_u32(hex.as_bytes()) {
            min = min.min(v);
            max = max.max(v);
        }
    }
    let value = if max == 0 {
        create_marker(counter, owner)?
    } else {
        if min != max {
            // Duplicates (a race or a crash): the oldest goes, like Dovecot.
            let _ = fs::remove_file(marker(counter, min));
        }
        let mut value = max;
        if !bump_marker(counter, &mut value)? {
            return Err(StoreError::Io {
                op: "rename",
                path: marker(counter, max),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "UIDVALIDITY marker taken by other processes every time",
                ),
            });
        }
        value
    };
    match open_hint(counter, owner) {
        Ok(file) => write_hint(&file, counter, value),
        Err(e) => {
            tracing::warn!(path = %counter.display(), error = %e, "cannot write the UIDVALIDITY counter; its marker file holds the value");
        }
    }
    Ok(value)
}

/// Renames the marker of `*value` to the next value, moving on to the next
/// one when the marker is gone (another process took it); leaves `*value`
/// at the value allocated. False when no marker was found in ten tries.
fn bump_marker(counter: &Path, value: &mut u32) -> Result<bool, StoreError> {
    for _ in 0..UIDVALIDITY_TRIES {
        let from = marker(counter, *value);
        *value = value.wrapping_add(1).max(1);
        let to = marker(counter, *value);
        match fs::rename(&from, &to) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("rename", &from)(e)),
        }
    }
    Ok(false)
}

/// The first marker of a Maildir: empty, mode 0444, named after a value
/// near the current time.
fn create_marker(counter: &Path, owner: Option<Owner>) -> Result<u32, StoreError> {
    let mut last_path = marker(counter, 0);
    for _ in 0..UIDVALIDITY_TRIES {
        let value = time_based();
        let path = marker(counter, value);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => {
                file.set_permissions(Permissions::from_mode(0o444))
                    .map_err(io_err("chmod", &path))?;
                if let Some(o) = owner {
                    std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid))
                        .map_err(io_err("chown", &path))?;
                }
                return Ok(value);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_path = path,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
    Err(io_err("create", &last_path)(io::Error::from(
        io::ErrorKind::AlreadyExists,
    )))
}

/// `dovecot-uidvalidity`, created 0600 for `owner` when missing.
fn open_hint(counter: &Path, owner: Option<Owner>) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(counter)?;
    if let Some(o) = owner {
        std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid))?;
    }
    Ok(file)
}

/// Overwrites the hint with `%08x`. A failure is only logged, as Dovecot
/// does: the marker already holds the value.
fn write_hint(file: &File, counter: &Path, value: u32) {
    if let Err(e) = file.write_all_at(format!("{value:08x}").as_bytes(), 0) {
        tracing::warn!(path = %counter.display(), error = %e, "cannot write the UIDVALIDITY counter; its marker file holds the value");
    }
}

fn marker(counter: &Path, value: u32) -> PathBuf {
    let mut name = counter.as_os_str().to_owned();
    name.push(format!(".{value:08x}"));
    PathBuf::from(name)
}

/// Dovecot's fallback: the current Unix time, or one more than the last
/// value this process took if that is not below it.
fn time_based() -> u32 {
    /// Shared by all delivery threads, so that two of them starting two
    /// Maildirs in the same second do not both try the same value first.
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let value = if last < now {
            now
        } else {
            last.wrapping_add(1)
        }
        .max(1);
        match LAST.compare_exchange_weak(last, value, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return value,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOST: &str = "testhost";
    const GUID: &str = "a94d83275fea0a6b4633000083ecc375";

    /// The file shown in docs/maildir.md, 'dovecot-uidlist' (the header N is
    /// stale).
    const OBSERVED: &str = "3 V1795877473 N1 Ga94d83275fea0a6b4633000083ecc375\n\
        1 :1795877462.M255352P12901Q1.vm,S=236,W=246\n\
        2 :1795877462.M257310P12901Q2.vm,S=239,W=249\n\
        3 :1795877462.M258044P12901Q3.vm,S=236,W=246\n\
        4 :1795877502.M417618P14108Q1.vm,S=242,W=252\n";

    fn parse(text: &str) -> Result<Uidlist, String> {
        Uidlist::parse(text.as_bytes())
    }

    fn assign_in(dir: &Path, root: &Path, bases: &[&str], min_next: u32) -> Assigned {
        assign(dir, root, bases, min_next, None, HOST, Duration::ZERO).unwrap()
    }

    fn uidlist_text(dir: &Path) -> String {
        fs::read_to_string(dir.join(UIDLIST)).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A Maildir root with a uidlist written by "Dovecot".
    fn folder_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(UIDLIST), text).unwrap();
        dir
    }

    #[test]
    fn the_observed_file_parses_with_next_uid_after_the_last_record() {
        let list = parse(OBSERVED).unwrap();
        assert_eq!(list.version, 3);
        assert_eq!(list.uidvalidity, 1795877473);
        assert_eq!(list.header_next, 1);
        assert_eq!(list.guid.as_deref(), Some(GUID));
        let uids: Vec<u32> = list.records.iter().map(|r| r.uid).collect();
        assert_eq!(uids, [1, 2, 3, 4]);
        assert_eq!(list.next_uid(), 5);
        assert_eq!(
            list.uid_of("1795877462.M257310P12901Q2.vm,S=239,W=249"),
            Some(2)
        );
        // Compared up to ':' like Dovecot: the flags part does not matter.
        assert_eq!(
            list.uid_of("1795877462.M257310P12901Q2.vm,S=239,W=249:2,S"),
            Some(2)
        );
        assert_eq!(list.uid_of("1795877462.M257310P12901Q2.vm"), None);
    }

    #[test]
    fn a_header_next_above_the_records_wins_and_an_empty_list_starts_there() {
        let err = parse("3 V7 N10 Gx0\n1 :a\n3 :b\n").unwrap_err();
        assert!(err.contains("GUID"), "{err}");
        let list = parse("3 V7 N10\n1 :a\n3 :b\n").unwrap();
        assert_eq!(list.guid, None);
        assert_eq!(list.next_uid(), 10);
        let list = parse("3 V7 N12 P%08Xu%08Xv X\n").unwrap();
        assert!(list.records.is_empty());
        assert_eq!(list.next_uid(), 12);
    }

    #[test]
    fn extension_fields_are_skipped_and_the_name_is_the_rest_of_the_line() {
        let list = parse(
            "3 V1 N1\n\
             5 S236 W246 P000000056b0aea61 O3 Gfoo :a,S=1\n\
             6 Sx:y :name with spaces\n\
             7   :b\n\
             8 x1 :c\n\
             9 :d\r\n\
             10 :e\0ignored\n",
        )
        .unwrap();
        let got: Vec<(u32, &str)> = list
            .records
            .iter()
            .map(|r| (r.uid, r.base.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, "a,S=1"),
                (6, "name with spaces"),
                (7, "b"),
                // A key that is not A-Z: Dovecot drops the field, not the file.
                (8, "c"),
                // Dovecot's line reader drops a CR before LF; a NUL ends its C string.
                (9, "d"),
                (10, "e"),
            ]
        );
        assert_eq!(list.next_uid(), 11);
    }

    #[test]
    fn uids_out_of_order_make_the_file_broken_naming_the_line() {
        for (text, want) in [
            (
                "3 V1 N1\n1 :a\n2 :b\n1 :c\n",
                "line 4: UIDs not ordered (1 >= 2)",
            ),
            ("3 V1 N1\n1 :a\n1 :c\n", "line 3: UIDs not ordered (1 >= 1)"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_base_listed_twice_keeps_the_later_uid() {
        let list = parse("3 V1 N1\n1 :a\n2 :b\n3 :a\n").unwrap();
        assert_eq!(list.uid_of("a"), Some(3));
    }

    #[test]
    fn garbage_and_broken_headers_and_records_are_refused() {
        for text in [
            "",
            "\n",
            "3 V1 N1",
            "hello\n",
            "3\n",
            "3V1 N1\n",
            "3 \n",
            "3 V1\n",
            "3 N1\n",
            "3 V0 N1\n",
            "3 Vabc N1\n",
            "3 V+1 N1\n",
            "3 V4294967296 N1\n",
            "3  V1 N1\n",
            "3 V1 N1 Gzz\n",
            "2 V1 N1\n",
            "33 V1 N1\n",
            "3 V1 N1\n\n",
            "3 V1 N1\n 1 :a\n",
            "3 V1 N1\n1:a\n",
            "3 V1 N1\n1 :\n",
            "3 V1 N1\n1 S5\n",
            "3 V1 N1\n1 S5 :\n",
            "3 V1 N1\n0 :a\n",
            "3 V1 N1\n4294967295 :a\n",
            "3 V1 N1\n4294967296 :a\n",
            "3 V1 N1\n1 :a/b\n",
            "3 V1 N1\n1 :a\n\0\n",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn version_1_files_are_refused_with_a_clear_error() {
        let err = parse("1 1795877473 5\n1 a\n").unwrap_err();
        assert!(err.contains("version 1"), "{err}");
    }

    #[test]
    fn an_incomplete_last_line_is_ignored_like_dovecot_does() {
        let list = parse("3 V1 N1\n1 :a\n2 :b").unwrap();
        assert_eq!(list.records.len(), 1);
        assert_eq!(list.next_uid(), 2);
        // Even one that would be broken.
        assert_eq!(parse("3 V1 N1\n1 :a\n1 :").unwrap().records.len(), 1);
    }

    #[test]
    fn files_above_the_size_limit_are_refused() {
        let mut text = b"3 V1 N1\n".to_vec();
        text.resize(MAX_FILE_SIZE as usize + 1, b'\n');
        assert!(Uidlist::parse(&text).unwrap_err().contains("larger"));
    }

    #[test]
    fn read_returns_none_without_a_file_and_the_list_with_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        fs::write(dir.path().join(UIDLIST), OBSERVED).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().next_uid(), 5);
        fs::write(dir.path().join(UIDLIST), "3 V1 N1\n2 :a\n1 :b\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn assign_creates_the_file_with_a_counter_uidvalidity_and_appends_after() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let first = assign_in(root, root, &["a", "b"], 0);
        assert_eq!(first.uids, [1, 2]);
        let uv = first.uidvalidity;
        assert!(uv >= before && uv <= before + 60, "{uv} vs {before}");

        let text = uidlist_text(root);
        let (header, records) = text.split_once('\n').unwrap();
        let guid = header
            .strip_prefix(&format!("3 V{uv} N1 G"))
            .unwrap_or_else(|| panic!("header {header:?}"));
        assert!(guid.len() == 32 && guid.bytes().all(|b| b"0123456789abcdef".contains(&b)));
        assert_eq!(records, "1 :a\n2 :b\n");
        let meta = fs::metadata(root.join(UIDLIST)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(
            fs::read_to_string(root.join(UIDVALIDITY)).unwrap(),
            format!("{uv:08x}")
        );
        assert_eq!(
            names(root),
            [
                UIDLIST.to_owned(),
                UIDVALIDITY.to_owned(),
                format!("{UIDVALIDITY}.{uv:08x}")
            ]
        );

        // Listed bases keep their UID; new ones are appended in order.
        let second = assign_in(root, root, &["c", "a", "d", "c"], 0);
        assert_eq!(second.uidvalidity, uv);
        assert_eq!(second.uids, [3, 1, 4, 3]);
        assert_eq!(uidlist_text(root), format!("{text}3 :c\n4 :d\n"));

        // Nothing new: nothing written.
        let third = assign_in(root, root, &["b"], 0);
        assert_eq!(third.uids, [2]);
        assert_eq!(uidlist_text(root), format!("{text}3 :c\n4 :d\n"));
        assert!(!root.join(LOCK).exists());
        assert!(!root.join(TEMP).exists());
    }

    #[test]
    fn min_next_leaves_a_gap_and_later_uids_continue_after_it() {
        let dir = folder_with(OBSERVED);
        let d = dir.path();
        assert_eq!(assign_in(d, d, &["x"], 10).uids, [10]);
        assert_eq!(assign_in(d, d, &["y"], 0).uids, [11]);
        assert_eq!(assign_in(d, d, &["z"], 3).uids, [12]);
        let text = uidlist_text(d);
        assert!(text.starts_with(OBSERVED));
        assert!(
            text.ends_with("4 :1795877502.M417618P14108Q1.vm,S=242,W=252\n10 :x\n11 :y\n12 :z\n")
        );
        assert_eq!(Uidlist::parse(text.as_bytes()).unwrap().next_uid(), 13);
    }

    #[test]
    fn uidvalidity_increments_across_folders_and_survives_a_lost_counter() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let other = root.join(".Other");
        let third = root.join(".Third");
        let fourth = root.join(".Fourth");
        for d in [&other, &third, &fourth] {
            fs::create_dir(d).unwrap();
        }
        let uv1 = assign_in(root, root, &[], 0).uidvalidity;
        let uv2 = assign_in(&other, root, &["a"], 0).uidvalidity;
        assert_eq!(uv2, uv1 + 1);
        assert_eq!(
            fs::read_to_string(root.join(UIDVALIDITY)).unwrap(),
            format!("{uv2:08x}")
        );
        assert!(root.join(format!("{UIDVALIDITY}.{uv2:08x}")).exists());
        assert!(!root.join(format!("{UIDVALIDITY}.{uv1:08x}")).exists());

        // Counter gone: the markers are rescanned.
        fs::remove_file(root.join(UIDVALIDITY)).unwrap();
        let uv3 = assign_in(&third, root, &[], 0).uidvalidity;
        assert_eq!(uv3, uv2 + 1);
        assert_eq!(
            fs::read_to_string(root.join(UIDVALIDITY)).unwrap(),
            format!("{uv3:08x}")
        );

        // Counter garbage, and a duplicate older marker: the highest marker wins
        // and the older one goes.
        fs::write(root.join(UIDVALIDITY), "zz").unwrap();
        fs::write(root.join(format!("{UIDVALIDITY}.{:08x}", uv1)), "").unwrap();
        let uv4 = assign_in(&fourth, root, &[], 0).uidvalidity;
        assert_eq!(uv4, uv3 + 1);
        let markers: Vec<String> = names(root)
            .into_iter()
            .filter(|n| n.starts_with(&format!("{UIDVALIDITY}.")))
            .collect();
        assert_eq!(markers, [format!("{UIDVALIDITY}.{uv4:08x}")]);
    }

    #[test]
    fn a_counter_ahead_of_its_marker_moves_to_the_next_free_value() {
        // Another process took the value the counter names: its marker moved on.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join(UIDVALIDITY), "00000100").unwrap();
        fs::write(root.join(format!("{UIDVALIDITY}.00000102")), "").unwrap();
        assert_eq!(assign_in(root, root, &[], 0).uidvalidity, 0x103);
    }

    #[test]
    fn a_valid_incomplete_last_line_is_terminated_and_counts() {
        let dir = folder_with("3 V5 N1\n1 :a\n2 :b");
        let d = dir.path();
        let got = assign_in(d, d, &["b", "c"], 0);
        assert_eq!(got.uids, [2, 3]);
        assert_eq!(uidlist_text(d), "3 V5 N1\n1 :a\n2 :b\n3 :c\n");
    }

    #[test]
    fn a_broken_incomplete_last_line_is_dropped_and_its_uid_not_reused() {
        let dir = folder_with("3 V5 N1\n1 :a\n7 S");
        let d = dir.path();
        fs::set_permissions(d.join(UIDLIST), Permissions::from_mode(0o640)).unwrap();
        let got = assign_in(d, d, &["c"], 0);
        assert_eq!(got.uids, [8]);
        assert_eq!(uidlist_text(d), "3 V5 N1\n1 :a\n8 :c\n");
        let mode = fs::metadata(d.join(UIDLIST)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert!(!d.join(TEMP).exists());
    }

    #[test]
    fn a_broken_file_is_reported_and_left_untouched() {
        let text = "3 V5 N1\n2 :a\n1 :b\n";
        let dir = folder_with(text);
        let d = dir.path();
        let err = assign(d, d, &["c"], 0, None, HOST, Duration::ZERO).unwrap_err();
        match &err {
            StoreError::Io { op, source, .. } => {
                assert_eq!(*op, "parse");
                assert_eq!(source.kind(), io::ErrorKind::InvalidData);
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("line 3"), "{err}");
        assert_eq!(uidlist_text(d), text);
        assert!(!d.join(LOCK).exists());
    }

    #[test]
    fn bad_base_names_are_refused_before_locking() {
        let dir = folder_with(OBSERVED);
        let d = dir.path();
        for base in ["", "a/b", "a:2,S", "a\nb", "a\rb", "a\0b"] {
            let err = assign(d, d, &["ok", base], 0, None, HOST, Duration::ZERO).unwrap_err();
            assert!(
                matches!(&err, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput),
                "{base:?}: {err}"
            );
        }
        assert_eq!(uidlist_text(d), OBSERVED);
    }

    #[test]
    fn a_held_lock_times_out_without_writing() {
        let dir = folder_with(OBSERVED);
        let d = dir.path();
        let holder = format!("{}:{HOST}", std::process::id());
        fs::write(d.join(LOCK), &holder).unwrap();
        let err = assign(d, d, &["x"], 0, None, HOST, Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, StoreError::Io { op: "lock", .. }), "{err}");
        assert_eq!(uidlist_text(d), OBSERVED);
        assert_eq!(fs::read_to_string(d.join(LOCK)).unwrap(), holder);
    }

    #[test]
    fn a_missing_folder_spends_no_uidvalidity() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(assign(
            &root.join(".Gone"),
            root,
            &["a"],
            0,
            None,
            HOST,
            Duration::ZERO
        )
        .is_err());
        assert_eq!(names(root), Vec::<String>::new());
    }

    #[test]
    fn uids_run_out_with_an_error_not_a_wrap() {
        let dir = folder_with("3 V5 N4294967294\n");
        let d = dir.path();
        assert_eq!(assign_in(d, d, &["a"], 0).uids, [4294967294]);
        assert!(assign(d, d, &["b"], 0, None, HOST, Duration::ZERO).is_err());
    }

    /// A line alphabet that reaches every branch of the parser.
    fn uidlist_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"3 V1 N1 G".to_vec()),
            Just(b"\n".to_vec()),
            Just(b" :".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"/".to_vec()),
            Just(b"4294967295".to_vec()),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'1'),
                    Just(b'9'),
                    Just(b' '),
                    Just(b'S'),
                    Just(b'a'),
                    Just(b':')
                ],
                1..6
            ),
        ];
        proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(text in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Uidlist::parse(&text);
            let mut with_header = b"3 V1 N1\n".to_vec();
            with_header.extend_from_slice(&text);
            let _ = Uidlist::parse(&with_header);
        }

        #[test]
        fn parse_never_panics_on_uidlist_like_bytes(text in uidlist_like()) {
            if let Ok(list) = Uidlist::parse(&text) {
                let next = list.next_uid();
                prop_assert!(list.records.iter().all(|r| r.uid < next));
            }
        }

        #[test]
        fn what_assign_would_write_parses_back(gaps in proptest::collection::vec(1u32..1000, 0..20)) {
            let bases: Vec<String> = (0..gaps.len()).map(|i| format!("1700000000.M{i}P1Q1.host,S=1,W=1")).collect();
            let mut text = format!("3 V9 N1 G{GUID}\n");
            let mut uid = 0;
            for (gap, base) in gaps.iter().zip(&bases) {
                uid += gap;
                text.push_str(&format!("{uid} :{base}\n"));
            }
            let list = Uidlist::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(list.records.len(), bases.len());
            prop_assert_eq!(list.next_uid(), uid + 1);
            for base in &bases {
                prop_assert!(list.uid_of(base).is_some());
            }
        }
    }
}
