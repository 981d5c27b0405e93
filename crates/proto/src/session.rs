//! The LMTP and SMTP session state machine (RFC 2033, RFC 5321 for final
//! delivery, with RFC 2920 pipelining, RFC 3030 CHUNKING, RFC 6531
//! SMTPUTF8, RFC 3207 STARTTLS): bytes in, events out. One machine, two
//! modes: they differ in the greeting verb and in the replies after the
//! data (one per recipient in LMTP, one per transaction in SMTP). The host
//! feeds what it read, then drains [`Session::poll`] and answers the
//! requests (`CheckRecipient`, `Deliver`, `StartTls`) before polling on; so
//! at most one host request is ever outstanding and replies stay in
//! command order.
//! Must not touch sockets, files, clocks or logs, and must not grow any
//! buffer without bound whatever the client sends.

use std::collections::VecDeque;

use super::address::Mailbox;
use super::command::{self, BodyType, Command, MailParams, RcptParams};
use super::data::DataReceiver;
use super::reply::Reply;

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 2033: LHLO; after the data, one reply per recipient.
    Lmtp,
    /// RFC 5321 (final delivery): EHLO or HELO; after the data, one reply
    /// for the whole transaction.
    Smtp,
}

/// Limits and names the session needs; taken from the validated config.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub mode: Mode,
    /// Offer STARTTLS (until the session is encrypted).
    pub starttls: bool,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line_length: usize,
    /// Commands accepted without a delivered message; the next one gets
    /// 421 4.7.0 and the session closes.
    pub max_commands: usize,
    /// Syntax and sequence errors without a delivered message; the last
    /// one is followed by 421 4.7.0 and the close.
    pub max_errors: usize,
}

/// What the host must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<R> {
    /// Send this reply (buffer freely; flush before waiting for input).
    Reply(Reply),
    /// Is this recipient deliverable? Answer with [`Session::rcpt_checked`].
    CheckRecipient {
        rcpt: Mailbox,
        params: RcptParams,
        /// The size MAIL FROM announced (SIZE=), for an early quota check.
        size: Option<u64>,
    },
    /// A message body starts: open a fresh spool.
    DataStart,
    /// Message bytes (dot-unstuffed) to append to the spool.
    Body(Vec<u8>),
    /// The body is abandoned: drop the spool. `refused` holds the
    /// recipients the message was refused for (too large; each gets the
    /// reply that follows), and is empty when the client gave up (RSET).
    DataAborted { refused: Vec<R> },
    /// The body is complete: deliver it and answer with
    /// [`Session::delivered`]: in LMTP one reply per recipient in RCPT
    /// order, in SMTP the one reply for the transaction.
    Deliver(Transaction<R>),
    /// STARTTLS was accepted and its 220 queued: flush, run the TLS
    /// handshake on the connection, then call [`Session::tls_started`]; if
    /// it fails, close. Nothing the client sent is buffered at this point
    /// (bytes pipelined after STARTTLS are refused, never carried into
    /// the encrypted session: CVE-2011-0411).
    StartTls,
    /// Flush what was written, then close the connection.
    Close,
}

/// A complete transaction handed to the host for delivery.
#[derive(Debug, PartialEq, Eq)]
pub struct Transaction<R> {
    /// The client's LHLO, EHLO or HELO name.
    pub helo: String,
    /// The client greeted with LHLO or EHLO (not HELO).
    pub esmtp: bool,
    /// None is the null reverse-path `<>`.
    pub mail_from: Option<Mailbox>,
    pub params: MailParams,
    /// Accepted recipients, in RCPT order, as the host described them.
    pub recipients: Vec<R>,
    /// Message size in bytes (after dot-unstuffing).
    pub size: u64,
    /// BDAT was used instead of DATA.
    pub chunked: bool,
}

