//! The DATA receiver (RFC 5321 4.1.1.4, 4.5.2): finds the CRLF "." CRLF end
//! marker and undoes dot-stuffing, over input split at any byte. Sans-I/O: it
//! must not touch sockets, files, clocks or logs, and must never buffer more
//! than the caller's `out` up to the size limit.
//!
//! Only CRLF "." CRLF ends the data. A bare CR or bare LF never starts a line,
//! neither for the end marker nor for unstuffing, so "\n.\r\n", "\r.\r\n",
//! "\r\n.\n" and ".\n" are message bytes (the SMTP-smuggling defence). Every
//! other byte, NUL included, is stored exactly as received (as Postfix and
//! Dovecot's LMTP do; only command lines refuse NUL).

use memchr::{memchr, memmem};

/// Where the receiver stands between two bytes of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line: the very beginning, or just after CRLF.
    LineStart,
    /// Inside a line, the last byte was not CR.
    MidLine,
    /// Inside a line, the last byte was CR (already stored).
    Cr,
    /// A line started with '.', nothing stored yet for it.
    Dot,
    /// A line started with ".\r", nothing stored yet for it.
    DotCr,
    /// The end marker has been consumed.
    Done,
}

/// Receives one DATA stream. Create one per DATA command.
#[derive(Debug, Clone)]
pub struct DataReceiver {
    state: State,
    max_size: u64,
    size: u64,
}

impl DataReceiver {
    /// A receiver that stores at most `max_size` message bytes.
    pub fn new(max_size: u64) -> Self {
        DataReceiver {
            state: State::LineStart,
            max_size,
            size: 0,
        }
    }

    /// Consume bytes of the DATA stream. Unstuffed message bytes are appended
    /// to `out` while the message size is within `max_size`; past it nothing
    /// more is appended, but the stream is still consumed and counted so the
    /// session stays in sync. Returns (bytes consumed, finished). When
    /// finished, consumed ends just after the terminating CRLF "." CRLF;
    /// later bytes are the next command. Once finished, it consumes nothing.
    #[must_use = "the unconsumed bytes belong to the next command"]
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut pos = 0;
        while let Some(&byte) = input.get(pos) {
            match self.state {
                State::Done => return (pos, true),
                State::LineStart if byte == b'.' => {
                    self.state = State::Dot;
                    pos += 1;
                }
                State::LineStart | State::MidLine => {
                    // Hot path: copy the run up to and including the next CR.
                    let rest = input.get(pos..).unwrap_or_default();
                    match memchr(b'\r', rest) {
                        Some(at) => {
                            self.store(rest.get(..=at).unwrap_or_default(), out);
                            self.state = State::Cr;
                            pos += at + 1;
                        }
                        None => {
                            self.store(rest, out);
                            self.state = State::MidLine;
                            pos = input.len();
                        }
                    }
                }
                State::Cr if byte == b'\n' => {
                    self.store(b"\n", out);
                    self.state = State::LineStart;
                    pos += 1;
                }
                // A CR not followed by LF: the byte is ordinary line content.
                State::Cr => self.state = State::MidLine,
                State::Dot if byte == b'\r' => {
                    self.state = State::DotCr;
                    pos += 1;
                }
                // "." + more: the stuffed dot is dropped, the byte is content.
                State::Dot => self.state = State::MidLine,
                State::DotCr if byte == b'\n' => {
                    self.state = State::Done;
                    return (pos + 1, true);
                }
                // ".\r" + more: drop the dot, keep the CR, look at the byte
                // as the one after a CR.
                State::DotCr => {
                    self.store(b"\r", out);
                    self.state = State::Cr;
                }
            }
        }
        (pos, self.state == State::Done)
    }

    /// Unstuffed message bytes seen so far, counting on past `max_size`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the message is larger than `max_size` (`out` was cut there).
    pub fn overflowed(&self) -> bool {
        self.size > self.max_size
    }

    /// Count `bytes` and append what still fits under the limit.
    fn store(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let room = self.max_size.saturating_sub(self.size);
        let take = usize::try_from(room).map_or(bytes.len(), |r| r.min(bytes.len()));
        out.extend_from_slice(bytes.get(..take).unwrap_or_default());
        self.size = self.size.saturating_add(bytes.len() as u64);
    }
}

