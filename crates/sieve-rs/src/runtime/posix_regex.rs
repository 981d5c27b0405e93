/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

//! `:regex` as POSIX extended regular expressions (draft-ietf-sieve-regex,
//! RFC 5229 section 3.2), matched by the C library's `regcomp`/`regexec`
//! as Pigeonhole matches them: `REG_EXTENDED`, plus `REG_ICASE` for the
//! `i;ascii-casemap` comparator. POSIX leftmost-longest semantics, bytes in
//! the "C" locale, `${0}` the whole match and `${1}`.. the groups.
//!
//! The C library's matcher has no way to be interrupted, so what a script
//! can hand it is bounded here before it is called (the numbers were
//! measured with glibc 2.36; see PATCHES.md, fix 11):
//!
//! - back-references (`\1`..`\9`, a GNU extension to ERE) are refused:
//!   glibc's matcher is exponential with them, and `(|)(\1\1)*` overflows
//!   its stack and kills the process;
//! - groups nest at most [`MAX_DEPTH`] deep (the parser recurses; a few
//!   thousand levels overflow a 2 MiB thread stack);
//! - a pattern is at most [`MAX_NODES`] nodes once `{m,n}` repetitions are
//!   expanded, as regcomp expands them (`((a{1,100}){1,100}){1,100}` takes
//!   regcomp 7 s and 1.7 GiB);
//! - the matcher tries every start position and runs its lazily built DFA
//!   from each, so a search is quadratic in the length of the value when
//!   the pattern can match arbitrarily long text (`*`, `+`, `{m,}`):
//!   `[a-z0-9.]+@example\.test` takes 10 s over 64 KiB of letters and
//!   20 minutes over 1 MiB; a repetition after a star makes the steps build
//!   DFA states, more so the bigger it is (`(a|b)*a(a|b){20}c`: 5 s and
//!   110 MiB over 8 KiB of random a/b, `{168}` 100 s over 3 KiB). Such
//!   patterns see only the first [`subject_limit`] bytes of a value: 16 KiB
//!   up to 24 nodes, half as much each time the pattern doubles, 384 bytes
//!   at 1024 nodes. Other patterns give up each start after at most as
//!   many bytes as they have nodes, so they are linear in the value: they
//!   see its first MiB (less from 192 nodes up: 192 KiB at 1024). Within
//!   these limits the worst search found takes about a second. A value cut
//!   short is matched with `REG_NOTEOL`, so `$` does not match where it
//!   was cut.
//!
//! What a whole run of a script spends on `:regex` is bounded by
//! `Runtime::with_max_regex_time` (thread CPU time, 2 s unless set).
//!
//! A value is handed over as a C string: a NUL in it becomes U+FFFD, as
//! Dovecot does with NULs in header values, so neither the rest of the
//! value is lost nor can a NUL hide text from a `:regex` test.

use std::{
    cell::UnsafeCell,
    ffi::{CStr, CString, c_char, c_int},
    fmt,
    mem::MaybeUninit,
    sync::OnceLock,
    time::Duration,
};

#[cfg(not(unix))]
compile_error!("the :regex match type uses the C library's POSIX regcomp/regexec (Unix only)");

/// Groups nest at most this deep.
pub const MAX_DEPTH: usize = 32;
/// A pattern has at most this many nodes, `{m,n}` repetitions expanded.
pub const MAX_NODES: usize = 1024;
/// How much of a value a small pattern without `*`, `+` or `{m,}` sees.
pub const MAX_SUBJECT_BOUNDED: usize = 1 << 20;
/// How much of a value a small pattern with `*`, `+` or `{m,}` sees.
pub const MAX_SUBJECT_UNBOUNDED: usize = 16 << 10;
/// Patterns without `*`, `+` or `{m,}` see `BOUNDED_WORK / nodes` bytes of
/// a value (at most [`MAX_SUBJECT_BOUNDED`]): the search gives up each
/// start after at most `nodes` bytes, so it takes time in proportion to
/// the product.
const BOUNDED_WORK: usize = 192 << 20;
/// Patterns with `*`, `+` or `{m,}` see `UNBOUNDED_WORK / nodes` bytes of
/// a value (at most [`MAX_SUBJECT_UNBOUNDED`]): the search is quadratic in
/// the length, and more than quadratic in the size of the pattern.
const UNBOUNDED_WORK: usize = 384 << 10;

