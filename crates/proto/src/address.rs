//! RFC 5321 paths (`<local@domain>`, 4.1.2) with RFC 6531 UTF-8, ESMTP
//! parameters, RFC 3461 xtext and ORCPT values (with RFC 6533 "utf-8").
//! Pure syntax: must not look anything up, decide policy (SMTPUTF8, known
//! domains, duplicates) or touch I/O, and must not panic on any input.

use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;

/// RFC 5321 4.5.3.1.1: longest local part, in octets as sent.
const MAX_LOCAL: usize = 64;
/// RFC 5321 4.5.3.1.2: longest domain, in octets as sent.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 4.5.3.1.3: longest path, "<" and ">" included.
const MAX_PATH: usize = 256;

/// Why a path or parameter was refused. Each message is short human text
/// meant to follow a 501 reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("Missing '<'")]
    MissingOpen,
    #[error("Missing '>'")]
    MissingClose,
    #[error("Null path not allowed")]
    NullPath,
    #[error("Bad source route")]
    BadRoute,
    #[error("Bad local part syntax")]
    BadLocalPart,
    #[error("Missing domain")]
    MissingDomain,
    #[error("Bad domain syntax")]
    BadDomain,
    #[error("Bad address literal")]
    BadLiteral,
    #[error("Bad address syntax")]
    BadSyntax,
    #[error("Local part too long")]
    LocalTooLong,
    #[error("Domain too long")]
    DomainTooLong,
    #[error("Path too long")]
    PathTooLong,
    #[error("Bad parameter syntax")]
    BadParam,
    #[error("Bad xtext encoding")]
    BadXtext,
    #[error("Bad ORCPT syntax")]
    BadOrcpt,
}

/// One mailbox of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part, unquoted and unescaped.
    pub local: String,
    /// The domain as given (case kept); address literals keep their
    /// brackets (`[127.0.0.1]`, `[IPv6:::1]`). Empty only for the bare
    /// `<Postmaster>` forward path.
    pub domain: String,
}

impl Mailbox {
    /// Whether the address needs no SMTPUTF8 (RFC 6531).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

/// `local@domain`, the local part quoted (RFC 5321 Quoted-string) only when
/// it is not a Dot-string; just `local` when the domain is empty.
impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_char('"')?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char('"')?;
        }
        if !self.domain.is_empty() {
            f.write_char('@')?;
            f.write_str(&self.domain)?;
        }
        Ok(())
    }
}

/// Parse a reverse-path (`allow_null`: MAIL FROM) or forward-path (RCPT
/// TO) at the start of `arg`, the text after "MAIL FROM:" / "RCPT TO:".
/// Leading spaces are tolerated. Returns the mailbox (None for the null
/// path "<>") and the rest of the line (the ESMTP parameters, leading spaces
/// trimmed). A source route is checked and dropped. UTF-8 is accepted
/// anywhere RFC 6531 allows it; the caller checks [`Mailbox::is_ascii`]
/// against SMTPUTF8. A mailbox without domain is accepted only for the
/// forward path `<Postmaster>` (any case), returned with an empty domain.
pub fn parse_path(arg: &str, allow_null: bool) -> Result<(Option<Mailbox>, &str), AddrError> {
    let path = arg.trim_start_matches(' ');
    let mut cur = Cursor::new(path);
    if !cur.eat('<') {
        return Err(AddrError::MissingOpen);
    }
    let mailbox = if cur.eat('>') {
        if !allow_null {
            return Err(AddrError::NullPath);
        }
        None
    } else {
        if cur.peek() == Some('@') {
            skip_route(&mut cur)?;
        }
        let local_start = cur.pos;
        let (local, quoted) = parse_local(&mut cur)?;
        let local_len = cur.pos - local_start;
        let domain = if cur.eat('@') {
            let start = cur.pos;
            parse_domain(&mut cur)?;
            cur.since(start)
        } else if !allow_null
            && !quoted
            && local.eq_ignore_ascii_case("postmaster")
            && cur.peek() == Some('>')
        {
            ""
        } else if matches!(cur.peek(), None | Some('>')) {
            return Err(AddrError::MissingDomain);
        } else {
            return Err(AddrError::BadSyntax);
        };
        if !cur.eat('>') {
            return Err(match cur.peek() {
                None => AddrError::MissingClose,
                Some(_) => AddrError::BadSyntax,
            });
        }
        if local_len > MAX_LOCAL {
            return Err(AddrError::LocalTooLong);
        }
        if domain.len() > MAX_DOMAIN {
            return Err(AddrError::DomainTooLong);
        }
        Some(Mailbox {
            local,
            domain: domain.to_owned(),
        })
    };
    if cur.pos > MAX_PATH {
        return Err(AddrError::PathTooLong);
    }
    let rest = cur.rest();
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddrError::BadSyntax);
    }
    Ok((mailbox, rest.trim_start_matches(' ')))
}

