//! Reads one Maildir folder as it is on disk, for the index: its files in
//! new/ and cur/ by base name with their info (flags and keyword letters),
//! and a message's sizes, INTERNALDATE and header fields. Must not write
//! anything, and must bound what it reads from any one file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mail_parser::{Address, HeaderValue, MessageParser};

/// Header bytes read from a file; fields past this are not indexed.
pub const HEAD_MAX: usize = 64 * 1024;
/// Longest text kept per indexed header field (in bytes, cut at a char).
const FIELD_MAX: usize = 2048;

/// System flags as index bits, with their Maildir letters and IMAP names.
pub const SEEN: i64 = 1;
pub const ANSWERED: i64 = 2;
pub const FLAGGED: i64 = 4;
pub const DELETED: i64 = 8;
pub const DRAFT: i64 = 16;
pub const FLAGS: &[(i64, char, &str)] = &[
    (SEEN, 'S', "\\Seen"),
    (ANSWERED, 'R', "\\Answered"),
    (FLAGGED, 'F', "\\Flagged"),
    (DELETED, 'T', "\\Deleted"),
    (DRAFT, 'D', "\\Draft"),
];

/// One message file as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub in_cur: bool,
    /// The name after the first ':' ("2,FS"), "" when there is none.
    pub info: String,
}

impl Entry {
    /// The file's name inside new/ or cur/.
    pub fn file_name(&self, base: &str) -> String {
        if self.info.is_empty() {
            base.to_owned()
        } else {
            format!("{base}:{}", self.info)
        }
    }

    pub fn path(&self, folder_dir: &Path, base: &str) -> std::path::PathBuf {
        folder_dir
            .join(if self.in_cur { "cur" } else { "new" })
            .join(self.file_name(base))
    }
}

/// The system flag bits and keyword letters (a..z, as indexes) of an info.
pub fn parse_info(info: &str) -> (i64, Vec<usize>) {
    let Some(letters) = info.strip_prefix("2,") else {
        return (0, Vec::new());
    };
    let mut bits = 0;
    let mut keywords = Vec::new();
    for c in letters.chars() {
        if let Some((bit, _, _)) = FLAGS.iter().find(|(_, l, _)| *l == c) {
            bits |= bit;
        } else if c.is_ascii_lowercase() {
            let i = (c as u8 - b'a') as usize;
            if !keywords.contains(&i) {
                keywords.push(i);
            }
        }
    }
    keywords.sort_unstable();
    (bits, keywords)
}

/// Splits a file name into base and info at the first ':'.
pub fn split_name(name: &str) -> (&str, &str) {
    match name.split_once(':') {
        Some((base, info)) => (base, info),
        None => (name, ""),
    }
}

/// The files of a folder: new/ is read before cur/, so a file moved from
/// one to the other meanwhile is seen at least once; a base in both counts
/// as in cur/. Dot files and non-UTF-8 names are skipped (Dovecot skips
/// dot files too). A missing new/ or cur/ is empty.
pub fn list(folder_dir: &Path) -> io::Result<HashMap<String, Entry>> {
    let mut files = HashMap::new();
    for (sub, in_cur) in [("new", false), ("cur", true)] {
        let dir = folder_dir.join(sub);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let (base, info) = split_name(&name);
            let info = if in_cur {
                info.to_owned()
            } else {
                String::new()
            };
            files.insert(base.to_owned(), Entry { in_cur, info });
        }
    }
    Ok(files)
}

/// The modification times (ns) of new/ and cur/; None when the folder is
/// gone.
pub fn dir_mtimes(folder_dir: &Path) -> io::Result<Option<(i64, i64)>> {
    let mut out = [0i64; 2];
    for (i, sub) in ["new", "cur"].iter().enumerate() {
        match fs::metadata(folder_dir.join(sub)) {
            Ok(m) => out[i] = m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some((out[0], out[1])))
}

/// What the index keeps of a message's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// S: bytes in the file.
    pub size: i64,
    /// W: RFC822.SIZE (CRLF line ends).
    pub vsize: i64,
    /// The file's mtime in Unix seconds (IMAP INTERNALDATE).
    pub internal_date: i64,
    pub headers: Headers,
}

/// Indexed header fields, as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The Date: header in Unix seconds.
    pub date: Option<i64>,
}

/// Reads a message file: its size, mtime, W (from the name's `,W=`, else
/// counted) and header fields.
pub fn read_message(path: &Path, base: &str) -> io::Result<Meta> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let size = meta.len();
    // Read up to the end of the header block (most are a few KiB).
    let mut head = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    while head.len() < HEAD_MAX {
        let want = chunk.len().min(HEAD_MAX - head.len());
        let n = file.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if header_end_from(&head, from).is_some() {
            break;
        }
    }
    let vsize = match name_field(base, "W") {
        Some(w) => w,
        None => {
            let mut bare = mailstow_maildir::count_bare_lf(false, &head);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                let (more, cr) = mailstow_maildir::count_bare_lf(bare.1, &buf[..n]);
                bare = (bare.0 + more, cr);
            }
            size + bare.0
        }
    };
    Ok(Meta {
        size: i64::try_from(size).unwrap_or(i64::MAX),
        vsize: i64::try_from(vsize).unwrap_or(i64::MAX),
        internal_date: meta.mtime(),
        headers: headers(&head),
    })
}

