//! Header and body encodings for messages we generate: RFC 2047 encoded-words
//! (unstructured text and display names), header folding, quoted-printable
//! bodies and RFC 5322 dates. Pure functions over strings and bytes; must not
//! parse whole messages or do I/O.

/// RFC 2047 2: an encoded-word is at most 75 characters long.
const MAX_WORD: usize = 75;
/// `=?utf-8?Q?` + `?=`.
const WORD_OVERHEAD: usize = 12;
/// RFC 2047 2: a header line holding encoded-words is at most 76 characters.
const MAX_LINE: usize = 76;
/// RFC 5322 2.1.1: lines SHOULD be at most 78 characters.
const FOLD_AT: usize = 78;
/// RFC 2045 6.7 (5): quoted-printable lines are at most 76 characters.
const QP_LINE: usize = 76;

/// Encode `text` for an unstructured header field or a display name.
///
/// Printable ASCII comes back unchanged. Anything else (non-ASCII, control
/// characters, or a literal `=?` that a reader would try to decode) becomes
/// UTF-8 encoded-words of at most 75 characters each, in Q encoding when at
/// most a third of the characters need escaping (legible), else B, separated
/// by folding whitespace (`CRLF SP`).
/// Q uses only the characters RFC 2047 5(3) allows in a phrase, so the result
/// is valid both as unstructured text and as a display name.
pub fn encode_rfc2047(text: &str) -> String {
    if !needs_encoding(text) {
        return text.to_owned();
    }
    encode_words(text, MAX_WORD)
}

/// A whole header field, `Name: value` plus CRLF, with `value` encoded by
/// [`encode_rfc2047`] when needed and folded so that lines holding
/// encoded-words stay within 76 characters (78 for plain text where it can
/// be folded at spaces).
pub fn encode_header(name: &str, value: &str) -> String {
    field(name, value, needs_encoding(value))
}

/// A field whose value is already fit for a header (ASCII, perhaps holding
/// encoded-words): folded at spaces, and encoded only when a single word
/// would not fit in 998 characters.
pub(crate) fn fold_header(name: &str, value: &str) -> String {
    field(name, value, false)
}

fn field(name: &str, value: &str, encode: bool) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    out.push_str(name);
    out.push(':');
    if encode || longest_word(value) + name.len() + 2 > 998 {
        // The first line is "Name: " followed by the first word.
        let budget = MAX_LINE.saturating_sub(name.len() + 2);
        if budget < WORD_OVERHEAD + 12 {
            out.push_str("\r\n ");
            out.push_str(&encode_words(value, MAX_WORD));
        } else {
            out.push(' ');
            out.push_str(&encode_words(value, budget.min(MAX_WORD)));
        }
    } else {
        out.push(' ');
        out.push_str(&fold_words(value, name.len() + 2));
    }
    out.push_str("\r\n");
    out
}

/// Whether `text` cannot stand as-is in a header field.
pub(crate) fn needs_encoding(text: &str) -> bool {
    text.contains("=?")
        || text
            .bytes()
            .any(|b| !(b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b)))
}

fn longest_word(text: &str) -> usize {
    text.split([' ', '\t']).map(str::len).max().unwrap_or(0)
}

/// Fold plain ASCII text at spaces so lines stay within 78 characters where
/// the words allow; `used` is what the first line already holds.
fn fold_words(text: &str, used: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut line = used;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > FOLD_AT && line > 1 && !word.is_empty() {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// RFC 2047 5(3): characters that stand for themselves in a Q-encoded word
/// anywhere (unstructured text, comments, phrases).
fn q_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'!' | b'*' | b'+' | b'-' | b'/')
}

fn q_len(c: char) -> usize {
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| if q_plain(b) || b == b' ' { 1 } else { 3 })
        .sum()
}

/// Encoded-words for all of `text`; the first at most `first` characters
/// long, the rest at most 75, joined by CRLF SP. A word never splits a
/// character (RFC 2047 5: each encoded-word must be self-contained).
fn encode_words(text: &str, first: usize) -> String {
    // Q keeps mostly-Latin text legible; B is shorter for other scripts.
    let escaped = text.chars().filter(|&c| q_len(c) > 1).count();
    let use_q = escaped * 3 <= text.chars().count();

    let mut words: Vec<String> = Vec::new();
    let mut budget = first.max(WORD_OVERHEAD + 12) - WORD_OVERHEAD;
    let mut chunk = String::new();
    let mut chunk_len = 0;
    for c in text.chars() {
        let cost = if use_q { q_len(c) } else { c.len_utf8() };
        let fits = if use_q {
            chunk_len + cost <= budget
        } else {
            (chunk_len + cost).div_ceil(3) * 4 <= budget
        };
        if !fits && !chunk.is_empty() {
            words.push(encode_word(&chunk, use_q));
            chunk.clear();
            chunk_len = 0;
            budget = MAX_WORD - WORD_OVERHEAD;
        }
        chunk.push(c);
        chunk_len += cost;
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(encode_word(&chunk, use_q));
    }
    words.join("\r\n ")
}

