//! Tests of the fixes listed in PATCHES.md, one or more per fix: each
//! fails on sieve-rs 0.7.3 as published and passes with the fix. Drives
//! the interpreter as a host would and looks only at its events.

use sieve::{Compiler, Envelope, Event, Input, Runtime};

/// What the interpreter asked the host to do, in order; duplicate ids are
/// answered "not seen", mailboxes "exist", includes "not found".
fn events(script: &str, message: &str) -> Vec<Event> {
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e:?}"));
    let runtime = Runtime::new()
        .with_valid_notification_uri("mailto")
        .with_max_redirects(10);
    let mut ctx = runtime.filter(message.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
    ctx.set_user_address("me@example.org");
    let mut input = Input::script("test", compiled);
    let mut out = Vec::new();
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        let Ok(event) = step else { continue };
        match &event {
            Event::DuplicateId { .. } | Event::IncludeScript { .. } => input = Input::False,
            _ => {}
        }
        out.push(event);
    }
    out
}

fn sends(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::SendMessage { .. }))
        .count()
}

const PLAIN: &str =
    "From: Sender <sender@example.net>\r\nTo: Me <me@example.org>\r\nSubject: Hi\r\n\r\nHello\r\n";

// ---------------------------------------------------------------------------
// Patch 1: Auto-Submitted (RFC 3834 5, RFC 5230 4.5, RFC 5435 3.8)
// ---------------------------------------------------------------------------

#[test]
fn vacation_does_not_answer_auto_submitted_mail() {
    let script = "require \"vacation\"; vacation \"away\";";
    assert_eq!(
        sends(&events(script, PLAIN)),
        1,
        "a plain message is answered"
    );
    let auto = format!("Auto-Submitted: auto-replied\r\n{PLAIN}");
    assert_eq!(sends(&events(script, &auto)), 0, "an auto-reply is not");
    let no = format!("Auto-Submitted: no\r\n{PLAIN}");
    assert_eq!(sends(&events(script, &no)), 1, "\"no\" is not automatic");
}

#[test]
fn notify_does_not_notify_of_auto_submitted_mail() {
    let script = "require \"enotify\"; notify \"mailto:me@example.org\";";
    assert_eq!(sends(&events(script, PLAIN)), 1);
    let auto = format!("Auto-Submitted: auto-generated\r\n{PLAIN}");
    assert_eq!(sends(&events(script, &auto)), 0);
}
