//! A login name and password checked against the passwd-file: the user it
//! names (found as the users module finds recipients) and its stored
//! password. Must not tell an unknown user from a wrong password, neither in
//! its answer nor by its time, keep the password, log, or panic; blocking.
//!
//! # Logins
//!
//! `local@domain`, or `local` alone. The domain is compared
//! case-insensitively and the local part exactly first, then ignoring ASCII
//! case when a single entry matches that way; the domain's entries come
//! before entries without a domain, which match a login in any domain (and
//! a login without one). All this is `users`' own code, so a login finds the
//! entry that mail for the same address reaches, except that the recipient
//! delimiter is never applied: `alice+x@` is not alice.
//!
//! # Answers
//!
//! `Ok(Some(user))`: the password is right. `Ok(None)`: an unknown user or a
//! wrong password, alike; an unknown user still costs a check against a
//! dummy SHA512-CRYPT hash (Dovecot's default rounds), and so does a user
//! whose stored scheme is a fast one (plain or digest), so that the common
//! cases take the same time. A user whose hash is costlier (bcrypt, Argon2,
//! more rounds) takes longer: that shows the user exists, as Dovecot's own
//! timing does. `Err`: the file cannot be read, or the entry cannot be
//! checked (a scheme this module refuses) or is unusable for the users
//! module with the right password given; the caller logs it and answers with
//! a temporary failure. An unusable entry with a wrong password is a plain
//! `Ok(None)`, so only someone with the password learns that it is broken.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use super::password::{self, SchemeError};
use crate::users;

/// The user a login authenticated, named as the users module names it:
/// `users::Directory::lookup(&user.local, &user.domain)` finds the same
/// entry, with its home, uid and gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The entry's name, domain lowercased: `alice@example.org`, or `carol`
    /// for an entry without a domain (as `users::User::name`).
    pub name: String,
    /// Local part as written in the file.
    pub local: String,
    /// Lowercased domain: the entry's, or for an entry without a domain
    /// the login's ("" when the login had none).
    pub domain: String,
}

/// Why a login could not be decided: log it, answer a temporary failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The passwd-file could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The entry is unusable for the users module (bad uid, home, ...).
    #[error("{path}:{line}: unusable entry: {reason}", path = path.display())]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The entry's stored password cannot be checked.
    #[error("{path}:{line}: {source}", path = path.display())]
    Password {
        path: PathBuf,
        line: usize,
        source: SchemeError,
    },
}

/// Checked for a login that names no user: SHA512-CRYPT (5000 rounds, as
/// `doveadm pw -s SHA512-CRYPT` writes it) of a random password that was
/// never kept.
const DUMMY: &[u8] = b"{SHA512-CRYPT}$6$50uQ7YQIYWZmqYwC$jVN2K4cakYQG48XyX7CpDNlC7qRCn/3OSNQhWTz.CGCbmoSvLOVgo9hznTUaXyqCAH9aL7/xT97jbqmjfGpZP.";

/// Check `login` and `password` against the passwd-file at `passwd_file`
/// (read afresh). See the module doc for the answers.
pub fn authenticate(
    passwd_file: &Path,
    login: &str,
    password: &[u8],
) -> Result<Option<AuthUser>, AuthError> {
    let bytes = std::fs::read(passwd_file).map_err(|source| AuthError::Read {
        path: passwd_file.to_owned(),
        source,
    })?;
    let found = split_login(login).and_then(|(l, d)| users::credentials(&bytes, l, d));
    let Some(c) = found else {
        black_box(password::verify(DUMMY, password).ok());
        return Ok(None);
    };
    // A missing password field is an empty one: never a match.
    let stored = c.password.unwrap_or_default();
    if !password::is_slow(stored) {
        black_box(password::verify(DUMMY, password).ok());
    }
    match password::verify(stored, password) {
        Ok(false) => Ok(None),
        Err(source) => Err(AuthError::Password {
            path: passwd_file.to_owned(),
            line: c.line,
            source,
        }),
        Ok(true) => match c.broken {
            Some(reason) => Err(AuthError::Broken {
                path: passwd_file.to_owned(),
                line: c.line,
                reason,
            }),
            None => Ok(Some(AuthUser {
                name: c.name,
                local: c.local,
                domain: c.domain,
            })),
        },
    }
}