/// Dot-stuff `message` for sending after DATA and add the end marker. Lines
/// are split at CRLF only; a final CRLF is added when missing (not to the
/// empty message, which becomes just ".\r\n").
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut line_start = 0;
    for crlf in memmem::find_iter(message, b"\r\n").chain(std::iter::once(message.len())) {
        if line_start == message.len() {
            break;
        }
        let line = message.get(line_start..crlf).unwrap_or_default();
        if line.first() == Some(&b'.') {
            encoded.push(b'.');
        }
        encoded.extend_from_slice(line);
        encoded.extend_from_slice(b"\r\n");
        line_start = crlf + 2;
    }
    encoded.extend_from_slice(b".\r\n");
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feed `input` in one piece with no size limit.
    fn receive(input: &[u8]) -> (Vec<u8>, usize, bool) {
        let mut rx = DataReceiver::new(u64::MAX);
        let mut out = Vec::new();
        let (used, done) = rx.feed(input, &mut out);
        (out, used, done)
    }

    /// Feed `input` in pieces cut at `cuts`, stopping at the end marker.
    fn receive_split(
        input: &[u8],
        cuts: &[usize],
        max: u64,
    ) -> (Vec<u8>, usize, bool, DataReceiver) {
        let mut rx = DataReceiver::new(max);
        let mut out = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        bounds.push(input.len());
        bounds.sort_unstable();
        let mut pos = 0;
        for end in bounds {
            if end < pos {
                continue;
            }
            let (used, done) = rx.feed(&input[pos..end], &mut out);
            pos += used;
            if done {
                return (out, pos, true, rx);
            }
            assert_eq!(pos, end, "an unfinished feed consumes all its input");
        }
        (out, pos, false, rx)
    }

    #[test]
    fn transcripts_give_message_and_consumed_length() {
        let cases: &[(&[u8], &[u8], Option<usize>)] = &[
            (b".\r\n", b"", Some(3)),
            (b".\r\nQUIT\r\n", b"", Some(3)),
            (b"hello\r\n.\r\n", b"hello\r\n", Some(10)),
            (b"a\r\nb\r\n.\r\nRSET\r\n", b"a\r\nb\r\n", Some(9)),
            (b"\r\n.\r\n", b"\r\n", Some(5)),
            (b"..\r\n.\r\n", b".\r\n", Some(7)),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", Some(10)),
            (b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n", Some(11)),
            (b".x\r\n.\r\n", b"x\r\n", Some(7)),
            (b"x.\r\n.\r\n", b"x.\r\n", Some(7)),
            (b"a\0\xff\xfe\r\n.\r\n", b"a\0\xff\xfe\r\n", Some(9)),
            (b"no end\r\n", b"no end\r\n", None),
            (b"no end\r\n.", b"no end\r\n", None),
            (b"no end\r\n.\r", b"no end\r\n", None),
        ];
        for &(input, message, consumed) in cases {
            let (out, used, done) = receive(input);
            assert_eq!(out, message, "input {:?}", String::from_utf8_lossy(input));
            match consumed {
                Some(n) => {
                    assert!(done, "input {:?}", String::from_utf8_lossy(input));
                    assert_eq!(used, n, "input {:?}", String::from_utf8_lossy(input));
                }
                None => {
                    assert!(!done);
                    assert_eq!(used, input.len());
                }
            }
        }
    }

    #[test]
    fn bare_cr_or_lf_never_ends_the_data() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
            (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n"),
            (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n"),
            (b".\nb\r\n.\r\n", b"\nb\r\n"),
            (b"a\n.\n.\r\n\r\n.\r\n", b"a\n.\n.\r\n\r\n"),
            (b"a\r\n.\rx\r\n.\r\n", b"a\r\n\rx\r\n"),
            (b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n"),
        ];
        for &(input, message) in cases {
            let (out, used, done) = receive(input);
            assert!(done, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(out, message, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(used, input.len());
        }
        let (out, used, done) = receive(b"a\n.\r\n");
        assert_eq!((out.as_slice(), used, done), (&b"a\n.\r\n"[..], 5, false));
    }

    #[test]
    fn a_dot_after_bare_lf_is_not_unstuffed() {
        let (out, _, done) = receive(b"a\n..b\r\n.\r\n");
        assert!(done);
        assert_eq!(out, b"a\n..b\r\n");
    }

    #[test]
    fn end_marker_split_at_every_byte_is_found() {
        let input = b"ab\r\n..c\r\n.\r\nNEXT";
        for cut in 0..=input.len() {
            for cut2 in cut..=input.len() {
                let (out, used, done, _) = receive_split(input, &[cut, cut2], u64::MAX);
                assert!(done);
                assert_eq!(out, b"ab\r\n.c\r\n");
                assert_eq!(used, input.len() - 4);
            }
        }
    }

    #[test]
    fn oversized_message_stops_storing_but_still_finds_the_end() {
        let message = b"0123456789\r\n.abcdefgh\r\n";
        let input = [&stuff(message)[..], b"MAIL FROM:<>\r\n"].concat();
        let (out, used, done, rx) = receive_split(&input, &[7, 12, 13, 14], 10);
        assert!(done);
        assert_eq!(used, input.len() - 14);
        assert_eq!(out, b"0123456789");
        assert_eq!(rx.size(), message.len() as u64);
        assert!(rx.overflowed());
    }

    #[test]
    fn message_exactly_at_the_limit_is_not_overflowed() {
        let mut rx = DataReceiver::new(7);
        let mut out = Vec::new();
        assert_eq!(rx.feed(b"hello\r\n.\r\n", &mut out), (10, true));
        assert_eq!(out, b"hello\r\n");
        assert_eq!(rx.size(), 7);
        assert!(!rx.overflowed());
    }

    #[test]
    fn zero_limit_stores_nothing() {
        let mut rx = DataReceiver::new(0);
        let mut out = Vec::new();
        assert_eq!(rx.feed(b"x\r\n.\r\n", &mut out), (6, true));
        assert!(out.is_empty());
        assert!(rx.overflowed());
    }

    #[test]
    fn finished_receiver_consumes_nothing_more() {
        let mut rx = DataReceiver::new(100);
        let mut out = Vec::new();
        assert_eq!(rx.feed(b".\r\n", &mut out), (3, true));
        assert_eq!(rx.feed(b"QUIT\r\n", &mut out), (0, true));
        assert!(out.is_empty());
    }

    #[test]
    fn stuff_doubles_leading_dots_and_ends_with_the_marker() {
        assert_eq!(stuff(b""), b".\r\n");
        assert_eq!(stuff(b"a"), b"a\r\n.\r\n");
        assert_eq!(stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(stuff(b"a\r\n.b\n.c\r\n."), b"a\r\n..b\n.c\r\n..\r\n.\r\n");
        assert_eq!(stuff(b"\r\n"), b"\r\n.\r\n");
        assert_eq!(stuff(b"a\r"), b"a\r\r\n.\r\n");
    }

    /// The message as it comes back after `stuff`: with a final CRLF.
    fn normalised(message: &[u8]) -> Vec<u8> {
        let mut m = message.to_vec();
        if !m.is_empty() && !m.ends_with(b"\r\n") {
            m.extend_from_slice(b"\r\n");
        }
        m
    }

    fn mail_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Mostly the bytes that matter to the parser, some of anything.
        let byte = prop_oneof![
            4 => prop::sample::select(b".\r\n.\r\nx".to_vec()),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..200)
    }

    proptest! {
        #[test]
        fn stuffed_message_comes_back_exactly_at_any_split(
            message in mail_bytes(),
            trailer in prop::collection::vec(any::<u8>(), 0..20),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let encoded = stuff(&message);
            let input = [&encoded[..], &trailer[..]].concat();
            let (out, used, done, rx) = receive_split(&input, &cuts, u64::MAX);
            prop_assert!(done);
            prop_assert_eq!(&out, &normalised(&message));
            prop_assert_eq!(used, encoded.len());
            prop_assert_eq!(rx.size(), out.len() as u64);
        }

        #[test]
        fn limit_keeps_a_prefix_and_the_stream_in_sync(
            message in mail_bytes(),
            max in 0u64..250,
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let encoded = stuff(&message);
            let full = normalised(&message);
            let input = [&encoded[..], b"QUIT\r\n"].concat();
            let (out, used, done, rx) = receive_split(&input, &cuts, max);
            prop_assert!(done);
            prop_assert_eq!(used, encoded.len());
            let kept = full.len().min(max as usize);
            prop_assert_eq!(&out[..], &full[..kept]);
            prop_assert_eq!(rx.size(), full.len() as u64);
            prop_assert_eq!(rx.overflowed(), full.len() as u64 > max);
        }

        #[test]
        fn random_input_never_panics_or_overconsumes(
            input in mail_bytes(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max in any::<u64>(),
        ) {
            let (out, used, _, rx) = receive_split(&input, &cuts, max);
            prop_assert!(used <= input.len());
            prop_assert!(out.len() as u64 <= rx.size());
            prop_assert!(out.len() <= used);
        }
    }
}
