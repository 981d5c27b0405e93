//! A small blocking SMTP client (RFC 5321) that hands one message to the
//! configured relay: greeting, EHLO (HELO on 5xx), MAIL with SMTPUTF8 and
//! BODY=8BITMIME when needed and offered, RCPT per recipient, DATA with
//! CRLF normalisation and dot-stuffing, QUIT. Every read and write is
//! bounded by one deadline. Must not connect anywhere but the configured
//! relay, pipeline, authenticate, retry or queue; the reply parser and the
//! data encoder do no I/O.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::OutboundError;

/// Longest reply line we accept (RFC 5321 4.5.3.1.5 says 512).
pub(crate) const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one (multi-line) reply.
const MAX_REPLY_LINES: usize = 100;
/// Reply text kept for an error message.
const MAX_ERROR_TEXT: usize = 512;
/// How long to wait for the answer to QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// DATA is written in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// One server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    fn class(&self) -> u16 {
        self.code / 100
    }

    /// All lines joined, control characters removed, bounded.
    fn text(&self) -> String {
        let mut text: String = self
            .lines
            .join(" / ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.len() > MAX_ERROR_TEXT {
            let mut cut = MAX_ERROR_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

/// Collects the lines of one reply (`250-first`, `250 last`).
#[derive(Debug, Default)]
pub(crate) struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feed one line without its CRLF. `Ok(Some)` when the reply is
    /// complete; `Err` names what is wrong with the line.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, String> {
        let shown = || String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        let code = match line.get(..3) {
            Some(d) if d.iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&d[0]) => {
                u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0')
            }
            _ => return Err(format!("malformed reply line {:?}", shown())),
        };
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(format!("malformed reply line {:?}", shown())),
        };
        if self.code.is_some_and(|c| c != code) {
            return Err(format!("reply code changed within a reply: {:?}", shown()));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err("reply has too many lines".to_owned());
        }
        self.code = Some(code);
        let text = line.get(4..).unwrap_or_default();
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(Reply { code, lines }))
    }
}

/// What EHLO announced that we use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extensions {
    pub smtputf8: bool,
    pub eightbitmime: bool,
}

impl Extensions {
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or("");
            if keyword.eq_ignore_ascii_case("SMTPUTF8") {
                ext.smtputf8 = true;
            } else if keyword.eq_ignore_ascii_case("8BITMIME") {
                ext.eightbitmime = true;
            }
        }
        ext
    }
}

/// The message as DATA content: bare LF and bare CR become CRLF, a line
/// starting with `.` gets another, a final CRLF is added when missing, and
/// the terminating `.` CRLF follows. `emit` receives chunks of at most
/// about 64 KiB.
pub(super) fn encode_data<E>(
    message: &[u8],
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut enc = DataEncoder::default();
    let mut out = Vec::with_capacity(CHUNK.min(message.len() + 8) + 8);
    // A piece at most doubles (every byte a bare LF).
    for piece in message.chunks(CHUNK / 2) {
        enc.feed(piece, &mut out);
        emit(&out)?;
        out.clear();
    }
    enc.finish(&mut out);
    emit(&out)
}

/// [`encode_data`] for a message that arrives in pieces (a writer that
/// awaits between them): feed each piece, then finish.
#[derive(Debug)]
pub(crate) struct DataEncoder {
    line_start: bool,
    /// The last byte fed was a CR: a LF right after it is its line end.
    after_cr: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder {
            line_start: true,
            after_cr: false,
        }
    }
}

impl DataEncoder {
    /// Append the DATA form of `piece` to `out`.
    pub(crate) fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        for &b in piece {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.line_start = false;
                }
            }
        }
    }

    /// The final CRLF when missing, and the terminating `.` CRLF.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// A failure that happened before the relay saw any of the transaction, so
/// another transport may try without risking a duplicate.
pub(super) fn unreachable(e: &OutboundError) -> bool {
    match e {
        OutboundError::Io { stage, .. }
        | OutboundError::Timeout { stage, .. }
        | OutboundError::Protocol { stage, .. } => {
            matches!(stage.as_str(), "resolve" | "connect" | "greeting")
        }
        OutboundError::Rejected { stage, .. } => stage == "greeting",
        _ => false,
    }
}

/// Send one message to `server` ("host:port").
pub(super) fn send(
    server: &str,
    helo: &str,
    from: Option<&str>,
    to: &[String],
    message: &[u8],
    deadline: Instant,
) -> Result<(), OutboundError> {
    let mut conn = Conn::connect(server, deadline)?;
    match conn.transaction(helo, from, to, message) {
        Ok(()) => {
            conn.quit();
            tracing::debug!(
                server,
                rcpts = to.len(),
                size = message.len(),
                "handed to relay"
            );
            Ok(())
        }
        Err(e) => {
            // The server is in step only after a reply we did not like.
            if matches!(
                e,
                OutboundError::Rejected { .. } | OutboundError::Unsupported { .. }
            ) {
                conn.quit();
            }
            Err(e)
        }
    }
}

