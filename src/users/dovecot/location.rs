//! Where a Dovecot userdb reply says a user's mail and Sieve scripts are:
//! the `mail` field (a mail_location) and the `sieve` / `sieve_dir` fields
//! (Pigeonhole's settings), turned into absolute paths. Must not touch the
//! file system or expand `%` variables: Dovecot's auth expands them in its
//! templates before a value reaches the socket, and Dovecot's LMTP takes a
//! `%` that is left as a literal character (docs/operations.md).

use std::path::{Path, PathBuf};

/// mail_location options that only move Dovecot's own files (indexes,
/// control files, locks) or are plain flags: accepted, ignored.
const IGNORED_OPTIONS: &[&str] = &[
    "INDEX",
    "INDEXPVT",
    "CONTROL",
    "VOLATILEDIR",
    "SUBSCRIPTIONS",
    "ALT",
    "ITERINDEX",
    "NO-NOSELECT",
    "BROKENCHAR",
];

/// The Maildir a `mail` field names. `~` and `~/` at the start of a path
/// are the home. `maildir:PATH[:OPTION...]` only: other formats, `LAYOUT=`
/// other than `maildir++`, `INBOX=`, `DIRNAME=` and unknown options are
/// refused with the reason (mailstow would write where Dovecot does not
/// read). `UTF-8` is accepted: folder names then follow `[storage]
/// folder_encoding`, which must say `utf8`.
pub(crate) fn maildir(mail: &str, home: &Path) -> Result<PathBuf, String> {
    let Some((format, rest)) = mail.split_once(':') else {
        return Err(format!(
            "mail={mail}: no format (mailstow writes only maildir:PATH)"
        ));
    };
    if !format.eq_ignore_ascii_case("maildir") {
        return Err(format!(
            "mail={mail}: the {format} format is not one mailstow writes (maildir only)"
        ));
    }
    let mut parts = split_location(rest).into_iter();
    let path = parts.next().unwrap_or_default();
    for opt in parts {
        check_option(&opt).map_err(|why| format!("mail={mail}: {why}"))?;
    }
    if path.is_empty() {
        return Err(format!("mail={mail}: no path"));
    }
    let path = expand_home(&path, home);
    if !path.is_absolute() {
        return Err(format!("mail={mail}: the path is not absolute"));
    }
    Ok(path)
}

/// Split at single ':'; `::` is a literal ':' (Dovecot's escape in paths).
fn split_location(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                cur.push(':');
            }
            ':' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn check_option(opt: &str) -> Result<(), String> {
    let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
    let key = key.to_ascii_uppercase();
    match key.as_str() {
        "" | "UTF-8" => Ok(()),
        "LAYOUT" if value.eq_ignore_ascii_case("maildir++") => Ok(()),
        "LAYOUT" => Err(format!(
            "LAYOUT={value} is not supported (mailstow writes Maildir++ folders)"
        )),
        k if IGNORED_OPTIONS.contains(&k) => Ok(()),
        _ => Err(format!("the option {opt} is not supported")),
    }
}

/// `~` alone or `~/rest` is the home; a relative path is under the home
/// (as Pigeonhole and Dovecot read one); others are kept.
pub(crate) fn expand_home(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        return home.to_owned();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return home.join(rest);
    }
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_owned()
    } else {
        home.join(p)
    }
}

/// The user's Sieve script and script directory as Pigeonhole 0.5 reads
/// the `sieve` and `sieve_dir` settings a userdb may return:
///
/// - `sieve=PATH`: PATH is the active script; the directory is
///   `sieve_dir` (or `sieve_user_dir`) when given.
/// - `sieve=file:DIR[;active=PATH]`: DIR holds the scripts, PATH (default
///   `~/.dovecot.sieve`) is the active one. `bindir=` and `name=` are
///   ignored; another option is refused, as Pigeonhole refuses it.
/// - another storage driver (`ldap:`, `dict:`) is refused: mailstow cannot
///   read it, and running another script instead would be wrong.
///
/// An empty `sieve` is treated as absent (Pigeonhole disables the personal
/// script then; mailstow keeps its configured one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SieveLocation {
    pub script: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

pub(crate) fn sieve_location(
    sieve: Option<&str>,
    sieve_dir: Option<&str>,
    home: &Path,
) -> Result<SieveLocation, String> {
    let mut loc = match sieve.filter(|s| !s.is_empty()) {
        None => SieveLocation::default(),
        Some(s) => match driver(s) {
            Some(("file", data)) => {
                file_storage(data, home).map_err(|e| format!("sieve={s}: {e}"))?
            }
            Some((other, _)) => {
                return Err(format!(
                    "sieve={s}: the {other} script storage is not supported (file only)"
                ))
            }
            None => SieveLocation {
                script: Some(expand_home(s, home)),
                dir: None,
            },
        },
    };
    if loc.dir.is_none() {
        loc.dir = sieve_dir
            .filter(|d| !d.is_empty())
            .map(|d| expand_home(d, home));
    }
    Ok(loc)
}