#[derive(Debug)]
enum State {
    Command,
    /// Waiting for the host's answer to CheckRecipient.
    AwaitRcpt,
    Data(DataReceiver),
    /// Reading a BDAT chunk into the transaction.
    Bdat {
        remaining: u64,
        last: bool,
    },
    /// Reading and dropping a BDAT chunk, then sending `reply`.
    BdatSkip {
        remaining: u64,
        reply: Reply,
    },
    /// Waiting for the host's answer to Deliver (number of replies: the
    /// recipients in LMTP, one in SMTP).
    AwaitDelivery(usize),
    /// Waiting for the host's TLS handshake.
    AwaitTls,
    Closed,
}

/// The open transaction, for a host answering `CheckRecipient` that needs
/// more than the recipient (a proxy opening the same transaction
/// elsewhere).
#[derive(Debug, Clone, Copy)]
pub struct MailView<'a> {
    /// New for every MAIL the session accepts: a host keeping state per
    /// transaction knows by it that the client began another one.
    pub serial: u64,
    /// The client's LHLO, EHLO or HELO name.
    pub helo: &'a str,
    pub mail_from: Option<&'a Mailbox>,
    pub params: &'a MailParams,
}

#[derive(Debug)]
struct Tx<R> {
    serial: u64,
    mail_from: Option<Mailbox>,
    params: MailParams,
    recipients: Vec<R>,
    /// A BDAT chunk was taken (DataStart was sent).
    chunking: bool,
    /// Bytes received by BDAT so far.
    bdat_size: u64,
    /// An earlier BDAT failed: later chunks are refused until RSET.
    bdat_failed: bool,
}

pub struct Session<R> {
    cfg: SessionConfig,
    state: State,
    helo: Option<String>,
    /// The last greeting was LHLO or EHLO.
    esmtp: bool,
    /// TLS is active (STARTTLS is no longer offered).
    secure: bool,
    tx: Option<Tx<R>>,
    /// Unprocessed input; bounded by `max_line_length` plus one read.
    inbuf: Vec<u8>,
    /// An over-long line is being dropped up to its end.
    discarding_line: bool,
    /// Message bytes waiting to be handed out as one Body event.
    body: Vec<u8>,
    out: VecDeque<Event<R>>,
    /// Command lines, and syntax or sequence errors, since the session
    /// began or a message was last delivered (`max_commands`, `max_errors`).
    commands: usize,
    errors: usize,
    /// MAIL commands accepted so far ([`MailView::serial`]).
    transactions: u64,
}

impl<R> Session<R> {
    pub fn new(cfg: SessionConfig) -> Session<R> {
        Session {
            cfg,
            state: State::Command,
            helo: None,
            esmtp: false,
            secure: false,
            tx: None,
            inbuf: Vec::new(),
            discarding_line: false,
            body: Vec::new(),
            out: VecDeque::new(),
            commands: 0,
            errors: 0,
            transactions: 0,
        }
    }

    /// The 220 greeting to send on connect.
    pub fn greeting(&self) -> Reply {
        let proto = match self.cfg.mode {
            Mode::Lmtp => "LMTP",
            Mode::Smtp => "ESMTP",
        };
        Reply::plain(
            220,
            vec![format!("{} {proto} mailstow ready", self.cfg.hostname)],
        )
    }

    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    /// The host's TLS handshake after [`Event::StartTls`] succeeded: the
    /// session starts over (RFC 3207 4.2: the client greets again and
    /// STARTTLS is no longer offered).
    pub fn tls_started(&mut self) {
        if !matches!(self.state, State::AwaitTls) {
            return;
        }
        self.state = State::Command;
        self.secure = true;
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.inbuf.clear();
        self.discarding_line = false;
    }

