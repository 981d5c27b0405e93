//! The bytes of Dovecot's auth sockets (auth-userdb and auth-client): tab
//! escaping as Dovecot's strescape.c does it, and one blocking unix-socket
//! connection that writes a line and reads bounded lines against a
//! deadline. Must not interpret commands (the callers do), keep a line
//! longer than [`MAX_LINE`] or wait past the deadline.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest reply line accepted. Dovecot's own auth-master client takes
/// 8 KiB; LDAP and SQL replies with many fields may need more.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Why a socket exchange failed. Every kind is a temporary failure for the
/// caller; `broken` tells a dead pooled connection (worth one retry on a
/// fresh one) from a slow or misbehaving server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection closed by the server")]
    Closed,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("reply line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl WireError {
    /// The connection died under us (not a timeout): a reused connection
    /// may simply have been closed by Dovecot while idle.
    pub(crate) fn broken(&self) -> bool {
        match self {
            WireError::Closed => true,
            WireError::Io(e) => matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// Append `s` escaped as Dovecot's `str_append_tabescaped`: \001, tab, CR
/// and LF become \001 followed by `1`, `t`, `r`, `n`.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            0x01 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            _ => out.push(b),
        }
    }
}

/// Undo [`escape_into`] (and `\0010` for NUL, as Dovecot reads it). An
/// unknown escape keeps the character after \001; a trailing \001 is
/// dropped, as `str_append_tabunescaped` does.
pub(crate) fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b != 0x01 {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'0') => out.push(0),
            Some(b'1') => out.push(0x01),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(&o) => out.push(o),
            None => {}
        }
    }
    out
}

/// A line split at tabs, each field unescaped and UTF-8. Dovecot never
/// sends other bytes for the fields we use; anything else is refused.
pub(crate) fn fields(line: &[u8]) -> Result<Vec<String>, WireError> {
    line.split(|&b| b == b'\t')
        .map(|f| {
            String::from_utf8(unescape(f))
                .map_err(|_| WireError::Protocol("a reply field is not UTF-8".into()))
        })
        .collect()
}

/// One connection to an auth socket. Reads are buffered here, never past
/// [`MAX_LINE`] plus one read.
pub(crate) struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn connect(path: &Path) -> Result<Conn, WireError> {
        let stream = UnixStream::connect(path).map_err(WireError::Connect)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Write all of `bytes` before `deadline`.
    pub(crate) fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), WireError> {
        let left = remaining(deadline)?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(WireError::Io)?;
        self.stream.write_all(bytes).map_err(|e| io_error(e, left))
    }

    /// The next line without its LF (a CR before it is kept: Dovecot does
    /// not send one). Fails at the deadline, at EOF, or when a line grows
    /// past [`MAX_LINE`].
    pub(crate) fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, WireError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let line = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE {
                return Err(WireError::TooLong);
            }
            self.fill(deadline)?;
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), WireError> {
        let left = remaining(deadline)?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(WireError::Io)?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(WireError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(io_error(e, left)),
        }
    }
}

/// Time left before `deadline`, or a timeout error when none is.
fn remaining(deadline: Instant) -> Result<Duration, WireError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(WireError::Timeout(Duration::ZERO))
    } else {
        Ok(left)
    }
}

fn io_error(e: std::io::Error, waited: Duration) -> WireError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => WireError::Timeout(waited),
        _ => WireError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn escaping_round_trips_every_special_byte() {
        let raw = b"a\tb\rc\nd\x01e";
        let mut esc = Vec::new();
        escape_into(&mut esc, raw);
        assert_eq!(esc, b"a\x01tb\x01rc\x01nd\x011e");
        assert!(!esc.contains(&b'\t') && !esc.contains(&b'\n'));
        assert_eq!(unescape(&esc), raw);
    }

    #[test]
    fn unescape_reads_nul_unknown_and_truncated_escapes() {
        assert_eq!(unescape(b"x\x010y"), b"x\0y");
        assert_eq!(unescape(b"x\x01zy"), b"xzy");
        assert_eq!(unescape(b"x\x01"), b"x");
    }

    #[test]
    fn fields_are_split_then_unescaped() {
        let f = fields(b"USER\t1\ta\x01tb\thome=/h").unwrap();
        assert_eq!(f, ["USER", "1", "a\tb", "home=/h"]);
        assert!(fields(b"USER\t1\t\xff").is_err());
    }

    fn pair() -> (Conn, std::os::unix::net::UnixStream, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).unwrap();
        let c = Conn::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s, dir)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn lines_are_read_one_at_a_time_across_reads() {
        let (mut c, mut s, _d) = pair();
        s.write_all(b"VERSION\t1\t0\nSP").unwrap();
        assert_eq!(c.read_line(soon()).unwrap(), b"VERSION\t1\t0");
        s.write_all(b"ID\t42\n").unwrap();
        assert_eq!(c.read_line(soon()).unwrap(), b"SPID\t42");
        drop(s);
        assert!(matches!(c.read_line(soon()), Err(WireError::Closed)));
    }

    #[test]
    fn an_endless_line_is_refused_not_buffered() {
        let (mut c, s, _d) = pair();
        let writer = std::thread::spawn(move || {
            let mut s = s;
            let chunk = [b'x'; 8192];
            // Stops when the reader gives up and the socket closes.
            while s.write_all(&chunk).is_ok() {}
        });
        assert!(matches!(c.read_line(soon()), Err(WireError::TooLong)));
        assert!(c.buf.len() <= MAX_LINE + 4096);
        drop(c);
        writer.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out_at_the_deadline() {
        let (mut c, _s, _d) = pair();
        let start = Instant::now();
        let r = c.read_line(start + Duration::from_millis(200));
        assert!(matches!(r, Err(WireError::Timeout(_))), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
