//! One LMTP or SMTP connection: feeds bytes read from the socket into the
//! session state machine, answers its requests (recipient lookups, with the
//! relay check in SMTP; deliveries via the pool; the STARTTLS handshake),
//! writes its replies (each write bounded by the idle timeout), and applies
//! the idle, data and total data timeouts, and
//! the shutdown rule (never cut a transaction in flight). A recipient whose
//! mailbox is on another node is forwarded there (`crate::proxy`), side
//! by side with local ones. Must not know about Maildir or parse protocol
//! lines itself.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{Config, Limits};
use crate::deliver::headers::{self, Origin, Protocol};
use crate::deliver::lead::Lead;
use crate::deliver::log::{self, Logged};
use crate::deliver::outcome::{self, Failure, RcptOutcome};
use crate::deliver::{report, Deliverer, Envelope, Pool, Recipient, Spool};
use crate::proxy::forward::{Ctx, LegReplies};
use crate::proxy::{Backend, Forwarder, MailInfo, Route};
use mailstow_proto::address::Mailbox;
use mailstow_proto::command::RcptParams;
use mailstow_proto::{Event, Mode, Reply, Session, SessionConfig, Transaction};

use super::listener::Service;
use super::tls::{self, TlsInfo};

const READ_SIZE: usize = 16 * 1024;

/// Everything a connection needs, shared by all of them.
pub struct Shared {
    pub pool: Pool,
    /// The connection limit: a permit is taken before each accept.
    pub limit: Arc<super::limit::ConnLimit>,
    pub per_ip: Arc<super::per_ip::PerIp>,
    /// Idle connections to backend nodes, for the proxy.
    pub backends: crate::proxy::Pool,
}

/// An accepted recipient: stored here, or forwarded to another node.
#[derive(Debug)]
enum Routed {
    Local(Box<Recipient>),
    /// Accepted by the backend of the forwarder's leg `leg`.
    Remote {
        address: String,
        leg: usize,
    },
}

impl Shared {
    /// The configuration in force now (a reload replaces it); a connection
    /// takes it once, at its start, and keeps it.
    pub fn cfg(&self) -> Arc<Config> {
        self.pool.deliverer().config_arc()
    }
}

/// Serve one connection until QUIT, EOF, timeout or shutdown.
pub async fn serve<S>(
    stream: S,
    peer: String,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    service: Service,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // `session=`, not `id=`: a line in a transaction also has its queue id.
    let id = headers::new_id(SystemTime::now());
    let span = tracing::info_span!("session", session = %id, peer = %peer);
    async move {
        tracing::debug!("connected");
        match drive(stream, &peer, &shared, shutdown, &service).await {
            Ok(end) => tracing::debug!(end, "disconnected"),
            Err(e) => tracing::debug!(error = %e, "connection lost"),
        }
    }
    .instrument(span)
    .await
}

/// The connection as the Received header and the log describe it.
struct Link<'a> {
    peer: &'a str,
    mode: Mode,
    /// Set once STARTTLS succeeded.
    tls: Option<TlsInfo>,
}

/// Answer what the session asks, flush, then wait for more bytes (or the
/// shutdown) until the deadline in force; again, to the connection's end.
async fn drive<S>(
    stream: S,
    peer: &str,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
    service: &Service,
) -> std::io::Result<&'static str>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn::new(stream, peer, shared, service);
    let mut buf = vec![0u8; READ_SIZE];
    let mut timers = Timers::new(&conn.cfg.limits);
    conn.session.greeting().write_to(&mut conn.out);
    loop {
        let answered = match conn.answer().await? {
            ControlFlow::Break(end) => return Ok(end),
            ControlFlow::Continue(answered) => answered,
        };
        conn.flush().await?;
        if conn.session.is_closed() {
            return Ok("closed");
        }
        if *shutdown.borrow() && !conn.session.in_transaction() {
            let bye = conn.session.shutdown_reply();
            return conn.goodbye(bye, "shutdown").await;
        }
        let limits = &conn.cfg.limits;
        let spooling = conn.spool.is_some();
        let deadline = timers.next(limits, conn.session.in_data(), spooling, answered);
        if let ControlFlow::Break(end) = conn.read(&mut buf, deadline, &mut shutdown).await? {
            return Ok(end);
        }
    }
}

