//! Patch 7 (PATCHES.md): an invalid `:zone` does not stop the script from
//! compiling; the test then uses the local time zone, as with no `:zone`
//! (RFC 5260 4.1; Pigeonhole warns and does the same). Fails on sieve-rs
//! 0.7.3 as published, where the whole script was refused.

use sieve::{Compiler, Event, Input, Runtime};

const MESSAGE: &str = "From: sender@example.net\r\nTo: me@example.org\r\n\
    Date: Mon, 15 Jan 2024 09:30:00 +0100\r\nSubject: Hi\r\n\r\nHello\r\n";

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

/// The date and current date parts a script files into with `zone_arg`
/// between the test's name and its match type.
fn parts(zone_arg: &str) -> Vec<String> {
    folders(&format!(
        "require [\"date\", \"fileinto\", \"variables\"];\n\
         if date {zone_arg} :matches \"date\" \"hour\" \"*\" {{ fileinto \"hour ${{1}}\"; }}\n\
         if date {zone_arg} :matches \"date\" \"zone\" \"*\" {{ fileinto \"zone ${{1}}\"; }}\n\
         if currentdate {zone_arg} :matches \"zone\" \"*\" {{ fileinto \"now ${{1}}\"; }}\n"
    ))
}

#[test]
fn an_invalid_zone_compiles_and_the_local_zone_is_used() {
    let local = parts("");
    assert_eq!(local.len(), 3, "{local:?}");
    for zone in [
        "Europe/Helsinki",
        "EET",
        "UTC",
        "0200",
        "+02",
        "+02:00",
        "+2500",
        "",
    ] {
        assert_eq!(
            parts(&format!(":zone \"{zone}\"")),
            local,
            ":zone \"{zone}\" is not +hhmm or -hhmm: the local zone"
        );
    }
}

#[test]
fn a_valid_zone_is_still_used() {
    assert_eq!(
        parts(":zone \"+0200\"")[..2],
        ["hour 10".to_string(), "zone +0200".to_string()]
    );
    assert_eq!(
        parts(":zone \"-0500\"")[..2],
        ["hour 03".to_string(), "zone -0500".to_string()]
    );
    assert_eq!(parts(":zone \"-1000\"")[1], "zone -1000");
}
