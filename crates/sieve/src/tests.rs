//! Tests of the Sieve host: each trap of sieve-rs that the crate's README
//! names ('sieve-rs 0.7.3: what the host handles'), the chain rules, limits,
//! includes, the compile cache and the user log.
//! Must not send or store anything: plans only.

use std::cell::RefCell;
use std::collections::HashSet;

use std::path::PathBuf;
use std::sync::Arc;

use super::*;

const MSG: &[u8] = b"From: Sender <sender@example.net>\r\nTo: alice@example.org\r\nSubject: Hello\r\nMessage-ID: <m1@example.net>\r\n\r\nBody text\r\n";

/// The store, faked: only "Existing" exists; a name with '/' could never
/// be a folder; system flags other than the five a Maildir keeps, and
/// \Recent, are dropped.
struct Store;

impl Mailboxes for Store {
    fn exists(&self, folder: &str) -> bool {
        folder == "Existing"
    }
    fn refuse_name(&self, folder: &str) -> Option<String> {
        folder
            .contains('/')
            .then(|| format!("invalid folder name {folder:?}: '/' is not allowed"))
    }
    fn keeps_flag(&self, flag: &str) -> bool {
        !flag.starts_with('\\')
            || ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(flag))
    }
}

struct T {
    dir: tempfile::TempDir,
    filter: Filter,
    home: PathBuf,
}

/// A user's home and a host configured as the defaults say, with a global
/// script directory, and then as `tweak` changes it.
fn setup_with(tweak: impl FnOnce(&mut SieveConfig)) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SieveConfig {
        global_dir: Some(dir.path().join("global")),
        ..SieveConfig::default()
    };
    tweak(&mut cfg);
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("sieve")).unwrap();
    std::fs::create_dir_all(dir.path().join("global")).unwrap();
    T {
        filter: Filter::new(&cfg, "mx.example.org"),
        dir,
        home,
    }
}

fn setup() -> T {
    setup_with(|_| {})
}

impl T {
    fn user(&self) -> Account<'_> {
        Account {
            name: "alice@example.org",
            local: "alice",
            domain: "example.org",
            detail: None,
            home: &self.home,
            owner: None,
            script: None,
            script_dir: None,
        }
    }

    fn script(&self, text: &str) {
        std::fs::write(self.home.join(".dovecot.sieve"), text).unwrap();
    }

    fn run_with(&self, msg: &[u8], seen: &HashSet<String>) -> Plan {
        let recorded = RefCell::new(Vec::new());
        let mut dup = |id: &str| {
            recorded.borrow_mut().push(id.to_owned());
            Ok(seen.contains(id))
        };
        let mut look = Lookups {
            duplicate: &mut dup,
            mailboxes: &Store,
        };
        let env = MessageEnvelope {
            from: Some("sender@example.net"),
            to: "alice@example.org",
            orcpt: None,
        };
        self.filter
            .run(&self.user(), None, &env, msg, &mut look)
            .unwrap()
    }

    fn run(&self) -> Plan {
        self.run_with(MSG, &HashSet::new())
    }
}

fn folders(p: &Plan) -> Vec<(String, bool)> {
    p.stores
        .iter()
        .map(|s| (s.folder.clone(), s.implicit))
        .collect()
}

#[test]
fn no_script_means_implicit_keep() {
    let t = setup();
    assert_eq!(folders(&t.run()), vec![("INBOX".into(), true)]);
}

#[test]
fn explicit_keep_survives_a_later_fileinto() {
    let t = setup();
    t.script("require \"fileinto\"; keep; fileinto \"Work\";");
    assert_eq!(
        folders(&t.run()),
        vec![("INBOX".into(), false), ("Work".into(), false)]
    );
}

#[test]
fn keep_and_fileinto_inbox_are_one_store() {
    let t = setup();
    t.script(
        "require \"fileinto\"; fileinto \"inbox\"; keep; fileinto \"Work\"; fileinto \"Work\";",
    );
    let p = t.run();
    assert_eq!(
        folders(&p),
        vec![("inbox".into(), false), ("Work".into(), false)]
    );
    assert_eq!(p.to_json()["actions"][0]["folder"], "INBOX");
}

#[test]
fn explicit_keep_survives_discard_but_implicit_keep_does_not() {
    let t = setup();
    t.script("keep; discard;");
    assert_eq!(folders(&t.run()), vec![("INBOX".into(), false)]);
    t.script("discard;");
    let p = t.run();
    assert!(p.stores.is_empty() && p.discarded);
}

