//! Parser for Dovecot's passwd-file format: bytes of one file in, a table of
//! entries (usable or broken, with line numbers) and warnings out. Must not
//! read files, log, or look anything up; it never panics on any input.
//!
//! A line is `user:password:uid:gid:gecos:home:shell:extra_fields`. Fields
//! after the user may be missing; everything after the seventh ':' is the
//! extra fields (as Dovecot joins them back), so values there may contain ':'.
//! The password, gecos and shell fields are ignored and never kept (they may
//! hold any bytes, e.g. a latin-1 plaintext password); authentication reads
//! the password of one line again with [`password_field`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the file says about one user, when the line is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: PathBuf,
    pub extra: Vec<(String, String)>,
}

/// One named entry of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Local part exactly as in the file.
    pub local: String,
    /// ASCII-lowercased domain; `None` for an entry without '@' (any domain).
    pub domain: Option<String>,
    /// 1-based line number.
    pub line: usize,
    /// The usable fields, or why the entry is unusable.
    pub fields: Result<Fields, String>,
}

/// A line that could not even be attributed to a user, or a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub line: usize,
    pub message: String,
}

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// Blank or comment.
    Skip,
    Entry(Entry),
    /// No user name could be parsed; the line is ignored with a warning.
    Unnamed(String),
}

/// The parsed file, indexed for lookups.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) entries: Vec<Entry>,
    /// (domain, local as written) -> entry.
    exact: HashMap<(Option<String>, String), usize>,
    /// (domain, ASCII-lowercased local) -> entries differing only by case.
    folded: HashMap<(Option<String>, String), Vec<usize>>,
}

impl Table {
    /// Entries whose fields are unusable: (line, reason).
    pub fn broken(&self) -> impl Iterator<Item = (usize, &str)> {
        self.entries
            .iter()
            .filter_map(|e| e.fields.as_ref().err().map(|r| (e.line, r.as_str())))
    }

    /// Number of entries, broken ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry for `local` within one scope (`domain`: an ASCII-lowercased
    /// domain, or `None` for the domainless entries): the exact local part,
    /// else the only entry equal to it ignoring ASCII case.
    pub fn find(&self, domain: Option<&str>, local: &str) -> Option<&Entry> {
        let domain = domain.map(str::to_owned);
        if let Some(&i) = self.exact.get(&(domain.clone(), local.to_owned())) {
            return self.entries.get(i);
        }
        match self.folded.get(&(domain, local.to_ascii_lowercase())) {
            Some(v) if v.len() == 1 => v.first().and_then(|&i| self.entries.get(i)),
            _ => None,
        }
    }
}

/// Parse a whole file. Duplicates (same local part as written, same domain
/// ignoring case) keep the first entry and produce a warning.
pub(crate) fn parse_file(bytes: &[u8], mail_root: &Path) -> (Table, Vec<Warning>) {
    let mut table = Table::default();
    let mut warnings = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        match parse_line(raw, line, mail_root) {
            Line::Skip => {}
            Line::Unnamed(message) => warnings.push(Warning { line, message }),
            Line::Entry(entry) => {
                let key = (entry.domain.clone(), entry.local.clone());
                if let Some(&first) = table.exact.get(&key) {
                    let first_line = table.entries.get(first).map_or(0, |e| e.line);
                    warnings.push(Warning {
                        line,
                        message: format!(
                            "duplicate entry for {:?}, ignored (the entry on line {first_line} is used)",
                            display_name(&entry.local, entry.domain.as_deref())
                        ),
                    });
                    continue;
                }
                let idx = table.entries.len();
                let folded = (entry.domain.clone(), entry.local.to_ascii_lowercase());
                table.exact.insert(key, idx);
                table.folded.entry(folded).or_default().push(idx);
                table.entries.push(entry);
            }
        }
    }
    (table, warnings)
}

/// The canonical name of an entry: `local@domain`, or `local` alone.
pub(crate) fn display_name(local: &str, domain: Option<&str>) -> String {
    match domain {
        Some(d) => format!("{local}@{d}"),
        None => local.to_owned(),
    }
}

