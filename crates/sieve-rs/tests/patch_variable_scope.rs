//! Patch 8 (PATCHES.md): a variable first set inside a block keeps its
//! value after the block (RFC 5229 4: variables are visible to the whole
//! script; Pigeonhole agrees on every script here). Fails on sieve-rs 0.7.3
//! as published, which scoped such a variable to its block.

use sieve::{Compiler, Event, Input, Runtime, compiler::ErrorType};

const MESSAGE: &str = "From: Sam Sender <sender@example.net>\r\n\
    To: Alice <alice@example.org>\r\nSubject: Quarterly report\r\n\
    Date: Mon, 15 Jan 2024 09:30:00 +0100\r\nMIME-Version: 1.0\r\n\
    Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
    --XX\r\nContent-Type: text/plain\r\n\r\none\r\n\
    --XX\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--XX--\r\n";

/// The folders `script` files the message into.
fn folders(script: &str) -> Vec<String> {
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let runtime = Runtime::new();
    let mut ctx = runtime.filter(MESSAGE.as_bytes());
    let mut input = Input::script("test", compiled);
    let mut out = Vec::new();
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        if let Ok(Event::FileInto { folder, .. }) = step {
            out.push(folder);
        }
    }
    out
}

#[test]
fn a_variable_set_in_an_if_block_is_visible_after_it() {
    // What a SOGo-style generator writes (mailstow's compatibility case 136).
    let script = r#"require ["variables", "fileinto"];
        if header :matches "subject" "* report" {
            set "kind" "${1}";
        }
        fileinto "Reports.${kind}";"#;
    assert_eq!(folders(script), ["Reports.Quarterly"]);

    // Compatibility case 093 and RFC 5260's own example do the same with
    // date and currentdate.
    let script = r#"require ["date", "variables", "fileinto"];
        if date :matches "date" "year" "*" { set "y" "${1}"; }
        if date :matches "date" "month" "*" { set "m" "${1}"; }
        fileinto "Archive.${y}-${m}";"#;
    assert_eq!(folders(script), ["Archive.2024-01"]);
}

#[test]
fn variables_of_sibling_and_nested_blocks_are_distinct_and_kept() {
    let script = r#"require ["variables", "fileinto"];
        if true { set "a" "1"; }
        if true { set "b" "2"; }
        if true { if true { if true { set "c" "3"; } } }
        if true { set "a" "${a}${b}"; }
        fileinto "A.${a}.${b}.${c}";"#;
    assert_eq!(folders(script), ["A.12.2.3"]);
}

#[test]
fn a_variable_never_set_is_still_empty() {
    let script = r#"require ["variables", "fileinto"];
        if false { set "never" "x"; }
        fileinto "A${never}B";"#;
    assert_eq!(folders(script), ["AB"]);
}

#[test]
fn a_variable_set_in_foreverypart_keeps_its_value_across_parts_and_after() {
    // Three parts: the multipart container and its two text parts.
    let script = r#"require ["variables", "fileinto", "foreverypart", "mime"];
        foreverypart {
            set "n" "${n}x";
            if header :mime :type :is "content-type" "text" { set "last" "${n}"; }
        }
        fileinto "A.${n}.${last}";"#;
    assert_eq!(folders(script), ["A.xxx.xxx"]);
}

#[test]
fn set_local_still_works() {
    // sieve-rs's own `:local` tag made a variable outlive its block; it
    // still does (it is now what every variable does).
    let script = r#"require ["variables", "fileinto"];
        if true { set :local "l" "1"; set "g" "2"; }
        fileinto "A.${l}.${g}";"#;
    assert_eq!(folders(script), ["A.1.2"]);
}

#[test]
fn more_variables_than_the_interpreter_holds_is_a_compile_error() {
    // Each set in its own block: these no longer share one slot, and the
    // interpreter silently runs nothing at all for a script with more
    // variables than it holds (256), so the compiler refuses such a script.
    let script = |n: usize| {
        let mut script = String::from("require [\"variables\", \"fileinto\"];\n");
        for i in 0..n {
            script.push_str(&format!("if true {{ set \"v{i}\" \"{i}\"; }}\n"));
        }
        script + "fileinto \"A.${v0}.${v255}\";"
    };
    assert_eq!(folders(&script(256)), ["A.0.255"]);
    let Err(error) = Compiler::new().compile(script(257).as_bytes()) else {
        panic!("257 variables compiled");
    };
    assert!(
        matches!(error.error_type(), ErrorType::TooManyVariables),
        "{error}"
    );
}
