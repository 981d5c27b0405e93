//! The ManageSieve listeners (`[managesieve] listen`): bound with the
//! others before root is given up, then accepted under their own
//! connection limit, one task per connection, until shutdown, when open
//! sessions are closed. Must not speak the protocol (managesieve::conn
//! does) nor touch the users' files (the backend does).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::limit::ConnLimit;
use crate::config::Config;
use crate::managesieve::conn::{self, Backend, ConnConfig};
use mailstow_proto::managesieve::parse::Limits;
use mailstow_proto::managesieve::session;

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

/// The session settings `cfg` gives a client at `peer`.
pub fn conn_config(cfg: &Config, peer: SocketAddr) -> ConnConfig {
    let editheader = cfg.sieve.user_editheader;
    let extensions: Vec<String> = sieve::compiler::grammar::Capability::all()
        .iter()
        .filter(|c| mailstow_sieve::compile::allowed(c, editheader))
        .map(ToString::to_string)
        .collect();
    ConnConfig {
        session: session::Config {
            implementation: format!("mailstow {}", env!("CARGO_PKG_VERSION")),
            extensions: extensions.join(" "),
            max_redirects: cfg.sieve.max_redirects,
            notify: "mailto".into(),
            starttls: cfg.tls.is_some(),
            plaintext_without_tls: cfg.managesieve.plaintext_on_loopback && peer.ip().is_loopback(),
            max_auth_failures: cfg.managesieve.max_auth_failures,
            max_unauthenticated_commands: 20,
        },
        limits: Limits {
            max_line: 8 * 1024,
            // A script, plus what a SASL response or a name may take.
            max_literal: cfg.sieve.max_script_size as u64 + 1024,
        },
        idle_timeout: cfg.managesieve.idle_timeout,
        failure_delay: cfg.managesieve.auth_failure_delay,
        tls: cfg
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.server))),
    }
}

/// Accept on `listeners` until `stop` turns true; then close the sessions.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    cfg: Arc<Config>,
    backend: Arc<dyn Backend>,
    stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(ConnLimit::new(cfg.managesieve.max_connections));
    let mut acceptors = JoinSet::new();
    for l in listeners {
        let l = match tokio::net::TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "managesieve: listener unusable");
                continue;
            }
        };
        let (limit, cfg, backend) = (Arc::clone(&limit), Arc::clone(&cfg), Arc::clone(&backend));
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
                let conn_cfg = conn_config(&cfg, peer);
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
