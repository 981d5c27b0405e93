//! ManageSieve input (RFC 5804 section 4), sans I/O: bytes in, one line of
//! tokens out at a time: atoms (command names, numbers), quoted strings and
//! literals (`{n}` and `{n+}`, both taken without a continuation, as
//! Dovecot does). Bounded: a line (literals aside) is at most `max_line`
//! bytes, a literal at most `max_literal`; a bigger literal is read and
//! thrown away, never held, and reported once the line ends. Must not
//! interpret commands (session.rs does) or allocate per byte of input
//! beyond the bounds.

/// One token of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A run of atom characters: a command name or a number.
    Atom(String),
    /// A quoted string or a literal, as bytes (UTF-8 is checked by the
    /// session where the grammar asks for it).
    Str(Vec<u8>),
}

/// What the reader made of the next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Tokens(Vec<Token>),
    /// The line broke the grammar; the rest of it was skipped. The text
    /// says how, for a NO reply.
    Bad(String),
    /// A literal over `max_literal` (its bytes were skipped): `size` is
    /// what the client announced.
    TooBig {
        size: u64,
    },
    /// The line, literals aside, exceeded `max_line`; it was skipped.
    TooLong,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    pub max_literal: u64,
}

/// Bytes still to throw away (the line's report went out when the skip
/// began: no later line can come before it).
#[derive(Debug)]
struct Skip {
    /// Literal bytes left to discard.
    octets: u64,
    /// Then discard up to and including the next LF.
    to_eol: bool,
}

#[derive(Debug)]
pub struct Reader {
    limits: Limits,
    buf: Vec<u8>,
    skip: Option<Skip>,
    /// The report of a line being skipped, before any later line.
    ready: std::collections::VecDeque<Line>,
}

impl Reader {
    pub fn new(limits: Limits) -> Reader {
        Reader {
            limits,
            buf: Vec::new(),
            skip: None,
            ready: std::collections::VecDeque::new(),
        }
    }

    /// Hand over bytes read from the client.
    pub fn push(&mut self, mut data: &[u8]) {
        while let Some(skip) = self.skip.as_mut() {
            if skip.octets > 0 {
                let n = (skip.octets as usize).min(data.len());
                skip.octets -= n as u64;
                data = &data[n..];
                if skip.octets > 0 {
                    return;
                }
            }
            if skip.to_eol {
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        data = &data[i + 1..];
                        skip.to_eol = false;
                    }
                    None => return,
                }
            }
            self.skip = None;
        }
        self.buf.extend_from_slice(data);
    }
}

impl Reader {
    /// The next complete line, if the bytes pushed so far hold one.
    pub fn next_line(&mut self) -> Option<Line> {
        if let Some(report) = self.ready.pop_front() {
            return Some(report);
        }
        if self.skip.is_some() {
            return None;
        }
        match parse_line(&self.buf, self.limits) {
            Step::More => {
                // Without a line end within the limit, the line is too long.
                let line_part = self.buf.len() as u64;
                if line_part > self.limits.max_line as u64 + self.limits.max_literal + 64 {
                    self.start_skip(0, true, Line::TooLong);
                }
                None
            }
            Step::Done(consumed, line) => {
                self.buf.drain(..consumed);
                Some(line)
            }
            Step::Skip {
                consumed,
                octets,
                to_eol,
                report,
            } => {
                self.buf.drain(..consumed);
                self.start_skip(octets, to_eol, report);
                self.next_line()
            }
        }
    }

    fn start_skip(&mut self, octets: u64, to_eol: bool, report: Line) {
        let rest = std::mem::take(&mut self.buf);
        self.ready.push_back(report);
        self.skip = Some(Skip { octets, to_eol });
        self.push(&rest);
    }
}

enum Step {
    /// No complete line yet.
    More,
    /// A line of `usize` bytes.
    Done(usize, Line),
    /// Throw away `consumed` bytes, then `octets` more, then (if `to_eol`)
    /// the rest of the line; then report.
    Skip {
        consumed: usize,
        octets: u64,
        to_eol: bool,
        report: Line,
    },
}

fn is_atom_char(b: u8) -> bool {
    // RFC 5804: ATOM-CHAR is any CHAR except atom-specials: "(" ")" "{" SP
    // CTL "%" "*" DQUOTE "\" "]".
    b.is_ascii()
        && !b.is_ascii_control()
        && !matches!(
            b,
            b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
        )
}

impl Step {
    /// The line broke the grammar at `at`: skip the rest of it.
    fn bad(at: usize, why: &str) -> Step {
        Step::Skip {
            consumed: at,
            octets: 0,
            to_eol: true,
            report: Line::Bad(why.to_owned()),
        }
    }

