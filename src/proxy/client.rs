//! One LMTP connection from this proxy to a backend node: connect, greeting,
//! LHLO and the extensions it offers, then commands and their replies, and
//! the message data dot-stuffed as it streams. Every read is bounded in
//! length (a line, the lines of a reply) and in time (a deadline per reply),
//! so no backend can grow our memory or hold a client's transaction open.
//! Reuses the outbound SMTP client's reply parser and data encoder. Must
//! not decide what a reply means for the client: the caller relays it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::outbound::smtp::{DataEncoder, Reply as WireReply, ReplyParser, MAX_REPLY_LINE};
use mailstow_proto::Reply;

/// Message data is encoded and written in pieces of this size.
const PIECE: usize = 32 * 1024;

/// What went wrong talking to a backend: its recipients get 451 4.4.1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("{1}: {0}")]
    Io(std::io::Error, &'static str),
    #[error("connection closed ({0})")]
    Closed(&'static str),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("refused us: {0}")]
    Refused(Reply),
}

/// The extensions of the backend's LHLO reply that we use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Extensions {
    pub size: bool,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    /// mailstow's own loop marker.
    pub hops: bool,
}

impl Extensions {
    pub(super) fn from_lhlo(reply: &WireReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or("");
            match keyword.to_ascii_uppercase().as_str() {
                "SIZE" => ext.size = true,
                "8BITMIME" => ext.eightbitmime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "XMAILSTOW-HOPS" => ext.hops = true,
                _ => {}
            }
        }
        ext
    }
}

/// An open LMTP session with a backend, greeted, between transactions or in
/// one.
#[derive(Debug)]
pub struct Conn {
    stream: BufReader<TcpStream>,
    pub ext: Extensions,
    /// For each reply after the greeting.
    timeout: Duration,
}

impl Conn {
    /// Connect to `addr` (`host:port`, names resolved), read the greeting
    /// and send LHLO, all within `connect_timeout`.
    pub async fn open(
        addr: &str,
        helo: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Conn, Error> {
        let deadline = Instant::now() + connect_timeout;
        let tcp = tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(connect_timeout, "connect"))?
            .map_err(Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Conn {
            stream: BufReader::with_capacity(8 * 1024, tcp),
            ext: Extensions::default(),
            timeout,
        };
        let greeting = conn.read_until(deadline, "greeting").await?;
        if greeting.code != 220 {
            return Err(Error::Refused(relayed(greeting)));
        }
        conn.write(format!("LHLO {helo}\r\n").as_bytes(), "LHLO")
            .await?;
        let lhlo = conn.read_until(deadline, "LHLO").await?;
        if lhlo.code != 250 {
            return Err(Error::Refused(relayed(lhlo)));
        }
        conn.ext = Extensions::from_lhlo(&lhlo);
        Ok(conn)
    }

    /// Send one command line (CRLF added) and read its reply.
    pub async fn command(&mut self, line: &str, stage: &'static str) -> Result<Reply, Error> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes, stage).await?;
        self.reply(stage).await
    }

    /// The next reply, within the timeout.
    pub async fn reply(&mut self, stage: &'static str) -> Result<Reply, Error> {
        let deadline = Instant::now() + self.timeout;
        self.read_until(deadline, stage).await.map(relayed)
    }

    /// The message (as the spool holds it) as DATA content, `.` included.
    pub async fn send_data(&mut self, message: &[u8]) -> Result<(), Error> {
        let mut enc = DataEncoder::default();
        let mut out = Vec::with_capacity(2 * PIECE + 8);
        for piece in message.chunks(PIECE) {
            enc.feed(piece, &mut out);
            self.write(&out, "data").await?;
            out.clear();
        }
        enc.finish(&mut out);
        self.write(&out, "data").await
    }

    /// QUIT without waiting long for its answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.stream.get_mut().write_all(b"QUIT\r\n").await;
            let _ = self.stream.get_mut().shutdown().await;
        })
        .await;
    }

    async fn write(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), Error> {
        let w = self.stream.get_mut();
        match tokio::time::timeout(self.timeout, w.write_all(bytes)).await {
            Ok(r) => r.map_err(|e| Error::Io(e, stage)),
            Err(_) => Err(Error::Timeout(self.timeout, stage)),
        }
    }

    /// One whole reply (all its lines) before `deadline`.
    async fn read_until(
        &mut self,
        deadline: Instant,
        stage: &'static str,
    ) -> Result<WireReply, Error> {
        let mut parser = ReplyParser::default();
        let limit = deadline.saturating_duration_since(Instant::now());
        let read = async {
            loop {
                let line = self.read_line(stage).await?;
                if let Some(r) = parser.line(&line).map_err(Error::Protocol)? {
                    return Ok(r);
                }
            }
        };
        tokio::time::timeout_at(deadline.into(), read)
            .await
            .map_err(|_| Error::Timeout(limit, stage))?
    }

    /// One line without its CRLF, at most MAX_REPLY_LINE bytes.
    async fn read_line(&mut self, stage: &'static str) -> Result<Vec<u8>, Error> {
        let mut line = Vec::new();
        loop {
            let buf = self
                .stream
                .fill_buf()
                .await
                .map_err(|e| Error::Io(e, stage))?;
            if buf.is_empty() {
                return Err(Error::Closed(stage));
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if line.len() + take > MAX_REPLY_LINE + 2 {
                return Err(Error::Protocol(format!(
                    "reply line longer than {MAX_REPLY_LINE} bytes"
                )));
            }
            line.extend_from_slice(&buf[..take]);
            self.stream.consume(take);
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }
}

/// A backend's reply as we send it on: code and text as they are (the
/// enhanced code is part of each line's text).
fn relayed(r: WireReply) -> Reply {
    Reply::plain(r.code, r.lines)
}