/// How much of a value a pattern of `nodes` nodes sees: when it can match
/// arbitrarily long text (`unbounded`), 16 KiB up to 24 nodes, half as
/// much each time the pattern doubles, 384 bytes at [`MAX_NODES`];
/// otherwise 1 MiB up to 192 nodes, 192 KiB at [`MAX_NODES`].
pub fn subject_limit(nodes: usize, unbounded: bool) -> usize {
    if unbounded {
        (UNBOUNDED_WORK / nodes.max(1)).min(MAX_SUBJECT_UNBOUNDED)
    } else {
        (BOUNDED_WORK / nodes.max(1)).min(MAX_SUBJECT_BOUNDED)
    }
}

/// A compiled POSIX extended regular expression.
///
/// Thread safety: the `regex_t` is written only by `regcomp` (in
/// [`PosixRegex::new`], before the value exists) and `regfree` (in `drop`,
/// with exclusive access); in between it is only passed to `regexec`,
/// which POSIX requires to be thread-safe (it is not among the functions
/// XSH 2.9.1 exempts) and which takes it as `const regex_t *`. glibc's
/// `regexec` does update the DFA it builds lazily (behind
/// `regex_t.buffer`), but under a lock of its own in that DFA
/// (`lock_lock (dfa->lock)` in posix/regexec.c), so concurrent searches
/// with one compiled pattern are safe and take turns; musl's and the BSDs'
/// `regexec` keep their state on the stack and the heap of each call. The
/// `regex_t` is boxed so that its address never changes after `regcomp`,
/// and in an `UnsafeCell` because C code writes behind the pointers it
/// holds. Nothing in it belongs to a thread, so it may be freed on another.
pub struct PosixRegex {
    preg: Box<UnsafeCell<libc::regex_t>>,
    icase: bool,
    /// How many bytes of a value are searched.
    max_subject: usize,
}

// SAFETY: see the type's documentation.
unsafe impl Send for PosixRegex {}
// SAFETY: see the type's documentation.
unsafe impl Sync for PosixRegex {}

impl PosixRegex {
    /// Compiles `pattern` (ERE); case-insensitive for ASCII when `icase`.
    /// The error is the C library's message, or why the pattern is refused
    /// before it gets there.
    pub fn new(pattern: &str, icase: bool) -> Result<Self, String> {
        let shape = Shape::of(pattern.as_bytes())?;
        let c_pattern =
            CString::new(pattern).map_err(|_| "NUL character in regular expression".to_string())?;
        let cflags = libc::REG_EXTENDED | if icase { libc::REG_ICASE } else { 0 };
        let mut preg: Box<MaybeUninit<libc::regex_t>> = Box::new_uninit();
        let rc = {
            let _c = CLocale::enter();
            // SAFETY: `preg` is writable storage for a regex_t and
            // `c_pattern` a NUL-terminated string, both live for the call.
            unsafe { libc::regcomp(preg.as_mut_ptr(), c_pattern.as_ptr(), cflags) }
        };
        if rc != 0 {
            // After a failed regcomp there is nothing to regfree (glibc and
            // musl free what they allocated); regerror may still look at it.
            return Err(error_message(rc, preg.as_ptr()));
        }
        // SAFETY: regcomp succeeded, so it initialised the regex_t.
        let preg = unsafe { preg.assume_init() };
        Ok(PosixRegex {
            // UnsafeCell<T> has the same layout as T.
            preg: unsafe { Box::from_raw(Box::into_raw(preg).cast::<UnsafeCell<libc::regex_t>>()) },
            icase,
            max_subject: subject_limit(shape.nodes, shape.unbounded),
        })
    }

    /// Whether it was compiled case-insensitive.
    pub fn icase(&self) -> bool {
        self.icase
    }

