//! Session tests: whole conversations through the reader and the session,
//! with an in-memory store standing in for the user's sieve directory.

use super::tests_support::{config, Memory};
use super::*;
use crate::managesieve::parse::{Limits, Reader};

/// A conversation: the client's bytes, the server's bytes, the actions.
/// Credentials "alice"/"secret" are accepted, "tmp" is a temporary failure.
struct Talk {
    session: Session,
    reader: Reader,
    store: Memory,
    actions: Vec<Action>,
}

impl Talk {
    fn new(cfg: Config) -> Talk {
        Talk {
            session: Session::new(cfg),
            reader: Reader::new(Limits {
                max_line: 1024,
                max_literal: 4096,
            }),
            store: Memory::default(),
            actions: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> String {
        self.reader.push(bytes);
        let mut out = Vec::new();
        while let Some(line) = self.reader.next_line() {
            let scripts: Option<&mut dyn Scripts> = if self.session.user().is_some() {
                Some(&mut self.store)
            } else {
                None
            };
            let (bytes, action) = self.session.handle(line, scripts);
            out.extend_from_slice(&bytes);
            if let Action::Authenticate {
                authc, password, ..
            } = &action
            {
                let verdict = match (authc.as_str(), password.as_slice()) {
                    ("alice", b"secret") => Ok(Some("alice@example.org".to_owned())),
                    ("tmp", _) => Err("passwd-file unreadable".to_owned()),
                    _ => Ok(None),
                };
                let (bytes, next) = self.session.authenticated(verdict);
                out.extend_from_slice(&bytes);
                self.actions.push(action);
                self.actions.push(next);
            } else {
                self.actions.push(action);
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn login(&mut self) {
        // "\0alice\0secret"
        let r = self.send(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\n");
        assert_eq!(r, "OK \"Logged in.\"\r\n");
    }
}

#[test]
fn the_greeting_lists_the_capabilities_of_rfc_5804() {
    let t = Talk::new(config(true, false));
    let g = String::from_utf8(t.session.greeting()).unwrap();
    assert_eq!(
        g,
        "\"IMPLEMENTATION\" \"mailstow\"\r\n\"SIEVE\" \"fileinto vacation\"\r\n\"SASL\" \"\"\r\n\
         \"STARTTLS\"\r\n\"NOTIFY\" \"mailto\"\r\n\"MAXREDIRECTS\" \"4\"\r\n\"VERSION\" \"1.0\"\r\n\
         OK \"mailstow ManageSieve ready.\"\r\n"
    );
}

#[test]
fn plaintext_needs_tls_unless_allowed_and_starttls_resends_the_capabilities() {
    let mut t = Talk::new(config(true, false));
    let r = t.send(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\n");
    assert!(r.starts_with("NO (ENCRYPT-NEEDED) "), "{r}");
    assert!(t.session.user().is_none());
    let r = t.send(b"STARTTLS\r\n");
    assert_eq!(r, "OK \"Begin TLS negotiation now.\"\r\n");
    assert_eq!(t.actions.last(), Some(&Action::StartTls));
    let caps = String::from_utf8(t.session.tls_started()).unwrap();
    assert!(caps.contains("\"SASL\" \"PLAIN LOGIN\"\r\n"), "{caps}");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    assert!(t.send(b"STARTTLS\r\n").starts_with("NO "));
    t.login();
    assert_eq!(t.session.user(), Some("alice@example.org"));
}

#[test]
fn plain_and_login_with_and_without_initial_responses() {
    let mut t = Talk::new(config(false, true));
    assert_eq!(t.send(b"AUTHENTICATE \"PLAIN\"\r\n"), "\"\"\r\n");
    assert_eq!(
        t.send(b"{20+}\r\nAGFsaWNlAHNlY3JldA==\r\n"),
        "OK \"Logged in.\"\r\n"
    );
    assert_eq!(
        t.send(b"UNAUTHENTICATE\r\n"),
        "OK \"Unauthenticate completed.\"\r\n"
    );
    assert!(t.session.user().is_none());
    // LOGIN: "Username:" and "Password:" challenges, base64.
    assert_eq!(
        t.send(b"AUTHENTICATE \"LOGIN\"\r\n"),
        "\"VXNlcm5hbWU6\"\r\n"
    );
    assert_eq!(t.send(b"\"YWxpY2U=\"\r\n"), "\"UGFzc3dvcmQ6\"\r\n");
    assert_eq!(t.send(b"\"c2VjcmV0\"\r\n"), "OK \"Logged in.\"\r\n");
    assert_eq!(t.session.user(), Some("alice@example.org"));
}

#[test]
fn failures_cancel_bad_base64_and_too_many_failures_close() {
    let mut t = Talk::new(config(false, true));
    assert_eq!(t.send(b"AUTHENTICATE \"PLAIN\"\r\n"), "\"\"\r\n");
    assert_eq!(t.send(b"\"*\"\r\n"), "NO \"Authentication cancelled.\"\r\n");
    assert!(t
        .send(b"AUTHENTICATE \"PLAIN\" \"!!!\"\r\n")
        .starts_with("NO \"Invalid base64"));
    assert!(t.send(b"AUTHENTICATE \"CRAM-MD5\"\r\n").starts_with("NO "));
    // A temporary failure says so and costs no attempt.
    let r = t.send(b"AUTHENTICATE \"PLAIN\" \"AHRtcAB4\"\r\n");
    assert_eq!(r, "NO (TRYLATER) \"Temporary authentication failure.\"\r\n");
    // Wrong password and unknown user read the same.
    let wrong = t.send(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHdyb25n\"\r\n");
    let unknown = t.send(b"AUTHENTICATE \"PLAIN\" \"AGJvYgBzZWNyZXQ=\"\r\n");
    assert_eq!(wrong, "NO \"Authentication failed.\"\r\n");
    assert_eq!(wrong, unknown);
    let third = t.send(b"AUTHENTICATE \"PLAIN\" \"AGJvYgBzZWNyZXQ=\"\r\n");
    assert_eq!(third, "BYE \"Too many authentication failures.\"\r\n");
    assert_eq!(t.actions.last(), Some(&Action::Close));
}

#[test]
fn acting_as_another_user_is_refused_without_asking() {
    let mut t = Talk::new(config(false, true));
    // authz "bob", authc "alice", password "secret".
    let r = t.send(b"AUTHENTICATE \"PLAIN\" \"Ym9iAGFsaWNlAHNlY3JldA==\"\r\n");
    assert_eq!(r, "NO \"Authentication failed.\"\r\n");
    assert!(!t
        .actions
        .iter()
        .any(|a| matches!(a, Action::Authenticate { .. })));
}

#[test]
fn commands_before_authentication_are_refused_and_bounded() {
    let mut t = Talk::new(config(false, true));
    assert_eq!(t.send(b"LISTSCRIPTS\r\n"), "NO \"Authenticate first.\"\r\n");
    assert!(t
        .send(b"GETSCRIPT \"x\"\r\n")
        .starts_with("NO \"Authenticate first."));
    // Ten in all are answered; the eleventh ends the session.
    for _ in 0..8 {
        assert!(t.send(b"NOOP\r\n").starts_with("OK "));
    }
    let r = t.send(b"NOOP\r\n");
    assert!(
        r.ends_with("BYE \"Too many commands without authenticating.\"\r\n"),
        "{r}"
    );
    assert_eq!(t.actions.last(), Some(&Action::Close));
}

#[test]
fn the_script_commands_with_their_response_codes() {
    let mut t = Talk::new(config(false, true));
    t.login();
    assert_eq!(
        t.send(b"PUTSCRIPT \"vacation\" {5+}\r\nkeep;\r\n"),
        "OK \"Putscript completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"PUTSCRIPT \"bad\" \"bogus;\"\r\n"),
        "NO \"line 1: unknown command\"\r\n"
    );
    assert_eq!(
        t.send(b"CHECKSCRIPT \"#warn\"\r\n"),
        "OK (WARNINGS) \"line 1: a warning\"\r\n"
    );
    assert_eq!(
        t.send(b"SETACTIVE \"vacation\"\r\n"),
        "OK \"Setactive completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"LISTSCRIPTS\r\n"),
        "\"vacation\" ACTIVE\r\nOK \"Listscripts completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"GETSCRIPT \"vacation\"\r\n"),
        "{5}\r\nkeep;\r\nOK \"Getscript completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"GETSCRIPT \"nope\"\r\n"),
        "NO (NONEXISTENT) \"There is no script by that name.\"\r\n"
    );
    assert_eq!(
        t.send(b"DELETESCRIPT \"vacation\"\r\n"),
        "NO (ACTIVE) \"The script is active.\"\r\n"
    );
    t.send(b"PUTSCRIPT \"other\" \"keep;\"\r\n");
    assert_eq!(
        t.send(b"RENAMESCRIPT \"other\" \"vacation\"\r\n"),
        "NO (ALREADYEXISTS) \"A script by that name exists.\"\r\n"
    );
    assert_eq!(
        t.send(b"RENAMESCRIPT \"vacation\" \"main\"\r\n"),
        "OK \"Renamescript completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"LISTSCRIPTS\r\n"),
        "\"main\" ACTIVE\r\n\"other\"\r\nOK \"Listscripts completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"SETACTIVE \"\"\r\n"),
        "OK \"Setactive completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"DELETESCRIPT \"main\"\r\n"),
        "OK \"Deletescript completed.\"\r\n"
    );
    assert_eq!(
        t.send(b"HAVESPACE \"x\" 5000\r\n"),
        "NO (QUOTA/MAXSIZE) \"Script too big.\"\r\n"
    );
    assert_eq!(
        t.send(b"HAVESPACE \"x\" 50\r\n"),
        "OK \"Putscript would succeed.\"\r\n"
    );
    assert!(t
        .send(b"HAVESPACE \"x\" \"50\"\r\n")
        .starts_with("NO \"Syntax error"));
    assert_eq!(
        t.send(b"NOOP \"tag \\\"1\\\"\"\r\n"),
        "OK (TAG \"tag \\\"1\\\"\") \"Done.\"\r\n"
    );
    assert_eq!(t.send(b"LOGOUT\r\n"), "OK \"Logout completed.\"\r\n");
    assert_eq!(t.actions.last(), Some(&Action::Close));
}

#[test]
fn an_oversized_script_gets_quota_maxsize_and_the_session_goes_on() {
    let mut t = Talk::new(config(false, true));
    t.login();
    let mut big = b"PUTSCRIPT \"big\" {5000+}\r\n".to_vec();
    big.extend_from_slice(&[b'#'; 5000]);
    big.extend_from_slice(b"\r\nLISTSCRIPTS\r\n");
    assert_eq!(
        t.send(&big),
        "NO (QUOTA/MAXSIZE) \"A string of 5000 octets is too big.\"\r\n\
         OK \"Listscripts completed.\"\r\n"
    );
}

#[test]
fn a_response_text_with_a_line_break_goes_as_a_literal() {
    assert_eq!(quote(b"a\r\nb"), b"{4}\r\na\r\nb".to_vec());
    assert_eq!(quote(b"a\"b\\"), b"\"a\\\"b\\\\\"".to_vec());
}
