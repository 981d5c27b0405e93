//! Tests for the vacation checks, one rule at a time.

use super::*;
use proptest::prelude::*;

const USER: &str = "user@example.org";

fn users() -> Vec<String> {
    vec![USER.to_owned()]
}

fn message(extra: &str) -> Vec<u8> {
    format!(
        "From: Someone <someone@example.com>\r\nTo: Jane <{USER}>\r\n{extra}Subject: hello\r\nMessage-ID: <abc@example.com>\r\n\r\nHi\r\n"
    )
    .into_bytes()
}

fn reason(extra: &str) -> Option<&'static str> {
    suppress_reason(&message(extra), Some("someone@example.com"), &users())
}

// ---- suppress_reason, one rule at a time ----

#[test]
fn an_ordinary_personal_message_may_be_answered() {
    assert_eq!(reason(""), None);
}

#[test]
fn the_null_sender_is_never_answered() {
    for from in [None, Some(""), Some("<>"), Some("  ")] {
        assert_eq!(
            suppress_reason(&message(""), from, &users()),
            Some("null envelope sender"),
            "{from:?}"
        );
    }
}

#[test]
fn daemon_and_list_senders_are_not_answered() {
    for from in [
        "MAILER-DAEMON@example.com",
        "mailer-daemon-2@example.com",
        "Postmaster@example.com",
        "LISTSERV@lists.example.com",
        "majordomo@example.com",
        "owner-devel@example.com",
        "devel-request@example.com",
        "devel-owner@example.com",
        "devel-bounces+user=example.org@example.com",
    ] {
        assert_eq!(
            suppress_reason(&message(""), Some(from), &users()),
            Some("sender is a mailing list or system address"),
            "{from}"
        );
    }
    for from in [
        "daemon-fan@example.com",
        "requester@example.com",
        "postmasters@example.com",
        "owner@example.com",
    ] {
        assert_eq!(
            suppress_reason(&message(""), Some(from), &users()),
            None,
            "{from}"
        );
    }
}

#[test]
fn the_user_is_not_answered_by_its_own_vacation() {
    assert_eq!(
        suppress_reason(&message(""), Some("User+tag@EXAMPLE.org"), &users()),
        Some("sender is the user")
    );
}

#[test]
fn auto_submitted_other_than_no_is_not_answered() {
    for v in [
        "auto-replied",
        "auto-generated",
        "Auto-Notified; owner-email=\"x@y\"",
        "",
    ] {
        assert_eq!(
            reason(&format!("Auto-Submitted: {v}\r\n")),
            Some("Auto-Submitted is not \"no\""),
            "{v}"
        );
    }
    for v in ["no", "No (written by a person)"] {
        assert_eq!(reason(&format!("Auto-Submitted: {v}\r\n")), None, "{v}");
    }
}

#[test]
fn precedence_bulk_junk_and_list_are_not_answered() {
    for v in ["bulk", "junk", "List", "junk (spam)"] {
        assert_eq!(
            reason(&format!("Precedence: {v}\r\n")),
            Some("Precedence is bulk, junk or list"),
            "{v}"
        );
    }
    assert_eq!(reason("Precedence: first-class\r\n"), None);
}

#[test]
fn every_list_header_prevents_a_reply() {
    for h in [
        "List-Id: <devel.example.com>",
        "List-Help: <mailto:devel-request@example.com?subject=help>",
        "List-Unsubscribe: <mailto:devel-leave@example.com>",
        "List-Subscribe: <mailto:devel-join@example.com>",
        "List-Post: <mailto:devel@example.com>",
        "List-Owner: <mailto:devel-owner@example.com>",
        "List-Archive: <https://example.com/devel>",
        "list-id: lower case <devel.example.com>",
    ] {
        assert_eq!(
            reason(&format!("{h}\r\n")),
            Some("mailing list header"),
            "{h}"
        );
    }
    assert_eq!(reason("X-List-Like: not a list\r\n"), None);
}

#[test]
fn x_auto_response_suppress_all_or_oof_prevents_a_reply() {
    for v in ["All", "DR, OOF", "oof", "RN,ALL"] {
        assert_eq!(
            reason(&format!("X-Auto-Response-Suppress: {v}\r\n")),
            Some("X-Auto-Response-Suppress asks for no auto-replies"),
            "{v}"
        );
    }
    assert_eq!(reason("X-Auto-Response-Suppress: DR, RN, NRN\r\n"), None);
}

#[test]
fn headers_decoding_to_line_breaks_are_not_answered() {
    let injected = b"From: Someone <someone@example.com>\r\nTo: <user@example.org>\r\nSubject: =?utf-8?q?Hallo=0D=0ABcc:_victim@example.net?=\r\n\r\nHi\r\n";
    assert_eq!(
        suppress_reason(injected, Some("someone@example.com"), &users()),
        Some("a header decodes to line breaks or control characters")
    );
    // Folded and encoded headers without control characters are fine.
    assert_eq!(
        reason("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n and more\r\nX-Long: a\r\n\tb\r\n"),
        None
    );
}

#[test]
fn the_user_must_be_named_in_to_cc_bcc_or_resent() {
    let with = |rcpt_headers: &str| {
        let raw = format!(
            "From: Someone <someone@example.com>\r\n{rcpt_headers}Subject: x\r\n\r\nHi\r\n"
        );
        suppress_reason(raw.as_bytes(), Some("someone@example.com"), &users())
    };
    let not_named = Some("user not named in To, Cc or Bcc");
    assert_eq!(with("To: other@example.org\r\n"), not_named);
    assert_eq!(with(""), not_named);
    assert_eq!(with("Reply-To: user@example.org\r\n"), not_named);
    assert_eq!(with("To: User+Lists@EXAMPLE.ORG\r\n"), None);
    assert_eq!(
        with("To: a@b.example\r\nCc: x@y.example, <user@example.org>\r\n"),
        None
    );
    assert_eq!(with("Bcc: user@example.org\r\n"), None);
    assert_eq!(with("Resent-To: user@example.org\r\n"), None);
    assert_eq!(with("Resent-Cc: Jane <user@example.org>\r\n"), None);
    assert_eq!(
        with("To: friends: a@b.example, user@example.org;\r\n"),
        None
    );
    // Another alias of the user counts.
    let raw = b"From: s@example.com\r\nTo: jane.doe@example.org\r\n\r\nHi\r\n";
    let aliases = vec![USER.to_owned(), "Jane.Doe@example.org".to_owned()];
    assert_eq!(suppress_reason(raw, Some("s@example.com"), &aliases), None);
}

#[test]
fn more_than_ten_received_fields_are_not_answered() {
    let hops = |n: usize| {
        "Received: from a.example by b.example; Mon, 1 Jan 2024 10:00:00 +0000\r\n".repeat(n)
    };
    assert_eq!(reason(&hops(10)), None);
    assert_eq!(
        reason(&hops(11)),
        Some("more than 10 Received header fields (a mail loop?)")
    );
}

#[test]
fn a_message_without_headers_is_not_answered() {
    assert!(suppress_reason(b"", Some("someone@example.com"), &users()).is_some());
    assert!(suppress_reason(b"\r\n\r\nbody", Some("someone@example.com"), &users()).is_some());
}

// ---- sieve-rs: what it answers, and its reply ----

proptest! {
    #[test]
    fn suppress_reason_takes_any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..600), from in "\\PC{0,30}") {
        let _ = suppress_reason(&raw, Some(&from), &users());
    }
}
