//! Patch 5: vacation's `:addresses` entries are RFC 5322 addresses, with a
//! display name ("Me <me@example.test>", as webmail vacation forms write
//! them) or bare, and are compared by their address (RFC 5230, section
//! 4.5). Fails on sieve-rs 0.7.3 as published, which compared the whole
//! entry with the recipients' addresses and so never replied when an entry
//! had a display name. Each expectation was checked with Pigeonhole 2.3.19
//! (`sieve-test -e`, envelope sender sender@example.net, recipient
//! other@example.org).

use sieve::{Compiler, Envelope, Event, Input, Runtime};

const MESSAGE: &str = "From: Sender <sender@example.net>\r\n\
                       To: Me <me@example.test>\r\n\
                       Subject: Hi\r\n\
                       Message-ID: <1@example.net>\r\n\r\nHello\r\n";

/// The vacation replies the script sends for MESSAGE, each as the message
/// text. The envelope recipient is not one of the addresses in the message,
/// and no user address is set: only `:addresses` can make the message the
/// user's.
fn replies(script: &str, envelope_from: &str) -> Vec<String> {
    let script = format!("require \"vacation\";\r\n{script}");
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e:?}"));
    let runtime = Runtime::new();
    let mut ctx = runtime.filter(MESSAGE.as_bytes());
    ctx.set_envelope(Envelope::From, envelope_from);
    ctx.set_envelope(Envelope::To, "other@example.org");
    let mut input = Input::script("test", compiled);
    let mut created = Vec::new();
    let mut sent = Vec::new();
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        match step {
            Ok(Event::DuplicateId { .. }) => input = Input::False,
            Ok(Event::CreatedMessage {
                message_id,
                message,
            }) => created.push((message_id, String::from_utf8(message).unwrap())),
            Ok(Event::SendMessage { message_id, .. }) => sent.push(
                created
                    .iter()
                    .find(|(id, _)| *id == message_id)
                    .map(|(_, m)| m.clone())
                    .unwrap(),
            ),
            _ => {}
        }
    }
    sent
}

#[test]
fn addresses_with_display_names_are_the_users() {
    for entry in [
        "Me <me@example.test>",
        "\\\"Me, Myself\\\" <ME@Example.Test>",
        "Me<me@example.test>",
        "<me@example.test>",
        "me@example.test (Me)",
        "me@example.test",
    ] {
        let script = format!("vacation :addresses [\"{entry}\"] \"I am away.\";");
        assert_eq!(replies(&script, "sender@example.net").len(), 1, "{script}");
    }
}

#[test]
fn only_the_entrys_address_counts() {
    for (entry, answered) in [
        ("Me <me@example.test>", true),
        ("Someone <other@example.test>", false),
        ("Me <other@example.test>", false),
        // Not one address: Pigeonhole ignores the entry.
        ("Me <me@example.test>, You <you@example.test>", false),
        ("me", false),
    ] {
        let script = format!("vacation :addresses [\"{entry}\"] \"I am away.\";");
        assert_eq!(
            replies(&script, "sender@example.net").len(),
            usize::from(answered),
            "{script}"
        );
    }
}

#[test]
fn no_reply_to_an_address_given_with_a_display_name() {
    let script = "vacation :addresses [\"Me <me@example.test>\"] \"I am away.\";";
    assert_eq!(replies(script, "sender@example.net").len(), 1);
    // The sender is the user: "discarded vacation reply to own address
    // <me@example.test> (as specified using :addresses argument)".
    assert!(replies(script, "me@example.test").is_empty());
    assert!(replies(script, "ME@example.test").is_empty());
}

#[test]
fn from_with_a_display_name_is_the_replys_from() {
    // Pigeonhole writes the :from value as given: "From: Me
    // <me@example.test>".
    let script = "vacation :addresses \"Me <me@example.test>\" :from \"Me <me@example.test>\" \"I am away.\";";
    let sent = replies(script, "sender@example.net");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with("From: Me <me@example.test>\r\n"),
        "{}",
        sent[0]
    );
}
