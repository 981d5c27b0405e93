//! The Sieve example library (`sieve-examples/`): every example message
//! runs through `mailstow sieve test --json` and through Pigeonhole, and both
//! must give the outcome written in its `<message>.expected.json`. With
//! `SIEVE_EXAMPLES_BLESS=1` the expected files are (re)written from
//! Pigeonhole, never from mailstow. Must not edit an example's script or
//! messages, or accept a difference that docs/sieve-compat.md does not list.
//!
//! Layout of one example directory:
//! - `script.sieve`, `README.md` (one line: what it demonstrates);
//! - `NAME.eml` with `NAME.expected.json`, optional `NAME.env` (envelope);
//! - optional `example.env` for all its messages (`before:` names a file in
//!   the example directory, `editheader: user`, `mailboxes:`), `global/`
//!   (the `include :global` dir), admin scripts and a `mailstow.toml`
//!   snippet showing the configuration the example needs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sieve_diff::{
    json, mailstow, par_map, pigeonhole, require_mailstow, Input, Outcome, DEFAULT_FROM,
    DEFAULT_USER,
};

/// Documented differences (docs/sieve-compat.md), as "example/message".
/// An entry here must still differ; once it matches, it has to go.
const ALLOWED: &[(&str, &str)] = &[];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sieve-examples")
}

/// Every example directory, sorted.
fn examples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(examples_dir())
        .expect("read sieve-examples/")
        .map(|e| e.expect("readdir").path())
        .filter(|p| p.join("script.sieve").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// One input per message of an example.
fn inputs(dir: &Path) -> Vec<Input> {
    let example = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut messages: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read example")
        .map(|e| e.expect("readdir").path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    messages.sort();
    messages
        .into_iter()
        .map(|message| {
            let stem = message
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            let mut input = Input {
                name: format!("{example}/{stem}"),
                script: dir.join("script.sieve"),
                message: message.clone(),
                from: Some(DEFAULT_FROM.to_owned()),
                to: DEFAULT_USER.to_owned(),
                user: DEFAULT_USER.to_owned(),
                before: Vec::new(),
                user_editheader: false,
                mailboxes: Vec::new(),
                personal_dir: Some(dir.to_owned()),
                global_dir: Some(dir.join("global")),
            };
            for env in [dir.join("example.env"), dir.join(format!("{stem}.env"))] {
                if let Ok(text) = fs::read_to_string(&env) {
                    input.apply_env(&env, &text, dir);
                }
            }
            input
        })
        .collect()
}

fn expected_path(input: &Input) -> PathBuf {
    input.message.with_extension("expected.json")
}

fn read_expected(input: &Input) -> Result<Outcome, String> {
    let path = expected_path(input);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v = json::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Outcome::from_json(&v).map_err(|e| format!("{}: {e}", path.display()))
}

#[test]
fn example_library_is_complete() {
    let dirs = examples();
    assert!(dirs.len() >= 15, "only {} examples", dirs.len());
    for d in &dirs {
        let readme = fs::read_to_string(d.join("README.md")).unwrap_or_default();
        assert!(
            !readme.trim().is_empty(),
            "{}: README.md must say what the example demonstrates",
            d.display()
        );
        let inputs = inputs(d);
        assert!(!inputs.is_empty(), "{}: no *.eml", d.display());
        for i in &inputs {
            assert!(
                expected_path(i).is_file(),
                "{} has no expected outcome (SIEVE_EXAMPLES_BLESS=1 writes it from Pigeonhole)",
                i.name
            );
        }
    }
}

/// Each example message: Pigeonhole gives expected.json (it stays in sync
/// with the reference), and so does mailstow.
#[test]
fn every_example_matches_expected_and_pigeonhole() {
    let bless = std::env::var_os("SIEVE_EXAMPLES_BLESS").is_some();
    let with_mailstow = require_mailstow();
    let all: Vec<Input> = examples().iter().flat_map(|d| inputs(d)).collect();
    let results = par_map(&all, |input| {
        let ph = pigeonhole(input);
        let ms = with_mailstow.then(|| mailstow(input));
        (ph, ms)
    });

    let mut failures = Vec::new();
    for (input, (ph, ms)) in all.iter().zip(&results) {
        if bless {
            fs::write(expected_path(input), ph.outcome.to_json().pretty())
                .expect("write expected.json");
        }
        let expected = match read_expected(input) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{}: {e}", input.name));
                continue;
            }
        };
        if ph.outcome != expected {
            failures.push(format!(
                "{}: Pigeonhole now gives [{}], expected.json says [{}] \
                 (SIEVE_EXAMPLES_BLESS=1 rewrites it)",
                input.name, ph.outcome, expected
            ));
        }
        let Some(ms) = ms else { continue };
        let allowed = ALLOWED.iter().find(|(n, _)| *n == input.name);
        match (&ms.outcome, allowed) {
            (Ok(o), None) if *o == expected => {}
            (Ok(o), Some((_, why))) if *o == expected => failures.push(format!(
                "{}: on the allow-list ({why}) but now matches: remove it",
                input.name
            )),
            (_, Some(_)) => {}
            (Ok(o), None) => failures.push(format!(
                "{}:\n  expected (Pigeonhole): {expected}\n  mailstow:              {o}\n  mailstow raw: {}",
                input.name,
                ms.raw.trim().replace('\n', "\n    ")
            )),
            (Err(e), None) => failures.push(format!(
                "{}: mailstow gave no outcome ({e}):\n{}",
                input.name, ms.raw
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} example messages fail:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

/// The `mailstow.toml` snippets shown in examples are valid configuration.
#[test]
fn example_config_snippets_load() {
    for d in examples() {
        let snippet = d.join("mailstow.toml");
        let Ok(text) = fs::read_to_string(&snippet) else {
            continue;
        };
        let full = format!(
            "[storage]\nmail_root = \"/var/mail/mailstow\"\n\
             [users]\npasswd_file = \"/etc/mailstow/users\"\n{text}"
        );
        if let Err(e) =
            mailstow::config::Config::from_toml(&full, &snippet, Path::new("/etc/mailstow"))
        {
            panic!("{}: {e}", snippet.display());
        }
    }
}
