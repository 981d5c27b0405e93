//! The dependency graph as deny.toml allows it: licenses compatible with
//! AGPL-3.0-only, no wildcard versions, crates only from crates.io.
//! `cargo deny --offline check licenses bans sources` (cargo-deny is
//! installed first when missing, as the package tests install cargo-deb).
//! Must not reach the network: advisories need a database download and
//! are not checked here.

use std::process::Command;

use crate::debian::output;
use crate::util;

/// The cargo-deny the tests install when `cargo deny` is missing (it
/// builds with Rust 1.95).
const CARGO_DENY_VERSION: &str = "0.20.2";

#[test]
fn dependencies_have_allowed_licenses_pinned_versions_and_known_sources() {
    util::ensure_cargo_subcommand("deny", "cargo-deny", CARGO_DENY_VERSION);
    let (status, text) = output(
        Command::new("cargo")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["deny", "--offline", "check", "licenses", "bans", "sources"]),
    );
    assert!(status.success(), "cargo deny refused the graph:\n{text}");
    assert!(
        text.contains("licenses ok") && text.contains("bans ok") && text.contains("sources ok"),
        "{text}"
    );
}