#[test]
fn a_runtime_error_drops_the_scripts_actions_and_keeps() {
    let t = setup();
    t.script("require [\"fileinto\", \"ihave\"]; fileinto \"Work\"; error \"boom\";");
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let log = std::fs::read_to_string(t.home.join(".dovecot.sieve.log")).unwrap();
    assert!(log.contains("boom"), "{log}");
}

#[test]
fn a_compile_error_keeps_and_is_logged_beside_the_script_once() {
    let t = setup();
    t.script("require \"fileinto\";\nfileinto \"x\"\n");
    for _ in 0..3 {
        let p = t.run();
        assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
        assert_eq!(p.errors.len(), 1);
    }
    let log = std::fs::read_to_string(t.home.join(".dovecot.sieve.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "logged once per version: {log}");
}

#[test]
fn an_unknown_require_is_a_compile_error_not_a_silent_runtime_one() {
    let t = setup();
    t.script("require [\"fileinto\", \"x-unknown\"]; fileinto \"Work\";");
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(
        p.errors[0].text.contains("unknown extension"),
        "{:?}",
        p.errors
    );
}

#[test]
fn changed_scripts_are_recompiled_without_restart() {
    let t = setup();
    t.script("require \"fileinto\"; fileinto \"A\";");
    assert_eq!(folders(&t.run())[0].0, "A");
    t.script("require \"fileinto\"; fileinto \"Bee\";");
    assert_eq!(folders(&t.run())[0].0, "Bee");
}

#[test]
fn a_looping_message_is_not_redirected_again_but_kept_loudly() {
    let t = setup();
    t.script("redirect \"bob@example.net\";");
    let marked = [
        b"X-Sieve-Redirected-From: alice@example.org\r\n".as_slice(),
        MSG,
    ]
    .concat();
    let p = t.run_with(&marked, &HashSet::new());
    assert!(p.outgoing.is_empty());
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(
        p.notes[0].contains("X-Sieve-Redirected-From"),
        "{:?}",
        p.notes
    );
    assert!(
        p.errors.is_empty(),
        "a skipped redirect is not a script error"
    );
    let looped = [b"Delivered-To: alice@example.org\r\n".as_slice(), MSG].concat();
    let p = t.run_with(&looped, &HashSet::new());
    assert!(p.outgoing.is_empty());
    assert!(!p.stores.is_empty());
    let p = t.run();
    assert_eq!(p.outgoing.len(), 1);
    assert_eq!(p.outgoing[0].to, vec!["bob@example.net"]);
    assert!(p.stores.is_empty(), "redirect cancels the implicit keep");
}

#[test]
fn more_redirects_than_allowed_fail_the_script() {
    let t = setup();
    t.script("redirect \"a@example.net\"; redirect \"b@example.net\"; redirect \"c@example.net\"; redirect \"d@example.net\"; redirect \"e@example.net\";");
    let p = t.run();
    assert!(p.outgoing.is_empty());
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(p.errors[0].text.contains("redirects"), "{:?}", p.errors);
}

#[test]
fn more_actions_than_allowed_fail_the_script() {
    let t = setup();
    let mut s = String::from("require \"fileinto\";");
    for i in 0..40 {
        s.push_str(&format!("fileinto \"F{i}\";"));
    }
    t.script(&s);
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
}

#[test]
fn cpu_limit_stops_a_heavy_script() {
    let t = setup_with(|c| c.max_cpu = 50);
    let mut s = String::from("require \"fileinto\";");
    for i in 0..200 {
        s.push_str(&format!(
            "if header :contains \"subject\" \"nope{i}\" {{ fileinto \"X\"; }}"
        ));
    }
    t.script(&s);
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(p.errors[0].text.contains("CPU"), "{:?}", p.errors);
}

#[test]
fn vacation_replies_once_per_period_and_clamps_the_period() {
    let t = setup();
    t.script("require \"vacation\"; vacation :days 0 :subject \"Away\" \"I am away.\";");
    let p = t.run();
    assert_eq!(p.outgoing.len(), 1);
    let v = &p.outgoing[0];
    assert_eq!(v.kind, OutKind::Vacation);
    assert_eq!(v.to, vec!["sender@example.net"]);
    let (id, secs) = v.remember.clone().unwrap();
    assert_eq!(secs, 86_400, ":days 0 is raised to the minimum period");
    assert_eq!(
        folders(&p),
        vec![("INBOX".into(), true)],
        "vacation keeps the message"
    );
    let seen: HashSet<String> = [id].into();
    assert!(t.run_with(MSG, &seen).outgoing.is_empty());
}

#[test]
fn duplicate_ids_are_remembered_only_through_the_plan() {
    let t = setup();
    t.script("require [\"duplicate\", \"fileinto\"]; if duplicate { fileinto \"Dups\"; }");
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert_eq!(p.remember.len(), 1);
    let seen: HashSet<String> = [p.remember[0].0.clone()].into();
    assert_eq!(
        folders(&t.run_with(MSG, &seen)),
        vec![("Dups".into(), false)]
    );
}

#[test]
fn includes_personal_and_global_and_missing_ones() {
    let t = setup();
    std::fs::write(
        t.home.join("sieve/lists.sieve"),
        "require \"fileinto\"; fileinto \"Lists\";",
    )
    .unwrap();
    std::fs::write(
        t.dir.path().join("global/spam.sieve"),
        "require \"fileinto\"; fileinto \"Junk\";",
    )
    .unwrap();
    t.script("require \"include\"; include :personal \"lists\"; include :global \"spam\"; include :optional \"none\";");
    assert_eq!(
        folders(&t.run()),
        vec![("Lists".into(), false), ("Junk".into(), false)]
    );
    t.script("require \"include\"; include \"missing\";");
    assert_eq!(folders(&t.run()), vec![("INBOX".into(), true)]);
    t.script("require \"include\"; include \"../etc/passwd\";");
    assert!(t.run().errors[0].text.contains("invalid"));
}

#[test]
fn before_script_files_spam_and_the_chain_stops() {
    let t = setup();
    let before = t.dir.path().join("before.sieve");
    std::fs::write(
        &before,
        "require \"fileinto\"; if header :contains \"subject\" \"Hello\" { fileinto \"Junk\"; }",
    )
    .unwrap();
    let cfg = SieveConfig {
        before: vec![before.clone()],
        ..SieveConfig::default()
    };
    let filter = Filter::new(&cfg, "mx.example.org");
    t.script("require \"fileinto\"; fileinto \"User\";");
    let mut dup = |_: &str| Ok(false);
    let mut look = Lookups {
        duplicate: &mut dup,
        mailboxes: &Store,
    };
    let env = MessageEnvelope {
        from: None,
        to: "alice@example.org",
        orcpt: None,
    };
    let p = filter.run(&t.user(), None, &env, MSG, &mut look).unwrap();
    assert_eq!(
        folders(&p),
        vec![("Junk".into(), false)],
        "user script not run after the keep was cancelled"
    );
    let other = String::from_utf8_lossy(MSG).replace("Hello", "Other");
    let p = filter
        .run(&t.user(), None, &env, other.as_bytes(), &mut look)
        .unwrap();
    assert_eq!(folders(&p), vec![("User".into(), false)]);
}

#[test]
fn editheader_is_admin_only_by_default_and_edits_the_stored_copy() {
    let t = setup();
    t.script("require \"editheader\"; addheader \"X-Tag\" \"yes\";");
    let p = t.run();
    assert!(p.errors[0].text.contains("editheader"), "{:?}", p.errors);
    let t = setup_with(|c| c.user_editheader = true);
    t.script("require \"editheader\"; addheader \"X-Tag\" \"yes\"; deleteheader \"Received\";");
    let p = t.run();
    let stored = p.stores[0].message.as_ref().expect("edited copy");
    assert!(String::from_utf8_lossy(stored).contains("X-Tag: yes"));
}

#[test]
fn spamtest_reads_the_configured_header() {
    let t = setup_with(|c| {
        c.spam = Some(ScoreHeader {
            header: "X-Spam-Score".into(),
            kind: ScoreType::Score,
            max: 10.0,
        })
    });
    t.script("require [\"spamtest\", \"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"]; if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"6\" { fileinto \"Junk\"; }");
    let spam = [b"X-Spam-Score: 8.2\r\n".as_slice(), MSG].concat();
    assert_eq!(folders(&t.run_with(&spam, &HashSet::new()))[0].0, "Junk");
    let ham = [b"X-Spam-Score: 0.1\r\n".as_slice(), MSG].concat();
    assert_eq!(folders(&t.run_with(&ham, &HashSet::new()))[0].0, "INBOX");
}

#[test]
fn mailboxexists_asks_the_store() {
    let t = setup();
    t.script("require [\"mailbox\", \"fileinto\"]; if mailboxexists \"Existing\" { fileinto \"Existing\"; } if mailboxexists \"Nope\" { fileinto \"Nope\"; }");
    assert_eq!(folders(&t.run()), vec![("Existing".into(), false)]);
}

#[test]
fn expand_substitutes_user_parts() {
    let t = setup();
    assert_eq!(
        expand("%h/x/%u/%d/%n/%%/~", &t.user()),
        format!(
            "{}/x/alice@example.org/example.org/alice/%/~",
            t.home.display()
        )
    );
    assert_eq!(expand("~/s", &t.user()), format!("{}/s", t.home.display()));
}

#[test]
fn vacation_is_not_sent_to_auto_submitted_or_junk_precedence_mail() {
    let t = setup();
    t.script("require \"vacation\"; vacation \"away\";");
    for extra in [
        "Auto-Submitted: auto-replied\r\n",
        "Precedence: junk\r\n",
        "List-Id: <l.example.net>\r\n",
    ] {
        let m = [extra.as_bytes(), MSG].concat();
        let p = t.run_with(&m, &HashSet::new());
        assert!(p.outgoing.is_empty(), "{extra}");
        assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
        assert!(p.remember.is_empty());
    }
    assert_eq!(t.run().outgoing.len(), 1, "a plain message gets its reply");
}

#[test]
fn vacation_honours_addresses_aliases() {
    let t = setup();
    t.script("require \"vacation\"; vacation :addresses [\"boss@example.org\"] \"away\";");
    let m = String::from_utf8_lossy(MSG).replace("To: alice@example.org", "To: boss@example.org");
    assert_eq!(t.run_with(m.as_bytes(), &HashSet::new()).outgoing.len(), 1);
}

#[test]
fn reject_with_fileinto_is_a_runtime_error_and_a_second_vacation_too() {
    let t = setup();
    t.script("require [\"fileinto\", \"reject\"]; fileinto \"Before\"; reject \"no\";");
    let p = t.run();
    assert!(p.reject.is_none());
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    t.script("require \"vacation\"; vacation \"a\"; vacation :handle \"b\" \"b\";");
    let p = t.run();
    assert!(p.outgoing.is_empty());
    assert!(p.errors[0].text.contains("vacation"), "{:?}", p.errors);
}

#[test]
fn invalid_folder_names_and_flags_follow_pigeonhole() {
    let t = setup();
    t.script("require \"fileinto\"; fileinto \"Work/Reports\";");
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(p.errors[0].text.contains("fileinto"), "{:?}", p.errors);
    t.script("require \"imap4flags\"; addflag \"\\\\Recent \\\\Bogus $ok\"; keep;");
    assert_eq!(t.run().stores[0].flags, vec!["$ok"]);
}

#[test]
fn domain_environment_is_the_recipients_domain() {
    let t = setup();
    t.script("require [\"environment\", \"variables\", \"fileinto\"]; if environment :matches \"domain\" \"*\" { fileinto \"${1}\"; }");
    assert_eq!(folders(&t.run())[0].0, "example.org");
}

#[test]
fn recursive_includes_stop_at_the_depth_limit_and_keep() {
    let t = setup_with(|c| c.max_include_depth = 3);
    std::fs::write(
        t.home.join("sieve/again.sieve"),
        "require [\"include\", \"fileinto\"]; fileinto \"Deep\"; include :personal \"again\";",
    )
    .unwrap();
    t.script("require \"include\"; include :personal \"again\";");
    let p = t.run();
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
    assert!(
        p.errors[0].text.contains("TooManyIncludes"),
        "{:?}",
        p.errors
    );
}

/// A host with `before` as its only before-script, and this user's script.
fn chain(t: &T, before: &str, user: &str) -> Filter {
    let path = t.dir.path().join("before.sieve");
    std::fs::write(&path, before).unwrap();
    t.script(user);
    let cfg = SieveConfig {
        before: vec![path],
        ..SieveConfig::default()
    };
    Filter::new(&cfg, "mx.example.org")
}

fn run_chain(t: &T, filter: &Filter, msg: &[u8]) -> Plan {
    let mut dup = |_: &str| Ok(false);
    let mut look = Lookups {
        duplicate: &mut dup,
        mailboxes: &Store,
    };
    let env = MessageEnvelope {
        from: Some("sender@example.net"),
        to: "alice@example.org",
        orcpt: None,
    };
    filter.run(&t.user(), None, &env, msg, &mut look).unwrap()
}

fn has_tag(m: &Option<Arc<Vec<u8>>>) -> bool {
    m.as_deref()
        .is_some_and(|m| String::from_utf8_lossy(m).starts_with("X-Tag: yes\r\n"))
}

#[test]
fn a_before_scripts_header_edits_reach_a_later_scripts_fileinto_and_redirect() {
    // Pigeonhole: the user's fileinto and redirect carry the admin's
    // addheader (checked with dovecot-lda).
    let t = setup();
    let filter = chain(
        &t,
        "require \"editheader\"; addheader \"X-Tag\" \"yes\";",
        "require [\"fileinto\", \"copy\"]; fileinto \"Work\"; redirect :copy \"bob@example.net\";",
    );
    let p = run_chain(&t, &filter, MSG);
    assert_eq!(folders(&p), vec![("Work".into(), false)]);
    assert!(has_tag(&p.stores[0].message), "stored copy: {:?}", p.stores);
    assert!(has_tag(&p.outgoing[0].message), "redirected copy");
    // An implicit keep after the edit stores the edited message too.
    let filter = chain(
        &t,
        "require \"editheader\"; addheader \"X-Tag\" \"yes\";",
        "keep;",
    );
    let p = run_chain(&t, &filter, MSG);
    assert!(has_tag(&p.stores[0].message), "{:?}", p.stores);
}

#[test]
fn redirect_skipped_as_a_loop_still_conflicts_with_reject() {
    // Pigeonhole: "reject/ereject action conflicts with other action: the
    // redirect action", a runtime error, and the message is kept.
    let t = setup();
    t.script("require \"reject\"; redirect \"bob@example.net\"; reject \"no\";");
    let looped = [
        b"X-Sieve-Redirected-From: alice@example.org\r\n".as_slice(),
        MSG,
    ]
    .concat();
    let p = t.run_with(&looped, &HashSet::new());
    assert!(p.reject.is_none(), "{p:?}");
    assert!(
        p.errors[0].text.contains("reject conflicts"),
        "{:?}",
        p.errors
    );
    assert_eq!(folders(&p), vec![("INBOX".into(), true)]);
}

#[test]
fn before_script_flags_survive_a_compile_error_and_not_a_runtime_error() {
    // As Pigeonhole (dovecot-lda, sieve_before with `addflag "\\Flagged";
    // keep;`): a user's script that does not compile leaves the message
    // flagged; one that fails while running ends in the failsafe keep,
    // without the before-script's flags, whose own fileinto stays.
    let t = setup();
    let before = "require [\"imap4flags\", \"fileinto\", \"copy\"]; fileinto :copy :flags \"\\\\Seen\" \"Work\"; addflag \"\\\\Flagged\"; keep;";
    let filter = chain(&t, before, "frobnicate;");
    let p = run_chain(&t, &filter, MSG);
    let flags: Vec<_> = p
        .stores
        .iter()
        .map(|s| (s.folder.as_str(), s.flags.clone()))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("Work", vec!["\\Seen".to_owned()]),
            ("INBOX", vec!["\\Flagged".to_owned()])
        ]
    );
    let filter = chain(&t, before, "require \"ihave\"; error \"boom\";");
    let p = run_chain(&t, &filter, MSG);
    let flags: Vec<_> = p
        .stores
        .iter()
        .map(|s| (s.folder.as_str(), s.flags.clone()))
        .collect();
    assert_eq!(
        flags,
        vec![("Work", vec!["\\Seen".to_owned()]), ("INBOX", vec![])]
    );
}

