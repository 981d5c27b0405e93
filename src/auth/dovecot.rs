//! A login and password checked by Dovecot's auth service over its
//! auth-client socket (the protocol Dovecot's own login processes speak),
//! for ManageSieve with `[users] driver = "dovecot"`. Must not log or keep
//! the password, wait past the timeout, or read unbounded data; blocking.
//!
//! # Protocol (Dovecot 2.3 auth-client)
//!
//! Client `VERSION\t1\t2` and `CPID\t<pid>`; server `VERSION`, `MECH`
//! lines, `SPID`, `CUID`, `COOKIE`, `DONE`. Then
//! `AUTH\t<id>\tPLAIN\tservice=sieve\tresp=<base64 of \0login\0password>`,
//! answered by `OK\t<id>\tuser=<name>...` or `FAIL\t<id>[\tcode=...]`
//! (`code=temp_fail`: Dovecot could not decide; a temporary failure).
//!
//! Dovecot refuses a second connection that gives the same CPID, so
//! logins take turns on one connection at a time, opened for the login and
//! closed after it (ManageSieve logins are rare; a refused one waits out
//! Dovecot's `auth_failure_delay` while holding the turn). `secured` is not
//! sent: the ManageSieve session itself decides where plaintext logins are
//! allowed.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::users::dovecot::wire::{fields, Conn, WireError};

/// Why Dovecot could not decide a login: a temporary failure.
#[derive(Debug, thiserror::Error)]
pub enum DovecotAuthError {
    #[error("dovecot auth {path}: {reason}")]
    Wire { path: String, reason: String },
    #[error("dovecot auth {path}: temporary failure{reason}")]
    Temporary { path: String, reason: String },
}

/// One login at a time (see the module doc).
static TURN: Mutex<()> = Mutex::new(());

/// `Ok(Some(name))`: Dovecot accepted the password and calls the user
/// `name` (look it up in the users directory for the script store).
/// `Ok(None)`: refused (unknown user and wrong password alike).
pub fn authenticate(
    socket: &Path,
    timeout: Duration,
    login: &str,
    password: &[u8],
) -> Result<Option<String>, DovecotAuthError> {
    if login.is_empty() || login.contains('\0') || password.contains(&0) {
        return Ok(None);
    }
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let deadline = Instant::now() + timeout;
    let wire = |e: WireError| DovecotAuthError::Wire {
        path: socket.display().to_string(),
        reason: e.to_string(),
    };
    let mut c = Conn::connect(socket).map_err(wire)?;
    handshake(&mut c, deadline).map_err(wire)?;
    c.send(&auth_request(1, login, password), deadline)
        .map_err(wire)?;
    let line = c.read_line(deadline).map_err(wire)?;
    verdict(&line, 1).map_err(|e| match e {
        Verdict::Wire(source) => wire(source),
        Verdict::Temporary(reason) => DovecotAuthError::Temporary {
            path: socket.display().to_string(),
            reason,
        },
    })
}

/// For `mailstow config check`: connect and complete the handshake.
pub fn probe(socket: &Path, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut c = Conn::connect(socket).map_err(|e| e.to_string())?;
    handshake(&mut c, deadline).map_err(|e| e.to_string())
}

/// Send VERSION and CPID, read the server's lines up to DONE; PLAIN must
/// be among its mechanisms.
fn handshake(c: &mut Conn, deadline: Instant) -> Result<(), WireError> {
    let hello = format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id());
    c.send(hello.as_bytes(), deadline)?;
    let mut plain = false;
    for _ in 0..64 {
        let f = fields(&c.read_line(deadline)?)?;
        match f.first().map(String::as_str) {
            Some("VERSION") if f.get(1).map(String::as_str) != Some("1") => {
                return Err(WireError::Protocol(format!(
                    "server speaks version {:?}, not 1",
                    f.get(1)
                )))
            }
            Some("MECH") if f.get(1).is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")) => {
                plain = true
            }
            Some("DONE") if plain => return Ok(()),
            Some("DONE") => {
                return Err(WireError::Protocol(
                    "the PLAIN mechanism is not offered (auth_mechanisms)".into(),
                ))
            }
            _ => {}
        }
    }
    Err(WireError::Protocol("no DONE in the handshake".into()))
}

/// The AUTH line; the password only ever appears base64-encoded in it.
fn auth_request(id: u32, login: &str, password: &[u8]) -> Vec<u8> {
    let mut resp = Vec::with_capacity(login.len() + password.len() + 2);
    resp.push(0);
    resp.extend_from_slice(login.as_bytes());
    resp.push(0);
    resp.extend_from_slice(password);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&resp);
    format!("AUTH\t{id}\tPLAIN\tservice=sieve\tresp={b64}\n").into_bytes()
}

