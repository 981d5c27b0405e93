//! Tests that packaging/mailstow.example.toml tells the truth: every key the
//! code reads is shown, every value shown (commented out or not) is the
//! code's default unless marked "(example)", and every literal
//! "Default: X" is the code's default. Test code only; must not be compiled
//! into mailstow.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeOwned, Visitor};

use super::*;

const EXAMPLE: &str = "packaging/mailstow.example.toml";

/// The keys the code needs, and settings that give other keys a meaning
/// (duplicate_window counts only with duplicate_suppression, spam_max only
/// with spam_header), so that a wrong value for those shows.
const CONTEXT: &str = r#"
[storage]
mail_root = "mail"
[users]
passwd_file = "users"
[delivery]
duplicate_suppression = true
[sieve]
spam_header = "X-Spam-Score"
virus_header = "X-Virus-Status"
"#;

/// One key as the file shows it.
struct Shown {
    line: usize,
    section: String,
    key: String,
    value: toml::Value,
    /// The comment on its line and the comment block above it.
    comment: String,
}

impl Shown {
    fn name(&self) -> String {
        match self.section.as_str() {
            "" => self.key.clone(),
            s => format!("[{s}] {}", self.key),
        }
    }
}

/// `key = value` (a TOML line holding one key) and its trailing comment.
fn key_line(text: &str) -> Option<(String, toml::Value, String)> {
    let first = text.chars().next()?;
    if !(first.is_ascii_lowercase() || first == '_') {
        return None;
    }
    let table: toml::Table = toml::from_str(text).ok()?;
    let (key, value) = table.into_iter().next()?;
    Some((key, value, trailing_comment(text).to_owned()))
}

/// The text after the first `#` outside a quoted string.
fn trailing_comment(line: &str) -> &str {
    let (mut quote, mut escaped) = (None, false);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return &line[i + 1..],
            (None, _) => {}
        }
    }
    ""
}

/// Every key of the file, live and commented out, with its comment: the
/// comment on its line and the prose comment lines directly above it. A
/// commented-out key shares the comment of the commented-out keys it
/// follows (`# user = ...` then `# group = ...`).
fn shown_keys(text: &str) -> Vec<Shown> {
    enum Line {
        Blank,
        Section(String),
        Prose(String),
        Key {
            commented: bool,
            key: String,
            value: toml::Value,
            comment: String,
        },
    }
    impl Line {
        fn is_commented_key(&self) -> bool {
            matches!(self, Line::Key { commented, .. } if *commented)
        }
    }
    let lines: Vec<Line> = text
        .lines()
        .map(|l| l.trim())
        .map(|l| {
            if l.is_empty() {
                Line::Blank
            } else if let Some(rest) = l.strip_prefix('#') {
                match key_line(rest.trim_start_matches('#').trim()) {
                    Some((key, value, comment)) => Line::Key {
                        commented: true,
                        key,
                        value,
                        comment,
                    },
                    None => Line::Prose(rest.to_owned()),
                }
            } else if l.starts_with('[') {
                Line::Section(l.trim_matches(['[', ']']).to_owned())
            } else {
                let (key, value, comment) =
                    key_line(l).unwrap_or_else(|| panic!("{EXAMPLE}: cannot read the line {l:?}"));
                Line::Key {
                    commented: false,
                    key,
                    value,
                    comment,
                }
            }
        })
        .collect();

    let mut shown = Vec::new();
    let mut section = String::new();
    for (i, line) in lines.iter().enumerate() {
        match line {
            Line::Section(s) => section = s.clone(),
            Line::Key {
                commented,
                key,
                value,
                comment,
            } => {
                let mut above = i;
                if *commented {
                    while above > 0 && lines[above - 1].is_commented_key() {
                        above -= 1;
                    }
                }
                let mut block = vec![comment.as_str()];
                while above > 0 {
                    let Line::Prose(p) = &lines[above - 1] else {
                        break;
                    };
                    block.push(p);
                    above -= 1;
                }
                shown.push(Shown {
                    line: i + 1,
                    section: section.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    comment: block.join("\n"),
                });
            }
            Line::Blank | Line::Prose(_) => {}
        }
    }
    shown
}

/// The literal values of "Default: X" in a comment (X read as TOML up to
/// ". " or " (", a trailing period dropped); prose ("the machine's host
/// name") is no literal and is left out.
fn stated_defaults(comment: &str) -> Vec<toml::Value> {
    let lower = comment.to_lowercase();
    lower
        .match_indices("default:")
        .filter_map(|(at, m)| {
            let rest = comment[at + m.len()..].lines().next().unwrap_or("");
            let end = [". ", " ("]
                .iter()
                .filter_map(|s| rest.find(s))
                .min()
                .unwrap_or(rest.len());
            let x = rest[..end].trim();
            let x = x.strip_suffix('.').unwrap_or(x);
            toml::from_str::<toml::Table>(&format!("x = {x}"))
                .ok()
                .and_then(|mut t| t.remove("x"))
        })
        .collect()
}