/// One connection while [`drive`] runs it.
struct Conn<'a, S> {
    shared: &'a Shared,
    /// The deliverer and configuration in force when the connection began:
    /// kept to its end, whatever a reload puts in force meanwhile.
    d: Arc<Deliverer>,
    cfg: Arc<Config>,
    service: &'a Service,
    stream: tls::Stream<S>,
    link: Link<'a>,
    session: Session<Routed>,
    /// The backend legs of the transaction (empty without remote users).
    forwarder: Forwarder,
    /// Replies written and not sent yet.
    out: Vec<u8>,
    /// The body of the transaction (Err once the spool failed); None
    /// outside a body and once it went to delivery.
    spool: Option<Result<Spool, Failure>>,
    /// Drops the Return-Path fields an MTA wrote above the body.
    lead: Lead,
    /// When the last body began (before any, when the connection did).
    started: Instant,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conn<'a, S> {
    fn new(stream: S, peer: &'a str, shared: &'a Shared, service: &'a Service) -> Self {
        let d = shared.pool.deliverer();
        let cfg = d.config_arc();
        let session = Session::new(session_config(&cfg, service));
        Conn {
            shared,
            d,
            cfg,
            service,
            stream: tls::Stream::Plain(stream),
            link: Link {
                peer,
                mode: service.mode,
                tls: None,
            },
            session,
            forwarder: Forwarder::default(),
            out: Vec::with_capacity(1024),
            spool: None,
            lead: Lead::new(false),
            started: Instant::now(),
        }
    }

    /// Answer every event the session has ready, in order: Continue(true)
    /// if there was one, Break with the reason if the connection ends.
    async fn answer(&mut self) -> std::io::Result<ControlFlow<&'static str, bool>> {
        let mut answered = false;
        while let Some(ev) = self.session.poll() {
            answered = true;
            match ev {
                Event::Reply(r) => r.write_to(&mut self.out),
                Event::CheckRecipient { rcpt, params, size } => {
                    let result = self.check_rcpt(rcpt, params, size).await;
                    self.session.rcpt_checked(result);
                }
                Event::DataStart => self.data_start(),
                Event::Body(chunk) => self.body(&chunk),
                Event::DataAborted { refused } => self.data_aborted(&refused).await,
                Event::Deliver(tx) => {
                    let rest = self.lead.finish();
                    let spool = self.spool.take().map(|s| {
                        s.and_then(|mut s| {
                            s.append(&rest)
                                .and_then(|()| s.finish())
                                .map(|()| s)
                                .map_err(|e| Failure::spool(&e))
                        })
                    });
                    let replies = self.deliver(tx, spool).await;
                    self.session.delivered(replies);
                }
                Event::StartTls => {
                    if let ControlFlow::Break(end) = self.start_tls().await? {
                        return Ok(ControlFlow::Break(end));
                    }
                }
                Event::Close => {
                    send(&mut self.stream, &self.out, self.cfg.limits.idle_timeout).await?;
                    return Ok(ControlFlow::Break("quit"));
                }
            }
        }
        Ok(ControlFlow::Continue(answered))
    }

    /// The answer to a RCPT: SMTP takes mail for our domains only, never
    /// a relay; then the user is looked up, and routed.
    async fn check_rcpt(
        &mut self,
        rcpt: Mailbox,
        params: RcptParams,
        size: Option<u64>,
    ) -> Result<Routed, Reply> {
        if self.link.mode == Mode::Smtp && !self.cfg.smtp.is_local_domain(&rcpt.domain) {
            let r = outcome::relay_denied();
            crate::metrics::rcpt_rejected("relay_denied");
            tracing::info!(to = %format!("<{rcpt}>"), status = "rejected", reply = %r, "recipient");
            return Err(r);
        }
        match check_recipient(&self.d, rcpt.clone(), params, size)? {
            Found::Local(r) => Ok(Routed::Local(r)),
            Found::Remote(backend) => self.forward_rcpt(rcpt, backend).await,
        }
    }

    /// RCPT for a user on another node: LMTP only, never twice through
    /// this node; the backend's answer is relayed as it is.
    async fn forward_rcpt(&mut self, rcpt: Mailbox, backend: Backend) -> Result<Routed, Reply> {
        let address = rcpt.to_string();
        let to = format!("<{address}>");
        let Some(mail) = self.session.current_mail().map(|v| MailInfo::of(&v)) else {
            return Err(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        if self.link.mode == Mode::Smtp {
            let r = Reply::new(451, "4.3.5", "Mailbox is on another node: use LMTP");
            crate::metrics::rcpt_rejected("proxy_smtp");
            tracing::info!(to = %to, relay = %backend.key(), status = "rejected", reply = %r, "recipient");
            return Err(r);
        }
        if crate::proxy::is_loop(&mail.hops) {
            crate::metrics::rcpt_rejected("routing_loop");
            tracing::warn!(to = %to, relay = %backend.key(), hops = %mail.hops.join(","), "routing loop: the transaction passed through this node already");
            return Err(routing_loop());
        }
        let cx = Ctx {
            pool: &self.shared.backends,
            cfg: &self.cfg.proxy,
            hostname: &self.cfg.hostname,
        };
        match self.forwarder.rcpt(cx, &mail, &backend, &address).await {
            Ok(leg) => Ok(Routed::Remote { address, leg }),
            Err(r) => {
                tracing::info!(to = %to, relay = %backend.key(), status = "rejected", reply = %r, "recipient");
                Err(r)
            }
        }
    }

    /// A body starts: a fresh spool, and its clock.
    fn data_start(&mut self) {
        self.started = Instant::now();
        self.lead = Lead::new(false);
        self.spool = Some(Ok(Spool::new(
            self.cfg.delivery.spool_dir.clone(),
            self.cfg.delivery.spool_memory_max,
        )));
    }

    /// Body bytes go to the spool, unless it failed already.
    fn body(&mut self, chunk: &[u8]) {
        if let Some(Ok(s)) = self.spool.as_mut() {
            let chunk = self.lead.pass(chunk);
            // Only a chunk that reaches the spool file blocks; memory
            // appends stay on the worker.
            let appended = if s.touches_disk(chunk.len()) {
                tokio::task::block_in_place(|| s.append(&chunk))
            } else {
                s.append(&chunk)
            };
            if let Err(e) = appended {
                self.spool = Some(Err(Failure::spool(&e)));
            }
        }
    }

    async fn data_aborted(&mut self, refused: &[Routed]) {
        self.spool = None;
        // No queue id, sender or size: the transaction never reached
        // delivery, and the data was not kept.
        for r in refused {
            if let Routed::Local(r) = r {
                let o = RcptOutcome::Failed(Failure::TooLarge);
                log::log_outcome(r, &o, self.started, &Logged::default());
            }
        }
        let cx = Ctx {
            pool: &self.shared.backends,
            cfg: &self.cfg.proxy,
            hostname: &self.cfg.hostname,
        };
        self.forwarder.reset(cx).await;
    }

    /// The transaction's data is complete: forwarded recipients first (their
    /// backends get the message), then local ones from the spool; the
    /// replies in RCPT order.
    async fn deliver(
        &mut self,
        tx: Transaction<Routed>,
        spool: Option<Result<Spool, Failure>>,
    ) -> Vec<Reply> {
        let (tx, remote) = split_routed(tx);
        if remote.is_empty() {
            return deliver(self.shared, &self.d, &self.link, tx, spool, self.started).await;
        }
        let legs = self.forward_data(spool.as_ref()).await;
        let local = if tx.recipients.is_empty() {
            Vec::new()
        } else {
            deliver(self.shared, &self.d, &self.link, tx, spool, self.started).await
        };
        merge_replies(local, remote, legs)
    }

    /// The message to every backend with recipients; a spool that failed
    /// fails them too (the backends' transactions are reset).
    async fn forward_data(
        &mut self,
        spool: Option<&Result<Spool, Failure>>,
    ) -> Result<Vec<LegReplies>, Reply> {
        let bytes = match spool {
            Some(Ok(s)) => {
                tokio::task::block_in_place(|| s.bytes()).map_err(|e| Failure::spool(&e))
            }
            Some(Err(f)) => Err(f.clone()),
            None => Err(Failure::Spool("no message data".into())),
        };
        let cx = Ctx {
            pool: &self.shared.backends,
            cfg: &self.cfg.proxy,
            hostname: &self.cfg.hostname,
        };
        match bytes {
            Ok(b) => Ok(self.forwarder.data(cx, &b).await),
            Err(f) => {
                self.forwarder.reset(cx).await;
                Err(f.reply())
            }
        }
    }

    /// The 220 goes out in plaintext, then the handshake; the session
    /// holds no input (it refused any pipelined after STARTTLS).
    async fn start_tls(&mut self) -> std::io::Result<ControlFlow<&'static str>> {
        let limit = self.cfg.limits.idle_timeout;
        send(&mut self.stream, &self.out, limit).await?;
        self.out.clear();
        let Some(acceptor) = self.service.tls.as_ref() else {
            return Ok(ControlFlow::Break("STARTTLS without a certificate"));
        };
        match self.stream.start_tls(acceptor, limit).await {
            Ok(info) => {
                tracing::info!(version = %info.version, cipher = %info.cipher, "TLS started");
                self.link.tls = Some(info);
                self.session.tls_started();
                Ok(ControlFlow::Continue(()))
            }
            Err(e) => {
                tracing::info!(error = %e, "TLS handshake failed");
                Ok(ControlFlow::Break("TLS handshake failed"))
            }
        }
    }

    /// Send the replies written, if any: before waiting for input.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            send(&mut self.stream, &self.out, self.cfg.limits.idle_timeout).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn goodbye(&mut self, bye: Reply, why: &'static str) -> std::io::Result<&'static str> {
        say_goodbye(&mut self.stream, bye, why, self.cfg.limits.idle_timeout).await
    }

    /// Wait until `deadline` for the client's next bytes and feed them to
    /// the session. A shutdown wakes it too, but only between transactions:
    /// one in flight finishes.
    async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<ControlFlow<&'static str>> {
        let in_tx = self.session.in_transaction();
        tokio::select! {
            read = tokio::time::timeout_at(deadline.into(), self.stream.read(buf)) => match read {
                Err(_) => {
                    let bye = self.session.timeout_reply();
                    self.goodbye(bye, "timeout").await.map(ControlFlow::Break)
                }
                Ok(Ok(0)) => Ok(ControlFlow::Break(if in_tx { "eof in transaction" } else { "eof" })),
                Ok(Ok(n)) => {
                    self.session.feed(&buf[..n]);
                    Ok(ControlFlow::Continue(()))
                }
                Ok(Err(e)) => Err(e),
            },
            _ = shutdown.changed(), if !in_tx => Ok(ControlFlow::Continue(())),
        }
    }
}

