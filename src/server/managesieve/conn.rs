//! One ManageSieve connection on tokio: reads bytes into the line reader,
//! hands lines to the session, writes its replies, and carries out its
//! actions: STARTTLS, checking credentials off the runtime (a refused
//! login is answered only after a delay), and the close. Must not parse
//! the protocol itself or touch the user's files but through the
//! [`Backend`].

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::tls::Stream;
use mailstow_proto::managesieve::parse::{Limits, Reader};
use mailstow_proto::managesieve::session::{self, Action, Scripts, Session};

/// What a connection needs from the rest of mailstow; the calls block.
pub trait Backend: Send + Sync + 'static {
    /// The settings in force for a session with a client at `peer`; None
    /// when the server is stopping.
    fn conn_config(&self, peer: SocketAddr) -> Option<ConnConfig>;
    /// Ok(Some(user name)) accepted, Ok(None) refused (unknown user and
    /// wrong password alike), Err a temporary failure (logged).
    fn authenticate(&self, login: &str, password: &[u8]) -> Result<Option<String>, String>;
    /// The scripts of an authenticated user.
    fn scripts(&self, user: &str) -> Result<Box<dyn Scripts + Send>, String>;
}

#[derive(Clone)]
pub struct ConnConfig {
    pub session: session::Config,
    pub limits: Limits,
    /// For one command line (and each write).
    pub idle_timeout: Duration,
    /// Before answering a refused login.
    pub failure_delay: Duration,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serve one connection to its end; the text says how it ended.
pub async fn serve<S>(
    stream: S,
    cfg: &ConnConfig,
    backend: Arc<dyn Backend>,
) -> std::io::Result<&'static str>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn::new(stream, cfg, backend);
    send(&mut conn.stream, &conn.session.greeting(), cfg.idle_timeout).await?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // The whole next line (literals and an oversized literal being
        // skipped included) must come within the idle timeout: bytes that
        // end no line do not restart it, so a client sending a byte at a
        // time cannot hold the connection.
        let read = conn.stream.read(&mut buf);
        let n = match tokio::time::timeout_at(conn.line_deadline, read).await {
            Err(_) => {
                let _ = send(
                    &mut conn.stream,
                    b"BYE \"Disconnected for inactivity.\"\r\n",
                    cfg.idle_timeout,
                )
                .await;
                return Ok("timeout");
            }
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok("eof");
        }
        conn.reader.push(&buf[..n]);
        if let ControlFlow::Break(end) = conn.answer_lines().await? {
            return Ok(end);
        }
    }
}