/// ESMTP parameters "KEY=VALUE KEY2" (RFC 5321 4.1.2 Mail-parameters) ->
/// (KEY uppercased, value). Keywords are esmtp-keyword; values esmtp-value
/// (no '=', no spaces, no control characters; UTF-8 allowed per RFC 6531).
/// Repeated spaces are tolerated; duplicates are left to the caller.
pub fn parse_params(rest: &str) -> Result<Vec<(String, Option<String>)>, AddrError> {
    let mut params = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        let mut key_chars = key.chars();
        let key_ok = key_chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && key_chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
        let value_ok = value.is_none_or(|v| !v.is_empty() && v.chars().all(is_esmtp_value_char));
        if !key_ok || !value_ok {
            return Err(AddrError::BadParam);
        }
        params.push((key.to_ascii_uppercase(), value.map(str::to_owned)));
    }
    Ok(params)
}

/// RFC 3461 4 xtext decode ("+2B" -> "+"). Errors on a malformed "+XX",
/// on characters xtext does not allow, on a result that is not UTF-8, and
/// on decoded control characters (space is kept): the value may end up in
/// a DSN header.
pub fn decode_xtext(s: &str) -> Result<String, AddrError> {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(AddrError::BadXtext);
                };
                decoded.push(hi << 4 | lo);
                i += 3;
            }
            b'!'..=b'~' if b != b'=' => {
                decoded.push(b);
                i += 1;
            }
            _ => return Err(AddrError::BadXtext),
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| AddrError::BadXtext)?;
    if text.chars().any(char::is_control) {
        return Err(AddrError::BadXtext);
    }
    Ok(text)
}

/// ORCPT value (RFC 3461 4.2) "rfc822;user+2Bx@example.org" -> ("rfc822",
/// "user+x@example.org"). The address type is returned lowercased. The
/// RFC 6533 "utf-8" type takes raw UTF-8 and "\x{HEX}" escapes instead of
/// xtext. The address is not checked as a mailbox, only for being
/// non-empty and free of control characters.
pub fn parse_orcpt(value: &str) -> Result<(String, String), AddrError> {
    let (kind, encoded) = value.split_once(';').ok_or(AddrError::BadOrcpt)?;
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii() && is_atext(c)) {
        return Err(AddrError::BadOrcpt);
    }
    let kind = kind.to_ascii_lowercase();
    let address = if kind == "utf-8" {
        decode_utf8_addr(encoded)?
    } else {
        decode_xtext(encoded)?
    };
    if address.is_empty() {
        return Err(AddrError::BadOrcpt);
    }
    Ok((kind, address))
}

