//! Tests of fix 11 in PATCHES.md: `:regex` is POSIX extended regular
//! expressions (draft-ietf-sieve-regex, as Pigeonhole implements it with
//! the C library's regcomp/regexec), not the Perl-like dialect of
//! fancy_regex. Each test of a difference between the two fails on
//! sieve-rs 0.7.3 as published. Drives the interpreter as a host would
//! and looks only at its events.

use std::{
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use sieve::{Compiler, Envelope, Event, Input, Runtime, Sieve, compiler::ErrorType};

fn compile(script: &str) -> Arc<Sieve> {
    Arc::new(
        Compiler::new()
            .compile(script.as_bytes())
            .unwrap_or_else(|e| panic!("{script}: {e:?}")),
    )
}

/// The folders a script files the message into, in order (`fileinto` is
/// how these tests look at match variables).
fn run_compiled(script: Arc<Sieve>, message: &str) -> Vec<String> {
    let runtime = Runtime::new()
        .with_max_header_size(10 << 20)
        .with_max_variable_size(10 << 20);
    let mut ctx = runtime.filter(message.as_bytes());
    ctx.set_envelope(Envelope::From, "sender@example.net");
    ctx.set_envelope(Envelope::To, "me@example.org");
    let mut input = Input::script("test", script);
    let mut folders = Vec::new();
    while let Some(step) = ctx.run(input) {
        input = Input::True;
        match step {
            Ok(Event::FileInto { folder, .. }) => folders.push(folder),
            Ok(_) => {}
            Err(err) => panic!("runtime error {err:?}"),
        }
    }
    folders
}

fn folders(script: &str, message: &str) -> Vec<String> {
    run_compiled(compile(script), message)
}

/// `${0}` and `${1}` after `string :regex <value> <pattern>` (with the
/// given comparator), or "no" when it does not match.
fn string_regex(comparator: &str, value: &str, pattern: &str) -> String {
    let script = format!(
        "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
         if string :regex :comparator \"{comparator}\" \"{}\" \"{}\" \
         {{ fileinto \"[${{0}}][${{1}}]\"; }} else {{ fileinto \"no\"; }}",
        quote(value),
        quote(pattern)
    );
    folders(&script, PLAIN).concat()
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn compile_error(script: &str) -> sieve::compiler::CompileError {
    match Compiler::new().compile(script.as_bytes()) {
        Ok(_) => panic!("{script}: compiled"),
        Err(err) => err,
    }
}

const PLAIN: &str = "From: Sender <sender@example.net>\r\n\
    To: Me <me@example.org>\r\n\
    Cc: Foo.Social@Example.test, other@example.org\r\n\
    Subject: Hello World\r\n\
    \r\n\
    Hello\r\n";

// ---------------------------------------------------------------------------
// The differences of the old dialect
// ---------------------------------------------------------------------------

/// Issue 22 item 5: in fancy_regex `.*+` is a possessive `.*` that gives
/// nothing back, so the pattern never matched; in POSIX ERE it is `(.*)+`.
#[test]
fn possessive_star_plus_is_a_repeated_star() {
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        if header :regex [\"to\",\"cc\"] \".*+(social|info|shop)@example\\\\.test\" {\r\n\
            fileinto \"lists/${1}\";\r\n\
        }";
    assert_eq!(folders(script, PLAIN), ["lists/Social"]);
}

/// `*?` is not a lazy star: it is `(a*)?`, as greedy as `*`.
#[test]
fn no_lazy_quantifiers() {
    assert_eq!(string_regex("i;octet", "aaa", "a*?"), "[aaa][]");
    assert_eq!(
        string_regex("i;octet", "<a> <b>", "<(.+?)>"),
        "[<a> <b>][a> <b]"
    );
}

/// `\d` is not a digit class (glibc reads it as the letter d);
/// `[[:digit:]]` is.
#[test]
fn backslash_d_is_not_a_digit_class() {
    assert_eq!(string_regex("i;octet", "123", "\\d+"), "no");
    assert_eq!(string_regex("i;octet", "d123", "\\d+"), "[d][]");
    assert_eq!(
        string_regex("i;octet", "a12345", "[[:digit:]]{2,3}"),
        "[123][]"
    );
}

/// POSIX alternation is leftmost-longest, not leftmost-first.
#[test]
fn alternation_is_leftmost_longest() {
    assert_eq!(string_regex("i;octet", "ab", "(a|ab)"), "[ab][ab]");
    assert_eq!(
        string_regex("i;octet", "xabcx", "(a|b|c)+"),
        "[abc][c]",
        "${{1}} is the last iteration"
    );
}

/// The comparator decides case: `i;ascii-casemap`, the default,
/// ignores ASCII case; `i;octet` does not. The old code ignored the
/// comparator and was always case-sensitive.
#[test]
fn comparator_decides_case() {
    let script = |cmp: &str| {
        format!(
            "require [\"regex\", \"fileinto\"];\r\n\
             if header :regex {cmp} \"subject\" \"^HELLO\" {{ fileinto \"yes\"; }}"
        )
    };
    assert_eq!(folders(&script(""), PLAIN), ["yes"], "default");
    assert_eq!(
        folders(&script(":comparator \"i;ascii-casemap\""), PLAIN),
        ["yes"]
    );
    assert!(folders(&script(":comparator \"i;octet\""), PLAIN).is_empty());
    // ASCII only, as i;ascii-casemap is.
    assert_eq!(string_regex("i;ascii-casemap", "été", "ÉTÉ"), "no");
}

/// `${0}` is the whole match, `${1}`.. the groups; a group that took no
/// part in the match, or that the pattern does not have, is empty (the
/// old code left it as an earlier match had set it).
#[test]
fn match_variables() {
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        if string :regex \"xyz\" \"(x)(y)(z)\" { fileinto \"[${0}][${1}][${2}][${3}]\"; }\r\n\
        if string :regex \"ac\" \"(a)(b)?(c)\" { fileinto \"[${0}][${1}][${2}][${3}]\"; }\r\n\
        if string :regex \"xyz\" \"(x)(y)(z)\" { fileinto \"[${1}][${2}][${3}]\"; }\r\n\
        if string :regex \"a\" \"(a)(b)?\" { fileinto \"[${0}][${1}][${2}][${3}]\"; }\r\n\
        if string :regex \"no\" \"(q)\" { fileinto \"never\"; }\r\n\
        fileinto \"kept [${0}][${1}]\";";
    assert_eq!(
        folders(script, PLAIN),
        [
            "[xyz][x][y][z]",
            "[ac][a][][c]",
            "[x][y][z]",
            "[a][a][][]",
            "kept [a][a]",
        ]
    );
}

/// What Pigeonhole 0.5.19 (Debian 12's dovecot-sieve, glibc 2.36)
/// gives for the same tests, from `sieve-test` (see PATCHES.md). `string`
/// is given its comparator: Pigeonhole's `string` defaults to i;octet.
#[test]
fn same_as_pigeonhole() {
    for (cmp, value, pattern, pigeonhole) in [
        (
            "i;ascii-casemap",
            "Foo.Social@Example.test",
            ".*+(social|info|shop)@example\\.test",
            "[Foo.Social@Example.test][Social]",
        ),
        ("i;octet", "aaa", "a*?", "[aaa][]"),
        ("i;octet", "<a> <b>", "<(.+?)>", "[<a> <b>][a> <b]"),
        ("i;octet", "123", "\\d+", "no"),
        ("i;octet", "d123", "\\d+", "[d][]"),
        ("i;octet", "ab", "(a|ab)", "[ab][ab]"),
        ("i;ascii-casemap", "hello", "^HELLO", "[hello][]"),
        ("i;octet", "hello", "^HELLO", "no"),
        ("i;octet", "xabcx", "(a|b|c)+", "[abc][c]"),
        ("i;octet", "a12345", "[[:digit:]]{2,3}", "[123][]"),
        (
            "i;octet",
            "mail: joe@host.example",
            "\\w+@\\w+",
            "[joe@host][]",
        ),
        ("i;octet", "abc", "x*", "[][]"),
        (
            "i;octet",
            "weeknights",
            "(wee|week)(knights|night)",
            "[weeknights][wee]",
        ),
        ("i;octet", "a@b@c", "^(.*)@(.*)$", "[a@b@c][a@b]"),
        // By bytes: "é" is two.
        ("i;octet", "café", "^caf.$", "no"),
        ("i;octet", "café", "^caf..$", "[café][]"),
        ("i;ascii-casemap", "été", "ÉTÉ", "no"),
        ("i;octet", "foo.bar", "foo\\.bar", "[foo.bar][]"),
        ("i;octet", "fooxbar", "foo\\.bar", "no"),
    ] {
        assert_eq!(
            string_regex(cmp, value, pattern),
            pigeonhole,
            "{cmp} {value:?} {pattern:?}"
        );
    }
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        if string :regex :comparator \"i;octet\" \"abcd\" \"(a|ab)(c|bcd)(d*)\" \
        { fileinto \"[${1}][${2}][${3}]\"; }\r\n\
        if string :regex :comparator \"i;octet\" \"ac\" \"(a)(b)?(c)\" \
        { fileinto \"[${1}][${2}][${3}][${4}]\"; }";
    assert_eq!(folders(script, PLAIN), ["[a][bcd][]", "[a][][c][]"]);
}

/// Perl syntax that POSIX ERE does not have is a compile error, on the
/// line of the test, as in Pigeonhole.
#[test]
fn perl_syntax_is_a_compile_error() {
    for pattern in ["(?i)abc", "(?<name>.*)", "a{"] {
        let err = compile_error(&format!(
            "require \"regex\";\r\nkeep;\r\nif header :regex \"subject\" \"{pattern}\" {{ stop; }}"
        ));
        assert!(
            matches!(err.error_type(), ErrorType::InvalidRegex(e) if e.starts_with(pattern)),
            "{pattern}: {err:?}"
        );
        assert_eq!(err.line_num(), 3, "{pattern}");
    }
}

/// Only i;octet and i;ascii-casemap go with :regex, as in Pigeonhole.
#[test]
fn regex_refuses_other_comparators() {
    let err = compile_error(
        "require [\"regex\", \"comparator-i;ascii-numeric\"];\r\n\
         if header :regex :comparator \"i;ascii-numeric\" \"subject\" \"1\" { stop; }",
    );
    assert!(
        matches!(err.error_type(), ErrorType::UnsupportedComparator(c) if c == "i;ascii-numeric"),
        "{err:?}"
    );
}

/// A key from a variable is compiled when it is used; one that does not
/// compile does not match (Pigeonhole logs it), the other keys are still
/// tried, and the script goes on (the old code panicked in a debug
/// build).
#[test]
fn invalid_regex_in_a_variable_does_not_match() {
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        set \"re\" \"a(b\";\r\n\
        if header :regex \"subject\" [\"${re}\", \"world$\"] { fileinto \"second key\"; }\r\n\
        if header :regex \"subject\" \"${re}\" { fileinto \"bad\"; } else { fileinto \"else\"; }\r\n\
        set \"re\" \"^(hello) (.*)$\";\r\n\
        if header :regex \"subject\" \"${re}\" { fileinto \"${2}\"; }\r\n\
        fileinto \"after\";";
    assert_eq!(
        folders(script, PLAIN),
        ["second key", "else", "World", "after"]
    );
}

/// `date` and `hasflag` matched `:regex` keys as `:matches` wildcards.
#[test]
fn date_and_hasflag_use_regex() {
    let script = "require [\"regex\", \"date\", \"variables\", \"imap4flags\", \"fileinto\"];\r\n\
        if currentdate :regex \"year\" \"^([[:digit:]]{2})[[:digit:]]{2}$\" { fileinto \"century ${1}\"; }\r\n\
        if date :regex \"date\" \"month\" \"^0?[1-9]|1[0-2]$\" { fileinto \"month\"; }\r\n\
        addflag \"\\\\Seen\";\r\n\
        if hasflag :regex \"^.se+n$\" { fileinto \"seen\"; }";
    let message = format!("Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n{PLAIN}");
    assert_eq!(folders(script, &message), ["century 20", "month", "seen"]);
}

// ---------------------------------------------------------------------------
// Values, limits, threads
// ---------------------------------------------------------------------------

/// A NUL in a value is matched as U+FFFD (as Dovecot reads header
/// values): it neither ends the value nor hides what follows.
#[test]
fn nul_in_a_value() {
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        if header :regex \"subject\" \"after\" { fileinto \"seen after\"; }\r\n\
        if header :regex \"subject\" \"^(.*)$\" { fileinto \"[${1}]\"; }";
    let message = "Subject: before\0after\r\n\r\nbody\r\n";
    assert_eq!(
        folders(script, message),
        ["seen after", "[before\u{FFFD}after]"]
    );
}

/// Patterns that would crash glibc or make regcomp take gigabytes are
/// refused: back-references (`(|)(\1\1)*` overflows glibc's stack), deep
/// nesting, and huge expanded repetitions.
#[test]
fn dangerous_patterns_are_refused() {
    for (pattern, why) in [
        ("(|)(\\1\\1)*", "back-reference"),
        ("(a)\\1", "back-reference"),
        (&format!("{}a{}", "(".repeat(40), ")".repeat(40)), "nested"),
        ("((a{1,100}){1,100}){1,100}", "complex"),
    ] {
        let err = compile_error(&format!(
            "require \"regex\";\r\nif header :regex \"subject\" \"{}\" {{ stop; }}",
            quote(pattern)
        ));
        assert!(
            matches!(err.error_type(), ErrorType::InvalidRegex(e) if e.contains(why)),
            "{pattern}: {err:?}"
        );
    }
    // From a variable: no match, no crash.
    let script = "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
        set \"re\" \"(|)(\\\\1\\\\1)*\";\r\n\
        if header :regex \"subject\" \"${re}\" { fileinto \"matched\"; }\r\n\
        fileinto \"done\";";
    assert_eq!(folders(script, PLAIN), ["done"]);
}

/// The C library's search is quadratic in a value's length for patterns
/// with `*`, `+` or `{m,}` (`[a-z0-9.]+@example\.test` over 1 MiB of
/// letters would take glibc about 20 minutes): such patterns search the
/// first 16 KiB of a value (less for bigger patterns), others the first
/// MiB. A value cut short is matched with `$` not matching at the cut.
#[test]
fn long_values_are_searched_in_part() {
    let long = "a".repeat(1 << 20);
    let message = format!("Subject: {long} x@example.test\r\n\r\nbody\r\n");
    let script = "require [\"regex\", \"fileinto\"];\r\n\
        if header :regex \"subject\" \"[a-z0-9.]+@example\\\\.test\" { fileinto \"unbounded\"; }\r\n\
        if header :regex \"subject\" \"x@example\\\\.test\" { fileinto \"bounded\"; }\r\n\
        if header :regex \"subject\" \"^a+$\" { fileinto \"cut end matched $\"; }\r\n\
        if header :regex \"subject\" \"^a{10}\" { fileinto \"start\"; }";
    let started = Instant::now();
    assert_eq!(folders(script, &message), ["start"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let near = format!(
        "Subject: {} x@example.test\r\n\r\nbody\r\n",
        "a".repeat(8000)
    );
    assert_eq!(folders(script, &near), ["unbounded", "bounded", "start"]);
    let mid = format!(
        "Subject: {} x@example.test\r\n\r\nbody\r\n",
        "a".repeat(100_000)
    );
    assert_eq!(folders(script, &mid), ["bounded", "start"]);
}

/// One compiled script (and so one compiled pattern) used by several
/// threads at once.
#[test]
fn compiled_patterns_are_shared_between_threads() {
    let script = compile(
        "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
         if header :regex \"subject\" \"^([a-z]+) ([[:digit:]]+)$\" { fileinto \"${1}-${2}\"; }",
    );
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let script = script.clone();
            thread::spawn(move || {
                let name = "x".repeat(t + 1);
                for i in 0..200 {
                    let message = format!("Subject: {name} {i}\r\n\r\nbody\r\n");
                    assert_eq!(
                        run_compiled(script.clone(), &message),
                        [format!("{name}-{i}")]
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

/// `:quoteregex` output matches itself literally.
#[test]
fn quoteregex_quotes_for_posix() {
    let text = "a.b*c(d)[e]{f}|g^h$i\\\\j+k?l=m:n";
    let script = format!(
        "require [\"regex\", \"variables\", \"fileinto\"];\r\n\
         set :quoteregex \"q\" \"{text}\";\r\n\
         if string :regex \"{text}\" \"^${{q}}$\" {{ fileinto \"literal\"; }}\r\n\
         if string :regex \"ab\" \"^${{q}}$\" {{ fileinto \"never\"; }}"
    );
    assert_eq!(folders(&script, PLAIN), ["literal"]);
}
