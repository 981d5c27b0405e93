//! Patch 10 (PATCHES.md): a redirect to an address that is not a
//! "sieve-address" is a runtime error the host sees (RFC 5228 2.4.2.3),
//! not a redirect silently dropped; an address whose domain has no dot
//! (`user@localhost`) is valid and redirected. Which addresses are invalid
//! follows Pigeonhole (`sieve-test`; its own list of invalid and valid
//! redirect addresses is upstream's `tests/compile/errors/out-address.sieve`).
//! Fails on sieve-rs 0.7.3 as published.

use sieve::{Compiler, Envelope, Event, Input, Recipient, Runtime, runtime::RuntimeError};

const MESSAGE: &str = "From: sender@example.net\r\nTo: me@example.org\r\n\
    Subject: Hi\r\n\r\nHello\r\n";

/// What running `script` gives: the redirect targets, the runtime errors,
/// and whether the (implicit) keep came last.
struct Run {
    sent: Vec<String>,
    errors: Vec<RuntimeError>,
    kept: bool,
}

fn run(script: &str) -> Run {
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let runtime = Runtime::new().with_max_redirects(10);
    let mut ctx = runtime.filter(MESSAGE.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
    ctx.set_user_address("me@example.org");
    let mut input = Input::script("test", compiled);
    let mut out = Run {
        sent: Vec::new(),
        errors: Vec::new(),
        kept: false,
    };
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        out.kept = false;
        match step {
            Ok(Event::SendMessage {
                recipient: Recipient::Address(address),
                ..
            }) => out.sent.push(address),
            Ok(Event::Keep { .. }) => out.kept = true,
            Ok(_) => (),
            Err(error) => out.errors.push(error),
        }
    }
    out
}

/// `redirect` to `address`, given as a variable's value (a literal one is
/// no different).
fn redirect(address: &str) -> Run {
    let quoted = address.replace('\\', "\\\\").replace('"', "\\\"");
    run(&format!(
        "require \"variables\";\nset \"to\" \"{quoted}\";\nredirect \"${{to}}\";"
    ))
}

#[test]
fn a_domain_without_a_dot_is_redirected() {
    for (address, target) in [
        ("bob@localhost", "bob@localhost"),
        ("Bob <bob@localhost>", "bob@localhost"),
        ("bob@123", "bob@123"),
    ] {
        let run = redirect(address);
        assert_eq!(run.sent, [target], "{address:?}");
        assert!(run.errors.is_empty(), "{address:?}: {:?}", run.errors);
    }
    assert_eq!(run("redirect \"bob@localhost\";").sent, ["bob@localhost"]);
}

#[test]
fn an_invalid_address_is_a_runtime_error_and_the_message_is_kept() {
    for address in [
        "not an address",
        "bob",
        "",
        "john doe@example.com",
        "bob@exa mple.com",
        "bob@",
        "@example.com",
        "@wrong.example.com",
        "@",
        "<>",
        "bob@@example.com",
        "bob@example..com",
        "bob@example.com.",
        "bob@.example.com",
        "Stephan Bosch error@example.org",
        "Stephan Bosch <error@example.org",
        " more error @  example.com  ",
        "Error <",
        "Error <stephan@",
        "stephan@example.org,tss@example.net",
        "bob@example.com <x@example.org>",
        "<bob@example.com> trailing",
        "Bob, Jr <bob@example.com>",
        "group: bob@example.com;",
        "<@route:bob@example.com>",
        "bob@[192.0.2.1",
        "\"unclosed@example.com",
        "(unclosed bob@example.com",
    ] {
        let run = redirect(address);
        assert!(
            run.sent.is_empty(),
            "{address:?} redirected to {:?}",
            run.sent
        );
        assert!(
            matches!(&run.errors[..], [RuntimeError::InvalidAddress(a)] if a == address),
            "{address:?}: {:?}",
            run.errors
        );
        assert!(
            run.kept,
            "{address:?}: the implicit keep comes after the error"
        );
    }
    // A literal one too (Pigeonhole refuses it at compile time already).
    let run = run("redirect \"not an address\";");
    assert!(run.sent.is_empty() && run.errors.len() == 1 && run.kept);
}

#[test]
fn valid_addresses_are_redirected_to_their_addr_spec() {
    for (address, target) in [
        ("bob@example.com", "bob@example.com"),
        (" bob@example.com ", "bob@example.com"),
        ("Bob <bob@example.com>", "bob@example.com"),
        ("\"Bob B\" <bob@example.com>", "bob@example.com"),
        ("Bob. Jr <bob@example.com>", "bob@example.com"),
        ("<bob@example.com>", "bob@example.com"),
        ("Bob < bob@example.com >", "bob@example.com"),
        (" more  @  example.com  ", "more@example.com"),
        ("bob@example.com (a (nested) comment)", "bob@example.com"),
        ("bob(c)@example.com", "bob@example.com"),
        ("bob@[192.0.2.1]", "bob@[192.0.2.1]"),
        ("bob+tag@ex_ample.com", "bob+tag@ex_ample.com"),
        (
            "japanese...localpart@example.com",
            "japanese...localpart@example.com",
        ),
        ("\"Sirius\"@example.net", "Sirius@example.net"),
    ] {
        let run = redirect(address);
        assert_eq!(run.sent, [target], "{address:?}: {:?}", run.errors);
        assert!(run.errors.is_empty(), "{address:?}: {:?}", run.errors);
    }
    // sieve-rs's own loop guard is unchanged: no redirect to the user.
    let run = redirect("Me <me@example.org>");
    assert!(run.sent.is_empty() && run.errors.is_empty() && run.kept);
}
