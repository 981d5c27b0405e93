//! Parser for the text `doveconf -n` prints: `key = value` lines and
//! sections (`name {`, `name value {` ... `}`), comments, quoted values.
//! Text in, a tree of settings out. Must not read files, run doveconf, or
//! interpret any setting (`from_dovecot` does); it never panics on any
//! input, and an unbalanced brace or a line it cannot read is an error
//! naming the line.

use thiserror::Error;

/// A line of the input that is not doveconf's format.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    /// Unquoted when the whole value was in double quotes.
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// One `kind [name] { ... }` block (the whole file is a section without
/// a kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// `protocol`, `plugin`, `passdb`, `namespace`, `service`, ...
    pub kind: String,
    /// `lmtp` of `protocol lmtp {`, `inbox` of `namespace inbox {`.
    pub name: Option<String>,
    pub line: usize,
    pub settings: Vec<Setting>,
    pub sections: Vec<Section>,
}

impl Section {
    /// The value of `key` here (the last one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The subsections of `kind`, in order.
    pub fn all<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    /// The subsection `kind name {`.
    pub fn named(&self, kind: &str, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.kind == kind && s.name.as_deref() == Some(name))
    }
}

/// The first line of `doveconf -n`: `# 2.3.19.1 (9b53102964): /etc/...`.
pub fn version(text: &str) -> Option<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(|l| l.split_whitespace().next())
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

/// Parse the whole text.
pub fn parse(text: &str) -> Result<Section, ParseError> {
    // The open sections, innermost last; the root is at the bottom.
    let mut stack = vec![Section::default()];
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let err = |reason: &str| ParseError {
            line,
            reason: format!("{reason}: {}", truncate(l)),
        };
        if l == "}" {
            if stack.len() < 2 {
                return Err(err("a '}' without its section"));
            }
            if let Some(done) = stack.pop() {
                if let Some(parent) = stack.last_mut() {
                    parent.sections.push(done);
                }
            }
            continue;
        }
        // A setting: the first '=' before any '{' decides (`key = {x}` is
        // a value, as in `ssl_dh = <...`).
        let eq = l.find('=');
        let brace = l.find('{');
        match (eq, brace) {
            (Some(e), b) if b.is_none_or(|b| e < b) => {
                let key = l[..e].trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(err("not `key = value`"));
                }
                let value = unquote(l[e + 1..].trim());
                if let Some(top) = stack.last_mut() {
                    top.settings.push(Setting {
                        key: key.to_owned(),
                        value,
                        line,
                    });
                }
            }
            (_, Some(_)) if l.ends_with('{') => {
                let head = l[..l.len() - 1].trim();
                let (kind, name) = match head.split_once(char::is_whitespace) {
                    Some((k, n)) => (k, Some(unquote(n.trim()))),
                    None => (head, None),
                };
                if kind.is_empty() {
                    return Err(err("a section without a name"));
                }
                if stack.len() > 32 {
                    return Err(err("sections nested too deep"));
                }
                stack.push(Section {
                    kind: kind.to_owned(),
                    name,
                    line,
                    ..Section::default()
                });
            }
            _ => return Err(err("neither `key = value` nor a section")),
        }
    }
    if stack.len() > 1 {
        let open = stack.last().map(|s| s.line).unwrap_or(0);
        return Err(ParseError {
            line: open,
            reason: "this section is never closed".to_owned(),
        });
    }
    Ok(stack.pop().unwrap_or_default())
}

/// `"a \"b\""` is `a "b"`; anything not wholly quoted stays as it is.
fn unquote(v: &str) -> String {
    let inner = match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if v.len() >= 2 => inner,
        _ => return v.to_owned(),
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn truncate(l: &str) -> String {
    l.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sections_filters_and_quoted_values_are_read() {
        let text = "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf\n\
            mail_location = maildir:~/Maildir\n\
            protocols = \" imap lmtp\"\n\
            namespace inbox {\n  inbox = yes\n  mailbox \"Sent Messages\" {\n    special_use = \\Sent\n  }\n}\n\
            protocol lmtp {\n  mail_plugins = \" sieve\"\n}\n\
            plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n\
            ssl_dh = # hidden, use -P to show it\n";
        let root = parse(text).unwrap();
        assert_eq!(version(text), Some("2.3.19.1"));
        assert_eq!(root.get("protocols"), Some(" imap lmtp"));
        assert_eq!(root.get("ssl_dh"), Some("# hidden, use -P to show it"));
        let ns = root.named("namespace", "inbox").unwrap();
        let sent = ns.named("mailbox", "Sent Messages").unwrap();
        assert_eq!(sent.get("special_use"), Some("\\Sent"));
        assert_eq!(
            root.named("protocol", "lmtp").unwrap().get("mail_plugins"),
            Some(" sieve")
        );
        assert_eq!(
            root.all("plugin").next().unwrap().get("sieve"),
            Some("file:~/sieve;active=~/.dovecot.sieve")
        );
    }

    #[test]
    fn unbalanced_braces_and_stray_lines_name_the_line() {
        assert_eq!(parse("a = 1\n}\n").unwrap_err().line, 2);
        assert_eq!(parse("x = 1\nplugin {\n  a = b\n").unwrap_err().line, 2);
        assert_eq!(parse("a = 1\njust words\n").unwrap_err().line, 2);
        assert_eq!(parse(" = 1\n").unwrap_err().line, 1);
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in "(?s).{0,400}") {
            let _ = parse(&text);
            let _ = version(&text);
        }

        #[test]
        fn the_parser_never_panics_on_doveconf_like_lines(
            lines in proptest::collection::vec(
                prop_oneof![
                    "[a-z_]{1,8} = [ -~]{0,12}",
                    "[a-z]{1,6}( \"?[ -~]{0,6}\"?)? \\{",
                    Just("}".to_owned()),
                    "#[ -~]{0,10}",
                    "[ -~]{0,10}",
                ],
                0..40,
            )
        ) {
            let text = lines.join("\n");
            let _ = parse(&text);
            if let Ok(root) = parse(&text) {
                let _ = root.get("a");
            }
        }
    }
}