    /// Searches `subject`. `None` when it does not match; otherwise the
    /// first `values` match values: the whole match, then each group, an
    /// empty string for a group that took no part in the match or does not
    /// exist (as Pigeonhole's match values are). Captured bytes that are not
    /// UTF-8 on their own (a group can end inside a character: matching is
    /// by bytes) come out as U+FFFD.
    pub fn find(&self, subject: &str, values: usize) -> Option<Vec<String>> {
        let (text, cut) = c_subject(subject, self.max_subject);
        // regexec sets the elements past the last group to -1.
        let nmatch = values;
        let mut pmatch = vec![
            libc::regmatch_t {
                rm_so: -1,
                rm_eo: -1,
            };
            nmatch
        ];
        let eflags = if cut { libc::REG_NOTEOL } else { 0 };
        let rc = {
            let _c = CLocale::enter();
            // SAFETY: the regex_t was initialised by regcomp and is not
            // freed before `self` is dropped; `text` is NUL-terminated;
            // `pmatch` holds `nmatch` elements (a null pointer is fine when
            // nmatch is 0).
            unsafe {
                libc::regexec(
                    self.preg.get(),
                    text.as_ptr().cast::<c_char>(),
                    nmatch,
                    if nmatch == 0 {
                        std::ptr::null_mut()
                    } else {
                        pmatch.as_mut_ptr()
                    },
                    eflags,
                )
            }
        };
        // REG_NOMATCH, or REG_ESPACE when the C library ran out of memory:
        // either way, no match.
        if rc != 0 {
            return None;
        }
        let len = text.len() - 1;
        Some(
            (0..values)
                .map(|i| match pmatch.get(i) {
                    Some(m) if m.rm_so >= 0 && m.rm_so <= m.rm_eo && (m.rm_eo as usize) <= len => {
                        String::from_utf8_lossy(&text[m.rm_so as usize..m.rm_eo as usize])
                            .into_owned()
                    }
                    _ => String::new(),
                })
                .collect(),
        )
    }
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: initialised by regcomp, freed once, nobody else holds it.
        unsafe { libc::regfree(self.preg.get()) }
    }
}

impl fmt::Debug for PosixRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosixRegex")
            .field("icase", &self.icase)
            .field("max_subject", &self.max_subject)
            .finish()
    }
}