/// One connection to the relay with its read buffer and deadline.
struct Conn<'a> {
    server: &'a str,
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
}

impl<'a> Conn<'a> {
    fn connect(server: &'a str, deadline: Instant) -> Result<Conn<'a>, OutboundError> {
        let io = |stage: &str, source| OutboundError::Io {
            server: server.to_owned(),
            stage: stage.to_owned(),
            source,
        };
        let addrs = server.to_socket_addrs().map_err(|e| io("resolve", e))?;
        let mut last = None;
        for addr in addrs {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    return Ok(Conn {
                        server,
                        stream,
                        buf: Vec::with_capacity(1024),
                        deadline,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if is_timeout(&e) => OutboundError::Timeout {
                server: server.to_owned(),
                stage: "connect".to_owned(),
            },
            Some(e) => io("connect", e),
            None => OutboundError::Timeout {
                server: server.to_owned(),
                stage: "connect".to_owned(),
            },
        })
    }

    fn transaction(
        &mut self,
        helo: &str,
        from: Option<&str>,
        to: &[String],
        message: &[u8],
    ) -> Result<(), OutboundError> {
        let greeting = self.read_reply("greeting")?;
        self.expect(&greeting, "greeting", |c| c == 220)?;

        let ehlo = self.command(&format!("EHLO {helo}"), "EHLO")?;
        let ext = match ehlo.class() {
            2 => Extensions::from_ehlo(&ehlo),
            5 => {
                let reply = self.command(&format!("HELO {helo}"), "HELO")?;
                self.expect(&reply, "HELO", |c| c / 100 == 2)?;
                Extensions::default()
            }
            _ => return Err(self.rejected("EHLO", &ehlo)),
        };

        let utf8 = !from.unwrap_or("").is_ascii() || to.iter().any(|r| !r.is_ascii());
        if utf8 && !ext.smtputf8 {
            return Err(OutboundError::Unsupported {
                server: self.server.to_owned(),
                what: "SMTPUTF8 (a non-ASCII address)",
            });
        }
        let mut mail = format!("MAIL FROM:<{}>", from.unwrap_or(""));
        if ext.eightbitmime && message.iter().any(|&b| b >= 0x80) {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        let reply = self.command(&mail, "MAIL FROM")?;
        self.expect(&reply, "MAIL FROM", |c| c / 100 == 2)?;

        for rcpt in to {
            let stage = format!("RCPT TO:<{rcpt}>");
            let reply = self.command(&stage, &stage)?;
            self.expect(&reply, &stage, |c| c / 100 == 2)?;
        }

        let reply = self.command("DATA", "DATA")?;
        self.expect(&reply, "DATA", |c| c == 354)?;
        encode_data(message, |chunk| self.write_all(chunk, "message data"))?;
        let reply = self.read_reply("end of data")?;
        self.expect(&reply, "end of data", |c| c / 100 == 2)
    }

    /// Say QUIT and wait briefly for the answer; the outcome is already
    /// decided, so errors are ignored.
    fn quit(&mut self) {
        self.deadline = self.deadline.min(Instant::now() + QUIT_WAIT);
        if self.write_all(b"QUIT\r\n", "QUIT").is_ok() {
            let _ = self.read_reply("QUIT");
        }
    }

    fn command(&mut self, line: &str, stage: &str) -> Result<Reply, OutboundError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_all(&bytes, stage)?;
        self.read_reply(stage)
    }

    fn expect(
        &self,
        reply: &Reply,
        stage: &str,
        ok: impl Fn(u16) -> bool,
    ) -> Result<(), OutboundError> {
        if ok(reply.code) {
            Ok(())
        } else {
            Err(self.rejected(stage, reply))
        }
    }

    fn rejected(&self, stage: &str, reply: &Reply) -> OutboundError {
        OutboundError::Rejected {
            server: self.server.to_owned(),
            stage: stage.to_owned(),
            code: reply.code,
            text: reply.text(),
        }
    }

    /// Time left, or a timeout error naming `stage`.
    fn left(&self, stage: &str) -> Result<Duration, OutboundError> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(self.timeout(stage)),
        }
    }

    fn timeout(&self, stage: &str) -> OutboundError {
        OutboundError::Timeout {
            server: self.server.to_owned(),
            stage: stage.to_owned(),
        }
    }

    fn io_error(&self, stage: &str, e: std::io::Error) -> OutboundError {
        if is_timeout(&e) {
            return self.timeout(stage);
        }
        OutboundError::Io {
            server: self.server.to_owned(),
            stage: stage.to_owned(),
            source: e,
        }
    }

