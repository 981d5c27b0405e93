//! Compiling Sieve scripts for the host: sieve-rs's compiler with our
//! limits, then two checks on the compiled program that the crate leaves to
//! us: every `require` must name an extension we allow (the crate accepts
//! unknown ones and fails only at run time), and every explicit `keep` is
//! rewritten into `fileinto :copy "INBOX"` with the same flags, so that a
//! later `fileinto` cannot cancel it (the crate keeps one "final event" slot
//! for the explicit and the implicit keep alike; RFC 5228 keeps both).
//! Must not run scripts or touch files.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use sieve::compiler::grammar::Capability;
use sieve::{Compiler, Sieve};

/// A compile failure with its position (1-based line and column; 0 when the
/// problem has no single position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileFailure {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for CompileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Script limits applied at compile time.
#[derive(Debug, Clone, Copy)]
pub struct CompileLimits {
    pub max_script_size: usize,
    pub max_include_depth: usize,
    /// editheader may be required (admin scripts, or users when allowed).
    pub editheader: bool,
}

/// The names of the extensions a user's script may require (with
/// editheader when `editheader`), space-separated in sieve-rs's order: the
/// SIEVE capability a ManageSieve server announces.
pub fn user_extensions(editheader: bool) -> String {
    Capability::all()
        .iter()
        .filter(|c| allowed(c, editheader))
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The extensions a script may require. Everything Pigeonhole offers a
/// user by default that sieve-rs implements; not the vnd.stalwart ones,
/// convert, replace, enclose, redirect-dsn, redirect-deliverby, extlists,
/// fcc, mailboxid, mboxmetadata, servermetadata or imapsieve.
pub fn allowed(cap: &Capability, editheader: bool) -> bool {
    use Capability as C;
    match cap {
        C::EditHeader => editheader,
        C::Envelope
        | C::EnvelopeDsn
        | C::EnvelopeDeliverBy
        | C::FileInto
        | C::EncodedCharacter
        | C::Comparator(_)
        | C::Body
        | C::Copy
        | C::Relational
        | C::Date
        | C::Index
        | C::Duplicate
        | C::Variables
        | C::ForEveryPart
        | C::Mime
        | C::ExtractText
        | C::Enotify
        | C::Environment
        | C::Reject
        | C::Ereject
        | C::SubAddress
        | C::Vacation
        | C::VacationSeconds
        | C::Mailbox
        | C::SpecialUse
        | C::Imap4Flags
        | C::Ihave
        | C::Include
        | C::Regex
        | C::SpamTest
        | C::SpamTestPlus
        | C::VirusTest => true,
        _ => false,
    }
}

/// Compile `text` (named `name` in messages) and check it.
pub fn compile(text: &[u8], limits: CompileLimits) -> Result<Arc<Sieve>, CompileFailure> {
    if text.len() > limits.max_script_size {
        return Err(CompileFailure {
            line: 0,
            column: 0,
            message: format!(
                "script is {} bytes, over the limit of {}",
                text.len(),
                limits.max_script_size
            ),
        });
    }
    let compiler = Compiler::new()
        .with_max_script_size(limits.max_script_size)
        .with_max_includes(limits.max_include_depth.max(1) * 8);
    // sieve-rs's compiler can panic on some scripts (found by fuzzing:
    // a regex match variable in a header test); a user's script must never
    // take a delivery down, so a panic is a compile failure like any other.
    let compiled =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compiler.compile(text))).map_err(
            |_| CompileFailure {
                line: 0,
                column: 0,
                message: "the Sieve compiler failed on this script (internal error)".into(),
            },
        )?;
    let sieve = compiled.map_err(|e| {
        let message = e.to_string();
        let (mut line, mut column) = (e.line_num(), e.line_pos());
        if line == 0 {
            // sieve-rs loses the position of some errors (an unknown
            // command); the offending word it names is found in the text.
            if let Some(word) = message
                .split("found \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                (line, column) = position_of(text, word);
            }
        }
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        CompileFailure {
            line,
            column,
            message,
        }
    })?;
    let mut program = serde_json::to_value(&sieve).map_err(internal)?;
    check_requires(&program, text, limits.editheader)?;
    check_address_headers(&program, text)?;
    rewrite_keeps(&mut program)?;
    let sieve: Sieve = serde_json::from_value(program).map_err(internal)?;
    Ok(Arc::new(sieve))
}

fn internal(e: serde_json::Error) -> CompileFailure {
    CompileFailure {
        line: 0,
        column: 0,
        message: format!("internal error preparing the compiled script: {e}"),
    }
}

