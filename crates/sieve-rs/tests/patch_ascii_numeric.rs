//! Patch 3: the "i;ascii-numeric" comparator reads a string as RFC 4790,
//! section 9.1.1 says: only its leading digits count, of any length, and a
//! string that does not begin with a digit is positive infinity. Fails on
//! sieve-rs 0.7.3 as published, which read "-2.1" as a negative number,
//! an empty header or "abc" as 0, "12abc" as infinity and numbers past
//! 64 bits as infinity.

use sieve::{Compiler, Envelope, Event, Input, Runtime};

/// Whether `test` holds for a message whose X-Spam-Score is `score`: the
/// script files the message into "T" when it does.
fn holds(test: &str, score: &str) -> bool {
    let script = format!(
        "require [\"relational\", \"comparator-i;ascii-numeric\", \"fileinto\", \"variables\"];\r\n\
         if {test} {{ fileinto \"T\"; }}\r\n"
    );
    let message = format!(
        "From: Sender <sender@example.net>\r\nTo: Me <me@example.org>\r\n\
         X-Spam-Score: {score}\r\nSubject: Hi\r\n\r\nHello\r\n"
    );
    let compiled = Compiler::new()
        .compile(script.as_bytes())
        .unwrap_or_else(|e| panic!("{script}: {e:?}"));
    let runtime = Runtime::new();
    let mut ctx = runtime.filter(message.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
    let mut input = Input::script("test", compiled);
    let mut filed = false;
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        if let Ok(Event::FileInto { folder, .. }) = step {
            filed |= folder == "T";
        }
    }
    filed
}

/// The values tried, with the number each stands for (`None`: infinity).
const VALUES: &[(&str, Option<u128>)] = &[
    ("-2.1", None),
    ("", None),
    ("abc", None),
    ("5", Some(5)),
    ("05", Some(5)),
    ("12abc", Some(12)),
    ("12", Some(12)),
    ("0", Some(0)),
    ("99999999999999999999", Some(99999999999999999999)),
    ("99999999999999999998", Some(99999999999999999998)),
];

/// Every pair of values, with `header :is` and every `:value` operator.
/// Pigeonhole 2.3.19 gives the same answers for all of them, with one
/// exception: its `:is` (whatever the comparator) takes an empty value as
/// equal to the empty key only, so it finds "" not equal to "abc" or
/// "-2.1", which the comparator itself calls equal (its `:value "eq"`
/// does); RFC 5228, section 2.7.1 and RFC 4790 ("", "x" and "y" are equal)
/// are followed here.
#[test]
fn header_value_and_is_compare_as_rfc_4790_says() {
    for (value, a) in VALUES {
        for (key, b) in VALUES {
            // None (infinity) sorts after every number.
            let (a, b) = (a.unwrap_or(u128::MAX), b.unwrap_or(u128::MAX));
            let expectations = [
                (":is", a == b),
                (":value \"eq\"", a == b),
                (":value \"ne\"", a != b),
                (":value \"gt\"", a > b),
                (":value \"ge\"", a >= b),
                (":value \"lt\"", a < b),
                (":value \"le\"", a <= b),
            ];
            for (match_type, expected) in expectations {
                let test = format!(
                    "header {match_type} :comparator \"i;ascii-numeric\" \"X-Spam-Score\" \"{key}\""
                );
                assert_eq!(
                    holds(&test, value),
                    expected,
                    "X-Spam-Score: {value:?}; {test}"
                );
            }
        }
    }
}

#[test]
fn spam_score_threshold() {
    let test = "header :value \"ge\" :comparator \"i;ascii-numeric\" \"X-Spam-Score\" \"5\"";
    assert!(holds(test, "7"));
    assert!(!holds(test, "4"));
    // No leading digit: infinity, past any threshold (Pigeonhole agrees).
    assert!(holds(test, "-2.1"));
    assert!(holds(test, ""));
    assert!(holds(test, "abc"));
}

#[test]
fn string_test_reads_variables_the_same_way() {
    let c = "\"i;ascii-numeric\"";
    for (test, expected) in [
        (
            format!("string :value \"lt\" :comparator {c} \"-2.1\" \"5\""),
            false,
        ),
        (
            format!("string :value \"eq\" :comparator {c} \"12abc\" \"12\""),
            true,
        ),
        (format!("string :is :comparator {c} \"x\" \"abc\""), true),
        (
            format!(
                "string :value \"gt\" :comparator {c} \"99999999999999999999\" \"99999999999999999998\""
            ),
            true,
        ),
    ] {
        assert_eq!(holds(&test, "1"), expected, "{test}");
    }
}

/// `:count` compares the count with the key through the comparator, so the
/// key is read the same way (RFC 5231, section 4.2); checked with
/// Pigeonhole.
#[test]
fn count_keys_are_read_as_rfc_4790_says() {
    let c = "\"i;ascii-numeric\"";
    for (test, expected) in [
        // One X-Spam-Score header.
        (
            format!("header :count \"eq\" :comparator {c} \"X-Spam-Score\" \"1abc\""),
            true,
        ),
        (
            format!("header :count \"eq\" :comparator {c} \"X-Spam-Score\" \"01\""),
            true,
        ),
        (
            format!("header :count \"gt\" :comparator {c} \"X-Spam-Score\" \"0\""),
            true,
        ),
        (
            format!("header :count \"ge\" :comparator {c} \"X-Spam-Score\" \"-2.1\""),
            false,
        ),
        (
            format!("header :count \"lt\" :comparator {c} \"X-Spam-Score\" \"-2.1\""),
            true,
        ),
        (
            format!("header :count \"lt\" :comparator {c} \"X-Spam-Score\" \"\""),
            true,
        ),
        (
            format!("header :count \"lt\" :comparator {c} \"X-Spam-Score\" \"abc\""),
            true,
        ),
        (
            format!(
                "header :count \"lt\" :comparator {c} \"X-Spam-Score\" \"99999999999999999999\""
            ),
            true,
        ),
        (
            format!("address :count \"eq\" :comparator {c} [\"from\", \"to\"] \"2abc\""),
            true,
        ),
        (
            format!("string :count \"eq\" :comparator {c} [\"a\", \"b\"] \"2x\""),
            true,
        ),
        (
            format!("string :count \"lt\" :comparator {c} [\"a\", \"b\"] \"-3\""),
            true,
        ),
    ] {
        assert_eq!(holds(&test, "7"), expected, "{test}");
    }
}
