//! SIGHUP: read the configuration file again and, when it validates, put it
//! in force for every connection and transaction that starts from then on
//! (users file, Sieve settings, limits, quota, outbound); connections and
//! transactions in flight keep the settings they started with. A file that
//! does not validate is refused with a log line saying why, and the running
//! configuration stays. Must not drop a connection or touch a listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::Signal;

use super::conn::Shared;
use crate::config::{self, Config};

/// Reload on every SIGHUP `hup` receives until the task is aborted.
pub async fn on_hangup(mut hup: Signal, path: PathBuf, shared: Arc<Shared>) {
    while hup.recv().await.is_some() {
        super::systemd::notify_reloading();
        let shared2 = Arc::clone(&shared);
        let path2 = path.clone();
        // Reading files and compiling scripts is blocking work.
        let done = tokio::task::spawn_blocking(move || reload(&path2, &shared2)).await;
        match done {
            Ok(Ok(applied)) => {
                crate::metrics::reload("ok");
                applied.adjust_limits(&shared);
            }
            Ok(Err(why)) => {
                crate::metrics::reload("refused");
                tracing::error!(
                config = %path.display(),
                    "reload refused, the running configuration stays: {why}"
                );
            }
            Err(e) => tracing::error!(error = %e, "reload failed"),
        }
        // Done either way: the old or the new configuration serves.
        super::systemd::notify_ready();
    }
}

/// What a reload changed that the caller applies on the runtime.
#[derive(Debug)]
pub struct Applied {
    connections: usize,
    per_ip: usize,
}

/// Load, validate and put in force the configuration at `path`. Err: why it
/// was refused (nothing changed).
pub fn reload(path: &Path, shared: &Shared) -> Result<Applied, String> {
    let running = shared.cfg();
    // The key files are not read: root was given up after they were.
    let mut new = Config::load_without_tls(path).map_err(|e| e.to_string())?;
    let waiting = new.adopt_restart_only(&running);
    let findings = config::check(&new, config::Scope::RELOAD);
    if !findings.errors.is_empty() {
        return Err(findings.summary());
    }
    let new = Arc::new(new);
    let deliverer = shared
        .pool
        .deliverer()
        .reloaded(Arc::clone(&new))
        .map_err(|e| e.to_string())?;
    shared.pool.replace(deliverer);
    for key in &waiting {
        tracing::warn!(key, "changed setting takes effect at the next restart");
    }
    for w in &findings.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(config = %path.display(), "configuration reloaded");
    Ok(Applied {
        connections: new.limits.max_connections,
        per_ip: new.limits.max_connections_per_ip,
    })
}

impl Applied {
    /// The connection limits, from the next accept on: the per-address one
    /// at once, the total as [`super::limit::ConnLimit::resize`] does it.
    pub fn adjust_limits(&self, shared: &Shared) {
        shared.per_ip.set_max(self.per_ip);
        shared.limit.resize(self.connections);
    }
}
