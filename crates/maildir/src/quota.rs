//! Maildir++ quota: the `maildirsize` file in the Maildir root, in the
//! format Dovecot's and Courier's maildir quota read and write (a limit line
//! `<bytes>S,<count>C`, then `<bytes> <count>` delta lines), and quota
//! rules in Dovecot 2.3's syntax (`*:storage=1G`, `*:messages=1000`,
//! `Trash:ignore`, `Trash:storage=+100M`). Must not decide replies: it says
//! over or under, the caller answers.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::FolderEncoding;

/// Recalculate once the file grows past this (Dovecot's and Courier's rule).
const RECALC_SIZE: u64 = 5120;
/// An over-quota total in a file older than this is recalculated
/// (Dovecot's `MAILDIRSIZE_STALE_SECS`).
const STALE: Duration = Duration::from_secs(15 * 60);
const FILE: &str = "maildirsize";

/// A mailbox's limits; None is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.messages.is_none()
    }

    /// The first line of `maildirsize`, as Dovecot writes it.
    fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.bytes {
            parts.push(format!("{b}S"));
        }
        if let Some(m) = self.messages {
            parts.push(format!("{m}C"));
        }
        parts.join(",")
    }

    /// Read a limit line (`10240S,5C`, `5C`, `0S`; 0 is unlimited), as
    /// Dovecot's `maildir_parse_limit` does; unknown parts are skipped.
    fn parse_line(line: &str) -> Limit {
        let mut l = Limit::default();
        for part in line.trim().split(',') {
            let (num, kind) = part.split_at(part.len().saturating_sub(1));
            let Ok(n) = num.parse::<u64>() else { continue };
            match kind {
                "S" => l.bytes = (n > 0).then_some(n),
                "C" => l.messages = (n > 0).then_some(n),
                _ => {}
            }
        }
        l
    }
}

/// A folder rule's change to the mailbox limit: `+100M`, `-1000`, `+10%`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Extra {
    #[default]
    None,
    Add(i64),
    Percent(i64),
}

impl Extra {
    /// The folder's limit from the mailbox limit `base`, as Dovecot 2.3
    /// computes it: a result of 0 or less is unlimited.
    fn apply(self, base: Option<u64>) -> Option<u64> {
        let b = i128::from(base.unwrap_or(0));
        let total = match self {
            Extra::None => b,
            Extra::Add(n) => b + i128::from(n),
            Extra::Percent(p) => b + b * i128::from(p) / 100,
        };
        (total > 0).then(|| total.min(i128::from(i64::MAX)) as u64)
    }
}

/// One `<mailbox mask>:<limits>` rule for some folders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FolderRule {
    /// Dovecot's wildcards: `*` any run of characters, `?` one.
    mask: String,
    /// `:ignore`: not counted, never refused.
    ignore: bool,
    bytes: Extra,
    messages: Extra,
}

/// A user's quota rules, applied in Dovecot's order (`quota_rule`,
/// `quota_rule2`, ...): the mailbox limit (`*`) and folder rules, of which
/// the first whose mask matches a folder applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The limit of the whole mailbox, written on maildirsize's first line.
    pub limit: Limit,
    folders: Vec<FolderRule>,
}

