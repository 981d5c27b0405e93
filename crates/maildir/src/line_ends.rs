//! Maildir's customary line ends: CRLF becomes LF, chunk by chunk, as
//! messages are stored (a lone CR stays). Every Maildir reader agrees on LF
//! files (Dovecot reads either; Courier shows CRLF files with `\r\r\n`,
//! GNU Mailutils shows them empty). Must not change anything but a CR
//! directly before an LF.

/// A CRLF -> LF converter for a message that arrives in chunks; a CR at the
/// end of one chunk is held until the next shows whether an LF follows.
#[derive(Debug, Default, Clone)]
pub struct ToLf {
    pending_cr: bool,
}

impl ToLf {
    pub fn new() -> ToLf {
        ToLf::default()
    }

    /// Appends `chunk` to `out` with CRLF made LF; a trailing CR is held.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        if std::mem::take(&mut self.pending_cr) && chunk[0] != b'\n' {
            out.push(b'\r');
        }
        let (body, held) = match chunk.split_last() {
            Some((b'\r', rest)) => (rest, true),
            _ => (chunk, false),
        };
        let mut start = 0;
        for cr in memchr::memchr_iter(b'\r', body) {
            if body.get(cr + 1) == Some(&b'\n') {
                out.extend_from_slice(&body[start..cr]);
                start = cr + 1;
            }
        }
        out.extend_from_slice(&body[start..]);
        self.pending_cr = held;
    }

    /// The held CR, if any: the message ended with a lone CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// `bytes` with CRLF made LF.
pub fn to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut c = ToLf::new();
    c.push(bytes, &mut out);
    c.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crlf_becomes_lf_and_a_lone_cr_stays() {
        assert_eq!(to_lf(b"a\r\nb\rc\n\r\n\r\r\n\r"), b"a\nb\rc\n\n\r\n\r");
        assert_eq!(to_lf(b""), b"");
    }

    #[test]
    fn a_cr_at_a_chunk_end_waits_for_the_next_chunk() {
        let mut c = ToLf::new();
        let mut out = Vec::new();
        c.push(b"a\r", &mut out);
        assert_eq!(out, b"a");
        c.push(b"\nb\r", &mut out);
        c.push(b"", &mut out);
        c.push(b"c\r", &mut out);
        c.finish(&mut out);
        assert_eq!(out, b"a\nb\rc\r");
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_bytes(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'x')], 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let (mut c, mut out, mut from) = (ToLf::new(), Vec::new(), 0);
            for cut in cuts {
                c.push(&bytes[from..cut], &mut out);
                from = cut;
            }
            c.push(&bytes[from..], &mut out);
            c.finish(&mut out);
            let whole = to_lf(&bytes);
            prop_assert_eq!(&out, &whole);
            let crs = |b: &[u8]| b.iter().filter(|&&x| x == b'\r').count();
            let crlfs = bytes.windows(2).filter(|w| *w == b"\r\n").count();
            prop_assert_eq!(crs(&whole), crs(&bytes) - crlfs);
        }
    }
}