/// The configuration [`CONTEXT`] gives with `key` set to `value`, or left
/// out when `value` is None.
fn with(section: &str, key: &str, value: Option<&toml::Value>) -> Result<Config, String> {
    let mut table: toml::Table = toml::from_str(CONTEXT).unwrap();
    let place = match section {
        "" => &mut table,
        s => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap(),
    };
    match value {
        Some(v) => place.insert(key.to_owned(), v.clone()),
        None => place.remove(key),
    };
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    Config::from_toml(&text, Path::new("probe.toml"), Path::new("/etc/mailstow"))
        .map_err(|e| e.to_string())
}

/// The code's default for a key, as the effective configuration prints it.
fn printed(cfg: &Config, section: &str, key: &str) -> String {
    let table: toml::Table = toml::from_str(&cfg.effective_toml()).unwrap();
    let value = match section {
        "" => table.get(key),
        s => table.get(s).and_then(|t| t.get(key)),
    };
    value.map_or("unset".to_owned(), ToString::to_string)
}

/// Is `value` what the code takes when `key` is left out? Err says why not.
fn is_default(section: &str, key: &str, value: &toml::Value) -> Result<(), String> {
    let default = with(section, key, None)
        .map_err(|e| format!("the code has no default (without it: {e})"))?;
    let given =
        with(section, key, Some(value)).map_err(|e| format!("the code refuses it ({e})"))?;
    if format!("{given:?}") == format!("{default:?}") {
        Ok(())
    } else {
        Err(format!(
            "the code's default is {}",
            printed(&default, section, key)
        ))
    }
}

#[test]
fn every_value_the_example_config_does_not_mark_as_an_example_is_the_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);
    let text = std::fs::read_to_string(path).unwrap();
    let mut wrong = Vec::new();
    for k in shown_keys(&text) {
        let (name, line) = (k.name(), k.line);
        if !k.comment.to_lowercase().contains("(example)") {
            if let Err(why) = is_default(&k.section, &k.key, &k.value) {
                wrong.push(format!(
                    "{EXAMPLE}:{line}: {name} = {} is not marked (example), so it claims \
                     to be the default, but {why}",
                    k.value
                ));
            }
        }
        for stated in stated_defaults(&k.comment) {
            if let Err(why) = is_default(&k.section, &k.key, &stated) {
                wrong.push(format!(
                    "{EXAMPLE}:{line}: {name}: the comment says \"Default: {stated}\", but {why}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The field names serde's derive gives a raw table: it hands them to
/// `deserialize_struct`, which this deserializer answers with them.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    struct Names;
    impl<'de> serde::Deserializer<'de> for Names {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Names) {
        Err(Fields(f)) => f,
        Ok(_) => unreachable!("Names never yields a value"),
    }
}

#[test]
fn the_example_config_shows_every_key_the_code_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);
    let text = std::fs::read_to_string(path).unwrap();
    let shown: BTreeSet<(String, String)> = shown_keys(&text)
        .into_iter()
        .map(|k| (k.section, k.key))
        .collect();
    let sections: [(&str, &[&str]); 15] = [
        ("lmtp", keys_of::<RawLmtp>()),
        ("smtp", keys_of::<RawSmtp>()),
        ("tls", keys_of::<RawTls>()),
        ("storage", keys_of::<RawStorage>()),
        ("users", keys_of::<RawUsers>()),
        ("limits", keys_of::<RawLimits>()),
        ("delivery", keys_of::<RawDelivery>()),
        ("log", keys_of::<RawLog>()),
        ("sieve", keys_of::<RawSieve>()),
        ("outbound", keys_of::<RawOutbound>()),
        ("quota", keys_of::<RawQuota>()),
        ("index", keys_of::<RawIndex>()),
        ("metrics", keys_of::<RawMetrics>()),
        ("managesieve", keys_of::<RawManagesieve>()),
        ("proxy", keys_of::<RawProxy>()),
    ];
    let top = keys_of::<Raw>()
        .iter()
        .filter(|k| !sections.iter().any(|(s, _)| s == *k))
        .map(|k| ("", *k));
    let missing: Vec<String> = sections
        .iter()
        .flat_map(|(s, keys)| keys.iter().map(move |k| (*s, *k)))
        .chain(top)
        .filter(|(s, k)| !shown.contains(&(s.to_string(), k.to_string())))
        .map(|(s, k)| format!("[{s}] {k}"))
        .collect();
    assert!(
        missing.is_empty(),
        "{EXAMPLE} does not show {}",
        missing.join(", ")
    );
}

#[test]
fn a_default_stated_in_prose_is_no_literal_and_one_in_toml_is() {
    assert_eq!(
        stated_defaults("Default: the machine's host name.  (example)"),
        []
    );
    assert_eq!(
        stated_defaults("x\n# Default: [] (no SMTP).  Example: [\"0.0.0.0:25\"]"),
        [toml::Value::Array(vec![])]
    );
    assert_eq!(
        stated_defaults(" default: \"score\"  (example)"),
        [toml::Value::String("score".into())]
    );
    assert_eq!(
        stated_defaults("Default: 10.0."),
        [toml::Value::Float(10.0)]
    );
}
