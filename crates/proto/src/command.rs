//! One LMTP or SMTP command line (CRLF already removed) parsed into a
//! [`Command`]. Must not keep state or decide replies beyond syntax: the
//! session does that (and which verbs its mode takes).

use super::address::{self, Mailbox};
use super::reply::Reply;

/// The body type named by MAIL FROM's BODY parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

/// MAIL FROM parameters we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: BodyType,
    pub smtputf8: bool,
    /// DSN (RFC 3461) parameters, accepted and kept even though DSN is not
    /// announced: some clients send them anyway.
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// `XMAILSTOW-HOPS=a,b` (LMTP, mailstow's own extension): the proxy
    /// nodes this transaction passed through, oldest first, so a node
    /// that sees itself refuses a routing loop. At most [`MAX_HOPS`]
    /// tokens of at most [`MAX_HOP_LEN`] characters `[A-Za-z0-9-]`.
    pub hops: Vec<String>,
}

/// The most proxy nodes `XMAILSTOW-HOPS` may name.
pub const MAX_HOPS: usize = 16;
/// The longest node token in `XMAILSTOW-HOPS`.
pub const MAX_HOP_LEN: usize = 32;

/// `a,b,c` into tokens; None when the value breaks the limits.
fn parse_hops(v: &str) -> Option<Vec<String>> {
    let hops: Vec<String> = v.split(',').map(str::to_owned).collect();
    let ok = hops.len() <= MAX_HOPS
        && hops.iter().all(|h| {
            !h.is_empty()
                && h.len() <= MAX_HOP_LEN
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(hops)
}

/// RCPT TO parameters we understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// ORCPT (RFC 3461): address type and the decoded original address.
    pub orcpt: Option<(String, String)>,
    pub notify: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Lhlo(String),
    /// HELO (`extended` false) or EHLO: SMTP only; LMTP refuses both
    /// (RFC 2033 4.1). `host` is None when the name is missing or unfit
    /// for a header (the session answers 501 in SMTP mode).
    Helo {
        extended: bool,
        host: Option<String>,
    },
    /// RFC 3207; refused unless the session offers it.
    StartTls,
    Mail(Option<Mailbox>, MailParams),
    Rcpt(Mailbox, RcptParams),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
}

/// Parse one command line. The error is the reply to send.
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    let line = std::str::from_utf8(line)
        .map_err(|_| Reply::new(500, "5.5.2", "Command is not valid UTF-8"))?;
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_arg = |c: Command| {
        if arg.trim().is_empty() {
            Ok(c)
        } else {
            Err(Reply::new(
                501,
                "5.5.4",
                format!("Syntax: {verb} takes no argument"),
            ))
        }
    };
    match verb.as_str() {
        "LHLO" => match hello_name(arg) {
            Some(host) => Ok(Command::Lhlo(host)),
            None => Err(Reply::new(501, "5.5.4", "Syntax: LHLO hostname")),
        },
        "HELO" | "EHLO" => Ok(Command::Helo {
            extended: verb == "EHLO",
            host: hello_name(arg),
        }),
        "STARTTLS" => no_arg(Command::StartTls),
        "MAIL" => parse_mail(arg),
        "RCPT" => parse_rcpt(arg),
        "DATA" => no_arg(Command::Data),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_arg(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arg(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        _ => Err(Reply::new(500, "5.5.2", "Command unrecognized")),
    }
}

/// The client's name from LHLO/EHLO/HELO, when it can go into a header.
fn hello_name(arg: &str) -> Option<String> {
    let host = arg.trim();
    let bad = host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control());
    (!bad).then(|| host.to_owned())
}

/// `prefix` case-insensitively at the start of `arg` (e.g. "FROM:").
fn strip_prefix_ci<'a>(arg: &'a str, prefix: &str) -> Option<&'a str> {
    let head = arg.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &arg[prefix.len()..])
}

