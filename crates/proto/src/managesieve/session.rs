//! The ManageSieve session (RFC 5804), sans I/O: lines from `parse` in,
//! reply bytes and actions out. It keeps the state (before and after
//! authentication, TLS, a SASL exchange under way), answers every command
//! with the RFC's response codes, and asks the caller to check a password
//! or start TLS. Script operations go to a [`Scripts`] the caller gives for
//! the authenticated user. Must not read files, sleep or touch the network.

use base64::Engine;

use super::parse::{Line, Token};

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// The IMPLEMENTATION capability.
    pub implementation: String,
    /// The SIEVE capability: the extensions a user's script may require.
    pub extensions: String,
    pub max_redirects: usize,
    /// The NOTIFY capability (notification methods), empty: not listed.
    pub notify: String,
    /// STARTTLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// Plaintext mechanisms (PLAIN, LOGIN) are allowed without TLS (the
    /// client is on loopback and the admin allowed it).
    pub plaintext_without_tls: bool,
    /// Failed authentications before the connection is closed.
    pub max_auth_failures: u32,
    /// Commands before authentication before the connection is closed.
    pub max_unauthenticated_commands: u32,
}

/// A script operation that failed: the response code (None: plain NO) and
/// the human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<&'static str>,
    pub text: String,
}

impl Failure {
    pub fn new(code: Option<&'static str>, text: impl Into<String>) -> Failure {
        Failure {
            code,
            text: text.into(),
        }
    }
}

/// The authenticated user's scripts (the store, for the session).
pub trait Scripts {
    /// Names, and whether each is the active one.
    fn list(&mut self) -> Result<Vec<(String, bool)>, Failure>;
    fn get(&mut self, name: &str) -> Result<Vec<u8>, Failure>;
    /// Check, then store; Ok holds warnings (none: an empty list).
    fn put(&mut self, name: &str, script: &[u8]) -> Result<Vec<String>, Failure>;
    /// Check only.
    fn check(&mut self, script: &[u8]) -> Result<Vec<String>, Failure>;
    /// None deactivates.
    fn set_active(&mut self, name: Option<&str>) -> Result<(), Failure>;
    fn delete(&mut self, name: &str) -> Result<(), Failure>;
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Failure>;
    fn have_space(&mut self, name: &str, size: u64) -> Result<(), Failure>;
}

/// What the caller must do after sending the reply bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    /// Start TLS now, then call [`Session::tls_started`].
    StartTls,
    /// Check these credentials (delaying a failure), then call
    /// [`Session::authenticated`].
    Authenticate {
        authz: String,
        authc: String,
        password: Vec<u8>,
    },
    /// Close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mech {
    Plain,
    Login,
}

#[derive(Debug)]
enum State {
    /// Not authenticated.
    Anonymous,
    /// A SASL exchange waits for the client's next response.
    Sasl {
        mech: Mech,
        user: Option<String>,
    },
    /// Waiting for the caller's verdict on credentials.
    Checking,
    Authenticated(String),
}

pub struct Session {
    cfg: Config,
    state: State,
    tls: bool,
    failures: u32,
    unauthenticated_commands: u32,
}

impl Session {
    pub fn new(cfg: Config) -> Session {
        Session {
            cfg,
            state: State::Anonymous,
            tls: false,
            failures: 0,
            unauthenticated_commands: 0,
        }
    }