impl Rules {
    /// Apply one rule in Dovecot 2.3's syntax. Err names the problem; what
    /// Dovecot accepts but mailstow does not implement is an error too
    /// (`?` rules, `backend=`, negative percentages).
    ///
    /// - `*:storage=1G:messages=1000` sets the mailbox limit (`storage`
    ///   without a unit is in kilobytes, `bytes` in bytes; units B K M G T;
    ///   0 is unlimited). `*:ignore` changes nothing, as in Dovecot.
    /// - `Trash:ignore`: mail there is not counted, and saving there is
    ///   never refused.
    /// - `Trash:storage=+100M`, `Trash:messages=+10%`: saving there may go
    ///   that far over the mailbox limit (Dovecot reads `=100M` as `=+100M`).
    /// - `<mask>:none` (mailstow only; Dovecot 2.3 refuses it): no limits
    ///   from this rule. `*:none` makes the mailbox unlimited.
    pub fn apply(&mut self, rule: &str) -> Result<(), String> {
        let err = |m: &str| format!("{rule:?}: {m}");
        let (mask, limits) = rule
            .split_once(':')
            .ok_or_else(|| err("expected <mailbox>:<limits>"))?;
        if limits.starts_with("backend=") {
            return Err(err("backend= rules are not supported"));
        }
        match mask {
            "*" => self.apply_mailbox(limits).map_err(|m| err(&m)),
            "?" => Err(err(
                "'?' rules (limits taken from an existing maildirsize) are not supported; use '*'",
            )),
            "" => Err(err("empty mailbox name")),
            _ => {
                let mask = if mask.eq_ignore_ascii_case("INBOX") {
                    "INBOX"
                } else {
                    mask
                };
                // A mask given again changes its rule, keeping its place.
                let i = match self.folders.iter().position(|r| r.mask == mask) {
                    Some(i) => i,
                    None => {
                        self.folders.push(FolderRule {
                            mask: mask.to_owned(),
                            ignore: false,
                            bytes: Extra::None,
                            messages: Extra::None,
                        });
                        self.folders.len() - 1
                    }
                };
                let mut r = self.folders[i].clone();
                apply_folder(&mut r, limits).map_err(|m| err(&m))?;
                self.folders[i] = r;
                Ok(())
            }
        }
    }

    fn apply_mailbox(&mut self, limits: &str) -> Result<(), String> {
        match limits {
            // Dovecot marks its default rule ignored, which changes nothing.
            "ignore" => return Ok(()),
            "none" => {
                self.limit = Limit::default();
                return Ok(());
            }
            _ => {}
        }
        let mut l = self.limit;
        for (key, value) in parse_limits(limits)? {
            let n = match value {
                _ if key.relative => return Err("the '*' rule cannot have '+'".into()),
                Extra::Percent(_) => return Err("the '*' rule cannot be a percentage".into()),
                Extra::Add(n) if n < 0 => return Err("a limit cannot be negative".into()),
                Extra::Add(n) => n as u64,
                Extra::None => continue,
            };
            let slot = if key.bytes {
                &mut l.bytes
            } else {
                &mut l.messages
            };
            *slot = (n > 0).then_some(n);
        }
        self.limit = l;
        Ok(())
    }

    /// Is the mailbox unlimited (no `*` limit)? Folder rules then limit
    /// nothing either, as in Dovecot.
    pub fn is_unlimited(&self) -> bool {
        self.limit.is_unlimited()
    }

    fn rule_for(&self, folder: &str) -> Option<&FolderRule> {
        let name = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            folder
        };
        self.folders.iter().find(|r| wildcard_match(name, &r.mask))
    }

    /// Does mail in `folder` (an IMAP name, e.g. `Lists.rust`) count
    /// towards the quota? Not when its rule is `ignore`.
    pub fn counts(&self, folder: &str) -> bool {
        !self.rule_for(folder).is_some_and(|r| r.ignore)
    }

    /// The limit for saving into `folder`: the mailbox limit changed by the
    /// folder's rule; unlimited for an ignored folder.
    pub fn limit_for(&self, folder: &str) -> Limit {
        match self.rule_for(folder) {
            _ if self.is_unlimited() => Limit::default(),
            None => self.limit,
            Some(r) if r.ignore => Limit::default(),
            Some(r) => Limit {
                bytes: r.bytes.apply(self.limit.bytes),
                messages: r.messages.apply(self.limit.messages),
            },
        }
    }
}

/// Which limit a `key=value` part sets, and whether it had a '+'.
struct Key {
    bytes: bool,
    relative: bool,
}