/// `local@domain` -> (local, domain); `local` -> (local, ""). `None` for a
/// login no entry can have (empty, or an empty local part or domain).
fn split_login(login: &str) -> Option<(&str, &str)> {
    match login.rsplit_once('@') {
        None if !login.is_empty() => Some((login, "")),
        Some((l, d)) if !l.is_empty() && !d.is_empty() => Some((l, d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UsersConfig;
    use std::time::Duration;

    /// Passwords: alice "alice pw" (SHA512-CRYPT from doveadm), bob "bob pw"
    /// (PLAIN), carol "carol pw" (PLAIN, no domain).
    const FILE: &str = "\
# test users
alice@Example.ORG:{SHA512-CRYPT}$6$4YN4KXBY156mCebP$Ibw28KBlzL7fUAatljaYqlIPjzfFqrKy8ZI81hpVr85Fvoviy8E38E/XS7fhRQqPGHRpRWsP.og8RsgvXMdFE.:1000:1000::/home/alice::
bob@example.org:{PLAIN}bob pw:1000:1000::::
carol:{PLAIN}carol pw:1000:1000::::
broken@example.org:{PLAIN}broken pw:abc:1000::::
odd@example.org:{ROT13}x:1000:1000::::
nopw@example.org
empty@example.org::1000:1000::::
Ann@example.org:{PLAIN}Ann pw:1000:1000::::
ann@example.org:{PLAIN}ann pw:1000:1000::::
";

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, FILE).unwrap();
        Fixture { _dir: dir, path }
    }

    fn auth(f: &Fixture, login: &str, pw: &str) -> Option<String> {
        authenticate(&f.path, login, pw.as_bytes())
            .unwrap()
            .map(|u| u.name)
    }

    #[test]
    fn right_password_gives_the_canonical_user() {
        let f = fixture();
        let u = authenticate(&f.path, "alice@example.org", b"alice pw")
            .unwrap()
            .unwrap();
        assert_eq!(
            u,
            AuthUser {
                name: "alice@example.org".into(),
                local: "alice".into(),
                domain: "example.org".into(),
            }
        );
        assert_eq!(
            auth(&f, "bob@example.org", "bob pw").as_deref(),
            Some("bob@example.org")
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_are_the_same_no() {
        let f = fixture();
        assert_eq!(auth(&f, "alice@example.org", "alice PW"), None);
        assert_eq!(auth(&f, "bob@example.org", "bob pw "), None);
        assert_eq!(auth(&f, "bob@example.org", ""), None);
        for login in [
            "nobody@example.org",
            "alice@example.com",
            "alice",
            "",
            "@example.org",
            "alice@",
        ] {
            assert_eq!(auth(&f, login, "alice pw"), None, "{login:?}");
        }
    }

    #[test]
    fn domain_and_local_part_case_follow_the_users_module() {
        let f = fixture();
        assert_eq!(
            auth(&f, "Alice@EXAMPLE.org", "alice pw").as_deref(),
            Some("alice@example.org")
        );
        // Two entries differing only by case: each only by its exact name.
        assert_eq!(
            auth(&f, "Ann@example.org", "Ann pw").as_deref(),
            Some("Ann@example.org")
        );
        assert_eq!(
            auth(&f, "ann@example.org", "ann pw").as_deref(),
            Some("ann@example.org")
        );
        assert_eq!(auth(&f, "ANN@example.org", "ann pw"), None);
        assert_eq!(auth(&f, "ANN@example.org", "Ann pw"), None);
    }

    #[test]
    fn domainless_entries_take_any_domain_and_none() {
        let f = fixture();
        let u = authenticate(&f.path, "carol@Some.Where", b"carol pw")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.name.as_str(), u.domain.as_str()),
            ("carol", "some.where")
        );
        let u = authenticate(&f.path, "carol", b"carol pw")
            .unwrap()
            .unwrap();
        assert_eq!((u.name.as_str(), u.domain.as_str()), ("carol", ""));
        // A login without a domain never reaches an entry with one.
        assert_eq!(auth(&f, "bob", "bob pw"), None);
    }

    #[test]
    fn the_recipient_delimiter_is_not_applied_to_logins() {
        let f = fixture();
        assert_eq!(auth(&f, "bob+x@example.org", "bob pw"), None);
        assert_eq!(auth(&f, "bob-x@example.org", "bob pw"), None);
    }

    #[test]
    fn the_user_found_is_the_one_the_users_directory_finds() {
        let f = fixture();
        let cfg = UsersConfig {
            source: users::Source::PasswdFile(f.path.clone()),
            recipient_delimiter: "+".into(),
        };
        let dir = users::Directory::open(&cfg, Path::new("/srv/mail")).unwrap();
        for (login, pw) in [
            ("ALICE@example.org", "alice pw"),
            ("carol@x.org", "carol pw"),
            ("carol", "carol pw"),
            ("Ann@example.org", "Ann pw"),
        ] {
            let a = authenticate(&f.path, login, pw.as_bytes())
                .unwrap()
                .unwrap();
            let u = dir.lookup(&a.local, &a.domain).unwrap().unwrap();
            assert_eq!(u.name, a.name, "{login}");
            assert_eq!(u.domain, a.domain, "{login}");
            assert_eq!(u.detail, None, "{login}");
        }
        let a = authenticate(&f.path, "alice@example.org", b"alice pw")
            .unwrap()
            .unwrap();
        let u = dir.lookup(&a.local, &a.domain).unwrap().unwrap();
        assert_eq!(u.home, PathBuf::from("/home/alice"));
    }

    #[test]
    fn a_broken_entry_is_an_error_only_for_the_right_password() {
        let f = fixture();
        assert_eq!(auth(&f, "broken@example.org", "wrong"), None);
        let e = authenticate(&f.path, "broken@example.org", b"broken pw").unwrap_err();
        assert!(matches!(e, AuthError::Broken { line: 5, .. }), "{e:?}");
        assert!(e.to_string().contains(":5: unusable entry"), "{e}");
    }

    #[test]
    fn an_uncheckable_password_is_an_error_naming_line_and_scheme() {
        let f = fixture();
        let e = authenticate(&f.path, "odd@example.org", b"x").unwrap_err();
        assert!(matches!(e, AuthError::Password { line: 6, .. }), "{e:?}");
        assert!(e.to_string().contains("\"ROT13\""), "{e}");
    }

    #[test]
    fn empty_or_missing_passwords_never_match() {
        let f = fixture();
        for login in ["nopw@example.org", "empty@example.org"] {
            assert_eq!(auth(&f, login, ""), None, "{login}");
            assert_eq!(auth(&f, login, "x"), None, "{login}");
        }
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = authenticate(&dir.path().join("missing"), "a@b", b"x").unwrap_err();
        assert!(matches!(e, AuthError::Read { .. }));
        assert!(e.to_string().contains("missing"), "{e}");
    }

    /// The work one check does: the CPU time it takes (not wall time, which
    /// a loaded machine stretches), the least of a few runs.
    fn fastest(f: &Fixture, login: &str, pw: &str) -> Duration {
        (0..5)
            .map(|_| {
                let t = crate::auth::thread_cpu_time();
                let _ = authenticate(&f.path, login, pw.as_bytes());
                crate::auth::thread_cpu_time() - t
            })
            .min()
            .unwrap_or_default()
    }

    /// Without the dummy check an unknown user (or a PLAIN one) would answer
    /// in microseconds, a SHA512-CRYPT user in milliseconds.
    #[test]
    fn unknown_users_and_fast_schemes_cost_a_sha512_crypt_check() {
        let f = fixture();
        let known = fastest(&f, "alice@example.org", "wrong");
        let unknown = fastest(&f, "nobody@example.org", "wrong");
        let plain = fastest(&f, "bob@example.org", "wrong");
        assert!(unknown * 3 > known, "unknown {unknown:?}, known {known:?}");
        assert!(plain * 3 > known, "plain {plain:?}, known {known:?}");
        assert!(known * 3 > unknown, "unknown {unknown:?}, known {known:?}");
    }
}
