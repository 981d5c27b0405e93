//! The network side: binds every configured listener, takes a connection
//! permit before each accept (the connection limit), refuses a client
//! address over its own limit, runs one task per
//! connection, and on SIGTERM/SIGINT stops accepting, lets transactions in
//! flight finish, drains the delivery pool and returns. Must not know about
//! Maildir or Sieve.

pub mod conn;
pub mod limit;
pub mod listener;
pub mod managesieve;
pub mod per_ip;
pub mod reload;
pub mod systemd;
pub mod tls;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::deliver::{Deliverer, Pool};
use conn::Shared;
use listener::{Listener, Service};
use mailstow_proto::Mode;

/// Binds every configured listener, without the runtime (so that root can
/// be given up between binding and starting it); sockets systemd handed
/// over are taken instead of binding ([`systemd`]).
pub fn bind_all(cfg: &Config) -> anyhow::Result<Vec<(listener::Bound, Service)>> {
    let mut handed = systemd::Inherited::take(cfg)?;
    let mut bound = Vec::new();
    for addr in &cfg.lmtp.listen {
        let service = Service::new(cfg, Mode::Lmtp, addr);
        bound.push((
            handed.claim_or_bind(Mode::Lmtp, addr, cfg.lmtp.socket_mode)?,
            service,
        ));
        tracing::info!(listen = %addr, "listening");
    }
    for addr in &cfg.smtp.listen {
        let service = Service::new(cfg, Mode::Smtp, addr);
        let starttls = service.tls.is_some();
        bound.push((
            handed.claim_or_bind(Mode::Smtp, addr, cfg.lmtp.socket_mode)?,
            service,
        ));
        tracing::info!(listen = %addr, protocol = "smtp", starttls, "listening");
    }
    bound.extend(handed.unclaimed(cfg));
    Ok(bound)
}

/// The deliverer in force, or None once the server is stopping.
pub type Current = Box<dyn Fn() -> Option<Arc<Deliverer>> + Send + Sync>;

/// The ManageSieve service to run beside LMTP: its listeners and what
/// makes its backend from the deliverer in force.
pub struct SieveService {
    pub listeners: Vec<std::net::TcpListener>,
    pub backend: Box<dyn FnOnce(Current) -> Arc<dyn managesieve::Backend> + Send>,
}

