//! Protocol replies: a code, an optional RFC 3463 enhanced status code and
//! text lines, rendered on the wire as RFC 5321 4.2 multi-line replies. Must
//! not decide outcomes; callers pick the reply, this file only shapes it.

use std::fmt::Write as _;

/// One reply, possibly several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// "5.1.1" style; written on every line when present (RFC 2034).
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply. Line breaks and control characters in `text` are
    /// replaced by spaces so a reason can never break the framing.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![clean(text.into())],
        }
    }

    /// A reply without an enhanced code (greeting, LHLO, 354).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: lines.into_iter().map(clean).collect(),
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Append the wire form (CRLF line ends) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let _ = write!(s, "{}{}", self.code, sep);
            if let Some(e) = self.enhanced {
                s.push_str(e);
                s.push(' ');
            }
            s.push_str(self.lines.get(i).map(String::as_str).unwrap_or(""));
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// The first line without the code, for logs (`5.1.1 User unknown`).
    pub fn summary(&self) -> String {
        let text = self.lines.first().map(String::as_str).unwrap_or("");
        match self.enhanced {
            Some(e) => format!("{} {e} {text}", self.code),
            None => format!("{} {text}", self.code),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

fn clean(s: String) -> String {
    if s.bytes().all(|b| b >= 0x20 && b != 0x7f) {
        return s;
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut v = Vec::new();
        r.write_to(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn single_line_carries_enhanced_code() {
        assert_eq!(
            wire(&Reply::new(550, "5.1.1", "User unknown")),
            "550 5.1.1 User unknown\r\n"
        );
    }

    #[test]
    fn multi_line_uses_dash_continuations() {
        let r = Reply::plain(
            250,
            vec!["mx".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(wire(&r), "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_inject_a_reply() {
        let r = Reply::new(550, "5.7.1", "no\r\n250 2.0.0 ok");
        assert_eq!(wire(&r), "550 5.7.1 no  250 2.0.0 ok\r\n");
    }
}