fn instructions(program: &Value) -> &[Value] {
    program
        .get("instructions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Every extension named by a `require`, as the compiled program lists it.
pub fn requires(program: &Sieve) -> Vec<Capability> {
    let Ok(v) = serde_json::to_value(program) else {
        return Vec::new();
    };
    required(&v)
}

fn required(program: &Value) -> Vec<Capability> {
    instructions(program)
        .iter()
        .filter_map(|i| i.get("Require"))
        .filter_map(|caps| serde_json::from_value::<Vec<Capability>>(caps.clone()).ok())
        .flatten()
        .collect()
}

fn check_requires(program: &Value, text: &[u8], editheader: bool) -> Result<(), CompileFailure> {
    for cap in required(program) {
        if allowed(&cap, editheader) {
            continue;
        }
        let name = cap.to_string();
        let (line, column) = position_of(text, &format!("\"{name}\""));
        let message = match cap {
            Capability::Other(_) => format!("require \"{name}\": unknown extension"),
            Capability::EditHeader => {
                format!("require \"{name}\": not allowed in user scripts here")
            }
            _ => format!("require \"{name}\": extension not allowed"),
        };
        return Err(CompileFailure {
            line,
            column,
            message,
        });
    }
    Ok(())
}

/// The addresses the program's vacation tests name in `:addresses` as
/// plain strings (one given through a variable cannot be known before the
/// script runs), in the order of the program; an entry with a display name
/// (`"Shop <shop@example.org>"`) gives its address.
pub(crate) fn vacation_addresses(program: &Sieve) -> Vec<String> {
    let Ok(v) = serde_json::to_value(program) else {
        return Vec::new();
    };
    instructions(&v)
        .iter()
        .filter_map(|i| i.get("Test")?.get("Vacation")?.get("addresses")?.as_array())
        .flatten()
        .filter_map(|a| a.get("Text")?.as_str())
        .map(|a| {
            let inner = a
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map_or(a, |(addr, _)| addr);
            inner.trim().to_owned()
        })
        .collect()
}

/// The header fields an `address` test may read: those that hold
/// addresses, as Pigeonhole 0.5.19 allows them (each one checked with its
/// compiler; RFC 5228 5.1: "Implementations MUST restrict the address test
/// to headers that contain addresses").
const ADDRESS_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-reply-to",
    "return-receipt-to",
    "errors-to",
    "delivered-to",
    "x-original-to",
    "mail-followup-to",
    "mail-reply-to",
    "apparently-to",
];

/// An `address` test on a header that holds no addresses is refused, as
/// Pigeonhole refuses it, with its message; sieve-rs compiles it and would
/// read whatever the field holds as addresses. A name given through a
/// variable is only known at run time, and is not checked (nor is it by
/// Pigeonhole).
fn check_address_headers(program: &Value, text: &[u8]) -> Result<(), CompileFailure> {
    let names = instructions(program)
        .iter()
        .filter_map(|i| {
            i.get("Test")?
                .get("Address")?
                .get("header_list")?
                .as_array()
        })
        .flatten()
        .filter_map(|h| h.get("Text")?.as_str());
    for name in names {
        if ADDRESS_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let (line, column) = position_of(text, &format!("\"{name}\""));
        return Err(CompileFailure {
            line,
            column,
            message: format!("specified header '{name}' is not allowed for the address test"),
        });
    }
    Ok(())
}

/// The 1-based line and column of the first occurrence of `needle`
/// (case-insensitive), or (0, 0).
fn position_of(text: &[u8], needle: &str) -> (usize, usize) {
    let hay = String::from_utf8_lossy(text).to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let Some(at) = hay.find(&needle) else {
        return (0, 0);
    };
    let before = &hay[..at];
    let line = before.matches('\n').count() + 1;
    let column = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The mailbox id an explicit keep's `fileinto :copy "INBOX"` carries, so
/// that the host tells it from a script's own `fileinto "INBOX"` (which
/// Pigeonhole does not defer). No script can give a mailbox id: the
/// `mailboxid` extension is refused to every script (see [`allowed`]).
pub(crate) const EXPLICIT_KEEP: &str = "\u{0}mailstow:explicit-keep";

/// The compiled form of `fileinto :copy "INBOX"`, used as the template for
/// explicit keeps.
fn inbox_copy_template() -> Option<&'static Value> {
    static T: OnceLock<Option<Value>> = OnceLock::new();
    T.get_or_init(|| {
        let s = Compiler::new()
            .compile(b"require [\"fileinto\", \"copy\"]; fileinto :copy \"INBOX\";")
            .ok()?;
        let v = serde_json::to_value(&s).ok()?;
        instructions(&v)
            .iter()
            .find_map(|i| i.get("FileInto").cloned())
    })
    .as_ref()
}

fn rewrite_keeps(program: &mut Value) -> Result<(), CompileFailure> {
    let Some(list) = program
        .get_mut("instructions")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for ins in list.iter_mut() {
        let Some(flags) = ins.get("Keep").map(|k| k.get("flags").cloned()) else {
            continue;
        };
        let mut fi = inbox_copy_template()
            .cloned()
            .ok_or_else(|| CompileFailure {
                line: 0,
                column: 0,
                message: "internal error: no fileinto template".into(),
            })?;
        if let Some(obj) = fi.as_object_mut() {
            if let Some(flags) = flags {
                obj.insert("flags".into(), flags);
            }
            obj.insert(
                "mailbox_id".into(),
                serde_json::json!({ "Text": EXPLICIT_KEEP }),
            );
        }
        *ins = serde_json::json!({ "FileInto": fi });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CompileLimits = CompileLimits {
        max_script_size: 1 << 20,
        max_include_depth: 10,
        editheader: false,
    };

    #[test]
    fn unknown_and_disallowed_requires_are_compile_errors_with_a_line() {
        let e = compile(
            b"# c\nrequire \"fileinto\";\nrequire \"x-nonsense\";\nkeep;",
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown extension"), "{e}");
        let e = compile(b"require \"editheader\"; addheader \"X\" \"y\";", LIMITS).unwrap_err();
        assert!(e.message.contains("not allowed"), "{e}");
        let admin = CompileLimits {
            editheader: true,
            ..LIMITS
        };
        assert!(compile(b"require \"editheader\"; addheader \"X\" \"y\";", admin).is_ok());
        let e = compile(b"require \"vnd.stalwart.while\";", LIMITS).unwrap_err();
        assert!(e.message.contains("require"), "{e}");
    }

    #[test]
    fn an_address_test_on_a_header_without_addresses_is_refused_as_by_pigeonhole() {
        let script = |h: &str| {
            format!(
                "require \"fileinto\";\nif address :is \"{h}\" \"a@b.example\" {{ discard; }}\n"
            )
        };
        let e = compile(script("X-Delivered-To").as_bytes(), LIMITS).unwrap_err();
        assert_eq!((e.line, e.column), (2, 16), "{e:?}");
        assert_eq!(
            e.message,
            "specified header 'X-Delivered-To' is not allowed for the address test"
        );
        for ok in ["FROM", "Delivered-To", "X-Original-To", "Resent-Sender"] {
            assert!(compile(script(ok).as_bytes(), LIMITS).is_ok(), "{ok}");
        }
        // One bad name in a list, and in anyof, is enough.
        let e = compile(
            b"if anyof(true, address :domain [\"to\", \"subject\"] \"x\") { discard; }",
            LIMITS,
        )
        .unwrap_err();
        assert!(e.message.contains("'subject'"), "{e:?}");
        // Only known at run time: not refused.
        assert!(compile(
            b"require \"variables\"; set \"h\" \"x-foo\"; if address \"${h}\" \"x\" { discard; }",
            LIMITS
        )
        .is_ok());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = compile(b"keep;\nfileinto \"x\"\n", LIMITS).unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }

    #[test]
    fn unknown_commands_are_located_even_when_the_crate_says_line_0() {
        let e = compile(b"require \"fileinto\";\n# c\nfrobnicate \"x\";\n", LIMITS).unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e:?}");
        assert!(!e.message.contains("line 0"), "{e:?}");
    }

    #[test]
    fn a_script_that_panics_the_crates_compiler_is_a_compile_failure() {
        // Found by the sieve_host fuzz target.
        let script = b"require [\"fileinto\", \"regex\", \"variables\"];\nif header :regex \"subject\" \"^Inves.${2}\";\n\x8d\n";
        let e = compile(script, LIMITS).unwrap_err();
        assert!(e.message.contains("internal error"), "{e:?}");
    }

    #[test]
    fn oversized_scripts_are_refused() {
        let small = CompileLimits {
            max_script_size: 10,
            ..LIMITS
        };
        assert!(compile(b"keep; keep; keep;", small).is_err());
    }

    #[test]
    fn explicit_keep_becomes_an_uncancellable_inbox_copy() {
        let s = compile(
            b"require \"imap4flags\"; keep :flags \"\\\\Seen\"; keep;",
            LIMITS,
        )
        .unwrap();
        let v = serde_json::to_value(&*s).unwrap();
        let fileintos: Vec<_> = instructions(&v)
            .iter()
            .filter_map(|i| i.get("FileInto"))
            .collect();
        assert_eq!(fileintos.len(), 2);
        assert!(fileintos.iter().all(|f| f["copy"] == Value::Bool(true)));
        assert!(instructions(&v).iter().all(|i| i.get("Keep").is_none()));
    }
}