#[test]
fn fileinto_inbox_in_a_before_script_is_a_store_not_a_deferred_keep() {
    // Pigeonhole: `fileinto "INBOX"` (with or without :copy) is stored
    // whatever a later script does; only an explicit `keep` is deferred
    // and cancelled by a later discard or fileinto.
    let t = setup();
    let filter = chain(
        &t,
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"INBOX\";",
        "discard;",
    );
    assert_eq!(
        folders(&run_chain(&t, &filter, MSG)),
        vec![("INBOX".into(), false)]
    );
    let filter = chain(&t, "require \"fileinto\"; fileinto \"INBOX\";", "discard;");
    assert_eq!(
        folders(&run_chain(&t, &filter, MSG)),
        vec![("INBOX".into(), false)],
        "fileinto cancels the keep: the chain stops before the discard"
    );
    let filter = chain(&t, "keep;", "discard;");
    assert!(run_chain(&t, &filter, MSG).stores.is_empty());
    let filter = chain(&t, "keep;", "require \"fileinto\"; fileinto \"Work\";");
    assert_eq!(
        folders(&run_chain(&t, &filter, MSG)),
        vec![("Work".into(), false)]
    );
}

#[test]
fn a_script_cannot_pass_for_an_explicit_keep() {
    // The keep's marker is a mailbox id, which no script may set.
    let t = setup();
    t.script("require [\"fileinto\", \"mailboxid\"]; fileinto :mailboxid \"x\" \"INBOX\";");
    assert!(!t.run().errors.is_empty());
}