    /// The greeting: the capabilities, then OK.
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = self.capabilities();
        ok(&mut out, None, "mailstow ManageSieve ready.");
        out
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated(u) => Some(u),
            _ => None,
        }
    }

    fn plaintext_allowed(&self) -> bool {
        self.tls || self.cfg.plaintext_without_tls
    }

    fn capabilities(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cap = |name: &str, value: Option<&str>| {
            out.extend_from_slice(&quote(name.as_bytes()));
            if let Some(v) = value {
                out.push(b' ');
                out.extend_from_slice(&quote(v.as_bytes()));
            }
            out.extend_from_slice(b"\r\n");
        };
        cap("IMPLEMENTATION", Some(&self.cfg.implementation));
        cap("SIEVE", Some(&self.cfg.extensions));
        let authenticated = matches!(self.state, State::Authenticated(_));
        if !authenticated {
            let mechs = if self.plaintext_allowed() {
                "PLAIN LOGIN"
            } else {
                ""
            };
            cap("SASL", Some(mechs));
        }
        if self.cfg.starttls && !self.tls && !authenticated {
            cap("STARTTLS", None);
        }
        if !self.cfg.notify.is_empty() {
            cap("NOTIFY", Some(&self.cfg.notify));
        }
        cap("MAXREDIRECTS", Some(&self.cfg.max_redirects.to_string()));
        cap("VERSION", Some("1.0"));
        out
    }

    /// TLS is up: the capabilities again (RFC 5804 2.2).
    pub fn tls_started(&mut self) -> Vec<u8> {
        self.tls = true;
        let mut out = self.capabilities();
        ok(&mut out, None, "TLS negotiation successful.");
        out
    }

    /// The caller's verdict on the credentials of an [`Action::Authenticate`]:
    /// Ok(Some(user)) accepted, Ok(None) refused, Err a temporary failure.
    pub fn authenticated(&mut self, verdict: Result<Option<String>, String>) -> (Vec<u8>, Action) {
        let mut out = Vec::new();
        match verdict {
            Ok(Some(user)) => {
                self.state = State::Authenticated(user);
                ok(&mut out, None, "Logged in.");
                (out, Action::None)
            }
            Ok(None) => {
                self.state = State::Anonymous;
                self.failures += 1;
                if self.failures >= self.cfg.max_auth_failures {
                    bye(&mut out, None, "Too many authentication failures.");
                    return (out, Action::Close);
                }
                no(&mut out, None, "Authentication failed.");
                (out, Action::None)
            }
            Err(_) => {
                self.state = State::Anonymous;
                no(
                    &mut out,
                    Some("TRYLATER"),
                    "Temporary authentication failure.",
                );
                (out, Action::None)
            }
        }
    }

    /// Answer one line from the client. `scripts` is the authenticated
    /// user's store (None before authentication).
    pub fn handle(&mut self, line: Line, scripts: Option<&mut dyn Scripts>) -> (Vec<u8>, Action) {
        let mut out = Vec::new();
        if let State::Sasl { mech, user } = &self.state {
            let (mech, user) = (*mech, user.clone());
            return self.sasl_response(line, mech, user);
        }
        let tokens = match line {
            Line::Tokens(t) if t.is_empty() => {
                no(&mut out, None, "Empty command.");
                return (out, Action::None);
            }
            Line::Tokens(t) => t,
            Line::Bad(why) => {
                no(&mut out, None, &format!("Syntax error: {why}."));
                return self.count_unauthenticated(out);
            }
            Line::TooBig { size } => {
                no(
                    &mut out,
                    Some("QUOTA/MAXSIZE"),
                    &format!("A string of {size} octets is too big."),
                );
                return (out, Action::None);
            }
            Line::TooLong => {
                no(&mut out, None, "Line too long.");
                return (out, Action::None);
            }
        };
        let Token::Atom(name) = &tokens[0] else {
            no(&mut out, None, "A command name must come first.");
            return self.count_unauthenticated(out);
        };
        let name = name.to_ascii_uppercase();
        let args = &tokens[1..];
        let authenticated = matches!(self.state, State::Authenticated(_));
        match (name.as_str(), authenticated) {
            ("CAPABILITY", _) => {
                if let Err(e) = arity(args, 0) {
                    return self.syntax(e);
                }
                out = self.capabilities();
                ok(&mut out, None, "Capability completed.");
            }
            ("NOOP", _) => match args {
                [] => ok(&mut out, None, "NOOP completed."),
                [Token::Str(tag)] => {
                    let code = format!("TAG {}", String::from_utf8_lossy(&quote(tag)));
                    ok_code(&mut out, &code, "Done.");
                }
                _ => return self.syntax("NOOP takes at most one string"),
            },
            ("LOGOUT", _) => {
                ok(&mut out, None, "Logout completed.");
                return (out, Action::Close);
            }
            ("STARTTLS", false) if self.cfg.starttls && !self.tls => {
                if let Err(e) = arity(args, 0) {
                    return self.syntax(e);
                }
                ok(&mut out, None, "Begin TLS negotiation now.");
                return (out, Action::StartTls);
            }
            ("STARTTLS", _) => no(&mut out, None, "STARTTLS is not available now."),
            ("AUTHENTICATE", false) => return self.authenticate(args),
            ("AUTHENTICATE", true) => no(&mut out, None, "Already authenticated."),
            ("UNAUTHENTICATE", true) => {
                if let Err(e) = arity(args, 0) {
                    return self.syntax(e);
                }
                self.state = State::Anonymous;
                ok(&mut out, None, "Unauthenticate completed.");
            }
            (
                "HAVESPACE" | "PUTSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
                | "DELETESCRIPT" | "RENAMESCRIPT" | "CHECKSCRIPT" | "UNAUTHENTICATE",
                false,
            ) => {
                no(&mut out, None, "Authenticate first.");
                return self.count_unauthenticated(out);
            }
            (cmd, true) => match scripts {
                Some(s) => return (script_command(cmd, args, s), Action::None),
                None => no(&mut out, Some("TRYLATER"), "Scripts unavailable."),
            },
            (_, false) => {
                no(&mut out, None, "Unknown command.");
                return self.count_unauthenticated(out);
            }
        }
        if authenticated {
            (out, Action::None)
        } else {
            self.count_unauthenticated(out)
        }
    }

    fn syntax(&mut self, why: &str) -> (Vec<u8>, Action) {
        let mut out = Vec::new();
        no(&mut out, None, &format!("Syntax error: {why}."));
        if matches!(self.state, State::Authenticated(_)) {
            (out, Action::None)
        } else {
            self.count_unauthenticated(out)
        }
    }

    /// Before authentication a client gets a bounded number of commands.
    fn count_unauthenticated(&mut self, mut out: Vec<u8>) -> (Vec<u8>, Action) {
        if matches!(self.state, State::Authenticated(_)) {
            return (out, Action::None);
        }
        self.unauthenticated_commands += 1;
        if self.unauthenticated_commands > self.cfg.max_unauthenticated_commands {
            bye(&mut out, None, "Too many commands without authenticating.");
            return (out, Action::Close);
        }
        (out, Action::None)
    }

    fn authenticate(&mut self, args: &[Token]) -> (Vec<u8>, Action) {
        let mut out = Vec::new();
        let (mech, initial) = match args {
            [Token::Str(m)] => (m, None),
            [Token::Str(m), Token::Str(i)] => (m, Some(i)),
            _ => return self.syntax("AUTHENTICATE takes a mechanism and an optional response"),
        };
        let mech = match String::from_utf8_lossy(mech).to_ascii_uppercase().as_str() {
            "PLAIN" => Mech::Plain,
            "LOGIN" => Mech::Login,
            _ => {
                no(&mut out, None, "Unsupported authentication mechanism.");
                return self.count_unauthenticated(out);
            }
        };
        if !self.plaintext_allowed() {
            no(
                &mut out,
                Some("ENCRYPT-NEEDED"),
                "Plaintext authentication is allowed only over TLS (use STARTTLS).",
            );
            return self.count_unauthenticated(out);
        }
        match (mech, initial) {
            (Mech::Plain, Some(i)) => self.sasl_step(mech, None, i),
            (Mech::Plain, None) => {
                self.state = State::Sasl { mech, user: None };
                out.extend_from_slice(b"\"\"\r\n");
                (out, Action::None)
            }
            (Mech::Login, Some(i)) => self.sasl_step(mech, None, i),
            (Mech::Login, None) => {
                self.state = State::Sasl { mech, user: None };
                challenge(&mut out, b"Username:");
                (out, Action::None)
            }
        }
    }

    /// A line during a SASL exchange: the client's response, or "*".
    fn sasl_response(&mut self, line: Line, mech: Mech, user: Option<String>) -> (Vec<u8>, Action) {
        let response = match line {
            Line::Tokens(t) => match t.as_slice() {
                [Token::Str(r)] => Some(r.clone()),
                _ => None,
            },
            _ => None,
        };
        let mut out = Vec::new();
        match response {
            Some(r) if r == b"*" => {
                self.state = State::Anonymous;
                no(&mut out, None, "Authentication cancelled.");
                self.count_unauthenticated(out)
            }
            Some(r) => self.sasl_step(mech, user, &r),
            None => {
                self.state = State::Anonymous;
                no(&mut out, None, "Syntax error: expected a string.");
                self.count_unauthenticated(out)
            }
        }
    }

    /// One base64 response of the client, for `mech`.
    fn sasl_step(&mut self, mech: Mech, user: Option<String>, b64: &[u8]) -> (Vec<u8>, Action) {
        let mut out = Vec::new();
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            self.state = State::Anonymous;
            no(&mut out, None, "Invalid base64 data in the SASL response.");
            return self.count_unauthenticated(out);
        };
        let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let refused = |s: &mut Session, out: &mut Vec<u8>| {
            s.state = State::Anonymous;
            no(out, None, "Invalid SASL response.");
        };
        match (mech, user) {
            (Mech::Plain, _) => {
                let mut parts = bytes.splitn(3, |&b| b == 0);
                let (Some(authz), Some(authc), Some(pass)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    refused(self, &mut out);
                    return self.count_unauthenticated(out);
                };
                let (Some(authz), Some(authc)) = (utf8(authz), utf8(authc)) else {
                    refused(self, &mut out);
                    return self.count_unauthenticated(out);
                };
                self.check(authz, authc, pass.to_vec())
            }
            (Mech::Login, None) => match utf8(&bytes) {
                Some(u) if !u.is_empty() => {
                    self.state = State::Sasl {
                        mech,
                        user: Some(u),
                    };
                    challenge(&mut out, b"Password:");
                    (out, Action::None)
                }
                _ => {
                    refused(self, &mut out);
                    self.count_unauthenticated(out)
                }
            },
            (Mech::Login, Some(u)) => self.check(String::new(), u, bytes),
        }
    }

    fn check(&mut self, authz: String, authc: String, password: Vec<u8>) -> (Vec<u8>, Action) {
        if authc.is_empty() || (!authz.is_empty() && authz != authc) {
            let mut out = Vec::new();
            self.state = State::Anonymous;
            // Acting as another user (a master login) is not offered.
            no(&mut out, None, "Authentication failed.");
            self.failures += 1;
            return (out, Action::None);
        }
        self.state = State::Checking;
        (
            Vec::new(),
            Action::Authenticate {
                authz,
                authc,
                password,
            },
        )
    }
}