/// Parse one line (without its '\n'; a trailing '\r' is ignored).
pub(crate) fn parse_line(raw: &[u8], line: usize, mail_root: &Path) -> Line {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let trimmed = raw.trim_ascii_start();
    if trimmed.is_empty() || trimmed.starts_with(b"#") {
        return Line::Skip;
    }
    let mut fields = raw.splitn(8, |&b| b == b':');
    let name = fields.next().unwrap_or_default();
    let (local, domain) = match parse_name(name) {
        Ok(n) => n,
        Err(reason) => return Line::Unnamed(reason),
    };
    let fields = if name.trim_ascii().len() != name.len() {
        Err("the user name has leading or trailing white space".to_owned())
    } else {
        let _password = fields.next();
        let uid = fields.next().unwrap_or_default();
        let gid = fields.next().unwrap_or_default();
        let _gecos = fields.next();
        let home = fields.next().unwrap_or_default();
        let _shell = fields.next();
        let extra = fields.next().unwrap_or_default();
        parse_fields(&local, domain.as_deref(), uid, gid, home, extra, mail_root)
    };
    Line::Entry(Entry {
        local,
        domain,
        line,
        fields,
    })
}

/// The password field of line `line` (1-based) of `bytes`, split into lines
/// and fields exactly as [`parse_file`] splits them; `None` when the line
/// does not exist or has no password field. For authentication only
/// (`crate::auth`): it borrows the file's bytes, and no table keeps it.
pub(crate) fn password_field(bytes: &[u8], line: usize) -> Option<&[u8]> {
    let raw = bytes.split(|&b| b == b'\n').nth(line.checked_sub(1)?)?;
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    raw.splitn(8, |&b| b == b':').nth(1)
}

/// `local[@domain]` -> (local, lowercased domain). White space around the
/// name is removed here so that such an entry is still found (and reported
/// broken) rather than turning its user into an unknown one.
fn parse_name(name: &[u8]) -> Result<(String, Option<String>), String> {
    let name = std::str::from_utf8(name.trim_ascii())
        .map_err(|_| "the user name is not valid UTF-8; line ignored".to_owned())?;
    if name.is_empty() {
        return Err("empty user name; line ignored".to_owned());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!(
            "user name {name:?} contains control characters; line ignored"
        ));
    }
    match name.rsplit_once('@') {
        None => Ok((name.to_owned(), None)),
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            Ok((local.to_owned(), Some(domain.to_ascii_lowercase())))
        }
        Some(_) => Err(format!(
            "user name {name:?} has an empty local part or domain; line ignored"
        )),
    }
}

fn parse_fields(
    local: &str,
    domain: Option<&str>,
    uid: &[u8],
    gid: &[u8],
    home: &[u8],
    extra: &[u8],
    mail_root: &Path,
) -> Result<Fields, String> {
    let uid = parse_id("uid", uid)?;
    let gid = parse_id("gid", gid)?;
    let home = if home.is_empty() {
        default_home(local, domain, mail_root)?
    } else if home.contains(&0) {
        return Err("the home directory contains a NUL byte".to_owned());
    } else if !home.starts_with(b"/") {
        return Err(format!(
            "home directory {:?} is not an absolute path",
            String::from_utf8_lossy(home)
        ));
    } else {
        PathBuf::from(OsStr::from_bytes(home))
    };
    let extra = parse_extra(extra)?;
    Ok(Fields {
        uid,
        gid,
        home,
        extra,
    })
}

/// Empty: `None`. Otherwise a decimal number other than 0: like Dovecot, an
/// entry never maps to root.
fn parse_id(what: &str, field: &[u8]) -> Result<Option<u32>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(field);
    match text.parse::<u32>() {
        Ok(0) => Err(format!("{what} 0 (root) is refused")),
        Ok(n) if field.iter().all(u8::is_ascii_digit) => Ok(Some(n)),
        _ => Err(format!("{what} {text:?} is not a number")),
    }
}

