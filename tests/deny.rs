//! The dependency graph as deny.toml allows it: licenses compatible with
//! AGPL-3.0-only, no wildcard versions, crates only from crates.io.
//! `cargo deny --offline check licenses bans sources` (cargo-deny is
//! installed first when missing, as the package tests install cargo-deb).
//! Must not reach the network: advisories need a database download and
//! are not checked here.

use std::process::{Command, Stdio};

use crate::debian::output;
use crate::util;

/// The cargo-deny the tests install when `cargo deny` is missing (it
/// builds with Rust 1.95).
const CARGO_DENY_VERSION: &str = "0.20.2";

fn ensure_cargo_deny() {
    let works = || {
        Command::new("cargo")
            .args(["deny", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return;
    }
    let _lock = util::host_lock();
    if !works() {
        util::run(Command::new("cargo").args([
            "install",
            "cargo-deny",
            "--locked",
            "--version",
            CARGO_DENY_VERSION,
        ]));
    }
}

#[test]
fn dependencies_have_allowed_licenses_pinned_versions_and_known_sources() {
    ensure_cargo_deny();
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