/// RFC 6533 3 utf-8-addr-xtext / utf-8-addr-unitext / utf-8-address:
/// printable characters, "\x{HEX}" standing for one code point. Any other
/// backslash is kept (a quoted-pair of a utf-8-address).
fn decode_utf8_addr(s: &str) -> Result<String, AddrError> {
    let mut decoded = String::with_capacity(s.len());
    let mut cur = Cursor::new(s);
    while let Some(c) = cur.bump() {
        if c == '\\' && cur.rest().starts_with("x{") {
            cur.pos += 2;
            let start = cur.pos;
            while cur.peek().is_some_and(|h| h.is_ascii_hexdigit()) {
                cur.pos += 1;
            }
            let digits = cur.since(start);
            if !(1..=6).contains(&digits.len()) || !cur.eat('}') {
                return Err(AddrError::BadOrcpt);
            }
            let point = u32::from_str_radix(digits, 16)
                .ok()
                .and_then(char::from_u32)
                .filter(|p| !p.is_control())
                .ok_or(AddrError::BadOrcpt)?;
            decoded.push(point);
        } else if is_esmtp_value_char(c) || c == '=' {
            decoded.push(c);
        } else {
            return Err(AddrError::BadOrcpt);
        }
    }
    Ok(decoded)
}

/// A position in a string that only ever moves by whole characters, so
/// every slice it makes is on a char boundary.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    /// The text from `start` (an earlier position) to here.
    fn since(&self, start: usize) -> &'a str {
        self.s.get(start..self.pos).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        let hit = self.peek() == Some(want);
        if hit {
            self.pos += want.len_utf8();
        }
        hit
    }

    /// Move past characters while `keep` holds.
    fn skip_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }
}

/// A-d-l ":" (RFC 5321 4.1.2): "@one,@two:", checked and dropped.
fn skip_route(cur: &mut Cursor<'_>) -> Result<(), AddrError> {
    loop {
        if !cur.eat('@') {
            return Err(AddrError::BadRoute);
        }
        parse_domain(cur).map_err(|_| AddrError::BadRoute)?;
        if cur.eat(':') {
            return Ok(());
        }
        if !cur.eat(',') {
            return Err(AddrError::BadRoute);
        }
    }
}

/// Local-part = Dot-string / Quoted-string. Returns it unescaped and
/// whether it was quoted.
fn parse_local(cur: &mut Cursor<'_>) -> Result<(String, bool), AddrError> {
    if !cur.eat('"') {
        let start = cur.pos;
        cur.skip_while(|c| is_atext(c) || c == '.');
        let local = cur.since(start);
        if !is_dot_string(local) {
            return Err(AddrError::BadLocalPart);
        }
        return Ok((local.to_owned(), false));
    }
    let mut local = String::new();
    loop {
        match cur.bump() {
            Some('"') => return Ok((local, true)),
            Some('\\') => match cur.bump() {
                Some(c @ ' '..='~') => local.push(c),
                _ => return Err(AddrError::BadLocalPart),
            },
            Some(c) if is_qtext(c) => local.push(c),
            _ => return Err(AddrError::BadLocalPart),
        }
    }
}

/// Domain (labels) or address-literal. Leaves the cursor after it.
fn parse_domain(cur: &mut Cursor<'_>) -> Result<(), AddrError> {
    if cur.eat('[') {
        let start = cur.pos;
        cur.skip_while(|c| matches!(c, '!'..='Z' | '^'..='~'));
        let literal = cur.since(start);
        if !cur.eat(']') || !is_address_literal(literal) {
            return Err(AddrError::BadLiteral);
        }
        return Ok(());
    }
    loop {
        // sub-domain = Let-dig [Ldh-str]: no leading or trailing hyphen.
        if !cur.peek().is_some_and(is_let_dig) {
            return Err(AddrError::BadDomain);
        }
        let start = cur.pos;
        cur.skip_while(|c| is_let_dig(c) || c == '-');
        if cur.since(start).ends_with('-') {
            return Err(AddrError::BadDomain);
        }
        if !cur.eat('.') {
            return Ok(());
        }
    }
}