/// The value as the C library gets it: NULs as U+FFFD, at most `max`
/// bytes (whether it was cut is the second field), NUL-terminated.
fn c_subject(subject: &str, max: usize) -> (Vec<u8>, bool) {
    let mut text = Vec::with_capacity(subject.len().min(max) + 1);
    let mut cut = false;
    for (i, chunk) in subject.as_bytes().split(|&b| b == 0).enumerate() {
        if i > 0 {
            if text.len() + 3 > max {
                cut = true;
                break;
            }
            text.extend_from_slice("\u{FFFD}".as_bytes());
        }
        let room = max - text.len();
        if chunk.len() > room {
            text.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        text.extend_from_slice(chunk);
    }
    text.push(0);
    (text, cut)
}

fn error_message(code: c_int, preg: *const libc::regex_t) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; regerror NUL-terminates
    // what it writes, truncating if needed.
    unsafe { libc::regerror(code, preg, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    CStr::from_bytes_until_nul(&buf)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Switches the calling thread to the "C" locale until dropped, so that
/// matching is by bytes and `REG_ICASE` folds ASCII only (the
/// `i;ascii-casemap` comparator), whatever locale the host set: glibc's
/// regcomp and regexec read LC_CTYPE and LC_COLLATE. Pigeonhole runs in
/// the "C" locale too. `uselocale` affects only the calling thread.
struct CLocale(libc::locale_t);

impl CLocale {
    fn enter() -> Option<CLocale> {
        static C: OnceLock<usize> = OnceLock::new();
        let c = *C.get_or_init(|| {
            // SAFETY: plain call; the object is never freed (one for the
            // process) and may be used by any thread.
            let c =
                unsafe { libc::newlocale(libc::LC_ALL_MASK, c"C".as_ptr(), std::ptr::null_mut()) };
            c as usize
        }) as libc::locale_t;
        if c.is_null() {
            return None;
        }
        // SAFETY: `c` is a valid locale object.
        let previous = unsafe { libc::uselocale(c) };
        (!previous.is_null()).then_some(CLocale(previous))
    }
}

impl Drop for CLocale {
    fn drop(&mut self) {
        // SAFETY: restores what uselocale returned (possibly
        // LC_GLOBAL_LOCALE), which is valid to pass back.
        unsafe { libc::uselocale(self.0) };
    }
}

/// CPU time the calling thread has used, to charge `:regex` to a script's
/// budget (time spent waiting for another thread's search with the same
/// pattern is not counted).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is writable.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What the checks before regcomp need to know of a pattern.
#[derive(Debug, PartialEq)]
struct Shape {
    /// Nodes, with `{m,n}` expanded (an estimate of regcomp's tree: one
    /// per character, bracket expression, anchor, group and `|`, a
    /// repetition multiplying what it repeats).
    nodes: usize,
    /// Whether something may repeat without bound (`*`, `+`, `{m,}`).
    unbounded: bool,
}

impl Shape {
    /// Reads `pattern` as glibc's ERE parser does, as far as the checks
    /// need: whatever it cannot make sense of is left for regcomp to
    /// refuse.
    fn of(pattern: &[u8]) -> Result<Shape, String> {
        let mut parser = Parser {
            p: pattern,
            pos: 0,
            unbounded: false,
        };
        let nodes = parser.alternation(0)?;
        Ok(Shape {
            nodes,
            unbounded: parser.unbounded,
        })
    }
}

struct Parser<'a> {
    p: &'a [u8],
    pos: usize,
    unbounded: bool,
}

fn too_complex() -> String {
    format!("regular expression too complex (over {MAX_NODES} nodes once repetitions are expanded)")
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.p.get(self.pos).copied()
    }

    /// branch ('|' branch)*, up to an unmatched ')' or the end.
    fn alternation(&mut self, depth: usize) -> Result<usize, String> {
        let mut nodes = self.branch(depth)?;
        while self.peek() == Some(b'|') {
            self.pos += 1;
            nodes = nodes.saturating_add(1).saturating_add(self.branch(depth)?);
            if nodes > MAX_NODES {
                return Err(too_complex());
            }
        }
        Ok(nodes)
    }

    fn branch(&mut self, depth: usize) -> Result<usize, String> {
        let mut nodes = 0usize;
        while let Some(c) = self.peek() {
            let mut piece = match c {
                b'|' => break,
                // Closes the group being read; at the top level glibc takes
                // an unmatched ')' as an ordinary character.
                b')' if depth > 0 => break,
                b'(' => {
                    if depth >= MAX_DEPTH {
                        return Err(format!(
                            "regular expression nested too deeply (over {MAX_DEPTH} groups)"
                        ));
                    }
                    self.pos += 1;
                    let inner = self.alternation(depth + 1)?;
                    if self.peek() == Some(b')') {
                        self.pos += 1;
                    }
                    inner.saturating_add(2)
                }
                b'[' => {
                    self.bracket();
                    1
                }
                b'\\' => {
                    self.pos += 1;
                    if let Some(d @ b'1'..=b'9') = self.peek() {
                        return Err(format!(
                            "back-reference \\{} not supported (not part of POSIX extended regular expressions)",
                            d as char
                        ));
                    }
                    if self.peek().is_some() {
                        self.pos += 1;
                    }
                    1
                }
                _ => {
                    self.pos += 1;
                    1
                }
            };
            // Repetitions of what was just read.
            while let Some(q) = self.peek() {
                piece = match q {
                    b'*' => {
                        self.unbounded = true;
                        piece.saturating_add(1)
                    }
                    b'+' => {
                        self.unbounded = true;
                        piece.saturating_mul(2).saturating_add(1)
                    }
                    b'?' => piece.saturating_add(1),
                    b'{' => match self.interval() {
                        Some((min, max)) => {
                            let times = match max {
                                Some(max) => max.max(min),
                                None => {
                                    self.unbounded = true;
                                    min.saturating_add(1)
                                }
                            };
                            piece.saturating_mul(times.max(1)).saturating_add(1)
                        }
                        // Not an interval: regcomp will say what is wrong.
                        None => break,
                    },
                    _ => break,
                };
                if q != b'{' {
                    self.pos += 1;
                }
                if piece > MAX_NODES {
                    return Err(too_complex());
                }
            }
            nodes = nodes.saturating_add(piece);
            if nodes > MAX_NODES {
                return Err(too_complex());
            }
        }
        Ok(nodes)
    }

    /// `{m}`, `{m,}`, `{m,n}` or `{,n}` at `pos`: consumed, with its bounds
    /// (saturating; regcomp refuses counts over RE_DUP_MAX).
    fn interval(&mut self) -> Option<(usize, Option<usize>)> {
        let mut i = self.pos + 1;
        let number = |i: &mut usize| {
            let start = *i;
            let mut n = 0usize;
            while let Some(d @ b'0'..=b'9') = self.p.get(*i).copied() {
                n = n.saturating_mul(10).saturating_add((d - b'0') as usize);
                *i += 1;
            }
            (*i > start).then_some(n)
        };
        let min = number(&mut i);
        let bounds = if self.p.get(i) == Some(&b',') {
            i += 1;
            let max = number(&mut i);
            (min.unwrap_or(0), max)
        } else {
            (min?, min)
        };
        if self.p.get(i) != Some(&b'}') {
            return None;
        }
        self.pos = i + 1;
        Some(bounds)
    }

    /// Skips a bracket expression starting at `pos` (a backslash is an
    /// ordinary character in it).
    fn bracket(&mut self) {
        let mut i = self.pos + 1;
        if self.p.get(i) == Some(&b'^') {
            i += 1;
        }
        if self.p.get(i) == Some(&b']') {
            i += 1;
        }
        while let Some(&c) = self.p.get(i) {
            match c {
                b']' => {
                    self.pos = i + 1;
                    return;
                }
                b'[' if matches!(self.p.get(i + 1), Some(b':' | b'.' | b'=')) => {
                    let close = self.p[i + 1];
                    i += 2;
                    while i < self.p.len()
                        && !(self.p[i] == close && self.p.get(i + 1) == Some(&b']'))
                    {
                        i += 1;
                    }
                    i += 2;
                }
                _ => i += 1,
            }
        }
        // Unterminated: regcomp refuses it.
        self.pos = self.p.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(p: &str) -> Result<(usize, bool), String> {
        Shape::of(p.as_bytes()).map(|s| (s.nodes, s.unbounded))
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("abc"), Ok((3, false)));
        assert_eq!(shape("a|b"), Ok((3, false)));
        assert_eq!(shape("(a)"), Ok((3, false)));
        assert_eq!(shape("a*"), Ok((2, true)));
        assert_eq!(shape("a{3}"), Ok((4, false)));
        assert_eq!(shape("a{2,}"), Ok((4, true)));
        assert_eq!(shape("a{,5}"), Ok((6, false)));
        assert_eq!(shape("[]a*]"), Ok((1, false)));
        assert_eq!(shape("[[:alpha:]*]x"), Ok((2, false)));
        assert_eq!(shape("[\\1]"), Ok((1, false)));
        assert_eq!(shape("a)"), Ok((2, false)));
        assert!(shape("(a)\\1").unwrap_err().contains("back-reference"));
        assert!(
            shape("((a{1,100}){1,100}){1,100}")
                .unwrap_err()
                .contains("complex")
        );
        assert!(shape(&"(".repeat(40)).unwrap_err().contains("nested"));
        assert!(shape(&"(".repeat(32)).is_ok());
    }

    #[test]
    fn limits() {
        assert_eq!(subject_limit(1, true), MAX_SUBJECT_UNBOUNDED);
        assert_eq!(subject_limit(24, true), MAX_SUBJECT_UNBOUNDED);
        assert_eq!(subject_limit(48, true), 8 << 10);
        assert_eq!(subject_limit(MAX_NODES, true), 384);
        assert_eq!(subject_limit(1, false), MAX_SUBJECT_BOUNDED);
        assert_eq!(subject_limit(192, false), MAX_SUBJECT_BOUNDED);
        assert_eq!(subject_limit(MAX_NODES, false), 192 << 10);
    }

    /// Past the run's `:regex` CPU time the script stops before its next
    /// instruction.
    #[test]
    fn regex_time_budget() {
        use crate::{Compiler, Context, Event, Input, Runtime, runtime::RuntimeError};
        use mail_parser::MessageParser;

        let script = std::sync::Arc::new(
            Compiler::new()
                .compile(
                    b"require [\"regex\", \"fileinto\"];\r\n\
                      if header :regex \"subject\" \"a\" { fileinto \"one\"; }\r\n\
                      if header :regex \"subject\" \"b\" { fileinto \"two\"; }",
                )
                .unwrap(),
        );
        let run = |budget: Duration| {
            let runtime = Runtime::new().with_max_regex_time(budget);
            let message = MessageParser::new()
                .parse(b"Subject: ab\r\n\r\nbody\r\n".as_slice())
                .unwrap();
            let mut ctx = Context::new(&runtime, message);
            let mut input = Input::script("test", script.clone());
            let mut out = Vec::new();
            while let Some(step) = ctx.run(input) {
                input = Input::True;
                match step {
                    Ok(Event::FileInto { folder, .. }) => out.push(folder),
                    Ok(_) => {}
                    Err(RuntimeError::CPULimitReached) => out.push("limit".into()),
                    Err(err) => panic!("{err:?}"),
                }
            }
            out
        };
        assert_eq!(run(Duration::from_secs(2)), ["one", "two"]);
        assert_eq!(run(Duration::ZERO), ["limit"]);
    }

    #[test]
    fn subject() {
        assert_eq!(
            c_subject("a\0b", 100),
            (b"a\xef\xbf\xbdb\0".to_vec(), false)
        );
        assert_eq!(c_subject("abc", 2), (b"ab\0".to_vec(), true));
        assert_eq!(c_subject("a\0", 3), (b"a\0".to_vec(), true));
        assert_eq!(c_subject("a\0", 4), (b"a\xef\xbf\xbd\0".to_vec(), false));
        assert_eq!(c_subject("", 4), (b"\0".to_vec(), false));
        assert_eq!(
            c_subject("\0\0", 6),
            (b"\xef\xbf\xbd\xef\xbf\xbd\0".to_vec(), false)
        );
    }
}

/// How long the worst patterns found take within the limits (run with
/// `cargo test --release -p sieve-rs measure_worst_cases -- --ignored
/// --nocapture`).
#[cfg(test)]
mod measure {
    use super::*;
    use std::time::Instant;

    fn random(len: usize, alphabet: &[u8]) -> String {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }

    #[test]
    #[ignore]
    fn measure_worst_cases() {
        let letters = "a".repeat(1 << 20);
        let ab = random(1 << 20, b"ab");
        let cases: Vec<(String, &str)> = vec![
            ("[a-z0-9.]+@example\\.test".into(), &letters),
            ("(a|b)+c".into(), &letters),
            ("(a|b)*a(a|b){20}c".into(), &ab),
            ("(a|b)*a(a|b){50}c".into(), &ab),
            ("(a|b)*a(a|b){100}c".into(), &ab),
            ("(a|b)*a(a|b){168}c".into(), &ab),
            (format!("(a|b)*a{}c", "(a|b)".repeat(200)), &ab),
            (format!("[ab]*a{}c", "[ab]".repeat(1000)), &ab),
            ("((a|b)?){120}c".into(), &ab),
            ("(a|ab|b){100}c".into(), &ab),
            (format!("{}c", "a?".repeat(500)), &letters),
            (format!("{}c", "(a|b)?".repeat(160)), &ab),
            ("(a|b)*a(a|b){10}c".into(), &ab),
            ("(a|b)*a(a|b){5}c".into(), &ab),
            (format!("({})*c", "a?".repeat(500)), &letters),
            (format!("{}c", "a?".repeat(1000)), &letters),
        ];
        for (pattern, subject) in &cases {
            let started = Instant::now();
            let regex = match PosixRegex::new(pattern, true) {
                Ok(regex) => regex,
                Err(err) => {
                    println!("{:.60}: refused: {err}", pattern);
                    continue;
                }
            };
            let compiled = started.elapsed();
            let found = regex.find(subject, 10).is_some();
            println!(
                "{:.60} ({} bytes searched): compile {:?}, search {:?}, found {found}",
                pattern,
                regex.max_subject,
                compiled,
                started.elapsed() - compiled
            );
        }
    }
}
