//! `mailstow config check`: load the file (every error names the key),
//! check it against the system, print the effective configuration and the
//! findings. `mailstow config from-dovecot`: read `doveconf -n` (a file or
//! the command's output), write the converted configuration and report
//! what was not carried over. Must not hold the checks or the conversion
//! themselves (config::check and config::from_dovecot do).

use std::path::{Path, PathBuf};

use mailstow::config::Config;

use super::exit::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_OK, EX_UNAVAILABLE};

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

/// `config from-dovecot`: the conversion of `input` (or of what
/// `doveconf -n` prints) to `output` (or stdout); the findings on stderr.
pub fn from_dovecot(input: Option<&Path>, output: Option<&Path>) -> u8 {
    let text = match input {
        Some(p) => match std::fs::read(p) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("mailstow: {}: {e}", p.display());
                return EX_NOINPUT;
            }
        },
        None => match std::process::Command::new("doveconf").arg("-n").output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => {
                eprintln!(
                    "mailstow: doveconf -n failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return EX_UNAVAILABLE;
            }
            Err(e) => {
                eprintln!("mailstow: cannot run doveconf -n (is Dovecot installed? else pass --input): {e}");
                return EX_UNAVAILABLE;
            }
        },
    };
    let conv = match mailstow::config::from_dovecot::convert(&text) {
        Ok(c) => c,
        Err(e) => {
            let from = input.map_or("doveconf -n".to_owned(), |p| p.display().to_string());
            eprintln!("mailstow: {from}: not doveconf -n output: {e}");
            return EX_DATAERR;
        }
    };
    match output {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &conv.toml) {
                eprintln!("mailstow: {}: {e}", p.display());
                return EX_CANTCREAT;
            }
        }
        None => print!("{}", conv.toml),
    }
    for line in conv.report().lines() {
        eprintln!("mailstow: from-dovecot: {line}");
    }
    EX_OK
}
