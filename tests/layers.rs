//! The workspace's layering, as DESIGN fixes it, read from `cargo
//! metadata`: which crates each layer may not depend on (normal
//! dependencies; tests and examples may use anything). A wrong-way import
//! already fails to compile; this catches a wrong-way dependency added to a
//! Cargo.toml before anyone imports it. Must not build anything.

use std::collections::BTreeMap;
use std::process::Command;

use crate::debian::output;

/// Layer -> crates it must not depend on.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "mailstow-proto",
        &[
            "tokio",
            "mailstow",
            "mailstow-maildir",
            "mailstow-index",
            "mailstow-sieve",
        ],
    ),
    (
        "mailstow-maildir",
        &[
            "tokio",
            "mailstow",
            "mailstow-proto",
            "mailstow-index",
            "mailstow-sieve",
            "rusqlite",
        ],
    ),
    (
        "mailstow-index",
        &["tokio", "mailstow", "mailstow-proto", "mailstow-sieve"],
    ),
    (
        "mailstow-sieve",
        &[
            "tokio",
            "mailstow",
            "mailstow-maildir",
            "mailstow-index",
            "rusqlite",
        ],
    ),
];

/// Each workspace package's normal (non-dev, non-build) dependencies.
fn normal_dependencies() -> BTreeMap<String, Vec<String>> {
    let (status, text) = output(
        Command::new("cargo")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ]),
    );
    assert!(status.success(), "cargo metadata failed: {text}");
    let json = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from cargo metadata: {text}"));
    let meta: serde_json::Value = serde_json::from_str(json).expect("cargo metadata JSON");
    let mut out = BTreeMap::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let deps = pkg["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        out.insert(pkg["name"].as_str().unwrap_or_default().to_owned(), deps);
    }
    out
}

#[test]
fn each_layer_depends_only_on_what_the_design_allows() {
    let deps = normal_dependencies();
    for (layer, forbidden) in FORBIDDEN {
        let have = deps
            .get(*layer)
            .unwrap_or_else(|| panic!("{layer} is not a workspace package: {deps:?}"));
        let wrong: Vec<&String> = have
            .iter()
            .filter(|d| forbidden.contains(&d.as_str()))
            .collect();
        assert!(wrong.is_empty(), "{layer} must not depend on {wrong:?}");
    }
    // The binary package is the one that uses every layer.
    let top = &deps["mailstow"];
    for layer in FORBIDDEN.iter().map(|(l, _)| l) {
        assert!(
            top.iter().any(|d| d == layer),
            "mailstow does not use {layer}"
        );
    }
}