/// The inside of "[...]": IPv4, "IPv6:" address, or General-address-literal.
fn is_address_literal(literal: &str) -> bool {
    match literal.split_once(':') {
        None => is_ipv4(literal),
        Some((tag, addr)) if tag.eq_ignore_ascii_case("IPv6") => addr.parse::<Ipv6Addr>().is_ok(),
        // Standardized-tag = Ldh-str (ends in Let-dig); 1*dcontent follows.
        Some((tag, content)) => {
            tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && tag.ends_with(|c: char| c.is_ascii_alphanumeric())
                && !content.is_empty()
        }
    }
}

/// IPv4-address-literal: four Snum (1-3 digits, 0-255) with dots.
fn is_ipv4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        let ok = (1..=3).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !ok {
            return false;
        }
    }
    parts == 4
}

/// Dot-string = Atom *("." Atom).
fn is_dot_string(s: &str) -> bool {
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Non-ASCII allowed by RFC 6531 in atoms and labels; control and space
/// characters are refused all the same.
fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

/// atext (RFC 5322 3.2.3, RFC 6531 3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_text(c)
}

/// qtextSMTP (RFC 5321 4.1.2, RFC 6531 3.3): printable ASCII and space,
/// except '"' and '\'; non-ASCII except controls.
fn is_qtext(c: char) -> bool {
    matches!(c, ' '..='!' | '#'..='[' | ']'..='~') || (!c.is_ascii() && !c.is_control())
}

/// Let-dig, with a U-label's non-ASCII characters counted as letters.
fn is_let_dig(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_utf8_text(c)
}