/// The commands of an authenticated user.
fn script_command(cmd: &str, args: &[Token], s: &mut dyn Scripts) -> Vec<u8> {
    let mut out = Vec::new();
    let name = |t: &Token| match t {
        Token::Str(b) => String::from_utf8(b.clone()).ok(),
        Token::Atom(_) => None,
    };
    let syntax = |out: &mut Vec<u8>, why: &str| no(out, None, &format!("Syntax error: {why}."));
    let fail = |out: &mut Vec<u8>, f: Failure| no(out, f.code, &f.text);
    let warnings = |out: &mut Vec<u8>, w: Vec<String>, done: &str| {
        if w.is_empty() {
            ok(out, None, done);
        } else {
            ok(out, Some("WARNINGS"), &w.join("\n"));
        }
    };
    match (cmd, args) {
        ("LISTSCRIPTS", []) => match s.list() {
            Ok(list) => {
                for (n, active) in list {
                    out.extend_from_slice(&quote(n.as_bytes()));
                    if active {
                        out.extend_from_slice(b" ACTIVE");
                    }
                    out.extend_from_slice(b"\r\n");
                }
                ok(&mut out, None, "Listscripts completed.");
            }
            Err(f) => fail(&mut out, f),
        },
        ("GETSCRIPT", [n]) => match name(n) {
            Some(n) => match s.get(&n) {
                Ok(script) => {
                    out.extend_from_slice(format!("{{{}}}\r\n", script.len()).as_bytes());
                    out.extend_from_slice(&script);
                    out.extend_from_slice(b"\r\n");
                    ok(&mut out, None, "Getscript completed.");
                }
                Err(f) => fail(&mut out, f),
            },
            None => syntax(&mut out, "the script name is not a UTF-8 string"),
        },
        ("PUTSCRIPT", [n, Token::Str(script)]) => match name(n) {
            Some(n) => match s.put(&n, script) {
                Ok(w) => warnings(&mut out, w, "Putscript completed."),
                Err(f) => fail(&mut out, f),
            },
            None => syntax(&mut out, "the script name is not a UTF-8 string"),
        },
        ("CHECKSCRIPT", [Token::Str(script)]) => match s.check(script) {
            Ok(w) => warnings(&mut out, w, "Script is valid."),
            Err(f) => fail(&mut out, f),
        },
        ("SETACTIVE", [n]) => match name(n) {
            Some(n) => {
                let target = (!n.is_empty()).then_some(n.as_str());
                match s.set_active(target) {
                    Ok(()) => ok(&mut out, None, "Setactive completed."),
                    Err(f) => fail(&mut out, f),
                }
            }
            None => syntax(&mut out, "the script name is not a UTF-8 string"),
        },
        ("DELETESCRIPT", [n]) => match name(n) {
            Some(n) => match s.delete(&n) {
                Ok(()) => ok(&mut out, None, "Deletescript completed."),
                Err(f) => fail(&mut out, f),
            },
            None => syntax(&mut out, "the script name is not a UTF-8 string"),
        },
        ("RENAMESCRIPT", [a, b]) => match (name(a), name(b)) {
            (Some(a), Some(b)) => match s.rename(&a, &b) {
                Ok(()) => ok(&mut out, None, "Renamescript completed."),
                Err(f) => fail(&mut out, f),
            },
            _ => syntax(&mut out, "the script names must be UTF-8 strings"),
        },
        ("HAVESPACE", [n, Token::Atom(size)]) => match (name(n), size.parse::<u64>()) {
            (Some(n), Ok(size)) => match s.have_space(&n, size) {
                Ok(()) => ok(&mut out, None, "Putscript would succeed."),
                Err(f) => fail(&mut out, f),
            },
            _ => syntax(&mut out, "HAVESPACE takes a script name and a number"),
        },
        (
            "LISTSCRIPTS" | "GETSCRIPT" | "PUTSCRIPT" | "CHECKSCRIPT" | "SETACTIVE"
            | "DELETESCRIPT" | "RENAMESCRIPT" | "HAVESPACE",
            _,
        ) => syntax(&mut out, &format!("wrong arguments for {cmd}")),
        _ => no(&mut out, None, "Unknown command."),
    }
    out
}