/// Run the LMTP (and SMTP) service on the listeners [`bind_all`] bound
/// until a termination signal; then shut down cleanly. SIGHUP reloads
/// `config_path` (see [`reload`]).
pub async fn run(
    cfg: Arc<Config>,
    config_path: std::path::PathBuf,
    bound: Vec<(listener::Bound, Service)>,
    sieve: Option<SieveService>,
) -> anyhow::Result<()> {
    // Caught from here on (ignored before, see `cli::serve`).
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let writers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let deliverer = Arc::new(Deliverer::new(Arc::clone(&cfg))?.with_index_writers(writers)?);
    if let Some(addr) = cfg.metrics.listen {
        crate::metrics::install(addr)?;
        tracing::info!(listen = %addr, "metrics endpoint listening");
    }
    let mut listeners = Vec::new();
    for (b, service) in bound {
        listeners.push((b.into_listener()?, service));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        systemd::notify_stopping();
        let _ = stop_tx.send(true);
    });
    let pool = Pool::start(deliverer, cfg.delivery.threads, cfg.delivery.queue_depth)?;
    let shared = Arc::new(Shared {
        pool,
        limit: Arc::new(limit::ConnLimit::new(cfg.limits.max_connections)),
        per_ip: per_ip::PerIp::new(cfg.limits.max_connections_per_ip),
        backends: crate::proxy::Pool::default(),
    });
    let hangups = tokio::spawn(reload::on_hangup(hangup, config_path, Arc::clone(&shared)));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ready");
    systemd::notify_ready();
    let sieve_service = sieve.map(|service| {
        // A weak reference: the last strong one must be ours at shutdown.
        let weak = Arc::downgrade(&shared);
        let backend =
            (service.backend)(Box::new(move || weak.upgrade().map(|s| s.pool.deliverer())));
        tokio::spawn(managesieve::serve(
            service.listeners,
            cfg.managesieve.max_connections,
            backend,
            stop_rx.clone(),
        ))
    });
    let shared = serve(listeners, shared, stop_rx).await;
    if let Some(t) = sieve_service {
        let _ = t.await;
    }
    signals.abort();
    hangups.abort();
    // The task's reference is gone once it has stopped.
    let _ = hangups.await;
    // Every connection task has ended, so this is the last reference.
    match Arc::try_unwrap(shared) {
        Ok(s) => tokio::task::block_in_place(|| s.pool.shutdown()),
        Err(_) => tracing::error!("connections still referenced at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Accept on every listener until `stop` turns true, then wait (up to the
/// grace period) for the connections; returns the shared state back.
async fn serve(
    listeners: Vec<(Listener, Service)>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Arc<Shared> {
    // Permits exist for the connection limit: taken before accept, so excess
    // clients wait in the kernel's backlog instead of costing us memory.
    let limit = Arc::clone(&shared.limit);
    let per_ip = Arc::clone(&shared.per_ip);
    let mut conns = JoinSet::new();
    let mut acceptors = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    let mut socket_files = Vec::new();
    for (l, service) in listeners {
        let limit = Arc::clone(&limit);
        let conn_tx = conn_tx.clone();
        let mut stop = stop.clone();
        let (l, file) = match l {
            Listener::Tcp(t) => (Accept::Tcp(t), None),
            Listener::Unix(u, f) => (Accept::Unix(u), Some(f)),
        };
        socket_files.extend(file);
        acceptors.spawn(async move {
            loop {
                let permit = tokio::select! {
                    p = limit.acquire() => match p { Some(p) => p, None => return },
                    _ = stop.changed() => return,
                };
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = stop.changed() => return,
                };
                match accepted {
                    Ok(conn) => {
                        // Counted in accept order; the gauge falls when
                        // the connection's task ends.
                        let open = crate::metrics::connection(match service.mode {
                            Mode::Lmtp => "lmtp",
                            Mode::Smtp => "smtp",
                        });
                        if conn_tx
                            .send((conn, (permit, open), service.clone()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    let mut stop_seen = stop.clone();
    loop {
        tokio::select! {
            next = conn_rx.recv() => match next {
                Some(((stream, peer), permit, service)) => {
                    let shared = Arc::clone(&shared);
                    let stop = stop.clone();
                    let per_ip = Arc::clone(&per_ip);
                    conns.spawn(async move {
                        match stream {
                            // Counted per client address; over the limit,
                            // refused at once instead of queued.
                            Stream::Tcp(s) => match s.peer_addr().ok().map(|a| per_ip.enter(a.ip())) {
                                Some(None) => conn::refuse_busy(s, &peer, &shared).await,
                                Some(Some(_slot)) => conn::serve(s, peer, shared, stop, service).await,
                                None => conn::serve(s, peer, shared, stop, service).await,
                            },
                            Stream::Unix(s) => conn::serve(s, peer, shared, stop, service).await,
                        }
                        drop(permit);
                    });
                }
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop_seen.changed() => break,
        }
    }
    tracing::info!(
        connections = conns.len(),
        "shutting down: no new connections"
    );
    acceptors.shutdown().await;
    drop(socket_files);
    let grace = shared.cfg().limits.shutdown_grace;
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "grace period over: closing the rest"
        );
        conns.shutdown().await;
    }
    shared
}

enum Accept {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Accept {
    async fn accept(&self) -> std::io::Result<(Stream, String)> {
        match self {
            Accept::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), format!("[{}]:{}", a.ip(), a.port())))
            }
            Accept::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), "unix socket".to_owned()))
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing transactions in flight"),
        _ = int.recv() => tracing::info!("SIGINT: finishing transactions in flight"),
    }
}