#[test]
fn vacation_is_not_sent_past_ten_received_fields() {
    let t = setup();
    t.script("require \"vacation\"; vacation \"away\";");
    let hop = b"Received: from a.example by b.example; Mon, 1 Jan 2024 10:00:00 +0000\r\n";
    let msg = |n: usize| [hop.repeat(n).as_slice(), MSG].concat();
    let p = t.run_with(&msg(10), &HashSet::new());
    assert_eq!(p.outgoing.len(), 1, "{:?}", p.trace);
    let p = t.run_with(&msg(11), &HashSet::new());
    assert!(p.outgoing.is_empty());
    assert!(
        p.trace.iter().any(|l| l.contains("Received")),
        "{:?}",
        p.trace
    );
}

const TRACE: &[u8] = b"Return-Path: <sender@example.net>\r\nDelivered-To: alice+shop@example.org\r\nReceived: from mta.example ([127.0.0.1])\r\n\tby mx.example.org (mailstow) with LMTP\r\n\tid X1\r\n\tfor <alice+shop@example.org>; Sun, 7 Jan 2024 10:00:00 +0000\r\n";

fn run_traced(t: &T, msg: &[u8]) -> Plan {
    let mut dup = |_: &str| Ok(false);
    let mut look = Lookups {
        duplicate: &mut dup,
        mailboxes: &Store,
    };
    let env = MessageEnvelope {
        from: Some("sender@example.net"),
        to: "alice+shop@example.org",
        orcpt: None,
    };
    t.filter
        .run_with_trace(&t.user(), None, &env, TRACE, msg, &mut look)
        .unwrap()
}