enum Verdict {
    Wire(WireError),
    Temporary(String),
}

/// The answer to request `id`: OK with `user=`, or FAIL (temporary when
/// its code says so). CONT or anything else is a protocol error: PLAIN
/// with an initial response needs no second round.
fn verdict(line: &[u8], id: u32) -> Result<Option<String>, Verdict> {
    let f = fields(line).map_err(Verdict::Wire)?;
    if f.get(1).and_then(|s| s.parse::<u32>().ok()) != Some(id) {
        return Err(Verdict::Wire(WireError::Protocol(
            "reply to another request".into(),
        )));
    }
    let value = |key: &str| {
        f.iter()
            .skip(2)
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    match f[0].as_str() {
        "OK" => match value("user") {
            Some(u) if !u.is_empty() => Ok(Some(u.to_owned())),
            _ => Err(Verdict::Wire(WireError::Protocol(
                "OK without a user name".into(),
            ))),
        },
        "FAIL" if value("code") == Some("temp_fail") || f.iter().any(|x| x == "temp") => {
            Err(Verdict::Temporary(
                value("reason")
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
            ))
        }
        "FAIL" => Ok(None),
        other => Err(Verdict::Wire(WireError::Protocol(format!(
            "unexpected reply {:?}",
            other.chars().take(20).collect::<String>()
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_request_carries_the_login_and_password_in_base64_only() {
        let line = String::from_utf8(auth_request(3, "alice@x.org", b"s3cret")).unwrap();
        assert!(!line.contains("s3cret"));
        let resp = line.trim_end().rsplit_once("resp=").unwrap().1;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(resp)
            .unwrap();
        assert_eq!(raw, b"\0alice@x.org\0s3cret");
        assert!(line.starts_with("AUTH\t3\tPLAIN\tservice=sieve\t"));
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(b"OK\t1\tuser=alice@x.org\toriginal_user=Alice", 1).ok(),
            Some(Some("alice@x.org".into()))
        );
        assert_eq!(verdict(b"FAIL\t1\tuser=alice", 1).ok(), Some(None));
        assert_eq!(verdict(b"FAIL\t1\tcode=authz_fail", 1).ok(), Some(None));
        assert!(matches!(
            verdict(b"FAIL\t1\tcode=temp_fail\treason=db", 1),
            Err(Verdict::Temporary(r)) if r == ": db"
        ));
        assert!(matches!(
            verdict(b"FAIL\t1\ttemp", 1),
            Err(Verdict::Temporary(_))
        ));
        for bad in [&b"OK\t1"[..], b"OK\t2\tuser=a", b"CONT\t1\t", b"", b"\t"] {
            assert!(matches!(verdict(bad, 1), Err(Verdict::Wire(_))), "{bad:?}");
        }
    }

    /// A fake auth-client server: accepts alice/right.
    fn fake(mech: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-client");
        let l = UnixListener::bind(&path).unwrap();
        let mech = mech.to_owned();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let mut w = s.try_clone().unwrap();
                let hello = format!(
                    "VERSION\t1\t2\nMECH\t{mech}\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\tab\nDONE\n"
                );
                let _ = w.write_all(hello.as_bytes());
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    if !line.starts_with("AUTH\t") {
                        continue;
                    }
                    let ok = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0right");
                    let reply = if line.ends_with(&format!("resp={ok}")) {
                        "OK\t1\tuser=alice@x.org\n"
                    } else {
                        "FAIL\t1\tuser=alice\n"
                    };
                    let _ = w.write_all(reply.as_bytes());
                }
            }
        });
        (dir, path)
    }

    #[test]
    fn a_login_against_a_fake_server() {
        let (_d, path) = fake("PLAIN");
        let t = Duration::from_secs(5);
        assert_eq!(
            authenticate(&path, t, "alice", b"right").unwrap(),
            Some("alice@x.org".into())
        );
        assert_eq!(authenticate(&path, t, "alice", b"wrong").unwrap(), None);
        assert_eq!(authenticate(&path, t, "a\0b", b"right").unwrap(), None);
        assert!(probe(&path, t).is_ok());
    }

    #[test]
    fn no_plain_mechanism_or_no_socket_is_temporary_and_says_why() {
        let (_d, path) = fake("CRAM-MD5");
        let e = authenticate(&path, Duration::from_secs(5), "alice", b"right").unwrap_err();
        assert!(e.to_string().contains("PLAIN"), "{e}");
        let e = authenticate(
            &path.with_file_name("missing"),
            Duration::from_secs(5),
            "alice",
            b"right",
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(!e.to_string().contains("right"));
    }
}