/// `name:data` when `name` looks like a storage driver (letters, digits,
/// '-' or '_', before any '/', ';' or '~').
fn driver(s: &str) -> Option<(&str, &str)> {
    let (name, data) = s.split_once(':')?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then_some((name, data))
}

fn file_storage(data: &str, home: &Path) -> Result<SieveLocation, String> {
    let mut parts = data.split(';');
    let dir = parts.next().unwrap_or_default();
    let mut active = None;
    for opt in parts {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        match key.to_ascii_lowercase().as_str() {
            "active" if !value.is_empty() => active = Some(expand_home(value, home)),
            "bindir" | "name" => {}
            _ => return Err(format!("invalid option '{opt}'")),
        }
    }
    if dir.is_empty() {
        return Err("no path".into());
    }
    Ok(SieveLocation {
        script: Some(active.unwrap_or_else(|| home.join(".dovecot.sieve"))),
        dir: Some(expand_home(dir, home)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/srv/mail/x.org/alice";

    fn md(s: &str) -> Result<PathBuf, String> {
        maildir(s, Path::new(HOME))
    }

    #[test]
    fn maildir_paths_with_home_and_options() {
        assert_eq!(
            md("maildir:~/Maildir").unwrap(),
            Path::new(HOME).join("Maildir")
        );
        assert_eq!(md("maildir:~").unwrap(), Path::new(HOME));
        assert_eq!(
            md("MAILDIR:/var/vmail/x/a").unwrap(),
            Path::new("/var/vmail/x/a")
        );
        assert_eq!(
            md("maildir:~/Maildir:UTF-8:INDEX=/var/idx/%u:CONTROL=~/c:VOLATILEDIR=/tmp/v:LAYOUT=Maildir++")
                .unwrap(),
            Path::new(HOME).join("Maildir")
        );
        assert_eq!(md("maildir:/a::b:UTF-8").unwrap(), Path::new("/a:b"));
        // Relative: under the home, as Dovecot reads it.
        assert_eq!(md("maildir:Mail").unwrap(), Path::new(HOME).join("Mail"));
    }

    #[test]
    fn percent_variables_stay_literal_as_dovecot_leaves_them() {
        assert_eq!(md("maildir:/m/%d/%n").unwrap(), Path::new("/m/%d/%n"));
    }

    #[test]
    fn other_formats_and_layouts_are_refused_with_the_field() {
        for bad in [
            "mbox:~/mail:INBOX=/var/mail/a",
            "sdbox:~/dbox",
            "mdbox:~/mdbox",
            "imapc:",
            "/var/mail/alice",
            "maildir:~/Maildir:LAYOUT=fs",
            "maildir:~/Maildir:INBOX=/var/mail/a",
            "maildir:~/Maildir:DIRNAME=x",
            "maildir:",
        ] {
            let e = md(bad).unwrap_err();
            assert!(e.starts_with("mail="), "{bad}: {e}");
        }
        assert!(md("maildir:~/M:LAYOUT=fs")
            .unwrap_err()
            .contains("LAYOUT=fs"));
    }

    fn sl(sieve: Option<&str>, dir: Option<&str>) -> Result<SieveLocation, String> {
        sieve_location(sieve, dir, Path::new(HOME))
    }

    #[test]
    fn sieve_plain_path_and_file_storage() {
        let h = Path::new(HOME);
        assert_eq!(sl(None, None).unwrap(), SieveLocation::default());
        assert_eq!(sl(Some(""), None).unwrap(), SieveLocation::default());
        assert_eq!(
            sl(Some("~/.dovecot.sieve"), Some("~/sieve")).unwrap(),
            SieveLocation {
                script: Some(h.join(".dovecot.sieve")),
                dir: Some(h.join("sieve")),
            }
        );
        assert_eq!(
            sl(
                Some("file:~/scripts;active=~/.active.sieve"),
                Some("/ignored")
            )
            .unwrap(),
            SieveLocation {
                script: Some(h.join(".active.sieve")),
                dir: Some(h.join("scripts")),
            }
        );
        assert_eq!(
            sl(Some("file:/s/alice;bindir=~/.bin"), None).unwrap(),
            SieveLocation {
                script: Some(h.join(".dovecot.sieve")),
                dir: Some("/s/alice".into()),
            }
        );
        assert_eq!(sl(None, Some("/d")).unwrap().dir, Some("/d".into()));
    }

    #[test]
    fn sieve_other_storages_and_bad_options_are_refused() {
        assert!(sl(Some("ldap:/etc/dovecot/sieve-ldap.conf"), None)
            .unwrap_err()
            .contains("ldap"));
        assert!(sl(Some("dict:proxy::sieve;name=x"), None).is_err());
        assert!(sl(Some("file:~/sieve;frob=1"), None)
            .unwrap_err()
            .contains("frob"));
        assert!(sl(Some("file:"), None).is_err());
    }
}