fn arity(args: &[Token], n: usize) -> Result<(), &'static str> {
    if args.len() == n {
        Ok(())
    } else {
        Err("wrong number of arguments")
    }
}

/// A string as the server sends it: quoted when short and plain, else a
/// literal (RFC 5804 4: quoted strings hold no CR, LF or NUL, at most 1024
/// octets).
pub fn quote(s: &[u8]) -> Vec<u8> {
    let plain = s.len() <= 1024 && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if !plain {
        let mut out = format!("{{{}}}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        return out;
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

fn response(out: &mut Vec<u8>, word: &str, code: Option<&str>, text: &str) {
    out.extend_from_slice(word.as_bytes());
    if let Some(c) = code {
        out.extend_from_slice(format!(" ({c})").as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(&quote(text.as_bytes()));
    out.extend_from_slice(b"\r\n");
}

fn ok(out: &mut Vec<u8>, code: Option<&str>, text: &str) {
    response(out, "OK", code, text);
}

fn ok_code(out: &mut Vec<u8>, code: &str, text: &str) {
    response(out, "OK", Some(code), text);
}

fn no(out: &mut Vec<u8>, code: Option<&str>, text: &str) {
    response(out, "NO", code, text);
}

fn bye(out: &mut Vec<u8>, code: Option<&str>, text: &str) {
    response(out, "BYE", code, text);
}

/// A SASL challenge: the base64 of `text`, as a string line.
fn challenge(out: &mut Vec<u8>, text: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    out.extend_from_slice(&quote(b64.as_bytes()));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
#[cfg(any(test, feature = "test-support"))]
pub mod tests_support;
