//! The lines an MTA writes above a message for the delivery agent: an mbox
//! `From ` line (pipe mode only) and Return-Path fields (Exim's
//! `return_path_add`, OpenSMTPD's lmtp and mda actions, Postfix pipe's
//! `flags=R`). They are dropped as the message streams in, so a stored copy
//! carries one Return-Path, ours (RFC 5321 4.4: the final delivery inserts
//! it), and the address of the last one is kept. Must not look past the
//! first line that is neither, nor hold more than [`MAX_LEAD`] bytes.

/// Bytes held while deciding; a lead longer than this is message content.
pub const MAX_LEAD: usize = 64 * 1024;

use std::borrow::Cow;

const RETURN_PATH: &[u8] = b"return-path:";

/// A streaming filter over the first bytes of a message.
#[derive(Debug)]
pub struct Lead {
    held: Vec<u8>,
    /// Still at the top: a line there may yet be dropped.
    deciding: bool,
    /// An mbox `From ` line may open the message (pipe mode).
    mbox_from: bool,
    return_path: Option<String>,
}

impl Lead {
    /// `mbox_from`: drop a leading mbox `From ` line too (as Dovecot's LDA).
    pub fn new(mbox_from: bool) -> Lead {
        Lead {
            held: Vec::new(),
            deciding: true,
            mbox_from,
            return_path: None,
        }
    }

    /// Feeds `chunk`; returns what is message content so far (`chunk`
    /// itself once the top is decided).
    pub fn pass<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.deciding {
            return Cow::Borrowed(chunk);
        }
        self.held.extend_from_slice(chunk);
        self.decide(false);
        if self.deciding {
            Cow::Borrowed(&[])
        } else {
            Cow::Owned(std::mem::take(&mut self.held))
        }
    }

    /// The message ended: whatever is held is content.
    pub fn finish(&mut self) -> Vec<u8> {
        if !self.deciding {
            return Vec::new();
        }
        self.decide(true);
        self.deciding = false;
        std::mem::take(&mut self.held)
    }

    /// The address of the last Return-Path dropped ("" for `<>`); None
    /// when there was none or it held no plain address.
    pub fn return_path(&self) -> Option<&str> {
        self.return_path.as_deref()
    }

    /// Drops what can be dropped from the front of `held`; stops deciding
    /// at the first line that is content (or when too much is held).
    fn decide(&mut self, at_end: bool) {
        loop {
            match self.next_lead(at_end) {
                Step::Drop(n) => {
                    self.held.drain(..n);
                }
                Step::Wait if self.held.len() <= MAX_LEAD => return,
                Step::Wait | Step::Content => {
                    self.deciding = false;
                    return;
                }
            }
        }
    }

    /// What the front of `held` is.
    fn next_lead(&mut self, at_end: bool) -> Step {
        let h = &self.held;
        if self.mbox_from && (h.len() >= 5 || at_end) {
            self.mbox_from = false;
            if h.starts_with(b"From ") {
                return match memchr::memchr(b'\n', h) {
                    Some(i) => Step::Drop(i + 1),
                    None if at_end => Step::Drop(h.len()),
                    None => {
                        self.mbox_from = true;
                        Step::Wait
                    }
                };
            }
        }
        if self.mbox_from {
            return Step::Wait;
        }
        let n = h.len().min(RETURN_PATH.len());
        if !h[..n].eq_ignore_ascii_case(&RETURN_PATH[..n]) || (n == 0 && at_end) {
            return Step::Content;
        }
        if n < RETURN_PATH.len() {
            return if at_end { Step::Content } else { Step::Wait };
        }
        match field_end(h, at_end) {
            Some(end) => {
                self.return_path = address_of(&h[..end]);
                Step::Drop(end)
            }
            None => Step::Wait,
        }
    }
}

enum Step {
    Drop(usize),
    Wait,
    Content,
}