    fn write_all(&mut self, mut data: &[u8], stage: &str) -> Result<(), OutboundError> {
        while !data.is_empty() {
            let left = self.left(stage)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| self.io_error(stage, e))?;
            match self.stream.write(data) {
                Ok(0) => {
                    let e = std::io::Error::new(ErrorKind::WriteZero, "connection closed");
                    return Err(self.io_error(stage, e));
                }
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(stage, e)),
            }
        }
        Ok(())
    }

    fn read_reply(&mut self, stage: &str) -> Result<Reply, OutboundError> {
        let mut parser = ReplyParser::default();
        loop {
            let line = self.read_line(stage)?;
            match parser.line(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(detail) => {
                    return Err(OutboundError::Protocol {
                        server: self.server.to_owned(),
                        stage: stage.to_owned(),
                        detail,
                    })
                }
            }
        }
    }

    /// One line without its line end (CRLF or a bare LF).
    fn read_line(&mut self, stage: &str) -> Result<Vec<u8>, OutboundError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(OutboundError::Protocol {
                    server: self.server.to_owned(),
                    stage: stage.to_owned(),
                    detail: "reply line too long".to_owned(),
                });
            }
            let left = self.left(stage)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error(stage, e))?;
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    let e = std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed by the server",
                    );
                    return Err(self.io_error(stage, e));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(stage, e)),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&[u8]]) -> Result<Option<Reply>, String> {
        let mut p = ReplyParser::default();
        let mut last = Ok(None);
        for line in lines {
            last = p.line(line);
        }
        last
    }

    #[test]
    fn multi_line_replies_are_collected_until_the_last_line() {
        let reply = parse(&[b"250-mx.example.org", b"250-8BITMIME", b"250 SMTPUTF8"])
            .unwrap()
            .unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example.org", "8BITMIME", "SMTPUTF8"]);
        let ext = Extensions::from_ehlo(&reply);
        assert!(ext.smtputf8 && ext.eightbitmime);
        assert_eq!(parse(&[b"250-a"]), Ok(None));
        assert_eq!(
            parse(&[b"354"]).unwrap().unwrap(),
            Reply {
                code: 354,
                lines: vec![String::new()]
            }
        );
    }

    #[test]
    fn the_greeting_name_is_not_taken_for_an_extension() {
        let reply = parse(&[b"250-SMTPUTF8 greets you", b"250 PIPELINING"])
            .unwrap()
            .unwrap();
        assert_eq!(Extensions::from_ehlo(&reply), Extensions::default());
    }

    #[test]
    fn malformed_and_inconsistent_replies_are_errors() {
        for bad in [
            &b"25x ok"[..],
            b"250_ok",
            b"hello",
            b"",
            b"650 no",
            b"2500 x",
        ] {
            assert!(parse(&[bad]).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&[b"250-a", b"251 b"]).is_err());
        let many: Vec<&[u8]> = std::iter::repeat_n(&b"250-x"[..], 200).collect();
        assert!(parse(&many).is_err());
    }

    fn data(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_data(message, |c| {
            out.extend_from_slice(c);
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn data_is_dot_stuffed_crlf_normalised_and_terminated() {
        assert_eq!(data(b""), b".\r\n");
        assert_eq!(data(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(data(b"a"), b"a\r\n.\r\n");
        assert_eq!(
            data(b".start\n..two\r\nmid.dot\rbare\r\n.\r\n"),
            b"..start\r\n...two\r\nmid.dot\r\nbare\r\n..\r\n.\r\n"
        );
        // A smuggled end of data stays data.
        assert_eq!(
            data(b"x\n.\nMAIL FROM:<a@b>\n"),
            b"x\r\n..\r\nMAIL FROM:<a@b>\r\n.\r\n"
        );
    }

    #[test]
    fn pieces_split_anywhere_encode_as_the_whole() {
        let message = b".a\r\n.b\rc\n\r\n.\r\nend";
        for cut in 0..message.len() {
            let mut enc = DataEncoder::default();
            let mut out = Vec::new();
            enc.feed(&message[..cut], &mut out);
            enc.feed(&message[cut..], &mut out);
            enc.finish(&mut out);
            assert_eq!(out, data(message), "cut at {cut}");
        }
    }

    #[test]
    fn large_data_comes_in_bounded_chunks_and_intact() {
        let message: Vec<u8> = (0..300_000u32)
            .map(|i| if i % 77 == 0 { b'\n' } else { b'.' })
            .collect();
        let mut chunks = 0;
        let mut out = Vec::new();
        encode_data(&message, |c| {
            assert!(c.len() <= CHUNK + 8);
            chunks += 1;
            out.extend_from_slice(c);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(chunks > 1);
        assert_eq!(out, data(&message));
        assert!(out.ends_with(b"\r\n.\r\n"));
    }
}
