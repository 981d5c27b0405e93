//! Patch 6: `require "vacation-seconds"` implies "vacation" (RFC 6131,
//! section 2), so a script may name only "vacation-seconds". Fails on
//! sieve-rs 0.7.3 as published, which refused such a script with
//! "Undeclared capability 'vacation'". Pigeonhole 2.3.19 (with
//! vacation-seconds enabled) compiles and runs both scripts below.

use sieve::{Compiler, Envelope, Event, Input, Runtime};

const MESSAGE: &str = "From: Sender <sender@example.net>\r\n\
                       To: Me <me@example.org>\r\n\
                       Subject: Hi\r\n\r\nHello\r\n";

/// The expiry the vacation test asks about, and the number of messages sent.
fn run(script: &str) -> (Vec<u64>, usize) {
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let runtime = Runtime::new();
    let mut ctx = runtime.filter(MESSAGE.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
    ctx.set_user_address("me@example.org");
    let mut input = Input::script("test", compiled);
    let (mut expiries, mut sent) = (Vec::new(), 0);
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        match step {
            Ok(Event::DuplicateId { expiry, .. }) => {
                expiries.push(expiry);
                input = Input::False;
            }
            Ok(Event::SendMessage { .. }) => sent += 1,
            Ok(_) => {}
            Err(e) => panic!("{script}: {e:?}"),
        }
    }
    (expiries, sent)
}

#[test]
fn vacation_seconds_alone_is_enough() {
    assert_eq!(
        run("require \"vacation-seconds\"; vacation :seconds 60 \"x\";"),
        (vec![60], 1)
    );
    assert_eq!(
        run("require \"vacation-seconds\"; vacation :days 2 \"x\";"),
        (vec![2 * 86400], 1)
    );
    // The implication goes one way only.
    assert!(
        Compiler::new()
            .compile(b"require \"vacation\"; vacation :seconds 60 \"x\";")
            .is_err()
    );
}