    /// The line is over the limit by `consumed`: skip the rest of it.
    fn too_long(consumed: usize) -> Step {
        Step::Skip {
            consumed,
            octets: 0,
            to_eol: true,
            report: Line::TooLong,
        }
    }
}

/// A token read from a line, or (Err) what to do instead: wait for more
/// bytes or skip.
type Scan = Result<Scanned, Step>;

struct Scanned {
    token: Token,
    /// The offset just past it.
    end: usize,
    /// What it adds to the line's length (literal data does not count).
    len: usize,
}

fn parse_line(buf: &[u8], limits: Limits) -> Step {
    let mut tokens = Vec::new();
    let mut i = 0;
    // Bytes of the line outside literals.
    let mut line_len = 0usize;
    loop {
        if line_len > limits.max_line {
            return Step::too_long(i);
        }
        let Some(&b) = buf.get(i) else {
            return Step::More;
        };
        let scan = match b {
            b'\r' => match buf.get(i + 1) {
                None => return Step::More,
                Some(b'\n') => return Step::Done(i + 2, Line::Tokens(tokens)),
                Some(_) => return Step::bad(i, "a CR not followed by LF"),
            },
            // A bare LF ends a line too (Dovecot is as lenient).
            b'\n' => return Step::Done(i + 1, Line::Tokens(tokens)),
            b' ' if !tokens.is_empty() => {
                i += 1;
                line_len += 1;
                continue;
            }
            b'"' => quoted(buf, i, limits),
            b'{' => literal(buf, i, limits),
            c if is_atom_char(c) => atom(buf, i, limits),
            _ => return Step::bad(i, "a character that starts no token"),
        };
        match scan {
            Ok(s) => {
                tokens.push(s.token);
                line_len += s.len;
                i = s.end;
            }
            Err(step) => return step,
        }
    }
}

/// The quoted string that starts at `buf[i]`.
fn quoted(buf: &[u8], i: usize, limits: Limits) -> Scan {
    let mut s = Vec::new();
    let mut j = i + 1;
    loop {
        match buf.get(j) {
            None if j - i > limits.max_line => return Err(Step::too_long(j)),
            None => return Err(Step::More),
            Some(b'"') => break,
            Some(b'\\') => match buf.get(j + 1) {
                None => return Err(Step::More),
                Some(&c @ (b'"' | b'\\')) => {
                    s.push(c);
                    j += 2;
                }
                Some(_) => return Err(Step::bad(j, "a backslash before neither \" nor \\")),
            },
            Some(b'\r' | b'\n' | 0) => {
                return Err(Step::bad(j, "a quoted string holds CR, LF or NUL"))
            }
            Some(&c) => {
                s.push(c);
                j += 1;
            }
        }
    }
    Ok(Scanned {
        token: Token::Str(s),
        end: j + 1,
        len: j + 1 - i,
    })
}

/// The literal that starts at `buf[i]`: its data is held whole, or, over
/// `max_literal`, skipped.
fn literal(buf: &[u8], i: usize, limits: Limits) -> Scan {
    let (size, start) = literal_header(buf, i)?;
    if size > limits.max_literal {
        return Err(Step::Skip {
            consumed: start,
            octets: size,
            to_eol: true,
            report: Line::TooBig { size },
        });
    }
    let end = start + size as usize;
    if buf.len() < end {
        return Err(Step::More);
    }
    Ok(Scanned {
        token: Token::Str(buf[start..end].to_vec()),
        end,
        len: start - i,
    })
}

