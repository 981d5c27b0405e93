//! Maildir++ quota: the `maildirsize` file in the Maildir root, in the
//! format Dovecot's and Courier's maildir quota read and write (a limit line
//! `<bytes>S,<count>C`, then `<bytes> <count>` delta lines), and quota
//! rules in Dovecot's syntax (`*:storage=1G`, `*:messages=1000`). Must not
//! decide replies: it says over or under, the caller answers.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Recalculate once the file grows past this (Dovecot's and Courier's rule).
const RECALC_SIZE: u64 = 5120;
const FILE: &str = "maildirsize";

/// A user's limits; None is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.messages.is_none()
    }

    /// Apply one Dovecot quota rule, e.g. `*:storage=1G` or
    /// `*:messages=1000` (`*:storage=0` or `none` clears). Only the `*`
    /// (whole mailbox) rule is honoured; folder rules (`Trash:ignore`) are
    /// ignored. Err names the problem.
    pub fn apply_rule(&mut self, rule: &str) -> Result<(), String> {
        let (scope, rest) = rule
            .split_once(':')
            .ok_or_else(|| format!("{rule:?}: no ':'"))?;
        if scope != "*" {
            return Ok(());
        }
        if rest.eq_ignore_ascii_case("none") || rest.eq_ignore_ascii_case("ignore") {
            *self = Limit::default();
            return Ok(());
        }
        for part in rest.split(':') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{rule:?}: expected key=value"))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "storage" | "bytes" => {
                    let n = parse_size(value.trim())
                        .ok_or_else(|| format!("{rule:?}: bad size {value:?}"))?;
                    self.bytes = (n > 0).then_some(n);
                }
                "messages" => {
                    let n: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("{rule:?}: bad count {value:?}"))?;
                    self.messages = (n > 0).then_some(n);
                }
                // Percentages and backends are Dovecot details we do not use.
                _ => {}
            }
        }
        Ok(())
    }

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
}

/// "1G", "500M", "1024k", "123" (bytes), "10T".
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
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

/// The usage of the Maildir at `root`, from `maildirsize`, recalculated
/// (and the file rewritten) when it is missing, malformed, too long or its
/// limit line differs from `limit`.
pub fn usage(root: &Path, limit: &Limit) -> io::Result<Usage> {
    let path = root.join(FILE);
    match fs::read(&path) {
        Ok(bytes) if (bytes.len() as u64) < RECALC_SIZE => {
            if let Some((line, u)) = parse(&bytes) {
                if line == limit.line() {
                    return Ok(u);
                }
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    recalculate(root, limit)
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

fn parse(bytes: &[u8]) -> Option<(String, Usage)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let limit = lines.next()?.trim().to_owned();
    let (mut b, mut m) = (0i64, 0i64);
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let mut it = l.split_whitespace();
        b = b.checked_add(it.next()?.parse::<i64>().ok()?)?;
        m = m.checked_add(it.next()?.parse::<i64>().ok()?)?;
    }
    Some((
        limit,
        Usage {
            bytes: b.max(0) as u64,
            messages: m.max(0) as u64,
        },
    ))
}

/// Sum every message of every folder (S= from the name, else the file's
/// size) and write a fresh `maildirsize` (temp file, rename).
pub fn recalculate(root: &Path, limit: &Limit) -> io::Result<Usage> {
    let mut u = Usage::default();
    let mut dirs = vec![root.to_owned()];
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                && name != "."
                && name != ".."
                && e.file_type().is_ok_and(|t| t.is_dir())
            {
                dirs.push(e.path());
            }
        }
    }
    for dir in dirs {
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
    let tmp = root.join(format!("{FILE}.{}.tmp", std::process::id()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(format!("{}\n{} {}\n", limit.line(), u.bytes, u.messages).as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, root.join(FILE))?;
    Ok(u)
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

    fn md(dir: &Path) {
        for d in ["new", "cur", "tmp", ".Trash/cur", ".Trash/new"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(dir.join("new/1.M1P1.h,S=100,W=104"), vec![b'x'; 100]).unwrap();
        fs::write(dir.join("cur/2.M1P1.h:2,S"), vec![b'x'; 50]).unwrap();
        fs::write(dir.join(".Trash/cur/3.M1P1.h,S=10:2,T"), vec![b'x'; 10]).unwrap();
    }

    #[test]
    fn rules_in_dovecots_syntax() {
        let mut l = Limit::default();
        l.apply_rule("*:storage=1G").unwrap();
        assert_eq!(l.bytes, Some(1 << 30));
        l.apply_rule("*:messages=1000").unwrap();
        assert_eq!(l.messages, Some(1000));
        l.apply_rule("Trash:ignore").unwrap();
        assert_eq!(
            l.messages,
            Some(1000),
            "folder rules do not change the mailbox limit"
        );
        assert!(l.apply_rule("*:storage=lots").is_err());
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(l.line(), "1073741824S,1000C");
    }

    #[test]
    fn usage_is_recalculated_then_read_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        md(dir.path());
        let limit = Limit {
            bytes: Some(1000),
            messages: Some(5),
        };
        let u = usage(dir.path(), &limit).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 160,
                messages: 3
            }
        );
        let text = fs::read_to_string(dir.path().join("maildirsize")).unwrap();
        assert_eq!(text, "1000S,5C\n160 3\n");
        add(dir.path(), 40, 1).unwrap();
        assert_eq!(
            usage(dir.path(), &limit).unwrap(),
            Usage {
                bytes: 200,
                messages: 4
            }
        );
        assert!(!over(
            &limit,
            &Usage {
                bytes: 200,
                messages: 4
            },
            800
        ));
        assert!(over(
            &limit,
            &Usage {
                bytes: 200,
                messages: 4
            },
            801
        ));
        assert!(over(
            &limit,
            &Usage {
                bytes: 0,
                messages: 5
            },
            1
        ));
        // A different limit line or garbage forces a recalculation.
        fs::write(dir.path().join("maildirsize"), "1000S,5C\nnot numbers\n").unwrap();
        assert_eq!(usage(dir.path(), &limit).unwrap().messages, 3);
        let other = Limit {
            bytes: Some(2000),
            messages: None,
        };
        usage(dir.path(), &other).unwrap();
        assert!(fs::read_to_string(dir.path().join("maildirsize"))
            .unwrap()
            .starts_with("2000S\n"));
    }
}