fn session_config(cfg: &Config, service: &Service) -> SessionConfig {
    SessionConfig {
        hostname: cfg.hostname.clone(),
        mode: service.mode,
        starttls: service.tls.is_some(),
        max_message_size: cfg.limits.max_message_size,
        max_recipients: cfg.limits.max_recipients,
        max_line_length: cfg.limits.max_line_length,
        max_commands: cfg.limits.max_commands,
        max_errors: cfg.limits.max_errors,
    }
}

/// When a read gives up.
struct Timers {
    /// The idle timeout covers a whole command line: it restarts only when
    /// the session answers something, never for bytes that end no line.
    command: Instant,
    /// The whole body, from its first byte to its end, however fast the
    /// blocks come (a client sending a byte at a time cannot hold it open).
    data: Option<Instant>,
}

impl Timers {
    fn new(limits: &Limits) -> Timers {
        Timers {
            command: Instant::now() + limits.idle_timeout,
            data: None,
        }
    }

    /// The deadline of the next read: `in_data` while a body is read,
    /// `spooling` while one is held, `answered` if the session just
    /// answered something.
    fn next(&mut self, limits: &Limits, in_data: bool, spooling: bool, answered: bool) -> Instant {
        let now = Instant::now();
        if in_data || spooling {
            self.data.get_or_insert(now + limits.data_total_timeout);
        } else {
            self.data = None;
        }
        if answered {
            self.command = now + limits.idle_timeout;
        }
        let deadline = if in_data {
            now + limits.data_timeout
        } else {
            self.command
        };
        match self.data {
            Some(d) => deadline.min(d),
            None => deadline,
        }
    }
}

