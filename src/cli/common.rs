//! What several commands share: the default configuration path, loading
//! the configuration (with logging, or with defaults when none is given),
//! and looking a user up; each error becomes an exit code. Must not hold
//! a command's own logic.

use std::path::Path;
use std::sync::Arc;

use mailstow::config::Config;
use mailstow::users::{Directory, User};

use super::exit::{EX_CONFIG, EX_NOUSER, EX_TEMPFAIL};

pub const DEFAULT_CONFIG: &str = "/etc/mailstow/mailstow.toml";

/// Load the config and set up logging; the error is the exit code.
/// `listens`: the command serves the network, so the `[tls]` files are
/// read; pipe delivery skips them (it may run as a user that cannot read
/// the key).
pub(super) fn setup(path: &std::path::Path, listens: bool) -> Result<Arc<Config>, u8> {
    let loaded = if listens {
        Config::load(path)
    } else {
        Config::load_without_tls(path)
    };
    let cfg = loaded.map_err(|e| {
        eprintln!("mailstow: {e}");
        EX_CONFIG
    })?;
    if let Err(e) = mailstow::telemetry::init(&cfg.log) {
        eprintln!("mailstow: {e:#}");
        return Err(EX_CONFIG);
    }
    Ok(Arc::new(cfg))
}

/// A config for commands that can run without one.
pub(super) fn config_or_default(path: Option<&Path>) -> Result<Arc<Config>, String> {
    match path {
        Some(p) => Config::load_without_tls(p)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
        None => Config::from_toml(
            "[storage]\nmail_root = \"/nonexistent\"\n[users]\npasswd_file = \"/nonexistent\"\n",
            Path::new("(defaults)"),
            Path::new("/"),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string()),
    }
}

/// Loads the config and looks the user up; the error is an exit code
/// (78 configuration, 67 unknown user, 75 temporary).
pub(super) fn config_and_user(config: &Path, address: &str) -> Result<(Arc<Config>, User), u8> {
    let cfg = config_or_default(Some(config)).map_err(|e| {
        eprintln!("mailstow: {e}");
        EX_CONFIG
    })?;
    let user = lookup(&cfg, address)?;
    Ok((cfg, user))
}

/// Look a user up in the configured users file; the error is an exit code.
pub(super) fn lookup(cfg: &Config, address: &str) -> Result<User, u8> {
    let dir = Directory::open(&cfg.users, &cfg.storage.mail_root).map_err(|e| {
        eprintln!("mailstow: {e}");
        EX_CONFIG
    })?;
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    match dir.lookup(local, domain) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            eprintln!("mailstow: {address}: user unknown");
            Err(EX_NOUSER)
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            Err(EX_TEMPFAIL)
        }
    }
}
