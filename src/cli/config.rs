//! `mailstow config check`: load the file (every error names the key),
//! check it against the system, print the effective configuration and the
//! findings. Must not hold the checks themselves (config::check does).

use std::path::PathBuf;

use mailstow::config::Config;

use super::exit::{EX_CONFIG, EX_OK};

/// `config check`: load (every error names the key), check against the
/// system, print the effective configuration and the findings.
pub fn check(config: PathBuf, quiet: bool) -> u8 {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return EX_CONFIG;
        }
    };
    let mut findings = mailstow::config::check(&cfg, mailstow::config::Scope::ALL);
    mailstow::config::check_config_file(&cfg, &config, &mut findings);
    if !quiet {
        println!("# effective configuration of {}", config.display());
        print!("{}", cfg.effective_toml());
    }
    for n in &findings.notes {
        eprintln!("mailstow: {}: {n}", config.display());
    }
    for w in &findings.warnings {
        eprintln!("mailstow: {}: warning: {w}", config.display());
    }
    for e in &findings.errors {
        eprintln!("mailstow: {}: error: {e}", config.display());
    }
    if findings.errors.is_empty() {
        eprintln!("mailstow: {}: ok", config.display());
        EX_OK
    } else {
        EX_CONFIG
    }
}