/// A client address with `max_connections_per_ip` connections open already:
/// 421 4.7.0 at once, then close.
pub async fn refuse_busy<S>(mut stream: S, peer: &str, shared: &Shared)
where
    S: AsyncWrite + Unpin,
{
    let cfg = shared.cfg();
    tracing::info!(peer = %peer, limit = cfg.limits.max_connections_per_ip, "too many connections from this address: refused");
    let reply = Reply::new(
        421,
        "4.7.0",
        format!(
            "{} Too many connections from your address, try again later",
            cfg.hostname
        ),
    );
    let limit = cfg.limits.idle_timeout;
    if say_goodbye(&mut stream, reply, "busy", limit).await.is_ok() {
        let _ = tokio::time::timeout(limit, stream.shutdown()).await;
    }
}

async fn say_goodbye<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: Reply,
    why: &'static str,
    limit: Duration,
) -> std::io::Result<&'static str> {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    send(stream, &out, limit).await?;
    Ok(why)
}

/// Write and flush `bytes` within `limit`: a client that stops reading its
/// replies cannot hold the connection, its permit and its address's place.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(done) => done,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client reads no replies",
        )),
    }
}

/// A recipient that exists: its mailbox is here, or on that node.
enum Found {
    Local(Box<Recipient>),
    Remote(Backend),
}

