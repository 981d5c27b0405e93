//! One client transaction's forwarding: a leg per backend node that has
//! recipients in it. At RCPT time a leg opens (a pooled connection or a new
//! one), sends MAIL with the client's parameters as far as the backend
//! offers them, then RCPT; the backend's reply goes back to the client as it
//! is. After the client's data, every leg gets the message and each
//! backend reply is relayed for its recipient. A backend that fails makes
//! 451 4.4.1 for its own recipients only. Must not store anything: the
//! backend's 250 is the durable one.

use std::time::Instant;

use mailstow_proto::command::BodyType;
use mailstow_proto::{MailView, Reply};

use super::client::{Conn, Error};
use super::{node_token, Backend, Pool};
use crate::config::ProxyConfig;

/// The client's transaction, as the backends must see it too.
#[derive(Debug, Clone)]
pub struct MailInfo {
    /// The session's transaction number: a new one resets the legs.
    pub serial: u64,
    /// The reverse-path as written in MAIL FROM, without brackets ("" for
    /// the null sender).
    pub from: String,
    pub size: Option<u64>,
    pub eightbit: bool,
    pub smtputf8: bool,
    /// The proxy nodes it passed through before us.
    pub hops: Vec<String>,
}

impl MailInfo {
    pub fn of(view: &MailView<'_>) -> MailInfo {
        MailInfo {
            serial: view.serial,
            from: view.mail_from.map(|m| m.to_string()).unwrap_or_default(),
            size: view.params.size,
            eightbit: view.params.body == BodyType::EightBitMime,
            smtputf8: view.params.smtputf8,
            hops: view.params.hops.clone(),
        }
    }

    /// MAIL FROM with the parameters the backend offers.
    fn mail_line(&self, ext: super::client::Extensions) -> String {
        let mut line = format!("MAIL FROM:<{}>", self.from);
        if let (Some(size), true) = (self.size, ext.size) {
            line.push_str(&format!(" SIZE={size}"));
        }
        if self.eightbit && ext.eightbitmime {
            line.push_str(" BODY=8BITMIME");
        }
        if self.smtputf8 && ext.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if ext.hops {
            let mut hops = self.hops.clone();
            hops.push(node_token().to_owned());
            line.push_str(&format!(" XMAILSTOW-HOPS={}", hops.join(",")));
        }
        line
    }
}

/// What a leg needs from the server: the pool, `[proxy]` and our name.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub pool: &'a Pool,
    pub cfg: &'a ProxyConfig,
    pub hostname: &'a str,
}

/// The replies of one backend after the data, one per recipient it
/// accepted, in RCPT order.
#[derive(Debug)]
pub struct LegReplies {
    pub backend: String,
    pub replies: Vec<Reply>,
}

/// The legs of the client's current transaction.
#[derive(Debug, Default)]
pub struct Forwarder {
    serial: u64,
    legs: Vec<Leg>,
}

#[derive(Debug)]
struct Leg {
    key: String,
    conn: Option<Conn>,
    /// Once the leg failed: what each of its recipients gets from then on.
    failed: Option<Reply>,
    /// MAIL was accepted: the backend is in a transaction.
    in_tx: bool,
    accepted: usize,
}

impl Forwarder {
    /// Forward RCPT for `rcpt` (as written in RCPT TO, without brackets) to
    /// `backend`: Ok(leg) when the backend accepted it, else the reply to
    /// relay.
    pub async fn rcpt(
        &mut self,
        cx: Ctx<'_>,
        mail: &MailInfo,
        backend: &Backend,
        rcpt: &str,
    ) -> Result<usize, Reply> {
        if mail.serial != self.serial {
            self.reset(cx).await;
            self.serial = mail.serial;
        }
        let i = self.leg(backend);
        let leg = &mut self.legs[i];
        let result = leg.rcpt(cx, mail, rcpt).await;
        crate::metrics::proxy_recipient(&leg.key, "rcpt", result.as_ref().err());
        result.map(|()| i)
    }

    /// The key (`host:port`) of leg `i`, for logs.
    pub fn backend(&self, i: usize) -> &str {
        self.legs.get(i).map_or("", |l| l.key.as_str())
    }

    /// Send `message` to every leg with recipients and collect their
    /// replies; the legs are done afterwards (connections back in the pool).
    pub async fn data(&mut self, cx: Ctx<'_>, message: &[u8]) -> Vec<LegReplies> {
        let started = Instant::now();
        for leg in self.legs.iter_mut().filter(|l| l.accepted > 0) {
            leg.send(message).await;
        }
        let mut out = Vec::with_capacity(self.legs.len());
        for mut leg in std::mem::take(&mut self.legs) {
            let replies = leg.collect().await;
            if leg.accepted > 0 {
                crate::metrics::proxy_latency(&leg.key, started.elapsed());
            }
            for r in &replies {
                let refused = Some(r).filter(|r| !r.is_positive());
                crate::metrics::proxy_recipient(&leg.key, "data", refused);
            }
            leg.release(cx).await;
            out.push(LegReplies {
                backend: leg.key,
                replies,
            });
        }
        out
    }

    /// The client gave the transaction up (RSET, a new MAIL, refused data):
    /// end it on every backend; connections that answer go back to the pool.
    pub async fn reset(&mut self, cx: Ctx<'_>) {
        for mut leg in std::mem::take(&mut self.legs) {
            leg.release(cx).await;
        }
    }