#[test]
fn scripts_see_the_trace_fields_the_host_will_store_before_the_message() {
    let t = setup();
    t.script(
        "require [\"fileinto\", \"variables\", \"date\", \"relational\", \"comparator-i;ascii-numeric\"];
         if header :matches \"Delivered-To\" \"*\" { fileinto \"DT-${1}\"; }
         if header :contains \"Received\" \"for <alice+shop@example.org>\" { fileinto \"Mine\"; }
         if date :is \"received\" \"weekday\" \"0\" { fileinto \"Sunday\"; }
         if header :count \"eq\" :comparator \"i;ascii-numeric\" \"Return-Path\" \"1\" { fileinto \"RP\"; }",
    );
    let names: Vec<String> = run_traced(&t, MSG)
        .stores
        .into_iter()
        .map(|s| s.folder)
        .collect();
    assert_eq!(
        names,
        ["DT-alice+shop@example.org", "Mine", "Sunday", "RP"],
        "in the order of the script"
    );
    // Without the trace, none of it is there.
    assert_eq!(folders(&t.run()), vec![("INBOX".into(), true)]);
}

#[test]
fn the_hosts_own_trace_fields_do_not_make_a_redirect_a_loop_or_a_hop() {
    let t = setup();
    // Our Delivered-To names the recipient: it must not stop the redirect.
    t.script("redirect \"bob@example.net\";");
    let p = run_traced(&t, MSG);
    assert_eq!(p.outgoing.len(), 1, "{:?}", p.notes);
    assert!(p.notes.is_empty());
    // Our Received is not a hop the vacation bound counts: 10 arrived.
    t.script("require \"vacation\"; vacation :addresses \"alice@example.org\" \"away\";");
    let hop = b"Received: from a.example by b.example; Mon, 1 Jan 2024 10:00:00 +0000\r\n";
    let ten = [hop.repeat(10).as_slice(), MSG].concat();
    assert_eq!(run_traced(&t, &ten).outgoing.len(), 1);
}

