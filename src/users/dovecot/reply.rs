//! One auth-userdb reply line (`USER`, `NOTFOUND`, `FAIL`) parsed, and a
//! `USER` reply's fields turned into a [`User`]. Pure: no socket, no
//! clock; the only system call is the uid/gid name lookup (NSS). Must not
//! panic on any input, nor accept a user it cannot deliver to exactly
//! where Dovecot would read (see `location`).

use std::path::{Path, PathBuf};

use super::location::{maildir, sieve_location};
use super::wire::{fields, WireError};
use crate::users::User;

/// What the userdb said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `USER <id> <name> key=value...`: fields in order, `key` alone has
    /// value "". Empty fields are skipped.
    Found {
        name: String,
        fields: Vec<(String, String)>,
    },
    NotFound,
    /// `FAIL <id> [reason=...]`: the userdb could not answer now.
    Fail(Option<String>),
}

/// Parse a reply to request `id`. A reply to another id, or a line that is
/// none of the three, is a protocol error (the connection is dropped).
pub(crate) fn parse(line: &[u8], id: u32) -> Result<Answer, WireError> {
    let f = fields(line)?;
    let mut it = f.into_iter();
    let cmd = it.next().unwrap_or_default();
    let got = it.next().unwrap_or_default();
    if got.parse::<u32>().ok() != Some(id) {
        return Err(WireError::Protocol(format!(
            "reply to request {got:?} while waiting for {id}"
        )));
    }
    let pairs = |it: std::vec::IntoIter<String>| -> Vec<(String, String)> {
        it.filter(|f| !f.is_empty())
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (f, String::new()),
            })
            .collect()
    };
    match cmd.as_str() {
        "USER" => {
            let name = it.next().unwrap_or_default();
            if name.is_empty() {
                return Err(WireError::Protocol("USER reply without a name".into()));
            }
            Ok(Answer::Found {
                name,
                fields: pairs(it),
            })
        }
        "NOTFOUND" => Ok(Answer::NotFound),
        "FAIL" => {
            let reason = pairs(it).into_iter().find(|(k, _)| k == "reason");
            Ok(Answer::Fail(reason.map(|(_, v)| v)))
        }
        other => Err(WireError::Protocol(format!(
            "unexpected reply {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// Fields that shape the user rather than going into `extra`.
const OWN_FIELDS: &[&str] = &[
    "home",
    "uid",
    "gid",
    "mail",
    "sieve",
    "sieve_dir",
    "sieve_user_dir",
];

/// The [`User`] a `USER` reply describes, for a recipient in `domain`
/// (used when the name has none) with `detail`. Err: why it cannot be
/// delivered to (a temporary failure for the caller).
pub(crate) fn user(
    name: &str,
    fields: &[(String, String)],
    domain: &str,
    detail: Option<&str>,
) -> Result<User, String> {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("chroot").is_some_and(|c| !c.is_empty()) {
        return Err("chroot: mailstow does not deliver into a chroot".into());
    }
    let home = match get("home") {
        Some(h) if Path::new(h).is_absolute() => PathBuf::from(h),
        Some(h) => return Err(format!("home={h} is not absolute")),
        None => return Err("no home field".into()),
    };
    let uid = get("uid").map(uid_of).transpose()?;
    let gid = get("gid").map(gid_of).transpose()?;
    if uid == Some(0) {
        return Err("uid=0: mailstow never delivers as root".into());
    }
    let maildir = match get("mail") {
        Some(m) if !m.is_empty() => maildir(m, &home)?,
        _ => home.join("Maildir"),
    };
    let sieve = sieve_location(
        get("sieve"),
        get("sieve_dir").or(get("sieve_user_dir")),
        &home,
    )?;
    let mut extra: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    extra.extend(sieve.script.map(|p| ("sieve".to_owned(), path(p))));
    extra.extend(sieve.dir.map(|p| ("sieve_dir".to_owned(), path(p))));
    let (local, user_domain) = match name.rsplit_once('@') {
        Some((l, d)) => (l.to_owned(), d.to_ascii_lowercase()),
        None => (name.to_owned(), domain.to_ascii_lowercase()),
    };
    Ok(User {
        name: name.to_owned(),
        local,
        domain: user_domain,
        detail: detail.filter(|d| !d.is_empty()).map(str::to_owned),
        uid,
        gid,
        home,
        maildir,
        extra,
    })
}

/// A uid as Dovecot sends it: decimal, or a name resolved through NSS.
fn uid_of(v: &str) -> Result<u32, String> {
    if let Ok(n) = v.parse() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(v) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("uid={v}: no such user")),
        Err(e) => Err(format!("uid={v}: {e}")),
    }
}

fn gid_of(v: &str) -> Result<u32, String> {
    if let Ok(n) = v.parse() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("gid={v}: no such group")),
        Err(e) => Err(format!("gid={v}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replies_of_the_three_kinds() {
        let line = b"USER\t7\talice@x.org\tlocal_name=a\t\thome=/h\tuid=1000\tquota_rule=*:storage=1M\tflag";
        assert_eq!(
            parse(line, 7).unwrap(),
            Answer::Found {
                name: "alice@x.org".into(),
                fields: kv(&[
                    ("local_name", "a"),
                    ("home", "/h"),
                    ("uid", "1000"),
                    ("quota_rule", "*:storage=1M"),
                    ("flag", "")
                ]),
            }
        );
        assert_eq!(parse(b"NOTFOUND\t3", 3).unwrap(), Answer::NotFound);
        assert_eq!(parse(b"FAIL\t3", 3).unwrap(), Answer::Fail(None));
        assert_eq!(
            parse(b"FAIL\t3\treason=db down", 3).unwrap(),
            Answer::Fail(Some("db down".into()))
        );
    }

    #[test]
    fn wrong_ids_and_strange_lines_are_protocol_errors() {
        for (line, id) in [
            (&b"NOTFOUND\t4"[..], 3),
            (b"NOTFOUND", 3),
            (b"NOTFOUND\tx", 3),
            (b"HELLO\t3", 3),
            (b"USER\t3", 3),
            (b"", 1),
        ] {
            assert!(
                matches!(parse(line, id), Err(WireError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn escaped_values_are_unescaped() {
        let a = parse(b"USER\t1\ta\x01tb\thome=/h\x01n", 1).unwrap();
        assert_eq!(
            a,
            Answer::Found {
                name: "a\tb".into(),
                fields: kv(&[("home", "/h\n")])
            }
        );
    }

    #[test]
    fn a_user_from_its_fields() {
        let f = kv(&[
            ("home", "/srv/a"),
            ("uid", "1000"),
            ("gid", "1001"),
            ("mail", "maildir:~/Mail:UTF-8"),
            ("quota_rule", "*:storage=10M"),
            ("quota_rule2", "Trash:ignore"),
            ("sieve", "file:~/sieve;active=~/.dovecot.sieve"),
        ]);
        let u = user("Alice@X.org", &f, "y.org", Some("lists")).unwrap();
        assert_eq!(u.name, "Alice@X.org");
        assert_eq!((u.local.as_str(), u.domain.as_str()), ("Alice", "x.org"));
        assert_eq!(u.detail.as_deref(), Some("lists"));
        assert_eq!((u.uid, u.gid), (Some(1000), Some(1001)));
        assert_eq!(u.maildir, Path::new("/srv/a/Mail"));
        assert_eq!(
            u.extra,
            kv(&[
                ("quota_rule", "*:storage=10M"),
                ("quota_rule2", "Trash:ignore"),
                ("sieve", "/srv/a/.dovecot.sieve"),
                ("sieve_dir", "/srv/a/sieve"),
            ])
        );
        let u = user("bob", &kv(&[("home", "/srv/b")]), "Y.org", None).unwrap();
        assert_eq!(u.maildir, Path::new("/srv/b/Maildir"));
        assert_eq!((u.domain.as_str(), u.uid), ("y.org", None));
    }

    #[test]
    fn names_resolve_and_unusable_fields_are_refused() {
        let f = kv(&[("home", "/h"), ("uid", "root"), ("gid", "root")]);
        assert!(user("a", &f, "x", None).unwrap_err().contains("uid=0"));
        let f = kv(&[("home", "/h"), ("uid", "nobody"), ("gid", "0")]);
        assert!(user("a", &f, "x", None).unwrap().uid.is_some());
        for bad in [
            kv(&[("uid", "1")]),
            kv(&[("home", "rel")]),
            kv(&[("home", "/h"), ("uid", "no-such-user-here")]),
            kv(&[("home", "/h"), ("gid", "no-such-group-here")]),
            kv(&[("home", "/h"), ("mail", "mbox:~/mail")]),
            kv(&[("home", "/h"), ("chroot", "/c")]),
            kv(&[("home", "/h"), ("sieve", "ldap:/x")]),
        ] {
            assert!(user("a", &bad, "x", None).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..300), id in 0u32..5) {
            if let Ok(Answer::Found { name, fields }) = parse(&line, id) {
                let _ = user(&name, &fields, "x.org", None);
            }
        }

        #[test]
        fn structured_replies_never_panic(
            fields in proptest::collection::vec("[a-z_]{0,6}(=[~/a-zA-Z:;=%.+*-]{0,20})?", 0..8)
        ) {
            let line = format!("USER\t1\tu@x\t{}", fields.join("\t"));
            if let Ok(Answer::Found { name, fields }) = parse(line.as_bytes(), 1) {
                let _ = user(&name, &fields, "x.org", None);
            }
        }
    }
}