fn encode_word(chunk: &str, use_q: bool) -> String {
    let mut out = String::with_capacity(MAX_WORD);
    if use_q {
        out.push_str("=?utf-8?Q?");
        for b in chunk.bytes() {
            if q_plain(b) {
                out.push(b as char);
            } else if b == b' ' {
                out.push('_');
            } else {
                push_hex(&mut out, b);
            }
        }
    } else {
        out.push_str("=?utf-8?B?");
        base64(chunk.as_bytes(), &mut out);
    }
    out.push_str("?=");
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('=');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

fn base64(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// A display name as it may appear before `<addr>`: encoded-words when it is
/// not plain ASCII, a quoted string when it holds specials, else as-is.
pub(crate) fn encode_phrase(name: &str) -> String {
    if needs_encoding(name) {
        return encode_words(name, MAX_WORD);
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    if name.chars().all(atext) && !name.starts_with(' ') && !name.ends_with(' ') {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quoted-printable (RFC 2045 6.7) of a body whose lines end in CRLF. Line
/// breaks stay hard breaks; long lines get soft breaks; trailing spaces and
/// every byte that is not printable ASCII are encoded.
pub(crate) fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 8);
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal =
                (0x21..0x7f).contains(&b) && b != b'=' || (b == b' ' || b == b'\t') && !at_end;
            let len = if literal { 1 } else { 3 };
            // Leave room for the soft break "=" unless this ends the line.
            let limit = if at_end { QP_LINE } else { QP_LINE - 1 };
            if width + len > limit {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                let mut s = String::with_capacity(3);
                push_hex(&mut s, b);
                out.extend_from_slice(s.as_bytes());
            }
            width += len;
        }
        if !last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;
    use proptest::prelude::*;

    fn decoded_subject(field: &str) -> Option<String> {
        let raw = format!("{field}\r\n");
        MessageParser::default()
            .parse_headers(raw.as_bytes())
            .and_then(|m| m.subject().map(str::to_owned))
    }

    /// Decode one `=?utf-8?Q|B?...?=` word on its own (no charset lookup).
    fn decode_word(word: &str) -> Vec<u8> {
        let inner = word
            .strip_prefix("=?utf-8?")
            .and_then(|w| w.strip_suffix("?="))
            .unwrap();
        let (kind, data) = inner.split_at(2);
        let hex = |c: u8| (c as char).to_digit(16).unwrap() as u8;
        let mut out = Vec::new();
        if kind == "Q?" {
            let b = data.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
                        i += 2;
                    }
                    c => out.push(c),
                }
                i += 1;
            }
        } else {
            let val = |c: u8| match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                _ => 63,
            };
            for quad in data.as_bytes().chunks(4) {
                let n = quad
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c != b'=')
                    .fold(0u32, |n, (i, &c)| n | u32::from(val(c)) << (18 - 6 * i));
                let len = quad.iter().filter(|&&c| c != b'=').count() - 1;
                out.extend_from_slice(&n.to_be_bytes()[1..1 + len]);
            }
        }
        out
    }

    fn lines(s: &str) -> impl Iterator<Item = &str> {
        s.split("\r\n")
    }

    #[test]
    fn plain_ascii_is_left_alone() {
        assert_eq!(encode_rfc2047("Out of office"), "Out of office");
        assert_eq!(encode_header("Subject", "hi"), "Subject: hi\r\n");
    }

    #[test]
    fn german_subject_round_trips_through_mail_parser() {
        let field = encode_header("Subject", "Abwesenheit: Grüße");
        assert!(field.is_ascii());
        assert!(field.contains("=?utf-8?Q?"), "{field}");
        assert_eq!(
            decoded_subject(field.trim_end()).as_deref(),
            Some("Abwesenheit: Grüße")
        );
    }

    #[test]
    fn mostly_non_latin_text_uses_b_encoding() {
        let w = encode_rfc2047("Вне офиса до понедельника");
        assert!(w.starts_with("=?utf-8?B?"), "{w}");
        assert_eq!(
            decoded_subject(&format!("Subject: {w}")).as_deref(),
            Some("Вне офиса до понедельника")
        );
    }

    #[test]
    fn literal_encoded_word_syntax_is_encoded_so_it_reads_back_literally() {
        let w = encode_rfc2047("see =?utf-8?Q?x?= here");
        assert_ne!(w, "see =?utf-8?Q?x?= here");
        assert_eq!(
            decoded_subject(&format!("Subject: {w}")).as_deref(),
            Some("see =?utf-8?Q?x?= here")
        );
    }

    #[test]
    fn long_text_splits_into_words_within_limits_without_splitting_characters() {
        let text = "Grüße aus dem Urlaub, ich bin ab dem 3. März wieder erreichbar — 😀 bis dann 日本語のテキスト";
        let field = encode_header("Subject", text);
        for line in lines(field.trim_end()) {
            assert!(line.len() <= 76, "{line:?} is {} long", line.len());
            for word in line.split(' ').filter(|w| w.starts_with("=?")) {
                assert!(word.len() <= 75, "{word}");
            }
        }
        assert_eq!(decoded_subject(field.trim_end()).as_deref(), Some(text));
    }

    #[test]
    fn a_long_header_name_starts_the_words_on_a_continuation_line() {
        let name = "X-A-Very-Long-Header-Name-That-Leaves-No-Room-On-The-First-Line";
        let field = encode_header(name, "Grüße");
        assert!(
            field.starts_with(&format!("{name}:\r\n =?utf-8?")),
            "{field}"
        );
        for line in lines(&field) {
            assert!(line.len() <= 76 || !line.contains("=?"), "{line}");
        }
    }

    #[test]
    fn long_ascii_text_folds_at_spaces() {
        let text = "word ".repeat(40);
        let field = encode_header("Subject", text.trim_end());
        assert!(lines(&field).all(|l| l.len() <= 78), "{field}");
        assert_eq!(
            decoded_subject(field.trim_end()).as_deref(),
            Some(text.trim_end())
        );
    }

    #[test]
    fn an_unbreakable_ascii_word_over_998_is_encoded_into_short_lines() {
        let text = "x".repeat(2000);
        let field = encode_header("Subject", &text);
        assert!(lines(&field).all(|l| l.len() <= 76), "{field}");
        assert_eq!(decoded_subject(field.trim_end()), Some(text));
    }

    #[test]
    fn phrases_quote_specials_and_encode_non_ascii() {
        assert_eq!(encode_phrase("Jane Doe"), "Jane Doe");
        assert_eq!(encode_phrase("Doe, Jane"), "\"Doe, Jane\"");
        assert_eq!(encode_phrase("a \"b\" c"), "\"a \\\"b\\\" c\"");
        let p = encode_phrase("Jörg Müller");
        assert!(p.starts_with("=?utf-8?Q?J=C3=B6rg_M=C3=BCller?="), "{p}");
        let raw = format!("From: {p} <j@example.org>\r\n\r\n");
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let a = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!(a.name(), Some("Jörg Müller"));
        assert_eq!(a.address(), Some("j@example.org"));
    }

    #[test]
    fn quoted_printable_encodes_8bit_trailing_space_and_long_lines() {
        assert_eq!(
            quoted_printable("Grüße = x \r\nok\r\n".as_bytes()),
            b"Gr=C3=BC=C3=9Fe =3D x=20\r\nok\r\n"
        );
        let long = "a".repeat(200);
        let qp = quoted_printable(long.as_bytes());
        let text = String::from_utf8(qp).unwrap();
        assert!(text.split("\r\n").all(|l| l.len() <= 76), "{text}");
        assert_eq!(text.replace("=\r\n", ""), long);
    }

    #[test]
    fn quoted_printable_decodes_back_with_mail_parser() {
        let body = "Ich bin weg. Grüße\r\n\tEinrückung  \r\n".to_owned() + &"ü".repeat(80);
        let qp = quoted_printable(body.as_bytes());
        let mut raw = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".to_vec();
        raw.extend_from_slice(&qp);
        let m = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.body_text(0).as_deref(), Some(body.as_str()));
    }

    proptest! {
        #[test]
        fn any_text_round_trips_and_keeps_the_limits(text in "[^\\x00-\\x1f\\x7f]{0,200}") {
            // mail-parser trims the value; RFC 2047 text has no leading or
            // trailing whitespace to carry anyway.
            let text = text.trim();
            prop_assume!(!text.is_empty());
            let field = encode_header("Subject", text);
            prop_assert!(field.ends_with("\r\n"));
            for line in lines(field.trim_end()) {
                if line.contains("=?") {
                    prop_assert!(line.len() <= 76, "{:?}", line);
                }
                prop_assert!(line.len() <= 998);
            }
            if needs_encoding(text) {
                prop_assert!(field.is_ascii());
            }
            let got = decoded_subject(field.trim_end());
            // Runs of spaces in plain text may be read back as one by some
            // parsers; compare with whitespace collapsed.
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(got.as_deref().map(norm), Some(norm(text)));
        }

        #[test]
        fn every_encoded_word_holds_whole_characters(text in "\\PC{1,120}") {
            prop_assume!(needs_encoding(&text));
            let mut joined = String::new();
            for word in encode_rfc2047(&text).split("\r\n ") {
                prop_assert!(word.len() <= 75, "{}", word);
                let bytes = decode_word(word);
                let s = String::from_utf8(bytes);
                prop_assert!(s.is_ok(), "{} splits a character", word);
                joined.push_str(&s.unwrap_or_default());
            }
            prop_assert_eq!(joined, text);
        }
    }
}