fn check_recipient(
    d: &Deliverer,
    rcpt: Mailbox,
    params: RcptParams,
    size: Option<u64>,
) -> Result<Found, Reply> {
    // A lookup (an in-memory search, a stat and re-read of the users file,
    // a round trip to Dovecot's auth or NSS) and the quota check (a read
    // of maildirsize) are short blocking work, kept off the other tasks.
    // Quota is checked here too, against the size MAIL FROM announced, so
    // a full mailbox refuses before the upload (and again at delivery);
    // a mailbox on another node is that node's to check.
    let found = tokio::task::block_in_place(|| {
        d.lookup(&rcpt.local, &rcpt.domain).and_then(|u| match u {
            Some(user) => match crate::proxy::route(&user, &d.config().proxy) {
                Route::Local => d
                    .quota_check(&user, size.unwrap_or(0))
                    .map(|_| Some((user, Route::Local))),
                route => Ok(Some((user, route))),
            },
            None => Ok(None),
        })
    });
    match found {
        Ok(Some((user, Route::Local))) => Ok(Found::Local(Box::new(Recipient {
            address: rcpt.to_string(),
            orcpt: params.orcpt.map(|(_, addr)| addr),
            user,
            folder: None,
        }))),
        Ok(Some((_, Route::Remote(b)))) => Ok(Found::Remote(b)),
        Ok(Some((_, route))) => Err(refuse_route(&rcpt, &route)),
        Ok(None) => {
            crate::metrics::rcpt_rejected("unknown_user");
            tracing::info!(to = %format!("<{rcpt}>"), status = "rejected", reply = %outcome::unknown_user(), "recipient");
            Err(outcome::unknown_user())
        }
        Err(f) => {
            crate::metrics::rcpt_rejected(f.label());
            tracing::info!(to = %format!("<{rcpt}>"), status = "rejected", reply = %f.reply(), reason = %f.detail(), "recipient");
            Err(f.reply())
        }
    }
}

/// A route that takes no mail now: moving (451 4.2.1), a loop (554
/// 5.4.6) or unusable fields (451 4.3.5).
fn refuse_route(rcpt: &Mailbox, route: &Route) -> Reply {
    let to = format!("<{rcpt}>");
    let (reply, reason) = match route {
        Route::Moving => (
            Reply::new(451, "4.2.1", "Mailbox is being moved, try again later"),
            "moving",
        ),
        Route::Invalid(why) => {
            tracing::warn!(to = %to, reason = %why, "user's routing fields unusable");
            (
                Reply::new(
                    451,
                    "4.3.5",
                    "Mailbox routing misconfigured, try again later",
                ),
                "bad_route",
            )
        }
        _ => {
            tracing::warn!(to = %to, "routing loop: the user's proxy host is this node");
            (routing_loop(), "routing_loop")
        }
    };
    crate::metrics::rcpt_rejected(reason);
    tracing::info!(to = %to, status = "rejected", reply = %reply, "recipient");
    reply
}

fn routing_loop() -> Reply {
    Reply::new(
        554,
        "5.4.6",
        "Routing loop detected: mailbox node points back here",
    )
}

/// The local recipients as a transaction of their own, and the forwarded
/// ones with their place in RCPT order.
fn split_routed(tx: Transaction<Routed>) -> (Transaction<Recipient>, Vec<(usize, String, usize)>) {
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for (pos, r) in tx.recipients.into_iter().enumerate() {
        match r {
            Routed::Local(r) => local.push(*r),
            Routed::Remote { address, leg } => remote.push((pos, address, leg)),
        }
    }
    let local_tx = Transaction {
        helo: tx.helo,
        esmtp: tx.esmtp,
        mail_from: tx.mail_from,
        params: tx.params,
        recipients: local,
        size: tx.size,
        chunked: tx.chunked,
    };
    (local_tx, remote)
}