/// `{n}` or `{n+}` and CRLF at `buf[i]`: the size, and where the data starts.
fn literal_header(buf: &[u8], i: usize) -> Result<(u64, usize), Step> {
    let Some(close) = buf[i..].iter().take(24).position(|&c| c == b'}') else {
        if buf.len() - i >= 24 {
            return Err(Step::bad(i, "a literal's length is not a number"));
        }
        return Err(Step::More);
    };
    let inner = &buf[i + 1..i + close];
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    let size = match std::str::from_utf8(digits).ok().and_then(|d| {
        (!d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
            .then(|| d.parse::<u64>().ok())
            .flatten()
    }) {
        Some(n) => n,
        None => return Err(Step::bad(i, "a literal's length is not a number")),
    };
    let after = i + close + 1;
    match (buf.get(after), buf.get(after + 1)) {
        (None, _) | (Some(b'\r'), None) => Err(Step::More),
        (Some(b'\r'), Some(b'\n')) => Ok((size, after + 2)),
        _ => Err(Step::bad(
            after,
            "a literal's length is not followed by CRLF",
        )),
    }
}

/// The atom that starts at `buf[i]`.
fn atom(buf: &[u8], i: usize, limits: Limits) -> Scan {
    let n = buf[i..].iter().take_while(|&&c| is_atom_char(c)).count();
    let end = i + n;
    if end == buf.len() {
        // The atom may go on in the next read.
        if n > limits.max_line {
            return Err(Step::too_long(end));
        }
        return Err(Step::More);
    }
    if !matches!(buf[end], b' ' | b'\r' | b'\n') {
        return Err(Step::bad(end, "an atom runs into another token"));
    }
    Ok(Scanned {
        // Atom characters are ASCII.
        token: Token::Atom(String::from_utf8_lossy(&buf[i..end]).into_owned()),
        end,
        len: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_line: 100,
        max_literal: 50,
    };

    fn lines(input: &[u8], chunk: usize) -> Vec<Line> {
        let mut r = Reader::new(LIMITS);
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            r.push(part);
            while let Some(l) = r.next_line() {
                out.push(l);
            }
        }
        out
    }

    fn atom(s: &str) -> Token {
        Token::Atom(s.into())
    }

    fn string(s: &str) -> Token {
        Token::Str(s.as_bytes().to_vec())
    }

    #[test]
    fn commands_with_quoted_strings_and_both_literal_forms() {
        let input = b"PUTSCRIPT \"my \\\"x\\\" \\\\ s\" {5+}\r\nkeep;\r\nAuthenticate \"PLAIN\" {4}\r\nAAAA\r\nHAVESPACE \"a\" 100\r\nLOGOUT\n";
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                lines(input, chunk),
                vec![
                    Line::Tokens(vec![
                        atom("PUTSCRIPT"),
                        string("my \"x\" \\ s"),
                        string("keep;")
                    ]),
                    Line::Tokens(vec![atom("Authenticate"), string("PLAIN"), string("AAAA")]),
                    Line::Tokens(vec![atom("HAVESPACE"), string("a"), atom("100")]),
                    Line::Tokens(vec![atom("LOGOUT")]),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_literal_keeps_crlf_and_any_bytes() {
        let input = b"PUTSCRIPT \"s\" {7+}\r\na\r\n\"{}\0\r\n";
        assert_eq!(
            lines(input, 1),
            vec![Line::Tokens(vec![
                atom("PUTSCRIPT"),
                string("s"),
                Token::Str(b"a\r\n\"{}\0".to_vec())
            ])]
        );
    }

    #[test]
    fn an_oversized_literal_is_skipped_not_held_and_the_next_command_is_read() {
        let mut input = b"PUTSCRIPT \"s\" {60+}\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 60]);
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for chunk in [1, 5, 1000] {
            assert_eq!(
                lines(&input, chunk),
                vec![Line::TooBig { size: 60 }, Line::Tokens(vec![atom("NOOP")])],
                "chunk {chunk}"
            );
        }
        // A huge announced size is skipped as it arrives, never buffered.
        let mut r = Reader::new(LIMITS);
        r.push(b"PUTSCRIPT \"s\" {18446744073709551615+}\r\n");
        assert_eq!(r.next_line(), Some(Line::TooBig { size: u64::MAX }));
        for _ in 0..100 {
            r.push(&[b'y'; 4096]);
            assert_eq!(r.next_line(), None);
        }
        assert!(r.buf.is_empty());
    }

    #[test]
    fn grammar_errors_skip_the_rest_of_the_line() {
        let out = lines(
            b"NOOP \"a\rb\"\r\nX {abc}\r\nY \"bad \\x\"\r\nZ(\r\nNOOP\r\n",
            1,
        );
        assert_eq!(out.len(), 5, "{out:?}");
        assert!(
            out[..4].iter().all(|l| matches!(l, Line::Bad(_))),
            "{out:?}"
        );
        assert_eq!(out[4], Line::Tokens(vec![atom("NOOP")]));
    }

    #[test]
    fn a_line_over_the_limit_is_reported_once_and_skipped() {
        let mut input = b"NOOP \"".to_vec();
        input.extend_from_slice(&[b'a'; 300]);
        input.extend_from_slice(b"\"\r\nNOOP\r\n");
        for chunk in [1, 64, 1000] {
            assert_eq!(
                lines(&input, chunk),
                vec![Line::TooLong, Line::Tokens(vec![atom("NOOP")])],
                "chunk {chunk}"
            );
        }
        let mut atoms = vec![b'A'; 500];
        atoms.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(
            lines(&atoms, 7),
            vec![Line::TooLong, Line::Tokens(vec![atom("NOOP")])]
        );
    }

    proptest! {
        #[test]
        fn any_input_in_any_chunks_never_panics_and_stays_bounded(
            input in proptest::collection::vec(any::<u8>(), 0..600),
            chunk in 1usize..40,
        ) {
            let mut r = Reader::new(LIMITS);
            for part in input.chunks(chunk) {
                r.push(part);
                while r.next_line().is_some() {}
                // At most one line and one literal are ever held.
                prop_assert!(r.buf.len() <= 100 + 50 + 64 + chunk + 30);
            }
        }
    }
}
