//! Patch 12: a comparator other than `i;octet` and `i;ascii-casemap` must
//! be declared with `require "comparator-NAME"` (RFC 5228 2.7.3), as
//! Pigeonhole requires. Fails on sieve-rs 0.7.3 as published, which took
//! any comparator name without a require (an unknown one compared like
//! i;ascii-casemap). Checked against Pigeonhole 0.5.19's `sieve-test`:
//! "unknown comparator 'i;ascii-numeric'" without the require.

use sieve::{Compiler, compiler::ErrorType};

fn compile(script: &str) -> Result<(), (usize, usize, String)> {
    Compiler::new()
        .compile(script.as_bytes())
        .map(|_| ())
        .map_err(|e| (e.line_num(), e.line_pos(), format!("{:?}", e.error_type())))
}

#[test]
fn the_two_base_comparators_need_no_require() {
    for name in ["i;octet", "i;ascii-casemap"] {
        let script = format!("if header :comparator \"{name}\" :is \"subject\" \"x\" {{ stop; }}");
        assert_eq!(compile(&script), Ok(()), "{name}");
    }
}

#[test]
fn other_comparators_need_their_require() {
    for name in ["i;ascii-numeric", "i;unicode-casemap", "i;no-such-thing"] {
        let script = format!(
            "if true {{\n  if header :comparator \"{name}\" :is \"subject\" \"x\" {{ stop; }}\n}}"
        );
        let (line, _, error) = compile(&script).expect_err(name);
        assert_eq!(line, 2, "{name}: {error}");
        assert!(error.starts_with("UndeclaredCapability"), "{name}: {error}");
        let required = format!("require \"comparator-{name}\";\n{script}");
        assert_eq!(compile(&required), Ok(()), "{name}");
    }
}

#[test]
fn every_test_with_a_comparator_checks_it() {
    let tests = [
        "address :comparator \"i;ascii-numeric\" :is \"from\" \"1\"",
        "envelope :comparator \"i;ascii-numeric\" :is \"from\" \"1\"",
        "string :comparator \"i;ascii-numeric\" :is \"1\" \"1\"",
        "hasflag :comparator \"i;ascii-numeric\" :is \"1\"",
        "date :comparator \"i;ascii-numeric\" :is \"date\" \"year\" \"1\"",
    ];
    for test in tests {
        let script = format!(
            "require [\"envelope\", \"variables\", \"imap4flags\", \"date\"];\nif {test} {{ stop; }}"
        );
        assert!(
            matches!(compile(&script), Err((2, _, ref e)) if e.starts_with("UndeclaredCapability")),
            "{test}: {:?}",
            compile(&script)
        );
    }
}

#[test]
fn the_error_names_the_comparator() {
    let err = Compiler::new()
        .compile(b"if header :comparator \"i;ascii-numeric\" :is \"a\" \"1\" { stop; }")
        .expect_err("undeclared");
    assert!(
        matches!(err.error_type(), ErrorType::UndeclaredCapability(_)),
        "{err}"
    );
    assert!(err.to_string().contains("i;ascii-numeric"), "{err}");
}