/// The replies in RCPT order: local ones in their order, each forwarded
/// one its backend's next reply, or the spool's failure (logged here, one
/// line per forwarded recipient).
fn merge_replies(
    local: Vec<Reply>,
    remote: Vec<(usize, String, usize)>,
    legs: Result<Vec<LegReplies>, Reply>,
) -> Vec<Reply> {
    let total = local.len() + remote.len();
    let mut local = local.into_iter();
    let mut legs: Result<Vec<(String, std::vec::IntoIter<Reply>)>, Reply> = legs.map(|legs| {
        legs.into_iter()
            .map(|l| (l.backend, l.replies.into_iter()))
            .collect()
    });
    let mut remote = remote.into_iter().peekable();
    let mut out = Vec::with_capacity(total);
    for pos in 0..total {
        let Some((_, address, leg)) = remote.next_if(|(p, _, _)| *p == pos) else {
            out.push(local.next().unwrap_or_else(no_outcome));
            continue;
        };
        let (backend, reply) = match &mut legs {
            Ok(legs) => match legs.get_mut(leg) {
                Some((b, replies)) => (b.clone(), replies.next().unwrap_or_else(no_outcome)),
                None => (String::new(), no_outcome()),
            },
            Err(r) => (String::new(), r.clone()),
        };
        let status = match reply.code {
            200..=299 => "sent",
            400..=499 => "deferred",
            _ => "bounced",
        };
        tracing::info!(to = %format!("<{address}>"), relay = %backend, status, reply = %reply, "recipient");
        out.push(reply);
    }
    out
}

fn no_outcome() -> Reply {
    Reply::new(451, "4.3.0", "Internal error: no outcome")
}

async fn deliver(
    shared: &Shared,
    d: &Arc<Deliverer>,
    link: &Link<'_>,
    tx: Transaction<Recipient>,
    spool: Option<Result<Spool, Failure>>,
    started: Instant,
) -> Vec<Reply> {
    let env = envelope(
        link,
        tx.helo.clone(),
        tx.esmtp,
        tx.mail_from.as_ref().map(|m| m.to_string()),
        tx.params.smtputf8,
        started,
    );
    let span = log::txn_span(&env, tx.size);
    async {
        // SMTP: a report of failed recipients quotes the message header,
        // and the spool itself goes to the pool; keep both.
        let smtp = link.mode == Mode::Smtp;
        let head = match &spool {
            Some(Ok(s)) if smtp && s.is_on_disk() => {
                tokio::task::block_in_place(|| s.head(report::HEADER_MAX)).unwrap_or_default()
            }
            Some(Ok(s)) if smtp => s.head(report::HEADER_MAX).unwrap_or_default(),
            _ => Vec::new(),
        };
        let rcpts = if smtp {
            tx.recipients.clone()
        } else {
            Vec::new()
        };
        let outcomes = match spool {
            Some(Ok(spool)) => {
                shared
                    .pool
                    .deliver(Arc::clone(d), env.clone(), tx.recipients, spool)
                    .await
            }
            Some(Err(f)) => fail_all(&env, &tx.recipients, f),
            None => fail_all(
                &env,
                &tx.recipients,
                Failure::Spool("no message data".into()),
            ),
        };
        if smtp {
            // Blocking: a report may be handed to the MTA.
            let reply =
                tokio::task::block_in_place(|| d.smtp_reply(&env, &rcpts, &outcomes, &head));
            return vec![reply];
        }
        outcomes.iter().map(|o| o.reply(&env.id)).collect()
    }
    .instrument(span)
    .await
}

/// The envelope of a transaction whose data just ended.
fn envelope(
    link: &Link<'_>,
    helo: String,
    esmtp: bool,
    mail_from: Option<String>,
    utf8: bool,
    started: Instant,
) -> Envelope {
    let received = SystemTime::now();
    let peer = link.peer;
    Envelope {
        id: headers::new_id(received),
        mail_from,
        origin: Origin::Remote {
            protocol: match (link.mode, esmtp) {
                (Mode::Lmtp, _) => Protocol::Lmtp,
                (Mode::Smtp, true) => Protocol::Esmtp,
                (Mode::Smtp, false) => Protocol::Smtp,
            },
            helo,
            // "[ip]:port" in logs; "[ip]" in the Received header.
            peer: peer
                .rsplit_once("]:")
                .map_or(peer.to_owned(), |(ip, _)| format!("{ip}]")),
            utf8,
            tls: link.tls.as_ref().map(TlsInfo::to_string),
        },
        received,
        started,
    }
}

/// Every recipient fails the same way (the spool broke): log each, as the
/// pipeline would have.
fn fail_all(env: &Envelope, rcpts: &[Recipient], f: Failure) -> Vec<RcptOutcome> {
    rcpts
        .iter()
        .map(|r| {
            let o = RcptOutcome::Failed(f.clone());
            log::log_outcome(r, &o, env.started, &Logged::of(env));
            o
        })
        .collect()
}
