//! One LMTP connection: feeds bytes read from the socket into the session
//! state machine, answers its requests (recipient lookups, deliveries via
//! the pool), writes its replies, and applies the idle and data timeouts and
//! the shutdown rule (never cut a transaction in flight). Must not know
//! about Maildir or parse protocol lines itself.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::Config;
use crate::deliver::headers::{self, Origin};
use crate::deliver::outcome::{self, Failure, RcptOutcome};
use crate::deliver::{Envelope, Pool, Recipient, Spool};
use crate::proto::address::Mailbox;
use crate::proto::command::RcptParams;
use crate::proto::{Event, Reply, Session, SessionConfig, Transaction};

const READ_SIZE: usize = 64 * 1024;

/// Everything a connection needs, shared by all of them.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub pool: Pool,
}

/// Serve one connection until QUIT, EOF, timeout or shutdown.
pub async fn serve<S>(stream: S, peer: String, shared: Arc<Shared>, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span =
        tracing::info_span!("session", id = %headers::new_id(SystemTime::now()), peer = %peer);
    async move {
        tracing::debug!("connected");
        match drive(stream, &peer, &shared, shutdown).await {
            Ok(end) => tracing::debug!(end, "disconnected"),
            Err(e) => tracing::debug!(error = %e, "connection lost"),
        }
    }
    .instrument(span)
    .await
}