/// Where the field starting `h` ends (after its last continuation line):
/// known once the line after it is seen to start without white space.
fn field_end(h: &[u8], at_end: bool) -> Option<usize> {
    let mut end = memchr::memchr(b'\n', h)? + 1;
    loop {
        match h.get(end) {
            Some(b' ' | b'\t') => end += memchr::memchr(b'\n', &h[end..])? + 1,
            Some(_) => return Some(end),
            None if at_end => return Some(end),
            None => return None,
        }
    }
}

/// The address of a Return-Path field (`Return-path: <a@b>`, folded or
/// not): "" for `<>`; None when the value is not one plain address.
fn address_of(field: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(&field[RETURN_PATH.len()..]).ok()?;
    let value = value.trim_matches(|c: char| c.is_ascii_whitespace());
    let inner = value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value);
    let plain = !inner.is_empty()
        && inner.contains('@')
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()\"".contains(c));
    (inner.is_empty() || plain).then(|| inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(mbox: bool, chunks: &[&[u8]]) -> (Vec<u8>, Option<String>) {
        let mut l = Lead::new(mbox);
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&l.pass(c));
        }
        out.extend(l.finish());
        (out, l.return_path().map(str::to_owned))
    }

    #[test]
    fn leading_return_paths_are_dropped_and_the_last_address_kept() {
        let (out, rp) = run(
            true,
            &[b"From s@x Sat Nov 28 12:00:00 2026\nReturn-path:\n <a@example.net>\nRETURN-PATH: <b@example.net>\r\nSubject: x\nReturn-Path: <c@x>\n\nbody\n"],
        );
        assert_eq!(out, b"Subject: x\nReturn-Path: <c@x>\n\nbody\n");
        assert_eq!(rp.as_deref(), Some("b@example.net"));
    }

    #[test]
    fn without_mbox_a_from_line_is_content_and_so_is_everything_else() {
        assert_eq!(
            run(false, &[b"From s@x\nReturn-Path: <a@b>\n\n"]).0,
            b"From s@x\nReturn-Path: <a@b>\n\n"
        );
        assert_eq!(
            run(false, &[b"Subject: x\n\nhi\n"]),
            (b"Subject: x\n\nhi\n".to_vec(), None)
        );
        assert_eq!(run(true, &[b"Fro"]).0, b"Fro");
        assert_eq!(run(true, &[b""]).0, b"");
        assert_eq!(
            run(false, &[b"Return-Path: <>\n"]),
            (Vec::new(), Some(String::new()))
        );
    }

    #[test]
    fn the_addresses_of_return_path_fields() {
        let a = |f: &[u8]| address_of(f);
        assert_eq!(
            a(b"Return-Path: <s@example.net>\n").as_deref(),
            Some("s@example.net")
        );
        assert_eq!(
            a(b"Return-Path: s@example.net\n").as_deref(),
            Some("s@example.net")
        );
        assert_eq!(a(b"Return-Path: <>\n").as_deref(), Some(""));
        assert_eq!(a(b"Return-Path: <a b@example.net>\n"), None);
        assert_eq!(a(b"Return-Path: <(x)@example.net>\n"), None);
        assert_eq!(a(b"Return-Path: junk\n"), None);
        assert_eq!(a(b"Return-Path: <\xff@x>\n"), None);
    }

    #[test]
    fn a_lead_longer_than_the_bound_is_content() {
        let mut long = b"Return-Path: <".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LEAD + 10));
        let (out, rp) = run(false, &[&long[..100], &long[100..]]);
        assert_eq!(out, long);
        assert_eq!(rp, None);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_result(
            text in "(From x\n)?((Return-Path|return-path|Return-X): ?<[a-c@]{0,4}>\r?\n( [a-c]+\n)?){0,3}(Subject: s\n)?\n?[a-z\n]{0,20}",
            cuts in proptest::collection::vec(0usize..80, 0..5),
            mbox in any::<bool>(),
        ) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(&bytes[from..c]);
                from = c;
            }
            chunks.push(&bytes[from..]);
            prop_assert_eq!(run(mbox, &chunks), run(mbox, &[bytes]));
        }
    }
}