fn parse_mail(arg: &str) -> Result<Command, Reply> {
    let rest = strip_prefix_ci(arg, "FROM:")
        .ok_or_else(|| Reply::new(501, "5.5.4", "Syntax: MAIL FROM:<address>"))?;
    let (path, params) = address::parse_path(rest, true)
        .map_err(|e| Reply::new(501, "5.1.7", format!("Bad sender address syntax: {e}")))?;
    let mut p = MailParams::default();
    let list = address::parse_params(params)
        .map_err(|e| Reply::new(501, "5.5.4", format!("Bad parameters: {e}")))?;
    for (key, value) in list {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| Reply::new(501, "5.5.4", "Bad SIZE value"))?;
                p.size = Some(n);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => p.body = BodyType::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                p.body = BodyType::EightBitMime
            }
            ("BODY", _) => return Err(Reply::new(501, "5.5.4", "Unsupported BODY type")),
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("XMAILSTOW-HOPS", Some(v)) => {
                p.hops = parse_hops(&v)
                    .ok_or_else(|| Reply::new(501, "5.5.4", "Bad XMAILSTOW-HOPS value"))?
            }
            ("RET", Some(v))
                if v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS") =>
            {
                p.ret = Some(v.to_ascii_uppercase())
            }
            ("ENVID", Some(v)) => {
                p.envid = Some(
                    address::decode_xtext(&v)
                        .map_err(|e| Reply::new(501, "5.5.4", format!("Bad ENVID: {e}")))?,
                )
            }
            (k, _) => {
                return Err(Reply::new(
                    555,
                    "5.5.4",
                    format!("Unsupported MAIL parameter {k}"),
                ))
            }
        }
    }
    Ok(Command::Mail(path, p))
}

fn parse_rcpt(arg: &str) -> Result<Command, Reply> {
    let rest = strip_prefix_ci(arg, "TO:")
        .ok_or_else(|| Reply::new(501, "5.5.4", "Syntax: RCPT TO:<address>"))?;
    let (path, params) = address::parse_path(rest, false)
        .map_err(|e| Reply::new(501, "5.1.3", format!("Bad recipient address syntax: {e}")))?;
    let mailbox =
        path.ok_or_else(|| Reply::new(501, "5.1.3", "Bad recipient address syntax: empty"))?;
    let mut p = RcptParams::default();
    let list = address::parse_params(params)
        .map_err(|e| Reply::new(501, "5.5.4", format!("Bad parameters: {e}")))?;
    for (key, value) in list {
        match (key.as_str(), value) {
            ("ORCPT", Some(v)) => {
                p.orcpt = Some(
                    address::parse_orcpt(&v)
                        .map_err(|e| Reply::new(501, "5.5.4", format!("Bad ORCPT: {e}")))?,
                )
            }
            ("NOTIFY", Some(v)) => p.notify = Some(v.to_ascii_uppercase()),
            (k, _) => {
                return Err(Reply::new(
                    555,
                    "5.5.4",
                    format!("Unsupported RCPT parameter {k}"),
                ))
            }
        }
    }
    Ok(Command::Rcpt(mailbox, p))
}