/// esmtp-value (RFC 5321 4.1.2, RFC 6531 3.3): %d33-60 / %d62-126 / UTF-8.
fn is_esmtp_value_char(c: char) -> bool {
    matches!(c, '!'..='<' | '>'..='~') || is_utf8_text(c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.to_owned(),
            domain: domain.to_owned(),
        }
    }

    #[test]
    fn good_paths_parse_to_mailbox_and_rest() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("<user@example.org>", "user", "example.org", ""),
            ("  <user@example.org>", "user", "example.org", ""),
            (
                "<a.b+tag@Example.ORG> SIZE=10",
                "a.b+tag",
                "Example.ORG",
                "SIZE=10",
            ),
            (
                "<u@x>   BODY=8BITMIME  SMTPUTF8",
                "u",
                "x",
                "BODY=8BITMIME  SMTPUTF8",
            ),
            ("<\"john doe\"@example.org>", "john doe", "example.org", ""),
            ("<\"a\\\"b\\\\c\"@x.y>", "a\"b\\c", "x.y", ""),
            ("<\"\"@x.y>", "", "x.y", ""),
            ("<\"a>b\"@x.y>", "a>b", "x.y", ""),
            (
                "<@relay.one,@relay.two:user@example.org>",
                "user",
                "example.org",
                "",
            ),
            ("<@[10.0.0.1]:user@example.org>", "user", "example.org", ""),
            ("<u@[127.0.0.1]>", "u", "[127.0.0.1]", ""),
            ("<u@[IPv6:::1]>", "u", "[IPv6:::1]", ""),
            ("<u@[ipv6:2001:db8::1]>", "u", "[ipv6:2001:db8::1]", ""),
            (
                "<u@[IPv6:::ffff:1.2.3.4]>",
                "u",
                "[IPv6:::ffff:1.2.3.4]",
                "",
            ),
            ("<u@[x-tag:some!content]>", "u", "[x-tag:some!content]", ""),
            ("<u@a-b.c-d9>", "u", "a-b.c-d9", ""),
            ("<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~", "x", ""),
            ("<jörg@bücher.example>", "jörg", "bücher.example", ""),
            ("<\"日本 語\"@例え.jp>", "日本 語", "例え.jp", ""),
            ("<Postmaster>", "Postmaster", "", ""),
            (
                "<postmaster> NOTIFY=NEVER",
                "postmaster",
                "",
                "NOTIFY=NEVER",
            ),
        ];
        for &(input, local, domain, rest) in cases {
            assert_eq!(
                parse_path(input, false),
                Ok((Some(mb(local, domain)), rest)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn null_path_only_where_allowed() {
        assert_eq!(parse_path("<>", true), Ok((None, "")));
        assert_eq!(parse_path(" <> SIZE=5", true), Ok((None, "SIZE=5")));
        assert_eq!(parse_path("<>", false), Err(AddrError::NullPath));
        assert_eq!(
            parse_path("<Postmaster>", true),
            Err(AddrError::MissingDomain)
        );
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        let local64 = "a".repeat(64);
        let local65 = "a".repeat(65);
        let domain255 = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        let domain256 = format!("x{domain255}");
        let long_ok = format!("<{}@{}>", "l".repeat(64), "d".repeat(189));
        let long_bad = format!("<{}@{}>", "l".repeat(64), "d".repeat(190));
        assert!(parse_path(&format!("<{local64}@x>"), false).is_ok());
        assert_eq!(long_ok.len(), 256);
        assert!(parse_path(&long_ok, false).is_ok());
        assert_eq!(domain255.len(), 255);
        let cases: Vec<(String, AddrError)> = vec![
            ("".into(), AddrError::MissingOpen),
            ("user@example.org".into(), AddrError::MissingOpen),
            ("<user@example.org".into(), AddrError::MissingClose),
            ("<\"open@example.org>".into(), AddrError::BadLocalPart),
            ("<<a@b>>".into(), AddrError::BadLocalPart),
            ("<a@b>>".into(), AddrError::BadSyntax),
            ("<a@b>x".into(), AddrError::BadSyntax),
            ("<user>".into(), AddrError::MissingDomain),
            ("<user".into(), AddrError::MissingDomain),
            ("<\"Postmaster\">".into(), AddrError::MissingDomain),
            ("<a b@c>".into(), AddrError::BadSyntax),
            ("<a@b c>".into(), AddrError::BadSyntax),
            ("< a@b>".into(), AddrError::BadLocalPart),
            ("<a@ b>".into(), AddrError::BadDomain),
            ("<a@b >".into(), AddrError::BadSyntax),
            ("<a\u{0}b@c>".into(), AddrError::BadSyntax),
            ("<a@b\tc>".into(), AddrError::BadSyntax),
            ("<\"a\u{7}\"@c>".into(), AddrError::BadLocalPart),
            ("<\"a\\\u{1}\"@c>".into(), AddrError::BadLocalPart),
            ("<a\u{85}b@c>".into(), AddrError::BadSyntax),
            ("<.a@b>".into(), AddrError::BadLocalPart),
            ("<a.@b>".into(), AddrError::BadLocalPart),
            ("<a..b@c>".into(), AddrError::BadLocalPart),
            ("<@b>".into(), AddrError::BadRoute),
            ("<@b,c:a@d>".into(), AddrError::BadRoute),
            ("<@b;a@d>".into(), AddrError::BadRoute),
            ("<a@>".into(), AddrError::BadDomain),
            ("<a@b..c>".into(), AddrError::BadDomain),
            ("<a@b.c.>".into(), AddrError::BadDomain),
            ("<a@-b.c>".into(), AddrError::BadDomain),
            ("<a@b-.c>".into(), AddrError::BadDomain),
            ("<a@b_c>".into(), AddrError::BadSyntax),
            ("<a@[1.2.3]>".into(), AddrError::BadLiteral),
            ("<a@[1.2.3.256]>".into(), AddrError::BadLiteral),
            ("<a@[1.2.3.4.5]>".into(), AddrError::BadLiteral),
            ("<a@[IPv6:1.2.3.4]>".into(), AddrError::BadLiteral),
            ("<a@[IPv6:::1%eth0]>".into(), AddrError::BadLiteral),
            ("<a@[IPv6:::1>".into(), AddrError::BadLiteral),
            ("<a@[tag:]>".into(), AddrError::BadLiteral),
            ("<a@[tag-:x]>".into(), AddrError::BadLiteral),
            ("<a@[]>".into(), AddrError::BadLiteral),
            (format!("<{local65}@x>"), AddrError::LocalTooLong),
            (
                format!("<\"{}\"@x>", "a".repeat(63)),
                AddrError::LocalTooLong,
            ),
            (format!("<a@{domain256}>"), AddrError::DomainTooLong),
            (long_bad, AddrError::PathTooLong),
        ];
        for (input, want) in cases {
            assert_eq!(parse_path(&input, false), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(mb("a.b", "x.y").to_string(), "a.b@x.y");
        assert_eq!(mb("john doe", "x").to_string(), "\"john doe\"@x");
        assert_eq!(mb("a\"b\\c", "x").to_string(), "\"a\\\"b\\\\c\"@x");
        assert_eq!(mb("a..b", "x").to_string(), "\"a..b\"@x");
        assert_eq!(mb("", "x").to_string(), "\"\"@x");
        assert_eq!(mb("Postmaster", "").to_string(), "Postmaster");
        assert_eq!(mb("u", "[IPv6:::1]").to_string(), "u@[IPv6:::1]");
    }

    #[test]
    fn is_ascii_sees_utf8_in_either_part() {
        assert!(mb("a", "b").is_ascii());
        assert!(!mb("ä", "b").is_ascii());
        assert!(!mb("a", "ü.de").is_ascii());
    }

    #[test]
    fn params_parse_to_uppercased_keys() {
        let p = |k: &str, v: Option<&str>| (k.to_owned(), v.map(str::to_owned));
        assert_eq!(parse_params(""), Ok(vec![]));
        assert_eq!(parse_params("   "), Ok(vec![]));
        assert_eq!(parse_params("SIZE=123"), Ok(vec![p("SIZE", Some("123"))]));
        assert_eq!(
            parse_params("size=123 body=8BITMIME  SMTPUTF8 "),
            Ok(vec![
                p("SIZE", Some("123")),
                p("BODY", Some("8BITMIME")),
                p("SMTPUTF8", None)
            ])
        );
        assert_eq!(
            parse_params("ORCPT=rfc822;u+2Bx@y X-9=ü"),
            Ok(vec![
                p("ORCPT", Some("rfc822;u+2Bx@y")),
                p("X-9", Some("ü"))
            ])
        );
        for bad in [
            "A=b=c", "A=", "=b", "-A=b", "A_B=c", "A=b\tc", "A\u{0}", "A=\u{85}", "ü=1",
        ] {
            assert_eq!(parse_params(bad), Err(AddrError::BadParam), "input {bad:?}");
        }
    }

    #[test]
    fn xtext_decodes_hexchars() {
        assert_eq!(decode_xtext("abc"), Ok("abc".into()));
        assert_eq!(decode_xtext(""), Ok("".into()));
        assert_eq!(decode_xtext("a+2Bb+3Dc"), Ok("a+b=c".into()));
        assert_eq!(decode_xtext("a+20b"), Ok("a b".into()));
        assert_eq!(decode_xtext("+2b"), Ok("+".into()));
        assert_eq!(decode_xtext("+C3+A9"), Ok("é".into()));
        for bad in [
            "+", "+2", "+2G", "a=b", "a b", "é", "+0D+0A", "+00", "+C3", "+7F",
        ] {
            assert_eq!(decode_xtext(bad), Err(AddrError::BadXtext), "input {bad:?}");
        }
    }

    #[test]
    fn orcpt_splits_type_and_decodes_address() {
        let ok = |t: &str, a: &str| Ok((t.to_owned(), a.to_owned()));
        assert_eq!(
            parse_orcpt("rfc822;user@example.org"),
            ok("rfc822", "user@example.org")
        );
        assert_eq!(parse_orcpt("RFC822;u+2Bx@y"), ok("rfc822", "u+x@y"));
        assert_eq!(parse_orcpt("x-local;a+3Db"), ok("x-local", "a=b"));
        assert_eq!(parse_orcpt("utf-8;j\\x{F6}rg@x"), ok("utf-8", "jörg@x"));
        assert_eq!(
            parse_orcpt("UTF-8;jörg@bücher.de"),
            ok("utf-8", "jörg@bücher.de")
        );
        assert_eq!(
            parse_orcpt("utf-8;a\\x{2B}b+c=d@x"),
            ok("utf-8", "a+b+c=d@x")
        );
        assert_eq!(parse_orcpt("utf-8;\\x{1F600}@x"), ok("utf-8", "😀@x"));
        assert_eq!(
            parse_orcpt("utf-8;\"a\\\\b\"@x"),
            ok("utf-8", "\"a\\\\b\"@x")
        );
        assert_eq!(parse_orcpt("rfc822;a=b"), Err(AddrError::BadXtext));
        assert_eq!(parse_orcpt("rfc822;+0A"), Err(AddrError::BadXtext));
        for bad in [
            "user@example.org",
            ";a@b",
            "rfc822;",
            "rf c822;a@b",
            "utf-8;\\x{}",
            "utf-8;\\x{D800}",
            "utf-8;\\x{110000}",
            "utf-8;\\x{0A}",
            "utf-8;\\x{1234567}",
            "utf-8;\\x{41",
            "utf-8;a b",
        ] {
            assert_eq!(parse_orcpt(bad), Err(AddrError::BadOrcpt), "input {bad:?}");
        }
    }

    fn atom() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~äß€😀-]{1,8}"
    }

    fn local_part() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(atom(), 1..4).prop_map(|atoms| atoms.join(".")),
            "[ -~ä€\u{3000}]{0,20}",
        ]
    }

    fn domain() -> impl Strategy<Value = String> {
        let label = "[a-z0-9ü]([a-zA-Z0-9ü-]{0,8}[a-z0-9ü])?";
        prop_oneof![
            prop::collection::vec(label, 1..4).prop_map(|labels| labels.join(".")),
            any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("[{a}.{b}.{c}.{d}]")),
            any::<u128>().prop_map(|n| format!("[IPv6:{}]", Ipv6Addr::from(n))),
            "\\[[a-z0-9]-?[a-z0-9]:[!-Z^-~]{1,10}\\]",
        ]
    }

    proptest! {
        #[test]
        fn displayed_mailbox_parses_back_to_itself(
            local in local_part(),
            domain in domain(),
        ) {
            let mailbox = mb(&local, &domain);
            let shown = mailbox.to_string();
            let local_wire = shown.len() - domain.len() - 1;
            prop_assume!(local_wire <= MAX_LOCAL && shown.len() + 2 <= MAX_PATH);
            let path = format!("<{shown}> SIZE=1");
            prop_assert_eq!(parse_path(&path, false), Ok((Some(mailbox.clone()), "SIZE=1")));
            prop_assert_eq!(parse_path(&path, true), Ok((Some(mailbox), "SIZE=1")));
        }

        #[test]
        fn postmaster_alone_parses_back(local in "[pP][oO][sS][tT]master") {
            let mailbox = mb(&local, "");
            let path = format!("<{mailbox}>");
            prop_assert_eq!(parse_path(&path, false), Ok((Some(mailbox), "")));
        }

        #[test]
        fn arbitrary_input_never_panics(
            s in prop_oneof![
                any::<String>(),
                "[<>@\"\\\\.\\[\\]:;, =+{}a-fxIPv6é😀\u{0}\u{85}-]{0,40}",
            ],
        ) {
            for allow_null in [false, true] {
                if let Ok((_, rest)) = parse_path(&s, allow_null) {
                    prop_assert!(s.ends_with(rest));
                }
            }
            let _ = parse_params(&s);
            let _ = decode_xtext(&s);
            let _ = parse_orcpt(&s);
        }
    }
}