/// `storage=1G:messages=+10%` as (key, amount) pairs, with Dovecot's units:
/// only the first character after the number counts (`10MB` is 10M).
fn parse_limits(limits: &str) -> Result<Vec<(Key, Extra)>, String> {
    let mut out = Vec::new();
    for part in limits.split(':') {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let (bytes, default_mult) = match name {
            "storage" => (true, 1024),
            "bytes" => (true, 1),
            "messages" => (false, 1),
            _ => return Err(format!("unknown limit name {name:?}")),
        };
        let (relative, value) = match value.strip_prefix('+') {
            Some(v) => (true, v),
            None => (false, value),
        };
        let digits_end = value
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map_or(value.len(), |(i, _)| i);
        let (num, unit) = value.split_at(digits_end);
        let n: i64 = num
            .parse()
            .map_err(|_| format!("{part:?}: bad number {value:?}"))?;
        let mult: i64 = match unit.chars().next().map(|c| c.to_ascii_uppercase()) {
            None => default_mult,
            Some('B') => 1,
            Some('K') => 1 << 10,
            Some('M') => 1 << 20,
            Some('G') => 1 << 30,
            Some('T') => 1 << 40,
            Some('%') if n < 0 => {
                return Err(format!("{part:?}: negative percentages are not supported"))
            }
            Some('%') => {
                out.push((Key { bytes, relative }, Extra::Percent(n)));
                continue;
            }
            Some(_) => return Err(format!("{part:?}: unknown unit {unit:?}")),
        };
        let n = n
            .checked_mul(mult)
            .ok_or_else(|| format!("{part:?}: too large"))?;
        out.push((Key { bytes, relative }, Extra::Add(n)));
    }
    Ok(out)
}

/// `folder:<limits>` for one folder rule.
fn apply_folder(r: &mut FolderRule, limits: &str) -> Result<(), String> {
    match limits {
        "ignore" => r.ignore = true,
        "none" => {
            r.bytes = Extra::Add(0);
            r.messages = Extra::Add(0);
        }
        _ => {
            for (key, amount) in parse_limits(limits)? {
                if key.bytes {
                    r.bytes = amount;
                } else {
                    r.messages = amount;
                }
            }
        }
    }
    Ok(())
}

/// Dovecot's `wildcard_match`: `*` matches any run of characters, `?` one;
/// everything else itself, case-sensitively.
fn wildcard_match(name: &str, mask: &str) -> bool {
    let (n, m): (Vec<char>, Vec<char>) = (name.chars().collect(), mask.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < n.len() {
        if j < m.len() && (m[j] == '?' || m[j] == n[i]) {
            i += 1;
            j += 1;
        } else if j < m.len() && m[j] == '*' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    m[j..].iter().all(|&c| c == '*')
}

/// Bytes and messages in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// Would `size` more bytes in one more message go over `limit`?
pub fn over(limit: &Limit, usage: &Usage, size: u64) -> bool {
    limit
        .bytes
        .is_some_and(|b| usage.bytes.saturating_add(size) > b)
        || limit
            .messages
            .is_some_and(|m| usage.messages.saturating_add(1) > m)
}

/// The usage of the Maildir at `root`, from `maildirsize`. Recalculated
/// (and the file rewritten) when Dovecot would: the file is missing,
/// malformed, too long, its limit differs from `rules`, or it says over
/// quota but has more than one delta line or is older than 15 minutes.
pub fn usage(root: &Path, rules: &Rules, enc: FolderEncoding) -> io::Result<Usage> {
    let path = root.join(FILE);
    match read_head(&path) {
        Ok((bytes, mtime)) if (bytes.len() as u64) < RECALC_SIZE => {
            if let Some((limit, u, deltas)) = parse(&bytes) {
                let stale = deltas > 1
                    || match mtime.elapsed() {
                        Ok(age) => age > STALE,
                        Err(_) => true,
                    };
                let is_over = limit.bytes.is_some_and(|b| u.bytes > b)
                    || limit.messages.is_some_and(|m| u.messages > m);
                if limit == rules.limit && !(is_over && stale) {
                    return Ok(u);
                }
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    recalculate(root, rules, enc)
}

/// Up to RECALC_SIZE bytes of the file, and its mtime.
fn read_head(path: &Path) -> io::Result<(Vec<u8>, SystemTime)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mtime = f.metadata()?.modified()?;
    let mut bytes = Vec::new();
    f.take(RECALC_SIZE).read_to_end(&mut bytes)?;
    Ok((bytes, mtime))
}

/// Record a delivery (or removal, with negative numbers): one O_APPEND
/// write, as Dovecot and Courier do.
pub fn add(root: &Path, bytes: i64, messages: i64) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(FILE))?;
    f.write_all(format!("{bytes} {messages}\n").as_bytes())
}

/// The limit, the totals and the number of delta lines; None when a line is
/// malformed or a total negative (Dovecot then recalculates).
fn parse(bytes: &[u8]) -> Option<(Limit, Usage, usize)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let limit = Limit::parse_line(lines.next()?);
    let (mut b, mut m, mut n) = (0i64, 0i64, 0usize);
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let mut it = l.split_whitespace();
        b = b.checked_add(it.next()?.parse::<i64>().ok()?)?;
        m = m.checked_add(it.next()?.parse::<i64>().ok()?)?;
        n += 1;
    }
    if b < 0 || m < 0 {
        return None;
    }
    Some((
        limit,
        Usage {
            bytes: b as u64,
            messages: m as u64,
        },
        n,
    ))
}