    /// The leg for `backend`, added if new.
    fn leg(&mut self, backend: &Backend) -> usize {
        let key = backend.key();
        if let Some(i) = self.legs.iter().position(|l| l.key == key) {
            return i;
        }
        self.legs.push(Leg {
            key,
            conn: None,
            failed: None,
            in_tx: false,
            accepted: 0,
        });
        self.legs.len() - 1
    }
}

impl Leg {
    async fn rcpt(&mut self, cx: Ctx<'_>, mail: &MailInfo, rcpt: &str) -> Result<(), Reply> {
        if let Some(r) = &self.failed {
            return Err(r.clone());
        }
        if !self.in_tx {
            self.start(cx, mail).await?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.fail(&Error::Closed("RCPT")));
        };
        match conn.command(&format!("RCPT TO:<{rcpt}>"), "RCPT").await {
            Ok(r) if r.is_positive() => {
                self.accepted += 1;
                Ok(())
            }
            Ok(r) => Err(r),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// A connection in a transaction: MAIL on a pooled connection (one
    /// retry on a fresh one if the pooled one died idle) or a new one.
    async fn start(&mut self, cx: Ctx<'_>, mail: &MailInfo) -> Result<(), Reply> {
        for _ in 0..2 {
            let (mut conn, pooled) = match cx.pool.take(&self.key) {
                Some(c) => (c, true),
                None => match self.open(cx).await {
                    Ok(c) => (c, false),
                    Err(e) => return Err(self.fail(&e)),
                },
            };
            match conn.command(&mail.mail_line(conn.ext), "MAIL").await {
                Ok(r) if r.is_positive() => {
                    self.conn = Some(conn);
                    self.in_tx = true;
                    return Ok(());
                }
                Ok(r) if r.code == 421 && pooled => continue,
                Err(_) if pooled => continue,
                Ok(r) => {
                    // Refused, but the session is sound: keep it.
                    cx.pool.put(&self.key, conn, cx.cfg.max_idle);
                    self.failed = Some(r.clone());
                    return Err(r);
                }
                Err(e) => return Err(self.fail(&e)),
            }
        }
        Err(self.fail(&Error::Closed("MAIL")))
    }

    async fn open(&self, cx: Ctx<'_>) -> Result<Conn, Error> {
        let t = cx.cfg;
        let conn = Conn::open(&self.key, cx.hostname, t.connect_timeout, t.timeout).await;
        crate::metrics::proxy_up(&self.key, conn.is_ok());
        conn
    }

    /// DATA, and on 354 the message; a refusal or failure becomes the
    /// reply of every recipient of the leg.
    async fn send(&mut self, message: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            self.fail(&Error::Closed("DATA"));
            return;
        };
        let sent = match conn.command("DATA", "DATA").await {
            Ok(r) if r.code == 354 => conn.send_data(message).await.map(|()| None),
            Ok(r) => Ok(Some(r)),
            Err(e) => Err(e),
        };
        match sent {
            Ok(None) => {}
            Ok(Some(refused)) => self.failed = Some(refused),
            Err(e) => {
                self.fail(&e);
            }
        }
    }

    /// One reply per accepted recipient; those the backend did not answer
    /// get 451 4.4.1.
    async fn collect(&mut self) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(self.accepted);
        while replies.len() < self.accepted {
            if let Some(r) = &self.failed {
                replies.push(r.clone());
                continue;
            }
            let Some(conn) = self.conn.as_mut() else {
                self.fail(&Error::Closed("data"));
                continue;
            };
            match conn.reply("data").await {
                Ok(r) => replies.push(r),
                Err(e) => {
                    self.fail(&e);
                }
            }
        }
        if self.accepted > 0 && self.failed.is_none() {
            self.in_tx = false;
            crate::metrics::proxy_up(&self.key, true);
        }
        replies
    }

    /// The leg is over: its connection goes back to the pool when the
    /// backend is between transactions (after RSET if needed).
    async fn release(&mut self, cx: Ctx<'_>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.in_tx {
            match conn.command("RSET", "RSET").await {
                Ok(r) if r.code == 250 => {}
                _ => return,
            }
        }
        cx.pool.put(&self.key, conn, cx.cfg.max_idle);
    }

    /// The leg is broken: its connection is dropped, and this recipient and
    /// every later one of the leg get 451 4.4.1.
    fn fail(&mut self, e: &Error) -> Reply {
        tracing::warn!(backend = %self.key, error = %e, "proxy backend failed");
        crate::metrics::proxy_up(&self.key, false);
        self.conn = None;
        self.in_tx = false;
        let r = Reply::new(
            451,
            "4.4.1",
            format!("Mailbox node {} unavailable, try again later", self.key),
        );
        self.failed = Some(r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::Extensions;
    use super::*;

    fn info() -> MailInfo {
        MailInfo {
            serial: 1,
            from: "a@example.net".into(),
            size: Some(1200),
            eightbit: true,
            smtputf8: true,
            hops: vec!["n1".into()],
        }
    }

    #[test]
    fn mail_carries_the_clients_parameters_only_as_far_as_offered() {
        assert_eq!(
            info().mail_line(Extensions::default()),
            "MAIL FROM:<a@example.net>"
        );
        let all = Extensions {
            size: true,
            eightbitmime: true,
            smtputf8: true,
            hops: true,
        };
        assert_eq!(
            info().mail_line(all),
            format!(
                "MAIL FROM:<a@example.net> SIZE=1200 BODY=8BITMIME SMTPUTF8 XMAILSTOW-HOPS=n1,{}",
                node_token()
            )
        );
        let null = MailInfo {
            from: String::new(),
            size: None,
            ..info()
        };
        assert!(null
            .mail_line(all)
            .starts_with("MAIL FROM:<> BODY=8BITMIME"));
    }
}