    /// Bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Closed) {
            self.inbuf.extend_from_slice(bytes);
        }
    }

    /// The next thing to do, or None when more input is needed (or the
    /// session waits for the host's answer, or is closed).
    pub fn poll(&mut self) -> Option<Event<R>> {
        loop {
            if let Some(e) = self.out.pop_front() {
                return Some(e);
            }
            if !self.step() {
                return None;
            }
            if self.errors >= self.cfg.max_errors && matches!(self.state, State::Command) {
                self.hang_up("Too many errors");
            }
        }
    }

    /// The host's answer to `CheckRecipient`: the accepted recipient, or the
    /// refusal to send.
    pub fn rcpt_checked(&mut self, result: Result<R, Reply>) {
        if !matches!(self.state, State::AwaitRcpt) {
            return;
        }
        self.state = State::Command;
        match (result, self.tx.as_mut()) {
            (Ok(r), Some(tx)) => {
                tx.recipients.push(r);
                self.reply(Reply::new(250, "2.1.5", "OK"));
            }
            (Err(reply), _) => self.reply(reply),
            (Ok(_), None) => self.reply(Reply::new(503, "5.5.1", "No transaction")),
        }
    }

    /// The host's answer to `Deliver`: one reply per recipient (LMTP) or
    /// one for the transaction (SMTP). A wrong count is mended (missing
    /// replies become temporary failures, extra ones are dropped) so the
    /// client gets exactly the replies it waits for.
    pub fn delivered(&mut self, replies: Vec<Reply>) {
        let State::AwaitDelivery(n) = self.state else {
            return;
        };
        self.state = State::Command;
        self.tx = None;
        if replies.iter().any(Reply::is_positive) {
            // Like Postfix: the limits count what a client does without
            // delivering mail.
            self.commands = 0;
            self.errors = 0;
        }
        let mut replies = replies.into_iter();
        for _ in 0..n {
            let r = replies
                .next()
                .unwrap_or_else(|| Reply::new(451, "4.3.0", "Internal error: no outcome"));
            self.reply(r);
        }
    }

    /// The open transaction (MAIL accepted), if any.
    pub fn current_mail(&self) -> Option<MailView<'_>> {
        let tx = self.tx.as_ref()?;
        Some(MailView {
            serial: tx.serial,
            helo: self.helo.as_deref().unwrap_or(""),
            mail_from: tx.mail_from.as_ref(),
            params: &tx.params,
        })
    }

    /// A transaction is open (MAIL given, or data in progress). Shutdown and
    /// timeouts wait for this to be false before cutting the connection.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some() || !matches!(self.state, State::Command | State::Closed)
    }

    /// Message data is being read (the data timeout applies, not the idle one).
    pub fn in_data(&self) -> bool {
        matches!(
            self.state,
            State::Data(_) | State::Bdat { .. } | State::BdatSkip { .. }
        )
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Complete input is buffered and will be processed without reading.
    pub fn has_pending_input(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// The reply for a connection cut by shutdown.
    pub fn shutdown_reply(&self) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!(
                "{} Service shutting down, try again later",
                self.cfg.hostname
            ),
        )
    }

    /// The reply for a connection cut by a timeout.
    pub fn timeout_reply(&self) -> Reply {
        Reply::new(
            421,
            "4.4.2",
            format!("{} Timeout exceeded, closing connection", self.cfg.hostname),
        )
    }

    /// Mark the session closed (the host is closing the connection).
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.inbuf = Vec::new();
    }

    /// Queue a reply. Syntax and sequence errors (RFC 5321 4.2.2's 500,
    /// 501, 502, 503, 504 and 555) count towards `max_errors`.
    fn reply(&mut self, r: Reply) {
        if matches!(r.code, 500..=504 | 555) {
            self.errors += 1;
        }
        self.out.push_back(Event::Reply(r));
    }

    /// 421 4.7.0 and close: a limit of the session was passed.
    fn hang_up(&mut self, why: &str) {
        let text = format!("{} {why}, closing connection", self.cfg.hostname);
        self.out
            .push_back(Event::Reply(Reply::new(421, "4.7.0", text)));
        self.out.push_back(Event::Close);
        self.close();
    }

    /// Process buffered input; false when nothing could be done.
    fn step(&mut self) -> bool {
        match &mut self.state {
            State::Closed | State::AwaitRcpt | State::AwaitDelivery(_) | State::AwaitTls => false,
            State::Command => self.step_command(),
            State::Data(recv) => {
                if self.inbuf.is_empty() {
                    return false;
                }
                let (used, done) = recv.feed(&self.inbuf, &mut self.body);
                let size = recv.size();
                let overflowed = recv.overflowed();
                self.inbuf.drain(..used);
                if !self.body.is_empty() {
                    let chunk = std::mem::take(&mut self.body);
                    self.out.push_back(Event::Body(chunk));
                }
                if done {
                    self.end_of_data(size, overflowed, false);
                }
                true
            }
            State::Bdat { remaining, last } => {
                let (remaining, last) = (*remaining, *last);
                let n = (remaining.min(self.inbuf.len() as u64)) as usize;
                if n == 0 && remaining > 0 {
                    return false;
                }
                let max = self.cfg.max_message_size;
                if let Some(tx) = self.tx.as_mut() {
                    let before = tx.bdat_size;
                    tx.bdat_size = before.saturating_add(n as u64);
                    if tx.bdat_size <= max && n > 0 {
                        self.out.push_back(Event::Body(self.inbuf[..n].to_vec()));
                    }
                }
                self.inbuf.drain(..n);
                let remaining = remaining - n as u64;
                if remaining > 0 {
                    self.state = State::Bdat { remaining, last };
                } else {
                    self.end_of_chunk(last);
                }
                true
            }
            State::BdatSkip { remaining, .. } => {
                let n = ((*remaining).min(self.inbuf.len() as u64)) as usize;
                if n == 0 && *remaining > 0 {
                    return false;
                }
                *remaining -= n as u64;
                self.inbuf.drain(..n);
                if *remaining == 0 {
                    if let State::BdatSkip { reply, .. } =
                        std::mem::replace(&mut self.state, State::Command)
                    {
                        self.reply(reply);
                    }
                }
                true
            }
        }
    }

    fn step_command(&mut self) -> bool {
        let max = self.cfg.max_line_length;
        let Some(lf) = memchr::memchr(b'\n', &self.inbuf) else {
            if self.inbuf.len() > max {
                // No line end within the limit: refuse once, drop to the end.
                if !self.discarding_line {
                    self.reply(Reply::new(500, "5.5.2", "Line too long"));
                }
                self.discarding_line = true;
                self.inbuf.clear();
                return true;
            }
            return false;
        };
        let line: Vec<u8> = self.inbuf.drain(..=lf).collect();
        if std::mem::take(&mut self.discarding_line) {
            return true;
        }
        self.commands += 1;
        if self.commands > self.cfg.max_commands {
            self.hang_up("Too many commands");
            return true;
        }
        if line.len() > max {
            self.reply(Reply::new(500, "5.5.2", "Line too long"));
            return true;
        }
        let body = &line[..line.len() - 1];
        let Some(body) = body.strip_suffix(b"\r") else {
            self.reply(Reply::new(
                500,
                "5.5.2",
                "Bare LF in command line: lines end with CRLF",
            ));
            return true;
        };
        if memchr::memchr(b'\r', body).is_some() {
            self.reply(Reply::new(500, "5.5.2", "Bare CR in command line"));
            return true;
        }
        if memchr::memchr(0, body).is_some() {
            self.reply(Reply::new(500, "5.5.2", "NUL in command line"));
            return true;
        }
        match command::parse(body) {
            Ok(cmd) => self.execute(cmd),
            Err(reply) => self.reply(reply),
        }
        true
    }

    fn execute(&mut self, cmd: Command) {
        match cmd {
            Command::Lhlo(host) if self.cfg.mode == Mode::Lmtp => self.hello(host, true),
            Command::Lhlo(_) => self.reply(Reply::new(
                500,
                "5.5.1",
                "This is SMTP: use EHLO or HELO (LHLO is LMTP)",
            )),
            Command::Helo { .. } if self.cfg.mode == Mode::Lmtp => self.reply(Reply::new(
                500,
                "5.5.1",
                "This is LMTP (RFC 2033): use LHLO",
            )),
            Command::Helo {
                extended,
                host: Some(host),
            } => self.hello(host, extended),
            Command::Helo { extended, .. } => self.reply(Reply::new(
                501,
                "5.5.4",
                if extended {
                    "Syntax: EHLO hostname"
                } else {
                    "Syntax: HELO hostname"
                },
            )),
            Command::StartTls => self.starttls(),
            Command::Mail(from, params) => self.mail(from, params),
            Command::Rcpt(rcpt, params) => self.rcpt(rcpt, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset_tx();
                self.reply(Reply::new(250, "2.0.0", "OK"));
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0", "OK")),
            Command::Quit => {
                self.reset_tx();
                self.reply(Reply::new(
                    221,
                    "2.0.0",
                    format!("{} closing connection", self.cfg.hostname),
                ));
                self.out.push_back(Event::Close);
                self.close();
            }
            Command::Vrfy => self.reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => {
                let hello = match self.cfg.mode {
                    Mode::Lmtp => "LHLO",
                    Mode::Smtp => "EHLO HELO",
                };
                let tls = if self.offers_starttls() {
                    " STARTTLS"
                } else {
                    ""
                };
                self.reply(Reply::new(
                    214,
                    "2.0.0",
                    format!("Commands: {hello} MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP{tls}"),
                ))
            }
        }
    }

    fn offers_starttls(&self) -> bool {
        self.cfg.starttls && !self.secure
    }

    /// LHLO, EHLO (`extended`) or HELO with a usable name.
    fn hello(&mut self, host: String, extended: bool) {
        self.reset_tx();
        self.helo = Some(host);
        self.esmtp = extended;
        let mut lines = vec![self.cfg.hostname.clone()];
        if extended {
            lines.extend([
                "PIPELINING".into(),
                "8BITMIME".into(),
                format!("SIZE {}", self.cfg.max_message_size),
                "ENHANCEDSTATUSCODES".into(),
                "SMTPUTF8".into(),
                "CHUNKING".into(),
            ]);
            if self.cfg.mode == Mode::Lmtp {
                // Our own: a proxy in front names the nodes it came through.
                lines.push("XMAILSTOW-HOPS".into());
            }
            if self.offers_starttls() {
                lines.push("STARTTLS".into());
            }
        }
        self.reply(Reply::plain(250, lines));
    }

    /// RFC 3207. Whatever the client sent after the STARTTLS line is still
    /// plaintext that an attacker in the path may have added: it is never
    /// carried into the encrypted session (CVE-2011-0411). The command is
    /// refused and the connection closed, without answering a byte of it.
    fn starttls(&mut self) {
        if !self.offers_starttls() {
            let r = if self.secure {
                Reply::new(503, "5.5.1", "TLS already active")
            } else {
                Reply::new(500, "5.5.2", "Command unrecognized")
            };
            return self.reply(r);
        }
        if self.tx.is_some() {
            return self.reply(Reply::new(
                503,
                "5.5.1",
                "STARTTLS not allowed in a mail transaction",
            ));
        }
        if !self.inbuf.is_empty() {
            self.inbuf = Vec::new();
            self.reply(Reply::new(
                503,
                "5.5.1",
                "Commands pipelined after STARTTLS: refused, closing connection",
            ));
            self.out.push_back(Event::Close);
            self.close();
            return;
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.state = State::AwaitTls;
        self.out.push_back(Event::StartTls);
    }

    fn mail(&mut self, from: Option<Mailbox>, params: MailParams) {
        if self.helo.is_none() {
            let text = match self.cfg.mode {
                Mode::Lmtp => "Send LHLO first",
                Mode::Smtp => "Send EHLO first",
            };
            return self.reply(Reply::new(503, "5.5.1", text));
        }
        if self.tx.is_some() {
            return self.reply(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        if params.size.is_some_and(|s| s > self.cfg.max_message_size) {
            return self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        if from.as_ref().is_some_and(|m| !m.is_ascii()) && !params.smtputf8 {
            return self.reply(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII sender address requires SMTPUTF8",
            ));
        }
        self.transactions += 1;
        self.tx = Some(Tx {
            serial: self.transactions,
            mail_from: from,
            params,
            recipients: Vec::new(),
            chunking: false,
            bdat_size: 0,
            bdat_failed: false,
        });
        self.reply(Reply::new(250, "2.1.0", "OK"));
    }

    fn rcpt(&mut self, rcpt: Mailbox, params: RcptParams) {
        let Some(tx) = self.tx.as_ref() else {
            return self.reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        if tx.chunking {
            return self.reply(Reply::new(503, "5.5.1", "RCPT after BDAT"));
        }
        if tx.recipients.len() >= self.cfg.max_recipients {
            return self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
        }
        if !rcpt.is_ascii() && !tx.params.smtputf8 {
            return self.reply(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII recipient address requires SMTPUTF8",
            ));
        }
        let size = tx.params.size;
        self.state = State::AwaitRcpt;
        self.out
            .push_back(Event::CheckRecipient { rcpt, params, size });
    }

    fn data(&mut self) {
        match self.tx.as_ref() {
            None => self.reply(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(tx) if tx.chunking => self.reply(Reply::new(503, "5.5.1", "DATA after BDAT")),
            Some(tx) if tx.recipients.is_empty() => {
                self.reply(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => {
                self.reply(Reply::plain(
                    354,
                    vec!["End data with <CR><LF>.<CR><LF>".into()],
                ));
                self.out.push_back(Event::DataStart);
                self.state = State::Data(DataReceiver::new(self.cfg.max_message_size));
            }
        }
    }

    fn bdat(&mut self, size: u64, last: bool) {
        let refusal = match self.tx.as_mut() {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(tx) if tx.bdat_failed => {
                Some(Reply::new(503, "5.5.1", "Earlier BDAT failed: send RSET"))
            }
            Some(tx) if tx.recipients.is_empty() => {
                tx.bdat_failed = true;
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(tx) => {
                if !tx.chunking {
                    tx.chunking = true;
                    self.out.push_back(Event::DataStart);
                }
                None
            }
        };
        self.state = match refusal {
            Some(reply) => State::BdatSkip {
                remaining: size,
                reply,
            },
            None => State::Bdat {
                remaining: size,
                last,
            },
        };
    }

    fn end_of_chunk(&mut self, last: bool) {
        self.state = State::Command;
        let Some(tx) = self.tx.as_mut() else { return };
        let size = tx.bdat_size;
        let overflowed = size > self.cfg.max_message_size;
        if last {
            return self.end_of_data(size, overflowed, true);
        }
        if overflowed {
            tx.bdat_failed = true;
            let refused = std::mem::take(&mut tx.recipients);
            self.out.push_back(Event::DataAborted { refused });
            self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        } else {
            self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        }
    }

    fn end_of_data(&mut self, size: u64, overflowed: bool, chunked: bool) {
        self.state = State::Command;
        let Some(tx) = self.tx.take() else { return };
        if overflowed {
            let n = self.replies_after_data(tx.recipients.len());
            self.out.push_back(Event::DataAborted {
                refused: tx.recipients,
            });
            for _ in 0..n {
                self.reply(Reply::new(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ));
            }
            return;
        }
        let n = self.replies_after_data(tx.recipients.len());
        self.state = State::AwaitDelivery(n);
        self.out.push_back(Event::Deliver(Transaction {
            helo: self.helo.clone().unwrap_or_default(),
            esmtp: self.esmtp,
            mail_from: tx.mail_from,
            params: tx.params,
            recipients: tx.recipients,
            size,
            chunked,
        }));
    }

    /// How many replies end a message for `recipients` recipients.
    fn replies_after_data(&self, recipients: usize) -> usize {
        match self.cfg.mode {
            Mode::Lmtp => recipients,
            Mode::Smtp => 1,
        }
    }

    fn reset_tx(&mut self) {
        if let Some(tx) = self.tx.take() {
            if tx.chunking && !tx.bdat_failed {
                self.out.push_back(Event::DataAborted {
                    refused: Vec::new(),
                });
            }
        }
    }
}

impl BodyType {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
        }
    }
}

#[cfg(test)]
mod tests;