/// Sum every message of every counted folder (S= from the name, else the
/// file's size; folders whose rule is `ignore` are skipped, as Dovecot's
/// maildir quota does) and write a fresh `maildirsize` (temp file, rename),
/// owned like the Maildir when running as root.
pub fn recalculate(root: &Path, rules: &Rules, enc: FolderEncoding) -> io::Result<Usage> {
    let mut u = Usage::default();
    let mut dirs: Vec<(String, PathBuf)> = vec![("INBOX".to_owned(), root.to_owned())];
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(storage) = name.strip_prefix('.') else {
                continue;
            };
            if storage.is_empty() || storage == "." || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let folder = super::display_name(storage, enc).unwrap_or_else(|_| storage.to_owned());
            dirs.push((folder, e.path()));
        }
    }
    for (folder, dir) in dirs {
        if !rules.counts(&folder) {
            continue;
        }
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let size = size_from_name(&name).or_else(|| e.metadata().ok().map(|m| m.len()));
                if let Some(s) = size {
                    u.bytes += s;
                    u.messages += 1;
                }
            }
        }
    }
    // Unique per thread: delivery threads may recalculate at once.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = root.join(format!(
        "{FILE}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let text = format!("{}\n{} {}\n", rules.limit.line(), u.bytes, u.messages);
    let written = write_file(root, &tmp, text.as_bytes());
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| u)
}

/// Write `text` to the new file `tmp`, then rename it over `maildirsize`.
fn write_file(root: &Path, tmp: &Path, text: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    // Dovecot runs as the mail user and rewrites this file too.
    if nix::unistd::geteuid().is_root() {
        let m = fs::metadata(root)?;
        if m.uid() != 0 {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
        }
    }
    f.write_all(text)?;
    f.sync_all()?;
    fs::rename(tmp, root.join(FILE))
}

