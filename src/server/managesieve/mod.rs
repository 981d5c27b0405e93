//! The ManageSieve listeners (`[managesieve] listen`): bound with the
//! others before root is given up, then accepted under their own
//! connection limit, one task per connection ([`conn`]), until shutdown,
//! when open sessions are closed. Must not speak the protocol (the
//! session in mailstow_proto does) nor know where scripts live or how
//! passwords are checked (the [`Backend`] does).

pub mod conn;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::limit::ConnLimit;
use crate::config::Config;
pub use conn::{Backend, ConnConfig};

/// Bind every `[managesieve] listen` address (TCP).
pub fn bind(cfg: &Config) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::new();
    for addr in &cfg.managesieve.listen {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("[managesieve] listen = {addr}: {e}"))?;
        l.set_nonblocking(true)?;
        tracing::info!(listen = %addr, protocol = "managesieve", "listening");
        out.push(l);
    }
    Ok(out)
}

/// Accept on `listeners` (at most `max_connections` sessions at once)
/// until `stop` turns true; then close the sessions.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    max_connections: usize,
    backend: Arc<dyn Backend>,
    stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(ConnLimit::new(max_connections));
    let mut acceptors = JoinSet::new();
    for l in listeners {
        let l = match tokio::net::TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "managesieve: listener unusable");
                continue;
            }
        };
        let (limit, backend) = (Arc::clone(&limit), Arc::clone(&backend));
        let mut stop = stop.clone();
        acceptors.spawn(async move {
            // Dropped (and so aborted) with the acceptor at shutdown.
            let mut open = JoinSet::new();
            loop {
                let permit = tokio::select! {
                    p = limit.acquire() => match p { Some(p) => p, None => break },
                    _ = stop.changed() => break,
                };
                let (stream, peer) = tokio::select! {
                    a = l.accept() => match a {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "managesieve: accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = stop.changed() => break,
                };
                let _ = stream.set_nodelay(true);
                // The settings in force (a reload reaches new sessions).
                let Some(conn_cfg) = backend.conn_config(peer) else {
                    break;
                };
                let backend = Arc::clone(&backend);
                let span = tracing::info_span!("managesieve", peer = %peer);
                open.spawn(
                    async move {
                        match conn::serve(stream, &conn_cfg, backend).await {
                            Ok(end) => tracing::debug!(end, "managesieve: disconnected"),
                            Err(e) => tracing::debug!(error = %e, "managesieve: connection lost"),
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
                while open.try_join_next().is_some() {}
            }
            open.shutdown().await;
        });
    }
    while acceptors.join_next().await.is_some() {}
}