/// A `,K=<number>` field of a base name (S or W).
pub fn name_field(base: &str, key: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The indexed fields of a header block (anything after it is ignored).
pub fn headers(raw: &[u8]) -> Headers {
    let end = header_end(raw);
    let Some(msg) = MessageParser::new().parse_headers(&raw[..end]) else {
        return Headers::default();
    };
    Headers {
        message_id: msg.message_id().map(cut),
        in_reply_to: text_list(msg.in_reply_to()),
        references: text_list(msg.references()),
        from: msg.from().map(addresses),
        to: msg.to().map(addresses),
        subject: msg.subject().map(cut),
        date: msg.date().map(|d| d.to_timestamp()),
    }
}

/// Where the header block ends (after its blank line), or the whole input.
pub fn header_end(raw: &[u8]) -> usize {
    header_end_from(raw, 0).unwrap_or(raw.len())
}

/// The end of the header block, searching from byte `from` on.
fn header_end_from(raw: &[u8], from: usize) -> Option<usize> {
    let rest = raw.get(from..)?;
    let crlf = memchr::memmem::find(rest, b"\r\n\r\n").map(|i| from + i + 4);
    let lf = memchr::memmem::find(rest, b"\n\n").map(|i| from + i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn text_list(v: &HeaderValue<'_>) -> Option<String> {
    let joined = match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(" "),
        _ => return None,
    };
    (!joined.is_empty()).then(|| cut(&joined))
}

/// "Name <addr>, addr2" for the index and its full-text search.
fn addresses(a: &Address<'_>) -> String {
    let list: Vec<String> = a
        .iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.to_owned(),
            (Some(n), None) => n.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    cut(&list.join(", "))
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(FIELD_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Dovecot's order for new files (maildir_filename_sort_cmp): by the
/// seconds and microseconds of the name, then by name.
pub fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(name: &str) -> (u64, u64) {
        let secs = name
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        let usecs = name
            .split('.')
            .nth(1)
            .and_then(|p| p.strip_prefix('M'))
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        (secs, usecs)
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_letters_become_flag_bits_and_keyword_indexes() {
        assert_eq!(parse_info("2,FSb a"), (FLAGGED | SEEN, vec![0, 1]));
        assert_eq!(parse_info("2,DPRT"), (DRAFT | ANSWERED | DELETED, vec![]));
        assert_eq!(parse_info("1,xyz"), (0, vec![]));
        assert_eq!(parse_info(""), (0, vec![]));
    }

    #[test]
    fn names_split_at_the_first_colon() {
        assert_eq!(split_name("1.M2P3.h,S=5:2,S"), ("1.M2P3.h,S=5", "2,S"));
        assert_eq!(split_name("1.M2P3.h"), ("1.M2P3.h", ""));
        assert_eq!(name_field("1.M2P3.h,S=5,W=7", "W"), Some(7));
        assert_eq!(name_field("1.M2P3.h,S=5", "W"), None);
    }

    #[test]
    fn header_fields_are_extracted_and_bounded() {
        let long = "x".repeat(5000);
        let raw = format!(
            "From: Alice <alice@example.org>\r\nTo: bob@example.net, Carol <c@example.com>\r\n\
             Subject: {long}\r\nMessage-ID: <id1@example.org>\r\nIn-Reply-To: <p@x>\r\n\
             References: <a@x> <p@x>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nFrom: not a header\r\n"
        );
        let h = headers(raw.as_bytes());
        assert_eq!(h.from.as_deref(), Some("Alice <alice@example.org>"));
        assert_eq!(
            h.to.as_deref(),
            Some("bob@example.net, Carol <c@example.com>")
        );
        assert_eq!(h.subject.as_ref().map(String::len), Some(FIELD_MAX));
        assert_eq!(h.message_id.as_deref(), Some("id1@example.org"));
        assert_eq!(h.in_reply_to.as_deref(), Some("p@x"));
        assert_eq!(h.references.as_deref(), Some("a@x p@x"));
        assert_eq!(h.date, Some(1_795_860_000));
    }

    #[test]
    fn files_are_listed_by_base_with_cur_winning() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("new/1.M1P1.h"), "a").unwrap();
        fs::write(dir.path().join("new/2.M1P1.h"), "a").unwrap();
        fs::write(dir.path().join("cur/2.M1P1.h:2,S"), "a").unwrap();
        fs::write(dir.path().join("cur/.hidden"), "a").unwrap();
        fs::write(dir.path().join("tmp/3.M1P1.h"), "a").unwrap();
        let l = list(dir.path()).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            l["1.M1P1.h"],
            Entry {
                in_cur: false,
                info: String::new()
            }
        );
        assert_eq!(
            l["2.M1P1.h"],
            Entry {
                in_cur: true,
                info: "2,S".into()
            }
        );
    }

    #[test]
    fn vsize_is_counted_when_the_name_lacks_w() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        fs::write(&p, "Subject: a\n\nb\r\nc\n").unwrap();
        let m = read_message(&p, "1.M1P1.h,S=17").unwrap();
        assert_eq!((m.size, m.vsize), (17, 20));
        let m = read_message(&p, "1.M1P1.h,S=17,W=99").unwrap();
        assert_eq!(m.vsize, 99);
    }

    #[test]
    fn long_header_blocks_are_read_past_the_first_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        let mut text = "X-Pad: ".to_owned() + &"y".repeat(70) + "\r\n";
        text = text.repeat(200);
        text.push_str("Subject: late\r\n\r\nSubject: body\r\n");
        text.push_str(&"z".repeat(100_000));
        fs::write(&p, &text).unwrap();
        let m = read_message(&p, "1.M1P1.h").unwrap();
        assert_eq!(m.headers.subject.as_deref(), Some("late"));
        assert_eq!(m.size, text.len() as i64);
        assert_eq!(m.vsize, text.len() as i64);
    }

    #[test]
    fn new_files_sort_by_time_then_name() {
        let mut v = vec!["10.M5P1.h", "9.M7P1.h", "10.M10P1.h", "x"];
        v.sort_by(|a, b| name_order(a, b));
        assert_eq!(v, vec!["9.M7P1.h", "10.M5P1.h", "10.M10P1.h", "x"]);
    }
}
