//! Patch 4: `header :index` and `address :index` with several header names
//! count the fields of all the named headers together (RFC 5260, section
//! 6), name after name in the order the names are given, as Pigeonhole
//! does; `:last` counts back from the end of that list. Fails on sieve-rs
//! 0.7.3 as published, which counted each name on its own (index 1 of
//! ["From", "To"] was both the first From and the first To; index 2 was
//! nothing with one From and one To).

use sieve::{Compiler, Envelope, Event, Input, Runtime};

/// The folders the script files the message into, in order.
fn folders(script: &str, headers: &str) -> Vec<String> {
    let script = format!("require [\"index\", \"variables\", \"fileinto\"];\r\n{script}");
    let message = format!("{headers}Subject: Hi\r\n\r\nHello\r\n");
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e:?}"));
    let runtime = Runtime::new();
    let mut ctx = runtime.filter(message.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
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

/// What `header :index n` (and `address :localpart :index n`) picks,
/// with and without `:last`, for n = 1 to 4: the value of the field, or
/// "-" when there is none. The expected lists are what Pigeonhole 2.3.19
/// (`sieve-test`) files for the same script and message.
fn picks(names: &str, headers: &str) -> (Vec<String>, Vec<String>) {
    let mut by_header = Vec::new();
    let mut by_address = Vec::new();
    for last in ["", " :last"] {
        for n in 1..=4 {
            let header = format!(
                "if header :index {n}{last} :matches {names} \"*\" {{ fileinto \"${{0}}\"; }} \
                 else {{ fileinto \"-\"; }}"
            );
            by_header.extend(folders(&header, headers));
            let address = format!(
                "if address :localpart :index {n}{last} :matches {names} \"*\" \
                 {{ fileinto \"${{0}}\"; }} else {{ fileinto \"-\"; }}"
            );
            by_address.extend(folders(&address, headers));
        }
    }
    (by_header, by_address)
}

fn list(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

#[test]
fn index_counts_the_named_fields_together() {
    // One From and one To: index 2 is the To.
    let one_each = "From: f1@example.net\r\nTo: t1@example.org\r\n";
    assert_eq!(
        picks("[\"From\", \"To\"]", one_each).1,
        list("f1 t1 - - t1 f1 - -")
    );
    assert_eq!(
        picks("[\"To\", \"From\"]", one_each).1,
        list("t1 f1 - - f1 t1 - -")
    );

    // From, To, From: the From fields (in message order), then the To
    // fields; the list's order decides, not the message's.
    let two_from = "From: f1@example.net\r\nTo: t1@example.org\r\nFrom: f2@example.net\r\n";
    let (header, address) = picks("[\"From\", \"To\"]", two_from);
    assert_eq!(
        header,
        list(
            "f1@example.net f2@example.net t1@example.org - \
             t1@example.org f2@example.net f1@example.net -"
        )
    );
    assert_eq!(address, list("f1 f2 t1 - t1 f2 f1 -"));
    assert_eq!(
        picks("[\"To\", \"From\"]", two_from).1,
        list("t1 f1 f2 - f2 f1 t1 -")
    );
    let to_first = "To: t1@example.org\r\nFrom: f1@example.net\r\nFrom: f2@example.net\r\n";
    assert_eq!(
        picks("[\"From\", \"To\"]", to_first).1,
        list("f1 f2 t1 - t1 f2 f1 -")
    );

    // A name that is absent counts nothing; a name given twice counts its
    // fields twice.
    assert_eq!(
        picks("[\"Bcc\", \"To\"]", one_each).1,
        list("t1 - - - t1 - - -")
    );
    assert_eq!(
        picks("[\"From\", \"from\"]", two_from).1,
        list("f1 f2 f1 f2 f2 f1 f2 f1")
    );
}

#[test]
fn index_one_is_only_the_first_named_field() {
    let one_each = "From: f1@example.net\r\nTo: t1@example.org\r\n";
    let script = "if header :index 1 :is [\"From\", \"To\"] \"t1@example.org\" \
                  { fileinto \"wrong\"; }";
    assert!(folders(script, one_each).is_empty());
    let script = "if address :index 1 :last :is [\"From\", \"To\"] \"f1@example.net\" \
                  { fileinto \"wrong\"; }";
    assert!(folders(script, one_each).is_empty());
}