async fn drive<S>(
    mut stream: S,
    peer: &str,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<&'static str>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &shared.cfg;
    let mut session: Session<Recipient> = Session::new(SessionConfig {
        hostname: cfg.hostname.clone(),
        max_message_size: cfg.limits.max_message_size,
        max_recipients: cfg.limits.max_recipients,
        max_line_length: cfg.limits.max_line_length,
    });
    let mut out = Vec::with_capacity(1024);
    let mut buf = vec![0u8; READ_SIZE];
    let mut spool: Option<Result<Spool, String>> = None;
    let mut started = Instant::now();
    session.greeting().write_to(&mut out);
    loop {
        while let Some(ev) = session.poll() {
            match ev {
                Event::Reply(r) => r.write_to(&mut out),
                Event::CheckRecipient { rcpt, params, size } => {
                    let result = check_recipient(shared, rcpt, params, size);
                    session.rcpt_checked(result);
                }
                Event::DataStart => {
                    started = Instant::now();
                    spool = Some(Ok(Spool::new(
                        cfg.delivery.spool_dir.clone(),
                        cfg.delivery.spool_memory_max,
                    )));
                }
                Event::Body(chunk) => {
                    if let Some(Ok(s)) = spool.as_mut() {
                        // Only a chunk that reaches the spool file blocks;
                        // memory appends stay on the worker.
                        let appended = if s.touches_disk(chunk.len()) {
                            tokio::task::block_in_place(|| s.append(&chunk))
                        } else {
                            s.append(&chunk)
                        };
                        if let Err(e) = appended {
                            spool = Some(Err(format!("spool: {e}")));
                        }
                    }
                }
                Event::DataAborted { refused } => {
                    spool = None;
                    if !refused.is_empty() {
                        let env = envelope(peer, String::new(), None, false, started);
                        for r in &refused {
                            let o = RcptOutcome::Failed(Failure::TooLarge);
                            crate::deliver::pipeline::log_outcome(
                                &env,
                                r,
                                &o,
                                cfg.limits.max_message_size,
                            );
                        }
                    }
                }
                Event::Deliver(tx) => {
                    let replies = deliver(shared, peer, tx, spool.take(), started).await;
                    session.delivered(replies);
                }
                Event::Close => {
                    stream.write_all(&out).await?;
                    stream.flush().await?;
                    return Ok("quit");
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        if session.is_closed() {
            return Ok("closed");
        }
        if *shutdown.borrow() && !session.in_transaction() {
            return say_goodbye(&mut stream, session.shutdown_reply(), "shutdown").await;
        }
        let limit = if session.in_data() {
            cfg.limits.data_timeout
        } else {
            cfg.limits.idle_timeout
        };
        let in_tx = session.in_transaction();
        tokio::select! {
            read = tokio::time::timeout(limit, stream.read(&mut buf)) => match read {
                Err(_) => return say_goodbye(&mut stream, session.timeout_reply(), "timeout").await,
                Ok(Ok(0)) => return Ok(if in_tx { "eof in transaction" } else { "eof" }),
                Ok(Ok(n)) => session.feed(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            },
            // Noticed only between transactions: one in flight finishes.
            _ = shutdown.changed(), if !in_tx => {}
        }
    }
}

async fn say_goodbye<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: Reply,
    why: &'static str,
) -> std::io::Result<&'static str> {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(why)
}

fn check_recipient(
    shared: &Shared,
    rcpt: Mailbox,
    params: RcptParams,
    size: Option<u64>,
) -> Result<Recipient, Reply> {
    let d = shared.pool.deliverer();
    // A lookup is an in-memory search plus, at most, a stat and a re-read
    // of the users file: short blocking work, kept off the other tasks.
    // Quota is checked here too, against the size MAIL FROM announced, so
    // a full mailbox refuses before the upload (and again at delivery).
    let found = tokio::task::block_in_place(|| {
        d.lookup(&rcpt.local, &rcpt.domain).and_then(|u| match u {
            Some(user) => d.quota_check(&user, size.unwrap_or(0)).map(|_| Some(user)),
            None => Ok(None),
        })
    });
    match found {
        Ok(Some(user)) => Ok(Recipient {
            address: rcpt.to_string(),
            orcpt: params.orcpt.map(|(_, addr)| addr),
            user,
            folder: None,
        }),
        Ok(None) => {
            tracing::info!(to = %format!("<{rcpt}>"), status = "rejected", reply = %outcome::unknown_user(), "recipient");
            Err(outcome::unknown_user())
        }
        Err(f) => {
            tracing::info!(to = %format!("<{rcpt}>"), status = "rejected", reply = %f.reply(), reason = %f.detail(), "recipient");
            Err(f.reply())
        }
    }
}

async fn deliver(
    shared: &Shared,
    peer: &str,
    tx: Transaction<Recipient>,
    spool: Option<Result<Spool, String>>,
    started: Instant,
) -> Vec<Reply> {
    let env = envelope(
        peer,
        tx.helo.clone(),
        tx.mail_from.as_ref().map(|m| m.to_string()),
        tx.params.smtputf8,
        started,
    );
    let span = tracing::info_span!("txn", id = %env.id, from = %format!("<{}>", env.mail_from.as_deref().unwrap_or("")), size = tx.size);
    async {
        let outcomes = match spool {
            Some(Ok(spool)) => shared.pool.deliver(env.clone(), tx.recipients, spool).await,
            Some(Err(e)) => fail_all(&env, &tx.recipients, Failure::Spool(e)),
            None => fail_all(
                &env,
                &tx.recipients,
                Failure::Spool("no message data".into()),
            ),
        };
        outcomes.iter().map(|o| o.reply(&env.id)).collect()
    }
    .instrument(span)
    .await
}

/// The envelope of a transaction whose data just ended.
fn envelope(
    peer: &str,
    helo: String,
    mail_from: Option<String>,
    utf8: bool,
    started: Instant,
) -> Envelope {
    let received = SystemTime::now();
    Envelope {
        id: headers::new_id(received),
        mail_from,
        origin: Origin::Lmtp {
            helo,
            // "[ip]:port" in logs; "[ip]" in the Received header.
            peer: peer
                .rsplit_once("]:")
                .map_or(peer.to_owned(), |(ip, _)| format!("{ip}]")),
            utf8,
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
            crate::deliver::pipeline::log_outcome(env, r, &o, 0);
            o
        })
        .collect()
}