/// `{mail_root}/{domain}/{local}`, or `{mail_root}/{local}` for an entry
/// without a domain (what Dovecot's `%d/%n` gives for such a login). The
/// parts come from the file, never from a recipient address, and must be
/// single plain path components.
fn default_home(local: &str, domain: Option<&str>, mail_root: &Path) -> Result<PathBuf, String> {
    let component = |what: &str, s: &str| -> Result<(), String> {
        if s == "." || s == ".." || s.contains(['/', '\0']) {
            Err(format!(
                "no home directory given and the {what} {s:?} cannot be a directory name"
            ))
        } else {
            Ok(())
        }
    };
    component("local part", local)?;
    if local.contains('@') {
        return Err(format!(
            "no home directory given and the local part {local:?} contains '@'"
        ));
    }
    match domain {
        Some(d) => {
            component("domain", d)?;
            Ok(mail_root.join(d).join(local))
        }
        None => Ok(mail_root.join(local)),
    }
}

/// Space-separated `key=value` (or a bare `key`, value ""), kept as written.
fn parse_extra(extra: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(extra)
        .map_err(|_| "the extra fields are not valid UTF-8".to_owned())?;
    Ok(text
        .split(' ')
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (f.to_owned(), String::new()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOT: &str = "/srv/mail";

    fn entry(line: &str) -> Entry {
        match parse_line(line.as_bytes(), 7, Path::new(ROOT)) {
            Line::Entry(e) => e,
            other => panic!("{line:?}: expected an entry, got {other:?}"),
        }
    }

    fn broken_reason(line: &str) -> String {
        match entry(line).fields {
            Err(reason) => reason,
            Ok(f) => panic!("{line:?}: expected broken, got {f:?}"),
        }
    }

    #[test]
    fn full_line_gives_every_field() {
        let e = entry(
            "alice@Example.ORG:{SHA512-CRYPT}$6$x:1000:1001:Alice:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G nopassword",
        );
        assert_eq!(e.local, "alice");
        assert_eq!(e.domain.as_deref(), Some("example.org"));
        assert_eq!(e.line, 7);
        let f = e.fields.unwrap();
        assert_eq!(f.uid, Some(1000));
        assert_eq!(f.gid, Some(1001));
        assert_eq!(f.home, PathBuf::from("/home/alice"));
        assert_eq!(
            f.extra,
            vec![
                ("userdb_quota_rule".to_owned(), "*:storage=1G".to_owned()),
                ("nopassword".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn short_lines_default_missing_fields() {
        for line in [
            "bob@example.org",
            "bob@example.org:",
            "bob@example.org:x::::",
        ] {
            let f = entry(line).fields.unwrap();
            assert_eq!(f.uid, None, "{line}");
            assert_eq!(f.gid, None, "{line}");
            assert_eq!(f.home, PathBuf::from("/srv/mail/example.org/bob"), "{line}");
            assert!(f.extra.is_empty(), "{line}");
        }
    }

    #[test]
    fn domainless_entry_defaults_to_mail_root_slash_local() {
        let e = entry("carol:x:1000:1000");
        assert_eq!(e.domain, None);
        assert_eq!(e.fields.unwrap().home, PathBuf::from("/srv/mail/carol"));
    }

    #[test]
    fn comments_blank_lines_and_crlf() {
        for line in ["", "   ", "# alice:x", "  # indented comment", "\r"] {
            assert_eq!(
                parse_line(line.as_bytes(), 1, Path::new(ROOT)),
                Line::Skip,
                "{line:?}"
            );
        }
        let f = entry("dave@example.org:x:1:2::/home/dave\r")
            .fields
            .unwrap();
        assert_eq!(f.home, PathBuf::from("/home/dave"));
    }

    #[test]
    fn bad_fields_make_the_entry_broken_not_missing() {
        assert!(broken_reason("a@x.org:p:10OO:1").contains("uid"));
        assert!(broken_reason("a@x.org:p:-1:1").contains("uid"));
        assert!(broken_reason("a@x.org:p:+5:1").contains("uid"));
        assert!(broken_reason("a@x.org:p:0:1").contains("root"));
        assert!(broken_reason("a@x.org:p:1:99999999999").contains("gid"));
        assert!(broken_reason("a@x.org:p:1:1::home/a").contains("absolute"));
        assert!(broken_reason(" a@x.org:p:1:1").contains("white space"));
        assert!(broken_reason("a@x.org:p:1:1::/home/a\u{0}b").contains("NUL"));
    }

    #[test]
    fn default_home_refuses_path_tricks() {
        for line in [
            "..@x.org",
            ".@x.org",
            "a@..",
            "a@.",
            "a/b@x.org",
            "a@x/y.org",
            "..",
            "a@b@x.org",
        ] {
            assert!(
                broken_reason(line).contains("no home directory given"),
                "{line}"
            );
        }
        // With an explicit home the odd name is harmless: it is only a string.
        assert!(entry("a/b@x.org:p:1:1::/home/ab").fields.is_ok());
    }

    #[test]
    fn unnamed_lines_are_warnings() {
        for line in [":x:1:1", "@x.org:p", "alice@:p", "   :x", "\u{1}a:x"] {
            assert!(
                matches!(
                    parse_line(line.as_bytes(), 3, Path::new(ROOT)),
                    Line::Unnamed(_)
                ),
                "{line:?}"
            );
        }
        assert!(matches!(
            parse_line(b"\xff\xfe:x:1:1", 3, Path::new(ROOT)),
            Line::Unnamed(_)
        ));
    }

    #[test]
    fn non_utf8_password_is_fine_but_non_utf8_extra_is_broken() {
        let f = parse_line(b"e@x.org:p\xe4ss:5:5::/home/e", 1, Path::new(ROOT));
        assert!(matches!(f, Line::Entry(Entry { fields: Ok(_), .. })));
        let f = parse_line(b"e@x.org:p:5:5::/home/e::k=\xff", 1, Path::new(ROOT));
        assert!(matches!(f, Line::Entry(Entry { fields: Err(_), .. })));
    }

    #[test]
    fn duplicates_keep_the_first_and_warn() {
        let (t, w) = parse_file(
            b"a@x.org:p:1:1::/first\na@X.org:p:2:2::/second\n",
            Path::new(ROOT),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 2);
        assert!(w[0].message.contains("line 1"), "{}", w[0].message);
        let e = t.find(Some("x.org"), "a").unwrap();
        assert_eq!(e.fields.as_ref().unwrap().home, PathBuf::from("/first"));
    }

    #[test]
    fn case_variants_are_only_found_exactly() {
        let (t, _) = parse_file(b"Ann@x.org\nann@x.org\nBob@x.org\n", Path::new(ROOT));
        assert_eq!(t.find(Some("x.org"), "Ann").unwrap().line, 1);
        assert_eq!(t.find(Some("x.org"), "ann").unwrap().line, 2);
        assert!(t.find(Some("x.org"), "ANN").is_none());
        assert_eq!(t.find(Some("x.org"), "BOB").unwrap().line, 3);
        assert!(t.find(None, "bob").is_none());
    }

    #[test]
    fn password_field_is_the_second_field_of_that_line() {
        let text =
            b"# c\r\na@x.org:{PLAIN}p:w:1:1\r\nb@x.org\nc@x.org:\n\nd:p\xe4ss:1:2:g:/h:s:k=v:w\n";
        assert_eq!(password_field(text, 2), Some(b"{PLAIN}p".as_slice()));
        assert_eq!(password_field(text, 3), None);
        assert_eq!(password_field(text, 4), Some(b"".as_slice()));
        assert_eq!(password_field(text, 6), Some(b"p\xe4ss".as_slice()));
        assert_eq!(password_field(text, 0), None);
        assert_eq!(password_field(text, 99), None);
        // The line numbers are the ones parse_file gives.
        let (t, _) = parse_file(text, Path::new(ROOT));
        assert_eq!(t.find(Some("x.org"), "a").map(|e| e.line), Some(2));
        assert_eq!(t.find(None, "d").map(|e| e.line), Some(6));
    }

    proptest! {
        #[test]
        fn password_field_never_panics(text in proptest::collection::vec(any::<u8>(), 0..200), line in 0usize..10) {
            let _ = password_field(&text, line);
        }

        #[test]
        fn parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line, 1, Path::new(ROOT));
        }

        #[test]
        fn parser_never_panics_on_passwd_like_text(line in "[a-zA-Z0-9@.:/ =+#\\-\r\u{0}é]{0,80}") {
            let _ = parse_line(line.as_bytes(), 1, Path::new(ROOT));
        }

        #[test]
        fn file_parser_never_panics(text in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (t, _) = parse_file(&text, Path::new(ROOT));
            let _ = t.find(Some("x"), "a");
        }
    }
}