/// The S= size in a Maildir file name.
fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|p| p.strip_prefix("S="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTF7: FolderEncoding = FolderEncoding::Utf7;

    fn md(dir: &Path) {
        for d in [
            "new",
            "cur",
            "tmp",
            ".Trash/cur",
            ".Trash/new",
            ".Re&AOc-us/new",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(dir.join("new/1.M1P1.h,S=100,W=104"), vec![b'x'; 100]).unwrap();
        fs::write(dir.join("cur/2.M1P1.h:2,S"), vec![b'x'; 50]).unwrap();
        fs::write(dir.join(".Trash/cur/3.M1P1.h,S=10:2,T"), vec![b'x'; 10]).unwrap();
        fs::write(dir.join(".Re&AOc-us/new/4.M1P1.h,S=7"), vec![b'x'; 7]).unwrap();
    }

    fn rules(list: &[&str]) -> Rules {
        let mut r = Rules::default();
        for rule in list {
            r.apply(rule).unwrap();
        }
        r
    }

    fn limit(bytes: Option<u64>, messages: Option<u64>) -> Limit {
        Limit { bytes, messages }
    }

    #[test]
    fn mailbox_rules_in_dovecots_syntax_and_units() {
        let r = rules(&["*:storage=1G", "*:messages=1000"]);
        assert_eq!(r.limit, limit(Some(1 << 30), Some(1000)));
        assert_eq!(r.limit.line(), "1073741824S,1000C");
        // storage without a unit is in kilobytes; bytes in bytes; only the
        // first character of a unit counts.
        assert_eq!(rules(&["*:storage=10"]).limit.bytes, Some(10 << 10));
        assert_eq!(rules(&["*:bytes=5000"]).limit.bytes, Some(5000));
        assert_eq!(rules(&["*:storage=10MB"]).limit.bytes, Some(10 << 20));
        // 0 clears one limit, none (mailstow only) both; *:ignore nothing.
        assert_eq!(
            rules(&["*:storage=1G:messages=5", "*:storage=0"]).limit,
            limit(None, Some(5))
        );
        assert!(rules(&["*:storage=1G", "*:none"]).is_unlimited());
        assert_eq!(rules(&["*:storage=4K", "*:ignore"]).limit.bytes, Some(4096));
        for bad in [
            "*:storage=lots",
            "*:storage=1.5M",
            "*:storage=",
            "*:storage=-5",
            "*:storage=+5",
            "*:storage=10%",
            "*:size=1G",
            "?:storage=1G",
            "*:backend=100S",
            "no colon",
            ":storage=1",
            "Trash:storage=-10%",
        ] {
            let mut r = Rules::default();
            assert!(r.apply(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn folder_rules_ignore_or_extend_the_mailbox_limit() {
        let r = rules(&[
            "*:storage=10K:messages=100",
            "Trash:ignore",
            "Junk:storage=+1K",
            "Lists*:storage=+10%:messages=-50",
            "Sent:storage=-20K",
            "Old:none",
            "inbox:messages=+1",
        ]);
        assert!(!r.counts("Trash"));
        assert!(r.counts("Trash.sub") && r.counts("INBOX") && r.counts("trash"));
        assert_eq!(r.limit_for("Trash"), Limit::default());
        assert_eq!(r.limit_for("Archive"), limit(Some(10240), Some(100)));
        assert_eq!(r.limit_for("Junk"), limit(Some(11264), Some(100)));
        assert_eq!(r.limit_for("Lists.rust"), limit(Some(11264), Some(50)));
        // A folder limit of 0 or less is unlimited, as in Dovecot.
        assert_eq!(r.limit_for("Sent"), limit(None, Some(100)));
        assert_eq!(r.limit_for("Old"), r.limit);
        assert_eq!(r.limit_for("Inbox"), limit(Some(10240), Some(101)));
        // The first matching rule applies; a mask given again keeps its place.
        let r = rules(&["*:storage=1K", "T*:ignore", "Trash:storage=+1K"]);
        assert!(!r.counts("Trash"));
        let r = rules(&["*:storage=1K", "Trash:storage=+1K", "Trash:ignore"]);
        assert!(!r.counts("Trash"));
        // No mailbox limit: folder rules limit nothing.
        let r = rules(&["Junk:storage=+1K"]);
        assert!(r.is_unlimited());
        assert_eq!(r.limit_for("Junk"), Limit::default());
    }

    #[test]
    fn wildcards_are_dovecots() {
        assert!(wildcard_match("Trash", "Trash"));
        assert!(wildcard_match("Trash", "T*"));
        assert!(wildcard_match("Lists.rust", "*.rust"));
        assert!(wildcard_match("Spam", "Sp?m"));
        assert!(wildcard_match("abcbc", "a*bc"));
        assert!(!wildcard_match("Trash", "trash"));
        assert!(!wildcard_match("Trash2", "Trash"));
        assert!(!wildcard_match("Tras", "Trash*"));
    }

    #[test]
    fn usage_is_recalculated_then_read_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        md(dir.path());
        let r = rules(&["*:bytes=1000:messages=5"]);
        let u = usage(dir.path(), &r, UTF7).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 167,
                messages: 4
            }
        );
        let text = fs::read_to_string(dir.path().join("maildirsize")).unwrap();
        assert_eq!(text, "1000S,5C\n167 4\n");
        add(dir.path(), 33, 1).unwrap();
        let u = usage(dir.path(), &r, UTF7).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 200,
                messages: 5
            }
        );
        assert!(!over(&limit(Some(1000), None), &u, 800));
        assert!(over(&limit(Some(1000), None), &u, 801));
        assert!(over(&r.limit, &u, 1));
        // A different limit line or garbage forces a recalculation.
        fs::write(dir.path().join("maildirsize"), "1000S,5C\nnot numbers\n").unwrap();
        assert_eq!(usage(dir.path(), &r, UTF7).unwrap().messages, 4);
        fs::write(dir.path().join("maildirsize"), "1000S,5C\n-500 -1\n").unwrap();
        assert_eq!(usage(dir.path(), &r, UTF7).unwrap().messages, 4);
        let other = rules(&["*:bytes=2000"]);
        usage(dir.path(), &other, UTF7).unwrap();
        assert!(fs::read_to_string(dir.path().join("maildirsize"))
            .unwrap()
            .starts_with("2000S\n"));
        // Limits are compared as numbers, as Dovecot does.
        fs::write(dir.path().join("maildirsize"), "2000S,0C\n1 1\n").unwrap();
        assert_eq!(usage(dir.path(), &other, UTF7).unwrap().messages, 1);
    }

    #[test]
    fn an_over_quota_total_from_several_lines_is_recalculated() {
        let dir = tempfile::tempdir().unwrap();
        md(dir.path());
        let r = rules(&["*:bytes=150"]);
        // Over quota in the one summary line of a fresh file: trusted.
        fs::write(dir.path().join("maildirsize"), "150S\n900 9\n").unwrap();
        assert_eq!(usage(dir.path(), &r, UTF7).unwrap().messages, 9);
        // Over quota after deltas: recounted (167 bytes in 4 messages).
        fs::write(dir.path().join("maildirsize"), "150S\n100 1\n800 8\n").unwrap();
        assert_eq!(
            usage(dir.path(), &r, UTF7).unwrap(),
            Usage {
                bytes: 167,
                messages: 4
            }
        );
    }

    #[test]
    fn ignored_folders_are_left_out_of_the_recalculation() {
        let dir = tempfile::tempdir().unwrap();
        md(dir.path());
        let r = rules(&["*:bytes=1000", "Trash:ignore", "Reçus:ignore"]);
        assert_eq!(
            recalculate(dir.path(), &r, UTF7).unwrap(),
            Usage {
                bytes: 150,
                messages: 2
            }
        );
        let r = rules(&["*:bytes=1000", "INBOX:ignore"]);
        assert_eq!(recalculate(dir.path(), &r, UTF7).unwrap().bytes, 17);
        assert_eq!(
            fs::read_to_string(dir.path().join("maildirsize")).unwrap(),
            "1000S\n17 2\n"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(names.is_empty(), "temp files left: {names:?}");
    }
}