fn parse_bdat(arg: &str) -> Result<Command, Reply> {
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let bad = || Reply::new(501, "5.5.4", "Syntax: BDAT size [LAST]");
    let size_word = words.next().ok_or_else(bad)?;
    if !size_word.bytes().all(|b| b.is_ascii_digit()) || size_word.len() > 19 {
        return Err(bad());
    }
    let size = size_word.parse::<u64>().map_err(|_| bad())?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(bad()),
    };
    if words.next().is_some() {
        return Err(bad());
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap_or_else(|r| panic!("{line}: {r}"))
    }
    fn err(line: &str) -> String {
        parse(line.as_bytes()).unwrap_err().summary()
    }

    #[test]
    fn lhlo_name_cannot_carry_control_characters_into_headers() {
        assert!(err("LHLO a\u{1}b").starts_with("501 5.5.4"));
        assert!(err("LHLO a\tb").starts_with("501 5.5.4"));
        assert!(err("LHLO").starts_with("501 5.5.4"));
    }

    #[test]
    fn helo_and_ehlo_keep_a_usable_name_only() {
        assert_eq!(
            ok("ehlo mta.example"),
            Command::Helo {
                extended: true,
                host: Some("mta.example".into())
            }
        );
        assert_eq!(
            ok("HELO"),
            Command::Helo {
                extended: false,
                host: None
            }
        );
        assert_eq!(
            ok("EHLO a\u{1}b"),
            Command::Helo {
                extended: true,
                host: None
            }
        );
        assert_eq!(ok("starttls"), Command::StartTls);
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            ok("lhlo client.example"),
            Command::Lhlo("client.example".into())
        );
        assert_eq!(ok("rset"), Command::Rset);
        assert_eq!(ok("Quit"), Command::Quit);
    }

    #[test]
    fn mail_from_with_parameters() {
        match ok("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8") {
            Command::Mail(Some(m), p) => {
                assert_eq!(m.local, "a");
                assert_eq!(p.size, Some(100));
                assert_eq!(p.body, BodyType::EightBitMime);
                assert!(p.smtputf8);
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            ok("MAIL FROM:<>"),
            Command::Mail(None, MailParams::default())
        );
        match ok("MAIL FROM:<> XMAILSTOW-HOPS=n1,Node-2") {
            Command::Mail(None, p) => assert_eq!(p.hops, ["n1", "Node-2"]),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn bad_mail_parameters_are_refused_with_the_right_code() {
        assert!(err("MAIL FROM:<a@b> FOO=1").starts_with("555 5.5.4"));
        assert!(err("MAIL FROM:<a@b> BODY=BINARYMIME").starts_with("501 5.5.4"));
        assert!(err("MAIL FROM:<a@b> XMAILSTOW-HOPS=a,,b").starts_with("501 5.5.4"));
        let many = vec!["n"; MAX_HOPS + 1].join(",");
        assert!(err(&format!("MAIL FROM:<a@b> XMAILSTOW-HOPS={many}")).starts_with("501 5.5.4"));
        assert!(err("MAIL FROM:<a@b> SIZE=12x").starts_with("501 5.5.4"));
        assert!(err("MAIL TO:<a@b>").starts_with("501 5.5.4"));
        assert!(err("MAIL FROM:<a@b").starts_with("501 5.1.7"));
    }

    #[test]
    fn rcpt_takes_orcpt() {
        match ok("RCPT TO:<alice@example.org> ORCPT=rfc822;bob+2Bx@example.org NOTIFY=NEVER") {
            Command::Rcpt(m, p) => {
                assert_eq!(m.domain, "example.org");
                assert_eq!(p.orcpt, Some(("rfc822".into(), "bob+x@example.org".into())));
                assert_eq!(p.notify.as_deref(), Some("NEVER"));
            }
            c => panic!("{c:?}"),
        }
        assert!(err("RCPT TO:<>").starts_with("501 5.1.3"));
    }

    #[test]
    fn bdat_syntax() {
        assert_eq!(
            ok("BDAT 10"),
            Command::Bdat {
                size: 10,
                last: false
            }
        );
        assert_eq!(
            ok("BDAT 0 LAST"),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        assert!(err("BDAT").starts_with("501"));
        assert!(err("BDAT -1").starts_with("501"));
        assert!(err("BDAT 1 NOW").starts_with("501"));
        assert!(err("BDAT 99999999999999999999").starts_with("501"));
    }

    #[test]
    fn unknown_and_non_utf8_commands() {
        assert!(err("STARTTLS now").starts_with("501 5.5.4"));
        assert!(err("STARTTLSX").starts_with("500 5.5.2"));
        assert!(parse(b"NOOP \xff").is_err());
        assert!(err("DATA now").starts_with("501"));
    }
}