/// One connection while [`serve`] runs it.
struct Conn<'a, S> {
    stream: Stream<S>,
    cfg: &'a ConnConfig,
    backend: Arc<dyn Backend>,
    session: Session,
    reader: Reader,
    /// The store of the user logged in (opened at the first command after).
    scripts: Option<(String, Box<dyn Scripts + Send>)>,
    /// When the next complete line is due (`idle_timeout` after the last).
    line_deadline: tokio::time::Instant,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conn<'a, S> {
    fn new(stream: S, cfg: &'a ConnConfig, backend: Arc<dyn Backend>) -> Self {
        let mut session_cfg = cfg.session.clone();
        session_cfg.starttls = cfg.tls.is_some();
        Conn {
            stream: Stream::Plain(stream),
            cfg,
            backend,
            session: Session::new(session_cfg),
            reader: Reader::new(cfg.limits),
            scripts: None,
            line_deadline: tokio::time::Instant::now() + cfg.idle_timeout,
        }
    }

    /// Answer every complete line read so far, in order, and carry out
    /// what each asks; Break with the reason if the connection ends.
    async fn answer_lines(&mut self) -> std::io::Result<ControlFlow<&'static str>> {
        while let Some(line) = self.reader.next_line() {
            self.line_deadline = tokio::time::Instant::now() + self.cfg.idle_timeout;
            self.open_scripts().await;
            let (out, action) = tokio::task::block_in_place(|| {
                let s: Option<&mut dyn Scripts> = match self.scripts.as_mut() {
                    Some((_, s)) => Some(s.as_mut() as &mut dyn Scripts),
                    None => None,
                };
                self.session.handle(line, s)
            });
            send(&mut self.stream, &out, self.cfg.idle_timeout).await?;
            let done = match action {
                Action::None => ControlFlow::Continue(()),
                Action::Close => ControlFlow::Break("logout"),
                Action::StartTls => self.start_tls().await?,
                Action::Authenticate {
                    authc, password, ..
                } => self.authenticate(authc, password).await?,
            };
            if done.is_break() {
                return Ok(done);
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Keep `scripts` the store of the user the session has logged in, if
    /// any; one that cannot be opened is logged, and left None.
    async fn open_scripts(&mut self) {
        let user = self.session.user().map(str::to_owned);
        if self.scripts.as_ref().map(|(u, _)| u) == user.as_ref() {
            return;
        }
        self.scripts = None;
        let Some(u) = user else {
            return;
        };
        let b = Arc::clone(&self.backend);
        let u2 = u.clone();
        match tokio::task::spawn_blocking(move || b.scripts(&u2)).await {
            Ok(Ok(s)) => self.scripts = Some((u, s)),
            Ok(Err(e)) => {
                tracing::warn!(user = %u, error = %e, "managesieve: scripts unavailable")
            }
            Err(e) => tracing::error!(error = %e, "managesieve: scripts task failed"),
        }
    }

    /// STARTTLS was answered: the handshake, then a fresh reader and the
    /// capabilities again.
    async fn start_tls(&mut self) -> std::io::Result<ControlFlow<&'static str>> {
        let Some(acceptor) = self.cfg.tls.as_ref() else {
            return Ok(ControlFlow::Break("STARTTLS without a certificate"));
        };
        if self.reader.next_line().is_some() {
            // Commands pipelined before the handshake could be an
            // injection (CVE-2011-0411 style): hang up.
            return Ok(ControlFlow::Break("data after STARTTLS"));
        }
        match self.stream.start_tls(acceptor, self.cfg.idle_timeout).await {
            Ok(info) => tracing::debug!(tls = %info, "managesieve: TLS started"),
            Err(e) => {
                tracing::info!(error = %e, "managesieve: TLS handshake failed");
                return Ok(ControlFlow::Break("TLS handshake failed"));
            }
        }
        self.reader = Reader::new(self.cfg.limits);
        let out = self.session.tls_started();
        send(&mut self.stream, &out, self.cfg.idle_timeout).await?;
        Ok(ControlFlow::Continue(()))
    }

    /// Check credentials off the runtime, answer a refusal only after the
    /// failure delay, and close after too many.
    async fn authenticate(
        &mut self,
        authc: String,
        password: Vec<u8>,
    ) -> std::io::Result<ControlFlow<&'static str>> {
        let b = Arc::clone(&self.backend);
        let login = authc.clone();
        let verdict = tokio::task::spawn_blocking(move || b.authenticate(&login, &password))
            .await
            .unwrap_or_else(|e| Err(format!("authentication task failed: {e}")));
        match &verdict {
            Ok(Some(user)) => {
                crate::metrics::managesieve_login("ok");
                tracing::info!(login = %authc, user = %user, "managesieve: logged in")
            }
            Ok(None) => {
                crate::metrics::managesieve_login("failed");
                tracing::info!(login = %authc, "managesieve: authentication failed");
                tokio::time::sleep(self.cfg.failure_delay).await;
            }
            Err(e) => {
                crate::metrics::managesieve_login("unavailable");
                tracing::error!(login = %authc, error = %e, "managesieve: authentication unavailable")
            }
        }
        let (out, next) = self.session.authenticated(verdict);
        send(&mut self.stream, &out, self.cfg.idle_timeout).await?;
        if next == Action::Close {
            return Ok(ControlFlow::Break("too many authentication failures"));
        }
        Ok(ControlFlow::Continue(()))
    }
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client reads no replies",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailstow_proto::managesieve::session::tests_support::Memory;
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, BufReader};

    struct Fake {
        store: Arc<Mutex<Memory>>,
    }

    /// A store shared with the test, so it outlives the connection.
    struct Shared(Arc<Mutex<Memory>>);

    impl Scripts for Shared {
        fn list(&mut self) -> Result<Vec<(String, bool)>, session::Failure> {
            self.0.lock().unwrap().list()
        }
        fn get(&mut self, n: &str) -> Result<Vec<u8>, session::Failure> {
            self.0.lock().unwrap().get(n)
        }
        fn put(&mut self, n: &str, s: &[u8]) -> Result<Vec<String>, session::Failure> {
            self.0.lock().unwrap().put(n, s)
        }
        fn check(&mut self, s: &[u8]) -> Result<Vec<String>, session::Failure> {
            self.0.lock().unwrap().check(s)
        }
        fn set_active(&mut self, n: Option<&str>) -> Result<(), session::Failure> {
            self.0.lock().unwrap().set_active(n)
        }
        fn delete(&mut self, n: &str) -> Result<(), session::Failure> {
            self.0.lock().unwrap().delete(n)
        }
        fn rename(&mut self, a: &str, b: &str) -> Result<(), session::Failure> {
            self.0.lock().unwrap().rename(a, b)
        }
        fn have_space(&mut self, n: &str, s: u64) -> Result<(), session::Failure> {
            self.0.lock().unwrap().have_space(n, s)
        }
    }

    impl Backend for Fake {
        fn conn_config(&self, _peer: SocketAddr) -> Option<ConnConfig> {
            Some(cfg(Duration::ZERO))
        }
        fn authenticate(&self, login: &str, password: &[u8]) -> Result<Option<String>, String> {
            Ok((login == "alice" && password == b"secret").then(|| "alice@example.org".into()))
        }
        fn scripts(&self, _user: &str) -> Result<Box<dyn Scripts + Send>, String> {
            Ok(Box::new(Shared(Arc::clone(&self.store))))
        }
    }

    fn cfg(delay: Duration) -> ConnConfig {
        ConnConfig {
            session: session::tests_support::config(false, true),
            limits: Limits {
                max_line: 1024,
                max_literal: 4096,
            },
            idle_timeout: Duration::from_secs(5),
            failure_delay: delay,
            tls: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_session_over_a_stream_with_a_delayed_failure() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let store = Arc::new(Mutex::new(Memory::default()));
        let backend = Arc::new(Fake {
            store: Arc::clone(&store),
        });
        let delay = Duration::from_millis(300);
        let task = tokio::spawn(async move { serve(server, &cfg(delay), backend).await });
        let (r, mut w) = tokio::io::split(client);
        let mut lines = BufReader::new(r).lines();
        let until_ok = async |lines: &mut tokio::io::Lines<BufReader<_>>| {
            let mut got = Vec::new();
            while let Some(l) = lines.next_line().await.unwrap() {
                let done = l.starts_with("OK") || l.starts_with("NO") || l.starts_with("BYE");
                got.push(l);
                if done {
                    break;
                }
            }
            got
        };
        let greeting = until_ok(&mut lines).await;
        assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
        // A wrong password is answered after the delay.
        let started = std::time::Instant::now();
        w.write_all(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHdyb25n\"\r\n")
            .await
            .unwrap();
        assert_eq!(
            until_ok(&mut lines).await,
            ["NO \"Authentication failed.\""]
        );
        assert!(started.elapsed() >= delay);
        w.write_all(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\nPUTSCRIPT \"a\" {5+}\r\nkeep;\r\nSETACTIVE \"a\"\r\nLOGOUT\r\n")
            .await
            .unwrap();
        for want in [
            "OK \"Logged in.\"",
            "OK \"Putscript completed.\"",
            "OK \"Setactive completed.\"",
            "OK \"Logout completed.\"",
        ] {
            assert_eq!(until_ok(&mut lines).await, [want]);
        }
        assert_eq!(task.await.unwrap().unwrap(), "logout");
        assert_eq!(store.lock().unwrap().active.as_deref(), Some("a"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_dripping_one_line_byte_by_byte_is_cut_at_the_idle_timeout() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let backend = Arc::new(Fake {
            store: Arc::new(Mutex::new(Memory::default())),
        });
        let mut c = cfg(Duration::ZERO);
        c.idle_timeout = Duration::from_secs(1);
        let task = tokio::spawn(async move { serve(server, &c, backend).await });
        let (mut r, mut w) = tokio::io::split(client);
        // A byte every 200 ms never ends the line; each alone is well
        // within the timeout. The server must hang up all the same, long
        // before the 60 s this would otherwise take.
        for _ in 0..300 {
            if task.is_finished() || w.write_all(b"N").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(task.is_finished(), "still connected after 60 s of drip");
        assert_eq!(task.await.unwrap().unwrap(), "timeout");
        let mut said = String::new();
        let _ = r.read_to_string(&mut said).await;
        assert!(
            said.ends_with("BYE \"Disconnected for inactivity.\"\r\n"),
            "{said}"
        );
    }
}
