//! Patch 9 (PATCHES.md): the match variables hold what the most recent
//! successful `:matches` (or `:regex`) test of the script captured,
//! wherever that test is (RFC 5229 3.2), for `date` and `currentdate` as
//! for every other test. Every result here is Pigeonhole's (`sieve-test`).
//! Each test fails on sieve-rs 0.7.3 as published, which scoped them to the
//! block that held the test.

use sieve::{Compiler, Event, Input, Runtime};

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
fn date_and_currentdate_matches_set_the_match_variables_after_their_block() {
    let script = r#"require ["date", "variables", "fileinto"];
        if true {
            if date :matches "date" "year" "*" { }
        }
        fileinto "Archive.${1}";"#;
    assert_eq!(folders(script), ["Archive.2024"]);

    let script = r#"require ["date", "variables", "fileinto"];
        if true {
            if currentdate :matches "year" "*" { }
        }
        if currentdate :is "year" "${1}" { fileinto "this year"; }"#;
    assert_eq!(folders(script), ["this year"]);
}

#[test]
fn the_most_recent_successful_match_wins_wherever_it_was() {
    // The nested test matched last: its value, not the earlier one's.
    let script = r#"require ["variables", "fileinto"];
        if header :matches "from" "*" { }
        if true {
            if header :matches "subject" "Quarterly *" { }
        }
        fileinto "A.${1}";"#;
    assert_eq!(folders(script), ["A.report"]);

    // The nested test failed: the values of the earlier match stay.
    let script = r#"require ["variables", "fileinto"];
        if header :matches "from" "Sam *" { }
        if true {
            if header :matches "subject" "nomatch *" { }
            fileinto "B.${1}";
        }"#;
    assert_eq!(folders(script), ["B.Sender <sender@example.net>"]);
}

#[test]
fn a_successful_match_replaces_the_whole_list() {
    // The second match has no wildcard: ${1} is out of range, so empty,
    // and ${0} is what it matched.
    let script = r#"require ["variables", "fileinto"];
        if header :matches "subject" "* *" { }
        if header :matches "subject" "Quarterly report" { }
        fileinto "A.${1}.${0}";"#;
    assert_eq!(folders(script), ["A..Quarterly report"]);

    // A :regex group that took no part in the match is empty too.
    let script = r#"require ["variables", "fileinto", "regex"];
        if header :matches "subject" "* *" { }
        if header :regex "subject" "(Q)uarterly (x)?report" { }
        fileinto "A.${1}.${2}";"#;
    assert_eq!(folders(script), ["A.Q."]);
}

#[test]
fn a_loop_sees_the_match_of_its_previous_round() {
    // The reference comes before the test in the loop's body.
    let script = r#"require ["variables", "fileinto", "foreverypart", "mime"];
        foreverypart {
            fileinto "P.${1}";
            if header :mime :type :matches "content-type" "*" { }
        }"#;
    assert_eq!(folders(script), ["P.", "P.multipart", "P.text"]);
}

#[test]
fn deleteheader_matches_does_not_lose_the_match_variables() {
    // deleteheader's :matches records itself like a test, but is none:
    // sieve-rs 0.7.3 tripped over it (a debug assertion; `${1}` lost).
    let script = r#"require ["editheader", "variables", "fileinto"];
        deleteheader :matches "X-Foo" "*";
        if header :matches "subject" "* *" { fileinto "A.${1}"; }"#;
    assert_eq!(folders(script), ["A.Quarterly"]);
}