#[test]
fn an_edited_message_already_holds_the_trace_fields() {
    let t = setup_with(|c| c.user_editheader = true);
    t.script("require \"editheader\"; addheader \"X-Tag\" \"yes\";");
    let p = run_traced(&t, MSG);
    let stored = p.stores[0].message.as_deref().expect("edited copy");
    let expected = [b"X-Tag: yes\r\n".as_slice(), TRACE, MSG].concat();
    assert_eq!(
        String::from_utf8_lossy(stored),
        String::from_utf8_lossy(&expected)
    );
}

fn from_of(o: &Outgoing) -> String {
    header_values(o.message.as_deref().expect("a message"), "from")
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[test]
fn a_vacation_reply_comes_from_the_address_the_correspondent_wrote_to() {
    // Pigeonhole (LMTP, checked): From: <shop@alias.example> when the
    // message was sent to that :addresses entry, the recipient otherwise;
    // a :from stays as given.
    let t = setup();
    t.script("require \"vacation\"; vacation :addresses [\"boss@example.org\", \"Shop <shop@alias.example>\"] \"away\";");
    let to_alias = String::from_utf8_lossy(MSG)
        .replace("To: alice@example.org", "To: Shop <Shop@Alias.example>");
    let p = t.run_with(to_alias.as_bytes(), &HashSet::new());
    assert_eq!(from_of(&p.outgoing[0]), "shop@alias.example");
    let p = t.run();
    assert_eq!(from_of(&p.outgoing[0]), "alice@example.org");
    // Through an included script too.
    std::fs::write(
        t.home.join("sieve/away.sieve"),
        "require \"vacation\"; vacation :addresses \"shop@alias.example\" \"away\";",
    )
    .unwrap();
    t.script("require \"include\"; include :personal \"away\";");
    let p = t.run_with(to_alias.as_bytes(), &HashSet::new());
    assert_eq!(from_of(&p.outgoing[0]), "shop@alias.example");
    t.script("require \"vacation\"; vacation :from \"Alice <alice@example.org>\" :addresses \"shop@alias.example\" \"away\";");
    let p = t.run_with(to_alias.as_bytes(), &HashSet::new());
    assert_eq!(from_of(&p.outgoing[0]), "Alice <alice@example.org>");
}

#[test]
fn a_notification_has_a_from_and_names_its_owner() {
    // sieve-rs leaves From empty without :from (RFC 5322 3.6 wants one).
    let t = setup();
    t.script("require \"enotify\"; notify :message \"new mail\" \"mailto:carol@example.net\";");
    let p = t.run();
    let n = &p.outgoing[0];
    assert_eq!(n.kind, OutKind::Notify);
    assert_eq!(from_of(n), "alice@example.org");
    let auto = header_values(n.message.as_deref().unwrap(), "auto-submitted");
    assert_eq!(auto, ["auto-notified; owner-email=\"alice@example.org\""]);
    t.script("require \"enotify\"; notify :from \"Alice <alice@example.org>\" \"mailto:carol@example.net\";");
    assert_eq!(from_of(&t.run().outgoing[0]), "Alice <alice@example.org>");
}

#[test]
fn spamtest_counts_no_value_on_mail_the_header_does_not_score() {
    let t = setup_with(|c| {
        c.spam = Some(ScoreHeader {
            header: "X-Spam-Score".into(),
            kind: ScoreType::Score,
            max: 10.0,
        })
    });
    t.script("require [\"spamtestplus\", \"relational\", \"comparator-i;ascii-numeric\", \"fileinto\"]; if spamtest :percent :count \"eq\" :comparator \"i;ascii-numeric\" \"0\" { fileinto \"Untested\"; }");
    let none = MSG.to_vec();
    assert_eq!(
        folders(&t.run_with(&none, &HashSet::new()))[0].0,
        "Untested"
    );
    let empty = [b"X-Spam-Score:\r\n".as_slice(), MSG].concat();
    assert_eq!(
        folders(&t.run_with(&empty, &HashSet::new()))[0].0,
        "Untested"
    );
    let ham = [b"X-Spam-Score: 0.0\r\n".as_slice(), MSG].concat();
    assert_eq!(folders(&t.run_with(&ham, &HashSet::new()))[0].0, "INBOX");
}
